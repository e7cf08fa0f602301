//! Neighbor Discovery floods against a real speaker on a dual-stack namespace LAN (needs root
//! and `ndisc6`), the IPv6 twin of `benches/arp_flood.rs`: how many solicitations per second
//! one speaker answers, what it costs in CPU, and what ignoring junk, other IPv6 traffic and
//! other VLANs costs. A raw socket in the client namespace sends hand-made solicitations (built
//! by `ferrolb_testkit::netns::ndp`, checksum included, without the product's codec) at fixed offered
//! rates and flat out; a second thread on the same socket counts the advertisements that come
//! back. The speaker's CPU comes from /proc/<pid>/stat.
//!
//! Run: `cargo bench --bench ndp_flood` (`FERROLB_FLOOD_SECS`, default 5, per step).

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::net::Ipv6Addr;
use std::time::Duration;

use cluster::{Cluster, ClusterSpec};
use ferrolb_testkit::flood::{self, Counters, Step};
use netns::ndp::RawNd;
use netns::MacAddr;
use serde_json::json;

const FLOOD_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x0a, 0xf6]);
const FLOOD_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x210);

/// A multicast Neighbor Solicitation for `target` from the flooder, with its source
/// link-layer option; `hop_limit` 255 and `bad_checksum` false make it valid.
fn solicitation(target: Ipv6Addr, hop_limit: u8, bad_checksum: bool) -> Vec<u8> {
    RawNd {
        hop_limit,
        checksum_delta: u16::from(bad_checksum),
        ..RawNd::multicast_solicitation(FLOOD_MAC, FLOOD_IP, target)
    }
    .bytes()
}

/// `Some(target)` if `f` is a Neighbor Advertisement to the flooder's MAC.
fn advert_to_flooder(f: &[u8]) -> Option<Ipv6Addr> {
    if f.len() < 78 || f[..6] != FLOOD_MAC.0 || f[12..14] != [0x86, 0xdd] || f[54] != 136 {
        return None;
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&f[62..78]);
    Some(Ipv6Addr::from(t))
}

const COUNTERS: Counters = Counters {
    requests: "ferrolb_speaker_ndp_solicitations_total",
    replies: "ferrolb_speaker_ndp_advertisements_total",
    request_unit: "NS",
    reply_unit: "NA",
};

/// One step of the flood: answers are Neighbor Advertisements for `vip` to the flooder.
fn step(
    c: &Cluster,
    vip: Ipv6Addr,
    rate: Option<u64>,
    dur: Duration,
    frame: &dyn Fn(u64) -> Vec<u8>,
) -> Step {
    flood::step(
        c,
        rate,
        dur,
        frame,
        move |f: &[u8]| advert_to_flooder(f) == Some(vip),
        &COUNTERS,
    )
}

fn print(name: &str, s: &Step) {
    s.print(name, &COUNTERS);
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing for `cargo test --benches` to run
    }
    if netns::require_ipv6().is_err() {
        return;
    }
    let dur = flood::step_duration();
    println!(
        "NDP flood against one speaker, {dur:?} per step, on {} cores (shared: figures are lower bounds)",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let c = Cluster::start(ClusterSpec {
        nodes: 1,
        ipv6: true,
        ..ClusterSpec::default()
    });
    let vip = c.create_service6("web6", json!({}));
    assert_eq!(
        c.wait_announcer6(vip, Duration::from_secs(10), |_| true),
        Some(1),
        "node-1 announces {vip}"
    );
    println!(
        "{:<44} CPU {:>5.1}%",
        "idle (one IPv6 IP announced)",
        flood::idle_cpu_pct(&c, dur)
    );
    let valid = move |_: u64| solicitation(vip, 255, false);
    for rate in [1_000u64, 10_000, 50_000] {
        let s = step(&c, vip, Some(rate), dur, &valid);
        print(&format!("valid solicitations for the VIP, {rate}/s"), &s);
    }
    let s = step(&c, vip, None, dur, &valid);
    print("valid solicitations for the VIP, flat out", &s);
    // The same solicited-node group as the VIP (the last 24 bits agree), so the frames reach
    // the speaker, but for addresses nobody announces.
    let unowned = move |n: u64| {
        let mut o = vip.octets();
        o[8] = 1 + (n % 200) as u8;
        solicitation(Ipv6Addr::from(o), 255, false)
    };
    let s = step(&c, vip, None, dur, &unowned);
    print("solicitations for unannounced IPs, flat out", &s);
    let bad_sum = move |_: u64| solicitation(vip, 255, true);
    let s = step(&c, vip, None, dur, &bad_sum);
    print("bad checksum, flat out", &s);
    // What the socket filter keeps out of user space: hop limit below 255 (off-link), other
    // IPv6 traffic, and solicitations tagged for another VLAN.
    let off_link = move |_: u64| solicitation(vip, 254, false);
    let s = step(&c, vip, None, dur, &off_link);
    print("hop limit 254 (off-link), flat out", &s);
    let udp = move |n: u64| {
        let mut f = solicitation(vip, 255, false);
        f[20] = 17; // next header UDP: not Neighbor Discovery
        f[54..56].copy_from_slice(&(n as u16).to_be_bytes());
        f
    };
    let s = step(&c, vip, None, dur, &udp);
    print("IPv6 multicast UDP (not NDP), flat out", &s);
    let tagged = move |_: u64| flood::vlan_tagged(&solicitation(vip, 255, false), 100);
    let s = step(&c, vip, None, dur, &tagged);
    print("VLAN-100 solicitations for the VIP, flat out", &s);
    let alive = c.speaker_healthz(1);
    println!("speaker /healthz after the floods: {alive:?}");
    assert_eq!(alive, Some(200), "the speaker survives the floods");
    assert_eq!(
        c.lan.client().ndisc6_mac(vip, 3),
        Some(c.lan.node(1).mac()),
        "and still answers"
    );
}
