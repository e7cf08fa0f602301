//! Load: the real `ferrolb controller` process with 5,000 LoadBalancer Services over 50 IPv6
//! pools, while 20 simulated speakers renew their Leases every second.
//!
//! Measures, against kube-sim:
//! 1. time until all 5,000 Services have an ingress IP (and the controller writes per Service);
//! 2. steady state over 30 s: controller RSS and CPU, and API writes/s by component. The point
//!    to show is that writes scale with nodes (Lease renewals), not with Services;
//! 3. restart: SIGKILL the controller, start a new one, and time it until it is ready and has
//!    stopped writing, with every Service keeping its IP; count the restarted one's writes.
//!
//! `cargo bench --bench controller_load` (release). `FERROLB_BENCH_RUNS` sets the number of
//! runs (default 1). Prints numbers; asserts nothing beyond "the scenario completed".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb_testkit::api_cluster::{Cluster, Controller, NS};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube_sim::RequestRecord;
use serde_json::json;

const SERVICES: usize = 5_000;
const POOLS: usize = 50;
const NODES: usize = 20;
/// Services are spread over a few namespaces, as in a real cluster; the count barely matters
/// to the controller, which watches all namespaces through one watch.
const NAMESPACES: usize = 5;
const STEADY_WINDOW: Duration = Duration::from_secs(30);
/// How long without a controller write counts as "settled".
const QUIET: Duration = Duration::from_secs(2);
/// The bench's own Lease writes carry this User-Agent so the request log can tell them apart.
const SPEAKER_UA: &str = "ferrolb-bench-speakers/sim";
/// Linux `USER_HZ`: the unit of utime/stime in /proc/<pid>/stat.
const USER_HZ: f64 = 100.0;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn is_write(r: &RequestRecord) -> bool {
    matches!(
        r.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

fn is_controller(r: &RequestRecord) -> bool {
    r.user_agent.starts_with("ferrolb-controller")
}

/// Controller writes in `[from_ms, to_ms)`.
fn controller_writes(log: &[RequestRecord], from_ms: u64, to_ms: u64) -> Vec<&RequestRecord> {
    log.iter()
        .filter(|r| r.at_ms >= from_ms && r.at_ms < to_ms && is_write(r) && is_controller(r))
        .collect()
}

/// "verb resource[/subresource] × n" for a set of writes, so the report says what was written.
fn breakdown(writes: &[&RequestRecord]) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for r in writes {
        let sub = r
            .subresource
            .as_deref()
            .map_or(String::new(), |s| format!("/{s}"));
        *by.entry(format!("{} {}{sub}", r.verb, r.resource))
            .or_default() += 1;
    }
    by.iter()
        .map(|(k, n)| format!("{k} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pools_config() -> String {
    let mut yaml = String::from("pools:\n");
    for i in 0..POOLS {
        // IPv6 /112s: 65,536 addresses each, so no pool runs short; the IPv4 documentation
        // ranges hold only 3 × 256 addresses in total.
        yaml.push_str(&format!(
            "  - name: p{i}\n    addresses: [\"2001:db8:{i:x}::/112\"]\n"
        ));
    }
    yaml
}

fn service_name(i: usize) -> (String, String) {
    (format!("load-{}", i % NAMESPACES), format!("svc-{i:05}"))
}

/// Writes the Services straight into kube-sim's store. Through the API, kube-sim would
/// allocate a NodePort for each (it ignores `allocateLoadBalancerNodePorts: false`) and run
/// out of the 2,768 it has; the controller sees the same objects through its watch either way.
fn seed_services(c: &Cluster) {
    let services = kube_sim::resources::find("", "v1", "services").expect("services resource");
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for i in 0..SERVICES {
        let (ns, name) = service_name(i);
        let cluster_ip = format!("fd00:10:96::{:x}", i + 1);
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": format!("00000000-0000-4000-8000-{i:012}"),
                         "creationTimestamp": created, "generation": 1,
                         "annotations": {"ferrolb.io/address-pool": format!("p{}", i % POOLS)}},
            "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "selector": {"app": name},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                     "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster",
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}
        });
        c.sim()
            .store()
            .mutate(services, &ns, &name, |_, _| {
                Ok(kube_sim::store::Outcome::Put(obj))
            })
            .map_err(|e| format!("{e:?}"))
            .expect("seed a Service");
    }
}

/// `namespace/name` → ingress IPs, read from the store (no HTTP, so polling it costs the
/// controller no CPU on the shared cores).
fn ingress_snapshot(c: &Cluster) -> HashMap<String, Vec<String>> {
    let services = kube_sim::resources::find("", "v1", "services").expect("services resource");
    let (objs, _) = c.sim().store().list(services, None);
    objs.iter()
        .map(|o| {
            let key = format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            let ips = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["ip"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (key, ips)
        })
        .collect()
}

fn with_ip(snap: &HashMap<String, Vec<String>>) -> usize {
    snap.values().filter(|ips| !ips.is_empty()).count()
}

/// A client whose requests the request log attributes to the simulated speakers.
fn speaker_client(c: &Cluster) -> kube::Client {
    let mut config = kube::Config::new(c.sim().url().parse().expect("kube-sim URL"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(SPEAKER_UA),
    ));
    kube::Client::try_from(config).expect("speaker client")
}

fn lease(n: usize) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(format!("ferrolb-speaker-node-{n}")),
            namespace: Some(NS.to_string()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(format!("node-{n}")),
            lease_duration_seconds: Some(10),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        }),
    }
}

/// Creates the 20 Leases and renews each every second with a PUT carrying the resourceVersion
/// of the last answer, as a speaker does. Returns the task and its failure counter.
async fn start_speakers(c: &Cluster) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let api: Api<Lease> = Api::namespaced(speaker_client(c), NS);
    let mut leases = Vec::with_capacity(NODES);
    for n in 0..NODES {
        leases.push(
            api.create(&PostParams::default(), &lease(n))
                .await
                .expect("create speaker Lease"),
        );
    }
    let failures = Arc::new(AtomicU64::new(0));
    let failed = failures.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for l in &mut leases {
                let mut next = l.clone();
                if let Some(spec) = next.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                }
                let name = next.metadata.name.clone().unwrap_or_default();
                match api.replace(&name, &PostParams::default(), &next).await {
                    Ok(done) => *l = done,
                    Err(_) => {
                        // Nobody else writes these Leases, so this should stay 0; re-read to
                        // recover the resourceVersion rather than stop renewing.
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(fresh) = api.get(&name).await {
                            *l = fresh;
                        }
                    }
                }
            }
        }
    });
    (task, failures)
}

/// utime + stime of `pid`, in seconds of CPU.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': f[0] is field 3 (state), so utime (14) is f[11] and stime (15) is f[12].
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / USER_HZ
}

/// VmRSS of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Waits until the controller has made no write for `QUIET`; returns when its last write was
/// (or `since_ms` if it made none).
async fn wait_quiet(c: &Cluster, since_ms: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let log = c.sim().faults().request_log();
        let last = controller_writes(&log, since_ms, u64::MAX)
            .iter()
            .map(|r| r.at_ms)
            .max()
            .unwrap_or(since_ms);
        if now_ms().saturating_sub(last) >= QUIET.as_millis() as u64 || start.elapsed() > limit {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Default)]
struct Report {
    allocate_all: Duration,
    allocate_writes: usize,
    allocate_kinds: String,
    rss_mean: f64,
    rss_max: f64,
    cpu_pct: f64,
    writes_per_s: Vec<(String, f64)>,
    controller_reads_per_s: f64,
    lease_failures: u64,
    restart_ready: Duration,
    restart_settled: Duration,
    restart_writes: usize,
    restart_kinds: String,
    restart_moved: usize,
    restart_rss: f64,
}

async fn scenario() -> Report {
    let mut report = Report::default();
    let c = Cluster::start().await;
    for n in 0..NAMESPACES {
        c.namespace(&format!("load-{n}")).await;
    }
    c.put_config(&pools_config()).await;
    seed_services(&c);
    let (speakers, lease_failures) = start_speakers(&c).await;

    // 1. Initial allocation of all 5,000.
    let args = ["--leader-elect", "false"];
    let t0 = Instant::now();
    let start_ms = now_ms();
    let mut ctl: Controller = c.controller(&args);
    loop {
        let n = with_ip(&ingress_snapshot(&c));
        if n == SERVICES {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "only {n}/{SERVICES} Services got an IP within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.allocate_all = t0.elapsed();
    // Let the tail of the writes (e.g. the pool annotation after the status) finish before
    // the steady window starts, so the window sees steady state only.
    wait_quiet(&c, start_ms, Duration::from_secs(60)).await;
    let log = c.sim().faults().request_log();
    let writes = controller_writes(&log, start_ms, u64::MAX);
    report.allocate_writes = writes.len();
    report.allocate_kinds = breakdown(&writes);

    // 2. Steady state over the window. The core looks once more at each Service whose own
    // write it had not yet seen echoed, EXPECTATION_TTL after that write (a no-op decision);
    // wait that one-off pass out so the window holds steady state only.
    tokio::time::sleep(ferrolb_core::reconcile::EXPECTATION_TTL + Duration::from_secs(1)).await;
    let pid = ctl.pid();
    let cpu0 = cpu_seconds(pid);
    let w0 = now_ms();
    let wall0 = Instant::now();
    let mut rss = Vec::new();
    while wall0.elapsed() < STEADY_WINDOW {
        rss.push(rss_mib(pid));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let secs = wall0.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds(pid);
    let w1 = now_ms();
    report.cpu_pct = (cpu1 - cpu0) / secs * 100.0;
    report.rss_mean = rss.iter().sum::<f64>() / rss.len() as f64;
    report.rss_max = rss.iter().copied().fold(0.0, f64::max);
    let log = c.sim().faults().request_log();
    let in_window: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.at_ms >= w0 && r.at_ms < w1)
        .collect();
    let mut by: HashMap<&str, usize> = HashMap::new();
    for r in in_window.iter().filter(|r| is_write(r)) {
        let who = if is_controller(r) {
            "ferrolb-controller"
        } else if r.user_agent.starts_with(SPEAKER_UA) {
            "speakers (simulated)"
        } else {
            "other"
        };
        *by.entry(who).or_default() += 1;
    }
    for who in ["ferrolb-controller", "speakers (simulated)", "other"] {
        let n = by.get(who).copied().unwrap_or(0);
        report.writes_per_s.push((who.to_string(), n as f64 / secs));
    }
    report.controller_reads_per_s = in_window
        .iter()
        .filter(|r| is_controller(r) && !is_write(r))
        .count() as f64
        / secs;

    // 3. Restart: SIGKILL, start a new one, time until it is ready and quiet.
    let before = ingress_snapshot(&c);
    ctl.kill();
    let r0 = Instant::now();
    let r0_ms = now_ms();
    let mut ctl = c.controller(&args);
    let mut ready_at = None;
    loop {
        if ready_at.is_none() && ctl.http_get("/readyz").await.0 == 200 {
            ready_at = Some(r0.elapsed());
        }
        if let Some(ready) = ready_at {
            let log = c.sim().faults().request_log();
            let last = controller_writes(&log, r0_ms, u64::MAX)
                .iter()
                .map(|r| r.at_ms)
                .max();
            let last_rel = last.map_or(Duration::ZERO, |ms| {
                Duration::from_millis(ms.saturating_sub(r0_ms))
            });
            let settled = ready.max(last_rel);
            let quiet = r0.elapsed().saturating_sub(settled) >= QUIET;
            if quiet && ingress_snapshot(&c) == before {
                report.restart_ready = ready;
                report.restart_settled = settled;
                let writes = controller_writes(&log, r0_ms, u64::MAX);
                report.restart_writes = writes.len();
                report.restart_kinds = breakdown(&writes);
                break;
            }
        }
        if r0.elapsed() > Duration::from_secs(120) {
            let after = ingress_snapshot(&c);
            report.restart_moved = before
                .iter()
                .filter(|(k, v)| after.get(*k) != Some(v))
                .count();
            report.restart_settled = r0.elapsed();
            println!("  WARNING: restart did not settle within 120 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.restart_rss = rss_mib(ctl.pid());
    report.lease_failures = lease_failures.load(Ordering::Relaxed);
    speakers.abort();
    report
}

fn main() {
    let runs: usize = std::env::var("FERROLB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "controller_load: {SERVICES} Services, {POOLS} IPv6 pools, {NODES} speaker Leases renewed every 1 s; \
         {runs} run(s); {} CPU(s)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for run in 1..=runs {
        let r = rt.block_on(scenario());
        println!("run {run}:");
        println!(
            "  initial allocation       {:>8.2} s until all {SERVICES} have an IP; {} controller writes ({:.2}/Service)",
            r.allocate_all.as_secs_f64(),
            r.allocate_writes,
            r.allocate_writes as f64 / SERVICES as f64
        );
        println!("    ({})", r.allocate_kinds);
        println!(
            "  steady state ({} s)      RSS mean {:.1} MiB, max {:.1} MiB; CPU {:.2} % of one core",
            STEADY_WINDOW.as_secs(),
            r.rss_mean,
            r.rss_max,
            r.cpu_pct
        );
        println!("  API writes/s by component:");
        for (who, rate) in &r.writes_per_s {
            println!("    {who:<22} {rate:>7.2}");
        }
        println!(
            "  controller reads/s       {:>7.2} (get/list/watch requests started in the window)",
            r.controller_reads_per_s
        );
        println!(
            "  restart → ready          {:>8.3} s",
            r.restart_ready.as_secs_f64()
        );
        println!(
            "  restart → settled        {:>8.3} s (ready and last write; confirmed by {} s without writes, all IPs unchanged)",
            r.restart_settled.as_secs_f64(),
            QUIET.as_secs()
        );
        println!(
            "  restarted controller     {} writes; {} Services changed IP; RSS {:.1} MiB",
            r.restart_writes, r.restart_moved, r.restart_rss
        );
        if r.restart_writes > 0 {
            println!("    ({})", r.restart_kinds);
        }
        println!("  lease renewal failures   {}", r.lease_failures);
    }
}
