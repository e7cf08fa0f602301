//! Peer liveness judged by local observation of lease changes.
//!
//! A lease's `renewTime` is written by the holder's clock; comparing it with ours would make
//! failover depend on clock skew between nodes. Instead each speaker notes, on its own monotonic
//! clock, when it last saw a peer's lease *change*, and calls the peer live while that was less
//! than one lease duration ago.

use std::collections::BTreeMap;
use std::time::Duration;

use super::time::MonoTime;

/// Speaker leases are named this prefix followed by the node name.
pub const LEASE_PREFIX: &str = "ferrolb-speaker-";

/// The name of the Lease that `node`'s speaker holds.
pub fn lease_name(node: &str) -> String {
    format!("{LEASE_PREFIX}{node}")
}

/// The node whose speaker holds the Lease `lease`, or `None` for a Lease that is not a speaker
/// lease (the namespace may hold others, such as the controller's leader-election lease).
pub fn node_of_lease(lease: &str) -> Option<&str> {
    lease.strip_prefix(LEASE_PREFIX).filter(|n| !n.is_empty())
}

/// The parts of a Lease object that reveal whether its holder is still renewing it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseSnapshot {
    /// `spec.holderIdentity`; `None` (or empty) means the holder released the lease on shutdown.
    pub holder: Option<String>,
    /// `spec.renewTime` exactly as served. Only compared for change, never parsed as a time.
    pub renew_time: Option<String>,
    /// `metadata.resourceVersion`; any write by the holder changes it.
    pub resource_version: String,
    /// `spec.leaseDurationSeconds`: how long the holder asks peers to count the lease after
    /// each change (it renews rarely while every peer hears its heartbeats). `None`: the
    /// tracker's default.
    pub duration: Option<Duration>,
}

impl LeaseSnapshot {
    fn is_released(&self) -> bool {
        self.holder.as_deref().is_none_or(str::is_empty)
    }
}

#[derive(Debug, Clone)]
struct PeerLease {
    renew_time: Option<String>,
    resource_version: String,
    last_change: MonoTime,
    released: bool,
    /// The duration written in the lease as last seen.
    duration: Duration,
}

/// Per-peer "when did I last see this lease change" bookkeeping.
#[derive(Debug, Clone)]
pub struct LivenessTracker {
    lease_duration: Duration,
    peers: BTreeMap<String, PeerLease>,
}

impl LivenessTracker {
    /// A tracker that calls a peer live for `lease_duration` after each change it sees, unless
    /// the lease itself names another duration.
    pub fn new(lease_duration: Duration) -> Self {
        LivenessTracker {
            lease_duration,
            peers: BTreeMap::new(),
        }
    }

    /// Records that this speaker saw `node`'s lease as `snapshot` at `at`; returns whether that
    /// counted as a change (and so refreshed the peer's liveness).
    ///
    /// The first sighting counts as a change: we cannot know how old the lease is without
    /// trusting the holder's clock, so a freshly started speaker gives every peer one full lease
    /// duration to prove itself dead, rather than declaring everyone dead and grabbing every IP.
    pub fn observe(&mut self, node: &str, snapshot: &LeaseSnapshot, at: MonoTime) -> bool {
        let released = snapshot.is_released();
        // Each lease is judged by the duration written in it; never below one second, the
        // smallest duration a Lease can carry.
        let duration = snapshot
            .duration
            .unwrap_or(self.lease_duration)
            .max(Duration::from_secs(1));
        let changed = match self.peers.get_mut(node) {
            None => true,
            Some(prev) => {
                prev.duration = duration;
                prev.released != released
                    || prev.renew_time != snapshot.renew_time
                    || prev.resource_version != snapshot.resource_version
            }
        };
        if changed {
            self.peers.insert(
                node.to_owned(),
                PeerLease {
                    renew_time: snapshot.renew_time.clone(),
                    resource_version: snapshot.resource_version.clone(),
                    last_change: at,
                    released,
                    duration,
                },
            );
        }
        changed
    }

    /// Records that `node`'s lease was deleted; the peer is not live from now on. A deleted
    /// lease is what a gracefully stopping speaker leaves behind, and waiting out a lease
    /// duration for it would waste exactly the fast failover graceful stop exists for.
    pub fn forget(&mut self, node: &str) {
        self.peers.remove(node);
    }

    /// Whether `node` is live as judged at `judged_at`: its lease is held and changed no more
    /// than one lease duration before `judged_at` (or after it, when the caller judges at a
    /// frozen moment in the past).
    pub fn is_live(&self, node: &str, judged_at: MonoTime) -> bool {
        self.peers
            .get(node)
            .is_some_and(|p| !p.released && judged_at.saturating_since(p.last_change) <= p.duration)
    }

    /// The nodes live as judged at `judged_at`, in name order.
    pub fn live_nodes(&self, judged_at: MonoTime) -> impl Iterator<Item = &str> + '_ {
        self.peers
            .keys()
            .map(String::as_str)
            .filter(move |n| self.is_live(n, judged_at))
    }

    /// Does not hold the span `from..to` against any peer that was live at `from`: their last
    /// change moves forward by `to - from`, so each keeps the remaining lease time it had at
    /// `from`.
    ///
    /// Used when this speaker could not see the API during that span: peers could not renew
    /// either (or we could not see them do it), and calling them dead the moment we reconnect
    /// would move every IP in the cluster at once.
    pub fn forgive(&mut self, from: MonoTime, to: MonoTime) {
        let gap = to.saturating_since(from);
        for peer in self.peers.values_mut() {
            let live_at_from =
                !peer.released && from.saturating_since(peer.last_change) <= peer.duration;
            if live_at_from && peer.last_change <= from {
                peer.last_change = peer.last_change + gap;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(3000);

    fn t(ms: u64) -> MonoTime {
        MonoTime::from_millis(ms)
    }

    fn held(renew: &str, rv: &str) -> LeaseSnapshot {
        LeaseSnapshot {
            holder: Some("n".into()),
            renew_time: Some(renew.into()),
            resource_version: rv.into(),
            duration: None,
        }
    }

    #[test]
    fn lease_names_map_to_nodes_and_back() {
        assert_eq!(lease_name("kind-worker"), "ferrolb-speaker-kind-worker");
        assert_eq!(
            node_of_lease("ferrolb-speaker-kind-worker"),
            Some("kind-worker")
        );
        assert_eq!(node_of_lease("ferrolb-controller"), None);
        assert_eq!(node_of_lease("ferrolb-speaker-"), None);
    }

    #[test]
    fn unknown_peers_are_not_live() {
        assert!(!LivenessTracker::new(LEASE).is_live("ghost", t(0)));
    }

    #[test]
    fn a_peer_is_live_for_one_lease_duration_after_a_change() {
        let mut l = LivenessTracker::new(LEASE);
        assert!(l.observe("a", &held("r1", "1"), t(1000)));
        assert!(l.is_live("a", t(1000)));
        assert!(l.is_live("a", t(4000)));
        assert!(!l.is_live("a", t(4001)));
    }

    #[test]
    fn an_unchanged_lease_does_not_refresh_liveness() {
        let mut l = LivenessTracker::new(LEASE);
        l.observe("a", &held("r1", "1"), t(0));
        // A relist re-delivers the same object: no evidence the holder is alive.
        assert!(!l.observe("a", &held("r1", "1"), t(2500)));
        assert!(!l.is_live("a", t(3500)));
    }

    #[test]
    fn a_new_renew_time_or_resource_version_refreshes_liveness() {
        let mut l = LivenessTracker::new(LEASE);
        l.observe("a", &held("r1", "1"), t(0));
        assert!(l.observe("a", &held("r2", "1"), t(2000)));
        assert!(l.is_live("a", t(5000)));
        assert!(l.observe("a", &held("r2", "2"), t(4000)));
        assert!(l.is_live("a", t(7000)));
        assert!(!l.is_live("a", t(7001)));
    }

    #[test]
    fn the_holders_renew_time_is_never_interpreted() {
        let mut l = LivenessTracker::new(LEASE);
        // A renewTime far in the past (a skewed clock) still counts as a fresh change.
        l.observe("a", &held("1970-01-01T00:00:00.000000Z", "7"), t(10_000));
        assert!(l.is_live("a", t(12_000)));
    }

    #[test]
    fn a_released_or_deleted_lease_is_not_live_at_once() {
        let mut l = LivenessTracker::new(LEASE);
        l.observe("a", &held("r1", "1"), t(0));
        l.observe("b", &held("r1", "1"), t(0));
        let released = LeaseSnapshot {
            holder: None,
            renew_time: Some("r1".into()),
            resource_version: "2".into(),
            duration: None,
        };
        l.observe("a", &released, t(100));
        assert!(!l.is_live("a", t(100)));
        let empty_holder = LeaseSnapshot {
            holder: Some(String::new()),
            ..released
        };
        l.observe("a", &empty_holder, t(150));
        assert!(!l.is_live("a", t(150)));
        l.forget("b");
        assert!(!l.is_live("b", t(100)));
        // Re-acquiring brings the peer back.
        l.observe("a", &held("r9", "3"), t(200));
        assert!(l.is_live("a", t(200)));
    }

    #[test]
    fn judging_at_a_frozen_moment_keeps_peers_live() {
        let mut l = LivenessTracker::new(LEASE);
        l.observe("a", &held("r1", "1"), t(0));
        assert!(l.is_live("a", t(2000)));
        // Seen after the frozen moment: still live.
        l.observe("b", &held("r1", "1"), t(9000));
        assert!(l.is_live("b", t(2000)));
        assert_eq!(l.live_nodes(t(2000)).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn forgiving_a_gap_keeps_each_peers_remaining_lease_time() {
        let mut l = LivenessTracker::new(LEASE);
        l.observe("fresh", &held("r1", "1"), t(1000)); // 2 s left at t=2000
        l.observe("old", &held("r1", "1"), t(0)); //       1 s left at t=2000
        l.observe("dead", &held("r1", "1"), t(0));
        l.forgive(t(3500), t(3500)); // no gap: nothing changes
        assert!(!l.is_live("dead", t(3500)));
        let mut l2 = l.clone();
        l2.forgive(t(2000), t(62_000));
        assert!(l2.is_live("fresh", t(64_000)));
        assert!(!l2.is_live("fresh", t(64_001)));
        assert!(l2.is_live("old", t(63_000)));
        assert!(!l2.is_live("old", t(63_001)));
        // "dead" was already expired at `from` in l (judged at 3500): forgiving does not revive it.
        l.forgive(t(3500), t(60_000));
        assert!(!l.is_live("dead", t(60_000)));
    }

    #[test]
    fn each_lease_is_judged_by_the_duration_written_in_it() {
        let mut l = LivenessTracker::new(LEASE);
        let relaxed = LeaseSnapshot {
            duration: Some(Duration::from_secs(15)),
            ..held("r1", "1")
        };
        l.observe("a", &relaxed, t(0));
        assert!(l.is_live("a", t(15_000)));
        assert!(!l.is_live("a", t(15_001)));
        // Back to the fast cadence: the next change is judged by 3 s again.
        let fast = LeaseSnapshot {
            duration: Some(Duration::from_secs(3)),
            ..held("r2", "2")
        };
        l.observe("a", &fast, t(5_000));
        assert!(l.is_live("a", t(8_000)));
        assert!(!l.is_live("a", t(8_001)));
        // A nonsensical zero is read as the smallest real lease, one second.
        let zero = LeaseSnapshot {
            duration: Some(Duration::ZERO),
            ..held("r3", "3")
        };
        l.observe("a", &zero, t(10_000));
        assert!(l.is_live("a", t(11_000)));
        assert!(!l.is_live("a", t(11_001)));
    }
}
