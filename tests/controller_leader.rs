//! Leader election safety: two replicas must never allocate at once, whatever the flags and
//! however badly the API server behaves.

use ferrolb_testkit::api_cluster::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;

const POOL: &str = "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n";

async fn lease(c: &Cluster) -> Option<Lease> {
    let api: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    api.get_opt("ferrolb-controller").await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_on_the_wire_is_never_shorter_than_the_configured_duration() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(POOL).await;
        // 1.5s must not become "1" on the wire: the others would take over after one second,
        // while this leader keeps writing until its 1.2s renew deadline.
        let mut ctl = c.controller(&[
            "--leader-lease-duration",
            "1500ms",
            "--leader-renew-deadline",
            "1200ms",
            "--leader-retry-period",
            "200ms",
        ]);
        ctl.wait_metric("ferrolb_leader", 1.0).await;
        let secs = lease(&c)
            .await
            .and_then(|l| l.spec?.lease_duration_seconds)
            .expect("lease written");
        assert!(
            secs >= 2,
            "leaseDurationSeconds {secs} is shorter than the configured 1.5s"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timings_that_could_make_two_leaders_are_refused_at_start() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        let mut ctl = c.controller(&[
            "--leader-lease-duration",
            "2s",
            "--leader-renew-deadline",
            "3s",
        ]);
        assert!(!ctl.wait_exit().await, "the controller must refuse to run");
        let log = ctl.log();
        assert!(
            log.contains("must be shorter than --leader-lease-duration"),
            "{log}"
        );
        assert!(
            lease(&c).await.is_none(),
            "it must not have touched the lease"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_cannot_renew_stops_before_the_standby_takes_over() {
    let c = Cluster::start().await;
    c.put_config(POOL).await;
    let mut a = c.named_controller("leader-a", FAST_LEADER);
    a.wait_metric("ferrolb_leader", 1.0).await;
    let mut b = c.named_controller("standby-b", FAST_LEADER);
    b.wait_metric("ferrolb_leader", 0.0).await;
    c.create_lb("default", "before", json!({})).await;
    c.wait_ingress("default", "before").await;

    // Every lease write fails: the leader can no longer renew and must step down.
    c.sim()
        .faults()
        .fail_next(1_000_000, 500, Some("update"), Some("leases"));
    assert!(
        !a.wait_exit().await,
        "a leader that lost its lease exits with an error"
    );
    assert!(a.log().contains("lost leadership"), "{}", a.log());
    c.sim().faults().clear();

    b.wait_metric("ferrolb_leader", 1.0).await;
    c.create_lb("default", "after", json!({})).await;
    let ip = c.wait_ingress("default", "after").await;
    assert_ne!(ip, c.ingress("default", "before").await);

    // In the API server's own log: the old leader's last write came before the standby
    // first held the lease.
    let log = c.sim().faults().request_log();
    let is_write = |r: &&kube_sim::RequestRecord| {
        matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete") && r.status < 300
    };
    let a_last = log
        .iter()
        .filter(is_write)
        .filter(|r| r.user_agent.contains("(leader-a_"))
        .map(|r| r.at_ms)
        .max()
        .expect("leader-a wrote");
    let b_first = log
        .iter()
        .filter(is_write)
        .filter(|r| r.user_agent.contains("(standby-b_") && r.resource == "leases")
        .map(|r| r.at_ms)
        .min()
        .expect("standby-b acquired");
    assert!(
        a_last <= b_first,
        "leader-a wrote at {a_last} ms, after standby-b took the lease at {b_first} ms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_and_restarted_in_its_pod_leads_again_at_once() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(POOL).await;
        // A lease far longer than the test deadline: the restarted process can only lead in time
        // if it recognises the lease as its own, and the standby can only take over by expiry.
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

        a.kill();
        let mut a_again = c.named_controller("leader-a", &long);
        a_again.wait_metric("ferrolb_leader", 1.0).await;
        let holder = lease(&c).await.and_then(|l| l.spec?.holder_identity);
        assert_eq!(holder.as_deref(), Some("leader-a"));
        assert!(a_again.log().contains("became leader"), "{}", a_again.log());
        // It really works as the leader, and the standby never took over.
        c.create_lb("default", "after-restart", json!({})).await;
        c.wait_ingress("default", "after-restart").await;
        assert_eq!(b.metric("ferrolb_leader").await, Some(0.0));
        assert!(!b.log().contains("became leader"), "{}", b.log());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_reports_a_bad_config_too_and_only_the_leader_writes_the_event() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        c.put_config(POOL).await;
        let mut a = c.named_controller("leader-a", FAST_LEADER);
        a.wait_metric("ferrolb_leader", 1.0).await;
        let mut b = c.named_controller("standby-b", FAST_LEADER);
        b.wait_metric("ferrolb_leader", 0.0).await;
        b.wait_metric("ferrolb_config_valid", 1.0).await;

        c.put_config("pools:\n  - name: lan\n    addresses: [\"not-a-range\"]\n")
            .await;
        b.wait_metric("ferrolb_config_valid", 0.0).await;
        a.wait_metric("ferrolb_config_valid", 0.0).await;
        assert!(
            b.log().contains("pool config rejected"),
            "the standby says why in its log: {}",
            b.log()
        );
        let invalid = eventually("the leader's ConfigInvalid Event", DEADLINE, || async {
            let evs: Vec<_> = c
                .events_for(NS, CONFIG_MAP)
                .await
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("ConfigInvalid"))
                .collect();
            (!evs.is_empty()).then_some(evs)
        })
        .await;
        for e in &invalid {
            assert_eq!(
                e.reporting_instance.as_deref(),
                Some("leader-a"),
                "only the leader publishes config Events: {e:?}"
            );
        }

        // Fixed again: both replicas say so.
        c.put_config(POOL).await;
        b.wait_metric("ferrolb_config_valid", 1.0).await;
        a.wait_metric("ferrolb_config_valid", 1.0).await;
    })
    .await;
}
