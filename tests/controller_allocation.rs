//! What a user sees when they create LoadBalancer Services: the controller runs as a real
//! process against the API server(s) `FERROLB_API` selects (kube-sim, the real kube-apiserver,
//! or both in turn), and every assertion is on the API objects (status, annotations, Events)
//! or on `kubectl` output.

use std::process::Command;

use ferrolb_testkit::api_cluster::*;
use serde_json::json;

const LAN: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n";

async fn cluster_with(backend: ApiBackend, config: &str) -> Cluster {
    let c = Cluster::start_on(backend).await;
    c.put_config(config).await;
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_get_svc_shows_the_external_ip() {
    for_each_backend(|backend| async move {
        if ferrolb_testkit::require(
            "kubectl_get_svc_shows_the_external_ip",
            &[("kubectl", "kubernetes-client")],
        )
        .is_err()
        {
            return;
        }
        let c = cluster_with(backend, LAN).await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "web", json!({})).await;
        let cache = tempdir("kubecache");
        let line = eventually(
            "kubectl get svc web to show an EXTERNAL-IP",
            DEADLINE,
            || {
                let out = Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(c.kubeconfig_path())
                    .args(["get", "svc", "web", "-n", "default", "--no-headers"])
                    .env("KUBECACHEDIR", &cache)
                    .output()
                    .expect("run kubectl");
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                async move {
                    // NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE
                    let cols: Vec<&str> = text.split_whitespace().collect();
                    (cols.len() >= 4 && cols[3].starts_with("198.51.100.")).then(|| text.clone())
                }
            },
        )
        .await;
        assert!(line.contains("LoadBalancer"), "{line}");
        let ip = line
            .split_whitespace()
            .nth(3)
            .unwrap_or_default()
            .to_string();
        assert_eq!(c.ingress("default", "web").await, vec![ip]);
        let _ = std::fs::remove_dir_all(cache);
    })
    .await;
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ferrolb-ctltest-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn status_has_vip_mode_pool_annotation_and_an_event() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, LAN).await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "web", json!({})).await;
        let ips = c.wait_ingress("default", "web").await;
        assert_eq!(ips.len(), 1);
        let svc = c.service("default", "web").await.expect("exists");
        let entry = &svc.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0];
        assert_eq!(entry.ip_mode.as_deref(), Some("VIP"));
        let svc = eventually("the allocated-from-pool annotation", DEADLINE, || async {
            let s = c.service("default", "web").await?;
            annotation(&s, "ferrolb.io/allocated-from-pool")
                .is_some()
                .then_some(s)
        })
        .await;
        assert_eq!(
            annotation(&svc, "ferrolb.io/allocated-from-pool").as_deref(),
            Some("lan")
        );
        let (ty, msg) = c.wait_event("default", "web", "IPAllocated", &ips[0]).await;
        assert_eq!(ty, "Normal");
        assert!(msg.contains("pool lan"), "{msg}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requested_ips_are_honoured_in_every_spelling() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, LAN).await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb(
            "default",
            "native",
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "198.51.100.17"}}}),
        )
        .await;
        c.create_lb(
            "default",
            "metallb",
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "198.51.100.18"}}}),
        )
        .await;
        c.create_lb(
            "default",
            "spec",
            json!({"spec": {"loadBalancerIP": "198.51.100.19"}}),
        )
        .await;
        assert_eq!(c.wait_ingress("default", "native").await, ["198.51.100.17"]);
        assert_eq!(
            c.wait_ingress("default", "metallb").await,
            ["198.51.100.18"]
        );
        assert_eq!(c.wait_ingress("default", "spec").await, ["198.51.100.19"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn named_pool_is_used_and_recorded() {
    for_each_backend(|backend| async move {
        let config = "pools:\n  - name: lan\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n  - name: dmz\n    addresses: [\"203.0.113.0/28\"]\n";
        let c = cluster_with(backend, config).await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb(
            "default",
            "edge",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "dmz"}}}),
        )
        .await;
        let ips = c.wait_ingress("default", "edge").await;
        assert!(ips[0].starts_with("203.0.113."), "{ips:?}");
        let pool = eventually("the pool annotation", DEADLINE, || async {
            annotation(
                &c.service("default", "edge").await?,
                "ferrolb.io/allocated-from-pool",
            )
        })
        .await;
        assert_eq!(pool, "dmz");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_key_allows_disjoint_ports_and_refuses_overlapping_ones() {
    for_each_backend(|backend| async move {
        // One address only, so sharing is the only way for a second Service to get one.
        let c = cluster_with(backend, "pools:\n  - name: one\n    addresses: [\"198.51.100.10/32\"]\n").await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        let shared = |port: i32| {
            json!({"metadata": {"annotations": {"ferrolb.io/allow-shared-ip": "k"}},
                   "spec": {"ports": [{"name": "p", "port": port, "protocol": "TCP"}], "externalTrafficPolicy": "Cluster"}})
        };
        c.create_lb("default", "http", shared(80)).await;
        assert_eq!(c.wait_ingress("default", "http").await, ["198.51.100.10"]);
        c.create_lb("default", "https", shared(443)).await;
        assert_eq!(c.wait_ingress("default", "https").await, ["198.51.100.10"]);

        c.create_lb("default", "clash", shared(80)).await;
        let (ty, msg) = c
            .wait_event("default", "clash", "AllocationFailed", "")
            .await;
        assert_eq!(ty, "Warning", "{msg}");
        assert!(c.ingress("default", "clash").await.is_empty());

        // Asking for the shared IP by name with an overlapping port says exactly why it is refused.
        let mut ask = shared(443);
        merge(
            &mut ask,
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "198.51.100.10"}}}),
        );
        c.create_lb("default", "clash2", ask).await;
        let (_, msg) = c
            .wait_event(
                "default",
                "clash2",
                "AllocationFailed",
                "requested IP 198.51.100.10 is in use",
            )
            .await;
        assert!(
            msg.contains("default/https") || msg.contains("443"),
            "{msg}"
        );
        assert!(c.ingress("default", "clash2").await.is_empty());
        // The sharers keep their address throughout.
        assert_eq!(c.ingress("default", "http").await, ["198.51.100.10"]);
        assert_eq!(c.ingress("default", "https").await, ["198.51.100.10"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn require_dual_stack_gets_one_ip_per_family() {
    for_each_backend(|backend| async move {
        let c = cluster_with(
            backend,
            "pools:\n  - name: ds\n    addresses: [\"198.51.100.0/28\", \"2001:db8::/120\"]\n",
        )
        .await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb(
            "default",
            "ds",
            json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}}),
        )
        .await;
        let ips = c.wait_ingress("default", "ds").await;
        assert_eq!(ips.len(), 2, "{ips:?}");
        let parsed: Vec<std::net::IpAddr> = ips.iter().map(|s| s.parse().expect("an IP")).collect();
        assert!(
            parsed.iter().any(|ip| ip.is_ipv4()) && parsed.iter().any(|ip| ip.is_ipv6()),
            "{ips:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_pool_hands_the_freed_ip_to_the_waiting_service() {
    for_each_backend(|backend| async move {
        let c = cluster_with(
            backend,
            "pools:\n  - name: one\n    addresses: [\"198.51.100.10/32\"]\n",
        )
        .await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "first", json!({})).await;
        assert_eq!(c.wait_ingress("default", "first").await, ["198.51.100.10"]);
        c.create_lb("default", "second", json!({})).await;
        let (ty, _) = c
            .wait_event("default", "second", "AllocationFailed", "pool exhausted")
            .await;
        assert_eq!(ty, "Warning");
        assert!(c.ingress("default", "second").await.is_empty());
        c.delete_service("default", "first").await;
        assert_eq!(c.wait_ingress("default", "second").await, ["198.51.100.10"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_assign_false_pool_is_used_only_when_named() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, "pools:\n  - name: manual\n    autoAssign: false\n    addresses: [\"198.51.100.10-198.51.100.12\"]\n").await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "auto", json!({})).await;
        let (_, msg) = c
            .wait_event("default", "auto", "AllocationFailed", "autoAssign")
            .await;
        assert!(
            msg.contains("no matching pool") || msg.contains("autoAssign"),
            "{msg}"
        );
        c.create_lb(
            "default",
            "named",
            json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "manual"}}}),
        )
        .await;
        c.wait_ingress("default", "named").await;
        assert!(c.ingress("default", "auto").await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_restricted_pool_serves_only_its_namespaces() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, "pools:\n  - name: team\n    namespaces: [team-a]\n    addresses: [\"198.51.100.10-198.51.100.12\"]\n").await;
        c.namespace("team-a").await;
        c.namespace("team-b").await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("team-b", "web", json!({})).await;
        let (_, msg) = c
            .wait_event("team-b", "web", "AllocationFailed", "team-b")
            .await;
        assert!(
            msg.contains("no matching pool") || msg.contains("namespace"),
            "{msg}"
        );
        c.create_lb("team-a", "web", json!({})).await;
        c.wait_ingress("team-a", "web").await;
        assert!(c.ingress("team-b", "web").await.is_empty());
    })
    .await;
}

/// Writes the controller made to Service `name` (any verb but reads), from the server's request
/// log (kube-sim's own, or the real server's audit log).
fn writes_to(c: &Cluster, name: &str) -> usize {
    c.request_log()
        .iter()
        .filter(|r| {
            r.user_agent.starts_with("ferrolb-controller/")
                && r.resource == "services"
                && r.name.as_deref() == Some(name)
        })
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn services_of_another_class_are_left_alone() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, LAN).await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb(
            "default",
            "other",
            json!({"spec": {"loadBalancerClass": "example.com/other"}}),
        )
        .await;
        c.create_lb("default", "mine", json!({})).await;
        c.wait_ingress("default", "mine").await;
        // The classed Service was created first, so it was seen before "mine" was allocated.
        assert!(c.ingress("default", "other").await.is_empty());
        assert_eq!(writes_to(&c, "other"), 0);
        assert!(c.events_for("default", "other").await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lb_class_flag_handles_only_that_class() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, LAN).await;
        let _ctl = c.controller(&["--leader-elect", "false", "--lb-class", "x"]);
        c.create_lb("default", "none", json!({})).await;
        c.create_lb("default", "y", json!({"spec": {"loadBalancerClass": "y"}}))
            .await;
        c.create_lb("default", "x", json!({"spec": {"loadBalancerClass": "x"}}))
            .await;
        c.wait_ingress("default", "x").await;
        assert!(c.ingress("default", "none").await.is_empty());
        assert!(c.ingress("default", "y").await.is_empty());
        assert_eq!(writes_to(&c, "none") + writes_to(&c, "y"), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_change_to_cluster_ip_releases_the_ip() {
    for_each_backend(|backend| async move {
        let c = cluster_with(
            backend,
            "pools:\n  - name: one\n    addresses: [\"198.51.100.10/32\"]\n",
        )
        .await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "web", json!({})).await;
        assert_eq!(c.wait_ingress("default", "web").await, ["198.51.100.10"]);
        c.patch_service("default", "web", json!({"spec": {"type": "ClusterIP"}}))
            .await;
        c.wait_no_ingress("default", "web").await;
        let (ty, msg) = c
            .wait_event("default", "web", "IPReleased", "198.51.100.10")
            .await;
        assert_eq!(ty, "Normal", "{msg}");
        let svc = eventually("the pool annotation to be removed", DEADLINE, || async {
            let s = c.service("default", "web").await?;
            annotation(&s, "ferrolb.io/allocated-from-pool")
                .is_none()
                .then_some(s)
        })
        .await;
        assert_eq!(svc.spec.and_then(|s| s.type_).as_deref(), Some("ClusterIP"));
        // The only address is free again.
        c.create_lb("default", "next", json!({})).await;
        assert_eq!(c.wait_ingress("default", "next").await, ["198.51.100.10"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_service_makes_its_ip_reusable() {
    for_each_backend(|backend| async move {
        let c = cluster_with(
            backend,
            "pools:\n  - name: one\n    addresses: [\"198.51.100.10/32\"]\n",
        )
        .await;
        let _ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb("default", "web", json!({})).await;
        assert_eq!(c.wait_ingress("default", "web").await, ["198.51.100.10"]);
        c.delete_service("default", "web").await;
        c.create_lb("default", "next", json!({})).await;
        assert_eq!(c.wait_ingress("default", "next").await, ["198.51.100.10"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_user_error_gets_a_precise_allocation_failed_event() {
    for_each_backend(|backend| async move {
        let c = cluster_with(backend, LAN).await;
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        c.create_lb(
            "default",
            "holder",
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "198.51.100.15"}}}),
        )
        .await;
        c.wait_ingress("default", "holder").await;
        let cases = [
            (
                "bad-ip",
                json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "not-an-ip"}}}),
                "bad annotation",
            ),
            (
                "no-pool",
                json!({"metadata": {"annotations": {"ferrolb.io/address-pool": "nope"}}}),
                "no matching pool",
            ),
            (
                "in-use",
                json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "198.51.100.15"}}}),
                "requested IP 198.51.100.15 is in use",
            ),
            (
                "outside",
                json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "203.0.113.9"}}}),
                "outside every pool",
            ),
        ];
        for (name, extra, _) in &cases {
            c.create_lb("default", name, extra.clone()).await;
        }
        for (name, _, needle) in &cases {
            let (ty, _) = c
                .wait_event("default", name, "AllocationFailed", needle)
                .await;
            assert_eq!(ty, "Warning");
            assert!(
                c.ingress("default", name).await.is_empty(),
                "{name} must get no IP"
            );
        }
        assert!(
            ctl.running(),
            "a bad annotation must never crash the controller"
        );
        let m = ctl.metrics_text().await;
        for reason in [
            "bad_annotation",
            "no_matching_pool",
            "ip_in_use",
            "ip_outside_pools",
        ] {
            let v = metric_value(
                &m,
                &format!("ferrolb_allocation_failures_total{{reason=\"{reason}\"}}"),
            );
            assert!(
                v.unwrap_or(0.0) >= 1.0,
                "failures by reason {reason}: {v:?}\n{m}"
            );
        }
        // Fixing the annotation is picked up: the error was not a silent dead end.
        c.patch_service(
            "default",
            "bad-ip",
            json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "198.51.100.16"}}}),
        )
        .await;
        assert_eq!(c.wait_ingress("default", "bad-ip").await, ["198.51.100.16"]);
    })
    .await;
}
