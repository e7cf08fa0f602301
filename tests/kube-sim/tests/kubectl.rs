//! The real `kubectl` (v1.32, a dispatcher that reads `/version`) against the kube-sim binary,
//! typed the way a user types it. Every test starts its own kube-sim process and gives
//! kubectl its own discovery cache, because kubectl caches discovery per host:port for 6 h.
//!
//! Without kubectl the tests print a loud SKIPPED line, unless `CI=true` or `FERROLB_E2E=1`,
//! where a missing kubectl is a failure.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any single kubectl command or expectation may take.
const DEADLINE: Duration = Duration::from_secs(60);

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
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("FERROLB_E2E").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "kubectl not found, and CI=true or FERROLB_E2E=1 makes it required"
    );
    eprintln!("SKIPPED: kubectl not found; install kubectl v1.32 to run the kubectl tests");
    false
}

/// Skips the test (see [`kubectl_available`]) or starts a kube-sim for it.
macro_rules! sim_or_skip {
    ($name:expr) => {{
        if !kubectl_available() {
            return;
        }
        Sim::start($name)
    }};
}

/// What one finished kubectl run printed.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    fn ok(self) -> String {
        assert!(self.status.success(), "kubectl failed: {self:?}");
        self.stdout
    }
}

/// Kills a child process when dropped, so a failing test leaves nothing running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a pipe line by line on a thread, so tests can wait for lines with a deadline.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line matching `pred`, failing after [`DEADLINE`]; returns every line read.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {what} ({e}); saw {seen:#?}"),
        }
    }
}

/// A kube-sim process with its kubeconfig and a private kubectl cache.
struct Sim {
    proc: KillOnDrop,
    dir: PathBuf,
    url: String,
}

impl Sim {
    fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kube-sim-kubectl-{}-{test}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(dir.join("kubeconfig"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the kube-sim binary starts");
        let stdout = child.stdout.take().unwrap();
        let proc = KillOnDrop(child);
        // The binary prints its URL as the first line once it is listening.
        let url = wait_line(&lines_of(stdout), "the URL", |l| l.starts_with("http://"));
        Self { proc, dir, url }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .args(args);
        cmd
    }

    /// Runs kubectl to completion, killing it if it outlives [`DEADLINE`].
    fn kubectl(&self, args: &[&str]) -> Run {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("kubectl {args:?} did not finish within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close when kubectl exits; collect everything they carried.
        let collect = |rx: mpsc::Receiver<String>| rx.iter().map(|l| l + "\n").collect::<String>();
        Run {
            status,
            stdout: collect(out),
            stderr: collect(err),
        }
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn get_json(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&args).ok()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
