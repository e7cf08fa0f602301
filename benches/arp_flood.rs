//! ARP floods against a real speaker on a namespace LAN (needs root, like
//! tests/reliability_speaker.rs): how many ARP requests per second one speaker answers, what it
//! costs in CPU, and what ignoring junk, other traffic and other VLANs costs. A raw socket in the client namespace sends
//! hand-made requests at fixed offered rates and flat out; a second thread on the same socket
//! counts the replies that come back. The speaker's CPU comes from /proc/<pid>/stat.
//!
//! Run: `cargo bench --bench arp_flood` (`FERROLB_FLOOD_SECS`, default 5, per step).

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{Cluster, ClusterSpec};
use netns::inject::{arp_reply_of, RawArp};
use netns::MacAddr;
use serde_json::json;

const FLOOD_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x0a, 0xf0]);
const FLOOD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 210);

fn secs() -> Duration {
    Duration::from_secs(
        std::env::var("FERROLB_FLOOD_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    )
}

struct Step {
    offered: f64,
    answered: f64,
    counted_requests: f64,
    counted_replies: f64,
    cpu_pct: f64,
    rss_mib: f64,
}

/// Sends `frame(n)` for `dur` at `rate` frames/s (`None`: as fast as possible) and measures.
fn step(
    c: &Cluster,
    vip: Ipv4Addr,
    rate: Option<u64>,
    dur: Duration,
    frame: &dyn Fn(u64) -> Vec<u8>,
) -> Step {
    let (mut tx, mut rx) = c.lan.client().injector("eth0").split();
    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, replies) = (stop.clone(), replies.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(f) = rx.next() {
                    if let Some((_, ip, dst)) = arp_reply_of(f) {
                        if ip == vip && dst == FLOOD_MAC {
                            replies.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    let speaker = c.speakers[0].as_ref().expect("speaker running");
    let req0 = c.speaker_metric_sum(1, "ferrolb_speaker_arp_requests_total");
    let rep0 = c.speaker_metric_sum(1, "ferrolb_speaker_arp_replies_total");
    let cpu0 = speaker.cpu_time().unwrap_or_default();
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < dur {
        let due = match rate {
            Some(r) => (t.elapsed().as_secs_f64() * r as f64) as u64,
            None => sent + 512,
        };
        while sent < due {
            if matches!(tx.send_to(&frame(sent), None), Some(Ok(()))) {
                sent += 1;
            } else {
                break;
            }
        }
        if rate.is_some() {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let wall = t.elapsed();
    let cpu = speaker.cpu_time().unwrap_or_default().saturating_sub(cpu0);
    std::thread::sleep(Duration::from_millis(300)); // replies in flight
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let secs = wall.as_secs_f64();
    Step {
        offered: sent as f64 / secs,
        answered: replies.load(Ordering::Relaxed) as f64 / secs,
        counted_requests: (c.speaker_metric_sum(1, "ferrolb_speaker_arp_requests_total") - req0)
            / secs,
        counted_replies: (c.speaker_metric_sum(1, "ferrolb_speaker_arp_replies_total") - rep0)
            / secs,
        cpu_pct: 100.0 * cpu.as_secs_f64() / secs,
        rss_mib: speaker.rss_bytes().unwrap_or_default() as f64 / (1024.0 * 1024.0),
    }
}

fn print(name: &str, s: &Step) {
    println!(
        "{name:<40} offered {:>9.0}/s  replies seen {:>9.0}/s  speaker counted {:>9.0} req/s {:>9.0} rep/s  CPU {:>5.1}%  RSS {:>5.1} MiB",
        s.offered, s.answered, s.counted_requests, s.counted_replies, s.cpu_pct, s.rss_mib
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing for `cargo test --benches` to run
    }
    if netns::require().is_err() {
        return;
    }
    let dur = secs();
    println!(
        "ARP flood against one speaker, {dur:?} per step, on {} cores (shared: figures are lower bounds)",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let c = Cluster::start(ClusterSpec {
        nodes: 1,
        ..ClusterSpec::default()
    });
    let vip = c.create_service("web", json!({}));
    assert_eq!(
        c.wait_announcer(vip, Duration::from_secs(10), |_| true),
        Some(1),
        "node-1 announces {vip}"
    );
    let speaker = c.speakers[0].as_ref().expect("speaker running");
    let idle0 = speaker.cpu_time().unwrap_or_default();
    std::thread::sleep(dur);
    let idle = speaker.cpu_time().unwrap_or_default().saturating_sub(idle0);
    println!(
        "{:<40} CPU {:>5.1}%",
        "idle (one IP announced)",
        100.0 * idle.as_secs_f64() / dur.as_secs_f64()
    );
    let valid = move |_: u64| RawArp::request(FLOOD_MAC, FLOOD_IP, vip).padded();
    for rate in [1_000u64, 10_000, 50_000] {
        let s = step(&c, vip, Some(rate), dur, &valid);
        print(&format!("valid requests for the VIP, {rate}/s"), &s);
    }
    let s = step(&c, vip, None, dur, &valid);
    print("valid requests for the VIP, flat out", &s);
    let unowned = move |n: u64| {
        RawArp::request(
            FLOOD_MAC,
            FLOOD_IP,
            Ipv4Addr::new(203, 0, 113, 100 + (n % 90) as u8),
        )
        .padded()
    };
    let s = step(&c, vip, None, dur, &unowned);
    print("requests for unannounced IPs, flat out", &s);
    let junk = move |n: u64| {
        RawArp {
            op: 3 + (n % 7) as u16,
            ..RawArp::request(FLOOD_MAC, FLOOD_IP, vip)
        }
        .padded()
    };
    let s = step(&c, vip, None, dur, &junk);
    print("malformed ARP (bad opcodes), flat out", &s);
    // What the speaker's socket filter keeps out of user space: other traffic on the node's
    // link, and ARP tagged for another VLAN.
    let ipv4 = move |n: u64| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&FLOOD_MAC.0);
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&FLOOD_IP.octets());
        f.extend_from_slice(&[255, 255, 255, 255]);
        // A valid header checksum: with br_netfilter loaded the bridge drops IPv4 without one.
        let sum = f[14..34]
            .chunks(2)
            .fold(0u32, |a, w| a + u32::from(u16::from_be_bytes([w[0], w[1]])));
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40, 0x9c, 0x41, 0, 8, 0, 0]);
        f.extend_from_slice(&(n as u32).to_be_bytes());
        f.resize(60, 0);
        f
    };
    let s = step(&c, vip, None, dur, &ipv4);
    print("IPv4 broadcast (not ARP), flat out", &s);
    let tagged = move |_: u64| {
        let b = RawArp::request(FLOOD_MAC, FLOOD_IP, vip).padded();
        let mut t = b[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        t.extend_from_slice(&b[12..]);
        t
    };
    let s = step(&c, vip, None, dur, &tagged);
    print("VLAN-100 requests for the VIP, flat out", &s);
    let alive = c.speaker_healthz(1);
    println!("speaker /healthz after the floods: {alive:?}");
    assert_eq!(alive, Some(200), "the speaker survives the floods");
}
