//! Heartbeats between speakers on a real (namespaced) LAN: failover without waiting for a lease,
//! fewer API writes, and every way heartbeats can go missing or be faked leaving at most
//! today's behaviour. Judged by `arping`/`curl` on the client, kube-sim's request log, and the
//! speakers' own metrics.
//!
//! Needs root, ip, nft, arping, curl and tcpdump; skips loudly without them, except under
//! `CI=true` or `FERROLB_E2E=1`, where a missing prerequisite fails.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use cluster::{metric, poll, Cluster, ClusterSpec};
use serde_json::json;

/// The port speakers send heartbeats to (src/speaker/heartbeat).
const PORT: u16 = 7474;

fn cluster(spec: ClusterSpec) -> Option<Cluster> {
    netns::require().ok()?;
    Some(Cluster::start(spec))
}

fn gauge(c: &Cluster, i: usize, name: &str) -> Option<f64> {
    metric(&c.speaker_metrics(i), name)
}

/// Runs `script` with `nft -f` in node `i`'s namespace.
fn nft(c: &Cluster, i: usize, rules: &[&str]) {
    for r in rules {
        let args: Vec<&str> = r.split_whitespace().collect();
        let out = c
            .lan
            .node(i)
            .exec("nft", &args, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("nft {r} in node-{i}: {e}"));
        assert!(out.status.success(), "nft {r} in node-{i}: {out:?}");
    }
}

/// Writes to the API (create, update, patch, delete) by speakers in `window`, per speaker per
/// second, from kube-sim's request log.
fn speaker_writes_per_node_per_s(c: &Cluster, nodes: usize, window: Duration) -> f64 {
    c.sim().faults().clear_request_log();
    std::thread::sleep(window);
    let writes = c
        .sim()
        .faults()
        .request_log()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("ferrolb-speaker"))
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .count();
    writes as f64 / nodes as f64 / window.as_secs_f64()
}

fn api_writes(nodes: usize) {
    let Some(c) = cluster(ClusterSpec {
        nodes,
        ..ClusterSpec::default()
    }) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    c.wait_announcer(vip, Duration::from_secs(20), |_| true)
        .expect("announced");
    c.wait_relaxed(nodes, Duration::from_secs(60));
    let rate = speaker_writes_per_node_per_s(&c, nodes, Duration::from_secs(60));
    eprintln!("{nodes} speakers, steady state: {rate:.3} API writes per node per second");
    assert!(
        rate <= 0.1,
        "{rate:.3} writes per node per second, more than 0.1\n{}",
        c.speaker_logs()
    );
    assert_eq!(
        c.announcer(vip).map(|_| ()),
        Some(()),
        "still announced at the end"
    );
}

#[test]
fn three_speakers_write_to_the_api_at_most_once_per_ten_seconds_each() {
    api_writes(3);
}

#[test]
fn twenty_speakers_write_to_the_api_at_most_once_per_ten_seconds_each() {
    api_writes(20);
}

#[test]
fn without_a_usable_key_nothing_changes_from_lease_only_failover() {
    // A Secret the user supplied with a key too short to trust: the controller never overwrites
    // an existing Secret, so the speakers stay without a key (a missing Secret would simply be
    // created by the controller).
    let Some(mut c) = cluster(ClusterSpec {
        heartbeat_key: Some("too-short".into()),
        ..ClusterSpec::default()
    }) else {
        return;
    };
    assert!(
        poll(Duration::from_secs(10), || (1..=3).all(|i| gauge(
            &c,
            i,
            "ferrolb_speaker_heartbeat_missing"
        ) == Some(1.0))),
        "the alarm says heartbeats are missing\n{}",
        c.speaker_logs()
    );
    assert!(c
        .speaker(1)
        .wait_for_output("heartbeats missing", Duration::from_secs(5)));
    let rate = speaker_writes_per_node_per_s(&c, 3, Duration::from_secs(10));
    eprintln!("without a key: {rate:.2} API writes per node per second");
    assert!(rate >= 0.8, "the fast cadence stays: {rate:.2}/s");
    let f = c.measure_failover(
        Duration::from_millis(20),
        Duration::from_secs(15),
        |c, owner| c.lan.cut_node(owner),
    );
    eprintln!(
        "without heartbeats, node cut off: longest curl gap {:?}",
        f.gap
    );
    assert!(f.gap <= Duration::from_millis(3500), "gap {:?}", f.gap);
}

#[test]
fn a_node_cut_off_the_lan_is_replaced_in_about_a_second() {
    let Some(mut c) = cluster(ClusterSpec::default()) else {
        return;
    };
    c.wait_relaxed(3, Duration::from_secs(30));
    // The relaxed lease (18 s) would take far longer: only heartbeats can make this fast.
    let f = c.measure_failover(
        Duration::from_millis(20),
        Duration::from_secs(30),
        |c, owner| c.lan.cut_node(owner),
    );
    eprintln!(
        "heartbeats, node-{} cut off -> node-{}: switch {:?}, longest curl gap {:?}",
        f.old, f.new, f.switch, f.gap
    );
    assert!(
        f.gap <= Duration::from_millis(2000),
        "gap {:?}: the failure was not detected by heartbeats\n{}",
        f.gap,
        c.speaker_logs()
    );
    assert!(
        poll(Duration::from_secs(5), || gauge(
            &c,
            f.new,
            "ferrolb_speaker_heartbeat_peers_suspected"
        ) == Some(1.0)),
        "the new owner suspects the cut node"
    );
}

/// A firewall in node `x` drops the heartbeats coming in: its peers hear it, it hears none of
/// them. It suspects them and tells them so (its outgoing datagrams pass), probes their IPs,
/// hears them answer and takes the suspicion back; they refute (an "alive" x cannot hear), and
/// learn from its lease that it does not hear them and keep the fast cadence.
#[test]
fn heartbeats_lost_one_way_leave_one_owner_and_raise_the_alarm() {
    let Some(c) = cluster(ClusterSpec::default()) else {
        return;
    };
    let (vips, owners) = c.create_announced_services(4);
    c.wait_relaxed(3, Duration::from_secs(30));
    let x = owners[0];
    let peers: Vec<usize> = (1..=3).filter(|i| *i != x).collect();
    // Watch an IP of each peer: x is the node that could wrongly take them.
    let watched: Vec<Ipv4Addr> = vips
        .iter()
        .zip(&owners)
        .filter(|(_, o)| **o != x)
        .map(|(v, _)| *v)
        .chain(std::iter::once(vips[0]))
        .collect();
    let samplers: Vec<_> = watched
        .iter()
        .map(|v| {
            c.lan
                .client()
                .arp_sampler(*v, Duration::from_millis(100), Duration::from_millis(100))
        })
        .collect();
    nft(&c, x, &["add rule inet flbh in udp dport 7474 drop"]);
    let alarms = |c: &Cluster| {
        (1..=3).all(|i| gauge(c, i, "ferrolb_speaker_heartbeat_missing") == Some(1.0))
    };
    assert!(
        poll(Duration::from_secs(20), || alarms(&c)
            && peers.iter().all(|p| gauge(
                &c,
                *p,
                "ferrolb_speaker_heartbeat_lease_relaxed"
            ) == Some(0.0))),
        "node-{x} and its peers raise the alarm; the peers node-{x} cannot hear keep the fast \
         cadence\n{}",
        c.speaker_logs()
    );
    std::thread::sleep(Duration::from_secs(5));
    let mut double = 0;
    let mut total = 0;
    for s in samplers {
        let samples = s.stop();
        total += samples.len();
        double += samples.iter().filter(|s| s.macs.len() > 1).count();
    }
    let after: Vec<Option<usize>> = vips.iter().map(|v| c.announcer(*v)).collect();
    eprintln!(
        "one-way loss into node-{x}: {double} of {total} ARP samples saw two MACs; cancelled \
         suspicions on node-{x}: {}",
        c.speaker_metric_sum(x, "ferrolb_speaker_heartbeat_suspicions_cancelled_total")
    );
    assert!(
        double <= 3,
        "two MACs answered in {double} samples (100 ms apart)\n{}",
        c.speaker_logs()
    );
    assert_eq!(
        after,
        owners.iter().map(|o| Some(*o)).collect::<Vec<_>>(),
        "no IP moved"
    );
    assert!(
        alarms(&c),
        "the alarm stays raised while heartbeats are lost"
    );
    // Node x told its peers it suspects them; each, alive, refuted (what x cannot hear, while
    // the probe answers excuse them on x).
    for p in &peers {
        let refuted = gauge(
            &c,
            *p,
            "ferrolb_speaker_heartbeat_messages_total{kind=\"alive\",direction=\"sent\"}",
        );
        assert!(
            refuted.is_some_and(|n| n >= 1.0),
            "node-{p}, suspected by node-{x} while alive, refuted it: {refuted:?}\n{}",
            c.speaker_metrics(*p)
        );
    }
}

#[test]
fn heartbeats_blocked_completely_fall_back_to_lease_failover() {
    let Some(mut c) = cluster(ClusterSpec::default()) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    c.wait_announcer(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    c.wait_relaxed(3, Duration::from_secs(30));
    for i in 1..=3 {
        nft(
            &c,
            i,
            &[
                "add rule inet flbh out udp dport 7474 drop",
                "add rule inet flbh in udp dport 7474 drop",
            ],
        );
    }
    assert!(
        poll(Duration::from_secs(30), || (1..=3).all(|i| gauge(
            &c,
            i,
            "ferrolb_speaker_heartbeat_lease_relaxed"
        ) == Some(0.0)
            && gauge(&c, i, "ferrolb_speaker_heartbeat_missing")
                == Some(1.0))),
        "every speaker returns to the fast cadence and raises the alarm\n{}",
        c.speaker_logs()
    );
    // The suspicions the block started end with each node's next lease write (it lives):
    // from then on every node is judged by its 3 s lease alone.
    assert!(
        poll(Duration::from_secs(10), || (1..=3).all(|i| gauge(
            &c,
            i,
            "ferrolb_speaker_heartbeat_peers_suspected"
        ) == Some(0.0))),
        "suspicions are taken back\n{}",
        c.speaker_logs()
    );
    // One owner while everyone stopped hearing everyone.
    let macs = c.lan.client().arping_macs(vip, Duration::from_millis(500));
    assert_eq!(macs.len(), 1, "one MAC answers for {vip}: {macs:?}");
    c.delete_service("web");
    let f = c.measure_failover(
        Duration::from_millis(20),
        Duration::from_secs(15),
        |c, owner| c.lan.cut_node(owner),
    );
    eprintln!(
        "heartbeats blocked, node-{} cut off -> node-{}: longest curl gap {:?}",
        f.old, f.new, f.gap
    );
    assert!(
        f.gap <= Duration::from_millis(3500),
        "gap {:?} beyond the 3.5 s lease failover",
        f.gap
    );
}

/// A heartbeat of node `from` as it arrives at node `at` (one of its watchers), caught there
/// by tcpdump: the UDP payload of the first IPv4 datagram from `from` to port 7474.
fn catch_heartbeat(c: &Cluster, from: usize, at: usize) -> Vec<u8> {
    let src = netns::node_ip(from);
    let cap = c
        .lan
        .node(at)
        .capture(&format!("udp dst port {PORT} and src host {src}"));
    let caught = cap.wait_until(Duration::from_secs(10), |f| !f.is_empty());
    let frames = cap.stop();
    assert!(caught, "no heartbeat from node-{from} reached node-{at}");
    let frame = &frames[0].bytes;
    // Ethernet (14), IPv4 (IHL words), UDP (8).
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    frame[14 + ihl + 8..].to_vec()
}

/// Sends `datagrams` from the client to every node's heartbeat port but `except`'s, `every`
/// apart, for `during`.
fn inject(c: &Cluster, except: usize, datagrams: Vec<Vec<u8>>, every: Duration, during: Duration) {
    let targets: Vec<SocketAddrV4> = (1..=3)
        .filter(|i| *i != except)
        .map(|i| SocketAddrV4::new(netns::node_ip(i), PORT))
        .collect();
    c.lan.client().ns_thread().run(move || {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).expect("socket");
        let end = Instant::now() + during;
        while Instant::now() < end {
            for d in &datagrams {
                for t in &targets {
                    let _ = s.send_to(d, t);
                }
            }
            std::thread::sleep(every);
        }
    });
}

#[test]
fn forged_and_replayed_heartbeats_change_nothing() {
    let Some(c) = cluster(ClusterSpec::default()) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    c.lan.add_vip_dnat(vip, 80);
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    c.wait_relaxed(3, Duration::from_secs(30));
    let others: Vec<usize> = (1..=3).filter(|i| *i != owner).collect();
    // With three speakers every one watches the other two.
    let recorded = catch_heartbeat(&c, owner, others[0]);
    // A forgery: the recording with its counter raised, so only the tag can give it away.
    let mut forged = recorded.clone();
    let counter_at = 17;
    forged[counter_at + 7] = forged[counter_at + 7].wrapping_add(100);
    let rejected = |c: &Cluster| -> f64 {
        others
            .iter()
            .map(|i| c.speaker_metric_sum(*i, "ferrolb_speaker_heartbeat_rejected_total"))
            .sum()
    };
    let before = rejected(&c);
    // Cut the owner off and keep its heartbeats "alive" with the recording and the forgery.
    let feed = {
        let datagrams = vec![recorded, forged];
        let c2: &Cluster = &c;
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                inject(
                    c2,
                    owner,
                    datagrams,
                    Duration::from_millis(50),
                    Duration::from_secs(6),
                )
            });
            c2.lan.cut_node(owner);
            let started = Instant::now();
            let moved = poll(Duration::from_secs(6), || {
                c2.announcer(vip).is_some_and(|n| n != owner)
            });
            let took = started.elapsed();
            let _ = h.join();
            (moved, took)
        })
    };
    let (moved, took) = feed;
    let after = rejected(&c);
    eprintln!(
        "replayed + forged heartbeats of the cut node: failover after {took:?}, {} rejections",
        after - before
    );
    assert!(
        moved && took <= Duration::from_secs(2),
        "the fakes kept a dead node alive: moved {moved} after {took:?}\n{}",
        c.speaker_logs()
    );
    assert!(after - before >= 10.0, "the fakes were counted as rejected");
    let m = c.speaker_metrics(others[0]);
    assert!(
        m.contains("reason=\"bad_mac\"")
            && (m.contains("reason=\"replayed\"") || m.contains("reason=\"old_epoch\"")),
        "rejections by reason:\n{m}"
    );
}

#[test]
fn a_frozen_speaker_is_replaced_and_one_owner_remains_when_it_thaws() {
    let Some(mut c) = cluster(ClusterSpec::default()) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    c.wait_relaxed(3, Duration::from_secs(30));
    c.speaker(owner).pause();
    let started = Instant::now();
    let moved = poll(Duration::from_secs(10), || {
        c.announcer(vip).is_some_and(|n| n != owner)
    });
    let took = started.elapsed();
    eprintln!("SIGSTOP of node-{owner}'s speaker: another node answers after {took:?}");
    assert!(
        moved && took <= Duration::from_secs(2),
        "moved {moved} after {took:?}\n{}",
        c.speaker_logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let sampler =
        c.lan
            .client()
            .arp_sampler(vip, Duration::from_millis(100), Duration::from_millis(100));
    c.speaker(owner).resume();
    std::thread::sleep(Duration::from_secs(6));
    let samples = sampler.stop();
    // The longest run of samples in which two MACs answered.
    let (mut longest, mut run) = (0usize, 0usize);
    for s in &samples {
        run = if s.macs.len() > 1 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    eprintln!("after SIGCONT: two MACs for at most {longest} consecutive 100 ms samples");
    assert!(
        longest <= 4,
        "two owners for {longest} samples after the thaw (GARP interval 300 ms)\n{}",
        c.speaker_logs()
    );
    assert!(
        c.wait_one_mac(vip, Duration::from_secs(10)),
        "exactly one MAC answers after the thaw"
    );
}

/// Gives node `i`'s IPv4 LAN addresses a /32 prefix (with on-link routes for their /24s, so the
/// API relay stays reachable): the node then shares no IPv4 subnet with any peer, and its
/// speaker can only heartbeat over the IPv6 subnet, like an IPv6-only node.
fn ipv4_alone(c: &Cluster, i: usize) {
    let node = c.lan.node(i);
    let run = |args: &[&str]| {
        let out = node
            .exec("ip", args, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("ip {args:?} in node-{i}: {e}"));
        assert!(out.status.success(), "ip {args:?} in node-{i}: {out:?}");
        out.stdout.clone()
    };
    let listing = run(&["-4", "-o", "addr", "show", "dev", node.ifname()]);
    // One line per address: `2: eth0    inet 198.51.100.11/24 brd ... scope global eth0`.
    let addrs: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_owned)
        })
        .collect();
    assert!(!addrs.is_empty(), "node-{i} has IPv4 addresses: {listing}");
    for cidr in addrs {
        let Some((ip, len)) = cidr.split_once('/') else {
            continue;
        };
        if len == "32" {
            continue;
        }
        let net: ipnetwork::Ipv4Network = cidr.parse().expect("ip prints CIDRs");
        let route = format!("{}/{}", net.network(), net.prefix());
        run(&["addr", "del", &cidr, "dev", node.ifname()]);
        run(&["addr", "add", &format!("{ip}/32"), "dev", node.ifname()]);
        run(&["route", "add", &route, "dev", node.ifname(), "src", ip]);
    }
}

/// IPv6-only heartbeats: no node shares an IPv4 subnet with another, so every heartbeat goes
/// over the IPv6 LAN. A node cut off the LAN hands its IPv6 Service IP over in about a second,
/// far sooner than the relaxed 18 s lease, judged by `curl -6` from the client.
#[test]
fn ipv6_only_heartbeats_fail_an_ipv6_ip_over_in_about_a_second() {
    if netns::require_ipv6().is_err() {
        return;
    }
    let Some(mut c) = cluster(ClusterSpec {
        ipv6: true,
        ..ClusterSpec::default()
    }) else {
        return;
    };
    for i in 1..=3 {
        ipv4_alone(&c, i);
    }
    // Each node's watchers are the two others, on the IPv6 ring.
    assert!(
        poll(Duration::from_secs(20), || (1..=3).all(|i| gauge(
            &c,
            i,
            "ferrolb_speaker_heartbeat_watchers"
        ) == Some(2.0))),
        "every speaker has two watchers over IPv6\n{}",
        c.speaker_logs()
    );
    let v6 = c
        .lan
        .node(1)
        .capture(&format!("ip6 and udp dst port {PORT}"));
    assert!(
        v6.wait_until(Duration::from_secs(5), |f| f.len() >= 4),
        "heartbeats arrive at node-1 over IPv6"
    );
    drop(v6);
    let v4 = c
        .lan
        .node(1)
        .capture(&format!("ip and udp dst port {PORT}"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(v4.stop().is_empty(), "no heartbeat goes over IPv4");
    c.wait_relaxed(3, Duration::from_secs(30));
    let (vip, f) = c.measure_failover6(
        Duration::from_millis(20),
        Duration::from_secs(30),
        |c, owner| c.lan.cut_node(owner),
    );
    eprintln!(
        "IPv6-only heartbeats, node-{} cut off -> node-{} for {vip}: switch {:?}, longest curl -6 gap {:?}",
        f.old, f.new, f.switch, f.gap
    );
    assert!(
        f.gap <= Duration::from_millis(2000),
        "gap {:?}: the failure was not detected by IPv6 heartbeats\n{}",
        f.gap,
        c.speaker_logs()
    );
}

/// Six speakers: each is watched by only three, yet when a node is cut off every other speaker
/// learns it is out (its watchers tell the rest), and each of its IPs moves in about a second
/// whichever node wins it next, watcher or not.
#[test]
fn with_six_speakers_the_watchers_suspicion_reaches_every_node() {
    let Some(c) = cluster(ClusterSpec {
        nodes: 6,
        ..ClusterSpec::default()
    }) else {
        return;
    };
    let vips: Vec<Ipv4Addr> = (0..8)
        .map(|n| c.create_service(&format!("s{n}"), json!({})))
        .collect();
    let owners: Vec<usize> = vips
        .iter()
        .map(|v| {
            c.wait_announcer(*v, Duration::from_secs(15), |_| true)
                .expect("announced")
        })
        .collect();
    c.wait_relaxed(6, Duration::from_secs(60));
    for i in 1..=6 {
        assert_eq!(
            gauge(&c, i, "ferrolb_speaker_heartbeat_watchers"),
            Some(3.0),
            "node-{i} has three watchers, not five"
        );
    }
    let x = owners[0];
    let theirs: Vec<Ipv4Addr> = vips
        .iter()
        .zip(&owners)
        .filter(|(_, o)| **o == x)
        .map(|(v, _)| *v)
        .collect();
    let others: Vec<usize> = (1..=6).filter(|i| *i != x).collect();
    let started = Instant::now();
    c.lan.cut_node(x);
    let moved = poll(Duration::from_secs(5), || {
        theirs
            .iter()
            .all(|v| c.announcer(*v).is_some_and(|n| n != x))
    });
    let took = started.elapsed();
    eprintln!(
        "six speakers, node-{x} cut off: its {} IPs moved after {took:?}",
        theirs.len()
    );
    assert!(
        moved && took <= Duration::from_secs(2),
        "moved {moved} after {took:?}: the suspicion did not reach the next winners\n{}",
        c.speaker_logs()
    );
    assert!(
        poll(Duration::from_secs(5), || others.iter().all(|i| gauge(
            &c,
            *i,
            "ferrolb_speaker_heartbeat_peers_suspected"
        ) == Some(
            1.0
        ))),
        "all five remaining speakers agree node-{x} is out"
    );
    let told: f64 = others
        .iter()
        .map(|i| c.speaker_metric_sum(*i, "ferrolb_speaker_heartbeat_messages_total"))
        .sum();
    assert!(
        told >= 2.0,
        "watchers sent and peers accepted suspicions ({told})"
    );
}
