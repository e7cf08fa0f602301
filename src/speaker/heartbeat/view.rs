//! What the speaker's decision knows about heartbeats: the failure detector, what each peer's
//! Lease says about its heartbeats (its epoch, addresses, whom it hears), and the watcher
//! assignment computed from them (whom we send to, whom we watch). No I/O; the caller passes
//! the time in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::election::{node_of_lease, MonoTime};
use ferrolb_core::heartbeat::{
    assign, choose_cadence, format_hears, parse_hears, Assignment, Body, CadenceChoice,
    FailureDetector, Heartbeat, HeartbeatAdvert, Member, Message, PeerState, PeerView,
    HEARS_ANNOTATION, HEARS_GRACE, HEARTBEAT_ANNOTATION, WATCHERS,
};
use ipnetwork::IpNetwork;
use k8s_openapi::api::coordination::v1::Lease;

use crate::speaker::cluster_view::SUBNETS_ANNOTATION;
use crate::speaker::interfaces::parse_subnets_annotation;

#[derive(Debug, Clone, Default)]
struct PeerLeaseInfo {
    hears: Option<BTreeSet<String>>,
    advert: Option<HeartbeatAdvert>,
    subnets: Vec<IpNetwork>,
}

fn overlaps(a: &[IpNetwork], b: &[IpNetwork]) -> bool {
    a.iter().any(|x| {
        b.iter()
            .any(|y| x.contains(y.network()) || y.contains(x.network()))
    })
}

/// The failure detector plus the heartbeat facts published in peers' Leases.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatView {
    detector: FailureDetector,
    peers: BTreeMap<String, PeerLeaseInfo>,
    assignment: Assignment,
    /// The ring members the assignment was computed from (recomputed only when they change).
    members: Vec<Member>,
    /// The peers we watch: the only ones whose heartbeats we track and may suspect.
    watched: BTreeSet<String>,
    /// Our watchers, with the address to reach each at.
    watchers: BTreeMap<String, IpAddr>,
    /// Every other ring member on our subnets, with its address: where suspicions go.
    neighbours: BTreeMap<String, IpAddr>,
}

impl HeartbeatView {
    /// An accepted heartbeat arrived at `at`. Returns whether that changed what we think of
    /// the peer (first heard, heard again after a suspicion or an excuse), i.e. whether the
    /// election or whom we publish as heard may change; a routine heartbeat changes neither.
    /// A heartbeat from a peer we do not watch (it has not seen the ring change yet) is not
    /// tracked, but still evidence of life.
    pub fn heard(&mut self, hb: &Heartbeat, at: MonoTime) -> bool {
        if !self.watched.contains(&hb.node) {
            return self.detector.evidence_of_life(&hb.node, at);
        }
        let before = self.detector.state(&hb.node, at);
        self.detector.heard(&hb.node, hb.interval, hb.misses, at);
        before != PeerState::Heard
    }

    /// An accepted message from a peer at `at` (never a suspicion of ourselves: the receiver
    /// answers those). Returns whether it may change the election or what we publish.
    pub fn received(&mut self, msg: &Message, at: MonoTime) -> bool {
        match &msg.body {
            Body::Heartbeat => self.heard(&msg.from, at),
            Body::Suspect { node, epoch } => self.adopt_suspicion(node, *epoch, at),
            Body::Alive => self.detector.evidence_of_life(&msg.from.node, at),
        }
    }

    /// A watcher of `node` says it stopped hearing `node` in boot epoch `epoch`. Adopted only
    /// for the epoch `node`'s Lease names (a suspicion of an earlier boot is void); returns
    /// whether `node` became suspected.
    pub fn adopt_suspicion(&mut self, node: &str, epoch: u64, at: MonoTime) -> bool {
        let current = self
            .peers
            .get(node)
            .and_then(|p| p.advert.as_ref())
            .map(|a| a.epoch);
        current == Some(epoch) && self.detector.adopt(node, at)
    }

    /// Our own suspicions to tell our neighbours now (new ones, and standing ones again every
    /// [`RETELL_INTERVAL`](ferrolb_core::heartbeat::RETELL_INTERVAL)), with the boot epoch
    /// their Leases name and whether this is the first telling.
    pub fn suspicions_to_tell(&mut self, at: MonoTime) -> Vec<(String, u64, bool)> {
        let due = self.detector.suspicions_to_tell(at);
        due.into_iter()
            .filter_map(|(n, first)| {
                let epoch = self.peers.get(&n)?.advert.as_ref()?.epoch;
                Some((n, epoch, first))
            })
            .collect()
    }

    /// Recomputes the watcher rings for `me` from the Leases: members are speakers whose Lease
    /// is live (heartbeat suspicions aside) and advertises heartbeat addresses. Peers we no
    /// longer watch stop being tracked.
    pub fn set_ring(&mut self, me: &str, lease_live: impl Fn(&str) -> bool) {
        let members: Vec<Member> = self
            .peers
            .iter()
            .filter(|(n, _)| n.as_str() == me || lease_live(n))
            .filter_map(|(n, p)| {
                let advert = p.advert.as_ref()?;
                (!advert.addrs.is_empty()).then(|| Member {
                    node: n.clone(),
                    addrs: advert.addrs.clone(),
                })
            })
            .collect();
        if members == self.members && !self.members.is_empty() {
            return;
        }
        let assignment = assign(&members, WATCHERS);
        self.members = members;
        let watched = assignment.watched_by(me);
        for gone in self.watched.difference(&watched) {
            self.detector.stop_watching(gone);
        }
        self.watched = watched;
        self.watchers = assignment.watchers_of(me);
        self.neighbours = assignment.neighbours_of(me);
        self.assignment = assignment;
    }

    /// Our watchers now, with their addresses.
    pub fn watchers(&self) -> &BTreeMap<String, IpAddr> {
        &self.watchers
    }

    /// The peers we watch now.
    pub fn watched(&self) -> &BTreeSet<String> {
        &self.watched
    }

    /// Every other ring member sharing a subnet with us, with its address.
    pub fn neighbours(&self) -> &BTreeMap<String, IpAddr> {
        &self.neighbours
    }

    /// `node` answered or claimed one of its IPs on the wire at `at`; returns whether that
    /// cancelled a suspicion.
    pub fn evidence_of_life(&mut self, node: &str, at: MonoTime) -> bool {
        self.detector.evidence_of_life(node, at)
    }

    /// `node`'s Lease was deleted.
    pub fn forget(&mut self, node: &str) {
        self.detector.forget(node);
        self.peers.remove(node);
    }

    /// Re-reads every speaker Lease's heartbeat annotations.
    pub fn refresh_leases(&mut self, leases: &[Arc<Lease>]) {
        self.peers = leases
            .iter()
            .filter_map(|l| {
                let node = node_of_lease(l.metadata.name.as_deref()?)?.to_owned();
                let ann = l.metadata.annotations.as_ref();
                let get = |k: &str| ann.and_then(|a| a.get(k));
                Some((
                    node,
                    PeerLeaseInfo {
                        hears: get(HEARS_ANNOTATION).map(|h| parse_hears(h)),
                        advert: get(HEARTBEAT_ANNOTATION).and_then(|a| HeartbeatAdvert::parse(a)),
                        subnets: get(SUBNETS_ANNOTATION)
                            .map(|s| parse_subnets_annotation(s))
                            .unwrap_or_default(),
                    },
                ))
            })
            .collect();
    }

    /// Peers suspected dead at `at`.
    pub fn suspected(&self, at: MonoTime) -> Vec<String> {
        self.detector.suspected(at).map(str::to_owned).collect()
    }

    /// The `ferrolb.io/hears` value at `at`: peers heard within [`HEARS_GRACE`].
    pub fn hears_annotation(&self, at: MonoTime) -> String {
        format_hears(self.detector.heard_within(at, HEARS_GRACE))
    }

    /// Each peer's current boot epoch, from its Lease (for the replay guard).
    pub fn epochs(&self) -> BTreeMap<String, u64> {
        self.peers
            .iter()
            .filter_map(|(n, p)| Some((n.clone(), p.advert.as_ref()?.epoch)))
            .collect()
    }

    /// When the next heard peer becomes suspected, if any.
    pub fn next_deadline(&self, at: MonoTime) -> Option<MonoTime> {
        self.detector.next_deadline(at)
    }

    /// Whether `me` is on the watcher rings (our Lease, as peers see it, advertises heartbeat
    /// addresses): only then do peers watch us.
    pub fn on_ring(&self, me: &str) -> bool {
        self.assignment.is_member(me)
    }

    /// The cadence rule for `me` (subnets `own`), with liveness as the election judges it.
    pub fn cadence(
        &self,
        me: &str,
        own: &[IpNetwork],
        is_live: impl Fn(&str) -> bool,
        sending: bool,
        renew_ok: bool,
    ) -> CadenceChoice {
        let views: Vec<PeerView<'_>> = self
            .peers
            .iter()
            .map(|(node, p)| PeerView {
                node,
                live: is_live(node),
                shares_subnet: overlaps(own, &p.subnets),
                is_watcher: self.watchers.contains_key(node),
                on_ring: self.assignment.is_member(node),
                hears: p.hears.as_ref(),
            })
            .collect();
        choose_cadence(me, sending, renew_ok, views)
    }

    /// Live peers we watch whom we do not hear at `at`: a firewall or a wrong key between us
    /// (the alarm's other half).
    pub fn unheard_senders(&self, is_live: impl Fn(&str) -> bool, at: MonoTime) -> Vec<String> {
        let heard: BTreeSet<&str> = self.detector.heard_within(at, HEARS_GRACE).collect();
        self.watched
            .iter()
            .filter(|n| is_live(n) && !heard.contains(n.as_str()))
            .cloned()
            .collect()
    }

    /// Suspicions cancelled so far.
    pub fn cancelled(&self) -> u64 {
        self.detector.cancelled()
    }
}

#[cfg(test)]
mod tests {
    // unwrap() here only parses literal fixtures (addresses, node names like "n3" whose tail is
    // a number): it cannot fail unless the test itself is wrong.
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn lease(node: &str, ann: serde_json::Value) -> Arc<Lease> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {
                "name": format!("ferrolb-speaker-{node}"), "annotations": ann}}))
            .unwrap(),
        )
    }

    fn hb(node: &str) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            epoch: 1,
            counter: 1,
            interval: Duration::from_millis(200),
            misses: 3,
        }
    }

    fn advert(epoch: u64, addr: &str) -> String {
        format!("v1;epoch={epoch};interval=200ms;port=7474;addrs={addr}")
    }

    fn msg(node: &str, body: Body) -> Message {
        Message {
            from: hb(node),
            body,
        }
    }

    #[test]
    fn the_view_builds_the_rings_from_leases_and_tracks_only_whom_it_watches() {
        let mut v = HeartbeatView::default();
        let own: Vec<IpNetwork> = vec!["198.51.100.0/24".parse().unwrap()];
        let mut leases: Vec<Arc<Lease>> = (1..=6)
            .map(|i| {
                lease(
                    &format!("n{i}"),
                    json!({"ferrolb.io/subnets": "198.51.100.0/24",
                        "ferrolb.io/hears": "",
                        "ferrolb.io/heartbeat": advert(i, &format!("198.51.100.{i}/24"))}),
                )
            })
            .collect();
        // An older speaker: an advert without addresses, so it is on no ring.
        leases.push(lease(
            "old",
            json!({"ferrolb.io/subnets": "198.51.100.0/24",
                "ferrolb.io/heartbeat": "v1;epoch=9;interval=200ms;port=7474"}),
        ));
        v.refresh_leases(&leases);
        v.set_ring("n1", |_| true);
        assert!(v.on_ring("n1") && !v.on_ring("old"));
        assert_eq!(v.watchers().len(), 3);
        assert_eq!(v.watched().len(), 3);
        assert_eq!(v.neighbours().len(), 5, "every other ring member");
        assert!(!v.neighbours().contains_key("old"));
        let watched: Vec<String> = v.watched().iter().cloned().collect();
        let stranger = (2..=6)
            .map(|i| format!("n{i}"))
            .find(|n| !v.watched().contains(n))
            .unwrap();
        let t0 = MonoTime::from_millis(0);
        let late = MonoTime::from_millis(601);
        // A heartbeat from a peer we do not watch is not tracked: its silence means nothing.
        assert!(!v.received(&msg(&stranger, Body::Heartbeat), t0));
        assert!(v.received(&msg(&watched[0], Body::Heartbeat), t0));
        assert_eq!(v.suspected(late), [watched[0].clone()]);
        let first_epoch: u64 = watched[0][1..].parse().unwrap();
        assert_eq!(
            v.suspicions_to_tell(late),
            [(watched[0].clone(), first_epoch, true)]
        );
        assert!(
            v.suspicions_to_tell(late).is_empty(),
            "told once per interval"
        );
        // The cadence rule counts the old speaker (off the rings) and our watchers.
        let c = v.cadence("n1", &own, |_| true, true, true);
        assert_eq!(c.cadence, ferrolb_core::heartbeat::Cadence::Fast);
        assert!(c.unheard_by.contains(&"old".to_string()));
        assert_eq!(
            c.unheard_by.len(),
            4,
            "the old speaker and our 3 watchers: {c:?}"
        );
        // A watcher's suspicion of a peer we do not watch is adopted, for the peer's epoch only.
        let epoch: u64 = stranger[1..].parse().unwrap();
        assert!(!v.received(
            &msg(
                "n9",
                Body::Suspect {
                    node: stranger.clone(),
                    epoch: epoch + 1
                }
            ),
            t0
        ));
        assert!(v.received(
            &msg(
                "n9",
                Body::Suspect {
                    node: stranger.clone(),
                    epoch
                }
            ),
            t0
        ));
        assert!(v.suspected(t0).contains(&stranger));
        // Its "alive" takes it back.
        assert!(v.received(&msg(&stranger, Body::Alive), t0));
        assert!(!v.suspected(t0).contains(&stranger));
        // A peer that stops being watched (the ring moved) is no longer suspected.
        v.set_ring("n1", |_| false);
        assert!(v.watched().is_empty() && v.watchers().is_empty());
        assert!(!v.suspected(late).contains(&watched[0]));
        v.forget("n2");
        assert!(!v.epochs().contains_key("n2"));
    }
}
