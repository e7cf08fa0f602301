//! The speaker's announce decision: which IPs this node answers ARP for, and what to do when
//! that changes, given its API health, its peers' leases and what it hears on the wire.
//!
//! Pure and clock-free (the caller passes every time in, and asks [`Announcer::next_wakeup`]
//! when to come back), so whole outage scenarios are unit tests. The rules, in one place:
//!
//! * **Healthy** (own renewals and the lease watch both succeeded within one lease duration):
//!   announce exactly the IPs this node wins by rendezvous hashing among the candidates.
//! * **API-degraded** (either has failed for longer than a lease duration): keep announcing the
//!   IPs already owned (so an API outage never blacks out traffic), take over none, and stop an
//!   IP only when its Service is gone or another speaker claims it on the wire.
//! * **Liveness freeze**: from the first reported failure (or from the moment staleness makes
//!   us degraded) peers' liveness is judged at that frozen moment, so no peer expires just
//!   because *we* cannot see its renewals; when the API works again that gap is forgiven.
//! * **Probe before announcing (RFC 5227)**: a newly won IP is first probed
//!   ([`Action::Probe`]) and announced ([`Action::Start`]) only when the probe wait has passed
//!   with no answer from a host that is not a speaker.
//! * **Never fight a foreign host**: a claim by a MAC that belongs to no speaker, on an IP this
//!   node probes or announces, puts the IP on hold ([`Action::Hold`]): not answered for the
//!   foreign hold, then probed again. A speaker's claim is never foreign.
//! * **Conflicts** (see [`Announcer::claim_seen`] for the exact definition): a degraded owner
//!   that hears another speaker claim one of its IPs yields it at once; a healthy owner defends
//!   it with gratuitous ARP (at most once per GARP interval per IP) and reports a conflict only
//!   when the contest outlives a handover.
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

/// How long to listen for an answer to the RFC 5227 probe before announcing a newly won IP. A
/// host using the IP answers within a round trip; this is short enough to add little to
/// failover.
pub const DEFAULT_PROBE_WAIT: Duration = Duration::from_millis(100);
/// How long an IP another host uses is held back before it is probed again.
pub const DEFAULT_FOREIGN_HOLD: Duration = Duration::from_secs(30);

/// The settings of one speaker's announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerParams {
    /// This speaker's node name, exactly as in [`NodeFacts::name`].
    pub node: String,
    /// `--lease-duration`: how long a lease stays live after a change, how long API failure
    /// is tolerated before this speaker counts as degraded, and how long a handover between
    /// two speakers may take before their overlap counts as a conflict.
    pub lease_duration: Duration,
    /// The GARP policy (`l2.garp`); its interval rate-limits re-sends when defending an IP.
    /// Follows the config through [`Announcer::set_garp`].
    pub garp: GarpParams,
    /// How long a probe waits for an answer before the IP is announced.
    pub probe_wait: Duration,
    /// How long an IP a foreign host uses is held back before the next probe.
    pub foreign_hold: Duration,
}

impl AnnouncerParams {
    /// The design's settings for `node`: default GARP policy, probe wait and foreign hold.
    pub fn new(node: impl Into<String>, lease_duration: Duration) -> Self {
        AnnouncerParams {
            node: node.into(),
            lease_duration,
            garp: GarpParams::default(),
            probe_wait: DEFAULT_PROBE_WAIT,
            foreign_hold: DEFAULT_FOREIGN_HOLD,
        }
    }
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
    /// While degraded, another speaker claimed the IP on the wire: a healthy peer most likely
    /// took over while this node could not see the API.
    ClaimedBy(MacAddr),
}

/// Who sent a claim (a gratuitous ARP or an ARP reply for an IP), as the caller knows from the
/// speakers' leases, which list each speaker's MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant<'a> {
    /// A port of the speaker on this node (another of our interfaces heard our own frame).
    Ourselves,
    /// A port of the speaker on the named node.
    Speaker(&'a str),
    /// A host that is not a speaker.
    Foreign,
}

/// Something the caller must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// This node won `ip`: send an RFC 5227 probe for it and listen for claims, but do not
    /// answer for it yet. The announcer sends [`Action::Start`] when the probe wait is over.
    Probe {
        /// The IP won.
        ip: IpAddr,
    },
    /// Start answering for `ip` and send the gratuitous-ARP schedule from now.
    Start {
        /// The IP taken over.
        ip: IpAddr,
    },
    /// Give `ip` up entirely, whatever stage it is in (probing, announced or held): stop
    /// answering, cancel its GARP schedule, stop listening for claims on it.
    Stop {
        /// The IP given up.
        ip: IpAddr,
        /// Why, for the log and the Event.
        reason: StopReason,
    },
    /// A host that is not a speaker uses `ip`: stop answering for it (keep listening) and say
    /// so. The announcer probes it again after `hold`.
    Hold {
        /// The IP held back.
        ip: IpAddr,
        /// The foreign host's MAC.
        mac: MacAddr,
        /// How long until the next probe.
        hold: Duration,
    },
    /// Send one extra gratuitous ARP (request and reply) for `ip` now, to win neighbours back.
    ResendGarp {
        /// The IP being defended.
        ip: IpAddr,
    },
    /// Another speaker keeps claiming `ip` while this healthy node owns it, beyond a handover:
    /// raise a Warning Event and count it in the conflict metric. Reported for every such claim;
    /// the caller rate-limits the Event.
    Conflict {
        /// The contested IP.
        ip: IpAddr,
        /// The MAC that claimed it.
        mac: MacAddr,
    },
}

/// Where one elected IP stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Probe sent; announced at `until` unless a foreign host answers first.
    Probing { until: MonoTime },
    /// Answered by this node; `last_garp` rate-limits defence re-sends.
    Announcing {
        last_garp: MonoTime,
        contest: Option<Contest>,
    },
    /// A foreign host uses it; probed again at `until`.
    Held { until: MonoTime },
}

/// Claims by other speakers on one announced IP, as one episode: claims more than a lease
/// duration apart start a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contest {
    since: MonoTime,
    last: MonoTime,
}

/// One speaker's announce state machine. Feed it every input as it happens, call
/// [`Announcer::reconcile`] after any change, at [`Announcer::next_wakeup`] (and periodically,
/// since liveness expires with time), and carry out the returned [`Action`]s.
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
    /// Every IP this node won and has not given up, whatever its phase.
    elected: BTreeMap<IpAddr, Phase>,
    conflicts: u64,
    stopped: bool,
    /// Peers the heartbeat failure detector suspects dead: not live whatever their lease says.
    suspects: BTreeSet<String>,
    /// The duration written in our own lease at its last successful renewal, when it differs
    /// from `params.lease_duration` (the relaxed heartbeat cadence).
    own_lease_duration: Option<Duration>,
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
            elected: BTreeMap::new(),
            conflicts: 0,
            stopped: false,
            suspects: BTreeSet::new(),
            own_lease_duration: None,
        }
    }

    /// The settings in force.
    pub fn params(&self) -> &AnnouncerParams {
        &self.params
    }

    /// The `l2.garp` policy changed: defence re-sends follow it from now on.
    pub fn set_garp(&mut self, garp: GarpParams) {
        self.params.garp = garp;
    }

    /// The peers the heartbeat failure detector suspects dead right now (it replaces the
    /// previous set). A suspected peer is not a candidate for any IP, whatever its lease says;
    /// heartbeats can only take liveness away earlier than the lease would, never extend it.
    pub fn set_suspects<I, S>(&mut self, suspects: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.suspects = suspects.into_iter().map(Into::into).collect();
    }

    /// Our own renewals now write `duration` into our lease (the heartbeat cadence rule).
    /// Call it with the duration of each successful renewal: peers count our lease for that
    /// long, so our own API health is judged against it too.
    pub fn set_own_lease_duration(&mut self, duration: Duration) {
        self.own_lease_duration = Some(duration);
    }

    /// How long our own renewals and watch may fall silent before we count as degraded: the
    /// duration our peers give our lease (never less than `--lease-duration`) while nothing
    /// fails; `--lease-duration` as soon as a renewal or the watch fails. A rarely renewed
    /// lease is quiet by design, but once the API fails us we must hold our IPs (degraded)
    /// before peers can expire our lease and claim them, exactly as at the fast cadence.
    fn health_window(&self) -> Duration {
        let fast = self.params.lease_duration;
        if self.renew_failing || self.watch_failing {
            return fast;
        }
        self.own_lease_duration.map_or(fast, |d| d.max(fast))
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
        let d = self.health_window();
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
            !self.suspects.contains(node) && self.liveness.is_live(node, self.judge_time(now))
        }
    }

    /// Whether `node`'s lease alone is live at `now`, heartbeat suspicions aside: who is on the
    /// heartbeat watcher rings (a suspicion must not take a node off the ring, or its
    /// watchers would stop watching it and the suspicion would end by itself).
    pub fn is_lease_live(&self, node: &str, now: MonoTime) -> bool {
        self.liveness.is_live(node, self.judge_time(now))
    }

    /// Recomputes what to announce at `now` from the current nodes and IP demands, fires the
    /// probe and hold deadlines that are due, and returns the actions that get there: stops
    /// first, then due deadlines, then probes for newly won IPs, each in IP order.
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
        let won: BTreeSet<IpAddr> = if healthy {
            demanded
                .values()
                .filter(|d| self.wins(d, nodes, node_selector, now))
                .map(|d| d.ip)
                .collect()
        } else {
            BTreeSet::new()
        };

        let mut actions = Vec::new();
        let elected: Vec<IpAddr> = self.elected.keys().copied().collect();
        for ip in elected {
            let reason = if !demanded.contains_key(&ip) {
                Some(StopReason::NotDemanded)
            } else if healthy && !won.contains(&ip) {
                Some(StopReason::NotElected)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.elected.remove(&ip);
                actions.push(Action::Stop { ip, reason });
            }
        }
        actions.extend(self.fire_deadlines(now));
        for ip in won {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.elected.entry(ip) {
                slot.insert(Phase::Probing {
                    until: now + self.params.probe_wait,
                });
                actions.push(Action::Probe { ip });
            }
        }
        actions
    }

    /// Probes whose wait is over announce; holds that expired probe again. A degraded speaker
    /// finishes what it won while healthy, as it keeps what it announces.
    fn fire_deadlines(&mut self, now: MonoTime) -> Vec<Action> {
        let mut actions = Vec::new();
        for (ip, phase) in &mut self.elected {
            match *phase {
                Phase::Probing { until } if until <= now => {
                    *phase = Phase::Announcing {
                        last_garp: now,
                        contest: None,
                    };
                    actions.push(Action::Start { ip: *ip });
                }
                Phase::Held { until } if until <= now => {
                    *phase = Phase::Probing {
                        until: now + self.params.probe_wait,
                    };
                    actions.push(Action::Probe { ip: *ip });
                }
                _ => {}
            }
        }
        actions
    }

    /// When [`Announcer::reconcile`] must run next for a probe or hold deadline, if any is
    /// pending. Liveness expiry is not included: the caller reconciles periodically for it.
    pub fn next_wakeup(&self) -> Option<MonoTime> {
        self.elected
            .values()
            .filter_map(|phase| match phase {
                Phase::Probing { until } | Phase::Held { until } => Some(*until),
                Phase::Announcing { .. } => None,
            })
            .min()
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

    /// `mac` (of `claimant`) claimed `ip` on the wire at `now` with a gratuitous ARP or an ARP
    /// reply (an answer to our probe included). Only matters for an IP this node won.
    ///
    /// **What is a conflict.** A claim is a conflict when all of these hold: this node
    /// *announces* the IP (its probe is over), it is healthy, the claimant is another speaker,
    /// and claims by other speakers on this IP have gone on for longer than one lease duration
    /// (the time any speaker needs to see a lease change). Everything else is not:
    ///
    /// * a foreign host's claim puts the IP on hold (never fight a host that is not a speaker);
    /// * a speaker answering our probe is the previous owner handing over: it stops when its
    ///   lease view shows us, and we announce when the probe wait is over;
    /// * within the first lease duration of a contest, claims are a handover in progress. This
    ///   node defends with gratuitous ARP (rate-limited to the GARP interval) unless the
    ///   claimant outranks it for the IP by rendezvous score: then the claimant is the rightful
    ///   owner our lease view has not caught up with, and reconcile hands the IP over as soon as
    ///   it does (a claim from the owner our current view elects can only meet an announcing
    ///   node in that gap, since reconcile stops the IP the moment the view changes);
    /// * a degraded owner hearing any speaker's claim yields the IP at once.
    pub fn claim_seen(
        &mut self,
        ip: IpAddr,
        mac: MacAddr,
        claimant: Claimant<'_>,
        now: MonoTime,
    ) -> Vec<Action> {
        if self.stopped {
            return Vec::new();
        }
        self.update_freeze(now);
        let healthy = self.health(now) == Health::Healthy;
        let lease_duration = self.params.lease_duration;
        let garp_interval = self.params.garp.interval;
        let foreign_hold = self.params.foreign_hold;
        let our_score = rendezvous::score(&self.params.node, ip);
        let Some(phase) = self.elected.get_mut(&ip) else {
            return Vec::new();
        };
        let peer = match claimant {
            Claimant::Ourselves => return Vec::new(),
            Claimant::Foreign => {
                if matches!(phase, Phase::Held { .. }) {
                    return Vec::new();
                }
                *phase = Phase::Held {
                    until: now + foreign_hold,
                };
                return vec![Action::Hold {
                    ip,
                    mac,
                    hold: foreign_hold,
                }];
            }
            Claimant::Speaker(peer) => peer,
        };
        let Phase::Announcing { last_garp, contest } = phase else {
            // Probing: the previous owner answering. Held: we do not answer anyway.
            return Vec::new();
        };
        if !healthy {
            // Not retaken while degraded, since degraded speakers take over nothing.
            self.elected.remove(&ip);
            return vec![Action::Stop {
                ip,
                reason: StopReason::ClaimedBy(mac),
            }];
        }
        let episode = match contest {
            Some(c) if now.saturating_since(c.last) <= lease_duration => {
                Contest { last: now, ..*c }
            }
            _ => Contest {
                since: now,
                last: now,
            },
        };
        *contest = Some(episode);
        let handover = now.saturating_since(episode.since) <= lease_duration;
        let outranked = rendezvous::score(peer, ip) > our_score;
        let mut actions = Vec::new();
        if !handover {
            self.conflicts += 1;
            actions.push(Action::Conflict { ip, mac });
        }
        if (!handover || !outranked) && now.saturating_since(*last_garp) >= garp_interval {
            *last_garp = now;
            actions.push(Action::ResendGarp { ip });
        }
        actions
    }

    /// Graceful stop: returns every IP to stop answering now, after which the caller releases
    /// (or deletes) the lease so peers take over without waiting for it to expire. The announcer
    /// does nothing afterwards.
    pub fn shutdown(&mut self) -> Vec<IpAddr> {
        self.stopped = true;
        std::mem::take(&mut self.elected).into_keys().collect()
    }

    /// The IPs this node answers for now (probe over, not held), in order.
    pub fn announced(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.elected
            .iter()
            .filter(|(_, phase)| matches!(phase, Phase::Announcing { .. }))
            .map(|(ip, _)| *ip)
    }

    /// The IPs this node won and has not given up, whatever their phase (probing, announced,
    /// held back for a foreign host), in order.
    pub fn elected(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.elected.keys().copied()
    }

    /// Whether this node answers for `ip` now.
    pub fn is_announcing(&self, ip: IpAddr) -> bool {
        matches!(self.elected.get(&ip), Some(Phase::Announcing { .. }))
    }

    /// How many conflicts (see [`Announcer::claim_seen`]) have been reported in total.
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
        Some(renew.min(watch) + self.health_window())
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
