//! Shared helpers for the controller integration tests: a cluster API (kube-sim, or the real
//! kube-apiserver when a test asks for [`Cluster::start_on`]), the real `ferrolb controller`
//! process (killed on drop, also on panic), and readers for Events and Prometheus metrics.
//! Polling with deadlines, prerequisite checks and the API backends themselves come from the
//! `ferrolb-testkit` crate.
//!
//! Every wait here polls a condition until a deadline; none sleeps and hopes.

pub mod churn;
pub mod invariants;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestApi;
// The controller tests glob-import this module; these are the crate-level helpers they use.
pub use crate::{eventually, for_each_backend, for_each_backend_except, ApiBackend};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_sim::{KubeSim, RequestRecord};
use serde_json::{json, Value};

/// How long any expected outcome may take before the test fails. Generous on purpose: the
/// tests assert *that* something happens, not how fast (the benches measure speed).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The controller's namespace and ConfigMap name (design defaults).
pub const NS: &str = "ferrolb-system";
/// Name of the pool ConfigMap.
pub const CONFIG_MAP: &str = "ferrolb-config";

/// An API server with the controller namespace created.
pub struct Cluster {
    /// The API server: kube-sim or the real kube-apiserver.
    pub api: TestApi,
    /// A client for test-side reads and writes (full rights).
    pub client: kube::Client,
}

impl Cluster {
    /// Starts kube-sim and creates `ferrolb-system`.
    pub async fn start() -> Self {
        Self::start_on(ApiBackend::Sim).await
    }

    /// Starts kube-sim with `opts` and creates `ferrolb-system`.
    pub async fn start_with(opts: kube_sim::SimOptions) -> Self {
        let sim = KubeSim::start_with(opts).await.expect("kube-sim starts");
        Self::around(TestApi::Sim(sim)).await
    }

    /// Starts an API server of kind `backend` and creates `ferrolb-system`.
    pub async fn start_on(backend: ApiBackend) -> Self {
        let api = TestApi::start(backend)
            .await
            .unwrap_or_else(|e| panic!("starting the {backend} API server: {e}"));
        Self::around(api).await
    }

    async fn around(api: TestApi) -> Self {
        let client = api.client().expect("API client");
        let c = Self { api, client };
        c.namespace(NS).await;
        c
    }

    /// kube-sim, for tests that inject faults or read its store; those are sim-only. Panics
    /// when this cluster runs on the real API server.
    pub fn sim(&self) -> &KubeSim {
        self.api.sim()
    }

    /// A kubeconfig with full rights, for `kubectl` and the controller.
    pub fn kubeconfig_path(&self) -> &Path {
        self.api.kubeconfig_path()
    }

    /// Every request the server answered so far (kube-sim's request log, or the real server's
    /// audit log).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.api.request_log()
    }

    /// Creates namespace `name` (both servers enforce that namespaces exist).
    pub async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace json");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }

    /// Creates or replaces the pool ConfigMap with `data`.
    pub async fn put_config_data(&self, data: &[(&str, &str)]) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let data: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP}, "data": data});
        // A merge patch would keep keys of the previous format; replace the whole data instead.
        let _ = api.delete(CONFIG_MAP, &DeleteParams::default()).await;
        let cm: ConfigMap = serde_json::from_value(body).expect("configmap json");
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create ConfigMap");
    }

    /// Replaces the data of the existing pool ConfigMap in place (an edit, not a re-create).
    pub async fn edit_config_data(&self, data: &[(&str, &str)]) {
        self.try_edit_config_data(data)
            .await
            .expect("replace ConfigMap");
    }

    /// [`Cluster::edit_config_data`] for input the API server may refuse (too large, say).
    pub async fn try_edit_config_data(&self, data: &[(&str, &str)]) -> Result<(), kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let mut cm = api.get(CONFIG_MAP).await?;
        cm.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        api.replace(CONFIG_MAP, &PostParams::default(), &cm).await?;
        Ok(())
    }

    /// Creates or replaces the native-format pool ConfigMap.
    pub async fn put_config(&self, yaml: &str) {
        self.put_config_data(&[("config.yaml", yaml)]).await;
    }

    /// The Service API of `ns`.
    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates a `type: LoadBalancer` Service on port 80, with `extra` merged into it.
    pub async fn create_lb(&self, ns: &str, name: &str, extra: Value) -> Service {
        let mut body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        });
        merge(&mut body, extra);
        let svc: Service = serde_json::from_value(body).expect("service json");
        self.services(ns)
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_or_else(|e| panic!("create {ns}/{name}: {e}"))
    }

    /// Merge-patches a Service.
    pub async fn patch_service(&self, ns: &str, name: &str, patch: Value) {
        self.services(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {ns}/{name}: {e}"));
    }

    /// Writes `ips` into a Service's status directly, as if an earlier controller had.
    pub async fn write_ingress(&self, ns: &str, name: &str, ips: &[&str]) {
        let entries: Vec<Value> = ips
            .iter()
            .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
            .collect();
        self.services(ns)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"loadBalancer": {"ingress": entries}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("patch status {ns}/{name}: {e}"));
    }

    /// Deletes a Service.
    pub async fn delete_service(&self, ns: &str, name: &str) {
        self.services(ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {ns}/{name}: {e}"));
    }

    /// The Service, if it exists.
    pub async fn service(&self, ns: &str, name: &str) -> Option<Service> {
        self.services(ns).get_opt(name).await.expect("get Service")
    }

    /// The IPs in a Service's `status.loadBalancer.ingress`.
    pub async fn ingress(&self, ns: &str, name: &str) -> Vec<String> {
        self.service(ns, name)
            .await
            .map(|s| ingress_ips(&s))
            .unwrap_or_default()
    }

    /// Waits until a Service has a non-empty ingress; returns its IPs.
    pub async fn wait_ingress(&self, ns: &str, name: &str) -> Vec<String> {
        eventually(
            &format!("an ingress IP on {ns}/{name}"),
            DEADLINE,
            || async {
                let ips = self.ingress(ns, name).await;
                (!ips.is_empty()).then_some(ips)
            },
        )
        .await
    }

    /// Waits until a Service's ingress is empty.
    pub async fn wait_no_ingress(&self, ns: &str, name: &str) {
        eventually(
            &format!("{ns}/{name} to have no ingress"),
            DEADLINE,
            || async { self.ingress(ns, name).await.is_empty().then_some(()) },
        )
        .await
    }

    /// Every Event about object `name` in `ns` (read through core/v1, as `kubectl describe` does).
    pub async fn events_for(&self, ns: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let all = api.list(&ListParams::default()).await.expect("list Events");
        all.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect()
    }

    /// Waits for an Event with `reason` about `ns/name` whose message contains `needle`;
    /// returns `(type, message)`.
    pub async fn wait_event(
        &self,
        ns: &str,
        name: &str,
        reason: &str,
        needle: &str,
    ) -> (String, String) {
        eventually(
            &format!("a {reason} Event containing {needle:?} on {ns}/{name}"),
            DEADLINE,
            || async {
                self.events_for(ns, name).await.into_iter().find_map(|e| {
                    let msg = e.message.clone().unwrap_or_default();
                    (e.reason.as_deref() == Some(reason) && msg.contains(needle))
                        .then(|| (e.type_.clone().unwrap_or_default(), msg))
                })
            },
        )
        .await
    }

    /// Whether an Event with `reason` exists about `ns/name`.
    pub async fn has_event(&self, ns: &str, name: &str, reason: &str) -> bool {
        self.events_for(ns, name)
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some(reason))
    }

    /// Starts a controller against this cluster with extra `args`.
    pub fn controller(&self, args: &[&str]) -> Controller {
        Controller::spawn(self.kubeconfig_path(), args, None)
    }

    /// Starts a controller whose identity (and so User-Agent) starts with `pod_name`.
    pub fn named_controller(&self, pod_name: &str, args: &[&str]) -> Controller {
        Controller::spawn(self.kubeconfig_path(), args, Some(pod_name))
    }
}

/// The IPs of `svc`'s ingress, in order.
pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// The value of annotation `key` on `svc`.
pub fn annotation(svc: &Service, key: &str) -> Option<String> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
}

pub use crate::json::merge;

/// Flags that make leader election fast enough for tests (the defaults are 15s/10s/2s).
pub const FAST_LEADER: &[&str] = &[
    "--leader-lease-duration",
    "2s",
    "--leader-renew-deadline",
    "1500ms",
    "--leader-retry-period",
    "200ms",
];

/// A running `ferrolb controller`; killed (SIGKILL) on drop, so a failing test leaves nothing
/// behind. On panic its log is printed, which is usually the quickest way to see why.
pub struct Controller {
    child: Option<Child>,
    log: PathBuf,
    dir: PathBuf,
    metrics: Option<SocketAddr>,
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Controller {
    /// Spawns the real binary with `--log-format json` (so the bound metrics address can be
    /// read from the log) and `--metrics-addr 127.0.0.1:0`.
    /// `pod_name` sets `$POD_NAME`, which prefixes the replica's identity.
    pub fn spawn(kubeconfig: &Path, args: &[&str], pod_name: Option<&str>) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ferrolb-ctltest-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("controller.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(crate::binary::ferrolb());
        if let Some(p) = pod_name {
            cmd.env("POD_NAME", p);
        }
        let child = cmd
            .args([
                "--log-format",
                "json",
                "controller",
                "--metrics-addr",
                "127.0.0.1:0",
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .args(args)
            // `FERROLB_TEST_LOG` turns up the controller's log when chasing a failure.
            .env(
                "RUST_LOG",
                std::env::var("FERROLB_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn ferrolb controller");
        Self {
            child: Some(child),
            log,
            dir,
            metrics: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address `/metrics` is served on, read from the "controller starting" log line.
    pub async fn metrics_addr(&mut self) -> SocketAddr {
        if let Some(a) = self.metrics {
            return a;
        }
        let log = self.log.clone();
        let addr = eventually(
            "the controller to log its metrics address",
            DEADLINE,
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                async move {
                    text.lines().find_map(|l| {
                        let v: Value = serde_json::from_str(l).ok()?;
                        v["fields"]["metrics"].as_str()?.parse().ok()
                    })
                }
            },
        )
        .await;
        self.metrics = Some(addr);
        addr
    }

    /// GETs `path` from the metrics server; `(status, body)`.
    pub async fn http_get(&mut self, path: &str) -> (u16, String) {
        let addr = self.metrics_addr().await;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || http_get(addr, &path))
            .await
            .expect("join")
            .expect("HTTP GET on the metrics address")
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&mut self) -> String {
        let (status, body) = self.http_get("/metrics").await;
        assert_eq!(status, 200, "/metrics answered {status}");
        body
    }

    /// The value of the sample `series` (name plus exact label set as printed, e.g.
    /// `ferrolb_allocation_failures_total{reason="pool_exhausted"}`), if present.
    pub async fn metric(&mut self, series: &str) -> Option<f64> {
        metric_value(&self.metrics_text().await, series)
    }

    /// Waits until `series` has value `want`.
    pub async fn wait_metric(&mut self, series: &str, want: f64) {
        let start = Instant::now();
        loop {
            let got = self.metric(series).await;
            if got == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {series} == {want}; last seen {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (graceful stop).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; returns whether it exited with success.
    pub async fn wait_exit(&mut self) -> bool {
        let mut child = self.child.take().expect("process still owned");
        let status = eventually("the controller to exit", DEADLINE, || {
            let r = child.try_wait();
            async move { r.ok().flatten() }
        })
        .await;
        status.success()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- controller log ({}) last lines ----",
                self.log.display()
            );
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A minimal HTTP/1.1 GET (the metrics server is ours; no client crate is needed).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Finds `series` (name and labels exactly as printed) in Prometheus/OpenMetrics text.
pub use crate::metrics::series_value as metric_value;
