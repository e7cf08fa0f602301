//! The Helm chart (`deploy/helm/ferrolb`), checked with the real `helm` and `kubectl`:
//! with default values it renders exactly the kustomize base's objects (modulo Helm's own
//! labels), every value does what values.yaml says, and `helm lint` is clean.
//!
//! Needs `helm` (3.x; see tests/kube-sim/install-helm.sh) and `kubectl` (for kustomize).
//! Without them the tests print a loud SKIPPED line, unless `CI=true` or `FERROLB_E2E=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

/// Labels only the chart sets; everything else must match deploy/ exactly.
const HELM_LABELS: &[&str] = &[
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> String {
    repo().join("deploy/helm/ferrolb").display().to_string()
}

/// Whether `tool` runs here; a loud skip, or a failure under CI.
fn available(tool: &str) -> bool {
    // `kubectl version` alone also asks a server, which a test machine need not have.
    let args: &[&str] = if tool == "kubectl" {
        &["version", "--client"]
    } else {
        &["version"]
    };
    let ok = Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !ferrolb_testkit::strict(),
            "{tool} not found, and CI=true or FERROLB_E2E=1 makes it required"
        );
        eprintln!(
            "\n*** SKIPPED: {tool} not found; the Helm chart was NOT checked. \
             Install it with tests/kube-sim/install-helm.sh (helm) or kubectl v1.32. ***\n"
        );
    }
    ok
}

fn run(tool: &str, args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("ferrolb-helm-test-{}", std::process::id()));
    Command::new(tool)
        .args(args)
        .current_dir(repo())
        // Keep helm's and kubectl's caches away from the user's home.
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"))
}

fn stdout(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn docs(stream: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(stream)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn key(d: &Value) -> (String, String) {
    (
        d["kind"].as_str().unwrap_or_default().to_string(),
        d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Objects by (kind, name), Helm's labels removed (and a label map left empty by that).
fn objects(stream: &str) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for mut d in docs(stream) {
        if let Some(labels) = d["metadata"]
            .get_mut("labels")
            .and_then(Value::as_object_mut)
        {
            for l in HELM_LABELS {
                labels.remove(*l);
            }
            if labels.is_empty() {
                d["metadata"]
                    .as_object_mut()
                    .expect("metadata is an object")
                    .remove("labels");
            }
        }
        let k = key(&d);
        assert!(out.insert(k.clone(), d).is_none(), "{k:?} rendered twice");
    }
    out
}

fn template(values: Option<&str>) -> String {
    let mut args = vec!["template", "ferrolb", &chart()[..]]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    // One directory per call: the tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        ferrolb_testkit::TempDir::new(&format!("ferrolb-helm-values-{call}")).expect("temp dir");
    if let Some(v) = values {
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, v).expect("write values");
        args.push("-f".into());
        args.push(file.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stdout(run("helm", &args), "helm template")
}

#[test]
fn default_values_render_exactly_the_kustomize_base() {
    if !available("helm") || !available("kubectl") {
        return;
    }
    let helm = objects(&template(None));
    let kustomize = objects(&stdout(
        run("kubectl", &["kustomize", "deploy/"]),
        "kubectl kustomize deploy/",
    ));
    let helm_keys: Vec<_> = helm.keys().collect();
    let kustomize_keys: Vec<_> = kustomize.keys().collect();
    assert_eq!(helm_keys, kustomize_keys, "the same objects");
    for (k, want) in &kustomize {
        assert_eq!(
            &helm[k], want,
            "{k:?} differs between the chart and deploy/"
        );
    }
}

#[test]
fn every_value_changes_what_it_says() {
    if !available("helm") {
        return;
    }
    let values = r#"
image: {repository: registry.example/ferrolb, tag: v9.9.9, pullPolicy: Always}
config: |
  pools:
    - name: lan
      addresses: ["192.0.2.10-192.0.2.20"]
logFormat: json
controller:
  replicas: 3
  metricsPort: 9472
  resources: {requests: {cpu: 50m}}
  nodeSelector: {role: infra}
speaker:
  metricsPort: 9473
  nodeSelector: {role: edge}
  tolerations: [{key: dedicated, operator: Equal, value: lb, effect: NoSchedule}]
  resources: {limits: {memory: 64Mi}}
heartbeat: {key: "a-key-the-operator-chose-0123456789", port: 7575}
metrics:
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: prom}}
"#;
    let o = objects(&template(Some(values)));
    let get = |kind: &str, name: &str| -> &Value {
        o.get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("{kind}/{name} not rendered"))
    };
    let ctl = get("Deployment", "ferrolb-controller");
    let c = &ctl["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ctl["spec"]["replicas"], json!(3));
    assert_eq!(c["image"], json!("registry.example/ferrolb:v9.9.9"));
    assert_eq!(c["imagePullPolicy"], json!("Always"));
    assert_eq!(
        c["args"],
        json!([
            "controller",
            "--namespace",
            "ferrolb-system",
            "--config-map",
            "ferrolb-config",
            "--metrics-addr",
            "0.0.0.0:9472",
            "--log-format",
            "json"
        ])
    );
    assert_eq!(c["ports"][0]["containerPort"], json!(9472));
    // Helm merges maps with the defaults (lists are replaced).
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}})
    );
    assert_eq!(
        ctl["spec"]["template"]["spec"]["nodeSelector"],
        json!({"role": "infra"})
    );
    let sp = get("DaemonSet", "ferrolb-speaker");
    let pod = &sp["spec"]["template"]["spec"];
    let s = &pod["containers"][0];
    assert_eq!(
        s["args"],
        json!([
            "speaker",
            "--metrics-addr",
            "0.0.0.0:9473",
            "--heartbeat-port",
            "7575",
            "--log-format",
            "json"
        ])
    );
    assert_eq!(
        pod["nodeSelector"],
        json!({"role": "edge", "kubernetes.io/os": "linux"})
    );
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "dedicated", "operator": "Equal", "value": "lb", "effect": "NoSchedule"}])
    );
    assert_eq!(
        s["resources"],
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}})
    );
    let cm = get("ConfigMap", "ferrolb-config");
    assert_eq!(
        cm["data"]["config.yaml"],
        json!("pools:\n  - name: lan\n    addresses: [\"192.0.2.10-192.0.2.20\"]\n")
    );
    let secret = get("Secret", "ferrolb-heartbeat");
    assert_eq!(secret["metadata"]["namespace"], json!("ferrolb-system"));
    assert_eq!(
        secret["data"]["key"],
        json!("YS1rZXktdGhlLW9wZXJhdG9yLWNob3NlLTAxMjM0NTY3ODk="),
        "base64 of the key as given"
    );
    let sm = get("ServiceMonitor", "ferrolb");
    assert_eq!(sm["metadata"]["labels"]["release"], json!("prom"));
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], json!("15s"));
    for (component, port) in [("controller", 9472), ("speaker", 9473)] {
        let svc = get("Service", &format!("ferrolb-{component}-metrics"));
        assert_eq!(svc["spec"]["ports"][0]["port"], json!(port));
        assert_eq!(
            svc["spec"]["selector"]["app.kubernetes.io/component"],
            json!(component)
        );
    }
    // Off by default: no Secret (the controller generates the key), no monitoring objects.
    let defaults = objects(&template(None));
    for kind in ["Secret", "Service", "ServiceMonitor"] {
        assert!(
            !defaults.keys().any(|(k, _)| k == kind),
            "{kind} rendered by default"
        );
    }
}

#[test]
fn the_config_value_renders_a_config_map_check_config_accepts() {
    if !available("helm") {
        return;
    }
    let rendered = template(None);
    let cm = docs(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    let dir = std::env::temp_dir().join(format!("ferrolb-helm-cm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("cm.json");
    std::fs::write(&file, cm.to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["check-config", file.to_str().expect("utf-8")])
        .output()
        .expect("run ferrolb");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn helm_lint_is_clean() {
    if !available("helm") {
        return;
    }
    let out = run("helm", &["lint", "--strict", &chart()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ERROR]"),
        "{text}"
    );
}

#[test]
fn bgp_password_secrets_grant_get_on_exactly_those_secrets() {
    if !available("helm") {
        return;
    }
    let rendered = objects(&template(Some(
        "speaker:\n  bgpPasswordSecrets: [bgp-auth, tor2-key]\n",
    )));
    let role = rendered
        .iter()
        .find(|((kind, _), d)| {
            kind == "Role" && d["metadata"]["name"] == "ferrolb-speaker-bgp-secrets"
        })
        .map(|(_, d)| d)
        .expect("a Role for the BGP password Secrets");
    assert_eq!(role["metadata"]["namespace"], json!("ferrolb-system"));
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["bgp-auth", "tor2-key"], "verbs": ["get"]}])
    );
    assert!(rendered.iter().any(|((kind, _), d)| kind == "RoleBinding"
        && d["roleRef"]["name"] == "ferrolb-speaker-bgp-secrets"
        && d["subjects"][0]["name"] == "ferrolb-speaker"));
    // Without the value the speaker may read no BGP password Secret (only the heartbeat key,
    // by its one name).
    let defaults = objects(&template(None));
    assert!(
        !defaults
            .keys()
            .any(|(_, name)| name == "ferrolb-speaker-bgp-secrets"),
        "a BGP Secret grant by default"
    );
    // The plain-manifest equivalent parses and grants the same single verb.
    let optional = std::fs::read_to_string("deploy/optional/speaker-bgp-password-secret.yaml")
        .expect("deploy/optional/speaker-bgp-password-secret.yaml");
    let docs = docs(&optional);
    assert_eq!(docs[0]["rules"][0]["verbs"], json!(["get"]));
    assert_eq!(docs[0]["rules"][0]["resources"], json!(["secrets"]));
}

#[test]
fn a_whole_config_map_as_the_config_value_keeps_its_data_as_it_is() {
    if !available("helm") {
        return;
    }
    // Sample ConfigMaps in the three formats: native (config.yaml), MetalLB legacy (config)
    // and kube-vip (several keys), each as a user would pass it with --set-file.
    for sample in [
        "config/native-ipv4.yaml",
        "config/metallb-legacy.yaml",
        "config/kube-vip.yaml",
    ] {
        let path = repo().join(sample);
        let text = std::fs::read_to_string(&path).expect("read the sample");
        let want = docs(&text)
            .into_iter()
            .find(|d| d["kind"] == "ConfigMap")
            .expect("a ConfigMap")["data"]
            .clone();
        let values = serde_json::to_string(&json!({ "config": text })).expect("json");
        let o = objects(&template(Some(&values)));
        let cm = &o[&("ConfigMap".to_string(), "ferrolb-config".to_string())];
        assert_eq!(cm["data"], want, "{sample}");
        assert_eq!(cm["metadata"]["namespace"], json!("ferrolb-system"));
    }
}

#[test]
fn heartbeat_port_zero_turns_heartbeats_off_and_a_bad_port_is_refused_by_name() {
    if !available("helm") {
        return;
    }
    let args_with = |port: &str| -> Value {
        let o = objects(&template(Some(&format!("heartbeat: {{port: {port}}}\n"))));
        o[&("DaemonSet".to_string(), "ferrolb-speaker".to_string())]["spec"]["template"]["spec"]
            ["containers"][0]["args"]
            .clone()
    };
    let off = args_with("0");
    let args = off.as_array().expect("speaker args are a list");
    let at = args
        .iter()
        .position(|a| a == "--heartbeat-port")
        .expect("--heartbeat-port rendered for port 0");
    assert_eq!(args.get(at + 1), Some(&json!("0")));
    // The default port is the binary's default: no flag, as in deploy/.
    let default = args_with("7474");
    assert!(
        !default
            .as_array()
            .expect("speaker args are a list")
            .contains(&json!("--heartbeat-port")),
        "{default}"
    );
    for bad in ["70000", "-1", "seven"] {
        let dir = ferrolb_testkit::TempDir::new("ferrolb-helm-bad-port").expect("temp dir");
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, format!("heartbeat: {{port: {bad}}}\n")).expect("write values");
        let out = run(
            "helm",
            &[
                "template",
                "ferrolb",
                &chart(),
                "-f",
                &file.display().to_string(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "port {bad} rendered");
        assert!(
            err.contains("heartbeat.port") && err.contains(bad),
            "the error names the value and the field: {err}"
        );
    }
}
