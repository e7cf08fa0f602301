//! kube-vip-cloud-provider's overlapping pools, end to end: the real controller against
//! kube-sim with a `cidr-<namespace>` inside `cidr-global` (kube-vip's README example). Both
//! namespaces' Services draw from the shared addresses, no address is ever given twice, the
//! pools run out together, and a controller restart moves nothing.

use std::collections::BTreeSet;

use ferrolb_testkit::api_cluster::Cluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_kube_vip_pools_share_addresses_but_never_hand_one_out_twice() {
    let cluster = Cluster::start().await;
    cluster.namespace("team-a").await;
    cluster
        .put_config_data(&[
            ("cidr-global", "198.51.100.200/30,198.51.100.200/29"),
            ("cidr-team-a", "198.51.100.200/30"),
        ])
        .await;
    let controller = cluster.controller(&[]);
    // team-a first: its own pool (.200-.203), then the rest of the global one.
    let mut all = BTreeSet::new();
    for i in 0..3 {
        cluster
            .create_lb("team-a", &format!("a{i}"), json!({}))
            .await;
        let ips = cluster.wait_ingress("team-a", &format!("a{i}")).await;
        assert_eq!(
            ips,
            vec![format!("198.51.100.20{i}")],
            "team-a's own pool first"
        );
        assert!(all.insert(ips[0].clone()));
    }
    // Another namespace uses only the global pool, skipping what team-a holds.
    for i in 0..4 {
        cluster
            .create_lb("default", &format!("g{i}"), json!({}))
            .await;
        let ips = cluster.wait_ingress("default", &format!("g{i}")).await;
        assert!(all.insert(ips[0].clone()), "{} handed out twice", ips[0]);
    }
    // One address is left, in both pools; team-a gets it, and then both are full.
    cluster.create_lb("team-a", "a3", json!({})).await;
    let last = cluster.wait_ingress("team-a", "a3").await;
    assert!(all.insert(last[0].clone()), "{} handed out twice", last[0]);
    assert_eq!(all.len(), 8, "every address of the /29 once: {all:?}");
    cluster.create_lb("default", "late", json!({})).await;
    cluster
        .wait_event("default", "late", "AllocationFailed", "cidr-global")
        .await;
    // A restart replays the same addresses and moves nothing.
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for (ns, n) in [
            ("team-a", "a0"),
            ("team-a", "a3"),
            ("default", "g0"),
            ("default", "g3"),
        ] {
            v.push(cluster.ingress(ns, n).await);
        }
        v
    };
    drop(controller);
    let _again = cluster.controller(&[]);
    cluster
        .create_lb("team-a", "after-restart", json!({}))
        .await;
    cluster
        .wait_event("team-a", "after-restart", "AllocationFailed", "exhausted")
        .await;
    let mut after = Vec::new();
    for (ns, n) in [
        ("team-a", "a0"),
        ("team-a", "a3"),
        ("default", "g0"),
        ("default", "g3"),
    ] {
        after.push(cluster.ingress(ns, n).await);
    }
    assert_eq!(before, after);
}
