//! The failure detector and its cancel rule: which peers this speaker suspects dead because
//! their heartbeats stopped, and what takes a suspicion back.
//!
//! Per peer, in this speaker's eyes:
//!
//! * **unheard** (no accepted heartbeat yet): judged by its Lease alone, never suspected. A
//!   firewall, a missing key or an old version can therefore only leave failover as slow as
//!   the Lease makes it, never slower, and never declare anyone dead.
//! * **heard** at `last`: suspected once `now > last + timeout`, where the timeout is what the
//!   peer asked for in its heartbeats (promised interval × misses), never less than the
//!   detector's floor.
//! * **excused**: it was suspected, then showed **evidence of life**: on the wire (the caller
//!   saw it answer ARP or NDP for one of its IPs, or claim one, from one of its MACs), or a
//!   write to its Lease seen after the suspicion began (a dead node writes nothing). The
//!   suspicion is cancelled at once and the peer is judged by its Lease alone again until its heartbeats
//!   are heard again.
//!
//! Why the cancel rule bounds duplicates: a suspected peer's IPs move to a new winner, which
//! first probes each IP (RFC 5227) and announces only if nobody answered. A peer that is in
//! fact alive (we merely stopped hearing it: asymmetric loss, a firewall) answers the probe; the
//! answer is the evidence that excuses it, so the new winner's view makes the old owner winner
//! again before the probe wait ends. A peer that thaws from a freeze sends heartbeats and
//! defends its IPs with gratuitous ARP, either of which excuses it within one GARP interval.
//!
//! **Adopted suspicions.** Only a peer's watchers track its heartbeats; a watcher that starts
//! suspecting it tells every speaker sharing a subnet ([`super::message::Body::Suspect`]), and
//! each adopts the suspicion ([`FailureDetector::adopt`]) unless it hears the peer itself. An
//! adopted suspicion counts like an own one and ends the same way: any evidence of life (wire
//! evidence, a Lease write after it began, a heartbeat, the peer's own "alive"), or the peer's
//! Lease going away.
//!
//! Pure: every input carries its time.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::election::MonoTime;

/// The shortest suspicion timeout accepted whatever a peer asks for: below this, scheduling
/// jitter on a busy node would be mistaken for death.
pub const MIN_SUSPICION_TIMEOUT: Duration = Duration::from_millis(300);

/// How long after its last heartbeat a peer still counts as heard in what this speaker
/// publishes (`ferrolb.io/hears`). Longer than the suspicion timeout on purpose: a heartbeat
/// late by a few hundred milliseconds on a loaded node may start a suspicion (cheap: a probe
/// answers it), but must not rewrite two Leases and flip a peer's lease cadence each time. A
/// peer that really stops hearing us stops listing us after this long.
pub const HEARS_GRACE: Duration = Duration::from_secs(3);

/// How often a speaker tells its neighbours again about a peer it still suspects itself. A
/// suspicion travels as a datagram that may be lost; the next winner of the dead node's IPs may
/// not be one of its watchers, and would otherwise wait for the dead node's (relaxed) lease.
pub const RETELL_INTERVAL: Duration = Duration::from_secs(1);
/// How many times in all a speaker tells one suspicion. Bounded because under one-way loss
/// (we do not hear a peer that is alive, and its refutations do not reach us either) every
/// telling makes the others suspect a live peer until its refutation arrives: a few tellings
/// cover lost datagrams without turning one bad link into endless churn.
pub const TELLINGS: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Heard { last: MonoTime, timeout: Duration },
    Excused,
}

/// What this speaker currently thinks of one peer's heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Never heard (or forgotten): judged by its Lease alone.
    Unheard,
    /// Heard within its timeout.
    Heard,
    /// Heard before, silent for longer than its timeout: treated as not live.
    Suspected,
    /// Suspected, then seen alive on the wire: judged by its Lease alone until heard again.
    Excused,
}

/// Per-peer heartbeat bookkeeping.
#[derive(Debug, Clone)]
pub struct FailureDetector {
    peers: BTreeMap<String, Watch>,
    /// When each peer's last heartbeat arrived; kept through suspicions and excuses.
    last_heard: BTreeMap<String, MonoTime>,
    floor: Duration,
    cancelled: u64,
    /// Suspicions adopted from a watcher, with when they were adopted.
    adopted: BTreeMap<String, MonoTime>,
    /// Own suspicions handed out by [`FailureDetector::suspicions_to_tell`]: when last, and
    /// how many times.
    reported: BTreeMap<String, (MonoTime, u8)>,
}

impl Default for FailureDetector {
    fn default() -> Self {
        Self::new(MIN_SUSPICION_TIMEOUT)
    }
}

impl FailureDetector {
    /// A detector whose suspicion timeouts are never shorter than `floor`.
    pub fn new(floor: Duration) -> Self {
        FailureDetector {
            peers: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            floor,
            cancelled: 0,
            adopted: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
    }

    /// An accepted (authenticated, not replayed) heartbeat from `node` at `at`, promising one
    /// every `interval` and asking for `misses` intervals of tolerance.
    pub fn heard(&mut self, node: &str, interval: Duration, misses: u8, at: MonoTime) {
        let timeout = interval
            .saturating_mul(u32::from(misses.max(1)))
            .max(self.floor);
        let entry = self.peers.entry(node.to_owned()).or_insert(Watch::Excused);
        // Inputs from different tasks may arrive slightly out of order: never move `last` back.
        let last = match *entry {
            Watch::Heard { last, .. } => last.max(at),
            Watch::Excused => at,
        };
        *entry = Watch::Heard { last, timeout };
        let heard = self.last_heard.entry(node.to_owned()).or_insert(at);
        *heard = (*heard).max(at);
        // A heartbeat is evidence of life: it ends an adopted suspicion too.
        self.adopted.remove(node);
        self.reported.remove(node);
    }

    /// A watcher of `node` says at `at` that it stopped hearing it. Adopted unless this speaker
    /// hears `node` itself right now (its own evidence of life outweighs another's silence).
    /// Returns whether `node` became suspected.
    pub fn adopt(&mut self, node: &str, at: MonoTime) -> bool {
        match self.state(node, at) {
            PeerState::Heard | PeerState::Suspected => false,
            PeerState::Unheard | PeerState::Excused => {
                self.adopted.insert(node.to_owned(), at);
                true
            }
        }
    }

    /// This speaker no longer watches `node` (the watcher assignment moved): stop tracking its
    /// heartbeats, so their end is never taken for a death. An adopted suspicion stays.
    pub fn stop_watching(&mut self, node: &str) {
        self.peers.remove(node);
        self.last_heard.remove(node);
        self.reported.remove(node);
    }

    /// Own suspicions (this speaker's heartbeat timeout, not adopted) to tell the other
    /// speakers about at `at`: each as soon as it starts, and again every [`RETELL_INTERVAL`]
    /// while it lasts, [`TELLINGS`] times in all, so a speaker that lost a telling still learns
    /// within a second instead of waiting for the dead node's lease. The flag says whether this
    /// is the first telling.
    pub fn suspicions_to_tell(&mut self, at: MonoTime) -> Vec<(String, bool)> {
        let due: Vec<(String, bool)> = self
            .peers
            .iter()
            .filter(|(_, w)| {
                matches!(w, Watch::Heard { last, timeout } if at.saturating_since(*last) > *timeout)
            })
            .filter_map(|(n, _)| match self.reported.get(n) {
                None => Some((n.clone(), true)),
                Some((told, times))
                    if *times < TELLINGS && at.saturating_since(*told) >= RETELL_INTERVAL =>
                {
                    Some((n.clone(), false))
                }
                Some(_) => None,
            })
            .collect();
        for (n, _) in &due {
            let times = self.reported.get(n).map_or(0, |(_, t)| *t);
            self.reported.insert(n.clone(), (at, times + 1));
        }
        due
    }

    /// `node` showed wire evidence of life at `at` (it answered or claimed one of its IPs from
    /// one of its MACs). Cancels a suspicion; returns whether it did.
    pub fn evidence_of_life(&mut self, node: &str, at: MonoTime) -> bool {
        if self.state(node, at) != PeerState::Suspected {
            return false;
        }
        self.adopted.remove(node);
        if self.peers.contains_key(node) {
            self.peers.insert(node.to_owned(), Watch::Excused);
        }
        self.reported.remove(node);
        self.cancelled += 1;
        true
    }

    /// `node`'s Lease is gone or released: its speaker left; forget it.
    pub fn forget(&mut self, node: &str) {
        self.peers.remove(node);
        self.last_heard.remove(node);
        self.adopted.remove(node);
        self.reported.remove(node);
    }

    /// What this speaker thinks of `node` at `at`.
    pub fn state(&self, node: &str, at: MonoTime) -> PeerState {
        let own = match self.peers.get(node) {
            None => PeerState::Unheard,
            Some(Watch::Excused) => PeerState::Excused,
            Some(Watch::Heard { last, timeout }) => {
                if at.saturating_since(*last) > *timeout {
                    PeerState::Suspected
                } else {
                    PeerState::Heard
                }
            }
        };
        match own {
            PeerState::Unheard | PeerState::Excused if self.adopted.contains_key(node) => {
                PeerState::Suspected
            }
            s => s,
        }
    }

    /// Whether `node` is suspected at `at`.
    pub fn is_suspected(&self, node: &str, at: MonoTime) -> bool {
        self.state(node, at) == PeerState::Suspected
    }

    /// The peers suspected at `at`, in name order.
    pub fn suspected(&self, at: MonoTime) -> impl Iterator<Item = &str> + '_ {
        let names: std::collections::BTreeSet<&str> = self
            .peers
            .keys()
            .chain(self.adopted.keys())
            .map(String::as_str)
            .collect();
        names.into_iter().filter(move |n| self.is_suspected(n, at))
    }

    /// The peers heard (and not suspected) at `at`, in name order.
    pub fn hears(&self, at: MonoTime) -> impl Iterator<Item = &str> + '_ {
        self.peers
            .keys()
            .map(String::as_str)
            .filter(move |n| self.state(n, at) == PeerState::Heard)
    }

    /// The peers whose last heartbeat arrived no more than `grace` before `at`, in name order:
    /// what this speaker publishes in its Lease as whom it hears (with [`HEARS_GRACE`]).
    pub fn heard_within(&self, at: MonoTime, grace: Duration) -> impl Iterator<Item = &str> + '_ {
        self.last_heard
            .iter()
            .filter(move |(_, last)| at.saturating_since(**last) <= grace)
            .map(|(n, _)| n.as_str())
    }

    /// The earliest moment after `at` at which a heard peer becomes suspected, so the caller
    /// can act on a death the moment it is due instead of at its next periodic tick.
    pub fn next_deadline(&self, at: MonoTime) -> Option<MonoTime> {
        self.peers
            .values()
            .filter_map(|w| match *w {
                // Suspected strictly after last + timeout; one millisecond later is the first
                // moment the state reads Suspected at millisecond resolution.
                Watch::Heard { last, timeout } => Some(last + timeout + Duration::from_millis(1)),
                Watch::Excused => None,
            })
            .chain(
                // Own suspicions still standing are told again once their interval is up.
                self.reported
                    .iter()
                    .filter(|(n, (_, times))| {
                        *times < TELLINGS
                            && self
                                .peers
                                .get(*n)
                                .is_some_and(|w| matches!(w, Watch::Heard { .. }))
                    })
                    .map(|(_, (told, _))| *told + RETELL_INTERVAL),
            )
            .filter(|d| *d > at)
            .min()
    }

    /// How many suspicions wire evidence has cancelled so far.
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(200);

    fn t(ms: u64) -> MonoTime {
        MonoTime::from_millis(ms)
    }

    #[test]
    fn a_peer_never_heard_is_never_suspected() {
        let d = FailureDetector::default();
        assert_eq!(d.state("a", t(1_000_000)), PeerState::Unheard);
        assert_eq!(d.suspected(t(1_000_000)).count(), 0);
        assert_eq!(d.next_deadline(t(0)), None);
    }

    #[test]
    fn heard_then_silent_for_its_timeout_is_suspected() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(1000));
        assert_eq!(d.state("a", t(1600)), PeerState::Heard);
        assert_eq!(d.state("a", t(1601)), PeerState::Suspected);
        assert_eq!(d.next_deadline(t(1000)), Some(t(1601)));
        assert_eq!(d.hears(t(1600)).collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.hears(t(1601)).count(), 0);
        assert_eq!(d.suspected(t(1601)).collect::<Vec<_>>(), ["a"]);
        // Each heartbeat pushes the deadline on.
        d.heard("a", I, 3, t(1500));
        assert_eq!(d.state("a", t(2000)), PeerState::Heard);
    }

    #[test]
    fn the_floor_protects_peers_asking_for_too_little() {
        let mut d = FailureDetector::default();
        d.heard("a", Duration::from_millis(10), 1, t(0));
        assert_eq!(d.state("a", t(300)), PeerState::Heard);
        assert_eq!(d.state("a", t(301)), PeerState::Suspected);
    }

    #[test]
    fn wire_evidence_cancels_a_suspicion_until_heard_again() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        assert!(
            !d.evidence_of_life("a", t(100)),
            "nothing to cancel while heard"
        );
        assert!(d.is_suspected("a", t(700)));
        assert!(d.evidence_of_life("a", t(700)));
        assert_eq!(d.cancelled(), 1);
        // Excused: judged by the lease alone, however long the silence lasts.
        assert_eq!(d.state("a", t(100_000)), PeerState::Excused);
        assert_eq!(d.hears(t(100_000)).count(), 0);
        // Heard again: watched again.
        d.heard("a", I, 3, t(100_000));
        assert!(d.is_suspected("a", t(100_601)));
    }

    #[test]
    fn out_of_order_inputs_never_move_the_last_heartbeat_back() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(1000));
        d.heard("a", I, 3, t(900));
        assert_eq!(d.state("a", t(1600)), PeerState::Heard);
    }

    #[test]
    fn a_late_heartbeat_suspects_at_once_but_keeps_the_peer_listed_for_the_grace() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        assert!(d.is_suspected("a", t(700)));
        assert_eq!(
            d.heard_within(t(700), HEARS_GRACE).collect::<Vec<_>>(),
            ["a"]
        );
        assert!(d.evidence_of_life("a", t(700)));
        assert_eq!(
            d.heard_within(t(3000), HEARS_GRACE).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(d.heard_within(t(3001), HEARS_GRACE).count(), 0);
    }

    #[test]
    fn forgotten_peers_are_unheard() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        d.forget("a");
        assert_eq!(d.state("a", t(10_000)), PeerState::Unheard);
        assert_eq!(d.heard_within(t(1), HEARS_GRACE).count(), 0);
    }

    #[test]
    fn an_adopted_suspicion_counts_until_evidence_of_life() {
        let mut d = FailureDetector::default();
        assert!(d.adopt("a", t(0)));
        assert!(d.is_suspected("a", t(0)));
        assert_eq!(d.suspected(t(5)).collect::<Vec<_>>(), ["a"]);
        assert!(
            d.suspicions_to_tell(t(5)).is_empty(),
            "adopted, not ours to tell"
        );
        assert!(d.evidence_of_life("a", t(10)));
        assert!(!d.is_suspected("a", t(10)));
        // A heartbeat ends it as well; forgetting the peer too.
        assert!(d.adopt("a", t(20)));
        d.heard("a", I, 3, t(30));
        assert_eq!(d.state("a", t(30)), PeerState::Heard);
        d.forget("a");
        assert!(d.adopt("a", t(40)));
        d.forget("a");
        assert_eq!(d.state("a", t(40)), PeerState::Unheard);
    }

    #[test]
    fn a_peer_we_hear_ourselves_is_not_adopted_as_suspected() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        assert!(!d.adopt("a", t(100)));
        assert_eq!(d.state("a", t(100)), PeerState::Heard);
    }

    #[test]
    fn own_suspicions_are_told_at_once_then_every_retell_interval_until_heard_again() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        d.heard("b", I, 3, t(0));
        assert!(d.suspicions_to_tell(t(600)).is_empty());
        let first = |v: &[(&str, bool)]| {
            v.iter()
                .map(|(n, f)| ((*n).to_owned(), *f))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            d.suspicions_to_tell(t(601)),
            first(&[("a", true), ("b", true)])
        );
        assert!(d.suspicions_to_tell(t(700)).is_empty());
        // The decision is woken for the next telling.
        assert_eq!(d.next_deadline(t(700)), Some(t(1601)));
        d.heard("a", I, 3, t(800));
        // Heard again, then silent again: a new suspicion, told at once.
        assert_eq!(d.suspicions_to_tell(t(1401)), first(&[("a", true)]));
        // b is still suspected: told again one interval after the first telling, then once
        // more, then never again however long it stays suspected.
        assert_eq!(d.suspicions_to_tell(t(1601)), first(&[("b", false)]));
        assert_eq!(
            d.suspicions_to_tell(t(2601)),
            first(&[("a", false), ("b", false)])
        );
        assert_eq!(d.suspicions_to_tell(t(3601)), first(&[("a", false)]));
        assert!(d.suspicions_to_tell(t(60_000)).is_empty());
        assert_eq!(d.next_deadline(t(60_000)), None);
        // Forgotten (its Lease went): nothing more to tell.
        d.forget("b");
        assert!(d
            .suspicions_to_tell(t(10_000))
            .iter()
            .all(|(n, _)| n != "b"));
    }

    #[test]
    fn a_peer_no_longer_watched_is_never_suspected_for_its_silence() {
        let mut d = FailureDetector::default();
        d.heard("a", I, 3, t(0));
        d.stop_watching("a");
        assert_eq!(d.state("a", t(10_000)), PeerState::Unheard);
        assert!(d.suspicions_to_tell(t(10_000)).is_empty());
    }
}
