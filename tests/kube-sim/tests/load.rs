//! Load: 10,000 Services created concurrently and listed whole, then 100 concurrent watchers
//! that must each receive every one of 2,000 later events. Prints list latency and event
//! fan-out rate (run with `--nocapture`); asserts completeness only, never speed, because CI
//! machines vary too much for timing thresholds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use kube_sim::KubeSim;
use serde_json::json;

const SERVICES: usize = 10_000;
const WRITERS: usize = 16;
const WATCHERS: usize = 100;
const EVENTS: usize = 2_000;
const LISTS: usize = 10;
/// Generous bound on the whole test so a hang fails instead of blocking CI forever.
const DEADLINE: Duration = Duration::from_secs(300);

fn svc(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i:05}"), "labels": {"load": "yes"}},
        "spec": {"selector": {"app": format!("a{i}")}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_services_and_a_hundred_watchers() {
    tokio::time::timeout(DEADLINE, run())
        .await
        .expect("the load test finishes within its deadline");
}

async fn run() {
    let sim = KubeSim::start().await.unwrap();
    let api: Api<Service> = Api::default_namespaced(sim.client().unwrap());

    // 1. Create concurrently: writer w creates every WRITERS-th Service.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..SERVICES).step_by(WRITERS) {
                api.create(&PostParams::default(), &svc(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let create_time = started.elapsed();

    // 2. List everything, several times.
    let mut latencies = Vec::new();
    let mut list_rv = String::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(list.items.len(), SERVICES, "the list returns every Service");
        let mut names: Vec<String> = list.items.iter().map(|s| s.name_any()).collect();
        names.dedup();
        assert_eq!(names.len(), SERVICES, "no duplicates");
        list_rv = list.metadata.resource_version.unwrap();
    }
    latencies.sort();

    // 3. WATCHERS watches from the list RV; each must see all EVENTS later modifications.
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let stream = api.watch(&WatchParams::default(), &list_rv).await.unwrap();
        watchers.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut seen = std::collections::HashSet::new();
            while seen.len() < EVENTS {
                match stream.next().await {
                    Some(Ok(WatchEvent::Modified(s))) => {
                        // Each modification has its own RV; a repeat would be a duplicate.
                        assert!(
                            seen.insert(s.resource_version().unwrap()),
                            "duplicate event for {}",
                            s.name_any()
                        );
                    }
                    Some(Ok(WatchEvent::Bookmark(_))) => {}
                    Some(Ok(other)) => panic!("unexpected event {other:?}"),
                    Some(Err(e)) => panic!("watch failed: {e}"),
                    None => panic!("watch ended after {} of {EVENTS} events", seen.len()),
                }
            }
            seen.len()
        }));
    }

    let fanout_start = Instant::now();
    let api = Arc::new(api);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..EVENTS).step_by(WRITERS) {
                api.patch(
                    &format!("svc-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let write_time = fanout_start.elapsed();
    for w in watchers {
        assert_eq!(w.await.unwrap(), EVENTS);
    }
    let fanout_time = fanout_start.elapsed();
    let delivered = WATCHERS * EVENTS;

    println!(
        "load: {SERVICES} Services created by {WRITERS} tasks in {create_time:.2?} ({:.0}/s)",
        SERVICES as f64 / create_time.as_secs_f64()
    );
    println!(
        "load: list of {SERVICES} Services: median {:.1?}, p99 {:.1?} over {LISTS} lists",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "load: {EVENTS} patches in {write_time:.2?}; {WATCHERS} watchers received all {delivered} events in {fanout_time:.2?} ({:.0} events/s delivered)",
        delivered as f64 / fanout_time.as_secs_f64()
    );
}
