//! Least privilege, proven both ways. The real controller and a real speaker run against
//! kube-sim through a scenario that exercises their code paths (allocation, release, a bad
//! and a good config change, leader election, lease renewal, graceful stop). Then kube-sim's
//! request log is checked against the RBAC rules in `deploy/`:
//!
//! 1. every request a component made is granted by the rules bound to its ServiceAccount
//!    (verb, API group, resource and subresource, namespace for Roles, resourceNames);
//! 2. every rule granted was used by at least one request, or is in [`UNUSED_OK`] with the
//!    reason it cannot be exercised here.
//!
//! Requests are attributed by User-Agent: FerroLB sends `ferrolb-controller/<version> (<id>)`
//! and `ferrolb-speaker/<version> (<node>)`. The rules are read from the files
//! `deploy/kustomization.yaml` lists (the base applies no transformation to RBAC objects, and
//! tests/deploy_manifests.rs renders it with kustomize), so this test needs no kubectl.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::faults::RequestRecord;
use kube_sim::KubeSim;
use serde_json::{json, Value};

/// Grants that no request uses in this test, each with why it is granted anyway.
/// (component, verb, apiGroup, resource, reason)
const UNUSED_OK: &[(&str, &str, &str, &str, &str)] = &[
    (
        "speaker",
        "create",
        "events.k8s.io",
        "events",
        "Announcing/IPConflict Events need an interface whose subnet holds a pool IP; this test \
         runs in the host network namespace, where no pool subnet exists (the e2e tests have one)",
    ),
    (
        "speaker",
        "patch",
        "events.k8s.io",
        "events",
        "kube-runtime's Recorder patches a repeated Announcing/IPConflict Event; same reason as \
         create",
    ),
];

/// How long any one expectation may take.
const DEADLINE: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ----- reading deploy/ ----------------------------------------------------------------------

fn docs_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            if current
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            {
                let v: Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                docs.push(v);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// Every object of the base, from the files its kustomization.yaml lists.
fn base_objects() -> Vec<Value> {
    let dir = repo().join("deploy");
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml"),
    )
    .expect("kustomization.yaml parses");
    kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .flat_map(|r| docs_of(&dir.join(r.as_str().expect("resource path"))))
        .collect()
}

/// One rule as granted to one component: cluster-wide (ClusterRole through a
/// ClusterRoleBinding) or within one namespace (through a RoleBinding).
#[derive(Debug, Clone)]
struct Grant {
    source: String,
    namespace: Option<String>,
    verbs: Vec<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The rules bound to the ServiceAccount that the workload `kind`/`name` runs as.
fn grants_of(objects: &[Value], kind: &str, name: &str) -> Vec<Grant> {
    let workload = objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ has no {kind} {name}"));
    let sa = workload["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind} {name} names no serviceAccountName"));
    let sa_ns = workload["metadata"]["namespace"]
        .as_str()
        .expect("namespace");
    assert!(
        objects.iter().any(|o| o["kind"] == "ServiceAccount"
            && o["metadata"]["name"] == sa
            && o["metadata"]["namespace"] == sa_ns),
        "ServiceAccount {sa_ns}/{sa} is not in deploy/"
    );
    let mut grants = Vec::new();
    for b in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let binds_us =
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            });
        if !binds_us {
            continue;
        }
        let binding_ns = b["metadata"]["namespace"].as_str().map(str::to_string);
        let (role_kind, role_name) = (
            b["roleRef"]["kind"].as_str().expect("roleRef.kind"),
            b["roleRef"]["name"].as_str().expect("roleRef.name"),
        );
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == role_kind
                    && o["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || o["metadata"]["namespace"].as_str() == binding_ns.as_deref())
            })
            .unwrap_or_else(|| {
                panic!(
                    "binding {} refers to a missing {role_kind} {role_name}",
                    b["metadata"]["name"]
                )
            });
        // A RoleBinding limits even a ClusterRole to its namespace.
        let namespace = if b["kind"] == "RoleBinding" {
            binding_ns.clone()
        } else {
            None
        };
        for (i, rule) in role["rules"].as_array().into_iter().flatten().enumerate() {
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{role_kind} {role_name} grants nonResourceURLs, which FerroLB never calls"
            );
            grants.push(Grant {
                source: format!("{role_kind} {role_name} rules[{i}]"),
                namespace: namespace.clone(),
                verbs: strings(&rule["verbs"]),
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                names: strings(&rule["resourceNames"]),
            });
        }
    }
    assert!(!grants.is_empty(), "nothing is bound to {sa_ns}/{sa}");
    grants
}

// ----- the evaluator --------------------------------------------------------------------------

/// A request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Req {
    verb: String,
    group: String,
    /// `services` or `services/status`.
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} ns={} name={}",
            self.verb,
            if self.group.is_empty() {
                "core"
            } else {
                &self.group
            },
            self.resource,
            self.namespace.as_deref().unwrap_or("-"),
            self.name.as_deref().unwrap_or("-")
        )
    }
}

fn req_of(r: &RequestRecord) -> Req {
    Req {
        verb: r.verb.clone(),
        group: r.group.clone(),
        resource: match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        },
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    }
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item || x == "*")
}

/// Whether `g` allows `r`, the way the RBAC authorizer decides it. A rule with resourceNames
/// never matches a request without a name (create, and list/watch: kube-sim's log does not
/// keep field selectors, so a name-restricted list/watch could not be proven and is not used).
fn allows(g: &Grant, r: &Req) -> bool {
    if let Some(ns) = &g.namespace {
        if r.namespace.as_deref() != Some(ns.as_str()) {
            return false;
        }
    }
    has(&g.verbs, &r.verb)
        && has(&g.groups, &r.group)
        && has(&g.resources, &r.resource)
        && (g.names.is_empty() || r.name.as_ref().is_some_and(|n| g.names.contains(n)))
}

// ----- running the components -----------------------------------------------------------------

struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
            .args(args)
            .envs(env.iter().copied())
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("ferrolb starts");
        Self { name, child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test (with the daemon's log) if it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                self.log_text()
            );
        }
    }

    /// SIGTERM, then waits for a clean exit.
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "could not signal {}", self.name);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} did not stop within 10s of SIGTERM; its log:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only our own child, and only if a failed assertion left it running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` until it returns Some, or fails with `what` after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, daemons: &mut [&mut Daemon], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        for d in daemons.iter_mut() {
            d.assert_running();
        }
        if start.elapsed() > DEADLINE {
            let logs: String = daemons
                .iter()
                .map(|d| format!("--- {} log:\n{}", d.name, d.log_text()))
                .collect();
            panic!("timed out after {DEADLINE:?} waiting for {what}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lb_service(name: &str, annotations: Value, extra_spec: Value) -> Service {
    let mut spec = json!({
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": spec,
    }))
    .expect("a valid Service")
}

async fn ingress_of(api: &Api<Service>, name: &str) -> Option<String> {
    let svc = api.get_opt(name).await.ok()??;
    svc.status?.load_balancer?.ingress?.first()?.ip.clone()
}

fn with_config(text: &str) -> Value {
    json!({"data": {"config.yaml": text}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_use_exactly_the_rbac_deploy_grants() {
    let objects = base_objects();
    let components: [(&str, Vec<Grant>); 2] = [
        (
            "controller",
            grants_of(&objects, "Deployment", "ferrolb-controller"),
        ),
        (
            "speaker",
            grants_of(&objects, "DaemonSet", "ferrolb-speaker"),
        ),
    ];
    let base_config = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "ferrolb-config")
        .expect("deploy/ has the ferrolb-config ConfigMap")
        .clone();

    // ----- the cluster, as `kubectl apply -k deploy/` leaves it, plus a node and Services.
    let sim = KubeSim::start().await.expect("kube-sim starts");
    let client = sim.client().expect("client");
    let dir = sim
        .kubeconfig_path()
        .parent()
        .expect("kubeconfig dir")
        .to_path_buf();
    let kubeconfig = sim.kubeconfig_path().to_str().expect("UTF-8").to_string();
    let pp = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "ferrolb-system"}})).unwrap(),
        )
        .await
        .expect("create namespace");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ferrolb-system");
    cms.create(&pp, &serde_json::from_value(base_config).unwrap())
        .await
        .expect("create the base ConfigMap");
    Api::<Node>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}),
            )
            .unwrap(),
        )
        .await
        .expect("create node");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    svcs.create(&pp, &lb_service("basic", json!({}), json!({})))
        .await
        .expect("create Service basic");
    svcs.create(
        &pp,
        &lb_service(
            "local",
            json!({}),
            json!({"externalTrafficPolicy": "Local"}),
        ),
    )
    .await
    .expect("create Service local");
    // A Service naming a pool that does not exist yet: AllocationFailed, and a second,
    // different AllocationFailed for the unchanged Service after the config change below,
    // which kube-runtime's Recorder sends as a patch of the first.
    svcs.create(
        &pp,
        &lb_service(
            "wants-extra",
            json!({"ferrolb.io/address-pool": "extra"}),
            json!({}),
        ),
    )
    .await
    .expect("create Service wants-extra");
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "local-abc", "labels": {"kubernetes.io/service-name": "local"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}, "nodeName": "n1"}],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            }))
            .unwrap(),
        )
        .await
        .expect("create EndpointSlice");

    // ----- the two components, with short lease timings so the renewal paths run quickly.
    let mut controller = Daemon::spawn(
        "controller",
        &dir,
        &[
            "controller",
            "--kubeconfig",
            &kubeconfig,
            "--metrics-addr",
            "127.0.0.1:0",
            "--leader-lease-duration",
            "3s",
            "--leader-renew-deadline",
            "2s",
            "--leader-retry-period",
            "300ms",
        ],
        &[("POD_NAME", "ferrolb-controller-test")],
    );
    let mut speaker = Daemon::spawn(
        "speaker",
        &dir,
        &[
            "speaker",
            "--node-name",
            "n1",
            "--kubeconfig",
            &kubeconfig,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        &[],
    );

    let ip = eventually(
        "Service basic to get an IP",
        &mut [&mut controller, &mut speaker],
        || ingress_of(&svcs, "basic"),
    )
    .await;
    assert!(ip.starts_with("198.51.100."), "{ip}");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "ferrolb-system");
    eventually(
        "the speaker's lease",
        &mut [&mut controller, &mut speaker],
        || async {
            let l = leases.get_opt("ferrolb-speaker-n1").await.ok()??;
            (l.spec?.holder_identity.as_deref() == Some("n1")).then_some(())
        },
    )
    .await;

    // Create and delete a Service: allocation, then release.
    svcs.create(&pp, &lb_service("short-lived", json!({}), json!({})))
        .await
        .expect("create short-lived");
    eventually(
        "Service short-lived to get an IP",
        &mut [&mut controller, &mut speaker],
        || ingress_of(&svcs, "short-lived"),
    )
    .await;
    svcs.delete("short-lived", &DeleteParams::default())
        .await
        .expect("delete short-lived");

    // The same bad config twice (rejected each time; the second is a real update because a
    // label changes, and its identical ConfigInvalid Event becomes a patch of the first), then
    // a good one with pool "extra", which does not serve namespace default, so wants-extra
    // fails again for a new reason.
    let mp = PatchParams::default();
    for attempt in ["1", "2"] {
        let mut bad = with_config(
            "pools:\n  - name: default\n    addresses: [\"198.51.100.250-198.51.100.240\"]\n",
        );
        bad["metadata"] = serde_json::json!({"labels": {"attempt": attempt}});
        cms.patch("ferrolb-config", &mp, &Patch::Merge(bad))
            .await
            .expect("bad config");
        if attempt == "1" {
            // Wait for the first rejection's Event, so the second is a repeat of it.
            let events: kube::Api<k8s_openapi::api::core::v1::Event> =
                kube::Api::namespaced(sim.client().expect("client"), "ferrolb-system");
            eventually(
                "the controller to reject the bad config with a ConfigInvalid Event",
                &mut [&mut controller, &mut speaker],
                || async {
                    let lp = kube::api::ListParams::default().fields("reason=ConfigInvalid");
                    events
                        .list(&lp)
                        .await
                        .ok()
                        .filter(|l| !l.items.is_empty())
                        .map(|_| ())
                },
            )
            .await;
        }
    }
    cms.patch(
        "ferrolb-config",
        &mp,
        &Patch::Merge(with_config(
            "pools:\n  - name: default\n    addresses: [\"198.51.100.240-198.51.100.250\"]\n  \
             - name: extra\n    addresses: [\"203.0.113.0/28\"]\n    namespaces: [elsewhere]\n",
        )),
    )
    .await
    .expect("good config");
    eventually(
        "the controller to fold the repeated ConfigInvalid Event into a series (an Event patch)",
        &mut [&mut controller, &mut speaker],
        || async {
            sim.faults()
                .request_log()
                .iter()
                .any(|r| {
                    r.user_agent.starts_with("ferrolb-controller/")
                        && r.verb == "patch"
                        && r.resource == "events"
                })
                .then_some(())
        },
    )
    .await;
    // Let both renew their leases a few times on top of everything above.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    controller.assert_running();
    speaker.assert_running();

    // ----- graceful stop: both release their leases.
    let c = controller.terminate().await;
    let s = speaker.terminate().await;
    assert!(c.success(), "controller: {c}\n{}", controller.log_text());
    assert!(
        s.success(),
        "speaker must exit 0 on SIGTERM: {s}\n{}",
        speaker.log_text()
    );
    let holder = |name: &'static str| {
        let leases = leases.clone();
        async move {
            leases
                .get(name)
                .await
                .expect("lease exists")
                .spec
                .and_then(|s| s.holder_identity)
        }
    };
    assert_eq!(
        holder("ferrolb-controller").await,
        None,
        "controller released"
    );
    assert_eq!(holder("ferrolb-speaker-n1").await, None, "speaker released");

    // ----- the check, both ways.
    let log = sim.faults().request_log();
    let mut problems = Vec::new();
    let mut report = String::new();
    for (component, grants) in &components {
        let prefix = format!("ferrolb-{component}/");
        let reqs: Vec<Req> = log
            .iter()
            .filter(|r| r.user_agent.starts_with(&prefix))
            .map(req_of)
            .collect();
        assert!(
            reqs.len() > 10,
            "{component} made only {} requests; is the User-Agent still {prefix}...?",
            reqs.len()
        );
        // (1) Every request is granted.
        let mut distinct: BTreeMap<Req, usize> = BTreeMap::new();
        for r in &reqs {
            *distinct.entry(r.clone()).or_default() += 1;
        }
        for (r, n) in &distinct {
            if r.resource.starts_with('/') {
                problems.push(format!(
                    "{component}: non-resource request {r} ({n}x): no nonResourceURLs are granted"
                ));
            } else if !grants.iter().any(|g| allows(g, r)) {
                problems.push(format!("{component}: {r} ({n}x) is not granted by deploy/"));
            }
        }
        // (2) Every granted (verb, group, resource, names) is used, or allowlisted.
        for g in grants {
            for verb in &g.verbs {
                for group in &g.groups {
                    for resource in &g.resources {
                        let used = reqs.iter().filter(|r| {
                            &r.verb == verb
                                && &r.group == group
                                && &r.resource == resource
                                && allows(g, r)
                        });
                        let count = used.count();
                        let allow = UNUSED_OK.iter().find(|(c, v, gr, res, _)| {
                            c == component && v == verb && gr == group && res == resource
                        });
                        report.push_str(&format!(
                            "{component}: {verb} {}/{resource}{} [{}]: {count} request(s)\n",
                            if group.is_empty() { "core" } else { group },
                            g.namespace
                                .as_deref()
                                .map(|n| format!(" in {n}"))
                                .unwrap_or_default(),
                            g.source,
                        ));
                        match (count, allow) {
                            (0, None) => problems.push(format!(
                                "{component}: {} grants {verb} {group}/{resource}, never used: \
                                 remove it, or list it in UNUSED_OK with the reason",
                                g.source
                            )),
                            (n, Some(_)) if n > 0 => problems.push(format!(
                                "{component}: {verb} {group}/{resource} is in UNUSED_OK but was \
                                 used {n}x: drop the allowlist entry"
                            )),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    eprintln!("RBAC usage:\n{report}");
    assert!(
        problems.is_empty(),
        "least-privilege check failed:\n{}\n\nusage:\n{report}",
        problems.join("\n")
    );
}

#[test]
fn evaluator_matches_rbac_semantics() {
    let g = |ns: Option<&str>, verbs: &[&str], resources: &[&str], names: &[&str]| Grant {
        source: "test".into(),
        namespace: ns.map(str::to_string),
        verbs: verbs.iter().map(ToString::to_string).collect(),
        groups: vec![String::new()],
        resources: resources.iter().map(ToString::to_string).collect(),
        names: names.iter().map(ToString::to_string).collect(),
    };
    let r = |verb: &str, resource: &str, ns: Option<&str>, name: Option<&str>| Req {
        verb: verb.into(),
        group: String::new(),
        resource: resource.into(),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
    };
    let services = g(None, &["patch"], &["services"], &[]);
    assert!(allows(
        &services,
        &r("patch", "services", Some("a"), Some("x"))
    ));
    // A subresource needs its own grant.
    assert!(!allows(
        &services,
        &r("patch", "services/status", Some("a"), Some("x"))
    ));
    assert!(!allows(
        &services,
        &r("update", "services", Some("a"), Some("x"))
    ));
    let role = g(Some("ferrolb-system"), &["get"], &["leases"], &["mine"]);
    assert!(allows(
        &role,
        &r("get", "leases", Some("ferrolb-system"), Some("mine"))
    ));
    assert!(!allows(
        &role,
        &r("get", "leases", Some("other"), Some("mine"))
    ));
    assert!(!allows(
        &role,
        &r("get", "leases", Some("ferrolb-system"), Some("yours"))
    ));
    // A Role never covers cluster-scoped requests.
    let nodes = g(Some("ferrolb-system"), &["list"], &["nodes"], &[]);
    assert!(!allows(&nodes, &r("list", "nodes", None, None)));
    // The wrong API group does not match.
    let mut leases = g(None, &["get"], &["leases"], &[]);
    leases.groups = vec!["coordination.k8s.io".into()];
    assert!(!allows(&leases, &r("get", "leases", Some("a"), Some("b"))));
}
