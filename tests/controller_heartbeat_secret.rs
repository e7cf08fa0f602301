//! The speakers' heartbeat key needs no step from the user: the controller creates the Secret
//! `ferrolb-heartbeat` (field `key`, 32 random bytes) in its namespace when it is missing, and
//! never touches one that exists, even a malformed one, which it reports by an Event naming
//! the field instead. Runs against the API servers `FERROLB_API` selects; the real server's
//! RBAC side is in `tests/deploy_rbac_real.rs`.

use std::sync::Arc;

use ferrolb::controller::heartbeat_secret::{Ensured, HeartbeatSecret};
use ferrolb::events::EventPublisher;
use ferrolb_core::heartbeat::secret::{KeyProblem, GENERATED_KEY_LEN, SECRET_NAME};
use ferrolb_testkit::api_cluster::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use serde_json::json;

fn secrets(c: &Cluster) -> Api<Secret> {
    Api::namespaced(c.client.clone(), NS)
}

async fn wait_secret(c: &Cluster) -> Secret {
    eventually("the heartbeat Secret to exist", DEADLINE, || async {
        secrets(c).get_opt(SECRET_NAME).await.ok().flatten()
    })
    .await
}

fn key_of(s: &Secret) -> Option<Vec<u8>> {
    s.data.as_ref()?.get("key").map(|b| b.0.clone())
}

/// Requests of the controller that change Secrets (anything but reads), from the server's log.
fn secret_writes(c: &Cluster) -> Vec<String> {
    c.request_log()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("ferrolb-controller/") && r.resource == "secrets")
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| format!("{} {:?} -> {}", r.verb, r.name, r.status))
        .collect()
}

/// How often the controller has read the Secret so far.
fn controller_secret_reads(c: &Cluster) -> usize {
    c.request_log()
        .into_iter()
        .filter(|r| {
            r.user_agent.starts_with("ferrolb-controller/")
                && r.resource == "secrets"
                && r.verb == "get"
                && r.name.as_deref() == Some(SECRET_NAME)
        })
        .count()
}

/// Waits until the controller has read the Secret at least `n` times (so it has judged it).
async fn wait_secret_reads(c: &Cluster, n: usize) {
    eventually(
        "the controller to read the heartbeat Secret",
        DEADLINE,
        || async { (controller_secret_reads(c) >= n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_is_created_with_a_random_key_and_kept_across_restarts() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        let secret = wait_secret(&c).await;
        let key = key_of(&secret).expect("the created Secret has data.key");
        assert_eq!(key.len(), GENERATED_KEY_LEN, "{}", ctl.log());
        assert_ne!(
            key,
            vec![0u8; GENERATED_KEY_LEN],
            "the key is random, not zeros"
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let (ty, msg) = c
            .wait_event(NS, SECRET_NAME, "HeartbeatKeyCreated", "data.key")
            .await;
        assert_eq!(ty, "Normal", "{msg}");

        // A restarted controller (or a new leader) finds it and keeps it.
        ctl.kill();
        let rv = secret.metadata.resource_version.clone();
        let reads_before = controller_secret_reads(&c);
        let _ctl = c.controller(&["--leader-elect", "false"]);
        wait_secret_reads(&c, reads_before + 1).await;
        let again = secrets(&c).get(SECRET_NAME).await.expect("get the Secret");
        assert_eq!(key_of(&again), Some(key));
        assert_eq!(again.metadata.resource_version, rv);
        let writes = secret_writes(&c);
        assert_eq!(writes.len(), 1, "exactly one create: {writes:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_supplied_secret_is_never_overwritten_and_a_malformed_one_is_reported() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        // Malformed: the key is under the wrong field.
        let user: Secret = serde_json::from_value(json!({
            "metadata": {"name": SECRET_NAME},
            "stringData": {"heartbeat-key": "0123456789abcdef0123456789abcdef"},
        }))
        .expect("literal Secret");
        let created = secrets(&c)
            .create(&PostParams::default(), &user)
            .await
            .expect("create the user's Secret");
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        let (ty, msg) = c
            .wait_event(NS, SECRET_NAME, "HeartbeatKeyInvalid", "no field data.key")
            .await;
        assert_eq!(ty, "Warning", "{msg}");
        assert!(msg.contains("ferrolb-heartbeat"), "{msg}");

        // Too short: reported with its length, by the next controller to look.
        ctl.kill();
        let mut short = secrets(&c).get(SECRET_NAME).await.expect("get");
        short.data = Some([("key".to_string(), ByteString(b"short".to_vec()))].into());
        let short = secrets(&c)
            .replace(SECRET_NAME, &PostParams::default(), &short)
            .await
            .expect("replace with a short key");
        let mut ctl = c.controller(&["--leader-elect", "false"]);
        let (ty, msg) = c
            .wait_event(NS, SECRET_NAME, "HeartbeatKeyInvalid", "has 5 bytes")
            .await;
        assert_eq!(ty, "Warning", "{msg}");

        // A good key of the user's own is used as it is: no Event, no write.
        ctl.kill();
        let mut good = short.clone();
        let user_key = b"a key the operator chose, 40 bytes long!".to_vec();
        good.data = Some([("key".to_string(), ByteString(user_key.clone()))].into());
        let good = secrets(&c)
            .replace(SECRET_NAME, &PostParams::default(), &good)
            .await
            .expect("replace with a good key");
        let reads_before = controller_secret_reads(&c);
        let ctl = c.controller(&["--leader-elect", "false"]);
        wait_secret_reads(&c, reads_before + 1).await;
        let now = secrets(&c).get(SECRET_NAME).await.expect("get");
        assert_eq!(key_of(&now), Some(user_key));
        assert_eq!(
            now.metadata.resource_version,
            good.metadata.resource_version
        );
        assert_eq!(now.metadata.uid, created.metadata.uid, "never re-created");
        assert!(
            secret_writes(&c).is_empty(),
            "the controller wrote a user's Secret: {:?}\n{}",
            secret_writes(&c),
            ctl.log()
        );
        let invalid = c
            .events_for(NS, SECRET_NAME)
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("HeartbeatKeyInvalid"))
            .count();
        assert_eq!(
            invalid, 2,
            "one Warning per malformed version, none for the good key"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keepers_racing_to_create_the_secret_make_exactly_one_and_none_fails() {
    for_each_backend(|backend| async move {
        let c = Cluster::start_on(backend).await;
        let events = Arc::new(EventPublisher::new(
            c.client.clone(),
            "ferrolb-controller",
            "race-test",
        ));
        let keepers = (0..8).map(|_| {
            let mut k = HeartbeatSecret::new(c.client.clone(), NS, events.clone());
            tokio::spawn(async move { k.ensure().await })
        });
        let mut created = 0;
        for k in keepers {
            match k.await.expect("keeper task") {
                Ok(Ensured::Created) => created += 1,
                Ok(Ensured::Usable) => {}
                other => panic!("a racing keeper failed: {other:?}"),
            }
        }
        assert_eq!(created, 1);
        let secret = secrets(&c).get(SECRET_NAME).await.expect("get");
        assert_eq!(key_of(&secret).map(|k| k.len()), Some(GENERATED_KEY_LEN));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_already_exists_answer_to_the_create_is_not_an_error() {
    // kube-sim only: it answers the create with 409 on demand, which the real server gives
    // only to a race that the test above provokes but cannot force.
    let c = Cluster::start().await;
    let events = Arc::new(EventPublisher::new(
        c.client.clone(),
        "ferrolb-controller",
        "t",
    ));
    let mut keeper = HeartbeatSecret::new(c.client.clone(), NS, events);
    c.sim()
        .faults()
        .fail_next(1, 409, Some("create"), Some("secrets"));
    assert_eq!(keeper.ensure().await.expect("ensure"), Ensured::Created);
    let creates: Vec<u16> = c
        .request_log()
        .into_iter()
        .filter(|r| r.resource == "secrets" && r.verb == "create")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, [409, 201]);
    // Malformed later (the user's edit): reported, never "fixed".
    let mut s = secrets(&c).get(SECRET_NAME).await.expect("get");
    s.data = Some([("key".to_string(), ByteString(vec![1, 2, 3]))].into());
    secrets(&c)
        .replace(SECRET_NAME, &PostParams::default(), &s)
        .await
        .expect("replace");
    assert_eq!(
        keeper.ensure().await.expect("ensure"),
        Ensured::Unusable(KeyProblem::TooShort { len: 3 })
    );
}
