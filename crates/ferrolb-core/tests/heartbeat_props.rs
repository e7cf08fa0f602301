//! Heartbeat properties: the codec never accepts what the key did not sign, the replay guard
//! never accepts a datagram twice or out of order, the failure detector agrees with a reference
//! model of its rules, the watcher assignment keeps its promises, and (the cancel rule at work,
//! also with watchers spreading suspicions) a speaker that stops hearing a live peer never
//! announces that peer's IPs while the peer still answers for them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_core::arp::MacAddr;
use ferrolb_core::election::{
    Action, Announcer, AnnouncerParams, Claimant, IpDemand, LeaseSnapshot, MonoTime, NodeFacts,
};
use ferrolb_core::heartbeat::{
    decode, encode, FailureDetector, Heartbeat, HeartbeatKey, PeerState, ReplayGuard,
    MIN_SUSPICION_TIMEOUT,
};
use proptest::prelude::*;

fn key(seed: u8) -> HeartbeatKey {
    HeartbeatKey::new(&[seed; 32]).expect("32 bytes is long enough")
}

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (
        "[a-z0-9][a-z0-9.-]{0,60}",
        any::<u64>(),
        any::<u64>(),
        1u16..,
        1u8..,
    )
        .prop_map(|(node, epoch, counter, ms, misses)| Heartbeat {
            node,
            epoch,
            counter,
            interval: Duration::from_millis(u64::from(ms)),
            misses,
        })
}

proptest! {
    #[test]
    fn every_heartbeat_round_trips_and_any_bit_flip_is_refused(
        hb in heartbeat(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = encode(&hb, &key(7)).expect("strategy makes valid heartbeats");
        prop_assert_eq!(decode(&bytes, &key(7)), Ok(hb.clone()));
        prop_assert!(decode(&bytes, &key(8)).is_err(), "another key's tag");
        let mut altered = bytes.clone();
        let i = flip.index(altered.len());
        altered[i] ^= 1 << bit;
        prop_assert!(decode(&altered, &key(7)).is_err(), "byte {} bit {}", i, bit);
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(decode(&bytes, &key(7)).is_err());
        // And with a valid-looking header in front.
        let mut framed = b"FLHB\x01".to_vec();
        framed.extend_from_slice(&bytes);
        prop_assert!(decode(&framed, &key(7)).is_err());
    }

    /// Whatever order datagrams arrive in (reordered, duplicated, replayed from an older boot),
    /// what the guard accepts from one sender is strictly increasing in (epoch, counter).
    #[test]
    fn the_replay_guard_accepts_a_strictly_increasing_sequence(
        seq in prop::collection::vec((0u64..4, 0u64..20), 1..80),
        lease_epoch in prop::option::of(0u64..4),
    ) {
        let mut g = ReplayGuard::new();
        g.set_lease_epoch("a", lease_epoch);
        let mut accepted: Vec<(u64, u64)> = Vec::new();
        for (epoch, counter) in seq {
            let hb = Heartbeat {
                node: "a".into(),
                epoch,
                counter,
                interval: Duration::from_millis(200),
                misses: 3,
            };
            if g.check(&hb).is_ok() {
                if let Some(e) = lease_epoch {
                    prop_assert_eq!(epoch, e, "only the lease's epoch");
                }
                if let Some(last) = accepted.last() {
                    prop_assert!((epoch, counter) > *last, "{:?} after {:?}", (epoch, counter), last);
                }
                accepted.push((epoch, counter));
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Ev {
    Heard { ms: u16, misses: u8 },
    Evidence,
    Forget,
}

fn event() -> impl Strategy<Value = (u64, Ev)> {
    (
        0u64..700,
        prop_oneof![
            4 => (1u16..400, 1u8..5).prop_map(|(ms, misses)| Ev::Heard { ms, misses }),
            2 => Just(Ev::Evidence),
            1 => Just(Ev::Forget),
        ],
    )
}

/// The detector's rules restated from the history alone: suspected at `now` iff a heartbeat
/// was accepted at `h`, then nothing cancelled or forgot it, and `now - h` exceeds its timeout;
/// a suspicion cancelled by evidence stays cancelled (excused) until the next heartbeat.
fn model(history: &[(u64, Ev)], now: u64) -> PeerState {
    let mut state = PeerState::Unheard;
    let mut last: Option<(u64, u64)> = None; // (time, timeout)
    let suspected =
        |last: Option<(u64, u64)>, at: u64| last.is_some_and(|(h, to)| at.saturating_sub(h) > to);
    for (at, ev) in history {
        match ev {
            Ev::Heard { ms, misses } => {
                let floor = MIN_SUSPICION_TIMEOUT.as_millis() as u64;
                let timeout = (u64::from(*ms) * u64::from(*misses)).max(floor);
                let h = last.map_or(*at, |(h, _)| h.max(*at));
                last = Some((h, timeout));
                state = PeerState::Heard;
            }
            Ev::Evidence => {
                if state == PeerState::Heard && suspected(last, *at) {
                    state = PeerState::Excused;
                    last = None;
                }
            }
            Ev::Forget => {
                state = PeerState::Unheard;
                last = None;
            }
        }
    }
    match state {
        PeerState::Heard if suspected(last, now) => PeerState::Suspected,
        s => s,
    }
}

proptest! {
    #[test]
    fn the_detector_follows_its_rules(steps in prop::collection::vec(event(), 1..60)) {
        let mut d = FailureDetector::default();
        let mut history = Vec::new();
        let mut now = 0u64;
        for (advance, ev) in steps {
            now += advance;
            let at = MonoTime::from_millis(now);
            match &ev {
                Ev::Heard { ms, misses } => {
                    d.heard("a", Duration::from_millis(u64::from(*ms)), *misses, at)
                }
                Ev::Evidence => {
                    let was = d.state("a", at);
                    let cancelled = d.evidence_of_life("a", at);
                    prop_assert_eq!(cancelled, was == PeerState::Suspected);
                }
                Ev::Forget => d.forget("a"),
            }
            history.push((now, ev));
            for probe in [now, now + 299, now + 300, now + 301, now + 2_000] {
                prop_assert_eq!(
                    d.state("a", MonoTime::from_millis(probe)),
                    model(&history, probe),
                    "at {} after {:?}", probe, history
                );
            }
            // A peer never heard since its last evidence or forget is never suspected.
            if !matches!(history.last(), Some((_, Ev::Heard { .. }))) {
                prop_assert!(!d.is_suspected("a", MonoTime::from_millis(now + 1_000_000))
                    || model(&history, now + 1_000_000) == PeerState::Suspected);
            }
        }
    }
}

// ---- asymmetric loss: the cancel rule keeps one owner per IP ---------------------------------

const LEASE: Duration = Duration::from_secs(3);
const STEP: u64 = 20;

fn facts(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        labels: BTreeMap::new(),
        subnets: vec!["198.51.100.0/24".parse().expect("literal")],
        live: true,
    }
}

fn mac_of(node: &str) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, if node == "a" { 1 } else { 2 }])
}

fn snap(rv: u64) -> LeaseSnapshot {
    LeaseSnapshot {
        holder: Some("x".into()),
        renew_time: Some(format!("r{rv}")),
        resource_version: rv.to_string(),
        duration: Some(LEASE),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Node "b" stops hearing "a" (one direction only; "a" is alive, renews its lease and
    /// answers ARP for its IPs, answers arriving `answer_ms` after a probe). Whatever the
    /// timing, "b" never announces an IP "a" announces: its probe is answered, the answer
    /// cancels the suspicion, and "b" yields before its probe wait ends.
    #[test]
    fn asymmetric_loss_never_gives_two_nodes_one_ip(
        loss_from in 0u64..3_000,
        loss_for in 0u64..6_000,
        answer_ms in 1u64..90,
        ips in 1u8..20,
    ) {
        let demands: Vec<IpDemand> = (1..=ips)
            .map(|i| IpDemand::cluster(IpAddr::from([198, 51, 100, i])))
            .collect();
        let nodes = vec![facts("a"), facts("b")];
        let mut a = Announcer::new(AnnouncerParams::new("a", LEASE));
        let mut b = Announcer::new(AnnouncerParams::new("b", LEASE));
        let mut b_hears = FailureDetector::default();
        let sel = BTreeMap::new();
        // Answers "a" owes to "b"'s probes: (due, ip).
        let mut pending: Vec<(u64, IpAddr)> = Vec::new();
        let mut rv = 0;
        for step in 0..(12_000 / STEP) {
            let now = step * STEP;
            let at = MonoTime::from_millis(now);
            if now % 1000 == 0 {
                rv += 1;
                for (me, peer) in [(&mut a, "b"), (&mut b, "a")] {
                    me.renew_succeeded(at);
                    me.watch_ok(at);
                    me.lease_seen(peer, &snap(rv), at);
                }
            }
            let lost = now >= loss_from && now < loss_from + loss_for;
            if now % 200 == 0 && !lost {
                b_hears.heard("a", Duration::from_millis(200), 3, at);
            }
            // "a" answers b's probes for IPs it announces.
            let due: Vec<IpAddr> = pending.iter().filter(|(d, _)| *d <= now).map(|(_, ip)| *ip).collect();
            pending.retain(|(d, _)| *d > now);
            for ip in due {
                if a.is_announcing(ip) {
                    b_hears.evidence_of_life("a", at);
                    b.claim_seen(ip, mac_of("a"), Claimant::Speaker("a"), at);
                }
            }
            b.set_suspects(b_hears.suspected(at).map(str::to_owned).collect::<Vec<_>>());
            a.reconcile(at, &nodes, &demands, &sel);
            for action in b.reconcile(at, &nodes, &demands, &sel) {
                if let Action::Probe { ip } = action {
                    pending.push((now + answer_ms, ip));
                }
            }
            let both: BTreeSet<IpAddr> = a.announced().filter(|ip| b.is_announcing(*ip)).collect();
            prop_assert!(both.is_empty(), "at {} ms both announce {:?}", now, both);
        }
        // Once heartbeats flow again, b's view agrees with a's.
        let end = MonoTime::from_millis(12_000);
        prop_assert!(!b_hears.is_suspected("a", end) || loss_from + loss_for > 11_400);
    }
}

// ---- watchers: who watches whom ---------------------------------------------------------------

use ferrolb_core::heartbeat::{assign, Member, WATCHERS};
use ipnetwork::IpNetwork;

/// The subnets members may be on (bit `s` of a member's mask: subnet `s`).
const SUBNETS: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/64"];

/// Members `0..n`, each with an address on the subnets its mask picks (never none).
fn members(masks: &[u8]) -> Vec<Member> {
    masks
        .iter()
        .enumerate()
        .map(|(i, mask)| {
            let mask = if mask % 8 == 0 { 1 } else { mask % 8 };
            let addrs = (0..SUBNETS.len())
                .filter(|s| mask & (1 << s) != 0)
                .map(|s| {
                    let addr = match s {
                        0 => format!("198.51.100.{}/24", i + 1),
                        1 => format!("203.0.113.{}/24", i + 1),
                        _ => format!("2001:db8::{:x}/64", i + 1),
                    };
                    addr.parse::<IpNetwork>().expect("literal")
                })
                .collect();
            Member {
                node: format!("node-{i}"),
                addrs,
            }
        })
        .collect()
}

fn subnets_of(m: &Member) -> BTreeSet<(IpAddr, u8)> {
    m.addrs.iter().map(|a| (a.network(), a.prefix())).collect()
}

proptest! {
    /// Every member has at least min(k, peers) watchers, all sharing a subnet with it (reached at
    /// their address there), never itself; on each subnet it watches at most k others.
    #[test]
    fn every_member_is_watched_by_min_k_peers_and_watches_at_most_k_per_subnet(
        masks in prop::collection::vec(any::<u8>(), 1..40),
        k in 1usize..6,
    ) {
        let ms = members(&masks);
        let a = assign(&ms, k);
        for m in &ms {
            let mine = subnets_of(m);
            let peers: BTreeSet<&str> = ms
                .iter()
                .filter(|o| o.node != m.node && !subnets_of(o).is_disjoint(&mine))
                .map(|o| o.node.as_str())
                .collect();
            let watchers = a.watchers_of(&m.node);
            prop_assert!(watchers.len() >= k.min(peers.len()), "{}: {:?} of {:?}", m.node, watchers, peers);
            prop_assert!(!watchers.contains_key(&m.node));
            for (w, addr) in &watchers {
                prop_assert!(peers.contains(w.as_str()), "{} watches {} without a shared subnet", w, m.node);
                let wm = ms.iter().find(|o| &o.node == w).expect("a member");
                prop_assert!(wm.addrs.iter().any(|x| x.ip() == *addr), "{}'s address {}", w, addr);
                prop_assert!(m.addrs.iter().any(|x| x.contains(*addr)), "{} is on {}'s subnet", addr, m.node);
            }
            prop_assert!(a.watched_by(&m.node).len() <= k * mine.len());
            prop_assert_eq!(a.neighbours_of(&m.node).len(), peers.len());
        }
    }

    /// Every speaker computes the same assignment, whatever order it lists the Leases in.
    #[test]
    fn the_assignment_does_not_depend_on_the_listing_order(
        masks in prop::collection::vec(any::<u8>(), 1..30),
        rotate in any::<prop::sample::Index>(),
    ) {
        let ms = members(&masks);
        let mut shuffled = ms.clone();
        shuffled.reverse();
        let r = rotate.index(shuffled.len());
        shuffled.rotate_left(r);
        prop_assert_eq!(assign(&ms, WATCHERS), assign(&shuffled, WATCHERS));
    }

    /// A member joining changes the watchers of at most k members per subnet it joins (those
    /// just before it on each ring); everyone else keeps theirs.
    #[test]
    fn a_join_moves_the_watchers_of_at_most_k_members_per_subnet(
        masks in prop::collection::vec(any::<u8>(), 2..40),
    ) {
        let ms = members(&masks);
        let (joiner, before) = ms.split_last().expect("two or more");
        let old = assign(before, WATCHERS);
        let new = assign(&ms, WATCHERS);
        let moved = before
            .iter()
            .filter(|m| old.watchers_of(&m.node) != new.watchers_of(&m.node))
            .count();
        prop_assert!(moved <= WATCHERS * subnets_of(joiner).len(), "{} moved", moved);
    }
}

// ---- asymmetric loss with watchers and dissemination -----------------------------------------

fn mac_n(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, i as u8])
}

/// What travels between the nodes of the model, with its arrival time.
#[derive(Debug, Clone)]
enum Wire {
    /// A suspicion of node 0 reaches `to`.
    Suspect { to: usize },
    /// Node 0's refutation reaches `to`.
    Alive { to: usize },
    /// `from` answers `to`'s probe for `ip` (it announces it).
    Answer { to: usize, from: usize, ip: IpAddr },
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Five speakers on one subnet; node 0 is alive throughout, but one of its watchers stops
    /// hearing anything from it for a while (asymmetric loss). That watcher suspects it and tells
    /// the others (each suspicion arriving after `delays`, or lost), who adopt it; node 0 hears
    /// the suspicion and refutes with "alive" (each refutation delayed or lost). Any node that
    /// elects itself for one of node 0's IPs probes first, and node 0 answers. Whatever the
    /// timing and losses, no IP is ever announced by two nodes at once.
    #[test]
    fn asymmetric_loss_with_watchers_and_dissemination_never_gives_two_nodes_one_ip(
        loss_from in 0u64..3_000,
        loss_for in 0u64..6_000,
        answer_ms in 1u64..90,
        watcher_pick in any::<prop::sample::Index>(),
        delays in prop::collection::vec(1u64..300, 5),
        suspect_lost in prop::collection::vec(any::<bool>(), 5),
        alive_lost in prop::collection::vec(any::<bool>(), 5),
        ips in 1u8..16,
    ) {
        const N: usize = 5;
        let names: Vec<String> = (0..N).map(|i| format!("node-{i}")).collect();
        let ring: Vec<Member> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                node: n.clone(),
                addrs: vec![format!("198.51.100.{}/24", i + 1).parse().expect("literal")],
            })
            .collect();
        let assignment = assign(&ring, WATCHERS);
        let watchers_of_0: Vec<usize> = assignment
            .watchers_of(&names[0])
            .keys()
            .filter_map(|w| names.iter().position(|n| n == w))
            .collect();
        prop_assert_eq!(watchers_of_0.len(), WATCHERS);
        let deaf = watchers_of_0[watcher_pick.index(watchers_of_0.len())];
        let demands: Vec<IpDemand> = (1..=ips)
            .map(|i| IpDemand::cluster(IpAddr::from([198, 51, 100, 100 + i])))
            .collect();
        let nodes: Vec<NodeFacts> = names.iter().map(|n| facts(n)).collect();
        let mut ann: Vec<Announcer> = names
            .iter()
            .map(|n| Announcer::new(AnnouncerParams::new(n.clone(), LEASE)))
            .collect();
        let mut det: Vec<FailureDetector> = (0..N).map(|_| FailureDetector::default()).collect();
        let sel = BTreeMap::new();
        let mut wire: Vec<(u64, Wire)> = Vec::new();
        let mut refuted = false;
        let mut rv = 0;
        for step in 0..(12_000 / STEP) {
            let now = step * STEP;
            let at = MonoTime::from_millis(now);
            let lost = now >= loss_from && now < loss_from + loss_for;
            if now % 1000 == 0 {
                rv += 1;
                for (i, me) in ann.iter_mut().enumerate() {
                    me.renew_succeeded(at);
                    me.watch_ok(at);
                    for (j, peer) in names.iter().enumerate() {
                        if i != j {
                            me.lease_seen(peer, &snap(rv), at);
                        }
                    }
                }
            }
            // Node 0's heartbeats reach its watchers, except the deaf one during the loss.
            if now % 200 == 0 {
                for &w in &watchers_of_0 {
                    if !(w == deaf && lost) {
                        det[w].heard(&names[0], Duration::from_millis(200), 3, at);
                    }
                }
            }
            // Deliveries due now.
            let due: Vec<Wire> = wire.iter().filter(|(d, _)| *d <= now).map(|(_, w)| w.clone()).collect();
            wire.retain(|(d, _)| *d > now);
            for w in due {
                match w {
                    Wire::Suspect { to: 0 } => {
                        if !refuted {
                            refuted = true;
                            for to in 1..N {
                                let lost_to_deaf = to == deaf && lost;
                                if !alive_lost[to] && !lost_to_deaf {
                                    wire.push((now + delays[to], Wire::Alive { to }));
                                }
                            }
                        }
                    }
                    Wire::Suspect { to } => {
                        det[to].adopt(&names[0], at);
                    }
                    Wire::Alive { to } => {
                        det[to].evidence_of_life(&names[0], at);
                    }
                    Wire::Answer { to, from, ip } => {
                        if ann[from].is_announcing(ip) {
                            if from == 0 {
                                det[to].evidence_of_life(&names[0], at);
                            }
                            ann[to].claim_seen(ip, mac_n(from), Claimant::Speaker(&names[from]), at);
                        }
                    }
                }
            }
            // Own suspicions of node 0 are told to every other node (the subject included).
            for (i, d) in det.iter_mut().enumerate().skip(1) {
                if !d.suspicions_to_tell(at).is_empty() {
                    for to in 0..N {
                        if to != i && !suspect_lost[to] {
                            wire.push((now + delays[to], Wire::Suspect { to }));
                        }
                    }
                }
            }
            for i in 0..N {
                let suspects: Vec<String> = det[i].suspected(at).map(str::to_owned).collect();
                ann[i].set_suspects(suspects);
                let actions = ann[i].reconcile(at, &nodes, &demands, &sel);
                for action in actions {
                    if let Action::Probe { ip } = action {
                        for from in 0..N {
                            if from != i {
                                wire.push((now + answer_ms, Wire::Answer { to: i, from, ip }));
                            }
                        }
                    }
                }
            }
            for d in &demands {
                let holders: Vec<usize> = (0..N).filter(|i| ann[*i].is_announcing(d.ip)).collect();
                prop_assert!(holders.len() <= 1, "at {} ms {} is announced by {:?}", now, d.ip, holders);
            }
        }
    }
}
