//! The real Helm 3 (`helm`, installed by `tests/kube-sim/install-helm.sh`) against the
//! kube-sim binary: install, upgrade, rollback and uninstall of a small chart written here,
//! each checked by reading the objects back with the real `kubectl`.
//!
//! Without helm or kubectl the test prints a loud SKIPPED line, unless `CI=true` or
//! `FERROLB_E2E=1`, where a missing binary is a failure.

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::{helm_available, kubectl_available, path_str, Sim};

const CHART_YAML: &str = "apiVersion: v2
name: demo
version: 0.1.0
appVersion: \"1.0\"
";

const VALUES_YAML: &str = "greeting: hello
port: 80
tag: \"1.27\"
token: s3cret
";

/// One template of each kind a typical chart carries.
const TEMPLATES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-web
spec:
  type: LoadBalancer
  selector:
    app: {{ .Release.Name }}
  ports:
  - name: http
    port: {{ .Values.port }}
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
    spec:
      serviceAccountName: {{ .Release.Name }}-sa
      containers:
      - name: web
        image: "nginx:{{ .Values.tag }}"
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-token
type: Opaque
stringData:
  token: {{ .Values.token | quote }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-sa
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}-reader
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .Release.Name }}-reader
subjects:
- kind: ServiceAccount
  name: {{ .Release.Name }}-sa
  namespace: {{ .Release.Namespace }}
"#;

/// The objects the chart renders for release `demo`, as `kubectl get` arguments.
const OBJECTS: &[(&str, &str)] = &[
    ("configmap", "demo-config"),
    ("service", "demo-web"),
    ("deployment", "demo-web"),
    ("secret", "demo-token"),
    ("serviceaccount", "demo-sa"),
    ("role", "demo-reader"),
    ("rolebinding", "demo-reader"),
];

fn write_chart(sim: &Sim) -> PathBuf {
    let dir = sim.dir.join("chart");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(dir.join("values.yaml"), VALUES_YAML).unwrap();
    std::fs::write(dir.join("templates").join("all.yaml"), TEMPLATES).unwrap();
    dir
}

/// Helm's release records: `revision -> status` from the labels of its Secrets.
fn releases(sim: &Sim) -> Vec<(String, String)> {
    let list = sim.get_json(&["secrets", "-l", "owner=helm,name=demo"]);
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["type"], "helm.sh/release.v1", "{s}");
            assert!(s["data"]["release"].as_str().is_some_and(|r| !r.is_empty()));
            (
                s["metadata"]["labels"]["version"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                s["metadata"]["labels"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn service_port(sim: &Sim) -> Value {
    sim.get_json(&["service", "demo-web"])["spec"]["ports"][0]["port"].clone()
}

fn greeting(sim: &Sim) -> Value {
    sim.get_json(&["configmap", "demo-config"])["data"]["greeting"].clone()
}

#[test]
fn install_upgrade_rollback_uninstall() {
    if !helm_available() || !kubectl_available() {
        return;
    }
    let sim = Sim::start("helm");
    let chart = write_chart(&sim);
    let chart = path_str(&chart);

    // install
    let out = sim.helm(&["install", "demo", chart]).ok();
    assert!(out.contains("STATUS: deployed"), "{out}");
    for (kind, name) in OBJECTS {
        let obj = sim.get_json(&[kind, name]);
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{kind}/{name}"
        );
        assert_eq!(
            obj["metadata"]["annotations"]["meta.helm.sh/release-name"], "demo",
            "{kind}/{name}"
        );
    }
    assert_eq!(service_port(&sim), 80);
    assert_eq!(greeting(&sim), "hello");
    let deploy = sim.get_json(&["deployment", "demo-web"]);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let token = sim.get_json(&["secret", "demo-token"]);
    assert_eq!(
        token["data"],
        json!({"token": "czNjcmV0"}),
        "stringData became data"
    );
    let binding = sim.get_json(&["rolebinding", "demo-reader"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "demo-sa", "namespace": "default"}])
    );
    assert_eq!(
        sim.get_json(&["role", "demo-reader"])["rules"][0]["resources"],
        json!(["configmaps"])
    );
    assert_eq!(releases(&sim), pairs(&[("1", "deployed")]));
    let list = sim.helm(&["list", "-o", "json"]).ok();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["status"], "deployed");

    // upgrade with changed values
    let out = sim
        .helm(&[
            "upgrade",
            "demo",
            chart,
            "--set",
            "port=8081",
            "--set",
            "greeting=bye",
            "--set",
            "tag=1.28",
        ])
        .ok();
    assert!(out.contains("REVISION: 2"), "{out}");
    assert_eq!(service_port(&sim), 8081);
    assert_eq!(greeting(&sim), "bye");
    assert_eq!(
        sim.get_json(&["deployment", "demo-web"])["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "nginx:1.28"
    );
    assert_eq!(
        releases(&sim),
        pairs(&[("1", "superseded"), ("2", "deployed")])
    );

    // rollback to the first revision
    let out = sim.helm(&["rollback", "demo", "1"]).ok();
    assert!(out.contains("Rollback was a success"), "{out}");
    assert_eq!(service_port(&sim), 80);
    assert_eq!(greeting(&sim), "hello");
    assert_eq!(
        sim.get_json(&["deployment", "demo-web"])["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "nginx:1.27"
    );
    assert_eq!(
        releases(&sim),
        pairs(&[("1", "superseded"), ("2", "superseded"), ("3", "deployed")])
    );
    let history = sim.helm(&["history", "demo", "-o", "json"]).ok();
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");
    assert_eq!(history[2]["description"], "Rollback to 1");

    // uninstall removes every object and every release record
    let out = sim.helm(&["uninstall", "demo"]).ok();
    assert!(out.contains("release \"demo\" uninstalled"), "{out}");
    for (kind, name) in OBJECTS {
        let run = sim.kubectl(&["get", kind, name]);
        assert!(
            !run.status.success() && run.stderr.contains("NotFound"),
            "{kind}/{name} still there: {run:?}"
        );
    }
    assert_eq!(releases(&sim), pairs(&[]));
    let list = sim.helm(&["list", "-o", "json"]).ok();
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap(), json!([]));
}
