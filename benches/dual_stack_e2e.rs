//! Timed end-to-end scenarios for IPv6 Service IPs on a dual-stack namespace LAN (needs root
//! and `ndisc6`, like tests/dual_stack_e2e.rs): hard-failure gap, graceful handover, Service
//! create to first successful `curl -6`, and Neighbor Advertisement latency. Prints median and
//! p99 over `FERROLB_BENCH_RUNS` runs (default 10). Run: `cargo bench --bench dual_stack_e2e`
//! (`FERROLB_BENCH_ONLY=failover|curl|na` runs one part).

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cluster::{poll, Cluster, ClusterSpec};
use ferrolb_testkit::timing::{self, report, runs, wanted, FailoverSeries};
use serde_json::json;

fn dual_stack() -> Cluster {
    Cluster::start(ClusterSpec {
        ipv6: true,
        ..ClusterSpec::default()
    })
}

/// One IPv6 failover on a fresh cluster: (longest curl gap, time from the failure to the first
/// answer from the new owner), both in milliseconds.
fn failover(graceful: bool) -> (f64, f64) {
    let mut c = dual_stack();
    c.wait_relaxed(3, Duration::from_secs(30));
    let (_, f) = c.measure_failover6(
        Duration::from_millis(20),
        Duration::from_secs(20),
        |c, owner| timing::fail_owner(c, owner, graceful),
    );
    (f.gap.as_secs_f64() * 1e3, f.switch.as_secs_f64() * 1e3)
}

/// Service create -> first successful `curl -6` through the VIP, one Service per run on one
/// cluster. The controller hands out the IPv6 range lowest-first, so the DNAT rules are in
/// place before each Service exists.
fn create_to_curl(n: usize) -> Vec<f64> {
    let c = dual_stack();
    let mut out = Vec::new();
    for k in 0..n {
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100 + k as u16);
        c.lan.add_vip6_dnat(vip, 80);
        let start = Instant::now();
        let got = c.create_service6(&format!("s{k}"), json!({}));
        assert_eq!(got, vip, "allocated lowest-first");
        assert!(
            poll(Duration::from_secs(10), || c.curl6(vip, 80).is_ok()),
            "curl -6 {vip}"
        );
        out.push(start.elapsed().as_secs_f64() * 1e3);
    }
    out
}

/// Neighbor Advertisement latency: `ndisc6` solicits the VIP from the client `count` times;
/// tcpdump on the client's interface timestamps each solicitation and the advertisement that
/// answers it (microseconds).
fn na_latency(count: usize) -> Vec<f64> {
    let c = dual_stack();
    let vip = c.create_service6("web6", json!({}));
    c.wait_announcer6(vip, Duration::from_secs(10), |_| true)
        .expect("announced");
    let capture = c
        .lan
        .client()
        .capture("icmp6 and (ip6[40] == 135 or ip6[40] == 136)");
    for _ in 0..count {
        assert!(c.lan.client().ndisc6_mac(vip, 1).is_some(), "{vip} answers");
    }
    std::thread::sleep(Duration::from_millis(200)); // let tcpdump write the last frames
    let frames = capture.stop();
    let client_mac = netns::CLIENT_MAC.0;
    let mut out = Vec::new();
    let mut asked: Option<f64> = None;
    for f in &frames {
        let b = &f.bytes;
        if b.len() < 78 || b[12..14] != [0x86, 0xdd] || b[20] != 58 {
            continue;
        }
        if b[62..78] != vip.octets() {
            continue;
        }
        let at = f
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6);
        match b[54] {
            135 if b[6..12] == client_mac => asked = Some(at),
            136 if b[58] & 0x40 != 0 => {
                if let Some(t) = asked.take() {
                    out.push(at - t);
                }
            }
            _ => {}
        }
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing for `cargo test --benches` to run
    }
    if netns::require_ipv6().is_err() {
        return;
    }
    let n = runs();
    println!(
        "IPv6 end-to-end timings, {n} runs each, on {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    if wanted("failover") {
        let mut f = FailoverSeries::measure(n, failover);
        report(
            "IPv6 hard failure (node cut off): curl gap",
            "ms",
            &mut f.hard_gap,
        );
        report(
            "IPv6 graceful handover: switch time",
            "ms",
            &mut f.graceful_switch,
        );
        report(
            "IPv6 graceful handover: curl gap",
            "ms",
            &mut f.graceful_gap,
        );
    }
    if wanted("curl") {
        report(
            "IPv6 Service create -> first curl -6",
            "ms",
            &mut create_to_curl(n.max(10)),
        );
    }
    if wanted("na") {
        report(
            "NA latency (ndisc6 NS -> NA on the wire)",
            "us",
            &mut na_latency(30),
        );
    }
}
