//! What the speaker's decision knows about heartbeats: the failure detector, and what each
//! peer's Lease says about its heartbeats (its epoch, whom it hears, its subnets). No I/O; the
//! caller passes the time in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolb_core::election::{node_of_lease, MonoTime};
use ferrolb_core::heartbeat::{
    choose_cadence, format_hears, parse_hears, CadenceChoice, FailureDetector, Heartbeat,
    HeartbeatAdvert, PeerState, PeerView, HEARS_ANNOTATION, HEARS_GRACE, HEARTBEAT_ANNOTATION,
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

/// The failure detector plus the heartbeat facts published in peers' Leases.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatView {
    detector: FailureDetector,
    peers: BTreeMap<String, PeerLeaseInfo>,
}

fn overlaps(a: &[IpNetwork], b: &[IpNetwork]) -> bool {
    a.iter().any(|x| {
        b.iter()
            .any(|y| x.contains(y.network()) || y.contains(x.network()))
    })
}

impl HeartbeatView {
    /// An accepted heartbeat arrived at `at`. Returns whether that changed what we think of
    /// the peer (first heard, heard again after a suspicion or an excuse), i.e. whether the
    /// election or whom we publish as heard may change; a routine heartbeat changes neither.
    pub fn heard(&mut self, hb: &Heartbeat, at: MonoTime) -> bool {
        let before = self.detector.state(&hb.node, at);
        self.detector.heard(&hb.node, hb.interval, hb.misses, at);
        before != PeerState::Heard
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
            .filter_map(|(n, p)| Some((n.clone(), p.advert?.epoch)))
            .collect()
    }

    /// When the next heard peer becomes suspected, if any.
    pub fn next_deadline(&self, at: MonoTime) -> Option<MonoTime> {
        self.detector.next_deadline(at)
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
                hears: p.hears.as_ref(),
            })
            .collect();
        choose_cadence(me, sending, renew_ok, views)
    }

    /// Live peers on our subnets whose Leases say they send heartbeats, but whom we do not hear
    /// at `at`: a firewall or a wrong key between us (the alarm's other half).
    pub fn unheard_senders(
        &self,
        me: &str,
        own: &[IpNetwork],
        is_live: impl Fn(&str) -> bool,
        at: MonoTime,
    ) -> Vec<String> {
        let heard: BTreeSet<&str> = self.detector.heard_within(at, HEARS_GRACE).collect();
        self.peers
            .iter()
            .filter(|(n, p)| {
                n.as_str() != me
                    && p.advert.is_some()
                    && overlaps(own, &p.subnets)
                    && is_live(n)
                    && !heard.contains(n.as_str())
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Suspicions cancelled so far.
    pub fn cancelled(&self) -> u64 {
        self.detector.cancelled()
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn the_view_reads_peers_leases_and_applies_the_cadence_rule() {
        let mut v = HeartbeatView::default();
        let own: Vec<IpNetwork> = vec!["198.51.100.0/24".parse().unwrap()];
        v.refresh_leases(&[
            lease(
                "b",
                json!({"ferrolb.io/subnets": "198.51.100.0/24", "ferrolb.io/hears": "a,c",
                    "ferrolb.io/heartbeat": "v1;epoch=9;interval=200ms;port=7474"}),
            ),
            lease(
                "c",
                json!({"ferrolb.io/subnets": "203.0.113.0/24", "ferrolb.io/hears": ""}),
            ),
        ]);
        assert_eq!(v.epochs(), BTreeMap::from([("b".to_string(), 9)]));
        let c = v.cadence("a", &own, |_| true, true, true);
        assert_eq!(
            c.cadence,
            ferrolb_core::heartbeat::Cadence::Relaxed,
            "c is on another subnet"
        );
        let c = v.cadence(
            "c",
            &["203.0.113.0/24".parse().unwrap()],
            |_| true,
            true,
            true,
        );
        assert!(c.unheard_by.is_empty());
        let t0 = MonoTime::from_millis(0);
        assert_eq!(v.unheard_senders("a", &own, |_| true, t0), ["b"]);
        v.heard(&hb("b"), t0);
        assert!(v.unheard_senders("a", &own, |_| true, t0).is_empty());
        assert_eq!(v.hears_annotation(t0), "b");
        let late = MonoTime::from_millis(601);
        assert_eq!(v.suspected(late), ["b"]);
        assert!(v.evidence_of_life("b", late));
        assert!(v.suspected(late).is_empty());
        v.forget("b");
        assert!(v.epochs().is_empty());
    }
}
