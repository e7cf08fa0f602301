//! End-to-end speaker scenarios on a real (namespaced) Ethernet LAN, judged by independent
//! tools: `arping` (who answers for the VIP), `curl` (whose HTTP server the traffic reaches,
//! through the nftables DNAT that stands in for kube-proxy) and `tcpdump` (what went on the
//! wire). Each test builds its own cluster (kube-sim, controller, one speaker per node).
//!
//! Needs root, ip, nft, arping, curl and tcpdump; skips loudly without them, except under
//! `CI=true` or `FERROLB_E2E=1`, where a missing prerequisite fails.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use cluster::{poll, Cluster, ClusterSpec};
use ferrolb_core::election::winner;
use ferrolb_testkit::ApiBackend;
use serde_json::json;

fn cluster(spec: ClusterSpec) -> Option<Cluster> {
    netns::require().ok()?;
    Some(Cluster::start(spec))
}

/// The node the design's election must pick for `vip` when every node is a live candidate.
fn expected_winner(vip: Ipv4Addr, nodes: &[usize]) -> usize {
    let names: Vec<String> = nodes.iter().map(|i| format!("node-{i}")).collect();
    let w = winner(vip.into(), names.iter().map(String::as_str)).expect("non-empty candidates");
    w.trim_start_matches("node-").parse().expect("node-N")
}

#[test]
fn service_is_reachable_through_the_elected_node_with_a_gratuitous_burst() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        let capture = c.lan.client().capture_arp();
        let vip = c.create_service("web", json!({}));
        c.lan.add_vip_dnat(vip, 80);
        let owner = c
            .wait_announcer(vip, Duration::from_secs(10), |_| true)
            .unwrap_or_else(|| panic!("nobody answers ARP for {vip}\n{}", c.speaker_logs()));
        assert_eq!(
            owner,
            expected_winner(vip, &[1, 2, 3]),
            "the rendezvous winner announces"
        );
        assert_eq!(
            c.curl(vip, 80).as_deref(),
            Ok(format!("node-{owner}").as_str()),
            "curl reaches the elected node"
        );

        // The burst configured in l2.garp (3 sends, 300 ms apart), each a request and a reply.
        let mac = c.lan.node(owner).mac();
        let garps = |pkts: &[netns::ArpPacket]| {
            pkts.iter()
                .filter(|p| p.is_gratuitous() && p.sender_ip == vip)
                .count()
        };
        assert!(
            poll(Duration::from_secs(5), || garps(&capture.packets()) >= 6),
            "expected 6 gratuitous frames"
        );
        std::thread::sleep(Duration::from_millis(700)); // nothing more may follow the burst
        let packets = capture.stop();
        let burst: Vec<_> = packets
            .iter()
            .filter(|p| p.is_gratuitous() && p.sender_ip == vip)
            .collect();
        assert_eq!(burst.len(), 6, "burst of 3 x (request + reply): {burst:#?}");
        assert_eq!(
            burst
                .iter()
                .filter(|p| p.op == netns::ArpOp::Request)
                .count(),
            3
        );
        assert_eq!(
            burst.iter().filter(|p| p.op == netns::ArpOp::Reply).count(),
            3
        );
        for p in &burst {
            assert_eq!(p.sender_mac, mac, "announced with the owner's MAC");
            assert_eq!(p.target_ip, vip, "sender IP = target IP = VIP");
            assert!(p.eth_dst.0 == [0xff; 6], "to broadcast");
        }
        let events = c.service_events("web");
        assert!(
            events.iter().any(|(r, m)| r == "Announcing"
                && m == &format!("announcing {vip} from node node-{owner} on eth0")),
            "Announcing Event: {events:?}"
        );
        let m = c.speaker_metrics(owner);
        assert_eq!(
            cluster::metric(&m, "ferrolb_speaker_gratuitous_arp_total"),
            Some(3.0),
            "{m}"
        );
    });
}

#[test]
fn ten_services_spread_over_three_nodes_and_a_shared_ip_has_one_owner() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        let mut owners = BTreeSet::new();
        for n in 0..10 {
            let name = format!("s{n}");
            let vip = c.create_service(&name, json!({}));
            let want = expected_winner(vip, &[1, 2, 3]);
            let got = c.wait_announcer(vip, Duration::from_secs(10), |o| o == want);
            assert_eq!(
                got,
                Some(want),
                "{name} ({vip}) must be announced by its rendezvous winner\n{}",
                c.speaker_logs()
            );
            owners.insert(want);
        }
        assert!(owners.len() >= 2, "ten IPs on one node: {owners:?}");

        let shared = json!({"metadata": {"annotations": {"ferrolb.io/allow-shared-ip": "team"}}});
        let a = c.create_service("shared-a", shared.clone());
        let mut b_spec = shared;
        b_spec["spec"] = json!({"ports": [{"name": "alt", "port": 81, "targetPort": 8080}]});
        let b = c.create_service("shared-b", b_spec);
        assert_eq!(a, b, "the sharing key puts both Services on one IP");
        c.lan.add_vip_dnat(a, 80);
        c.lan.add_vip_dnat(a, 81);
        let owner = c
            .wait_announcer(a, Duration::from_secs(10), |_| true)
            .expect("shared IP announced");
        assert_eq!(c.curl(a, 80), Ok(format!("node-{owner}")));
        assert_eq!(
            c.curl(a, 81),
            Ok(format!("node-{owner}")),
            "both Services are served by the same node"
        );
        let macs = c.lan.client().arping_macs(a, Duration::from_secs(1));
        assert_eq!(
            macs.len(),
            1,
            "exactly one MAC answers for the shared IP: {macs:?}"
        );
        // The per-Service gauge lists both Services, including the one that joined the IP after
        // it was already announced.
        let shows_both = poll(Duration::from_secs(5), || {
            let m = c.speaker_metrics(owner);
            ["default/shared-a", "default/shared-b"].iter().all(|svc| {
                m.contains(&format!(
                    "ferrolb_speaker_announcing{{service=\"{svc}\",ip=\"{a}\""
                ))
            })
        });
        assert!(
            shows_both,
            "announcing gauge per Service:\n{}",
            c.speaker_metrics(owner)
        );
    });
}

#[test]
fn local_traffic_policy_follows_the_ready_endpoint() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        let vip = c.create_service("local", json!({"spec": {"externalTrafficPolicy": "Local"}}));
        c.set_endpoints("local", &[2]);
        assert_eq!(
            c.wait_announcer(vip, Duration::from_secs(10), |n| n == 2),
            Some(2),
            "only node-2 has an endpoint\n{}",
            c.speaker_logs()
        );
        let macs = c.lan.client().arping_macs(vip, Duration::from_secs(1));
        assert_eq!(macs, vec![c.lan.node(2).mac()], "no other node answers");
        c.set_endpoints("local", &[3]);
        assert_eq!(
            c.wait_announcer(vip, Duration::from_secs(10), |n| n == 3),
            Some(3),
            "the announcement moves with the endpoint"
        );
        c.set_endpoints("local", &[]);
        assert!(
            poll(Duration::from_secs(10), || c
                .lan
                .client()
                .arping_mac(vip)
                .is_none()),
            "without a ready endpoint nobody announces (traffic would be dropped anyway)"
        );
    });
}

/// A fresh cluster, its VIP's owner failed by `fail`, and what the client saw.
fn failover_after(
    backend: ApiBackend,
    fail: impl FnOnce(&mut Cluster, usize),
) -> (Cluster, cluster::Failover) {
    let mut c = cluster(ClusterSpec {
        backend,
        ..ClusterSpec::default()
    })
    .expect("prerequisites checked by caller");
    let f = c.measure_failover(Duration::from_millis(50), Duration::from_secs(15), fail);
    (c, f)
}

#[test]
fn hard_failure_kill_9_moves_the_ip() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        if netns::require().is_err() {
            return;
        }
        // The node's own data path stays up when only its speaker dies, so clients with a cached
        // ARP entry keep being served; what matters is how soon the new owner takes over.
        let (_c, f) = failover_after(backend, |c, owner| c.speaker(owner).kill());
        eprintln!(
            "hard failure (kill -9 speaker on node-{}) -> node-{}: switch {:?}, longest curl gap {:?}",
            f.old, f.new, f.switch, f.gap
        );
        assert!(
            f.switch < Duration::from_secs(10),
            "switch {:?} is far beyond the 3 s lease",
            f.switch
        );
    });
}

#[test]
fn hard_failure_node_cut_off_the_lan_moves_the_ip() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        if netns::require().is_err() {
            return;
        }
        let (c, f) = failover_after(backend, |c, owner| c.lan.cut_node(owner));
        let old = f.old;
        eprintln!(
            "hard failure (node-{old} cut off) -> node-{}: longest curl gap {:?}",
            f.new, f.gap
        );
        assert!(
            f.gap < Duration::from_secs(10),
            "gap {:?} is far beyond the 3 s lease",
            f.gap
        );
        // When the node returns, it must not leave two MACs answering for long: it hears the new
        // owner's claim and the election settles on one owner.
        c.lan.restore_node(old);
        let vip = c.wait_ip("web", Duration::from_secs(1));
        assert!(
            c.wait_one_mac(vip, Duration::from_secs(10)),
            "after the node returns exactly one MAC answers\n{}",
            c.speaker_logs()
        );
    });
}

#[test]
fn graceful_handover_on_sigterm_is_fast() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        if netns::require().is_err() {
            return;
        }
        let (c, f) = failover_after(backend, |c, owner| c.speaker(owner).term());
        let old = f.old;
        eprintln!(
            "graceful handover (SIGTERM node-{old}) -> node-{}: switch {:?}, longest curl gap {:?}",
            f.new, f.switch, f.gap
        );
        assert!(
            f.switch < Duration::from_secs(2),
            "graceful handover must not wait for lease expiry: {:?}",
            f.switch
        );
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(c.client.clone(), "ferrolb-system");
        let lease =
            c.rt.block_on(leases.get(&format!("ferrolb-speaker-node-{old}")))
                .expect("lease");
        assert_eq!(
            lease.spec.and_then(|s| s.holder_identity),
            None,
            "the stopped speaker released its lease"
        );
    });
}

#[test]
fn api_outage_moves_nothing_and_traffic_keeps_flowing() {
    let Some(c) = cluster(ClusterSpec::default()) else {
        return;
    };
    let (vips, before) = c.create_announced_services(3);
    for v in &vips {
        c.lan.add_vip_dnat(*v, 80);
    }
    let sampler = c.lan.client().curl_sampler(
        &format!("http://{}/", vips[0]),
        Duration::from_millis(100),
        Duration::from_millis(500),
    );
    c.sim().faults().pause(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(8)); // well past the 3 s lease: everyone is degraded
    let during: Vec<Option<usize>> = vips.iter().map(|v| c.announcer(*v)).collect();
    assert_eq!(
        during,
        before.iter().map(|b| Some(*b)).collect::<Vec<_>>(),
        "nothing moves while the API is down"
    );
    for i in 1..=3 {
        assert_eq!(
            cluster::metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded"),
            Some(1.0),
            "node-{i} is degraded"
        );
    }
    // Wait for the API to come back and the speakers to be healthy again.
    assert!(
        poll(Duration::from_secs(40), || (1..=3).all(
            |i| cluster::metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded") == Some(0.0)
        )),
        "speakers recover after the outage\n{}",
        c.speaker_logs()
    );
    std::thread::sleep(Duration::from_secs(4)); // more than a lease duration after recovery
    let after: Vec<Option<usize>> = vips.iter().map(|v| c.announcer(*v)).collect();
    let samples = sampler.stop();
    assert_eq!(
        after,
        before.iter().map(|b| Some(*b)).collect::<Vec<_>>(),
        "nothing moves after the API returns either"
    );
    let failures = samples.iter().filter(|s| s.result.is_err()).count();
    assert_eq!(
        failures,
        0,
        "curl failed {failures} of {} times during the outage",
        samples.len()
    );
}

#[test]
fn api_partition_of_one_node_never_leaves_two_owners_for_long() {
    let Some(c) = cluster(ClusterSpec {
        garp: "{ burst: 5, interval: 1100ms, refresh: 0s }".into(),
        ..ClusterSpec::default()
    }) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    let sampler =
        c.lan
            .client()
            .arp_sampler(vip, Duration::from_millis(100), Duration::from_millis(100));
    c.lan.block_api(owner);
    // Peers still hear the node's heartbeats, so they wait for its lease to expire: up to the
    // relaxed 18 s after its last renewal (3 s while heartbeats are off).
    let moved = poll(Duration::from_secs(25), || {
        c.announcer(vip).is_some_and(|n| n != owner)
    });
    std::thread::sleep(Duration::from_secs(3));
    let samples = sampler.stop();
    assert!(
        moved,
        "peers take over from the partitioned node\n{}",
        c.speaker_logs()
    );
    // The longest run of consecutive samples in which two MACs answered.
    let mut longest = 0usize;
    let mut run = 0usize;
    for s in &samples {
        if s.macs.len() > 1 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let double = Duration::from_millis(100) * u32::try_from(longest).unwrap_or(u32::MAX);
    eprintln!(
        "two MACs answered for at most {double:?} ({} samples)",
        samples.len()
    );
    assert!(
        double <= Duration::from_millis(1100 + 200),
        "two owners for {double:?}, more than one GARP interval"
    );
    let isolated = c.speaker_metrics(owner);
    assert_eq!(
        cluster::metric(&isolated, "ferrolb_speaker_degraded"),
        Some(1.0),
        "the isolated speaker knows it is degraded"
    );
}

#[test]
fn node_excluded_from_load_balancers_gives_up_its_ips() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        let vip = c.create_service("web", json!({}));
        let owner = c
            .wait_announcer(vip, Duration::from_secs(10), |_| true)
            .expect("announced");
        c.label_node(
            owner,
            "node.kubernetes.io/exclude-from-external-load-balancers",
            Some("true"),
        );
        let next = c.wait_announcer(vip, Duration::from_secs(10), |n| n != owner);
        assert!(
            next.is_some(),
            "node-{owner} must give up {vip}\n{}",
            c.speaker_logs()
        );
        assert_eq!(
            c.lan
                .client()
                .arping_macs(vip, Duration::from_secs(1))
                .len(),
            1
        );
    });
}

#[test]
fn an_ip_used_by_another_host_is_not_fought_for() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        // The client configures the first pool address itself before any Service exists.
        let taken: Ipv4Addr = "203.0.113.10".parse().expect("static");
        c.lan
            .client()
            .exec(
                "ip",
                &["addr", "add", "203.0.113.10/32", "dev", "eth0"],
                Duration::from_secs(5),
            )
            .expect("ip addr add");
        let vip = c.create_service("web", json!({}));
        assert_eq!(
            vip, taken,
            "the controller cannot know about the foreign host; the speaker must"
        );
        let warned = poll(Duration::from_secs(10), || {
            c.service_events("web")
                .iter()
                .any(|(r, _)| r == "IPInUseByOtherHost")
        });
        assert!(warned, "Warning Event expected\n{}", c.speaker_logs());
        let from_node = c.lan.node(1).arping_macs(vip, Duration::from_secs(1));
        assert_eq!(
            from_node,
            vec![c.lan.client().mac()],
            "only the foreign host answers; no speaker fights it"
        );
        let scrapes: Vec<String> = (1..=3).map(|i| c.speaker_metrics(i)).collect();
        let total: f64 = scrapes
            .iter()
            .filter_map(|m| cluster::metric(m, "ferrolb_speaker_foreign_claims_total"))
            .sum();
        assert!(total >= 1.0, "foreign claim counted: {scrapes:#?}");
    });
}

/// A normal failback is a handover, not a conflict: the owner is killed, a peer takes over,
/// the owner comes back and takes its IP back (probing first, which the interim owner answers
/// until its lease view shows the returning node). No speaker may count a conflict or raise an
/// `IPConflict` Event on the way (see "What is a conflict" in docs/architecture.md).
#[test]
fn a_failback_raises_no_ip_conflict() {
    ferrolb_testkit::for_each_backend_blocking(|backend| {
        let Some(mut c) = cluster(ClusterSpec {
            backend,
            ..ClusterSpec::default()
        }) else {
            return;
        };
        let vip = c.create_service("web", json!({}));
        let owner = c
            .wait_announcer(vip, Duration::from_secs(10), |_| true)
            .unwrap_or_else(|| panic!("nobody announces {vip}\n{}", c.speaker_logs()));
        let conflicts_of = |c: &Cluster, i: usize| {
            cluster::metric_sum(&c.speaker_metrics(i), "ferrolb_speaker_conflicts_total")
        };
        let mut counted = 0.0;
        for cycle in 0..3 {
            // The returning speaker's counter dies with it: read it before each kill.
            counted += conflicts_of(&c, owner);
            c.speaker(owner).kill();
            let away = c.wait_announcer(vip, Duration::from_secs(12), |n| n != owner);
            assert!(
                away.is_some(),
                "cycle {cycle}: {vip} never left node-{owner}\n{}",
                c.speaker_logs()
            );
            c.restart_speaker(owner);
            let home = c.wait_announcer(vip, Duration::from_secs(15), |n| n == owner);
            assert!(
                home.is_some(),
                "cycle {cycle}: node-{owner} never took {vip} back\n{}",
                c.speaker_logs()
            );
        }
        // Let any late claim (the interim owner's remaining GARP burst) arrive and be judged.
        std::thread::sleep(Duration::from_secs(2));
        for i in 1..=3 {
            counted += conflicts_of(&c, i);
        }
        let events: Vec<(String, String)> = c
            .service_events("web")
            .into_iter()
            .filter(|(r, _)| r == "IPConflict")
            .collect();
        assert!(
            events.is_empty() && counted == 0.0,
            "failback counted {counted} conflicts, Events {events:?}\n{}",
            c.speaker_logs()
        );
    });
}
