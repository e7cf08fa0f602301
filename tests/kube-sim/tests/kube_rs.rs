//! kube-rs 4.2 against kube-sim over real HTTP: watchers, reflectors, controllers, every verb
//! on every served type, optimistic concurrency, Lease elections, Service defaulting, exact
//! error bodies and the fault switches. Each test starts its own kube-sim, so they run in
//! parallel without sharing state.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as EventsV1Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as RecorderEvent, EventType, Recorder, Reporter};
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Resource, ResourceExt};
use kube_sim::{KubeSim, SimOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// How long any single expectation may take before the test fails. Generous, because CI
/// machines are slow and an injected watch error costs kube about a second of backoff.
const DEADLINE: Duration = Duration::from_secs(30);

async fn sim() -> KubeSim {
    KubeSim::start().await.expect("kube-sim starts")
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives from `rx` until `pred` matches, failing after [`DEADLINE`].
async fn recv_until<T: Debug>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) if pred(&v) => return v,
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended while waiting for {what}"),
            Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
        }
    }
}

/// Waits until a Service watch is open on the server, so closing watches closes something.
async fn wait_for_watch(sim: &KubeSim) {
    eventually("an open Service watch", || {
        let open = sim
            .faults()
            .request_log()
            .iter()
            .any(|r| r.resource == "services" && r.verb == "watch" && r.status == 200);
        async move { open.then_some(()) }
    })
    .await;
}

/// Asserts `err` is an API error with this HTTP code and reason; returns the Status.
fn api_err(err: kube::Error, code: u16, reason: &str) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (code, reason),
                "unexpected status: {s:?}"
            );
            s
        }
        other => panic!("expected API error {code} {reason}, got {other:?}"),
    }
}

fn svc(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn lb_svc(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap()
}

/// Runs a watch stream in the background and forwards every item, so tests can wait for
/// specific events with deadlines instead of polling a stream inline.
fn forward<S, T>(stream: S) -> mpsc::UnboundedReceiver<T>
where
    S: futures::Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

type WEvent = Result<watcher::Event<Service>, watcher::Error>;

fn is_apply_named(e: &WEvent, name: &str, pred: impl Fn(&Service) -> bool) -> bool {
    matches!(e, Ok(watcher::Event::Apply(s)) if s.name_any() == name && pred(s))
}

async fn watcher_sees_everything(cfg: watcher::Config) {
    let sim = sim().await;
    let api: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    api.create(&PostParams::default(), &svc("before"))
        .await
        .unwrap();

    let (reader, writer) = reflector::store();
    let mut rx = forward(reflector(writer, watcher(api.clone(), cfg)));
    tokio::time::timeout(DEADLINE, reader.wait_until_ready())
        .await
        .expect("reflector store becomes ready")
        .unwrap();
    assert_eq!(
        reader
            .state()
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>(),
        ["before"],
        "the initial list holds the pre-existing object"
    );
    // The object that existed before the watcher started arrives as an initial object.
    let _ = recv_until(
        &mut rx,
        "InitApply(before)",
        |e| matches!(e, Ok(watcher::Event::InitApply(s)) if s.name_any() == "before"),
    )
    .await;
    let _ = recv_until(&mut rx, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;

    let created = api
        .create(&PostParams::default(), &svc("live"))
        .await
        .unwrap();
    let seen = recv_until(&mut rx, "Apply(live) after create", |e| {
        is_apply_named(e, "live", |_| true)
    })
    .await;
    let Ok(watcher::Event::Apply(seen)) = seen else {
        unreachable!()
    };
    assert_eq!(seen.uid(), created.uid());
    assert_eq!(seen.resource_version(), created.resource_version());

    api.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"phase": "patched"}}})),
    )
    .await
    .unwrap();
    let _ = recv_until(&mut rx, "Apply(live) with the new label", |e| {
        is_apply_named(e, "live", |s| {
            s.labels().get("phase").map(String::as_str) == Some("patched")
        })
    })
    .await;

    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let _ = recv_until(
        &mut rx,
        "Delete(before)",
        |e| matches!(e, Ok(watcher::Event::Delete(s)) if s.name_any() == "before"),
    )
    .await;
    let names = eventually("the store to follow the changes", || {
        let mut names: Vec<String> = reader.state().iter().map(|s| s.name_any()).collect();
        names.sort();
        async move { (names == ["live"]).then_some(names) }
    })
    .await;
    assert_eq!(names, ["live"]);
}

#[tokio::test]
async fn watcher_list_watch_sees_existing_added_modified_deleted() {
    watcher_sees_everything(watcher::Config::default()).await;
}

#[tokio::test]
async fn watcher_streaming_lists_sees_existing_added_modified_deleted() {
    watcher_sees_everything(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn raw_watch_reports_added_modified_deleted_and_honours_field_selector() {
    let sim = sim().await;
    let api: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let first = api
        .create(&PostParams::default(), &svc("other"))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();
    let wp = WatchParams::default().fields("metadata.name=web");
    let mut rx = forward(api.watch(&wp, &rv).await.unwrap());
    api.create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    api.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    let deleted = api.delete("web", &DeleteParams::default()).await.unwrap();
    let deleted = deleted.left().expect("Service delete returns the object");

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = recv_until(&mut rx, "three events for web", |_| true)
            .await
            .unwrap();
        match ev {
            WatchEvent::Added(s) => kinds.push(("ADDED", s.name_any(), s.resource_version())),
            WatchEvent::Modified(s) => kinds.push(("MODIFIED", s.name_any(), s.resource_version())),
            WatchEvent::Deleted(s) => kinds.push(("DELETED", s.name_any(), s.resource_version())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let types: Vec<(&str, String)> = kinds.iter().map(|(k, n, _)| (*k, n.clone())).collect();
    assert_eq!(
        types,
        [
            ("ADDED", "web".to_string()),
            ("MODIFIED", "web".to_string()),
            ("DELETED", "web".to_string())
        ],
        "only web's events pass the field selector, in order"
    );
    // The DELETED object carries the deletion's resourceVersion, newer than the last write.
    let del_rv: u64 = kinds[2].2.as_deref().unwrap().parse().unwrap();
    let mod_rv: u64 = kinds[1].2.as_deref().unwrap().parse().unwrap();
    assert!(del_rv > mod_rv, "deletion RV {del_rv} after {mod_rv}");
    assert_eq!(deleted.name_any(), "web");
}

#[derive(Default)]
struct Reconciles(Mutex<HashMap<String, usize>>);

impl Reconciles {
    fn count(&self, name: &str) -> usize {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Reconciles>) -> Result<Action, kube::Error> {
    *ctx.0.lock().unwrap().entry(cm.name_any()).or_default() += 1;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Reconciles>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

#[tokio::test]
async fn controller_reconciles_parent_when_owned_child_changes() {
    let sim = sim().await;
    let client = sim.client().unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let parent = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "parent"}, "data": {"k": "v"}}))
                .unwrap(),
        )
        .await
        .unwrap();

    let ctx = Arc::new(Reconciles::default());
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .owns(svcs.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    eventually("the initial reconcile of parent", || {
        let n = ctx.count("parent");
        async move { (n >= 1).then_some(()) }
    })
    .await;

    let mut child = svc("child");
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "parent".into(),
            uid: parent.uid().unwrap(),
            controller: Some(true),
            block_owner_deletion: None,
        },
    ]);
    let before = ctx.count("parent");
    svcs.create(&PostParams::default(), &child).await.unwrap();
    eventually("a reconcile of parent after the child was created", || {
        let n = ctx.count("parent");
        async move { (n > before).then_some(()) }
    })
    .await;

    let before = ctx.count("parent");
    svcs.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    eventually("a reconcile of parent after the child changed", || {
        let n = ctx.count("parent");
        async move { (n > before).then_some(()) }
    })
    .await;

    // The metadata watch for children asks for PartialObjectMetadata and still works.
    let log = sim.faults().request_log();
    assert!(
        log.iter()
            .any(|r| r.resource == "services" && r.verb == "watch" && r.status == 200),
        "the child watch ran: {log:?}"
    );
    handle.abort();
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watch_without_losing_events() {
    /// (uid, resourceVersion): what makes a received object "exactly as created".
    type Ident = (Option<String>, Option<String>);
    let sim = sim().await;
    let api: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let mut rx = forward(watcher(api.clone(), watcher::Config::default()));
    let _ = recv_until(&mut rx, "InitDone", |e| {
        matches!(e, Ok(watcher::Event::InitDone))
    })
    .await;
    wait_for_watch(&sim).await;

    sim.faults().close_watches();
    let mut created = BTreeMap::new();
    for i in 0..25 {
        let s = api
            .create(&PostParams::default(), &svc(&format!("r{i}")))
            .await
            .unwrap();
        created.insert(s.name_any(), (s.uid(), s.resource_version()));
    }

    let mut seen: BTreeMap<String, Vec<Ident>> = BTreeMap::new();
    while seen.len() < created.len() {
        let ev = recv_until(&mut rx, "every created Service", |_| true).await;
        match ev {
            Ok(watcher::Event::Apply(s)) | Ok(watcher::Event::InitApply(s)) => seen
                .entry(s.name_any())
                .or_default()
                .push((s.uid(), s.resource_version())),
            Ok(_) => {}
            Err(e) => panic!("a cleanly closed watch must resume without an error: {e}"),
        }
    }
    for (name, ident) in &created {
        assert_eq!(
            seen.get(name),
            Some(&vec![ident.clone()]),
            "{name} seen exactly once, exactly as created"
        );
    }
    // It resumed from its resourceVersion instead of listing again.
    let log = sim.faults().request_log();
    let lists = log
        .iter()
        .filter(|r| r.resource == "services" && r.verb == "list")
        .count();
    let watches = log
        .iter()
        .filter(|r| r.resource == "services" && r.verb == "watch")
        .count();
    assert_eq!(lists, 1, "no re-list after a clean close");
    assert!(watches >= 2, "the watch was re-opened ({watches} watches)");
}

#[tokio::test]
async fn watcher_relists_after_410_gone_and_converges() {
    let sim = sim().await;
    let api: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    for i in 0..3 {
        api.create(&PostParams::default(), &svc(&format!("g{i}")))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let _rx = forward(reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()).default_backoff(),
    ));
    tokio::time::timeout(DEADLINE, reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();

    wait_for_watch(&sim).await;
    // Keep the watcher away while history is lost: its reconnects fail until `clear`.
    sim.faults()
        .fail_next(u32::MAX, 500, Some("watch"), Some("services"));
    sim.faults().close_watches();
    eventually("a failed re-watch", || {
        let failed = sim
            .faults()
            .request_log()
            .iter()
            .any(|r| r.verb == "watch" && r.status == 500);
        async move { failed.then_some(()) }
    })
    .await;
    for i in 3..8 {
        api.create(&PostParams::default(), &svc(&format!("g{i}")))
            .await
            .unwrap();
    }
    api.delete("g0", &DeleteParams::default()).await.unwrap();
    sim.store().drop_history();
    sim.faults().clear();

    let want: Vec<String> = (1..8).map(|i| format!("g{i}")).collect();
    eventually("the store to converge to the full set after 410", || {
        let mut names: Vec<String> = reader.state().iter().map(|s| s.name_any()).collect();
        names.sort();
        let ok = names == want;
        async move { ok.then_some(()) }
    })
    .await;
    let lists = sim
        .faults()
        .request_log()
        .iter()
        .filter(|r| r.resource == "services" && r.verb == "list")
        .count();
    assert!(lists >= 2, "410 Gone made the watcher list again");
}

// ---------------------------------------------------------------------------------------
// Every verb on every type.

fn assert_created_meta<K: Resource>(obj: &K, ns: Option<&str>) {
    let m = obj.meta();
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36), "uid set");
    assert!(m.resource_version.is_some(), "resourceVersion set");
    assert!(m.creation_timestamp.is_some(), "creationTimestamp set");
    assert_eq!(m.namespace.as_deref(), ns, "namespace from the URL");
}

fn jp(v: Value) -> Patch<()> {
    Patch::Json(serde_json::from_value::<json_patch::Patch>(v).unwrap())
}

/// Create, get, conflicts, every patch type, apply, and deletion with finalizers, on one type.
async fn crud_cycle<K>(api: Api<K>, ns: Option<&str>, mk: impl Fn(&str) -> K)
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let pp = PostParams::default();
    let kind = K::kind(&());
    let a = api.create(&pp, &mk("a")).await.unwrap();
    assert_created_meta(&a, ns);
    assert_eq!(a.name_any(), "a");

    let e = api.create(&pp, &mk("a")).await.unwrap_err();
    let s = api_err(e, 409, "AlreadyExists");
    assert!(s.message.ends_with("\"a\" already exists"), "{}", s.message);

    let got = api.get("a").await.unwrap();
    assert_eq!(got.uid(), a.uid());
    assert!(api.get_opt("missing").await.unwrap().is_none());
    api_err(api.get("missing").await.unwrap_err(), 404, "NotFound");

    // Merge patch, then a replace built from the stale copy must conflict.
    let merged = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"step": "merge"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels().get("step").unwrap(), "merge");
    assert_ne!(merged.resource_version(), a.resource_version());
    let e = api.replace("a", &pp, &a).await.unwrap_err();
    let s = api_err(e, 409, "Conflict");
    assert!(s.message.contains("the object has been modified"), "{s:?}");

    let mut cur = api.get("a").await.unwrap();
    cur.labels_mut().insert("step".into(), "replace".into());
    let replaced = api.replace("a", &pp, &cur).await.unwrap();
    assert_eq!(replaced.labels().get("step").unwrap(), "replace");
    assert_ne!(replaced.resource_version(), cur.resource_version());

    let sm = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"annotations": {"note": "strategic"}}})),
        )
        .await
        .unwrap();
    assert_eq!(sm.annotations().get("note").unwrap(), "strategic");
    assert_eq!(
        sm.labels().get("step").unwrap(),
        "replace",
        "merge kept labels"
    );

    // Server-side apply: with a field manager it applies; without one it is 422.
    let mut body = json!({"apiVersion": K::api_version(&()), "kind": kind,
        "metadata": {"name": "a", "labels": {"applied": "yes"}}});
    let applied = api
        .patch(
            "a",
            &PatchParams::apply("kube-sim-tests"),
            &Patch::Apply(body.clone()),
        )
        .await
        .unwrap();
    assert_eq!(applied.labels().get("applied").unwrap(), "yes");
    let e = api
        .patch("a", &PatchParams::default(), &Patch::Apply(body.clone()))
        .await
        .unwrap_err();
    let s = api_err(e, 422, "Invalid");
    assert_eq!(
        s.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    // Apply is an upsert.
    let mut full = serde_json::to_value(mk("b")).unwrap();
    full["apiVersion"] = json!(K::api_version(&()));
    full["kind"] = json!(kind);
    let b = api
        .patch(
            "b",
            &PatchParams::apply("kube-sim-tests"),
            &Patch::Apply(full),
        )
        .await
        .unwrap();
    assert_created_meta(&b, ns);
    body["metadata"]["name"] = json!("other");
    api_err(
        api.patch("a", &PatchParams::apply("m"), &Patch::Apply(body))
            .await
            .unwrap_err(),
        400,
        "BadRequest",
    );

    // The kube finalizer helper's exact JSON patches (spec §1.6).
    let with_fin = api
        .patch(
            "a",
            &PatchParams::default(),
            &jp(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["example.io/cleanup"]}
            ])),
        )
        .await
        .unwrap();
    assert_eq!(with_fin.finalizers(), ["example.io/cleanup"]);
    let with_two = api
        .patch(
            "a",
            &PatchParams::default(),
            &jp(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["example.io/cleanup"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "example.io/second"}
            ])),
        )
        .await
        .unwrap();
    assert_eq!(
        with_two.finalizers(),
        ["example.io/cleanup", "example.io/second"]
    );
    let e = api
        .patch(
            "a",
            &PatchParams::default(),
            &jp(json!([{"op": "test", "path": "/metadata/finalizers", "value": null}])),
        )
        .await
        .unwrap_err();
    api_err(e, 422, "Invalid");

    // Deleting an object with finalizers only marks it; removing the last one deletes it.
    let rv = with_two.resource_version().unwrap();
    let mut rx = forward(
        api.watch(&WatchParams::default().fields("metadata.name=a"), &rv)
            .await
            .unwrap(),
    );
    let marked = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("an object with finalizers is returned, not a Status");
    assert!(marked.meta().deletion_timestamp.is_some());
    let still = api.get("a").await.unwrap();
    assert!(still.meta().deletion_timestamp.is_some());
    for (idx, fin) in [(1, "example.io/second"), (0, "example.io/cleanup")] {
        api.patch(
            "a",
            &PatchParams::default(),
            &jp(json!([
                {"op": "test", "path": format!("/metadata/finalizers/{idx}"), "value": fin},
                {"op": "remove", "path": format!("/metadata/finalizers/{idx}")}
            ])),
        )
        .await
        .unwrap();
    }
    assert!(
        api.get_opt("a").await.unwrap().is_none(),
        "{kind} a is gone"
    );
    let mut types = Vec::new();
    while !types.contains(&"DELETED") {
        match recv_until(&mut rx, "DELETED", |_| true).await.unwrap() {
            WatchEvent::Modified(o) => {
                assert!(o.meta().deletion_timestamp.is_some());
                types.push("MODIFIED");
            }
            WatchEvent::Deleted(_) => types.push("DELETED"),
            WatchEvent::Added(_) => types.push("ADDED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        types,
        ["MODIFIED", "MODIFIED", "DELETED"],
        "{kind}: mark, drop one finalizer, delete"
    );

    // Without finalizers, delete is immediate.
    api.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("b").await.unwrap().is_none());
    api_err(
        api.delete("b", &DeleteParams::default()).await.unwrap_err(),
        404,
        "NotFound",
    );
}

fn from_json<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn crud_services() {
    let sim = sim().await;
    crud_cycle(
        Api::<Service>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        svc,
    )
    .await;
}

#[tokio::test]
async fn crud_configmaps() {
    let sim = sim().await;
    crud_cycle(
        Api::<ConfigMap>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| from_json(json!({"metadata": {"name": n}, "data": {"a": "1"}})),
    )
    .await;
}

#[tokio::test]
async fn crud_namespaces() {
    let sim = sim().await;
    crud_cycle(Api::<Namespace>::all(sim.client().unwrap()), None, |n| {
        from_json(json!({"metadata": {"name": n}}))
    })
    .await;
}

#[tokio::test]
async fn crud_nodes() {
    let sim = sim().await;
    crud_cycle(Api::<Node>::all(sim.client().unwrap()), None, |n| {
        from_json(json!({"metadata": {"name": n}, "spec": {"podCIDR": "10.244.0.0/24"}}))
    })
    .await;
}

#[tokio::test]
async fn crud_pods() {
    let sim = sim().await;
    crud_cycle(
        Api::<Pod>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| {
            from_json(json!({"metadata": {"name": n},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/app:1"}]}}))
        },
    )
    .await;
}

#[tokio::test]
async fn crud_core_events() {
    let sim = sim().await;
    crud_cycle(
        Api::<CoreEvent>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| {
            from_json(json!({"metadata": {"name": n},
                "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"},
                "reason": "Testing", "message": "hello", "type": "Normal"}))
        },
    )
    .await;
}

#[tokio::test]
async fn crud_events_k8s_io() {
    let sim = sim().await;
    crud_cycle(
        Api::<EventsV1Event>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| {
            from_json(json!({"metadata": {"name": n},
                "eventTime": "2026-11-21T10:00:00.000000Z",
                "regarding": {"kind": "Service", "name": "web", "namespace": "default"},
                "reason": "Testing", "note": "hello", "type": "Normal", "action": "Test",
                "reportingController": "ferrolb.io/test", "reportingInstance": "t-0"}))
        },
    )
    .await;
}

#[tokio::test]
async fn crud_endpointslices() {
    let sim = sim().await;
    crud_cycle(
        Api::<EndpointSlice>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| {
            from_json(
                json!({"metadata": {"name": n, "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["198.51.100.7"], "conditions": {"ready": true}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
            )
        },
    )
    .await;
}

#[tokio::test]
async fn crud_leases() {
    let sim = sim().await;
    crud_cycle(
        Api::<Lease>::default_namespaced(sim.client().unwrap()),
        Some("default"),
        |n| {
            from_json(
                json!({"metadata": {"name": n}, "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15}}),
            )
        },
    )
    .await;
}

/// `/status` writes change only status; main-resource writes leave status alone.
async fn status_separation<K>(api: Api<K>, obj: K, status: Value)
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.name_any();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    let before = serde_json::to_value(&created).unwrap();

    let patched = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"via": "status"}},
                "spec": {"sneaky": "ignored"},
                "status": status.clone()
            })),
        )
        .await
        .unwrap();
    let after = serde_json::to_value(&patched).unwrap();
    assert_eq!(after["status"], status, "status changed through /status");
    assert_eq!(after["spec"], before["spec"], "spec ignored on /status");
    assert!(
        patched.labels().get("via").is_none(),
        "metadata ignored on /status"
    );

    let mut main: Value = after.clone();
    main["status"] = json!({});
    main["metadata"]["labels"] = json!({"via": "main"});
    let replaced = api
        .replace(
            &name,
            &PostParams::default(),
            &serde_json::from_value(main).unwrap(),
        )
        .await
        .unwrap();
    let replaced = serde_json::to_value(&replaced).unwrap();
    assert_eq!(
        replaced["status"], status,
        "main-resource PUT ignores status"
    );
    assert_eq!(replaced["metadata"]["labels"]["via"], "main");

    let merged = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&merged).unwrap()["status"],
        status,
        "main-resource PATCH ignores status"
    );

    // PUT to /status is separated the same way.
    let mut put = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    put["metadata"]["labels"] = json!({"via": "status-put"});
    let st = api
        .replace_status(
            &name,
            &PostParams::default(),
            &serde_json::from_value(put).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(st.labels().get("via").unwrap(), "main");
}

#[tokio::test]
async fn service_status_subresource_is_separate() {
    let sim = sim().await;
    status_separation(
        Api::<Service>::default_namespaced(sim.client().unwrap()),
        lb_svc("lb"),
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.10", "ipMode": "VIP"}]}}),
    )
    .await;
}

#[tokio::test]
async fn node_status_subresource_is_separate() {
    let sim = sim().await;
    status_separation(
        Api::<Node>::all(sim.client().unwrap()),
        from_json(json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}})),
        json!({"addresses": [{"type": "InternalIP", "address": "198.51.100.21"}],
               "conditions": [{"type": "Ready", "status": "True"}]}),
    )
    .await;
}

#[tokio::test]
async fn recorder_events_read_back_as_core_events() {
    let sim = sim().await;
    let client = sim.client().unwrap();
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let web = svcs
        .create(&PostParams::default(), &lb_svc("web"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb.io/controller".into(),
            instance: Some("ctl-0".into()),
        },
    );
    let ev = RecorderEvent {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("assigned 198.51.100.10".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    let reference = web.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    // The repeat is a merge patch adding `series`; it must not fail.
    recorder.publish(&ev, &reference).await.unwrap();

    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Service,involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid={}",
        web.uid().unwrap()
    ));
    let list = core.list(&lp).await.unwrap();
    assert_eq!(list.items.len(), 1, "one event, updated in place");
    let e = &list.items[0];
    assert_eq!(e.involved_object.name.as_deref(), Some("web"));
    assert_eq!(e.involved_object.kind.as_deref(), Some("Service"));
    assert_eq!(e.involved_object.uid, web.uid());
    assert_eq!(e.message.as_deref(), Some("assigned 198.51.100.10"));
    assert_eq!(e.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.reporting_component.as_deref(),
        Some("ferrolb.io/controller")
    );
    assert_eq!(e.reporting_instance.as_deref(), Some("ctl-0"));
    assert!(e.event_time.is_some());
    assert_eq!(
        e.series.as_ref().and_then(|s| s.count),
        Some(2),
        "the repeat is recorded as a series"
    );

    // Unrelated events are filtered out by the involvedObject field selector.
    let other = core
        .list(&ListParams::default().fields("involvedObject.name=nothing"))
        .await
        .unwrap();
    assert!(other.items.is_empty());

    // And the events.k8s.io view still reads as the Recorder wrote it.
    let v1: Api<EventsV1Event> = Api::default_namespaced(client);
    let items = v1.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].note.as_deref(), Some("assigned 198.51.100.10"));
    assert_eq!(
        items[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );
}

// ---------------------------------------------------------------------------------------
// Leases and elections.

#[tokio::test]
async fn lease_put_without_resource_version_is_invalid() {
    let sim = sim().await;
    let leases: Api<Lease> = Api::default_namespaced(sim.client().unwrap());
    let l: Lease =
        from_json(json!({"metadata": {"name": "test"}, "spec": {"holderIdentity": "a"}}));
    leases.create(&PostParams::default(), &l).await.unwrap();
    let e = leases
        .replace("test", &PostParams::default(), &l)
        .await
        .unwrap_err();
    let s = api_err(e, 422, "Invalid");
    assert_eq!(
        s.message,
        "leases.coordination.k8s.io \"test\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    );
    // Services allow unconditional updates.
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    svcs.create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    let mut s = svcs.get("web").await.unwrap();
    s.metadata.resource_version = None;
    svcs.replace("web", &PostParams::default(), &s)
        .await
        .unwrap();
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One client-go style election step: take the lease if it is free, expired or ours.
/// Returns `Some((read_rv, new_rv))` when our PUT succeeded.
async fn try_acquire(
    leases: &Api<Lease>,
    me: &str,
    duration_s: i32,
) -> Result<Option<(u64, u64)>, kube::Error> {
    let Some(mut lease) = leases.get_opt("lock").await? else {
        let l: Lease = from_json(json!({"metadata": {"name": "lock"},
            "spec": {"holderIdentity": me, "leaseDurationSeconds": duration_s,
                     "acquireTime": now_micro(), "renewTime": now_micro(), "leaseTransitions": 0}}));
        return match leases.create(&PostParams::default(), &l).await {
            Ok(c) => Ok(Some((0, c.resource_version().unwrap().parse().unwrap()))),
            Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" => Ok(None),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(t), Some(d)) => {
            t.0 + jiff::SignedDuration::from_secs(i64::from(d)) <= jiff::Timestamp::now()
        }
        _ => true,
    };
    if !holder.is_empty() && holder != me && !expired {
        return Ok(None);
    }
    if holder != me {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now_micro());
    }
    spec.holder_identity = Some(me.into());
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(duration_s);
    let read_rv: u64 = lease.resource_version().unwrap().parse().unwrap();
    match leases.replace("lock", &PostParams::default(), &lease).await {
        Ok(new) => Ok(Some((
            read_rv,
            new.resource_version().unwrap().parse().unwrap(),
        ))),
        Err(kube::Error::Api(s)) if s.reason == "Conflict" => Ok(None),
        Err(e) => Err(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_election_never_has_two_holders_for_one_version() {
    let sim = sim().await;
    // (holder, rv the PUT was based on, rv it produced) for every successful write.
    let wins: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
    let conflicts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for me in ["alice", "bob"] {
        let leases: Api<Lease> = Api::default_namespaced(sim.client().unwrap());
        let wins = wins.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..150 {
                // Duration 0: the lease is always expired, so both contenders always race.
                match try_acquire(&leases, me, 0).await.unwrap() {
                    Some((read, new)) => wins.lock().unwrap().push((me.to_string(), read, new)),
                    None => {
                        conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut wins = wins.lock().unwrap().clone();
    wins.sort_by_key(|w| w.2);
    println!(
        "election: {} successful writes, {} lost races",
        wins.len(),
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(!wins.is_empty());
    // Optimistic concurrency means the successful writes form one chain: each was based on
    // exactly the version the previous success produced. Two winners on one RV, or a write
    // based on a version someone else had already replaced, would break the chain.
    for pair in wins.windows(2) {
        assert_eq!(
            pair[1].1, pair[0].2,
            "write {:?} was not based on the previous winner {:?}",
            pair[1], pair[0]
        );
    }
    let holders: std::collections::BTreeSet<&str> = wins.iter().map(|w| w.0.as_str()).collect();
    println!("holders over time: {holders:?}");
    let lease = Api::<Lease>::default_namespaced(sim.client().unwrap())
        .get("lock")
        .await
        .unwrap();
    let last = wins.last().unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(last.0.as_str()),
        "the stored holder is the last winner"
    );
}

#[tokio::test]
async fn lease_takeover_only_after_expiry() {
    let sim = sim().await;
    let leases: Api<Lease> = Api::default_namespaced(sim.client().unwrap());
    assert!(try_acquire(&leases, "alice", 2).await.unwrap().is_some());
    // Bob cannot take a live lease; he polls until alice's lease (not renewed) expires.
    let start = Instant::now();
    let (read, _) = eventually("bob to take over the expired lease", || {
        let leases = leases.clone();
        async move { try_acquire(&leases, "bob", 2).await.unwrap() }
    })
    .await;
    assert!(read > 0);
    let lease = leases.get("lock").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("bob"));
    assert_eq!(lease.lease_transitions, Some(1));
    // The server stores what alice wrote; bob's view of expiry came from it. Bob may only
    // have won once alice's renewTime + 2 s had passed.
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "bob won at {:?}, before alice's lease could expire",
        start.elapsed()
    );
    // Alice, now a follower, cannot take it back while bob's lease is live.
    assert!(try_acquire(&leases, "alice", 2).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// Service defaulting and validation.

#[tokio::test]
async fn service_defaults_match_the_real_server() {
    let sim = sim().await;
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let s = svcs
        .create(&PostParams::default(), &lb_svc("web"))
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    let ip: std::net::Ipv4Addr = spec.cluster_ip.as_deref().unwrap().parse().unwrap();
    let o = ip.octets();
    assert!(
        o[0] == 10 && (96..112).contains(&o[1]),
        "{ip} is in 10.96.0.0/12"
    );
    assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
    let np = port.node_port.unwrap();
    assert!((30000..=32767).contains(&np), "nodePort {np} in range");
    assert_eq!(
        serde_json::to_value(s.status.unwrap()).unwrap(),
        json!({"loadBalancer": {}})
    );

    // A ClusterIP Service gets no node ports; two Services never share an IP or node port.
    let c = svcs
        .create(&PostParams::default(), &svc("plain"))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(c.type_.as_deref(), Some("ClusterIP"));
    assert!(c.ports.unwrap()[0].node_port.is_none());
    assert_ne!(c.cluster_ip, spec.cluster_ip);
    let other = svcs
        .create(&PostParams::default(), &lb_svc("web2"))
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_ne!(other.ports.unwrap()[0].node_port, Some(np));
}

#[tokio::test]
async fn invalid_service_is_422_with_causes() {
    let sim = sim().await;
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let bad: Service = from_json(json!({"metadata": {"name": "bad"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 80}]}}));
    let s = api_err(
        svcs.create(&PostParams::default(), &bad).await.unwrap_err(),
        422,
        "Invalid",
    );
    assert!(
        s.message.starts_with("Service \"bad\" is invalid: "),
        "{}",
        s.message
    );
    let causes = s.details.unwrap().causes;
    assert!(!causes.is_empty(), "422 lists its causes");
    assert!(
        causes
            .iter()
            .all(|c| c.field.starts_with("spec.ports") && !c.reason.is_empty()),
        "{causes:?}"
    );
    let bad_name: Service = from_json(json!({"metadata": {"name": "1bad"},
        "spec": {"ports": [{"port": 80}]}}));
    let s = api_err(
        svcs.create(&PostParams::default(), &bad_name)
            .await
            .unwrap_err(),
        422,
        "Invalid",
    );
    assert_eq!(s.details.unwrap().causes[0].field, "metadata.name");
    assert!(svcs.get_opt("bad").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// Exact error bodies on the wire.

/// One HTTP/1.1 request on a fresh connection; returns the status and the parsed JSON body.
fn raw_http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body).unwrap();
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn error_bodies_match_the_api_server_exactly() {
    let sim = sim().await;
    let addr = sim.addr();
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let k1 = svcs
        .create(&PostParams::default(), &svc("k1"))
        .await
        .unwrap();
    svcs.patch(
        "k1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap();
    let leases: Api<Lease> = Api::default_namespaced(sim.client().unwrap());
    leases
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "test"}})),
        )
        .await
        .unwrap();

    let cases: Vec<(&str, String, Option<Value>, u16, Value)> = vec![
        (
            "GET",
            "/api/v1/namespaces/default/services/nope".into(),
            None,
            404,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"services"},"code":404}),
        ),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/x".into(),
            None,
            404,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"x\" not found","reason":"NotFound","details":{"name":"x","group":"coordination.k8s.io","kind":"leases"},"code":404}),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services".into(),
            Some(serde_json::to_value(svc("k1")).unwrap()),
            409,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"k1\" already exists","reason":"AlreadyExists","details":{"name":"k1","kind":"services"},"code":409}),
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/services/k1".into(),
            Some(serde_json::to_value(&k1).unwrap()),
            409,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on services \"k1\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"k1","kind":"services"},"code":409}),
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/test".into(),
            Some(
                json!({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"test"}}),
            ),
            422,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"test\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update","reason":"Invalid","details":{"name":"test","group":"coordination.k8s.io","kind":"leases","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 0: must be specified for an update","field":"metadata.resourceVersion"}]},"code":422}),
        ),
    ];
    for (method, path, body, code, want) in cases {
        let (status, got) =
            tokio::task::spawn_blocking(move || raw_http(addr, method, &path, body.as_ref()))
                .await
                .unwrap();
        assert_eq!(status, code, "HTTP status equals the body's code");
        assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------------------------
// Fault injection and the request log.

#[tokio::test]
async fn injected_500_fails_once_then_recovers() {
    let sim = sim().await;
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    svcs.create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    sim.faults()
        .fail_next(1, 500, Some("get"), Some("services"));
    // Other verbs and resources are not affected by the rule.
    svcs.list(&ListParams::default()).await.unwrap();
    let s = api_err(svcs.get("web").await.unwrap_err(), 500, "InternalError");
    assert_eq!(s.status, Some(kube::core::response::StatusSummary::Failure));
    svcs.get("web").await.unwrap();
}

#[tokio::test]
async fn latency_delays_every_request() {
    let sim = sim().await;
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    sim.faults().set_latency(Duration::from_millis(300));
    let start = Instant::now();
    svcs.list(&ListParams::default()).await.unwrap();
    // A lower bound only: the server sleeps at least this long before answering.
    assert!(start.elapsed() >= Duration::from_millis(300));
    sim.faults().set_latency(Duration::ZERO);
    svcs.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn pause_refuses_connections_then_recovers() {
    let sim = sim().await;
    let addr = sim.addr();
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    svcs.create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    sim.faults().pause(Duration::from_secs(2));
    eventually("connections to be refused", || async move {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(svcs.get("web").await.is_err(), "requests fail while paused");
    // After the pause the same address serves again, with the same data.
    let back = eventually("the server to come back", || {
        let svcs = svcs.clone();
        async move { svcs.get("web").await.ok() }
    })
    .await;
    assert_eq!(back.name_any(), "web");
}

#[tokio::test]
async fn request_log_records_who_did_what() {
    let sim = sim().await;
    // kube sends no User-Agent of its own; FerroLB sets one, so do the same here.
    let mut cfg = kube::Config::new(sim.url().parse().unwrap());
    cfg.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("ferrolb-test/1"),
    ));
    let svcs: Api<Service> = Api::default_namespaced(kube::Client::try_from(cfg).unwrap());
    svcs.create(&PostParams::default(), &lb_svc("web"))
        .await
        .unwrap();
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}})),
    )
    .await
    .unwrap();
    let _ = svcs.get("nope").await;
    let log = sim.faults().request_log();
    let find = |verb: &str| {
        log.iter()
            .find(|r| r.verb == verb)
            .unwrap_or_else(|| panic!("no {verb} in {log:?}"))
    };
    let create = find("create");
    assert_eq!(create.user_agent, "ferrolb-test/1");
    assert_eq!(
        (
            create.resource.as_str(),
            create.group.as_str(),
            create.namespace.as_deref(),
            create.status
        ),
        ("services", "", Some("default"), 201)
    );
    let patch = find("patch");
    assert_eq!(
        (
            patch.subresource.as_deref(),
            patch.name.as_deref(),
            patch.status
        ),
        (Some("status"), Some("web"), 200)
    );
    let get = find("get");
    assert_eq!((get.name.as_deref(), get.status), (Some("nope"), 404));
}

/// A sim with full history keeps every change for invariant checks.
#[tokio::test]
async fn full_history_records_every_change() {
    let sim = KubeSim::start_with(SimOptions {
        keep_full_history: true,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    svcs.create(&PostParams::default(), &svc("web"))
        .await
        .unwrap();
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    let hist = sim.store().full_history().unwrap();
    let kinds: Vec<&str> = hist
        .iter()
        .filter(|c| c.object["kind"] == "Service")
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(kinds, ["ADDED", "DELETED"]);
    let rvs: Vec<u64> = hist.iter().map(|c| c.rv).collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "RVs strictly increase");
}

/// A uid in a write is an identity check, as on the real server: a PUT naming another uid is
/// a storage precondition failure (409), a patch naming one tries to change an immutable
/// field (422), on the main resource and on /status alike. Controllers rely on this so a
/// write decided for a deleted object never lands on a re-created one of the same name.
#[tokio::test]
async fn writes_naming_another_uid_are_refused() {
    let sim = sim().await;
    let svcs: Api<Service> = Api::default_namespaced(sim.client().unwrap());
    let first = svcs
        .create(&PostParams::default(), &lb_svc("web"))
        .await
        .unwrap();
    let old_uid = first.metadata.uid.clone().unwrap();
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    let second = svcs
        .create(&PostParams::default(), &lb_svc("web"))
        .await
        .unwrap();
    let uid = second.metadata.uid.clone().unwrap();
    assert_ne!(old_uid, uid, "a re-created object gets a new uid");

    let mut put = second.clone();
    put.metadata.uid = Some(old_uid.clone());
    let s = api_err(
        svcs.replace("web", &PostParams::default(), &put)
            .await
            .unwrap_err(),
        409,
        "Conflict",
    );
    assert_eq!(
        s.message,
        format!(
            "Operation cannot be fulfilled on services \"web\": StorageError: invalid object, \
             Code: 4, Key: /registry/services/specs/default/web, ResourceVersion: 0, \
             AdditionalErrorMsg: Precondition failed: UID in precondition: {old_uid}, UID in \
             object meta: {uid}"
        )
    );

    let pp = PatchParams::default();
    let stale = json!({"metadata": {"uid": old_uid, "annotations": {"a": "b"}},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}});
    for (what, result) in [
        ("patch", svcs.patch("web", &pp, &Patch::Merge(&stale)).await),
        (
            "patch_status",
            svcs.patch_status("web", &pp, &Patch::Merge(&stale)).await,
        ),
    ] {
        let s = api_err(result.unwrap_err(), 422, "Invalid");
        assert_eq!(
            s.message,
            format!("Service \"web\" is invalid: metadata.uid: Invalid value: \"{old_uid}\": field is immutable"),
            "{what}"
        );
    }
    let now = svcs.get("web").await.unwrap();
    assert_eq!(
        now.metadata.resource_version,
        second.metadata.resource_version
    );

    // Server-side apply naming a uid where no object exists is refused, not a create.
    let ssa = PatchParams::apply("test");
    let ghost = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ghost", "uid": old_uid},
        "spec": {"ports": [{"port": 80}]}});
    let s = api_err(
        svcs.patch("ghost", &ssa, &Patch::Apply(&ghost))
            .await
            .unwrap_err(),
        409,
        "Conflict",
    );
    assert_eq!(
        s.message,
        format!("Operation cannot be fulfilled on services \"ghost\": uid mismatch: the provided object specified uid {old_uid}, and no existing object was found")
    );

    // The right uid passes.
    let fresh = json!({"metadata": {"uid": uid},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}});
    let done = svcs
        .patch_status("web", &pp, &Patch::Merge(&fresh))
        .await
        .unwrap();
    assert_eq!(
        done.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip
            .as_deref(),
        Some("198.51.100.1")
    );
}
