//! End-to-end timings of the real `ferrolb controller` process against kube-sim:
//!
//! 1. create → status: time from a Service create call returning until a watch sees its
//!    ingress, over 500 Services created one after another (goal: p99 < 100 ms);
//! 2. cold start: 10,000 Services that already have IPs plus 1,000 new ones; time from
//!    starting the controller until every Service is settled (goal: < 5 s on 2 cores).
//!
//! `cargo bench --bench controller_e2e` (release). `FERROLB_BENCH_RUNS` sets the number of runs
//! (default 3). Prints numbers; asserts nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferrolb_testkit::api_cluster::{self, Cluster, Controller, DEADLINE};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;

const IPV4_POOLS: &str =
    "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\", \"203.0.113.0/24\"]\n";
const IPV6_POOL: &str = "pools:\n  - name: v6\n    addresses: [\"2001:db8::/112\"]\n";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn service(name: &str, ipv6: bool) -> Service {
    let mut body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        // 11,000 Services would exhaust the NodePort range; LoadBalancers without NodePorts are
        // what kube-vip/Cilium-style setups use anyway.
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}
    });
    if ipv6 {
        body["spec"]["ipFamilies"] = json!(["IPv6"]);
        body["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    }
    serde_json::from_value(body).expect("service json")
}

fn has_ingress(s: &Service) -> bool {
    !api_cluster::ingress_ips(s).is_empty()
}

fn settled(s: &Service) -> bool {
    has_ingress(s) && api_cluster::annotation(s, "ferrolb.io/allocated-from-pool").is_some()
}

/// Streams (name, when first seen settled) for Services in `default`.
fn watch_settled(client: kube::Client) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let api: Api<Service> = Api::namespaced(client, "default");
        let mut seen = std::collections::HashSet::new();
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let Ok(ev) = ev else { continue };
            let objs: Vec<Service> = match ev {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => vec![s],
                _ => continue,
            };
            for s in objs {
                let name = s.metadata.name.clone().unwrap_or_default();
                if settled(&s)
                    && seen.insert(name.clone())
                    && tx.send((name, Instant::now())).is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

async fn create_to_status(n: usize) -> Vec<Duration> {
    let c = Cluster::start().await;
    c.put_config(IPV4_POOLS).await;
    let mut ctl: Controller = c.controller(&["--leader-elect", "false"]);
    ctl.metrics_addr().await;
    let mut seen = watch_settled(c.client.clone());
    // Warm-up: one Service through the whole path, so the first sample is not connection setup.
    let api = c.services("default");
    api.create(&PostParams::default(), &service("warmup", false))
        .await
        .expect("create");
    wait_for(&mut seen, "warmup", &mut HashMap::new()).await;

    let mut early = HashMap::new();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("s{i:04}");
        api.create(&PostParams::default(), &service(&name, false))
            .await
            .expect("create");
        let t0 = Instant::now();
        let at = wait_for(&mut seen, &name, &mut early).await;
        samples.push(at.saturating_duration_since(t0));
    }
    samples
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    name: &str,
    early: &mut HashMap<String, Instant>,
) -> Instant {
    if let Some(at) = early.remove(name) {
        return at;
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (got, at) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{name} not settled within {DEADLINE:?}"))
            .expect("watch task alive");
        if got == name {
            return at;
        }
        early.insert(got, at);
    }
}

async fn cold_start(existing: usize, new: usize) -> Duration {
    let c = Cluster::start().await;
    c.put_config(IPV6_POOL).await;
    let api = c.services("default");
    // Existing Services carry what an earlier FerroLB wrote: an IP and the pool annotation.
    // They go straight into kube-sim's store: through the API, 10,000 LoadBalancers would
    // exhaust the 2,768 NodePorts, because kube-sim allocates NodePorts even with
    // allocateLoadBalancerNodePorts: false (a kube-sim gap; the real API server skips them).
    let services = kube_sim::resources::find("", "v1", "services").expect("services resource");
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for i in 0..existing {
        let name = format!("old-{i:05}");
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": format!("00000000-0000-4000-8000-{i:012}"),
                         "creationTimestamp": created, "generation": 1,
                         "annotations": {"ferrolb.io/allocated-from-pool": "v6"}},
            "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "selector": {"app": name},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                     "clusterIP": format!("fd00:10:96::{:x}", i + 1), "clusterIPs": [format!("fd00:10:96::{:x}", i + 1)],
                     "ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster",
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {"ingress": [{"ip": format!("2001:db8::{:x}", i + 1), "ipMode": "VIP"}]}}
        });
        c.sim()
            .store()
            .mutate(services, "default", &name, |_, _| {
                Ok(kube_sim::store::Outcome::Put(obj))
            })
            .map_err(|e| format!("{e:?}"))
            .expect("seed an existing Service");
    }
    futures::stream::iter(0..new)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &service(&format!("new-{i:05}"), true),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("seed new Services");
    let total = existing + new;
    let mut seen = watch_settled(c.client.clone());
    // The watcher reports the existing ones at once; count them before the controller starts.
    let mut settled_count = 0;
    while settled_count < existing {
        seen.recv().await.expect("watch task alive");
        settled_count += 1;
    }
    let t0 = Instant::now();
    let _ctl = c.controller(&["--leader-elect", "false"]);
    let mut last = t0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while settled_count < total {
        let (_, at) = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .expect("cold start settles")
            .expect("watch task alive");
        settled_count += 1;
        last = at;
    }
    let elapsed = last.saturating_duration_since(t0);
    // Nothing must have moved: every existing Service still shows its original IP.
    let moved = api
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("old-"))
        })
        .filter(|s| {
            let n: usize = s
                .metadata
                .name
                .as_deref()
                .and_then(|n| n[4..].parse().ok())
                .unwrap_or(usize::MAX);
            api_cluster::ingress_ips(s) != [format!("2001:db8::{:x}", n + 1)]
        })
        .count();
    if moved > 0 {
        println!("  WARNING: {moved} existing Services changed IP during the cold start");
    }
    elapsed
}

fn main() {
    let runs: usize = std::env::var("FERROLB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    println!(
        "controller_e2e: {runs} run(s); {} CPU(s)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if want("create_to_status") {
        for run in 1..=runs {
            let mut s = rt.block_on(create_to_status(500));
            s.sort();
            println!(
                "create_to_status run {run}: n={} median={:.2} ms p99={:.2} ms max={:.2} ms",
                s.len(),
                ms(percentile(&s, 0.5)),
                ms(percentile(&s, 0.99)),
                ms(s[s.len() - 1])
            );
        }
    }
    if want("cold_start") {
        for run in 1..=runs {
            let settled = rt.block_on(cold_start(10_000, 1_000));
            println!(
                "cold_start run {run}: 10000 existing + 1000 new settled in {:.3} s",
                settled.as_secs_f64()
            );
        }
    }
}
