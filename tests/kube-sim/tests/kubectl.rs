//! The real `kubectl` (v1.32, a dispatcher that reads `/version`) against the kube-sim binary,
//! typed the way a user types it. Every test starts its own kube-sim process and gives
//! kubectl its own discovery cache, because kubectl caches discovery per host:port for 6 h.
//!
//! Without kubectl the tests print a loud SKIPPED line, unless `CI=true` or `FERROLB_E2E=1`,
//! where a missing kubectl is a failure.

mod support;

use std::process::Stdio;

use serde_json::Value;
use support::{lines_of, path_str, wait_line, KillOnDrop, Sim};

const WEB_LB: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

/// Columns of a `kubectl get` header line.
fn header(out: &str) -> Vec<&str> {
    out.lines().next().unwrap().split_whitespace().collect()
}

/// The whitespace-separated cells of the row starting with `name`.
fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name) || cells.get(1) == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

/// `80:3xxxx/TCP`: a port with its allocated node port.
fn is_node_port_cell(cell: &str) -> bool {
    let Some(rest) = cell.strip_prefix("80:") else {
        return false;
    };
    let Some(np) = rest.strip_suffix("/TCP") else {
        return false;
    };
    np.parse::<u16>()
        .is_ok_and(|n| (30000..=32767).contains(&n))
}

/// Fails if any object key anywhere starts with `$` (leaked strategic-merge directives).
fn assert_no_directives(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(!k.starts_with('$'), "directive {k} stored at {path}");
                assert_no_directives(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                assert_no_directives(x, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn create_f_creates_the_service() {
    let sim = sim_or_skip!("create");
    let f = sim.write("web.yaml", WEB_LB);
    let out = sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    assert_eq!(out.trim(), "service/web created");
    let svc = sim.get_json(&["svc", "web"]);
    assert_eq!(svc["metadata"]["namespace"], "default");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    // Creating it again is AlreadyExists, as on a real cluster.
    let again = sim.kubectl(&["create", "-f", path_str(&f)]);
    assert!(!again.status.success());
    assert!(
        again.stderr.contains("AlreadyExists") && again.stderr.contains("already exists"),
        "{again:?}"
    );
}

#[test]
fn apply_client_side_twice_updates_ports_exactly() {
    let sim = sim_or_skip!("apply");
    let v1 = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    tier: front
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
";
    let v2 = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    tier: front
spec:
  selector:
    app: web2
  ports:
  - name: http
    port: 8081
    targetPort: 8080
";
    let f = sim.write("web.yaml", v1);
    assert_eq!(
        sim.kubectl(&["apply", "-f", path_str(&f)]).ok().trim(),
        "service/web created"
    );
    let first = sim.get_json(&["svc", "web"]);
    assert_eq!(first["spec"]["ports"].as_array().unwrap().len(), 2);

    let f = sim.write("web.yaml", v2);
    assert_eq!(
        sim.kubectl(&["apply", "-f", path_str(&f)]).ok().trim(),
        "service/web configured"
    );
    let svc = sim.get_json(&["svc", "web"]);
    assert_no_directives(&svc, "");
    assert_eq!(
        svc["spec"]["ports"],
        serde_json::json!([{"name": "http", "port": 8081, "protocol": "TCP", "targetPort": 8080}]),
        "exactly the new port list"
    );
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web2"}));
    assert_eq!(
        svc["metadata"]["labels"],
        serde_json::json!({"tier": "front"})
    );
    assert_eq!(
        svc["spec"]["clusterIP"], first["spec"]["clusterIP"],
        "the allocated cluster IP survives the patch"
    );
    let last: Value = serde_json::from_str(
        svc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("the last-applied annotation is stored"),
    )
    .unwrap();
    assert_eq!(last["spec"]["ports"][0]["port"], 8081);
    assert_eq!(last["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(last["spec"]["selector"]["app"], "web2");
}

#[test]
fn apply_server_side_twice() {
    let sim = sim_or_skip!("ssa");
    let f = sim.write("web.yaml", WEB_LB);
    for _ in 0..2 {
        let out = sim
            .kubectl(&["apply", "--server-side", "-f", path_str(&f)])
            .ok();
        assert_eq!(out.trim(), "service/web serverside-applied");
    }
    let changed = WEB_LB.replace("app: web", "app: web3");
    let f = sim.write("web.yaml", &changed);
    sim.kubectl(&["apply", "--server-side", "-f", path_str(&f)])
        .ok();
    let svc = sim.get_json(&["svc", "web"]);
    assert_eq!(svc["spec"]["selector"]["app"], "web3");
    assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 1);
}

#[test]
fn get_svc_prints_the_server_table() {
    let sim = sim_or_skip!("get");
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let out = sim.kubectl(&["get", "svc"]).ok();
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let cells = row(&out, "web");
    assert_eq!(cells[1], "LoadBalancer");
    assert!(cells[2].starts_with("10."), "{cells:?}");
    assert_eq!(cells[3], "<pending>");
    assert!(is_node_port_cell(cells[4]), "{cells:?}");

    let wide = sim.kubectl(&["get", "svc", "-o", "wide"]).ok();
    assert_eq!(header(&wide).last(), Some(&"SELECTOR"));
    assert_eq!(row(&wide, "web").last(), Some(&"app=web"));
}

#[test]
fn patch_status_shows_external_ip() {
    let sim = sim_or_skip!("patchstatus");
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let out = sim
        .kubectl(&[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "--subresource=status",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.10"}]}}}"#,
        ])
        .ok();
    assert_eq!(out.trim(), "service/web patched");
    let svc = sim.get_json(&["svc", "web"]);
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "198.51.100.10"
    );
    let get = sim.kubectl(&["get", "svc", "web"]).ok();
    assert_eq!(row(&get, "web")[3], "198.51.100.10");
}

#[test]
fn get_svc_watch_sees_status_change() {
    let sim = sim_or_skip!("watch");
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let mut child = sim
        .command(&["get", "svc", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let _watch = KillOnDrop(child);
    wait_line(&lines, "web <pending>", |l| {
        l.starts_with("web ") && l.contains("<pending>")
    });
    sim.kubectl(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "--subresource=status",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.11"}]}}}"#,
    ])
    .ok();
    let line = wait_line(&lines, "the new external IP", |l| {
        l.contains("198.51.100.11")
    });
    assert!(line.starts_with("web "), "{line}");
}

fn create_web_with_event(sim: &Sim) -> String {
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let uid = sim
        .kubectl(&["get", "svc", "web", "-o", "jsonpath={.metadata.uid}"])
        .ok();
    let ev = format!(
        "apiVersion: v1
kind: Event
metadata:
  name: web.alloc
involvedObject:
  apiVersion: v1
  kind: Service
  name: web
  namespace: default
  uid: {uid}
reason: IPAllocated
message: Assigned IP 198.51.100.12
type: Normal
source:
  component: ferrolb-controller
firstTimestamp: \"2026-11-21T10:00:00Z\"
lastTimestamp: \"2026-11-21T10:00:00Z\"
count: 1
"
    );
    let f = sim.write("event.yaml", &ev);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    // An unrelated event that describe must not list.
    let other = ev
        .replace("name: web.alloc", "name: other.ev")
        .replace("name: web\n", "name: other\n")
        .replace("IPAllocated", "Unrelated");
    let f = sim.write("other.yaml", &other);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    uid
}

#[test]
fn describe_svc_lists_its_events() {
    let sim = sim_or_skip!("describe");
    create_web_with_event(&sim);
    let out = sim.kubectl(&["describe", "svc", "web"]).ok();
    assert!(out.contains("Name:") && out.contains("web"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("IP Families:") && l.contains("IPv4")),
        "{out}"
    );
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{out}"));
    assert!(
        events.contains("IPAllocated") && events.contains("Assigned IP 198.51.100.12"),
        "{out}"
    );
    assert!(
        events.contains("ferrolb-controller"),
        "From column: {events}"
    );
    assert!(!events.contains("Unrelated"), "unrelated events filtered");
}

#[test]
fn get_events_lists_core_events() {
    let sim = sim_or_skip!("events");
    create_web_with_event(&sim);
    let out = sim.kubectl(&["get", "events"]).ok();
    let h = header(&out);
    assert_eq!(
        h,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("service/web"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("Normal") && line.contains("IPAllocated"),
        "{line}"
    );
    assert!(line.contains("Assigned IP 198.51.100.12"), "{line}");
}

#[test]
fn get_leases_all_namespaces_shows_holder() {
    let sim = sim_or_skip!("leases");
    let f = sim.write(
        "lease.yaml",
        "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: ferrolb-controller
  namespace: kube-system
spec:
  holderIdentity: node-a
  leaseDurationSeconds: 15
",
    );
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let out = sim.kubectl(&["get", "leases", "-A"]).ok();
    assert_eq!(header(&out), ["NAMESPACE", "NAME", "HOLDER", "AGE"]);
    let cells = row(&out, "ferrolb-controller");
    assert_eq!(&cells[..3], ["kube-system", "ferrolb-controller", "node-a"]);
}

#[test]
fn delete_svc_returns_and_object_is_gone() {
    let sim = sim_or_skip!("delete");
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    // `kubectl` runs under a deadline, so a delete that waits forever fails the test.
    let out = sim.kubectl(&["delete", "svc", "web"]).ok();
    assert_eq!(out.trim(), "service \"web\" deleted");
    let get = sim.kubectl(&["get", "svc", "web"]);
    assert_eq!(get.status.code(), Some(1));
    let list = sim.kubectl(&["get", "svc"]);
    assert!(list.status.success());
    assert!(!list.stdout.contains("web"), "{list:?}");
}

#[test]
fn get_missing_svc_is_not_found() {
    let sim = sim_or_skip!("missing");
    let run = sim.kubectl(&["get", "svc", "nope"]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        "Error from server (NotFound): services \"nope\" not found"
    );
}

#[test]
fn create_configmap_from_literal() {
    let sim = sim_or_skip!("configmap");
    let out = sim
        .kubectl(&[
            "create",
            "configmap",
            "cm1",
            "--from-literal=pool=198.51.100.0/24",
        ])
        .ok();
    assert_eq!(out.trim(), "configmap/cm1 created");
    let cm = sim.get_json(&["configmap", "cm1"]);
    assert_eq!(cm["data"]["pool"], "198.51.100.0/24");
    assert_eq!(cm["metadata"]["namespace"], "default");
}

#[test]
fn create_namespace() {
    let sim = sim_or_skip!("namespace");
    let out = sim.kubectl(&["create", "namespace", "ns9"]).ok();
    assert_eq!(out.trim(), "namespace/ns9 created");
    let ns = sim.get_json(&["namespace", "ns9"]);
    assert_eq!(ns["status"]["phase"], "Active");
    let list = sim.kubectl(&["get", "ns"]).ok();
    assert_eq!(row(&list, "ns9")[1], "Active");
}

#[test]
fn sim_binary_reports_its_url() {
    // Needs no kubectl: the binary itself is what the other tests build on.
    let sim = Sim::start("url");
    assert!(sim.url.starts_with("http://127.0.0.1:"), "{}", sim.url);
    let kc = std::fs::read_to_string(sim.kubeconfig()).unwrap();
    assert!(kc.contains(&format!("server: {}", sim.url)), "{kc}");
}

/// Every row of a multi-table `kubectl get` output whose first cell is `name`.
fn rows_named<'a>(out: &'a str, name: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&name))
        .collect()
}

#[test]
fn create_service_loadbalancer_typed_command() {
    // kubectl's typed `create service` POSTs protobuf.
    let sim = sim_or_skip!("create-svc-lb");
    let out = sim
        .kubectl(&["create", "service", "loadbalancer", "demo", "--tcp=80"])
        .ok();
    assert_eq!(out.trim(), "service/demo created");
    let svc = sim.get_json(&["svc", "demo"]);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["spec"]["ports"],
        serde_json::json!([{"name": "80", "port": 80, "protocol": "TCP", "targetPort": 80,
                            "nodePort": svc["spec"]["ports"][0]["nodePort"]}])
    );
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "demo"}));
    assert_eq!(
        svc["metadata"]["labels"],
        serde_json::json!({"app": "demo"})
    );
    let table = sim.kubectl(&["get", "svc", "demo"]).ok();
    let cells = row(&table, "demo");
    assert_eq!(cells[3], "<pending>");
    assert!(is_node_port_cell(cells[4]), "{cells:?}");
}

#[test]
fn create_service_nodeport_typed_command() {
    let sim = sim_or_skip!("create-svc-np");
    let out = sim
        .kubectl(&["create", "service", "nodeport", "np", "--tcp=8080:80"])
        .ok();
    assert_eq!(out.trim(), "service/np created");
    let svc = sim.get_json(&["svc", "np"]);
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{svc}");
    let table = sim.kubectl(&["get", "svc", "np"]).ok();
    let cells = row(&table, "np");
    assert_eq!(cells[1], "NodePort");
    assert_eq!(cells[4], format!("8080:{node_port}/TCP"));
}

#[test]
fn create_deployment_expose_and_get_all() {
    let sim = sim_or_skip!("deploy-expose");
    let out = sim
        .kubectl(&["create", "deployment", "web", "--image=nginx"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/web created");
    let d = sim.get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["selector"],
        serde_json::json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx"
    );
    assert_eq!(d["metadata"]["generation"], 1);

    let out = sim
        .kubectl(&[
            "expose",
            "deployment",
            "web",
            "--type=LoadBalancer",
            "--port=80",
        ])
        .ok();
    assert_eq!(out.trim(), "service/web exposed");
    let svc = sim.get_json(&["svc", "web"]);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web"}));
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);

    // No controller manager: the Deployment stays at 0/1 and has no ReplicaSet or Pods.
    let all = sim.kubectl(&["get", "all"]).ok();
    let svc_row = &rows_named(&all, "service/web")[0];
    assert_eq!(svc_row[1], "LoadBalancer");
    assert_eq!(svc_row[3], "<pending>");
    let deploy_row = &rows_named(&all, "deployment.apps/web")[0];
    assert_eq!(&deploy_row[1..4], ["0/1", "0", "0"], "{all}");
    assert!(!all.contains("replicaset.apps/"), "{all}");

    let wide = sim.kubectl(&["get", "deploy", "-o", "wide"]).ok();
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(&row(&wide, "web")[5..], ["nginx", "nginx", "app=web"]);

    // Scaling by patching the stored object.
    sim.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])
    .ok();
    let d = sim.get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["metadata"]["generation"], 2,
        "a spec change bumps generation"
    );
    assert_eq!(row(&sim.kubectl(&["get", "deploy"]).ok(), "web")[1], "0/3");

    // `kubectl scale` goes through the /scale subresource.
    let out = sim
        .kubectl(&["scale", "deployment", "web", "--replicas=5"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let d = sim.get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 3);
    let run = sim.kubectl(&[
        "scale",
        "deployment",
        "web",
        "--current-replicas=2",
        "--replicas=1",
    ]);
    assert!(
        !run.status.success() && run.stderr.contains("Expected replicas to be 2, was 5"),
        "{run:?}"
    );
}

#[test]
fn get_svc_and_endpoints_together() {
    let sim = sim_or_skip!("svc-endpoints");
    let f = sim.write("web.yaml", WEB_LB);
    sim.kubectl(&["create", "-f", path_str(&f)]).ok();
    let ep = sim.write(
        "ep.yaml",
        "apiVersion: v1
kind: Endpoints
metadata:
  name: web
subsets:
- addresses:
  - ip: 192.0.2.10
  - ip: 192.0.2.11
  ports:
  - name: http
    port: 8080
",
    );
    assert_eq!(
        sim.kubectl(&["create", "-f", path_str(&ep)]).ok().trim(),
        "endpoints/web created"
    );
    let out = sim.kubectl(&["get", "svc,endpoints"]).ok();
    let svc = &rows_named(&out, "service/web")[0];
    assert_eq!(svc[1], "LoadBalancer");
    let ep_row = &rows_named(&out, "endpoints/web")[0];
    assert_eq!(ep_row[1], "192.0.2.10:8080,192.0.2.11:8080", "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NAME", "ENDPOINTS", "AGE"]),
        "{out}"
    );
    // Endpoints are read-write, as in 1.32.
    sim.kubectl(&[
        "patch",
        "endpoints",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/subsets/0/addresses/1"}]"#,
    ])
    .ok();
    let out = sim.kubectl(&["get", "ep", "web"]).ok();
    assert_eq!(row(&out, "web")[1], "192.0.2.10:8080");
}

#[test]
fn create_secret_generic_never_prints_values() {
    let sim = sim_or_skip!("secret");
    let out = sim
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=a=b",
            "--from-literal=password=hunter2",
        ])
        .ok();
    assert_eq!(out.trim(), "secret/s created");
    let s = sim.get_json(&["secret", "s"]);
    assert_eq!(s["type"], "Opaque");
    assert_eq!(
        s["data"],
        serde_json::json!({"a": "Yg==", "password": "aHVudGVyMg=="})
    );
    for args in [
        &["get", "secrets"][..],
        &["get", "secret", "s", "-o", "wide"],
    ] {
        let table = sim.kubectl(args).ok();
        assert_eq!(header(&table), ["NAME", "TYPE", "DATA", "AGE"]);
        assert_eq!(&row(&table, "s")[..3], ["s", "Opaque", "2"]);
        assert!(
            !table.contains("aHVudGVyMg") && !table.contains("hunter2"),
            "{table}"
        );
    }
    // stringData is write-only and lands base64-encoded in data.
    let f = sim.write(
        "tls.yaml",
        "apiVersion: v1
kind: Secret
metadata:
  name: t
type: kubernetes.io/basic-auth
stringData:
  username: admin
",
    );
    sim.kubectl(&["apply", "-f", path_str(&f)]).ok();
    let t = sim.get_json(&["secret", "t"]);
    assert_eq!(t["type"], "kubernetes.io/basic-auth");
    assert_eq!(t["data"], serde_json::json!({"username": "YWRtaW4="}));
    assert!(t.get("stringData").is_none(), "{t}");
}

#[test]
fn create_serviceaccount_typed_command() {
    let sim = sim_or_skip!("serviceaccount");
    let out = sim.kubectl(&["create", "serviceaccount", "sa1"]).ok();
    assert_eq!(out.trim(), "serviceaccount/sa1 created");
    let table = sim.kubectl(&["get", "sa"]).ok();
    assert_eq!(header(&table), ["NAME", "SECRETS", "AGE"]);
    assert_eq!(&row(&table, "sa1")[..2], ["sa1", "0"]);
}

#[test]
fn rbac_and_daemonset_apply_server_side() {
    // What an install manifest carries besides Services: RBAC (names with colons are valid
    // path segments) and a DaemonSet.
    let sim = sim_or_skip!("rbac-ds");
    let f = sim.write(
        "install.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: demo:reader
rules:
- apiGroups: [\"\"]
  resources: [\"services\"]
  verbs: [\"get\", \"list\", \"watch\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: demo:reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: demo:reader
subjects:
- kind: ServiceAccount
  name: speaker
  namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: speaker
  namespace: kube-system
spec:
  selector:
    matchLabels:
      app: speaker
  template:
    metadata:
      labels:
        app: speaker
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      containers:
      - name: speaker
        image: ferrolb:latest
",
    );
    let out = sim
        .kubectl(&["apply", "--server-side", "-f", path_str(&f)])
        .ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "clusterrole.rbac.authorization.k8s.io/demo:reader serverside-applied",
            "clusterrolebinding.rbac.authorization.k8s.io/demo:reader serverside-applied",
            "daemonset.apps/speaker serverside-applied"
        ]
    );
    let crb = sim
        .kubectl(&["get", "clusterrolebinding", "demo:reader", "-o", "wide"])
        .ok();
    assert_eq!(
        header(&crb),
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    let cells = row(&crb, "demo:reader");
    assert_eq!(cells[1], "ClusterRole/demo:reader");
    assert_eq!(cells.last(), Some(&"kube-system/speaker"));
    let ds = sim.kubectl(&["get", "ds", "-n", "kube-system"]).ok();
    assert_eq!(
        header(&ds),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(
        row(&ds, "speaker")[1..7],
        ["0", "0", "0", "0", "0", "kubernetes.io/os=linux"]
    );
    let bad = sim.write(
        "bad.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: a/b
",
    );
    let run = sim.kubectl(&["create", "-f", path_str(&bad)]);
    assert!(
        !run.status.success() && run.stderr.contains("may not contain '/'"),
        "{run:?}"
    );
}
