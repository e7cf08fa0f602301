//! The cadence rule: how often a speaker renews its Lease, and what duration it writes.
//!
//! Heartbeats let peers notice a death without the API, so the Lease may be renewed rarely, but
//! only while that is safe: a speaker relaxes to [`RELAXED_RENEW`] / [`RELAXED_DURATION`] only
//! while it sends heartbeats, its last renewal succeeded, and **every one of its live watchers
//! lists it as heard** in that watcher's Lease (only its watchers receive its heartbeats,
//! [`super::watchers`]; a watcher that suspects it tells everyone else), and **every other live
//! peer sharing one of its subnets is on the watcher rings** too (so it adopts the watchers'
//! suspicions; a peer without heartbeats, or an older one, judges us by our Lease alone). Otherwise it keeps the fast
//! `--lease-renew` / `--lease-duration` (1 s / 3 s by default), so a peer that cannot hear it
//! (no key, RBAC denied, a firewall) still sees it die within today's lease time. Peers judge
//! each Lease by the duration written in it, so the two sides never disagree on the timing.

use std::collections::BTreeSet;
use std::time::Duration;

/// Lease renewal interval while every peer hears this speaker: 12 s, so any window of a
/// minute holds at most 5 renewals per node (issue 12 asks for at most 0.1 writes per node per
/// second).
pub const RELAXED_RENEW: Duration = Duration::from_secs(12);
/// Lease duration written while relaxed: the renewal interval, plus the 3 s a hung renewal may
/// take to time out (then the speaker judges itself degraded), plus 3 s for its retries, so a
/// speaker cut off from the API holds its IPs before any peer can expire its lease.
pub const RELAXED_DURATION: Duration = Duration::from_secs(18);

/// How often to renew and what to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Interval between renewals.
    pub renew: Duration,
    /// `spec.leaseDurationSeconds` to write.
    pub duration: Duration,
}

/// Which of the two timings is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// `--lease-renew` / `--lease-duration`.
    Fast,
    /// [`RELAXED_RENEW`] / [`RELAXED_DURATION`] (never faster than the fast timing).
    Relaxed,
}

impl Cadence {
    /// The timing for this cadence given the fast one from the command line.
    pub fn timing(self, fast: LeaseTiming) -> LeaseTiming {
        match self {
            Cadence::Fast => fast,
            Cadence::Relaxed => LeaseTiming {
                renew: fast.renew.max(RELAXED_RENEW),
                duration: fast.duration.max(RELAXED_DURATION),
            },
        }
    }
}

/// One peer as the cadence rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct PeerView<'a> {
    /// Its node name.
    pub node: &'a str,
    /// Whether its Lease is live in this speaker's eyes.
    pub live: bool,
    /// Whether it shares at least one subnet with this speaker (only those can take over our
    /// IPs, so only those must learn of our death quickly).
    pub shares_subnet: bool,
    /// Whether it is one of this speaker's watchers (only those receive our heartbeats, so
    /// only those must hear us).
    pub is_watcher: bool,
    /// Whether it is on the watcher rings (it advertises heartbeat addresses, so it adopts
    /// our watchers' suspicion of us).
    pub on_ring: bool,
    /// Whom its Lease says it hears (`None`: it publishes nothing, e.g. an older version).
    pub hears: Option<&'a BTreeSet<String>>,
}

/// The cadence chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CadenceChoice {
    /// The cadence in force.
    pub cadence: Cadence,
    /// Live watchers that do not list us as heard and live peers on our subnets that are off
    /// the rings, in name order: the reason a
    /// speaker that sends heartbeats stays fast, for the alarm metric and the log.
    pub unheard_by: Vec<String>,
}

/// Applies the cadence rule for `me`.
///
/// `sending`: heartbeats go out (a key is loaded and the socket works). `renew_ok`: the last
/// renewal of our Lease succeeded (after a failure we retry at the fast interval).
pub fn choose_cadence<'a>(
    me: &str,
    sending: bool,
    renew_ok: bool,
    peers: impl IntoIterator<Item = PeerView<'a>>,
) -> CadenceChoice {
    let unheard_by: Vec<String> = peers
        .into_iter()
        .filter(|p| p.node != me && p.live && (p.is_watcher || p.shares_subnet))
        .filter(|p| !p.on_ring || (p.is_watcher && !p.hears.is_some_and(|h| h.contains(me))))
        .map(|p| p.node.to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cadence = if sending && renew_ok && unheard_by.is_empty() {
        Cadence::Relaxed
    } else {
        Cadence::Fast
    };
    CadenceChoice {
        cadence,
        unheard_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: LeaseTiming = LeaseTiming {
        renew: Duration::from_secs(1),
        duration: Duration::from_secs(3),
    };

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn peer<'a>(node: &'a str, hears: Option<&'a BTreeSet<String>>) -> PeerView<'a> {
        PeerView {
            node,
            live: true,
            shares_subnet: true,
            is_watcher: true,
            on_ring: true,
            hears,
        }
    }

    #[test]
    fn relaxed_only_while_every_live_watcher_hears_us() {
        let hears_me = set(&["me", "c"]);
        let deaf = set(&["c"]);
        let all = choose_cadence("me", true, true, [peer("b", Some(&hears_me))]);
        assert_eq!(all.cadence, Cadence::Relaxed);
        assert!(all.unheard_by.is_empty());
        let one_deaf = choose_cadence(
            "me",
            true,
            true,
            [peer("b", Some(&hears_me)), peer("c", Some(&deaf))],
        );
        assert_eq!(one_deaf.cadence, Cadence::Fast);
        assert_eq!(one_deaf.unheard_by, ["c"]);
        // A peer that publishes nothing (an older speaker) cannot be relied on.
        let silent = choose_cadence("me", true, true, [peer("b", None)]);
        assert_eq!(silent.cadence, Cadence::Fast);
    }

    #[test]
    fn dead_peers_and_peers_that_do_not_watch_us_do_not_count() {
        let deaf = set(&[]);
        let mut dead = peer("b", Some(&deaf));
        dead.live = false;
        let mut elsewhere = peer("c", Some(&deaf));
        elsewhere.is_watcher = false;
        elsewhere.shares_subnet = false;
        // On our subnet and on the ring, but not our watcher: it need not hear us.
        let mut bystander = peer("d", Some(&deaf));
        bystander.is_watcher = false;
        let me_in_list = peer("me", Some(&deaf));
        let c = choose_cadence("me", true, true, [dead, elsewhere, me_in_list, bystander]);
        assert_eq!(c.cadence, Cadence::Relaxed);
        // A live peer on our subnet that is off the rings (no heartbeats, an older version)
        // judges us by our Lease alone: keep it fast.
        let mut old = peer("e", None);
        old.is_watcher = false;
        old.on_ring = false;
        let c = choose_cadence("me", true, true, [old]);
        assert_eq!(
            (c.cadence, c.unheard_by),
            (Cadence::Fast, vec!["e".to_string()])
        );
    }

    #[test]
    fn not_sending_or_a_failed_renewal_keeps_the_fast_cadence() {
        let hears_me = set(&["me"]);
        assert_eq!(
            choose_cadence("me", false, true, [peer("b", Some(&hears_me))]).cadence,
            Cadence::Fast
        );
        assert_eq!(
            choose_cadence("me", true, false, [peer("b", Some(&hears_me))]).cadence,
            Cadence::Fast
        );
    }

    #[test]
    fn relaxed_timing_is_never_faster_than_the_command_line() {
        assert_eq!(Cadence::Fast.timing(FAST), FAST);
        assert_eq!(
            Cadence::Relaxed.timing(FAST),
            LeaseTiming {
                renew: RELAXED_RENEW,
                duration: RELAXED_DURATION
            }
        );
        let slow = LeaseTiming {
            renew: Duration::from_secs(20),
            duration: Duration::from_secs(60),
        };
        assert_eq!(Cadence::Relaxed.timing(slow), slow);
    }
}
