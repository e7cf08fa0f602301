//! `deploy/grafana/ferrolb.json` cannot rot: every metric a panel queries must be exported by
//! the running daemons. The controller is scraped against kube-sim; the speakers are scraped
//! in a real dual-stack namespace LAN (ferrolb_testkit::cluster), after traffic to an announced IP, so the
//! per-IP families have samples too: an IPv6 VIP answered to `ndisc6` (NDP families), a forged
//! heartbeat (rejections by reason) and a BGP peer the speakers dial that refuses the
//! connection (per-peer session families).

use ferrolb_testkit::api_cluster;
use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ferrolb_core::heartbeat::{encode, Heartbeat, HeartbeatKey};
use ferrolb_testkit::metrics::exported_names;
use serde_json::{json, Value};

fn dashboard() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/ferrolb.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL expression in the dashboard's panels.
fn expressions(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(String::from))
        .collect()
}

/// The FerroLB metric names an expression uses (PromQL here is ASCII).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"ferrolb_") && (i == 0 || !word(b[i - 1])) {
            let len = b[i..].iter().take_while(|c| word(**c)).count();
            out.insert(expr[i..i + len].to_string());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_dashboard_is_well_formed_and_covers_what_operators_watch() {
    let d = dashboard();
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<i64> = panels.iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            !p["targets"].as_array().is_none_or(Vec::is_empty),
            "panel {} queries nothing",
            p["title"]
        );
        assert_eq!(
            p["datasource"]["uid"],
            json!("${datasource}"),
            "{}",
            p["title"]
        );
    }
    let names: BTreeSet<String> = expressions(&d)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    // The areas the issue asks for, each with at least one metric.
    for needed in [
        "ferrolb_allocations_total",
        "ferrolb_allocator_addresses_in_use",
        "ferrolb_speaker_announcing",
        "ferrolb_speaker_takeovers_total",
        "ferrolb_speaker_conflicts_total",
        "ferrolb_speaker_degraded",
        "ferrolb_speaker_arp_requests_total",
    ] {
        assert!(names.contains(needed), "no panel shows {needed}");
    }
    assert_eq!(
        metric_names("sum(rate(ferrolb_a_total[5m])) / xferrolb_b + ferrolb_c"),
        BTreeSet::from(["ferrolb_a_total".to_string(), "ferrolb_c".to_string()])
    );
}

#[test]
fn every_metric_a_panel_queries_is_exported_by_the_daemons() {
    let wanted: BTreeSet<String> = expressions(&dashboard())
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();

    // The controller, with a pool and an allocated Service.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let controller_text = rt.block_on(async {
        let c = api_cluster::Cluster::start().await;
        c.put_config("pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.13]\n")
            .await;
        let mut ctl = c.controller(&[]);
        c.create_lb("default", "web", json!({})).await;
        c.wait_ingress("default", "web").await;
        // A failure, so the per-reason failure family has a sample.
        c.create_lb(
            "default",
            "stuck",
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "192.0.2.99"}}}),
        )
        .await;
        c.wait_event("default", "stuck", "AllocationFailed", "192.0.2.99")
            .await;
        ctl.metrics_text().await
    });
    let mut have = exported_names(&controller_text);

    // The speakers, in a real LAN, after a client talked to an announced IP.
    if netns::require_ipv6().is_err() {
        let speaker_wanted: Vec<&String> = wanted
            .iter()
            .filter(|n| n.starts_with("ferrolb_speaker_"))
            .collect();
        eprintln!(
            "\n*** SKIPPED (speaker half): {} speaker metrics were NOT checked: {speaker_wanted:?} ***\n",
            speaker_wanted.len()
        );
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|n| !n.starts_with("ferrolb_speaker_") && !have.contains(*n))
            .collect();
        assert!(
            missing.is_empty(),
            "controller metrics the dashboard queries but nobody exports: {missing:?}"
        );
        return;
    }
    // The client's address as a BGP peer: nothing listens on 179 there, so every speaker's
    // dial is refused (speakers dial, never listen) and the per-peer families get samples.
    let bgp = format!(
        "bgp:\n  myASN: 64512\n  peers:\n    - {{name: tor, address: {}, asn: 64513, holdTime: 9s}}\n",
        netns::CLIENT_IP
    );
    let lan = cluster::Cluster::start(cluster::ClusterSpec {
        nodes: 2,
        ipv6: true,
        extra_config: bgp,
        ..cluster::ClusterSpec::default()
    });
    let vip = lan.create_service("web", json!({}));
    lan.lan.add_vip_dnat(vip, 80);
    let node = lan
        .wait_announcer(vip, Duration::from_secs(20), |_| true)
        .expect("some node announces the VIP");
    assert!(
        cluster::poll(Duration::from_secs(20), || lan.curl(vip, 80).is_ok()),
        "the VIP answers through node {node}"
    );
    // An IPv6 VIP: its winner sends unsolicited advertisements and answers ndisc6's solicitation.
    let vip6 = lan.create_service6("web6", json!({}));
    let node6 = lan
        .wait_announcer6(vip6, Duration::from_secs(20), |_| true)
        .unwrap_or_else(|| panic!("nobody answers NDP for {vip6}\n{}", lan.speaker_logs()));
    assert!(
        cluster::poll(Duration::from_secs(10), || {
            lan.speaker_metric_sum(node6, "ferrolb_speaker_unsolicited_na_total") > 0.0
        }),
        "node {node6} won {vip6} but counts no unsolicited advertisement\n{}",
        lan.speaker_metrics(node6)
    );
    // ndisc6 may have taken an unsolicited advertisement of the takeover burst for its answer,
    // so keep soliciting until the owner counts one it answered.
    assert!(
        cluster::poll(Duration::from_secs(10), || {
            lan.announcer6(vip6) == Some(node6)
                && lan.speaker_metric_sum(node6, "ferrolb_speaker_ndp_solicitations_total") > 0.0
        }),
        "node {node6} answers NDP for {vip6} but counts no solicitation\n{}",
        lan.speaker_metrics(node6)
    );
    // Every speaker dialled the peer and was refused.
    for i in 1..=2 {
        assert!(
            cluster::poll(Duration::from_secs(15), || {
                lan.speaker_metric_sum(i, "ferrolb_speaker_bgp_session_resets_total") > 0.0
            }),
            "node {i} counts no reset of its refused BGP session\n{}",
            lan.speaker_metrics(i)
        );
        let m = lan.speaker_metrics(i);
        assert!(
            m.contains("ferrolb_speaker_bgp_session_up{peer=\"tor\"} 0"),
            "node {i}: a refused session is not up\n{m}"
        );
    }
    // A heartbeat in node 1's name signed with a key that is not the cluster's.
    let forged = forged_heartbeat("node-1");
    let rejected = |i: usize| lan.speaker_metric_sum(i, "ferrolb_speaker_heartbeat_rejected_total");
    let mut last_sent: Option<Instant> = None;
    assert!(
        cluster::poll(Duration::from_secs(10), || {
            if last_sent.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                send_heartbeat(&lan, forged.clone());
                last_sent = Some(Instant::now());
            }
            rejected(1) + rejected(2) > 0.0
        }),
        "no speaker rejected a heartbeat signed with the wrong key\n{}",
        lan.speaker_logs()
    );
    assert!(
        (1..=2).any(|i| lan.speaker_metrics(i).contains("reason=\"bad_mac\"")),
        "the forgery was rejected, but not for its tag\n{}\n{}",
        lan.speaker_metrics(1),
        lan.speaker_metrics(2)
    );
    // While announcing (the per-announcement gauge is gone once the owner yields below).
    for i in 1..=2 {
        have.extend(exported_names(&lan.speaker_metrics(i)));
    }
    // The other node's MAC keeps claiming the VIP (as a split brain would look on the wire):
    // once that outlasts a lease duration it is no handover, and the owner counts a conflict
    // and defends the address. Then a MAC no speaker has claims it: a foreign claim, which the
    // owner yields to.
    let other = if node == 1 { 2 } else { 1 };
    let mut inj = lan.lan.client().injector("eth0");
    let claim = |inj: &mut netns::inject::Injector, mac: netns::MacAddr| {
        inj.send(&netns::inject::RawArp::gratuitous(mac, vip).padded())
            .expect("send a gratuitous ARP");
    };
    let peer_mac = lan.lan.node(other).mac();
    let mut last_claim: Option<Instant> = None;
    assert!(
        cluster::poll(Duration::from_secs(15), || {
            if last_claim.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                claim(&mut inj, peer_mac);
                last_claim = Some(Instant::now());
            }
            lan.speaker_metric_sum(node, "ferrolb_speaker_conflicts_total") > 0.0
        }),
        "the owner did not count a peer's claim as a conflict\n{}",
        lan.speaker_logs()
    );
    claim(&mut inj, netns::MacAddr([0x02, 0xfe, 0, 0, 0x0a, 0x63]));
    assert!(
        cluster::poll(Duration::from_secs(10), || {
            lan.speaker_metric_sum(node, "ferrolb_speaker_foreign_claims_total") > 0.0
        }),
        "the owner did not count a foreign claim\n{}",
        lan.speaker_logs()
    );
    for i in 1..=2 {
        have.extend(exported_names(&lan.speaker_metrics(i)));
    }
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no daemon exports: {missing:?}"
    );
}

/// The speakers' heartbeat port (design.md: `--heartbeat-port`, default 7474).
const HEARTBEAT_PORT: u16 = 7474;

/// A well-formed heartbeat claiming to come from `node`, tagged with a key the cluster does
/// not use ([`cluster::E2E_HEARTBEAT_KEY`] is the real one).
fn forged_heartbeat(node: &str) -> Vec<u8> {
    let wrong_key = "not-the-cluster-heartbeat-key-0123456789";
    assert_ne!(wrong_key, cluster::E2E_HEARTBEAT_KEY);
    let wrong = HeartbeatKey::new(wrong_key.as_bytes()).expect("key");
    let hb = Heartbeat {
        node: node.to_string(),
        epoch: u64::MAX / 2,
        counter: 1,
        interval: Duration::from_millis(100),
        misses: 3,
    };
    encode(&hb, &wrong).expect("encode the forgery")
}

/// Sends `datagram` once from the client to the heartbeat port of nodes 1 and 2 (heartbeats
/// are unicast to each node's address).
fn send_heartbeat(lan: &cluster::Cluster, datagram: Vec<u8>) {
    lan.lan.client().ns_thread().run(move || {
        let s =
            std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).expect("socket");
        for i in 1..=2 {
            let dest = SocketAddrV4::new(netns::node_ip(i), HEARTBEAT_PORT);
            s.send_to(&datagram, dest)
                .expect("send the forged heartbeat");
        }
    });
}
