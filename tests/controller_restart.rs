//! Restarts and replicas: a killed controller changes no IP when it comes back, a standby never
//! writes while it is not the leader, duplicates found at start are resolved oldest-first, and a
//! graceful stop hands the lease over at once.

use std::collections::BTreeMap;

use ferrolb_testkit::api_cluster::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::{json, Value};

const POOL: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n";

async fn lease_holder(c: &Cluster) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    api.get_opt("ferrolb-controller")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

/// Mutating requests from replicas whose User-Agent names `pod`, in log order.
fn writes_by(c: &Cluster, pod: &str) -> Vec<kube_sim::RequestRecord> {
    let marker = format!("({pod}_");
    c.sim()
        .faults()
        .request_log()
        .into_iter()
        .filter(|r| r.user_agent.contains(&marker))
        .filter(|r| {
            matches!(
                r.verb.as_str(),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_restart_changes_no_ip_and_the_standby_never_writes_before_leading() {
    let c = Cluster::start_with(kube_sim::SimOptions {
        keep_full_history: true,
        ..Default::default()
    })
    .await;
    c.put_config(POOL).await;
    let mut a = c.named_controller("replica-a", FAST_LEADER);
    a.wait_metric("ferrolb_leader", 1.0).await;
    let mut b = c.named_controller("standby-b", FAST_LEADER);
    // The standby serves metrics and reports that it is not the leader.
    b.wait_metric("ferrolb_leader", 0.0).await;
    assert_eq!(b.http_get("/readyz").await.0, 200);

    const N: usize = 200;
    for i in 0..N {
        c.create_lb("default", &format!("svc-{i:03}"), json!({}))
            .await;
    }
    let mut before = BTreeMap::new();
    for i in 0..N {
        let name = format!("svc-{i:03}");
        let ips = c.wait_ingress("default", &name).await;
        before.insert(name, ips);
    }
    let distinct: std::collections::BTreeSet<_> = before.values().collect();
    assert_eq!(distinct.len(), N, "no two Services may share an IP");
    assert_eq!(b.metric("ferrolb_leader").await, Some(0.0));
    assert!(
        writes_by(&c, "standby-b").is_empty(),
        "the standby wrote while replica-a led: {:?}",
        writes_by(&c, "standby-b")
    );

    // Kill the leader without warning; bring it back as a new process.
    a.kill();
    let _a2 = c.named_controller("replica-a2", FAST_LEADER);
    // Someone leads again once the old lease expires; prove it by a fresh allocation.
    c.create_lb("default", "after-restart", json!({})).await;
    let fresh = c.wait_ingress("default", "after-restart").await;
    assert!(
        !distinct.contains(&fresh),
        "the new Service got an IP that is already held: {fresh:?}"
    );

    for (name, ips) in &before {
        assert_eq!(
            &c.ingress("default", name).await,
            ips,
            "{name} changed IP across the restart"
        );
    }
    // Not even transiently: every status ever stored for these Services shows the one IP.
    let services = kube_sim::resources::find("", "v1", "services").expect("services resource");
    for change in c
        .sim()
        .store()
        .full_history()
        .expect("full history enabled")
    {
        if change.resource != services {
            continue;
        }
        let name = change.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(want) = before.get(&name) else {
            continue;
        };
        let ips: Vec<String> = change.object["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["ip"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            ips.is_empty() || &ips == want,
            "{name} showed {ips:?} at rv {} (final {want:?})",
            change.rv
        );
        let had_ip = change
            .old
            .as_ref()
            .is_some_and(|o: &std::sync::Arc<Value>| {
                o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            });
        assert!(
            !(had_ip && ips.is_empty()),
            "{name} lost its IP at rv {}",
            change.rv
        );
    }

    // The standby wrote nothing but lease attempts until it held the lease.
    let standby_writes = writes_by(&c, "standby-b");
    let took_over = standby_writes
        .iter()
        .position(|r| r.resource == "leases" && (200..300).contains(&r.status));
    let before_leading = &standby_writes[..took_over.unwrap_or(standby_writes.len())];
    let bad: Vec<_> = before_leading
        .iter()
        .filter(|r| r.resource != "leases")
        .collect();
    assert!(
        bad.is_empty(),
        "the standby wrote while not the leader: {bad:?}"
    );
    if took_over.is_none() {
        assert_eq!(b.metric("ferrolb_leader").await, Some(0.0));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ips_at_start_keep_the_older_service_and_move_the_newer() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(POOL).await;
        // Named so that name order would favour the newer one: only age may decide.
        c.create_lb("default", "z-older", json!({})).await;
        c.write_ingress("default", "z-older", &["198.51.100.10"])
            .await;
        let created = |s: k8s_openapi::api::core::v1::Service| {
            s.metadata.creation_timestamp.map(|t| t.0.as_second())
        };
        let older =
            created(c.service("default", "z-older").await.expect("exists")).expect("timestamp");
        // creationTimestamp has one-second resolution: wait until the clock has moved past it.
        eventually("the next second", DEADLINE, || async {
            (jiff::Timestamp::now().as_second() > older).then_some(())
        })
        .await;
        c.create_lb("default", "a-newer", json!({})).await;
        c.write_ingress("default", "a-newer", &["198.51.100.10"])
            .await;
        assert!(
            created(c.service("default", "a-newer").await.expect("exists")).expect("timestamp")
                > older
        );

        let mut ctl = c.controller(&["--leader-elect", "false"]);
        let (ty, msg) = c
            .wait_event("default", "a-newer", "IPConflict", "198.51.100.10")
            .await;
        assert_eq!(ty, "Warning", "{msg}");
        let moved = eventually("a-newer to get a new IP", DEADLINE, || async {
            let ips = c.ingress("default", "a-newer").await;
            (!ips.is_empty() && ips != ["198.51.100.10"]).then_some(ips)
        })
        .await;
        assert_eq!(moved.len(), 1);
        assert_eq!(c.ingress("default", "z-older").await, ["198.51.100.10"]);
        assert!(!c.has_event("default", "z-older", "IPConflict").await);
        assert!(
            ctl.metric("ferrolb_ip_conflicts_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_the_lease_so_the_standby_takes_over() {
    for_each_backend(|backend| async move {
        // kube-sim keeps every stored version, so the release itself can be seen there; on the
        // real server the take-over within the deadline (far shorter than the lease) proves it.
        let c = match backend {
            ApiBackend::Sim => {
                Cluster::start_with(kube_sim::SimOptions {
                    keep_full_history: true,
                    ..Default::default()
                })
                .await
            }
            ApiBackend::Real => Cluster::start_on(backend).await,
        };
        c.put_config(POOL).await;
        // A lease far longer than the test deadline: the standby can only take over in time if
        // the leader really releases the lease on SIGTERM.
        let long = [
            "--leader-lease-duration",
            "300s",
            "--leader-renew-deadline",
            "200s",
            "--leader-retry-period",
            "200ms",
        ];
        let mut a = c.named_controller("leader-a", &long);
        a.wait_metric("ferrolb_leader", 1.0).await;
        let mut b = c.named_controller("standby-b", &long);
        b.wait_metric("ferrolb_leader", 0.0).await;
        assert!(lease_holder(&c).await.is_some_and(|h| h == "leader-a"));

        a.sigterm();
        assert!(a.wait_exit().await, "a graceful stop exits with success");
        b.wait_metric("ferrolb_leader", 1.0).await;
        assert!(lease_holder(&c).await.is_some_and(|h| h == "standby-b"));
        // The lease went through a state with no holder: released, not expired.
        if backend == ApiBackend::Sim {
            let leases = kube_sim::resources::find("coordination.k8s.io", "v1", "leases")
                .expect("leases resource");
            let released = c
                .sim()
                .store()
                .full_history()
                .expect("full history enabled")
                .iter()
                .any(|ch| {
                    ch.resource == leases
                        && ch.object["metadata"]["name"] == "ferrolb-controller"
                        && ch.object["spec"]["holderIdentity"].is_null()
                });
            assert!(released, "the leader never cleared holderIdentity");
        }
        // And the new leader allocates.
        c.create_lb("default", "after", json!({})).await;
        c.wait_ingress("default", "after").await;
    })
    .await;
}
