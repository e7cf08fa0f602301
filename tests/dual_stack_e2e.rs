//! IPv6 and dual-stack Services end to end: real `ferrolb speaker` processes (one per node
//! namespace) against kube-sim and the real controller, on a namespace LAN with IPv4 and IPv6
//! documentation addresses. Judged by independent tools: `ndisc6` (who answers Neighbor
//! Discovery for the VIP), `arping` (IPv4), `curl` through the stand-in kube-proxy's `ip`/`ip6`
//! DNAT rules (whose pod the traffic reaches), `tcpdump` (the unsolicited advertisements on
//! the wire), the client kernel's neighbour cache and `ip -6 maddr`.
//!
//! Needs root, ip, nft, arping, curl, tcpdump and ndisc6; skips loudly without them, except
//! under `CI=true` or `FERROLB_E2E=1`, where a missing prerequisite fails.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use cluster::{metric, poll, Cluster, ClusterSpec};
use ferrolb_core::election::winner;
use netns::{Frame, MacAddr};
use serde_json::json;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn dual_stack_cluster(garp: &str) -> Option<Cluster> {
    netns::require_ipv6().ok()?;
    Some(Cluster::start(ClusterSpec {
        ipv6: true,
        garp: garp.into(),
        ..ClusterSpec::default()
    }))
}

fn default_cluster() -> Option<Cluster> {
    dual_stack_cluster(&ClusterSpec::default().garp)
}

/// The node the design's election must pick for `vip` when every node is a live candidate.
fn expected_winner(vip: IpAddr, nodes: &[usize]) -> usize {
    let names: Vec<String> = nodes.iter().map(|i| format!("node-{i}")).collect();
    let w = winner(vip, names.iter().map(String::as_str)).expect("non-empty candidates");
    w.trim_start_matches("node-").parse().expect("node-N")
}

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1), computed here rather than
/// with the product's code.
fn solicited_node_group(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Every MAC that advertises `ip` to one `ndisc6` solicitation from `host` within `window`
/// (`-m`: keep listening after the first answer).
fn ndisc6_macs(host: &netns::Host, ip: Ipv6Addr, window: Duration) -> Vec<MacAddr> {
    let w = window.as_millis().to_string();
    let out = host
        .exec(
            "ndisc6",
            &[
                "-m",
                "-n",
                "-r",
                "1",
                "-w",
                &w,
                &ip.to_string(),
                netns::IFNAME,
            ],
            window + Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("ndisc6 in {}: {e}", host.ns()));
    let mut macs = Vec::new();
    for line in out.stdout.lines() {
        if let Some(m) = line.split("Target link-layer address:").nth(1) {
            if let Ok(mac) = m.trim().to_ascii_lowercase().parse::<MacAddr>() {
                if !macs.contains(&mac) {
                    macs.push(mac);
                }
            }
        }
    }
    macs
}

/// A Neighbor Advertisement as `tcpdump` captured it, decoded here byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Advert {
    eth_src: MacAddr,
    ip_dst: Ipv6Addr,
    target: Ipv6Addr,
    solicited: bool,
    override_flag: bool,
}

fn advert(f: &Frame) -> Option<Advert> {
    let b = &f.bytes;
    // Ethernet (14) + IPv6 (40) + ICMPv6 NA header (24).
    if b.len() < 78 || b[12..14] != [0x86, 0xdd] || b[20] != 58 || b[54] != 136 {
        return None;
    }
    let ip = |s: usize| -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[s..s + 16]);
        Ipv6Addr::from(o)
    };
    let mut src = [0u8; 6];
    src.copy_from_slice(&b[6..12]);
    Some(Advert {
        eth_src: MacAddr(src),
        ip_dst: ip(38),
        target: ip(62),
        solicited: b[58] & 0x40 != 0,
        override_flag: b[58] & 0x20 != 0,
    })
}

/// The unsolicited advertisements for `vip` in `frames` (to all-nodes, S=0).
fn unsolicited_for(frames: &[Frame], vip: Ipv6Addr) -> Vec<Advert> {
    frames
        .iter()
        .filter_map(advert)
        .filter(|a| a.target == vip && a.ip_dst == ALL_NODES && !a.solicited)
        .collect()
}

/// The speaker lease's `ferrolb.io/subnets` annotation of node `i`.
fn lease_subnets(c: &Cluster, i: usize) -> String {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(c.client.clone(), "ferrolb-system");
    c.rt.block_on(leases.get(&format!("ferrolb-speaker-node-{i}")))
        .ok()
        .and_then(|l| l.metadata.annotations?.get("ferrolb.io/subnets").cloned())
        .unwrap_or_default()
}

#[test]
fn dual_stack_service_is_served_over_both_families_by_their_winners() {
    let Some(c) = default_cluster() else {
        return;
    };
    let adverts = c.lan.client().capture("icmp6 and ip6[40] == 136");
    let (v4, v6) = c.create_dual_stack_service("web");
    assert!(
        v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8,
        "from the IPv6 pool: {v6}"
    );
    c.lan.add_vip_dnat(v4, 80);
    c.lan.add_vip6_dnat(v6, 80);

    let want4 = expected_winner(v4.into(), &[1, 2, 3]);
    let want6 = expected_winner(v6.into(), &[1, 2, 3]);
    assert_eq!(
        c.wait_announcer(v4, Duration::from_secs(10), |_| true),
        Some(want4),
        "arping: the IPv4 winner answers for {v4}\n{}",
        c.speaker_logs()
    );
    assert_eq!(
        c.wait_announcer6(v6, Duration::from_secs(10), |_| true),
        Some(want6),
        "ndisc6: the IPv6 winner answers for {v6}\n{}",
        c.speaker_logs()
    );
    assert_eq!(
        ndisc6_macs(c.lan.client(), v6, Duration::from_millis(500)),
        vec![c.lan.node(want6).mac()],
        "exactly one MAC answers the solicitation"
    );
    assert_eq!(
        c.curl(v4, 80),
        Ok(format!("node-{want4}")),
        "curl over IPv4"
    );
    assert_eq!(
        c.curl6(v6, 80),
        Ok(format!("node-{want6}")),
        "curl -6 reaches the IPv6 winner's pod"
    );
    assert_eq!(
        c.lan.client().neighbour6(v6),
        Some(c.lan.node(want6).mac()),
        "the client's kernel resolved the VIP to the winner (ip -6 neigh)"
    );

    // Every lease lists the IPv6 subnet, never a link-local one.
    for i in 1..=3 {
        let subnets = lease_subnets(&c, i);
        assert!(
            subnets.contains("203.0.113.0/24") && subnets.contains("2001:db8::/64"),
            "node-{i} lease subnets: {subnets}"
        );
        assert!(!subnets.contains("fe80"), "node-{i}: {subnets}");
    }

    // Only the owner joined the VIP's solicited-node group.
    let group = solicited_node_group(v6);
    for i in 1..=3 {
        let joined = c.lan.node(i).ipv6_groups().contains(&group);
        assert_eq!(joined, i == want6, "node-{i} holds {group}: {joined}");
    }

    // l2.garp (burst 3, 300 ms) drives the unsolicited advertisements: three, override set.
    let mac6 = c.lan.node(want6).mac();
    assert!(
        adverts.wait_until(Duration::from_secs(5), |f| unsolicited_for(f, v6).len()
            >= 3),
        "three unsolicited advertisements for {v6}:\n{}",
        adverts.decoded()
    );
    std::thread::sleep(Duration::from_millis(700)); // nothing more may follow the burst
    let burst = unsolicited_for(&adverts.stop(), v6);
    assert_eq!(burst.len(), 3, "{burst:#?}");
    for a in &burst {
        assert_eq!(a.eth_src, mac6, "sent by the owner");
        assert!(a.override_flag, "override set: {a:?}");
    }

    let m = c.speaker_metrics(want6);
    assert_eq!(
        metric(
            &m,
            &format!("ferrolb_speaker_unsolicited_na_total{{ip=\"{v6}\"}}")
        ),
        Some(3.0),
        "{m}"
    );
    assert!(
        metric(&m, "ferrolb_speaker_takeovers_total{family=\"ipv6\"}") >= Some(1.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            &format!("ferrolb_speaker_ndp_advertisements_total{{ip=\"{v6}\"}}")
        ) >= Some(1.0),
        "solicited advertisements counted: {m}"
    );
    let events = c.service_events("web");
    for (ip, node) in [(IpAddr::from(v4), want4), (IpAddr::from(v6), want6)] {
        let note = format!("announcing {ip} from node node-{node} on eth0");
        assert!(
            events.iter().any(|(r, m)| r == "Announcing" && *m == note),
            "{note}: {events:?}"
        );
    }
}

#[test]
fn ipv6_hard_failure_node_cut_off_the_lan_moves_the_ip() {
    let Some(mut c) = default_cluster() else {
        return;
    };
    let adverts = c.lan.client().capture("icmp6 and ip6[40] == 136");
    let (vip, f) = c.measure_failover6(
        Duration::from_millis(50),
        Duration::from_secs(15),
        |c, owner| c.lan.cut_node(owner),
    );
    let old = f.old;
    // The new owner announced the takeover with unsolicited advertisements, override set.
    let new_mac = c.lan.node(f.new).mac();
    let from_new = |frames: &[Frame]| {
        unsolicited_for(frames, vip)
            .iter()
            .filter(|a| a.eth_src == new_mac && a.override_flag)
            .count()
    };
    assert!(
        adverts.wait_until(Duration::from_secs(5), |fr| from_new(fr) >= 3),
        "three unsolicited advertisements from node-{} after the takeover:\n{}",
        f.new,
        adverts.decoded()
    );
    drop(adverts);
    eprintln!(
        "IPv6 hard failure (node-{old} cut off) -> node-{}: switch {:?}, longest curl gap {:?}",
        f.new, f.switch, f.gap
    );
    assert!(
        f.gap < Duration::from_secs(10),
        "gap {:?} is far beyond the 3 s lease",
        f.gap
    );
    assert_eq!(
        c.lan.client().neighbour6(vip),
        Some(c.lan.node(f.new).mac()),
        "the client's neighbour cache follows the new owner"
    );
    // Back on the LAN, the returning node hears the new owner and one MAC answers again.
    c.lan.restore_node(old);
    let mut seen = Vec::new();
    let single = poll(Duration::from_secs(10), || {
        seen = ndisc6_macs(c.lan.client(), vip, Duration::from_millis(500));
        seen.len() == 1
    });
    assert!(
        single,
        "after node-{old} returns exactly one MAC answers, not {seen:?}\n{}",
        c.speaker_logs()
    );
}

#[test]
fn ipv6_graceful_handover_on_sigterm_is_fast() {
    let Some(mut c) = default_cluster() else {
        return;
    };
    let adverts = c.lan.client().capture("icmp6 and ip6[40] == 136");
    let (vip, f) = c.measure_failover6(
        Duration::from_millis(50),
        Duration::from_secs(15),
        |c, owner| c.speaker(owner).term(),
    );
    let new_mac = c.lan.node(f.new).mac();
    assert!(
        adverts.wait_until(Duration::from_secs(5), |fr| unsolicited_for(fr, vip)
            .iter()
            .any(|a| a.eth_src == new_mac && a.override_flag)),
        "the new owner node-{} announced the takeover:\n{}",
        f.new,
        adverts.decoded()
    );
    drop(adverts);
    eprintln!(
        "IPv6 graceful handover (SIGTERM node-{}) -> node-{}: switch {:?}, longest curl gap {:?}",
        f.old, f.new, f.switch, f.gap
    );
    assert!(
        f.switch < Duration::from_secs(2),
        "graceful handover must not wait for lease expiry: {:?}",
        f.switch
    );
    // The stopped speaker left the group: an MLD-snooping switch stops sending it solicitations.
    let group = solicited_node_group(vip);
    assert!(
        poll(Duration::from_secs(5), || !c
            .lan
            .node(f.old)
            .ipv6_groups()
            .contains(&group)),
        "node-{} still holds {group}",
        f.old
    );
    assert!(c.lan.node(f.new).ipv6_groups().contains(&group));
    assert_eq!(
        c.lan.client().neighbour6(vip),
        Some(c.lan.node(f.new).mac())
    );
}

#[test]
fn ipv6_split_brain_ends_on_the_wire() {
    // The default GARP interval (1.1 s): two owners may coexist for about that long.
    let Some(c) = dual_stack_cluster("{ burst: 5, interval: 1100ms, refresh: 0s }") else {
        return;
    };
    let vip = c.create_service6("web6", json!({}));
    let owner = c
        .wait_announcer6(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    let owner_mac = c.lan.node(owner).mac();
    // The owner can no longer reach the API: its peers see its lease expire and take over;
    // it is degraded and would keep answering but for the takeover's advertisements.
    c.lan.block_api(owner);
    let cut_at = Instant::now();
    let mut new_seen_at = None;
    let mut single_at = None;
    let mut samples = Vec::new();
    let deadline = cut_at + Duration::from_secs(20);
    while Instant::now() < deadline && single_at.is_none() {
        let macs = ndisc6_macs(c.lan.client(), vip, Duration::from_millis(150));
        let now = Instant::now();
        if new_seen_at.is_none() && macs.iter().any(|m| *m != owner_mac) {
            new_seen_at = Some(now);
        }
        if new_seen_at.is_some() && macs.len() == 1 && macs[0] != owner_mac {
            single_at = Some(now);
        }
        samples.push((now - cut_at, macs));
    }
    let (Some(new_at), Some(single)) = (new_seen_at, single_at) else {
        panic!(
            "no clean takeover from the partitioned node-{owner}: {samples:?}\n{}",
            c.speaker_logs()
        );
    };
    let overlap = single.saturating_duration_since(new_at);
    eprintln!(
        "IPv6 split brain: new owner after {:?}, old owner silent {:?} later",
        new_at - cut_at,
        overlap
    );
    assert!(
        overlap <= Duration::from_millis(1100 + 500),
        "two owners for {overlap:?}, more than about one GARP interval: {samples:?}"
    );
    let isolated = c.speaker_metrics(owner);
    assert_eq!(
        metric(&isolated, "ferrolb_speaker_degraded"),
        Some(1.0),
        "the isolated speaker knows it is degraded"
    );
    assert_eq!(
        metric(
            &isolated,
            "ferrolb_speaker_withdrawals_total{family=\"ipv6\"}"
        ),
        Some(1.0),
        "it stopped because of what it heard on the wire (it cannot see the API): {isolated}"
    );
    // And it stays stopped.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ndisc6_macs(c.lan.client(), vip, Duration::from_millis(500)).contains(&owner_mac),
        "the degraded node keeps quiet"
    );
}

#[test]
fn a_foreign_host_already_using_the_ipv6_address_is_not_fought() {
    let Some(c) = default_cluster() else {
        return;
    };
    // The client (no speaker) already has the address the Service will ask for, and defends
    // it like any host: the winner's DAD probe is answered by the client's kernel.
    let taken: Ipv6Addr = "2001:db8::1ab".parse().expect("literal");
    c.lan
        .client()
        .exec(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{taken}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
            Duration::from_secs(5),
        )
        .expect("ip addr add");
    let adverts = c.lan.client().capture("icmp6 and ip6[40] == 136");
    let vip = c.create_service6(
        "taken",
        json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": taken.to_string()}}}),
    );
    assert_eq!(vip, taken);
    let winner = expected_winner(vip.into(), &[1, 2, 3]);
    let held = poll(Duration::from_secs(10), || {
        metric(
            &c.speaker_metrics(winner),
            &format!("ferrolb_speaker_foreign_claims_total{{ip=\"{vip}\"}}"),
        ) >= Some(1.0)
    });
    assert!(
        held,
        "the winner node-{winner} saw the foreign answer to its probe\n{}",
        c.speaker_logs()
    );
    let warned = poll(Duration::from_secs(5), || {
        c.service_events("taken")
            .iter()
            .any(|(r, m)| r == "IPInUseByOtherHost" && m.contains(&vip.to_string()))
    });
    assert!(warned, "Warning Event: {:?}", c.service_events("taken"));
    // Asked from another node, only the client's MAC answers; no node ever advertised it.
    let other = if winner == 1 { 2 } else { 1 };
    assert_eq!(
        ndisc6_macs(c.lan.node(other), vip, Duration::from_millis(500)),
        vec![netns::CLIENT_MAC]
    );
    std::thread::sleep(Duration::from_millis(500));
    let node_macs: Vec<MacAddr> = (1..=3).map(|i| c.lan.node(i).mac()).collect();
    let from_nodes: Vec<Advert> = adverts
        .stop()
        .iter()
        .filter_map(advert)
        .filter(|a| a.target == vip && node_macs.contains(&a.eth_src))
        .collect();
    assert!(
        from_nodes.is_empty(),
        "no speaker advertised {vip}: {from_nodes:?}"
    );
    assert!(c
        .service_events("taken")
        .iter()
        .all(|(r, _)| r != "Announcing"));
}

#[test]
fn a_foreign_dad_probe_for_an_announced_ipv6_address_is_defended_not_yielded_to() {
    let Some(c) = default_cluster() else {
        return;
    };
    let vip = c.create_service6("web6", json!({}));
    c.lan.add_vip6_dnat(vip, 80);
    let owner = c
        .wait_announcer6(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    // Once the takeover burst is over (an unsolicited advertisement would fail the client's
    // DAD by itself), the client is misconfigured with the Service IP and runs duplicate
    // address detection (no `nodad`): the owner must defend the address, and keep announcing.
    let burst_done = poll(Duration::from_secs(5), || {
        metric(
            &c.speaker_metrics(owner),
            &format!("ferrolb_speaker_unsolicited_na_total{{ip=\"{vip}\"}}"),
        ) == Some(3.0)
    });
    assert!(burst_done, "the l2.garp burst of 3 went out");
    c.lan
        .client()
        .exec(
            "ip",
            &["-6", "addr", "add", &format!("{vip}/64"), "dev", "eth0"],
            Duration::from_secs(5),
        )
        .expect("ip addr add");
    let dad_failed = poll(Duration::from_secs(10), || {
        c.lan
            .client()
            .exec(
                "ip",
                &["-6", "addr", "show", "dev", "eth0", "dadfailed"],
                Duration::from_secs(5),
            )
            .is_ok_and(|o| o.stdout.contains(&vip.to_string()))
    });
    assert!(
        dad_failed,
        "the client's kernel saw the defence and gave the address up\n{}",
        c.speaker_logs()
    );
    let m = c.speaker_metrics(owner);
    assert!(
        metric(
            &m,
            &format!("ferrolb_speaker_ndp_dad_probes_total{{ip=\"{vip}\"}}")
        ) >= Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            &format!("ferrolb_speaker_foreign_claims_total{{ip=\"{vip}\"}}")
        ),
        None,
        "a defended probe is no reason to yield: {m}"
    );
    let warned = poll(Duration::from_secs(5), || {
        c.service_events("web6").iter().any(|(r, m)| {
            r == "IPProbedByOtherHost"
                && m.contains(&vip.to_string())
                && m.contains(&netns::CLIENT_MAC.to_string())
        })
    });
    assert!(
        warned,
        "Warning Event naming the prober: {:?}",
        c.service_events("web6")
    );
    // Remove the failed address so the client can talk to the VIP again.
    c.lan
        .client()
        .exec(
            "ip",
            &["-6", "addr", "del", &format!("{vip}/64"), "dev", "eth0"],
            Duration::from_secs(5),
        )
        .expect("ip addr del");
    assert_eq!(
        c.wait_announcer6(vip, Duration::from_secs(5), |_| true),
        Some(owner),
        "still announced by the owner"
    );
    assert_eq!(c.curl6(vip, 80), Ok(format!("node-{owner}")));
}

/// `examples/dual-stack.yaml`, applied with `kubectl` as a user would, gets one address per
/// family, and both are reachable from the LAN.
#[test]
fn the_dual_stack_example_works_end_to_end() {
    if netns::require_ipv6().is_err()
        || ferrolb_testkit::require("dual-stack example", &[("kubectl", "kubectl")]).is_err()
    {
        return;
    }
    let Some(c) = default_cluster() else {
        return;
    };
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dual-stack.yaml");
    let kubeconfig = c.server.kubeconfig_path().to_string_lossy().to_string();
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig", &kubeconfig, "apply", "-f", example])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f {example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ips = Vec::new();
    let both = poll(Duration::from_secs(15), || {
        ips = c.ingress_ips("web-dual");
        ips.iter().any(IpAddr::is_ipv4) && ips.iter().any(IpAddr::is_ipv6)
    });
    assert!(both, "web-dual got {ips:?}\n{}", c.controller.log());
    for ip in &ips {
        let owner = match ip {
            IpAddr::V4(v4) => {
                c.lan.add_vip_dnat(*v4, 80);
                c.wait_announcer(*v4, Duration::from_secs(10), |_| true)
            }
            IpAddr::V6(v6) => {
                c.lan.add_vip6_dnat(*v6, 80);
                c.wait_announcer6(*v6, Duration::from_secs(10), |_| true)
            }
        }
        .unwrap_or_else(|| panic!("nobody answers for {ip}\n{}", c.speaker_logs()));
        assert_eq!(owner, expected_winner(*ip, &[1, 2, 3]), "{ip}");
        let body = match ip {
            IpAddr::V4(v4) => c.curl(*v4, 80),
            IpAddr::V6(v6) => c.curl6(*v6, 80),
        };
        assert_eq!(body, Ok(format!("node-{owner}")), "curl through {ip}");
    }
}
