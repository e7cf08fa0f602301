//! What an operator scrapes from `--metrics-addr`, and the health endpoints a kubelet probes.

use ferrolb_testkit::api_cluster::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_report_pools_allocations_failures_config_reconciles_and_leadership() {
    for_each_backend(|backend| async move {
    let c = Cluster::start_on(backend).await;
    c.put_config("pools:\n  - name: small\n    addresses: [\"198.51.100.10-198.51.100.11\", \"2001:db8::/126\"]\n").await;
    let mut ctl = c.controller(FAST_LEADER);
    ctl.wait_metric("ferrolb_leader", 1.0).await;
    assert_eq!(ctl.http_get("/healthz").await.0, 200);
    assert_eq!(ctl.http_get("/readyz").await.0, 200);
    assert_eq!(ctl.http_get("/nope").await.0, 404);

    for name in ["a", "b", "c"] {
        c.create_lb("default", name, json!({})).await;
    }
    c.wait_ingress("default", "a").await;
    c.wait_ingress("default", "b").await;
    c.wait_event("default", "c", "AllocationFailed", "pool exhausted")
        .await;

    ctl.wait_metric(
        r#"ferrolb_allocator_addresses{pool="small",family="ipv4"}"#,
        2.0,
    )
    .await;
    ctl.wait_metric(
        r#"ferrolb_allocator_addresses{pool="small",family="ipv6"}"#,
        4.0,
    )
    .await;
    ctl.wait_metric(
        r#"ferrolb_allocator_addresses_in_use{pool="small",family="ipv4"}"#,
        2.0,
    )
    .await;
    ctl.wait_metric(
        r#"ferrolb_allocator_addresses_in_use{pool="small",family="ipv6"}"#,
        0.0,
    )
    .await;
    let m = ctl.metrics_text().await;
    assert_eq!(
        metric_value(&m, "ferrolb_allocations_total"),
        Some(2.0),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            r#"ferrolb_allocation_failures_total{reason="pool_exhausted"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    assert_eq!(metric_value(&m, "ferrolb_config_valid"), Some(1.0));
    assert_eq!(metric_value(&m, "ferrolb_leader"), Some(1.0));
    assert_eq!(metric_value(&m, "ferrolb_ips_outside_pools"), Some(0.0));
    assert!(
        metric_value(&m, "ferrolb_reconcile_duration_seconds_count").unwrap_or(0.0) >= 3.0,
        "{m}"
    );
    assert!(
        m.contains("ferrolb_reconcile_duration_seconds_bucket{le="),
        "{m}"
    );
    assert!(
        metric_value(&m, r#"ferrolb_api_writes_total{kind="status"}"#).unwrap_or(0.0) >= 2.0,
        "{m}"
    );

    // Freeing an address shows up in the in-use gauge (and the waiting Service takes it).
    c.delete_service("default", "a").await;
    c.wait_ingress("default", "c").await;
    ctl.wait_metric(
        r#"ferrolb_allocator_addresses_in_use{pool="small",family="ipv4"}"#,
        2.0,
    )
    .await;
    ctl.wait_metric("ferrolb_allocations_total", 3.0).await;
    })
    .await;
}
