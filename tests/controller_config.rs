//! The pool ConfigMap end to end: other products' formats work, a bad edit never takes effect,
//! removing a pool moves no IP, new pools apply at once, and a missing ConfigMap is harmless.

use ferrolb_testkit::api_cluster::*;
use serde_json::json;

const LAN: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn metallb_legacy_config_allocates() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    let legacy = "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses:\n  - 203.0.113.20-203.0.113.21\n";
    c.put_config_data(&[("config", legacy)]).await;
    let mut ctl = c.controller(&["--leader-elect", "false"]);
    c.create_lb("default", "web", json!({})).await;
    let ips = c.wait_ingress("default", "web").await;
    assert!(
        ["203.0.113.20", "203.0.113.21"].contains(&ips[0].as_str()),
        "{ips:?}"
    );
    let pool = eventually("the pool annotation", DEADLINE, || async {
        annotation(
            &c.service("default", "web").await?,
            "ferrolb.io/allocated-from-pool",
        )
    })
    .await;
    assert_eq!(pool, "legacy");
    c.wait_event(NS, CONFIG_MAP, "ConfigLoaded", "").await;
    assert_eq!(ctl.metric("ferrolb_config_valid").await, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_vip_config_allocates_per_namespace_and_globally() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.namespace("team-a").await;
        c.put_config_data(&[
            ("cidr-global", "198.51.100.8/29"),
            ("range-team-a", "203.0.113.5-203.0.113.6"),
        ])
        .await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "web", json!({})).await;
        c.create_lb("team-a", "web", json!({})).await;
        let global = c.wait_ingress("default", "web").await;
        let ip: std::net::Ipv4Addr = global[0].parse().expect("IPv4");
        assert!(
            (8..16).contains(&ip.octets()[3]) && ip.octets()[..3] == [198, 51, 100],
            "{global:?}"
        );
        let team = c.wait_ingress("team-a", "web").await;
        assert!(
            ["203.0.113.5", "203.0.113.6"].contains(&team[0].as_str()),
            "kube-vip prefers the namespace's own range: {team:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_edit_is_rejected_and_the_old_config_stays_in_force() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    c.put_config(LAN).await;
    let mut ctl = c.controller(&["--leader-elect", "false"]);
    c.create_lb("default", "before", json!({})).await;
    let kept = c.wait_ingress("default", "before").await;
    ctl.wait_metric("ferrolb_config_valid", 1.0).await;

    // A typo'd range plus a second pool that would have been new: neither may take effect.
    let broken = "pools:\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.1x\"]\n  - name: dmz\n    addresses: [\"203.0.113.0/28\"]\n";
    c.edit_config_data(&[("config.yaml", broken)]).await;
    let (ty, msg) = c
        .wait_event(NS, CONFIG_MAP, "ConfigInvalid", "last good config")
        .await;
    assert_eq!(ty, "Warning");
    assert!(
        msg.contains("lan") || msg.contains("addresses"),
        "the Event names what is wrong: {msg}"
    );
    ctl.wait_metric("ferrolb_config_valid", 0.0).await;

    c.create_lb("default", "after", json!({})).await;
    let ips = c.wait_ingress("default", "after").await;
    let ip: std::net::Ipv4Addr = ips[0].parse().expect("IPv4");
    assert!(
        ip.octets()[..3] == [198, 51, 100] && (10..20).contains(&ip.octets()[3]),
        "allocated from the old config: {ips:?}"
    );
    assert_eq!(c.ingress("default", "before").await, kept);
    assert!(ctl.running());

    // Fixing the config is accepted again.
    c.edit_config_data(&[("config.yaml", LAN)]).await;
    ctl.wait_metric("ferrolb_config_valid", 1.0).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_pool_keeps_its_ips_and_new_pools_apply_at_once() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    c.put_config(LAN).await;
    let mut ctl = c.controller(&["--leader-elect", "false"]);
    c.create_lb("default", "old", json!({})).await;
    let kept = c.wait_ingress("default", "old").await;

    c.edit_config_data(&[(
        "config.yaml",
        "pools:\n  - name: dmz\n    addresses: [\"203.0.113.0/28\"]\n",
    )])
    .await;
    let (ty, msg) = c
        .wait_event("default", "old", "IPOutsidePools", &kept[0])
        .await;
    assert_eq!(ty, "Warning", "{msg}");
    ctl.wait_metric("ferrolb_ips_outside_pools", 1.0).await;

    c.create_lb("default", "new", json!({})).await;
    let ips = c.wait_ingress("default", "new").await;
    assert!(
        ips[0].starts_with("203.0.113."),
        "the new pool is used at once: {ips:?}"
    );
    assert_eq!(
        c.ingress("default", "old").await,
        kept,
        "an IP outside every pool is kept, not moved"
    );

    // The kept IP is still held: a Service asking for it by name is refused.
    let again = "pools:\n  - name: dmz\n    addresses: [\"203.0.113.0/28\"]\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n";
    c.edit_config_data(&[("config.yaml", again)]).await;
    ctl.wait_metric("ferrolb_ips_outside_pools", 0.0).await;
    let ask = json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": kept[0]}}});
    c.create_lb("default", "thief", ask).await;
    c.wait_event("default", "thief", "AllocationFailed", "in use")
        .await;
    assert_eq!(c.ingress("default", "old").await, kept);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_config_map_allocates_nothing_and_stays_healthy() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        // Ready means synced (leader election is off): the controller has seen there is no config.
        let addr = ctl.metrics_addr().await;
        eventually("/readyz to answer 200", DEADLINE, || async move {
            http_get(addr, "/readyz").ok().filter(|(s, _)| *s == 200)
        })
        .await;
        c.create_lb("default", "web", json!({})).await;
        c.wait_event("default", "web", "AllocationFailed", "no pool")
            .await;
        assert!(c.ingress("default", "web").await.is_empty());
        assert_eq!(ctl.http_get("/healthz").await.0, 200);
        assert_eq!(ctl.http_get("/readyz").await.0, 200);
        assert!(ctl.running());
        // The Service was waiting, not forgotten: creating the ConfigMap serves it.
        c.put_config(LAN).await;
        c.wait_ingress("default", "web").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_at_start_allocates_nothing_and_says_why() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    c.put_config("pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n  - name: lan\n    addresses: [\"203.0.113.0/24\"]\n")
        .await;
    let mut ctl = c.controller(&["--leader-elect", "false"]);
    let (ty, _) = c.wait_event(NS, CONFIG_MAP, "ConfigInvalid", "lan").await;
    assert_eq!(ty, "Warning");
    ctl.wait_metric("ferrolb_config_valid", 0.0).await;
    c.create_lb("default", "web", json!({})).await;
    c.wait_event("default", "web", "AllocationFailed", "").await;
    assert!(c.ingress("default", "web").await.is_empty());
    assert!(ctl.running());
    })
    .await;
}
