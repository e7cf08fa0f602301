//! A whole FerroLB cluster on one machine, for end-to-end tests and timed scenarios: kube-sim
//! or a real kube-apiserver ([`ClusterSpec::backend`]),
//! a namespace LAN ([`crate::netns`]), the real controller in the root namespace and a real
//! speaker in every node namespace. Everything is torn down on drop, also on panic.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::merge;
// The first sample of a metric, and the sum over its label sets, in the daemons' /metrics text.
pub use crate::metrics::{sum as metric_sum, value as metric};
use crate::{ApiBackend, TestApi};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::KubeSim;
use serde_json::{json, Value};

use crate::netns::{ApiEndpoint, Lan, MacAddr, NsChild};

pub mod ipv6;

/// The VIP pool every cluster uses: inside the nodes' 203.0.113.0/24 link subnet.
pub const POOL: &str = "203.0.113.10-203.0.113.99";

/// A process in the root namespace, killed on drop.
pub struct RootChild {
    child: Child,
    log: std::path::PathBuf,
}

impl RootChild {
    /// Its log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for RootChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The heartbeat key the e2e clusters use by default.
pub const E2E_HEARTBEAT_KEY: &str = "ferrolb-e2e-heartbeat-key-0123456789";

/// Cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of nodes (speakers).
    pub nodes: usize,
    /// `l2.garp` as YAML flow text.
    pub garp: String,
    /// Extra speaker flags.
    pub speaker_args: Vec<String>,
    /// The `ferrolb` binary to run (default: [`crate::binary::ferrolb`]).
    pub ferrolb: PathBuf,
    /// The API server (default kube-sim).
    pub backend: ApiBackend,
    /// Dual-stack LAN: IPv6 addresses, IPv6 stand-in pods and [`ipv6::POOL6`] in the pool.
    pub ipv6: bool,
    /// The heartbeat key seeded as Secret `ferrolb-heartbeat` before the speakers start (the
    /// default: a known key, so tests can forge and replay); `None`: no Secret is seeded and the
    /// controller creates one with a random key, as in a real install.
    pub heartbeat_key: Option<String>,
    /// YAML appended to the seeded `config.yaml` after `pools:` and `l2:` (e.g. a `bgp:`
    /// section), so a test can start the speakers with it rather than patching it in later.
    pub extra_config: String,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            nodes: 3,
            garp: "{ burst: 3, interval: 300ms, refresh: 0s }".into(),
            speaker_args: Vec::new(),
            ferrolb: crate::binary::ferrolb(),
            backend: ApiBackend::Sim,
            ipv6: false,
            heartbeat_key: Some(E2E_HEARTBEAT_KEY.into()),
            extra_config: String::new(),
        }
    }
}

/// The running cluster.
pub struct Cluster {
    /// Runtime kube-sim and the test's kube client run on (multi-threaded, so the test thread
    /// can block in harness helpers while kube-sim keeps serving).
    pub rt: tokio::runtime::Runtime,
    /// The API server (kube-sim, or a real kube-apiserver per [`ClusterSpec::backend`]).
    pub server: TestApi,
    /// The LAN.
    pub lan: Lan,
    /// The API server as the nodes reach it.
    pub api: ApiEndpoint,
    /// A client for the test's own API calls.
    pub client: kube::Client,
    /// The controller process.
    pub controller: RootChild,
    /// Speaker per node (index 0 = node 1); `None` once a test stopped it.
    pub speakers: Vec<Option<NsChild>>,
    spec: ClusterSpec,
}

fn ok<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

impl Cluster {
    /// Builds and starts everything, and waits until every speaker's lease exists.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let rt = ok(
            "runtime",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        );
        let server = ok("API server", rt.block_on(TestApi::start(spec.backend)));
        // The client spawns its buffer worker on the current runtime.
        let client = {
            let _inside = rt.enter();
            ok("client", server.client())
        };
        let lan = Lan::builder().nodes(spec.nodes).build();
        if spec.ipv6 {
            lan.add_ipv6();
            lan.add_ipv6_backends();
        }
        let scheme = match spec.backend {
            ApiBackend::Sim => "http",
            ApiBackend::Real => "https",
        };
        let api = lan.expose_api_with(server.addr(), scheme, |relay| server.kubeconfig_via(relay));
        ok("seed", rt.block_on(seed(&client, &spec)));
        let controller = ok(
            "spawn controller",
            spawn_controller(
                &spec.ferrolb,
                server.kubeconfig_path(),
                lan.log_dir().join("controller.log"),
            ),
        );
        let mut cluster = Cluster {
            rt,
            server,
            lan,
            api,
            client,
            controller,
            speakers: Vec::new(),
            spec: spec.clone(),
        };
        for i in 1..=spec.nodes {
            let s = cluster.spawn_speaker(i);
            cluster.speakers.push(Some(s));
        }
        for i in 1..=spec.nodes {
            cluster.wait_lease(i, Duration::from_secs(20));
        }
        cluster
    }

    /// kube-sim, for tests that inject faults; those are sim-only. Panics on the real server.
    pub fn sim(&self) -> &KubeSim {
        self.server.sim()
    }

    /// Starts the speaker of node `i` (1-based).
    pub fn spawn_speaker(&self, i: usize) -> NsChild {
        let kubeconfig = self.api.kubeconfig.to_string_lossy().to_string();
        let node = format!("node-{i}");
        let mut args: Vec<&str> = vec![
            "speaker",
            "--node-name",
            &node,
            "--kubeconfig",
            &kubeconfig,
            "--metrics-addr",
            "127.0.0.1:7473",
        ];
        args.extend(self.spec.speaker_args.iter().map(String::as_str));
        self.lan
            .node(i)
            .spawn(&self.spec.ferrolb.to_string_lossy(), &args)
    }

    /// Restarts the speaker of node `i` after a test stopped it.
    pub fn restart_speaker(&mut self, i: usize) {
        let s = self.spawn_speaker(i);
        self.speakers[i - 1] = Some(s);
    }

    /// The speaker of node `i`.
    pub fn speaker(&mut self, i: usize) -> &mut NsChild {
        self.speakers[i - 1].as_mut().expect("speaker was stopped")
    }

    fn wait_lease(&self, i: usize, timeout: Duration) {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), "ferrolb-system");
        let name = format!("ferrolb-speaker-node-{i}");
        let found = poll(timeout, || {
            self.rt
                .block_on(leases.get_opt(&name))
                .ok()
                .flatten()
                .is_some()
        });
        assert!(
            found,
            "speaker lease {name} never appeared; speaker log:\n{}",
            self.speakers[i - 1]
                .as_ref()
                .map(|s| s.stderr())
                .unwrap_or_default()
        );
    }

    /// Creates a LoadBalancer Service from `manifest` (merged over a default with one port 80
    /// and selector app=<name>) and returns its allocated IPv4 address once the controller wrote it.
    pub fn create_service(&self, name: &str, extra: Value) -> Ipv4Addr {
        let mut svc = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        merge(&mut svc, extra);
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        ok(
            "create service",
            self.rt.block_on(api.create(
                &PostParams::default(),
                &serde_json::from_value(svc).unwrap(),
            )),
        );
        self.wait_ip(name, Duration::from_secs(15))
    }

    /// Waits for the Service's first ingress IP.
    pub fn wait_ip(&self, name: &str, timeout: Duration) -> Ipv4Addr {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        let mut ip = None;
        poll(timeout, || {
            ip = self
                .rt
                .block_on(api.get(name))
                .ok()
                .and_then(|s| s.status?.load_balancer?.ingress?.first()?.ip.clone())
                .and_then(|s| s.parse().ok());
            ip.is_some()
        });
        ip.unwrap_or_else(|| {
            panic!(
                "service {name} got no IP; controller log:\n{}",
                self.controller.log()
            )
        })
    }

    /// Patches a Service (merge patch).
    pub fn patch_service(&self, name: &str, patch: Value) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        ok(
            "patch service",
            self.rt
                .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))),
        );
    }

    /// Deletes a Service.
    pub fn delete_service(&self, name: &str) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        ok(
            "delete service",
            self.rt.block_on(api.delete(name, &DeleteParams::default())),
        );
    }

    /// Creates or replaces the EndpointSlice of `service` with one ready endpoint per node.
    pub fn set_endpoints(&self, service: &str, nodes: &[usize]) {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), "default");
        let name = format!("{service}-eps");
        let endpoints: Vec<Value> = nodes
            .iter()
            .map(|i| json!({"addresses": [format!("10.244.{i}.10")], "nodeName": format!("node-{i}"), "conditions": {"ready": true}}))
            .collect();
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
        let params = PatchParams::apply("e2e-test").force();
        ok(
            "endpointslice",
            self.rt
                .block_on(api.patch(&name, &params, &Patch::Apply(&slice))),
        );
    }

    /// Sets (or with `None` removes) a label on a Node.
    pub fn label_node(&self, i: usize, key: &str, value: Option<&str>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"labels": {key: value}}});
        ok(
            "label node",
            self.rt.block_on(api.patch(
                &format!("node-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )),
        );
    }

    /// Creates `n` default LoadBalancer Services `s0`, `s1`, ... and waits until a node answers
    /// ARP for each; returns their IPs and, in the same order, the node announcing each.
    /// Panics with the speakers' logs if one is not announced within 10 s.
    pub fn create_announced_services(&self, n: usize) -> (Vec<Ipv4Addr>, Vec<usize>) {
        let vips: Vec<Ipv4Addr> = (0..n)
            .map(|k| self.create_service(&format!("s{k}"), json!({})))
            .collect();
        let owners = vips
            .iter()
            .map(|v| {
                self.wait_announcer(*v, Duration::from_secs(10), |_| true)
                    .unwrap_or_else(|| panic!("nobody announces {v}\n{}", self.speaker_logs()))
            })
            .collect();
        (vips, owners)
    }

    /// The node (1-based) whose MAC this is.
    pub fn node_of_mac(&self, mac: MacAddr) -> Option<usize> {
        (1..=self.spec.nodes).find(|i| self.lan.node(*i).mac() == mac)
    }

    /// Which node answers ARP for `vip` from the client right now.
    pub fn announcer(&self, vip: Ipv4Addr) -> Option<usize> {
        self.lan
            .client()
            .arping_mac(vip)
            .and_then(|m| self.node_of_mac(m))
    }

    /// Waits until exactly one MAC answers ARP for `vip` (each look listens for 500 ms): one
    /// owner, however many claimed the IP a moment ago.
    pub fn wait_one_mac(&self, vip: Ipv4Addr, within: Duration) -> bool {
        poll(within, || {
            self.lan
                .client()
                .arping_macs(vip, Duration::from_millis(500))
                .len()
                == 1
        })
    }

    /// Waits until some node answers ARP for `vip` (and `want(node)` holds), returning it.
    pub fn wait_announcer(
        &self,
        vip: Ipv4Addr,
        timeout: Duration,
        want: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        wait_for_node(timeout, || self.announcer(vip).filter(|n| want(*n)))
    }

    /// `curl http://vip:port/` from the client.
    pub fn curl(&self, vip: Ipv4Addr, port: u16) -> Result<String, String> {
        self.lan.client().curl(&format!("http://{vip}:{port}/"))
    }

    /// A speaker's metrics text, scraped inside its node namespace.
    pub fn speaker_metrics(&self, i: usize) -> String {
        self.lan
            .node(i)
            .exec(
                "curl",
                &["-s", "--max-time", "2", "http://127.0.0.1:7473/metrics"],
                Duration::from_secs(5),
            )
            .map(|o| o.stdout)
            .unwrap_or_default()
    }

    /// The HTTP status of a speaker's `/healthz`, asked inside its node namespace (`None`: no
    /// answer at all).
    pub fn speaker_healthz(&self, i: usize) -> Option<u16> {
        self.lan
            .node(i)
            .exec(
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "2",
                    "http://127.0.0.1:7473/healthz",
                ],
                Duration::from_secs(5),
            )
            .ok()
            .and_then(|o| o.stdout.trim().parse().ok())
            .filter(|c| *c != 0)
    }

    /// The sum of every sample of metric family `name` (all label sets) in a speaker's metrics.
    pub fn speaker_metric_sum(&self, i: usize, name: &str) -> f64 {
        metric_sum(&self.speaker_metrics(i), name)
    }

    /// Waits until speakers 1..=`nodes` renew at the relaxed cadence, i.e. every watcher hears
    /// each of them: the heartbeat steady state. Right after start the speakers still learn
    /// each other's heartbeat addresses from the Leases (well under a second), and a node that
    /// fails before that is judged by its lease alone.
    pub fn wait_relaxed(&self, nodes: usize, within: Duration) {
        let relaxed = |i: usize| {
            metric_sum(
                &self.speaker_metrics(i),
                "ferrolb_speaker_heartbeat_lease_relaxed",
            ) == 1.0
        };
        assert!(
            poll(within, || (1..=nodes).all(relaxed)),
            "speakers never relaxed their lease cadence\n{}",
            self.speaker_logs()
        );
    }

    /// The speaker logs, for failure messages.
    pub fn speaker_logs(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.speakers.iter().enumerate() {
            if let Some(s) = s {
                out.push_str(&format!(
                    "--- speaker node-{} ---\n{}\n",
                    i + 1,
                    tail(&s.stderr(), 40)
                ));
            }
        }
        out
    }

    /// Events on a Service, as (reason, message).
    pub fn service_events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), "default");
        let lp = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
        self.rt
            .block_on(api.list(&lp))
            .map(|l| {
                l.items
                    .into_iter()
                    .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Creates what a cluster needs before FerroLB starts: the `ferrolb-system` namespace, the pool
/// ConfigMap ([`POOL`], `spec.garp`, `spec.extra_config`) and one Node object `node-<i>` per node.
pub async fn seed(client: &kube::Client, spec: &ClusterSpec) -> Result<(), kube::Error> {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "ferrolb-system"}})),
    )
    .await?;
    let pool6 = if spec.ipv6 {
        format!(", \"{}\"", ipv6::POOL6)
    } else {
        String::new()
    };
    let config = format!(
        "pools:\n  - name: lan\n    addresses: [\"{POOL}\"{pool6}]\nl2:\n  garp: {}\n{}",
        spec.garp, spec.extra_config
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ferrolb-system");
    let cm = json!({"metadata": {"name": "ferrolb-config"}, "data": {"config.yaml": config}});
    cms.create(&PostParams::default(), &from_json(cm)).await?;
    if let Some(key) = &spec.heartbeat_key {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), "ferrolb-system");
        let secret = json!({"metadata": {"name": "ferrolb-heartbeat"}, "stringData": {"key": key}});
        secrets
            .create(&PostParams::default(), &from_json(secret))
            .await?;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 1..=spec.nodes {
        let n = json!({"metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}}});
        nodes.create(&PostParams::default(), &from_json(n)).await?;
    }
    Ok(())
}

/// Starts `ferrolb controller` (leader election off, metrics on a free loopback port) in the
/// root namespace against `kubeconfig`, with stdout and stderr going to `log`.
pub fn spawn_controller(
    ferrolb: &Path,
    kubeconfig: &Path,
    log: PathBuf,
) -> std::io::Result<RootChild> {
    let file = std::fs::File::create(&log)?;
    let child = Command::new(ferrolb)
        .args(["controller", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0", "--leader-elect", "false"])
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {} controller: {e}", ferrolb.display()),
            )
        })?;
    Ok(RootChild { child, log })
}

/// Static JSON literals above always match the typed object they are parsed into.
fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("static object literal matches its type")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Calls `check` until it returns true or `timeout` passes; returns whether it did.
pub fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `answer` until it names a node or `timeout` passes; the last answer.
pub(crate) fn wait_for_node(
    timeout: Duration,
    answer: impl Fn() -> Option<usize>,
) -> Option<usize> {
    let mut found = None;
    poll(timeout, || {
        found = answer();
        found.is_some()
    });
    found
}

/// Median and 99th percentile (nearest rank) of `values`.
pub fn median_p99(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let median = values[values.len() / 2];
    let rank = ((0.99 * values.len() as f64).ceil() as usize).clamp(1, values.len());
    (median, values[rank - 1])
}

/// What a client on the LAN saw while the node owning a VIP failed.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// The node that owned the VIP.
    pub old: usize,
    /// The node that owns it afterwards.
    pub new: usize,
    /// Longest run of failed curls.
    pub gap: Duration,
    /// From the failure to the first answer from another node.
    pub switch: Duration,
}

impl Cluster {
    /// Creates Service `web`, has the client curl its VIP every `every`, applies `fail` to the
    /// node that owns it, and waits (up to `within`) until another node answers; panics if none
    /// does.
    pub fn measure_failover(
        &mut self,
        every: Duration,
        within: Duration,
        fail: impl FnOnce(&mut Cluster, usize),
    ) -> Failover {
        let vip = self.create_service("web", json!({}));
        self.lan.add_vip_dnat(vip, 80);
        let owner = self
            .wait_announcer(vip, Duration::from_secs(10), |_| true)
            .expect("the VIP is announced");
        self.follow_failover(&format!("http://{vip}/"), owner, every, within, fail, |c| {
            c.announcer(vip)
        })
    }

    /// What [`Cluster::measure_failover`] and [`Cluster::measure_failover6`] share once the
    /// VIP is announced by `owner` and reachable at `url`: the client curls it every `every`,
    /// `fail` is applied to `owner`, and the gap and the switch time are read from the samples
    /// once another node's pod answers (within `within`); `announcer` tells who answers for
    /// the VIP afterwards. Panics if traffic does not recover on another node.
    pub(crate) fn follow_failover(
        &mut self,
        url: &str,
        owner: usize,
        every: Duration,
        within: Duration,
        fail: impl FnOnce(&mut Cluster, usize),
        announcer: impl Fn(&Cluster) -> Option<usize>,
    ) -> Failover {
        let sampler = self.lan.client().curl_sampler(url, every, every * 10);
        assert!(
            sampler.wait_until(Duration::from_secs(5), |s| s
                .iter()
                .any(|x| x.result.is_ok())),
            "curl {url} works before the failure\n{}",
            self.speaker_logs()
        );
        let failed_at = sampler.snapshot().last().map_or(Duration::ZERO, |x| x.at);
        fail(self, owner);
        let old_body = format!("node-{owner}");
        let from_another =
            |x: &crate::netns::CurlSample| x.result.as_ref().is_ok_and(|b| *b != old_body);
        let moved = sampler.wait_until(within, |s| s.last().is_some_and(from_another));
        let samples = sampler.stop();
        assert!(
            moved,
            "traffic to {url} never recovered on another node\n{}",
            self.speaker_logs()
        );
        let gap = crate::netns::longest_outage(&samples).map_or(Duration::ZERO, |o| o.len());
        let switch = samples
            .iter()
            .find(|x| x.at > failed_at && from_another(x))
            .map_or(Duration::MAX, |x| x.at.saturating_sub(failed_at));
        let new = announcer(self).unwrap_or_else(|| panic!("someone answers for {url}"));
        assert_ne!(new, owner, "another node took over");
        Failover {
            old: owner,
            new,
            gap,
            switch,
        }
    }
}
