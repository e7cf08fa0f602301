//! The speaker's announce decision: which IPs this node answers ARP for, and what to do when
//! that changes, given its API health, its peers' leases and what it hears on the wire.
//!
//! Pure and clock-free (the caller passes every time in), so whole outage scenarios are unit
//! tests. The rules, in one place:
//!
//! * **Healthy** (own renewals and the lease watch both succeeded within one lease duration):
//!   announce exactly the IPs this node wins by rendezvous hashing among the candidates.
//! * **API-degraded** (either has failed for longer than a lease duration): keep announcing the
//!   IPs already owned (so an API outage never blacks out traffic), take over none, and stop an
//!   IP only when its Service is gone or another MAC claims it on the wire.
//! * **Liveness freeze**: from the first reported failure (or from the moment staleness makes
//!   us degraded) peers' liveness is judged at that frozen moment, so no peer expires just
//!   because *we* cannot see its renewals; when the API works again that gap is forgiven.
//! * **Conflicts**: a degraded owner that hears another MAC claim one of its IPs yields it at
//!   once; a healthy owner keeps it, re-sends gratuitous ARP (at most once per GARP interval per
//!   IP) and reports the conflict.
//! * **Graceful stop**: [`Announcer::shutdown`] hands back every IP to stop answering before the
//!   caller releases the lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::candidates::{is_eligible_with, IpDemand, NodeFacts};
use super::liveness::{LeaseSnapshot, LivenessTracker};
use super::rendezvous;
use super::time::MonoTime;
use crate::arp::{GarpParams, MacAddr};

/// The fixed settings of one speaker's announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerParams {
    /// This speaker's node name, exactly as in [`NodeFacts::name`].
    pub node: String,
    /// `--lease-duration`: how long a lease stays live after a change, and how long API failure
    /// is tolerated before this speaker counts as degraded.
    pub lease_duration: Duration,
    /// The GARP policy; its interval rate-limits re-sends when defending an IP.
    pub garp: GarpParams,
}

/// This speaker's standing with the API server, which decides what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No successful renewal and watch yet: takes over nothing (it owns nothing yet either).
    Starting,
    /// Renewals and watch both succeeded within one lease duration: follows the election.
    Healthy,
    /// Renewals or watch have failed for longer than one lease duration: holds what it has.
    Degraded,
}

/// Why this speaker stops announcing an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// No Service needs the IP any more.
    NotDemanded,
    /// Another node wins the IP now (a node joined or recovered, endpoints moved, or this node
    /// stopped being a candidate).
    NotElected,
    /// While degraded, another MAC claimed the IP on the wire: a healthy peer most likely took
    /// over while this node could not see the API.
    ClaimedBy(MacAddr),
}

/// Something the caller must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start answering ARP for `ip` and send the gratuitous-ARP schedule from now.
    Start {
        /// The IP taken over.
        ip: IpAddr,
    },
    /// Stop answering ARP for `ip` (and cancel its GARP schedule).
    Stop {
        /// The IP given up.
        ip: IpAddr,
        /// Why, for the log and the Event.
        reason: StopReason,
    },
    /// Send one extra gratuitous ARP (request and reply) for `ip` now, to win neighbours back.
    ResendGarp {
        /// The IP being defended.
        ip: IpAddr,
    },
    /// Another MAC claimed `ip` while this healthy node owns it: raise a Warning Event and count
    /// it in the conflict metric. Reported for every claim heard; the Event recorder aggregates.
    Conflict {
        /// The contested IP.
        ip: IpAddr,
        /// The MAC that claimed it.
        mac: MacAddr,
    },
}

#[derive(Debug, Clone, Copy)]
struct Owned {
    last_garp: MonoTime,
}

/// One speaker's announce state machine. Feed it every input as it happens, call
/// [`Announcer::reconcile`] after any change (and periodically, since liveness expires with
/// time), and carry out the returned [`Action`]s.
#[derive(Debug, Clone)]
pub struct Announcer {
    params: AnnouncerParams,
    liveness: LivenessTracker,
    last_renew_ok: Option<MonoTime>,
    renew_failing: bool,
    last_watch_ok: Option<MonoTime>,
    watch_failing: bool,
    /// Set while peers' liveness is judged at a past moment instead of now.
    frozen_at: Option<MonoTime>,
    owned: BTreeMap<IpAddr, Owned>,
    conflicts: u64,
    stopped: bool,
}

impl Announcer {
    /// A speaker that owns nothing and has not talked to the API yet.
    pub fn new(params: AnnouncerParams) -> Self {
        Announcer {
            liveness: LivenessTracker::new(params.lease_duration),
            params,
            last_renew_ok: None,
            renew_failing: false,
            last_watch_ok: None,
            watch_failing: false,
            frozen_at: None,
            owned: BTreeMap::new(),
            conflicts: 0,
            stopped: false,
        }
    }

    /// Our own lease was renewed (written) successfully at `at`.
    pub fn renew_succeeded(&mut self, at: MonoTime) {
        self.last_renew_ok = self.last_renew_ok.max(Some(at));
        self.renew_failing = false;
        self.update_freeze(at);
    }

    /// A renewal of our own lease failed (error or timeout) at `at`.
    pub fn renew_failed(&mut self, at: MonoTime) {
        self.update_freeze(at);
        self.renew_failing = true;
        self.frozen_at.get_or_insert(at);
    }

    /// The lease watch delivered an event or bookmark, or a (re)list succeeded, at `at`.
    pub fn watch_ok(&mut self, at: MonoTime) {
        self.last_watch_ok = self.last_watch_ok.max(Some(at));
        self.watch_failing = false;
        self.update_freeze(at);
    }

    /// The lease watch errored or disconnected at `at`.
    pub fn watch_failed(&mut self, at: MonoTime) {
        self.update_freeze(at);
        self.watch_failing = true;
        self.frozen_at.get_or_insert(at);
    }

    /// This speaker saw `node`'s lease as `snapshot` at `at`. Our own lease is ignored: our
    /// health comes from our renewal results, which are first-hand.
    pub fn lease_seen(&mut self, node: &str, snapshot: &LeaseSnapshot, at: MonoTime) {
        if node != self.params.node {
            self.liveness.observe(node, snapshot, at);
        }
    }

    /// `node`'s lease was deleted (its speaker stopped gracefully): not live from now on.
    pub fn lease_gone(&mut self, node: &str) {
        self.liveness.forget(node);
    }

    /// This speaker's API health at `now`.
    pub fn health(&self, now: MonoTime) -> Health {
        let (Some(renew), Some(watch)) = (self.last_renew_ok, self.last_watch_ok) else {
            return Health::Starting;
        };
        let d = self.params.lease_duration;
        if now.saturating_since(renew) > d || now.saturating_since(watch) > d {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    /// How long ago (at `now`) the last successful renewal and the last working watch event
    /// were, for logs that explain a health change.
    pub fn last_api_contact(&self, now: MonoTime) -> (Option<Duration>, Option<Duration>) {
        (
            self.last_renew_ok.map(|t| now.saturating_since(t)),
            self.last_watch_ok.map(|t| now.saturating_since(t)),
        )
    }

    /// Whether `node` counts as live at `now` in this speaker's eyes (ourselves: while healthy).
    pub fn is_live(&self, node: &str, now: MonoTime) -> bool {
        if node == self.params.node {
            self.health(now) == Health::Healthy
        } else {
            self.liveness.is_live(node, self.judge_time(now))
        }
    }

    /// Recomputes what to announce at `now` from the current nodes and IP demands, and returns
    /// the actions that get there (stops first, then starts, each in IP order).
    ///
    /// `nodes` must include this node itself to make it a candidate. Their `live` flags are
    /// ignored: liveness is this speaker's own judgement ([`Announcer::is_live`]). `demands`
    /// holds one entry per IP (the caller merges Services sharing an IP); should an IP appear
    /// twice, the first entry counts.
    pub fn reconcile(
        &mut self,
        now: MonoTime,
        nodes: &[NodeFacts],
        demands: &[IpDemand],
        node_selector: &BTreeMap<String, String>,
    ) -> Vec<Action> {
        if self.stopped {
            return Vec::new();
        }
        self.update_freeze(now);
        let healthy = self.health(now) == Health::Healthy;
        let mut demanded: BTreeMap<IpAddr, &IpDemand> = BTreeMap::new();
        for d in demands {
            demanded.entry(d.ip).or_insert(d);
        }
        let elected: BTreeSet<IpAddr> = if healthy {
            demanded
                .values()
                .filter(|d| self.wins(d, nodes, node_selector, now))
                .map(|d| d.ip)
                .collect()
        } else {
            BTreeSet::new()
        };

        let mut actions = Vec::new();
        let owned: Vec<IpAddr> = self.owned.keys().copied().collect();
        for ip in owned {
            let reason = if !demanded.contains_key(&ip) {
                Some(StopReason::NotDemanded)
            } else if healthy && !elected.contains(&ip) {
                Some(StopReason::NotElected)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.owned.remove(&ip);
                actions.push(Action::Stop { ip, reason });
            }
        }
        for ip in elected {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.owned.entry(ip) {
                slot.insert(Owned { last_garp: now });
                actions.push(Action::Start { ip });
            }
        }
        actions
    }

    fn wins(
        &self,
        demand: &IpDemand,
        nodes: &[NodeFacts],
        node_selector: &BTreeMap<String, String>,
        now: MonoTime,
    ) -> bool {
        let candidates = nodes
            .iter()
            .filter(|n| is_eligible_with(n, demand, node_selector, |n| self.is_live(&n.name, now)))
            .map(|n| n.name.as_str());
        rendezvous::winner(demand.ip, candidates) == Some(self.params.node.as_str())
    }

    /// Another MAC (`mac`, never ours: the ARP classifier drops our own frames) claimed `ip` on
    /// the wire at `now`. Only matters for an IP we announce; see the module doc for the rules.
    pub fn claim_seen(&mut self, ip: IpAddr, mac: MacAddr, now: MonoTime) -> Vec<Action> {
        if self.stopped || !self.owned.contains_key(&ip) {
            return Vec::new();
        }
        self.update_freeze(now);
        self.conflicts += 1;
        let healthy = self.health(now) == Health::Healthy;
        let interval = self.params.garp.interval;
        let Some(owned) = self.owned.get_mut(&ip) else {
            return Vec::new();
        };
        if healthy {
            let mut actions = vec![Action::Conflict { ip, mac }];
            if now.saturating_since(owned.last_garp) >= interval {
                owned.last_garp = now;
                actions.push(Action::ResendGarp { ip });
            }
            actions
        } else {
            // Not retaken while degraded, since degraded speakers take over nothing.
            self.owned.remove(&ip);
            vec![Action::Stop {
                ip,
                reason: StopReason::ClaimedBy(mac),
            }]
        }
    }

    /// Graceful stop: returns every IP to stop answering now, after which the caller releases
    /// (or deletes) the lease so peers take over without waiting for it to expire. The announcer
    /// does nothing afterwards.
    pub fn shutdown(&mut self) -> Vec<IpAddr> {
        self.stopped = true;
        std::mem::take(&mut self.owned).into_keys().collect()
    }

    /// The IPs this node announces now, in order.
    pub fn announced(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.owned.keys().copied()
    }

    /// Whether this node announces `ip` now (the ARP responder's per-request check).
    pub fn is_announcing(&self, ip: IpAddr) -> bool {
        self.owned.contains_key(&ip)
    }

    /// How many conflicting claims on our IPs have been heard in total (for the metric).
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// The moment at which peers' liveness is judged: `now`, or a frozen past moment while this
    /// speaker's view of the API is in doubt.
    fn judge_time(&self, now: MonoTime) -> MonoTime {
        if let Some(frozen) = self.frozen_at {
            return frozen;
        }
        match self.degraded_since() {
            Some(since) if self.health(now) == Health::Degraded => since.min(now),
            _ => now,
        }
    }

    /// When staleness alone (no failure reported, e.g. a silently hung watch) made us degraded.
    fn degraded_since(&self) -> Option<MonoTime> {
        let renew = self.last_renew_ok?;
        let watch = self.last_watch_ok?;
        Some(renew.min(watch) + self.params.lease_duration)
    }

    fn update_freeze(&mut self, now: MonoTime) {
        let health = self.health(now);
        if self.frozen_at.is_none() && health == Health::Degraded {
            self.frozen_at = Some(self.judge_time(now));
        }
        if let Some(frozen) = self.frozen_at {
            if health == Health::Healthy && !self.renew_failing && !self.watch_failing {
                self.liveness.forgive(frozen, now);
                self.frozen_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
