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
use std::time::Duration;

use cluster::{Cluster, ClusterSpec};
use ferrolb_testkit::flood::{self, Counters, Step};
use netns::inject::{arp_reply_of, RawArp};
use netns::MacAddr;
use serde_json::json;

const FLOOD_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x0a, 0xf0]);
const FLOOD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 210);

const COUNTERS: Counters = Counters {
    requests: "ferrolb_speaker_arp_requests_total",
    replies: "ferrolb_speaker_arp_replies_total",
    request_unit: "req",
    reply_unit: "rep",
};

/// One step of the flood: answers are ARP replies for `vip` to the flooder.
fn step(
    c: &Cluster,
    vip: Ipv4Addr,
    rate: Option<u64>,
    dur: Duration,
    frame: &dyn Fn(u64) -> Vec<u8>,
) -> Step {
    let is_answer =
        move |f: &[u8]| arp_reply_of(f).is_some_and(|(_, ip, dst)| ip == vip && dst == FLOOD_MAC);
    flood::step(c, rate, dur, frame, is_answer, &COUNTERS)
}

fn print(name: &str, s: &Step) {
    s.print(name, &COUNTERS);
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing for `cargo test --benches` to run
    }
    if netns::require().is_err() {
        return;
    }
    let dur = flood::step_duration();
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
    println!(
        "{:<44} CPU {:>5.1}%",
        "idle (one IP announced)",
        flood::idle_cpu_pct(&c, dur)
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
    let tagged =
        move |_: u64| flood::vlan_tagged(&RawArp::request(FLOOD_MAC, FLOOD_IP, vip).padded(), 100);
    let s = step(&c, vip, None, dur, &tagged);
    print("VLAN-100 requests for the VIP, flat out", &s);
    let alive = c.speaker_healthz(1);
    println!("speaker /healthz after the floods: {alive:?}");
    assert_eq!(alive, Some(200), "the speaker survives the floods");
}
