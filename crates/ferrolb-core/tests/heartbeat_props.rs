//! Heartbeat properties: the codec never accepts what the key did not sign, the replay guard
//! never accepts a datagram twice or out of order, the failure detector agrees with a reference
//! model of its rules, and (the cancel rule at work) a speaker that stops hearing a live peer
//! never announces that peer's IPs while the peer still answers for them.

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
