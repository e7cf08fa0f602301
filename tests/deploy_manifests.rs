//! The install manifests, checked the way they are used: `kubectl kustomize deploy/` renders
//! them, kube-sim takes what it serves through `kubectl apply --server-side`, and everything
//! else (workloads, RBAC) is decoded into the typed Kubernetes API structs, where an unknown
//! (misspelt) field is an error, and its security settings are asserted. The sample Services in
//! `examples/` go through `kubectl apply -f` too.
//!
//! Needs the real `kubectl` (with its built-in kustomize). Without it the tests print a loud
//! SKIPPED line, unless `CI=true` or `FERROLB_E2E=1`, where a missing kubectl is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use ferrolb::cli::{Cli, Command as Sub};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_sim::KubeSim;
use serde_json::Value;

/// The longest one kubectl run may take.
const DEADLINE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether kubectl can run here; panics when it must (CI) and cannot.
fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    assert!(
        !ferrolb_testkit::strict(),
        "kubectl not found, and CI=true or FERROLB_E2E=1 makes it required"
    );
    eprintln!(
        "\n*** SKIPPED: kubectl not found; the deploy/ and examples/ manifests were NOT checked. \
         Install kubectl v1.32 (it includes kustomize). ***\n"
    );
    false
}

/// A private directory for kubectl's discovery cache and HOME: kubectl caches discovery per
/// host:port, and a port reused by another test's kube-sim must not see a stale cache.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-deploy-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs kubectl (with `stdin` piped in if given), killing it after [`DEADLINE`].
fn kubectl(scratch: &Scratch, kubeconfig: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new("kubectl");
    if let Some(k) = kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
    let mut child = cmd
        .arg("--cache-dir")
        .arg(scratch.0.join("cache"))
        .args(args)
        .env("HOME", &scratch.0)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    // Feed stdin from a thread so a large input cannot deadlock against a full stdout pipe.
    let mut input = child.stdin.take().expect("stdin is piped");
    let text = stdin.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("kubectl output"),
        Err(_) => {
            // Our own child, by its pid.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("kubectl {args:?} did not finish within {DEADLINE:?}");
        }
    };
    let _ = feeder.join();
    out
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

/// One YAML document of a stream: its text and its parsed tree.
struct Doc {
    text: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Splits a multi-document YAML stream (as kustomize prints it) and parses each document.
fn split(stream: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if current.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        }) {
            let value: Value = serde_saphyr::from_str(current)
                .unwrap_or_else(|e| panic!("document does not parse: {e}\n{current}"));
            docs.push(Doc {
                text: std::mem::take(current),
                value,
            });
        }
        current.clear();
    };
    for line in stream.lines() {
        if line.trim_end() == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

/// Every path (`a.b[0].c`) present in `original` but missing from `reencoded`: a field the
/// typed struct did not know, i.e. a misspelt or misplaced one that the API server would
/// reject (or, worse, silently drop).
fn dropped_fields(original: &Value, reencoded: &Value, path: &str, out: &mut Vec<String>) {
    match (original, reencoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => dropped_fields(v, w, &p, out),
                    // Explicit nulls and empty maps/lists carry no setting.
                    None if v.is_null() => {}
                    None if v.as_object().is_some_and(|m| m.is_empty()) => {}
                    None if v.as_array().is_some_and(|m| m.is_empty()) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in a.iter().enumerate() {
                match b.get(i) {
                    Some(w) => dropped_fields(v, w, &format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]")),
                }
            }
        }
        _ => {}
    }
}

/// Decodes `doc` as `T`, failing on any field `T` does not have.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Doc) -> T {
    let t: T = serde_json::from_value(doc.value.clone()).unwrap_or_else(|e| {
        panic!(
            "{} {}: does not decode: {e}\n{}",
            doc.kind(),
            doc.name(),
            doc.text
        )
    });
    let back = serde_json::to_value(&t).expect("re-encode");
    let mut dropped = Vec::new();
    dropped_fields(&doc.value, &back, "", &mut dropped);
    assert!(
        dropped.is_empty(),
        "{} {}: unknown fields (typos?) {dropped:?}",
        doc.kind(),
        doc.name()
    );
    t
}

/// Kinds kube-sim serves, so they go through a real `kubectl apply --server-side`.
const SERVED: &[&str] = &["Namespace", "ConfigMap", "Service"];
/// Kinds kube-sim does not serve; they are decoded and checked here instead. A kind in
/// neither list fails the test: adding one to deploy/ needs a conscious decision here.
const CHECKED_OFFLINE: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Deployment",
    "DaemonSet",
];

fn render(scratch: &Scratch, dir: &Path) -> Vec<Doc> {
    let dir = dir.to_str().expect("UTF-8 path");
    split(&ok(
        kubectl(scratch, None, &["kustomize", dir], ""),
        "kubectl kustomize",
    ))
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("deploy/ renders no {kind} {name}"))
}

fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "one container per pod");
    assert!(
        spec.init_containers.as_ref().is_none_or(Vec::is_empty),
        "no init containers"
    );
    &spec.containers[0]
}

/// The port a probe targets, resolving a named port through the container's ports.
fn probe_target(c: &Container, p: &Probe) -> (String, i32) {
    let get = p.http_get.as_ref().expect("an HTTP probe");
    let port = match &get.port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("probe port {name} is not a container port"))
                .container_port
        }
    };
    (get.path.clone().unwrap_or_default(), port)
}

fn env_field_ref(c: &Container, var: &str) -> String {
    let env = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == var)
        .unwrap_or_else(|| panic!("container {} has no env {var}", c.name));
    env.value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone())
        .unwrap_or_else(|| panic!("env {var} is not from the downward API"))
}

/// The common hardening of both containers; `caps_added` is what may be added back.
fn assert_hardened(c: &Container, pod: &PodSpec, caps_added: &[&str]) {
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    assert_ne!(sc.privileged, Some(true), "{}", c.name);
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let added: Vec<&str> = caps.add.iter().flatten().map(String::as_str).collect();
    assert_eq!(added, caps_added, "{}: capabilities added", c.name);
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod
            .security_context
            .as_ref()
            .and_then(|p| p.seccomp_profile.as_ref()))
        .expect("a seccomp profile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    assert!(
        pod.host_pid != Some(true) && pod.host_ipc != Some(true),
        "no host PID/IPC namespace"
    );
    assert!(pod
        .volumes
        .as_ref()
        .is_none_or(|v| v.iter().all(|v| v.host_path.is_none())));
    let res = c.resources.as_ref().expect("resources");
    assert!(res
        .requests
        .as_ref()
        .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")));
    assert!(res
        .limits
        .as_ref()
        .is_some_and(|r| r.contains_key("memory")));
}

fn assert_probes(c: &Container, port: i32) {
    let live = c.liveness_probe.as_ref().expect("liveness probe");
    let ready = c.readiness_probe.as_ref().expect("readiness probe");
    assert_eq!(probe_target(c, live), ("/healthz".to_string(), port));
    assert_eq!(probe_target(c, ready), ("/readyz".to_string(), port));
}

fn parse_args(c: &Container, extra: &[&str]) -> Cli {
    assert!(c.command.is_none(), "the image's entrypoint runs ferrolb");
    let mut argv = vec!["ferrolb".to_string()];
    argv.extend(c.args.iter().flatten().cloned());
    argv.extend(extra.iter().map(ToString::to_string));
    Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("args {argv:?} are not valid: {e}"))
}

#[test]
fn base_renders_applies_and_is_hardened() {
    if !kubectl_available() {
        return;
    }
    let scratch = Scratch::new("base");
    let docs = render(&scratch, &repo().join("deploy"));

    // Every kind is either applied to kube-sim or checked offline.
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    for k in &kinds {
        assert!(
            SERVED.contains(k) || CHECKED_OFFLINE.contains(k),
            "deploy/ renders a {k}, which this test neither applies nor checks"
        );
    }

    // What kube-sim serves goes through a real server-side apply.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let sim = rt.block_on(KubeSim::start()).expect("kube-sim starts");
    let served: Vec<&Doc> = docs.iter().filter(|d| SERVED.contains(&d.kind())).collect();
    assert!(served.iter().any(|d| d.kind() == "Namespace"));
    let stream: String = served.iter().map(|d| format!("---\n{}", d.text)).collect();
    let applied = ok(
        kubectl(
            &scratch,
            Some(sim.kubeconfig_path()),
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "ferrolb-test",
                "-f",
                "-",
            ],
            &stream,
        ),
        "kubectl apply --server-side",
    );
    assert_eq!(applied.lines().count(), served.len(), "{applied}");
    assert!(
        applied.contains("namespace/ferrolb-system serverside-applied"),
        "{applied}"
    );
    assert!(
        applied.contains("configmap/ferrolb-config serverside-applied"),
        "{applied}"
    );
    // And it reads back.
    let got = ok(
        kubectl(
            &scratch,
            Some(sim.kubeconfig_path()),
            &[
                "get",
                "configmap",
                "ferrolb-config",
                "-n",
                "ferrolb-system",
                "-o",
                "json",
            ],
            "",
        ),
        "kubectl get configmap",
    );
    let cm: Value = serde_json::from_str(&got).expect("JSON");
    assert!(cm["data"]["config.yaml"]
        .as_str()
        .is_some_and(|s| s.contains("pools:")));

    // Everything else decodes strictly into the API types.
    for d in docs.iter().filter(|d| CHECKED_OFFLINE.contains(&d.kind())) {
        match d.kind() {
            "ServiceAccount" => {
                typed::<k8s_openapi::api::core::v1::ServiceAccount>(d);
            }
            "ClusterRole" => {
                typed::<ClusterRole>(d);
            }
            "ClusterRoleBinding" => {
                typed::<ClusterRoleBinding>(d);
            }
            "Role" => {
                typed::<Role>(d);
            }
            "RoleBinding" => {
                typed::<RoleBinding>(d);
            }
            "Deployment" => {
                typed::<Deployment>(d);
            }
            "DaemonSet" => {
                typed::<DaemonSet>(d);
            }
            other => unreachable!("{other}"),
        }
    }
    // Namespaced objects all live in ferrolb-system.
    for d in &docs {
        let ns = d.value["metadata"]["namespace"].as_str();
        match d.kind() {
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" => assert_eq!(ns, None),
            _ => assert_eq!(ns, Some("ferrolb-system"), "{} {}", d.kind(), d.name()),
        }
    }
}

#[test]
fn controller_deployment() {
    if !kubectl_available() {
        return;
    }
    let scratch = Scratch::new("controller");
    let docs = render(&scratch, &repo().join("deploy"));
    let dep: Deployment = typed(find(&docs, "Deployment", "ferrolb-controller"));
    let spec = dep.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2), "two replicas, one leader");
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("ferrolb-controller")
    );
    assert_ne!(
        pod.host_network,
        Some(true),
        "the controller needs no host network"
    );
    let c = only_container(&pod);
    assert_hardened(c, &pod, &[]);
    // Non-root, from the pod or the container.
    let non_root = c
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .or(pod
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root));
    assert_eq!(non_root, Some(true));
    let uid = c
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or(pod.security_context.as_ref().and_then(|s| s.run_as_user));
    assert!(
        uid.is_some_and(|u| u > 0),
        "a numeric non-root uid: {uid:?}"
    );
    assert_eq!(env_field_ref(c, "POD_NAME"), "metadata.name");
    assert_eq!(c.image.as_deref(), Some("ferrolb:latest"));

    let Sub::Controller(args) = parse_args(c, &[]).command else {
        panic!("the controller container does not run `ferrolb controller`");
    };
    assert_eq!(args.cluster.namespace, "ferrolb-system");
    assert_eq!(args.cluster.config_map, "ferrolb-config");
    assert!(args.leader_elect, "two replicas need leader election");
    assert!(args.cluster.kubeconfig.is_none(), "in-cluster config");
    assert!(args.metrics_addr.ip().is_unspecified(), "probes reach it");
    let port = i32::from(args.metrics_addr.port());
    assert_eq!(port, 7472);
    assert_probes(c, port);
}

#[test]
fn speaker_daemonset() {
    if !kubectl_available() {
        return;
    }
    let scratch = Scratch::new("speaker");
    let docs = render(&scratch, &repo().join("deploy"));
    let ds: DaemonSet = typed(find(&docs, "DaemonSet", "ferrolb-speaker"));
    let pod = ds.spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("ferrolb-speaker"));
    assert_eq!(
        pod.host_network,
        Some(true),
        "ARP is answered on the node's interfaces"
    );
    let c = only_container(&pod);
    assert_hardened(c, &pod, &["NET_RAW"]);
    assert_eq!(env_field_ref(c, "NODE_NAME"), "spec.nodeName");
    assert_eq!(c.image.as_deref(), Some("ferrolb:latest"));

    // Runs on kind's control-plane node (and on older clusters' "master" nodes).
    let tolerations = pod.tolerations.clone().unwrap_or_default();
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)
                && t.operator.as_deref() == Some("Exists")
                && t.effect.as_deref().is_none_or(|e| e == "NoSchedule")),
            "no NoSchedule toleration for {key}: {tolerations:?}"
        );
    }

    // --node-name comes from $NODE_NAME: the args must not set it, and the flag must read it.
    assert!(!c
        .args
        .iter()
        .flatten()
        .any(|a| a.starts_with("--node-name")));
    let cmd = Cli::command();
    let speaker = cmd.find_subcommand("speaker").expect("speaker subcommand");
    let node_arg = speaker
        .get_arguments()
        .find(|a| a.get_id() == "node_name")
        .expect("--node-name");
    assert_eq!(
        node_arg.get_env().and_then(|e| e.to_str()),
        Some("NODE_NAME")
    );
    // Stand in for the value the kubelet puts into $NODE_NAME.
    let Sub::Speaker(args) = parse_args(c, &["--node-name", "node-from-downward-api"]).command
    else {
        panic!("the speaker container does not run `ferrolb speaker`");
    };
    assert_eq!(args.cluster.namespace, "ferrolb-system");
    assert_eq!(args.cluster.config_map, "ferrolb-config");
    assert!(args.metrics_addr.ip().is_unspecified(), "probes reach it");
    let port = i32::from(args.metrics_addr.port());
    assert_eq!(port, 7473);
    assert_probes(c, port);
}

/// The image is set in one place: an overlay's `images:` entry changes both workloads.
#[test]
fn image_is_overridable_from_an_overlay() {
    if !kubectl_available() {
        return;
    }
    let scratch = Scratch::new("overlay");
    let overlay = scratch.0.join("overlay");
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    // Kustomize refuses absolute resource paths: climb from the overlay to / and back down.
    let overlay = overlay.canonicalize().expect("overlay path");
    let base = repo().join("deploy").canonicalize().expect("deploy path");
    let up = "../".repeat(overlay.components().count() - 1);
    let base = format!(
        "{up}{}",
        base.strip_prefix("/").expect("absolute").display()
    );
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {base}\n\
             images:\n  - name: ferrolb\n    newName: registry.example/ferrolb\n    newTag: v9.9.9\n"
        ),
    )
    .expect("write overlay");
    let docs = render(&scratch, &overlay);
    let images: BTreeMap<String, String> = docs
        .iter()
        .filter(|d| matches!(d.kind(), "Deployment" | "DaemonSet"))
        .map(|d| {
            (
                d.name().to_string(),
                d.value["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    for (name, image) in &images {
        assert_eq!(image, "registry.example/ferrolb:v9.9.9", "{name}");
    }
}

/// Every sample Service applies with `kubectl apply -f`, as the docs tell users to do.
#[test]
fn examples_apply() {
    if !kubectl_available() {
        return;
    }
    let scratch = Scratch::new("examples");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let sim = rt.block_on(KubeSim::start()).expect("kube-sim starts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "expected at least 6 examples: {files:?}");
    let mut names = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read example");
        assert!(
            text.starts_with("# "),
            "{} must open with a comment explaining it",
            f.display()
        );
        let docs = split(&text);
        assert!(!docs.is_empty(), "{}", f.display());
        for d in &docs {
            assert_eq!(d.kind(), "Service", "{}", f.display());
            assert_eq!(
                d.value["spec"]["type"].as_str(),
                Some("LoadBalancer"),
                "{}",
                f.display()
            );
            assert!(
                names.insert(d.name().to_string()),
                "{}: Service name {} is used by another example too",
                f.display(),
                d.name()
            );
        }
        let out = ok(
            kubectl(
                &scratch,
                Some(sim.kubeconfig_path()),
                &["apply", "-f", f.to_str().expect("UTF-8 path")],
                "",
            ),
            &format!("kubectl apply -f {}", f.display()),
        );
        assert_eq!(out.lines().count(), docs.len(), "{out}");
    }
    // All of them are there, as applied.
    let listed = ok(
        kubectl(
            &scratch,
            Some(sim.kubeconfig_path()),
            &["get", "services", "-n", "default", "-o", "json"],
            "",
        ),
        "kubectl get services",
    );
    let list: Value = serde_json::from_str(&listed).expect("JSON");
    let present: BTreeSet<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for n in &names {
        assert!(present.contains(n), "{n} missing after apply: {present:?}");
    }
}
