//! Timed end-to-end speaker scenarios on a namespace LAN (needs root, like tests/speaker_e2e.rs):
//! hard-failure gap, graceful handover, Service create to first successful curl, ARP reply
//! latency, and the idle speaker's CPU and memory with many announced IPs. Prints median and
//! p99 over `FERROLB_BENCH_RUNS` runs (default 10). Run: `cargo bench --bench speaker_e2e`.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cluster::{poll, Cluster, ClusterSpec};
use ferrolb_testkit::timing::{self, report, runs, wanted, FailoverSeries};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// One failover on a fresh cluster: (longest curl gap, time from the failure to the first
/// answer from the new owner), both in milliseconds.
fn failover(graceful: bool) -> (f64, f64) {
    let mut c = Cluster::start(ClusterSpec::default());
    c.wait_relaxed(3, Duration::from_secs(30));
    let f = c.measure_failover(
        Duration::from_millis(20),
        Duration::from_secs(20),
        |c, owner| timing::fail_owner(c, owner, graceful),
    );
    (f.gap.as_secs_f64() * 1e3, f.switch.as_secs_f64() * 1e3)
}

fn create_to_curl(n: usize) -> Vec<f64> {
    let c = Cluster::start(ClusterSpec::default());
    // The controller hands out the pool lowest-first, so the DNAT rules can be in place before
    // the Services exist and do not count against the measurement.
    for k in 0..n {
        c.lan
            .add_vip_dnat(Ipv4Addr::new(203, 0, 113, 10 + k as u8), 80);
    }
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let mut out = Vec::new();
    for k in 0..n {
        let name = format!("s{k}");
        let svc = json!({"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}});
        let start = Instant::now();
        c.rt.block_on(api.create(
            &PostParams::default(),
            &serde_json::from_value(svc).expect("static"),
        ))
        .expect("create");
        let vip = Ipv4Addr::new(203, 0, 113, 10 + k as u8);
        let ok = poll(Duration::from_secs(10), || {
            c.lan
                .client()
                .curl_within(&format!("http://{vip}/"), Duration::from_millis(200))
                .is_ok()
        });
        assert!(ok, "{name} never answered");
        out.push(start.elapsed().as_secs_f64() * 1e3);
    }
    out
}

fn arp_latency(count: usize) -> Vec<f64> {
    let c = Cluster::start(ClusterSpec::default());
    let vip = c.create_service("web", json!({}));
    c.wait_announcer(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    let vip_s = vip.to_string();
    let count_s = count.to_string();
    let out = c
        .lan
        .client()
        .exec(
            "arping",
            // 50 ms apart: enough samples for a p99 that is not simply the slowest of a few.
            &[
                "-i", "eth0", "-c", &count_s, "-W", "0.05", "-w", "60", &vip_s,
            ],
            Duration::from_secs(70),
        )
        .expect("arping");
    // Lines: "60 bytes from 02:fe:..:.. (203.0.113.10): index=0 time=121.311 usec"
    out.stdout
        .lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let mut parts = t.split_whitespace();
            let v: f64 = parts.next()?.parse().ok()?;
            Some(match parts.next()? {
                "usec" => v,
                "msec" => v * 1e3,
                "sec" => v * 1e6,
                _ => return None,
            })
        })
        .collect()
}

/// CPU (percent of one core) and RSS (KiB) of an idle speaker announcing every IP we may use.
fn idle_cost() -> (usize, usize, f64, u64) {
    let mut c = Cluster::start(ClusterSpec {
        nodes: 1,
        speaker_args: vec!["--lb-class".into(), "bench".into()],
        ..ClusterSpec::default()
    });
    // Only two documentation /24s may carry traffic here: every free address in both.
    let ips: Vec<Ipv4Addr> = (1..=199u8)
        .map(|d| Ipv4Addr::new(203, 0, 113, d))
        .chain((20..=199u8).map(|d| Ipv4Addr::new(198, 51, 100, d)))
        .collect();
    let services = 1000;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    c.rt.block_on(async {
        for k in 0..services {
            let ip = ips[k % ips.len()];
            let svc = json!({"metadata": {"name": format!("b{k}")},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": "bench", "ports": [{"port": 1000 + k, "targetPort": 8080}]}});
            api.create(&PostParams::default(), &serde_json::from_value(svc).expect("static")).await.expect("create");
            let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
            api.patch_status(&format!("b{k}"), &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
        }
    });
    let announced = || {
        let m = c.speaker_metrics(1);
        m.lines()
            .filter(|l| l.starts_with("ferrolb_speaker_announcing{"))
            .count()
    };
    assert!(
        poll(Duration::from_secs(60), || announced() == services),
        "not everything announced: {}",
        announced()
    );
    std::thread::sleep(Duration::from_secs(5)); // past the gratuitous bursts
    let speaker = c.speaker(1);
    let window = Duration::from_secs(30);
    let (t0, start) = (speaker.cpu_time().unwrap_or_default(), Instant::now());
    std::thread::sleep(window);
    let used = speaker.cpu_time().unwrap_or_default().saturating_sub(t0);
    let cpu = used.as_secs_f64() / start.elapsed().as_secs_f64() * 100.0;
    let rss = speaker.rss_bytes().unwrap_or(0) / 1024;
    (services, ips.len(), cpu, rss)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing for `cargo test --benches` to run
    }
    if netns::require().is_err() {
        return;
    }
    let n = runs();
    // FERROLB_BENCH_ONLY=failover|curl|arp|idle runs one part.
    println!(
        "speaker end-to-end timings, {n} runs each, on {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    if wanted("failover") {
        let mut f = FailoverSeries::measure(n, failover);
        report(
            "hard failure (node cut off): curl gap",
            "ms",
            &mut f.hard_gap,
        );
        report(
            "graceful handover (SIGTERM): switch time",
            "ms",
            &mut f.graceful_switch,
        );
        report(
            "graceful handover (SIGTERM): curl gap",
            "ms",
            &mut f.graceful_gap,
        );
    }
    if wanted("curl") {
        report(
            "Service create -> first successful curl",
            "ms",
            &mut create_to_curl(n.max(10)),
        );
    }
    if wanted("arp") {
        report(
            "ARP reply latency (arping from client)",
            "us",
            &mut arp_latency(300),
        );
    }
    if !wanted("idle") {
        return;
    }
    let (services, ips, cpu, rss) = idle_cost();
    println!("idle speaker with {services} Services on {ips} announced IPs: CPU {cpu:.2}% of one core over 30 s, RSS {} KiB", rss);
}
