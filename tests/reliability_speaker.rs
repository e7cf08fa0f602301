//! Reliability scenarios that try hard to break the speaker: crash loops, links going away,
//! hostile and malformed ARP, and API faults. Each one builds its own cluster (kube-sim,
//! controller, real speakers in a namespace LAN) and is judged by independent tools run from
//! the client namespace: arping (who answers, and whether two MACs do), curl (whether traffic
//! flows) and tcpdump (what went on the wire), plus the speakers' own /healthz and metrics.
//!
//! Figures are printed with `eprintln!` (run with `--nocapture` to see them); the assertions
//! are the contracts in `/work/shared/design.md` ("Election and announcement").
//!
//! Needs root, ip, nft, arping, curl and tcpdump; skips loudly without them, except under
//! `CI=true` or `FERROLB_E2E=1`, where a missing prerequisite fails.

use ferrolb_testkit::cluster;
use ferrolb_testkit::netns;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{metric, metric_sum, poll, Cluster, ClusterSpec};
use netns::inject::RawArp;
use netns::ndp::{self, Na, RawNd};
use netns::{ArpOp, ArpSample, MacAddr};
use serde_json::json;

/// The GARP interval every scenario here configures: two owners may coexist for at most about
/// this long (design: "so two owners can coexist for at most about one GARP interval").
const GARP_INTERVAL: Duration = Duration::from_millis(1100);
/// The speakers' default `--lease-duration`.
const LEASE: Duration = Duration::from_secs(3);
/// Sampling slack on top of a bound measured with the 100 ms arping sampler: one sample may
/// start just before a change and the next one ~100-200 ms later (each arping run is a process).
const SAMPLE_SLACK: Duration = Duration::from_millis(300);
/// How long a speaker holds off an IP a foreign host claimed (the announcer's default).
const FOREIGN_HOLD: Duration = ferrolb_core::election::DEFAULT_FOREIGN_HOLD;

fn spec(nodes: usize) -> ClusterSpec {
    ClusterSpec {
        nodes,
        garp: "{ burst: 5, interval: 1100ms, refresh: 0s }".into(),
        ..ClusterSpec::default()
    }
}

fn cluster(nodes: usize) -> Option<Cluster> {
    netns::require().ok()?;
    Some(Cluster::start(spec(nodes)))
}

/// What an arping sampler saw, summarised.
#[derive(Debug, Default)]
struct Timeline {
    /// Each change of the single answering node: (when, from, to). Samples with no answer or
    /// with two answers do not count as owners.
    moves: Vec<(Duration, usize, usize)>,
    /// Longest stretch during which two or more MACs answered one request.
    longest_double: Duration,
    /// How many separate stretches of two answering MACs there were.
    doubles: usize,
    /// Longest stretch during which nobody answered.
    longest_dark: Duration,
    /// Samples taken.
    samples: usize,
}

/// Longest run of samples matching `bad`, from the first bad sample's start to the start of the
/// next good one (or the end of the last), and the number of runs.
fn runs(samples: &[ArpSample], bad: impl Fn(&ArpSample) -> bool) -> (Duration, usize) {
    let mut longest = Duration::ZERO;
    let mut count = 0;
    let mut start: Option<Duration> = None;
    for s in samples {
        match (bad(s), start) {
            (true, None) => {
                start = Some(s.at);
                count += 1;
            }
            (false, Some(st)) => {
                longest = longest.max(s.at.saturating_sub(st));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(st), Some(last)) = (start, samples.last()) {
        longest = longest.max(last.at.saturating_sub(st) + Duration::from_millis(100));
    }
    (longest, count)
}

fn timeline(c: &Cluster, samples: &[ArpSample]) -> Timeline {
    let mut t = Timeline {
        samples: samples.len(),
        ..Timeline::default()
    };
    let mut owner: Option<usize> = None;
    for s in samples {
        if let [mac] = s.macs.as_slice() {
            let node = c.node_of_mac(*mac).unwrap_or(0);
            if let Some(prev) = owner {
                if prev != node {
                    t.moves.push((s.at, prev, node));
                }
            }
            owner = Some(node);
        }
    }
    (t.longest_double, t.doubles) = runs(samples, |s| s.macs.len() > 1);
    (t.longest_dark, _) = runs(samples, |s| s.macs.is_empty());
    t
}

fn assert_no_long_double(t: &Timeline, what: &str) {
    assert!(
        t.longest_double <= GARP_INTERVAL + SAMPLE_SLACK,
        "{what}: two MACs answered for {:?}, more than one GARP interval ({GARP_INTERVAL:?}); {t:?}",
        t.longest_double
    );
}

fn no_panics(c: &Cluster) {
    for (i, s) in c.speakers.iter().enumerate() {
        if let Some(s) = s {
            let err = s.stderr();
            assert!(
                !err.contains("panicked"),
                "speaker node-{} panicked:\n{err}",
                i + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Crash loop
// ---------------------------------------------------------------------------------------------

#[test]
fn crash_loop_of_the_owning_speaker_moves_the_ip_cleanly_every_time() {
    let Some(mut c) = cluster(3) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("nobody announces {vip}\n{}", c.speaker_logs()));
    let sampler =
        c.lan
            .client()
            .arp_sampler(vip, Duration::from_millis(100), Duration::from_millis(100));
    std::thread::sleep(Duration::from_secs(1)); // the sampler sees the first owner
    let t0 = Instant::now();
    let (mut away, mut back) = (Vec::new(), Vec::new());
    let (mut own_takeovers, mut own_withdrawals) = (0.0, 0.0);
    let mut cycles = 0u32;
    while t0.elapsed() < Duration::from_secs(60) {
        // The crash-looping speaker's counters die with it: read them just before each kill.
        let m = c.speaker_metrics(owner);
        own_takeovers += metric_sum(&m, "ferrolb_speaker_takeovers_total");
        own_withdrawals += metric_sum(&m, "ferrolb_speaker_withdrawals_total");
        c.speaker(owner).kill();
        let killed = Instant::now();
        let elsewhere = c.wait_announcer(vip, Duration::from_secs(12), |n| n != owner);
        assert!(
            elsewhere.is_some(),
            "cycle {cycles}: {vip} never moved off the killed node-{owner}\n{}",
            c.speaker_logs()
        );
        away.push(killed.elapsed());
        std::thread::sleep(Duration::from_secs(1)); // stays down a little longer
        c.restart_speaker(owner);
        let restarted = Instant::now();
        // It is the rendezvous winner: once its lease is live again it takes the IP back.
        let home = c.wait_announcer(vip, Duration::from_secs(15), |n| n == owner);
        assert!(
            home.is_some(),
            "cycle {cycles}: restarted node-{owner} never took {vip} back\n{}",
            c.speaker_logs()
        );
        back.push(restarted.elapsed());
        cycles += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let samples = sampler.stop();
    let t = timeline(&c, &samples);
    let m = c.speaker_metrics(owner);
    own_takeovers += metric_sum(&m, "ferrolb_speaker_takeovers_total");
    own_withdrawals += metric_sum(&m, "ferrolb_speaker_withdrawals_total");
    let (mut peer_takeovers, mut peer_withdrawals) = (0.0, 0.0);
    for i in (1..=3).filter(|i| *i != owner) {
        peer_takeovers += c.speaker_metric_sum(i, "ferrolb_speaker_takeovers_total");
        peer_withdrawals += c.speaker_metric_sum(i, "ferrolb_speaker_withdrawals_total");
    }
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    eprintln!(
        "crash loop: {cycles} kill -9/restart cycles of node-{owner} in {:?}; ownership moved {} times; \
         kill->elsewhere max {:?} (all {away:?}); restart->back max {:?} (all {back:?}); \
         longest double {:?} in {} stretches; longest dark {:?}; {} samples; \
         crash-looping node takeovers {own_takeovers} withdrawals {own_withdrawals}; \
         peers takeovers {peer_takeovers} withdrawals {peer_withdrawals}",
        t0.elapsed(),
        t.moves.len(),
        max(&away),
        max(&back),
        t.longest_double,
        t.doubles,
        t.longest_dark,
        t.samples
    );
    assert!(cycles >= 5, "only {cycles} cycles in a minute");
    assert_no_long_double(&t, "crash loop");
    // Each cycle moves the IP away and back; anything more is flapping.
    assert_eq!(
        t.moves.len(),
        2 * cycles as usize,
        "ownership moves {:?}",
        t.moves
    );
    // A killed speaker cannot release its lease: peers wait out the 3 s lease, never much more.
    assert!(
        max(&away) < LEASE + Duration::from_secs(3),
        "kill -> elsewhere took up to {:?}",
        max(&away)
    );
    assert!(
        peer_takeovers >= f64::from(cycles) && peer_withdrawals >= f64::from(cycles),
        "peers counted {peer_takeovers} takeovers / {peer_withdrawals} withdrawals for {cycles} cycles"
    );
    no_panics(&c);
}

// ---------------------------------------------------------------------------------------------
// 2. Link faults on the announcing node
// ---------------------------------------------------------------------------------------------

fn link_fault(what: &str, set: impl Fn(&Cluster, usize, bool)) {
    let c = cluster(3).expect("prerequisites checked by caller");
    let vip = c.create_service("web", json!({}));
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("nobody announces {vip}\n{}", c.speaker_logs()));
    let s0 = Instant::now();
    let sampler =
        c.lan
            .client()
            .arp_sampler(vip, Duration::from_millis(100), Duration::from_millis(100));
    std::thread::sleep(Duration::from_secs(1));
    let down_at = s0.elapsed();
    set(&c, owner, false);
    let moved = c
        .wait_announcer(vip, Duration::from_secs(10), |n| n != owner)
        .is_some();
    std::thread::sleep(Duration::from_secs(8)); // the link stays away well past the lease
    let up_at = s0.elapsed();
    set(&c, owner, true);
    std::thread::sleep(Duration::from_secs(15));
    let samples = sampler.stop();
    assert!(
        moved,
        "{what}: {vip} never moved off node-{owner}\n{}",
        c.speaker_logs()
    );
    let t = timeline(&c, &samples);
    let first_move = t
        .moves
        .iter()
        .find(|(at, from, _)| *at >= down_at && *from == owner)
        .map(|(at, _, _)| at.saturating_sub(down_at));
    let after_up: Vec<_> = t.moves.iter().filter(|(at, _, _)| *at >= up_at).collect();
    let return_gap = after_up.first().map(|(at, _, _)| at.saturating_sub(up_at));
    let final_macs = c.lan.client().arping_macs(vip, Duration::from_secs(1));
    eprintln!(
        "{what} on node-{owner}: moved away after {first_move:?}; moves after the link returned: {after_up:?} \
         (first {return_gap:?} after); longest dark {:?}; longest double {:?} ({} stretches); all moves {:?}",
        t.longest_dark, t.longest_double, t.doubles, t.moves
    );
    let first_move = first_move.unwrap_or_else(|| panic!("{what}: no move seen: {t:?}"));
    // The node's only path to the API is the link: peers wait for its lease to expire.
    assert!(
        first_move <= LEASE + Duration::from_secs(2),
        "{what}: the IP moved only {first_move:?} after the link went down"
    );
    assert!(
        after_up.len() <= 1,
        "{what}: the IP flapped {} times after the link returned: {after_up:?}",
        after_up.len()
    );
    assert_no_long_double(&t, what);
    assert_eq!(final_macs.len(), 1, "{what}: finally {final_macs:?} answer");
    no_panics(&c);
}

#[test]
fn interface_down_on_the_owner_moves_the_ip_and_it_returns_at_most_once() {
    if netns::require().is_err() {
        return;
    }
    link_fault(
        "link down (ip link set eth0 down in the node)",
        |c, i, up| c.lan.set_link(i, up),
    );
}

#[test]
fn carrier_loss_on_the_owner_moves_the_ip_and_it_returns_at_most_once() {
    if netns::require().is_err() {
        return;
    }
    link_fault("carrier loss (bridge port down)", |c, i, up| {
        c.lan.set_port(i, up)
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Hostile ARP
// ---------------------------------------------------------------------------------------------

/// Made-up MACs for injected frames: 02:fe:00:00:0a:<n>, so replies can be told apart.
/// Waits until speakers 1 and 2 log `line` for the side link `eth1` (they open a port on every
/// up interface, this one included).
fn wait_side_ports(c: &Cluster, line: &str, port: &str) {
    for i in 1..=2 {
        let s = c.speakers[i - 1].as_ref().expect("running");
        assert!(
            poll(Duration::from_secs(10), || s
                .stderr()
                .lines()
                .any(|l| l.contains(line) && l.contains("eth1"))),
            "node-{i} never opened {port} port on eth1\n{}",
            c.speaker_logs()
        );
    }
}

fn fake_mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0xfe, 0, 0, 0x0a, n])
}

/// Makes the n-th frame of a flood.
type FrameMaker = Box<dyn Fn(u32) -> Vec<u8>>;

/// An address on the LAN that no host uses, as the sender of injected requests.
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 210);

fn malformed(vip: Ipv4Addr) -> Vec<(&'static str, MacAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut n = 10u8;
    let mut add = |name: &'static str, f: &dyn Fn(MacAddr) -> Vec<u8>| {
        let mac = fake_mac(n);
        n += 1;
        out.push((name, mac, f(mac)));
    };
    let req = move |m: MacAddr| RawArp::request(m, FAKE_IP, vip);
    add("truncated to 20 bytes", &|m| req(m).bytes()[..20].to_vec());
    add("truncated to 41 bytes", &|m| req(m).bytes()[..41].to_vec());
    add("ethertype IPv4", &|m| {
        RawArp {
            ethertype: 0x0800,
            ..req(m)
        }
        .padded()
    });
    add("ethertype IPv6", &|m| {
        RawArp {
            ethertype: 0x86dd,
            ..req(m)
        }
        .padded()
    });
    add("hlen 8", &|m| RawArp { hlen: 8, ..req(m) }.padded());
    add("plen 16", &|m| RawArp { plen: 16, ..req(m) }.padded());
    add("htype 6 (IEEE 802)", &|m| {
        RawArp { htype: 6, ..req(m) }.padded()
    });
    add("ptype IPv6", &|m| {
        RawArp {
            ptype: 0x86dd,
            ..req(m)
        }
        .padded()
    });
    add("opcode 0", &|m| RawArp { op: 0, ..req(m) }.padded());
    add("opcode 3 (RARP)", &|m| RawArp { op: 3, ..req(m) }.padded());
    add("opcode 0xffff", &|m| {
        RawArp {
            op: 0xffff,
            ..req(m)
        }
        .padded()
    });
    add("ARP ethertype, random body", &|m| {
        let mut b = req(m).bytes()[..14].to_vec();
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..46 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.push(x as u8);
        }
        b
    });
    add("header only", &|m| req(m).bytes()[..14].to_vec());
    out
}

/// `frame` (an untagged Ethernet frame) with an 802.1Q tag carrying `tci`.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut t = frame[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&frame[12..]);
    t
}

/// `frame` tagged for VLAN 100.
fn vlan_tagged(frame: &[u8]) -> Vec<u8> {
    tagged(frame, 100)
}

/// The VIP's subnet is on the untagged LAN; ARP tagged for VLAN 100 happens on another segment:
/// a request there must not be answered, and a claim there must not make the untagged owner
/// yield. The kernel strips the tag before a packet socket sees the frame, so this holds only
/// because the speaker's socket filter drops tagged frames. A priority tag (VLAN 0, 802.1p)
/// is the untagged LAN and must still be answered.
#[test]
fn vlan_tagged_arp_is_neither_answered_nor_heeded_on_the_untagged_lan() {
    let Some(c) = cluster(1) else {
        return;
    };
    let vip = c.create_service("web", json!({}));
    assert_eq!(
        c.wait_announcer(vip, Duration::from_secs(10), |_| true),
        Some(1)
    );
    let owner_mac = c.lan.node(1).mac();
    let capture = c.lan.client().capture_arp();
    let mut inj = c.lan.client().injector("eth0");
    let vlan_asker = fake_mac(20);
    for _ in 0..5 {
        inj.send(&vlan_tagged(
            &RawArp::request(vlan_asker, FAKE_IP, vip).bytes(),
        ))
        .expect("send");
        inj.send(&vlan_tagged(
            &RawArp::gratuitous(fake_mac(21), vip).padded(),
        ))
        .expect("send");
    }
    // The untagged LAN is still served by the owner, after the tagged claims were heard: a
    // claim it heeded would make it fall silent for the foreign-hold time.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        c.lan.client().arping_macs(vip, Duration::from_millis(500)),
        vec![owner_mac],
        "a VLAN-100 claim made the untagged owner stop answering\n{}",
        c.speaker_logs()
    );
    let prio = fake_mac(22);
    inj.send(&tagged(
        &RawArp::request(prio, FAKE_IP, vip).bytes(),
        0xa000,
    ))
    .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let pkts = capture.stop();
    let replies: Vec<_> = pkts
        .iter()
        .filter(|p| p.op == ArpOp::Reply && p.target_mac == vlan_asker)
        .collect();
    assert!(replies.is_empty(), "VLAN-100 request answered: {replies:?}");
    assert!(
        pkts.iter()
            .any(|p| p.op == ArpOp::Reply && p.target_mac == prio && p.sender_mac == owner_mac),
        "a priority-tagged (VLAN 0) request was not answered\n{}",
        c.speaker_logs()
    );
    assert_eq!(
        c.speaker_metric_sum(1, "ferrolb_speaker_foreign_claims_total"),
        0.0,
        "a VLAN-100 claim was counted as a foreign claim"
    );
}

/// Frames the kernel dropped before the speaker read them.
const DROPPED: &str = "ferrolb_speaker_arp_receive_dropped_total";

#[test]
fn hostile_and_malformed_arp_gets_no_reply_crashes_nothing_and_costs_little() {
    let Some(c) = cluster(2) else {
        return;
    };
    // A second link, node <-> client, outside the LAN and every VIP subnet, on both nodes (the
    // owner is not known yet). The speaker opens an ARP port on it like on any up interface.
    let sides: Vec<String> = (1..=2).map(|i| c.lan.add_side_link(i)).collect();
    wait_side_ports(&c, "listening for ARP", "an ARP");
    let vip = c.create_service("web", json!({}));
    let owner = c
        .wait_announcer(vip, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("nobody announces {vip}\n{}", c.speaker_logs()));
    let owner_mac = c.lan.node(owner).mac();
    let side = &sides[owner - 1];
    let client = c.lan.client();
    let capture = client.capture_arp();
    let side_capture = client.capture_arp_on(side);
    let mut inj = client.injector("eth0");
    let mut side_inj = client.injector(side);
    let replies_to = |pkts: &[netns::ArpPacket], mac: MacAddr| {
        pkts.iter()
            .filter(|p| p.op == ArpOp::Reply && p.target_mac == mac)
            .count()
    };

    // Positive control: a well-formed request from a made-up host is answered, so the checks
    // for "no reply" below can fail.
    let control = fake_mac(1);
    inj.send(&RawArp::request(control, FAKE_IP, vip).padded())
        .expect("send");
    let got = capture.wait_for(Duration::from_secs(2), |p| {
        p.op == ArpOp::Reply && p.target_mac == control && p.sender_ip == vip
    });
    assert_eq!(
        got.map(|p| p.sender_mac),
        Some(owner_mac),
        "the owner answers a valid request"
    );

    // Malformed frames, each 20 times, each kind from its own MAC.
    let bad = malformed(vip);
    for _ in 0..20 {
        for (_, _, frame) in &bad {
            // The kernel refuses some lengths outright; what is sent is what counts.
            let _ = inj.send(frame);
        }
    }
    // Requests for IPs nobody announces: a pool address not allocated, one outside the pool.
    let nobody = fake_mac(2);
    for ip in [
        Ipv4Addr::new(203, 0, 113, 99),
        Ipv4Addr::new(203, 0, 113, 5),
    ] {
        for _ in 0..20 {
            inj.send(&RawArp::request(nobody, FAKE_IP, ip).padded())
                .expect("send");
        }
    }
    // The owned IP asked on the side link, whose interface holds no subnet of the VIP.
    let side_asker = fake_mac(3);
    for _ in 0..20 {
        side_inj
            .send(&RawArp::request(side_asker, FAKE_IP, vip).padded())
            .expect("send");
    }
    // A second control after the junk: still answering.
    let control2 = fake_mac(4);
    inj.send(&RawArp::request(control2, FAKE_IP, vip).padded())
        .expect("send");
    assert!(
        capture
            .wait_for(Duration::from_secs(2), |p| p.op == ArpOp::Reply
                && p.target_mac == control2)
            .is_some(),
        "the owner still answers after the junk"
    );
    // On eth0 a reply to the junk would have gone out before the control's (one reader thread
    // per port, frames in order); the side link's reader runs on its own, so give it time.
    std::thread::sleep(Duration::from_millis(1000));
    let pkts = capture.stop();
    let side_pkts = side_capture.stop();
    let answered: Vec<&str> = bad
        .iter()
        .filter(|(_, mac, _)| replies_to(&pkts, *mac) > 0)
        .map(|(name, _, _)| *name)
        .collect();
    eprintln!(
        "hostile: {} malformed kinds x20, 40 requests for unannounced IPs, 20 side-link requests; \
         answered kinds: {answered:?}; replies for unannounced IPs: {}; side-link replies: {}",
        bad.len(),
        replies_to(&pkts, nobody),
        replies_to(&side_pkts, side_asker) + replies_to(&pkts, side_asker)
    );
    assert!(
        answered.is_empty(),
        "malformed frames answered: {answered:?}"
    );
    assert_eq!(
        replies_to(&pkts, nobody),
        0,
        "replies for IPs nobody announces"
    );
    assert_eq!(
        replies_to(&side_pkts, side_asker) + replies_to(&pkts, side_asker),
        0,
        "a request on an interface outside the VIP's subnet was answered"
    );

    // A foreign gratuitous ARP for the VIP on the side link: a different segment, so the owner
    // must keep announcing on eth0.
    side_inj
        .send(&RawArp::gratuitous(fake_mac(5), vip).padded())
        .expect("send");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        client.arping_macs(vip, Duration::from_millis(500)),
        vec![owner_mac],
        "a claim heard on another segment made the owner stop answering on eth0\n{}",
        c.speaker_logs()
    );

    // Floods, from the test thread as fast as it can send: valid requests for the VIP, then
    // requests for IPs nobody announces, then junk. The owner must stay alive, healthy and the
    // owner; the figures are printed (benches/arp_flood.rs measures saturation properly).
    let pid_cpu = |c: &Cluster| {
        c.speakers[owner - 1]
            .as_ref()
            .and_then(netns::NsChild::cpu_time)
            .unwrap_or_default()
    };
    let flood_mac = fake_mac(6);
    let floods: [(&str, FrameMaker); 3] = [
        (
            "valid requests for the VIP",
            Box::new(move |_| RawArp::request(flood_mac, FAKE_IP, vip).padded()),
        ),
        (
            "requests for unannounced IPs",
            Box::new(move |n| {
                let ip = Ipv4Addr::new(203, 0, 113, 100 + (n % 90) as u8);
                RawArp::request(flood_mac, FAKE_IP, ip).padded()
            }),
        ),
        (
            "malformed ARP",
            Box::new(move |n| {
                RawArp {
                    op: 3 + (n % 7) as u16,
                    ..RawArp::request(flood_mac, FAKE_IP, vip)
                }
                .padded()
            }),
        ),
    ];
    for (what, frame) in &floods {
        let req0 = c.speaker_metric_sum(owner, "ferrolb_speaker_arp_requests_total");
        let rep0 = c.speaker_metric_sum(owner, "ferrolb_speaker_arp_replies_total");
        let drop0 = c.speaker_metric_sum(owner, DROPPED);
        let cpu0 = pid_cpu(&c);
        let t = Instant::now();
        let mut sent = 0u64;
        while t.elapsed() < Duration::from_secs(5) {
            for _ in 0..256 {
                if inj.send(&frame(sent as u32)).is_ok() {
                    sent += 1;
                }
            }
        }
        let wall = t.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        let cpu = pid_cpu(&c).saturating_sub(cpu0);
        let requests = c.speaker_metric_sum(owner, "ferrolb_speaker_arp_requests_total") - req0;
        let replies = c.speaker_metric_sum(owner, "ferrolb_speaker_arp_replies_total") - rep0;
        // Requests the speaker never counted were lost on the way: mostly at its socket when
        // it fell behind, the rest elsewhere on the virtual LAN, out of the speaker's sight.
        // When many went unread, the drop counter (read about once a second) must account for
        // most of them.
        let unread = sent as f64 - requests;
        let overloaded = what.starts_with("valid") && unread > 0.1 * sent as f64;
        if overloaded {
            poll(Duration::from_secs(3), || {
                c.speaker_metric_sum(owner, DROPPED) - drop0 >= 0.5 * unread
            });
        }
        let dropped = c.speaker_metric_sum(owner, DROPPED) - drop0;
        let healthz = c.speaker_healthz(owner);
        let degraded = metric(&c.speaker_metrics(owner), "ferrolb_speaker_degraded");
        eprintln!(
            "flood of {what}: sent {sent} in {wall:?} ({:.0}/s); speaker counted {requests} requests, \
             sent {replies} replies ({:.0}/s), counted {dropped} frames dropped unread; \
             speaker CPU {cpu:?} = {:.0}% of one core; /healthz {healthz:?}",
            sent as f64 / wall.as_secs_f64(),
            replies / wall.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
        if overloaded {
            assert!(
                dropped >= 0.5 * unread,
                "{unread} of {sent} requests went unread, but {DROPPED} counted only {dropped}"
            );
        }
        assert!(
            c.speakers[owner - 1]
                .as_ref()
                .and_then(netns::NsChild::cpu_time)
                .is_some(),
            "the speaker died under a flood of {what}"
        );
        assert_eq!(healthz, Some(200), "/healthz after a flood of {what}");
        assert_eq!(degraded, Some(0.0), "degraded after a flood of {what}");
        assert!(
            replies <= requests && requests <= sent as f64,
            "more replies ({replies}) than requests ({requests}) or sent ({sent})"
        );
        if what.starts_with("valid") {
            assert!(replies > 0.0, "no reply at all during the flood");
        } else {
            assert_eq!(replies, 0.0, "replies to a flood of {what}");
        }
        assert_eq!(
            c.wait_announcer(vip, Duration::from_secs(3), |_| true),
            Some(owner),
            "{vip} moved during a flood of {what}"
        );
    }

    // A gratuitous ARP for the VIP from a MAC no speaker has: a foreign host, which by design
    // is never fought. The owner yields at once, says so, and probes again after its hold-off.
    let intruder = fake_mac(7);
    let t = Instant::now();
    inj.send(&RawArp::gratuitous(intruder, vip).padded())
        .expect("send");
    let yielded = poll(Duration::from_secs(3), || {
        client
            .arping_macs(vip, Duration::from_millis(300))
            .is_empty()
    });
    let yield_after = t.elapsed();
    assert!(
        yielded,
        "the owner kept answering after a foreign claim\n{}",
        c.speaker_logs()
    );
    let back = c.wait_announcer(vip, FOREIGN_HOLD + Duration::from_secs(10), |_| true);
    let dark = t.elapsed();
    let events = c.service_events("web");
    let foreign = c.speaker_metric_sum(owner, "ferrolb_speaker_foreign_claims_total");
    eprintln!(
        "forged GARP for {vip}: owner stopped answering within {yield_after:?}; {vip} was dark for {dark:?} \
         until node-{back:?} answered again; foreign_claims {foreign}"
    );
    assert!(
        events.iter().any(|(r, _)| r == "IPInUseByOtherHost"),
        "Warning Event expected: {events:?}"
    );
    assert!(foreign >= 1.0, "foreign claim counted");
    assert_eq!(
        back,
        Some(owner),
        "after the hold-off the owner probes, hears nobody and announces again"
    );
    for i in 1..=2 {
        assert_eq!(
            c.speaker_healthz(i),
            Some(200),
            "node-{i} /healthz at the end"
        );
    }
    no_panics(&c);
}

// ---------------------------------------------------------------------------------------------
// 3b. Hostile NDP: the IPv6 twin of section 3, on a dual-stack LAN
// ---------------------------------------------------------------------------------------------

fn cluster6(nodes: usize) -> Option<Cluster> {
    netns::require_ipv6().ok()?;
    Some(Cluster::start(ClusterSpec {
        ipv6: true,
        ..spec(nodes)
    }))
}

/// Made-up MACs for injected IPv6 frames: 02:fe:00:00:0b:<n>, so replies can be told apart.
fn fake_mac6(n: u8) -> MacAddr {
    MacAddr([0x02, 0xfe, 0, 0, 0x0b, n])
}

/// An address on the LAN's IPv6 subnet that no host uses, as the source of injected frames.
const FAKE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x210);
/// All-nodes, where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Frames the kernel dropped before the speaker's NDP reader read them.
const NDP_DROPPED: &str = "ferrolb_speaker_ndp_receive_dropped_total";

/// Every Neighbor Advertisement a raw socket in the client sees, collected by a thread.
struct NaWatch {
    seen: Arc<Mutex<Vec<Na>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl NaWatch {
    fn start(mut rx: Box<dyn pnet_datalink::DataLinkReceiver>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Ok(f) = rx.next() {
                    if let Some(na) = ndp::na_of(f) {
                        s.lock().unwrap_or_else(|p| p.into_inner()).push(na);
                    }
                }
            }
        });
        NaWatch {
            seen,
            stop,
            reader: Some(reader),
        }
    }

    fn seen(&self) -> Vec<Na> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The first advertisement matching `pred`, waiting up to `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&Na) -> bool) -> Option<Na> {
        let mut found = None;
        poll(timeout, || {
            found = self.seen().into_iter().find(|na| pred(na));
            found.is_some()
        });
        found
    }

    fn stop(mut self) -> Vec<Na> {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for NaWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

fn send_raw(tx: &mut Box<dyn pnet_datalink::DataLinkSender>, frame: &[u8]) -> bool {
    matches!(tx.send_to(frame, None), Some(Ok(())))
}

/// Solicited advertisements in `seen` addressed to `mac` (replies to frames sent from it).
fn replies_to6(seen: &[Na], mac: MacAddr) -> usize {
    seen.iter()
        .filter(|na| na.solicited && na.eth_dst == mac)
        .count()
}

/// Solicitations for `vip` that are each wrong in one way RFC 4861 §7.1.1 (or the LAN's
/// segmentation) says must be dropped silently; each kind from its own MAC.
fn malformed6(vip: Ipv6Addr) -> Vec<(&'static str, MacAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut n = 10u8;
    let mut add = |name: &'static str, f: &dyn Fn(RawNd) -> RawNd| {
        let mac = fake_mac6(n);
        n += 1;
        out.push((
            name,
            mac,
            f(RawNd::multicast_solicitation(mac, FAKE_IP6, vip)).bytes(),
        ));
    };
    add("bad checksum", &|s| RawNd {
        checksum_delta: 1,
        ..s
    });
    add("hop limit 254 (from off-link)", &|s| RawNd {
        hop_limit: 254,
        ..s
    });
    add("hop limit 1", &|s| RawNd { hop_limit: 1, ..s });
    add("ICMPv6 code 1", &|s| RawNd { code: 1, ..s });
    add("ICMPv6 type 128 (echo request)", &|s| RawNd {
        icmp_type: 128,
        ..s
    });
    add("ICMPv6 type 133 (router solicitation)", &|s| RawNd {
        icmp_type: 133,
        ..s
    });
    add("next header UDP", &|s| RawNd {
        next_header: 17,
        ..s
    });
    add("option with length 0", &|s| RawNd {
        options: vec![1, 0, 0, 0, 0, 0, 0, 0],
        ..s
    });
    add("option with length 0 after a valid one", &|s| {
        let mut options = s.options.clone();
        options.extend([14, 0, 0, 0, 0, 0, 0, 0]);
        RawNd { options, ..s }
    });
    add("option longer than the message", &|s| RawNd {
        options: vec![1, 2, 0, 0, 0, 0, 0, 0],
        ..s
    });
    add("truncated into the target", &|s| RawNd { cut: 18, ..s });
    add("truncated to the IPv6 header", &|s| RawNd { cut: 32, ..s });
    add("payload length beyond the frame", &|s| RawNd {
        length_delta: 8,
        ..s
    });
    add("tagged for VLAN 100", &|s| RawNd {
        vlan: Some(100),
        ..s
    });
    add("tagged for VLAN 100 with priority", &|s| RawNd {
        vlan: Some(0xa064),
        ..s
    });
    out
}

/// An unsolicited advertisement with the override flag for `ip` from `mac`, as a host that
/// claims the address sends it.
fn foreign_advert(mac: MacAddr, ip: Ipv6Addr, vlan: Option<u16>) -> Vec<u8> {
    let mut tlla = ndp::source_lla(mac);
    tlla[0] = 2;
    RawNd {
        icmp_type: 136,
        flags: 0x20,
        options: tlla,
        vlan,
        ..RawNd::solicitation(mac, ip, ip, ALL_NODES, ndp::multicast_mac(ALL_NODES))
    }
    .bytes()
}

/// `vip` with the interface identifier's first byte set to `b`: on the LAN's /64 (or, with
/// `prefix`, in another /64), outside every pool, and in `vip`'s solicited-node group, so a
/// multicast solicitation for it reaches the speaker that joined that group.
fn same_group(vip: Ipv6Addr, b: u8, prefix: Option<u8>) -> Ipv6Addr {
    let mut o = vip.octets();
    o[8] = b;
    if let Some(p) = prefix {
        o[7] = p;
    }
    Ipv6Addr::from(o)
}

/// The ARP scenario above for IPv6 Neighbor Discovery: malformed and hostile solicitations,
/// solicitations for IPs nobody announces, on a second interface and tagged for another VLAN,
/// get no advertisement; claims from another segment are not heeded; floods cost bounded CPU
/// and leave the owner healthy and answering `ndisc6`. Frames come from `ferrolb_testkit::netns::ndp`,
/// not the product's codec.
#[test]
fn hostile_and_malformed_ndp_gets_no_reply_crashes_nothing_and_costs_little() {
    let Some(c) = cluster6(2) else {
        return;
    };
    // A second link, node <-> client, on both nodes (the owner is not known yet). Unlike the
    // ARP scenario it gets a subnet of its own, 2001:db8:5:<i>::/64, outside the VIP's: the
    // speaker answers NDP only on interfaces with an IPv6 subnet, so this is the real case of
    // a second segment.
    let sides: Vec<String> = (1..=2)
        .map(|i| {
            let side = c.lan.add_side_link(i);
            for (host, dev, addr) in [
                (c.lan.node(i), "eth1", format!("2001:db8:5:{i}::1/64")),
                (
                    c.lan.client(),
                    side.as_str(),
                    format!("2001:db8:5:{i}::2/64"),
                ),
            ] {
                let out = host
                    .exec(
                        "ip",
                        &["-6", "addr", "add", &addr, "dev", dev, "nodad"],
                        Duration::from_secs(5),
                    )
                    .unwrap_or_else(|e| panic!("ip addr add {addr} dev {dev}: {e}"));
                assert!(
                    out.status.success(),
                    "ip addr add {addr} dev {dev}: {}",
                    out.stderr
                );
            }
            side
        })
        .collect();
    wait_side_ports(&c, "listening for IPv6 neighbor discovery", "an NDP");
    let vip = c.create_service6("web6", json!({}));
    let owner = c
        .wait_announcer6(vip, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("nobody answers NDP for {vip}\n{}", c.speaker_logs()));
    let owner_mac = c.lan.node(owner).mac();
    let side = &sides[owner - 1];
    let client = c.lan.client();
    let (mut tx, rx) = client.injector("eth0").split();
    let (mut side_tx, side_rx) = client.injector(side).split();
    let watch = NaWatch::start(rx);
    let side_watch = NaWatch::start(side_rx);

    // Positive controls, so the checks for "no reply" below can fail: a multicast solicitation
    // as a resolving host sends it, the same with a priority tag (VLAN 0 is the untagged LAN),
    // and a unicast reachability probe to the owner's MAC.
    let controls = [
        (
            "multicast",
            fake_mac6(1),
            RawNd::multicast_solicitation(fake_mac6(1), FAKE_IP6, vip),
        ),
        (
            "priority-tagged (VLAN 0)",
            fake_mac6(2),
            RawNd {
                vlan: Some(0xa000),
                ..RawNd::multicast_solicitation(fake_mac6(2), FAKE_IP6, vip)
            },
        ),
        (
            "unicast probe",
            fake_mac6(3),
            RawNd::solicitation(fake_mac6(3), FAKE_IP6, vip, vip, owner_mac),
        ),
    ];
    for (what, mac, frame) in &controls {
        assert!(send_raw(&mut tx, &frame.bytes()), "send {what}");
        let na = watch.wait_for(Duration::from_secs(3), |na| {
            na.solicited && na.eth_dst == *mac && na.target == vip
        });
        let na = na.unwrap_or_else(|| {
            panic!(
                "the owner did not answer a valid {what} solicitation\n{}",
                c.speaker_logs()
            )
        });
        assert_eq!(
            (na.eth_src, na.tlla, na.hop_limit, na.checksum_ok, na.dst),
            (owner_mac, Some(owner_mac), 255, true, FAKE_IP6),
            "the advertisement answering the {what} solicitation: {na:?}"
        );
    }

    // Malformed solicitations for the VIP, each kind 20 times from its own MAC.
    let bad = malformed6(vip);
    for _ in 0..20 {
        for (_, _, frame) in &bad {
            // The kernel refuses some lengths outright; what is sent is what counts.
            let _ = send_raw(&mut tx, frame);
        }
    }
    // Solicitations for IPs nobody announces: an unallocated pool address (asked of the owner
    // by unicast, so it surely arrives), and two addresses in the VIP's solicited-node group,
    // one on the LAN's /64 and one off it.
    let nobody = fake_mac6(4);
    let unallocated = ndp_pool_ip_other_than(vip);
    let unannounced = [
        RawNd::solicitation(nobody, FAKE_IP6, unallocated, unallocated, owner_mac),
        RawNd::multicast_solicitation(nobody, FAKE_IP6, unallocated),
        RawNd::multicast_solicitation(nobody, FAKE_IP6, same_group(vip, 0xab, None)),
        RawNd::multicast_solicitation(nobody, FAKE_IP6, same_group(vip, 0, Some(1))),
    ];
    for _ in 0..20 {
        for s in &unannounced {
            assert!(send_raw(&mut tx, &s.bytes()), "send");
        }
    }
    // The owned VIP asked on the side link, whose interface holds no subnet of the VIP:
    // multicast, and by unicast to the owner's MAC there.
    let side_asker = fake_mac6(5);
    let owner_side_mac = MacAddr([0x02, 0xfe, 0, 0, 0x03, owner as u8]);
    let side_src = Ipv6Addr::new(0x2001, 0xdb8, 5, owner as u16, 0, 0, 0, 0x210);
    for _ in 0..20 {
        for f in [
            RawNd::multicast_solicitation(side_asker, side_src, vip),
            RawNd::solicitation(side_asker, side_src, vip, vip, owner_side_mac),
        ] {
            assert!(send_raw(&mut side_tx, &f.bytes()), "send on {side}");
        }
    }
    // A second control after the junk: still answering. One reader thread per port reads
    // frames in order, so on eth0 a reply to the junk would have been sent before this one's.
    let control2 = fake_mac6(6);
    assert!(send_raw(
        &mut tx,
        &RawNd::multicast_solicitation(control2, FAKE_IP6, vip).bytes()
    ));
    assert!(
        watch
            .wait_for(Duration::from_secs(3), |na| na.solicited
                && na.eth_dst == control2)
            .is_some(),
        "the owner still answers after the junk\n{}",
        c.speaker_logs()
    );
    // The side link's reader runs on its own: absence needs a window, as for ARP.
    std::thread::sleep(Duration::from_millis(1000));
    let seen = watch.stop();
    let side_seen = side_watch.stop();
    let answered: Vec<&str> = bad
        .iter()
        .filter(|(_, mac, _)| replies_to6(&seen, *mac) > 0)
        .map(|(name, _, _)| *name)
        .collect();
    let expected: BTreeSet<MacAddr> = controls
        .iter()
        .map(|(_, m, _)| *m)
        .chain([control2])
        .collect();
    let stray: Vec<&Na> = seen
        .iter()
        .chain(&side_seen)
        .filter(|na| na.solicited && !expected.contains(&na.eth_dst))
        .collect();
    eprintln!(
        "hostile NDP: {} malformed kinds x20, 80 solicitations for unannounced IPs, 40 on the \
         side link; answered kinds: {answered:?}; replies for unannounced IPs: {}; side-link \
         replies: {}; solicited advertisements to anyone but the controls: {}",
        bad.len(),
        replies_to6(&seen, nobody),
        replies_to6(&side_seen, side_asker) + replies_to6(&seen, side_asker),
        stray.len()
    );
    assert!(
        answered.is_empty(),
        "malformed solicitations answered: {answered:?}"
    );
    assert_eq!(
        replies_to6(&seen, nobody),
        0,
        "advertisements for IPs nobody announces"
    );
    assert_eq!(
        replies_to6(&side_seen, side_asker) + replies_to6(&seen, side_asker),
        0,
        "a solicitation on an interface outside the VIP's subnet was answered"
    );
    assert!(
        stray.is_empty(),
        "advertisements nobody valid asked for: {stray:?}"
    );

    // Claims for the VIP from another segment: an override advertisement tagged for VLAN 100
    // on eth0, and an untagged one on the side link. Heeding either would silence the owner
    // for the foreign hold-off, so it must keep answering ndisc6 on eth0 throughout.
    let t = Instant::now();
    assert!(send_raw(
        &mut tx,
        &foreign_advert(fake_mac6(7), vip, Some(100))
    ));
    assert!(send_raw(
        &mut side_tx,
        &foreign_advert(fake_mac6(8), vip, None)
    ));
    let mut asked = 0;
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            client.ndisc6_mac(vip, 1),
            Some(owner_mac),
            "a claim from another segment made the owner stop answering, {:?} after it\n{}",
            t.elapsed(),
            c.speaker_logs()
        );
        asked += 1;
    }
    assert_eq!(
        c.speaker_metric_sum(owner, "ferrolb_speaker_foreign_claims_total"),
        0.0,
        "a claim from another segment was counted as a foreign claim"
    );
    eprintln!("claims from other segments: ignored; ndisc6 answered {asked} of {asked} after them");

    // Floods from the test thread as fast as it can send, 2 s each. The owner must stay alive,
    // healthy and the owner. CPU is bounded: the speaker reads each port on one thread, which
    // also sends the replies, and does no other per-frame work, so a flood costs at most that
    // one core (plus a little for lease renewals and metric scrapes: 10 %), and what the thread
    // cannot read the kernel drops at the socket and the speaker counts. What the socket filter
    // keeps out of user space (hop limit not 255, other VLANs) costs next to nothing: at most
    // 10 % of a core, where reading and rejecting it costs a debug build tens of percent.
    // benches/ndp_flood.rs measures saturation properly.
    let pid_cpu = |c: &Cluster| {
        c.speakers[owner - 1]
            .as_ref()
            .and_then(netns::NsChild::cpu_time)
            .unwrap_or_default()
    };
    let flood_mac = fake_mac6(9);
    let sol = move |target: Ipv6Addr| RawNd::multicast_solicitation(flood_mac, FAKE_IP6, target);
    // (name, kept out of user space by the socket filter, frame maker)
    let floods: [(&str, bool, FrameMaker); 6] = [
        (
            "valid solicitations for the VIP",
            false,
            Box::new(move |_| sol(vip).bytes()),
        ),
        (
            "solicitations for unannounced IPs",
            false,
            Box::new(move |n| sol(same_group(vip, 1 + (n % 200) as u8, None)).bytes()),
        ),
        (
            "solicitations with a bad checksum",
            false,
            Box::new(move |n| {
                RawNd {
                    checksum_delta: 1 + (n % 100) as u16,
                    ..sol(vip)
                }
                .bytes()
            }),
        ),
        (
            "solicitations with an option of length 0",
            false,
            Box::new(move |_| {
                RawNd {
                    options: vec![1, 0, 0, 0, 0, 0, 0, 0],
                    ..sol(vip)
                }
                .bytes()
            }),
        ),
        (
            "solicitations with hop limit 254",
            true,
            Box::new(move |_| {
                RawNd {
                    hop_limit: 254,
                    ..sol(vip)
                }
                .bytes()
            }),
        ),
        (
            "solicitations tagged for VLAN 100",
            true,
            Box::new(move |_| {
                RawNd {
                    vlan: Some(100),
                    ..sol(vip)
                }
                .bytes()
            }),
        ),
    ];
    const FLOOD: Duration = Duration::from_secs(2);
    for (what, filtered, frame) in &floods {
        let sol0 = c.speaker_metric_sum(owner, "ferrolb_speaker_ndp_solicitations_total");
        let adv0 = c.speaker_metric_sum(owner, "ferrolb_speaker_ndp_advertisements_total");
        let drop0 = c.speaker_metric_sum(owner, NDP_DROPPED);
        let cpu0 = pid_cpu(&c);
        let t = Instant::now();
        let mut sent = 0u64;
        while t.elapsed() < FLOOD {
            for _ in 0..256 {
                if send_raw(&mut tx, &frame(sent as u32)) {
                    sent += 1;
                }
            }
        }
        let wall = t.elapsed();
        // What the reader has queued is read within this; the CPU it costs counts.
        let solicitations = |c: &Cluster| {
            c.speaker_metric_sum(owner, "ferrolb_speaker_ndp_solicitations_total") - sol0
        };
        let mut last = -1.0;
        poll(Duration::from_secs(2), || {
            let now = solicitations(&c);
            let settled = now == last;
            last = now;
            settled
        });
        let cpu = pid_cpu(&c).saturating_sub(cpu0);
        let counted = solicitations(&c);
        let adverts =
            c.speaker_metric_sum(owner, "ferrolb_speaker_ndp_advertisements_total") - adv0;
        let unread = sent as f64 - counted;
        let overloaded = !filtered && what.starts_with("valid") && unread > 0.1 * sent as f64;
        if overloaded {
            poll(Duration::from_secs(3), || {
                c.speaker_metric_sum(owner, NDP_DROPPED) - drop0 >= 0.5 * unread
            });
        }
        let dropped = c.speaker_metric_sum(owner, NDP_DROPPED) - drop0;
        let healthz = c.speaker_healthz(owner);
        let degraded = metric(&c.speaker_metrics(owner), "ferrolb_speaker_degraded");
        let core_share = cpu.as_secs_f64() / wall.as_secs_f64();
        eprintln!(
            "NDP flood of {what}: sent {sent} in {wall:?} ({:.0}/s); speaker counted {counted} \
             solicitations, sent {adverts} advertisements ({:.0}/s), counted {dropped} frames \
             dropped unread; speaker CPU {cpu:?} = {:.0}% of one core; /healthz {healthz:?}",
            sent as f64 / wall.as_secs_f64(),
            adverts / wall.as_secs_f64(),
            100.0 * core_share
        );
        assert!(
            c.speakers[owner - 1]
                .as_ref()
                .and_then(netns::NsChild::cpu_time)
                .is_some(),
            "the speaker died under a flood of {what}"
        );
        assert_eq!(healthz, Some(200), "/healthz after a flood of {what}");
        assert_eq!(degraded, Some(0.0), "degraded after a flood of {what}");
        assert!(
            adverts <= counted && counted <= sent as f64,
            "more advertisements ({adverts}) than solicitations ({counted}) or sent ({sent})"
        );
        if what.starts_with("valid") {
            assert!(adverts > 0.0, "no advertisement at all during the flood");
        } else {
            assert_eq!(counted, 0.0, "solicitations counted in a flood of {what}");
            assert_eq!(adverts, 0.0, "advertisements sent to a flood of {what}");
        }
        if overloaded {
            assert!(
                dropped >= 0.5 * unread,
                "{unread} of {sent} solicitations went unread, but {NDP_DROPPED} counted only {dropped}"
            );
        }
        assert!(
            core_share <= 1.1,
            "a flood of {what} cost the speaker {:.0}% of a core: more than its one reader thread",
            100.0 * core_share
        );
        if *filtered {
            assert!(
                core_share <= 0.10,
                "a flood of {what} cost the speaker {:.0}% of a core although the socket filter \
                 should keep it out of user space",
                100.0 * core_share
            );
        }
        assert_eq!(
            c.wait_announcer6(vip, Duration::from_secs(3), |_| true),
            Some(owner),
            "{vip} moved (or went unanswered) after a flood of {what}"
        );
    }
    // After everything, a valid solicitation from a real host's stack is still answered.
    assert_eq!(
        client.ndisc6_mac(vip, 3),
        Some(owner_mac),
        "ndisc6 after the floods"
    );
    for i in 1..=2 {
        assert_eq!(
            c.speaker_healthz(i),
            Some(200),
            "node-{i} /healthz at the end"
        );
    }
    no_panics(&c);
}

/// An address of the IPv6 pool that is not `vip` (the only one allocated in the scenario).
fn ndp_pool_ip_other_than(vip: Ipv6Addr) -> Ipv6Addr {
    let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x1f0);
    if a == vip {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x1f1)
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------------------
// 4. API faults
// ---------------------------------------------------------------------------------------------

fn three_services(c: &Cluster) -> (Vec<Ipv4Addr>, Vec<usize>) {
    let (vips, owners) = c.create_announced_services(3);
    for v in &vips {
        c.lan.add_vip_dnat(*v, 80);
    }
    (vips, owners)
}

fn owners_now(c: &Cluster, vips: &[Ipv4Addr]) -> Vec<Vec<usize>> {
    vips.iter()
        .map(|v| {
            c.lan
                .client()
                .arping_macs(*v, Duration::from_millis(500))
                .into_iter()
                .filter_map(|m| c.node_of_mac(m))
                .collect()
        })
        .collect()
}

#[test]
fn a_sixty_second_api_outage_fails_no_request() {
    let Some(c) = cluster(3) else {
        return;
    };
    let (vips, before) = three_services(&c);
    let curl = c.lan.client().curl_sampler(
        &format!("http://{}/", vips[0]),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let arp = c.lan.client().arp_sampler(
        vips[1],
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    let t = Instant::now();
    c.sim().faults().pause(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(8));
    let degraded: Vec<Option<f64>> = (1..=3)
        .map(|i| metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded"))
        .collect();
    let during = owners_now(&c, &vips);
    // Wait out the outage and the recovery. Recovery usually takes 1-2 s, but in one CI run
    // the speakers were not all healthy again 38 s after the API returned (cause not found;
    // the speakers now log each API-health change). What this test promises is no failed
    // request; the time to recover is measured and reported, with a generous deadline.
    let recovered = poll(Duration::from_secs(170), || {
        t.elapsed() > Duration::from_secs(60)
            && (1..=3)
                .all(|i| metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded") == Some(0.0))
    });
    let recovered_after = t.elapsed();
    std::thread::sleep(Duration::from_secs(4));
    let after = owners_now(&c, &vips);
    let samples = curl.stop();
    let arp_t = timeline(&c, &arp.stop());
    let failures: Vec<_> = samples.iter().filter(|s| s.result.is_err()).collect();
    let bodies: BTreeSet<String> = samples
        .iter()
        .filter_map(|s| s.result.clone().ok())
        .collect();
    eprintln!(
        "60 s API outage: {} curl requests, {} failed {:?}; bodies {bodies:?}; degraded during {degraded:?}; \
         healthy again {recovered_after:?} after the outage began; ARP timeline of {}: moves {:?}, \
         longest dark {:?}, longest double {:?}",
        samples.len(),
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>(),
        vips[1],
        arp_t.moves,
        arp_t.longest_dark,
        arp_t.longest_double
    );
    let want: Vec<Vec<usize>> = before.iter().map(|b| vec![*b]).collect();
    assert_eq!(
        degraded,
        vec![Some(1.0); 3],
        "every speaker knows it is degraded"
    );
    assert_eq!(during, want, "nothing moves during the outage");
    assert!(recovered, "speakers recover\n{}", c.speaker_logs());
    assert_eq!(after, want, "nothing moves after the outage");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed",
        failures.len(),
        samples.len()
    );
    assert_eq!(bodies.len(), 1, "traffic stayed on one node: {bodies:?}");
    assert!(
        arp_t.moves.is_empty() && arp_t.longest_double.is_zero(),
        "ARP ownership changed: {arp_t:?}"
    );
    no_panics(&c);
}

#[test]
fn watch_closes_and_failed_lease_updates_move_nothing() {
    let Some(c) = cluster(3) else {
        return;
    };
    let (vips, before) = three_services(&c);
    let want: Vec<Vec<usize>> = before.iter().map(|b| vec![*b]).collect();
    let fails0: f64 = (1..=3)
        .map(|i| c.speaker_metric_sum(i, "ferrolb_speaker_lease_renew_failures_total"))
        .sum();
    let curl = c.lan.client().curl_sampler(
        &format!("http://{}/", vips[0]),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let arp = c.lan.client().arp_sampler(
        vips[2],
        Duration::from_millis(100),
        Duration::from_millis(100),
    );

    // Phase 1, 30 s: every watch is cut every 2.5 s, and one lease update in every 2.5 s fails
    // with 500. Each speaker renews every second, so none can miss two renewals in a row, let
    // alone a whole lease duration: nothing may move. (With one failure per 1.2 s, the failures
    // kept landing on the speaker whose renewal came first after arming; it really lost its
    // lease for 3 s, and peers rightly took over: that is the design, not what this tests.)
    let t = Instant::now();
    let mut closes = 0;
    let mut armed = 0;
    let mut next_close = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if Instant::now() >= next_close {
            c.sim().faults().close_watches();
            closes += 1;
            next_close += Duration::from_secs(2);
        }
        c.sim()
            .faults()
            .fail_next(1, 500, Some("update"), Some("leases"));
        armed += 1;
        std::thread::sleep(Duration::from_millis(2500));
    }
    c.sim().faults().clear();
    let phase1 = owners_now(&c, &vips);
    let fails1: f64 = (1..=3)
        .map(|i| c.speaker_metric_sum(i, "ferrolb_speaker_lease_renew_failures_total"))
        .sum();

    // Phase 2, 19 s: every lease update fails. Every speaker becomes degraded (its own
    // renewals fail for longer than the lease) and must hold what it has. A speaker every peer
    // hears renews only every 12 s (the relaxed heartbeat cadence), so its first failing
    // renewal may come up to 12 s in; it is degraded from that failure on.
    c.sim()
        .faults()
        .fail_next(100_000, 500, Some("update"), Some("leases"));
    std::thread::sleep(Duration::from_secs(16));
    let degraded: Vec<Option<f64>> = (1..=3)
        .map(|i| metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded"))
        .collect();
    let phase2 = owners_now(&c, &vips);
    std::thread::sleep(Duration::from_secs(3));
    c.sim().faults().clear();
    let recovered = poll(Duration::from_secs(20), || {
        (1..=3).all(|i| metric(&c.speaker_metrics(i), "ferrolb_speaker_degraded") == Some(0.0))
    });
    std::thread::sleep(Duration::from_secs(4));
    let end = owners_now(&c, &vips);
    let fails2: f64 = (1..=3)
        .map(|i| c.speaker_metric_sum(i, "ferrolb_speaker_lease_renew_failures_total"))
        .sum();
    let samples = curl.stop();
    let arp_t = timeline(&c, &arp.stop());
    let failures = samples.iter().filter(|s| s.result.is_err()).count();
    eprintln!(
        "API faults: phase 1 {closes} watch closes, {armed} armed 500s, renew failures counted {}; \
         phase 2 renew failures {}, degraded {degraded:?}; curl {failures} failed of {}; \
         ARP {}: moves {:?}, longest double {:?}, longest dark {:?}",
        fails1 - fails0,
        fails2 - fails1,
        samples.len(),
        vips[2],
        arp_t.moves,
        arp_t.longest_double,
        arp_t.longest_dark
    );
    assert!(
        fails1 - fails0 >= 8.0,
        "the injected 500s did not reach the speakers' renewals"
    );
    assert_eq!(phase1, want, "an IP moved under watch closes and 500s");
    assert_eq!(
        degraded,
        vec![Some(1.0); 3],
        "every speaker degraded while no renewal succeeds"
    );
    assert_eq!(phase2, want, "an IP moved while every renewal failed");
    assert!(recovered, "speakers recover\n{}", c.speaker_logs());
    assert_eq!(end, want, "an IP moved after recovery");
    assert_eq!(failures, 0, "curl failed {failures} times");
    assert!(
        arp_t.moves.is_empty() && arp_t.longest_double.is_zero() && arp_t.longest_dark.is_zero(),
        "ARP ownership changed: {arp_t:?}"
    );
    no_panics(&c);
}

// ---------------------------------------------------------------------------------------------
// Recovery time after an API outage, repeated
// ---------------------------------------------------------------------------------------------

/// When each speaker logged `API health changed ... to=Healthy` after `since` (JSON logs), as
/// wall-clock times, plus every health-change and failure line after `since` for the report.
fn healthy_again_at(
    c: &Cluster,
    since: jiff::Timestamp,
) -> (Vec<Option<jiff::Timestamp>>, Vec<String>) {
    let mut at = Vec::new();
    let mut lines = Vec::new();
    for (i, s) in c.speakers.iter().enumerate() {
        let Some(s) = s else {
            at.push(None);
            continue;
        };
        let mut first = None;
        for line in s.stderr().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(ts) = v["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            else {
                continue;
            };
            if ts < since {
                continue;
            }
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            if msg == "API health changed" || msg.contains("failed") {
                lines.push(format!("node-{} {ts} {}", i + 1, v["fields"]));
            }
            if msg == "API health changed" && v["fields"]["to"] == "Healthy" && first.is_none() {
                first = Some(ts);
            }
        }
        at.push(first);
    }
    (at, lines)
}

/// How long after the API server comes back every speaker is healthy again (taking over and
/// following the election), measured from the speakers' own API-health log lines. The speaker
/// lets its watches retry as soon as a lease renewal succeeds again, so this is about one renew
/// interval plus a relist, not the rest of a 3 s watch backoff.
///
/// `FERROLB_OUTAGE_SECS` (default 15) sets the outage, `FERROLB_OUTAGE_RUNS` (default 1) how
/// many fresh clusters to measure; it prints every run, the median and the p99. A run is judged
/// by the recovery bound the design promises: the API back, the watch retry (capped at 3 s),
/// a relist and one renewal, so well under 5 s; an outlier beyond that fails the test with the
/// speakers' health and failure log lines.
#[test]
fn recovery_after_an_api_outage_is_quick() {
    if netns::require().is_err() {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let outage = Duration::from_secs(env("FERROLB_OUTAGE_SECS", 15));
    let runs = env("FERROLB_OUTAGE_RUNS", 1);
    let mut recoveries = Vec::new();
    for run in 0..runs {
        let c = Cluster::start(ClusterSpec {
            speaker_args: vec!["--log-format".into(), "json".into()],
            ..spec(3)
        });
        let (vips, before) = three_services(&c);
        // Every speaker healthy (not merely started) before the outage.
        assert!(
            poll(Duration::from_secs(20), || (1..=3).all(|i| metric(
                &c.speaker_metrics(i),
                "ferrolb_speaker_degraded"
            ) == Some(0.0))),
            "run {run}: speakers not healthy before the outage\n{}",
            c.speaker_logs()
        );
        let began = jiff::Timestamp::now();
        c.sim().faults().pause(outage);
        // Recovery counts from when kube-sim really accepts connections again (its re-bind can
        // lag the pause if something took its port meanwhile), not from the planned end.
        std::thread::sleep(outage.saturating_sub(Duration::from_millis(200)));
        let addr = c.sim().addr();
        assert!(
            poll(Duration::from_secs(60), || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            }),
            "run {run}: kube-sim never came back"
        );
        let back = jiff::Timestamp::now();
        let late = back.duration_since(began).as_secs_f64() - outage.as_secs_f64();
        // Every speaker went degraded during the outage, so its first Healthy line after the
        // outage began is its recovery.
        let recovered = poll(Duration::from_secs(60), || {
            let (at, _) = healthy_again_at(&c, began);
            at.iter().all(Option::is_some)
        });
        let (at, lines) = healthy_again_at(&c, began);
        assert!(
            recovered,
            "run {run}: not every speaker healthy again a minute after the API returned\n{}\n{}",
            lines.join("\n"),
            c.speaker_logs()
        );
        let slowest = at
            .iter()
            .flatten()
            .map(|t| t.duration_since(back))
            .max()
            .unwrap_or_default();
        let secs = slowest.as_secs_f64();
        eprintln!(
            "run {run}: {:?} outage (API back {late:+.2} s after the planned end); all speakers healthy {secs:.2} s after the API returned",
            outage
        );
        if secs > 2.0 || std::env::var_os("FERROLB_OUTAGE_LOG").is_some() {
            eprintln!("run {run} health log:\n{}", lines.join("\n"));
        }
        assert_eq!(
            owners_now(&c, &vips),
            before.iter().map(|b| vec![*b]).collect::<Vec<_>>(),
            "run {run}: nothing moves"
        );
        assert!(
            secs < 5.0,
            "run {run}: recovery took {secs:.2} s\n{}",
            lines.join("\n")
        );
        no_panics(&c);
        recoveries.push(secs);
    }
    let mut sorted = recoveries.clone();
    let (median, p99) = cluster::median_p99(&mut sorted);
    eprintln!(
        "recovery after a {:?} API outage over {} runs: median {median:.2} s, p99 {p99:.2} s, all {recoveries:?}",
        outage,
        recoveries.len()
    );
}
