//! Decision: the pure [`Announcer`] and the cluster view it is fed from. This module turns what
//! the wiring observes (watch events, renewal results, claims heard on the wire, config and
//! interface changes) into announcer inputs, and hands the resulting [`Action`]s back for the
//! executor. It does no I/O: it only reads the reflector caches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use ferrolb_core::arp::MacAddr;
use ferrolb_core::config::{Config, L2Config};
use ferrolb_core::election::{
    lease_name, node_of_lease, Action, Announcer, AnnouncerParams, Claimant, Health, MonoTime,
    NodeFacts,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use super::cluster_view::{self, Demands};
use super::executor::World;
use super::heartbeat::view::HeartbeatView;
use super::interfaces::Interfaces;
use super::lease::RenewResult;

/// The reflector caches the decision reads.
pub struct Caches {
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices.
    pub slices: Store<EndpointSlice>,
    /// Nodes (for labels).
    pub nodes: Store<Node>,
    /// Speaker leases in our namespace.
    pub leases: Store<Lease>,
}

/// A health change, for the log and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// Before.
    pub from: Health,
    /// Now.
    pub to: Health,
}

/// The announcer and its inputs.
pub struct Decision {
    node: String,
    lb_class: Option<String>,
    epoch: Instant,
    announcer: Announcer,
    l2: L2Config,
    ifaces: Interfaces,
    caches: Caches,
    demands: Demands,
    peers: Vec<NodeFacts>,
    /// Every speaker's MACs (from the leases) with its node.
    peer_macs: BTreeMap<MacAddr, String>,
    /// Our own ports' MACs.
    own_macs: BTreeSet<MacAddr>,
    /// The health last reported, to log its transitions.
    health: Health,
    /// The pools and how each is announced: IPs of pools without `l2` are not ours to ARP for.
    pools: Config,
    /// Heartbeat failure detection (speaker/heartbeat).
    heartbeat: HeartbeatView,
}

impl Decision {
    /// A decision for `params.node` that owns nothing yet.
    pub fn new(
        params: AnnouncerParams,
        lb_class: Option<String>,
        ifaces: Interfaces,
        caches: Caches,
    ) -> Self {
        let l2 = L2Config::default();
        let mut announcer = Announcer::new(params);
        announcer.set_garp(l2.garp.params());
        Decision {
            node: announcer.params().node.clone(),
            lb_class,
            epoch: Instant::now(),
            announcer,
            l2,
            ifaces,
            caches,
            demands: Demands::default(),
            peers: Vec::new(),
            peer_macs: BTreeMap::new(),
            own_macs: BTreeSet::new(),
            health: Health::Starting,
            pools: Config::default(),
            heartbeat: HeartbeatView::default(),
        }
    }

    /// The heartbeat view (failure detector and peers' heartbeat annotations).
    pub fn heartbeat(&self) -> &HeartbeatView {
        &self.heartbeat
    }

    /// The heartbeat view, to take what it has to send.
    pub fn heartbeat_mut(&mut self) -> &mut HeartbeatView {
        &mut self.heartbeat
    }

    /// An accepted heartbeat message arrived now; returns whether it changed a peer's standing.
    pub fn heartbeat_heard(&mut self, msg: &ferrolb_core::heartbeat::Message) -> bool {
        let now = self.now();
        self.heartbeat.received(msg, now)
    }

    /// Whether `node` counts as live now in the election (lease, heartbeat suspicion, health).
    pub fn is_live(&self, node: &str) -> bool {
        self.announcer.is_live(node, self.now())
    }

    /// `at` on the tokio clock.
    pub fn instant_of(&self, at: MonoTime) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + at.elapsed())
    }

    /// Now on the announcer's clock.
    pub fn now(&self) -> MonoTime {
        MonoTime::from_elapsed(self.epoch.elapsed())
    }

    /// When the announcer next needs a reconcile for a probe or hold deadline.
    pub fn next_wakeup(&self) -> Option<tokio::time::Instant> {
        self.announcer
            .next_wakeup()
            .map(|at| tokio::time::Instant::from_std(self.epoch + at.elapsed()))
    }

    /// The view the executor acts in.
    pub fn world(&self) -> World<'_> {
        World {
            ifaces: &self.ifaces,
            l2: &self.l2,
            services: &self.demands.services,
        }
    }

    /// The `l2` config in force.
    pub fn l2(&self) -> &L2Config {
        &self.l2
    }

    /// The node's interfaces.
    pub fn ifaces(&self) -> &Interfaces {
        &self.ifaces
    }

    /// The Service cache (for Event object references).
    pub fn services(&self) -> &Store<Service> {
        &self.caches.services
    }

    /// Services or EndpointSlices changed.
    pub fn refresh_demands(&mut self) {
        self.demands = cluster_view::demands(
            &self.caches.services.state(),
            &self.caches.slices.state(),
            self.lb_class.as_deref(),
        );
        cluster_view::retain_l2(&mut self.demands, &self.pools, &self.caches.services);
    }

    /// A new config's pools (for `pools[].announce`); returns whether anything changed, in which
    /// case the demands are recomputed.
    pub fn set_pools(&mut self, config: &Config) -> bool {
        if self.pools.pools == config.pools && self.pools.announce == config.announce {
            return false;
        }
        self.pools = config.clone();
        self.refresh_demands();
        true
    }

    /// Leases or Nodes changed.
    pub fn refresh_peers(&mut self) {
        let leases = self.caches.leases.state();
        self.peers = cluster_view::node_facts(&leases, &self.caches.nodes.state());
        self.peer_macs = cluster_view::speaker_macs(&leases);
        self.heartbeat.refresh_leases(&leases);
    }

    /// The node's interfaces changed.
    pub fn set_interfaces(&mut self, ifaces: Interfaces) {
        self.ifaces = ifaces;
    }

    /// Our ports (and so our MACs) changed.
    pub fn set_own_macs(&mut self, macs: impl IntoIterator<Item = MacAddr>) {
        self.own_macs = macs.into_iter().collect();
    }

    /// A new `l2` config; returns whether it differs from the one in force. The GARP policy
    /// reaches the announcer's defence re-sends here.
    pub fn set_l2(&mut self, l2: L2Config) -> bool {
        if l2 == self.l2 {
            return false;
        }
        self.announcer.set_garp(l2.garp.params());
        self.l2 = l2;
        true
    }

    /// Our lease renewal finished.
    pub fn renewed(&mut self, result: &RenewResult) {
        let now = self.now();
        match result {
            RenewResult::Ok(written) => {
                self.announcer.set_own_lease_duration(*written);
                self.announcer.renew_succeeded(now);
            }
            RenewResult::Failed(_) => self.announcer.renew_failed(now),
        }
    }

    /// Who `mac` is, from the leases and our own ports.
    pub fn claimant(&self, mac: MacAddr) -> Claimant<'_> {
        if self.own_macs.contains(&mac) {
            Claimant::Ourselves
        } else if let Some(node) = self.peer_macs.get(&mac) {
            if *node == self.node {
                Claimant::Ourselves
            } else {
                Claimant::Speaker(node)
            }
        } else {
            Claimant::Foreign
        }
    }

    /// `mac` claimed `ip` on the wire.
    pub fn claim(&mut self, ip: IpAddr, mac: MacAddr) -> Vec<Action> {
        let now = self.now();
        let claimant = match self.claimant(mac) {
            Claimant::Ourselves => return Vec::new(),
            Claimant::Foreign => Claimant::Foreign,
            Claimant::Speaker(node) => {
                let node = node.to_string();
                // Wire evidence of life: cancels a heartbeat suspicion (the cancel rule).
                self.heartbeat.evidence_of_life(&node, now);
                return self
                    .announcer
                    .claim_seen(ip, mac, Claimant::Speaker(&node), now);
            }
        };
        self.announcer.claim_seen(ip, mac, claimant, now)
    }

    /// The lease watch failed.
    pub fn lease_watch_failed(&mut self) {
        let now = self.now();
        self.announcer.watch_failed(now);
    }

    /// A lease watch event (only for speaker leases).
    pub fn lease_event(&mut self, ev: &watcher::Event<Lease>) {
        let now = self.now();
        match ev {
            watcher::Event::Apply(l) | watcher::Event::InitApply(l) => {
                if let Some(node) = l.metadata.name.as_deref().and_then(node_of_lease) {
                    self.announcer
                        .lease_seen(node, &cluster_view::snapshot(l), now);
                    if matches!(ev, watcher::Event::Apply(_)) {
                        // A write to its lease while we suspect it: the peer lives (we merely
                        // stopped hearing it); judge it by its lease alone again.
                        self.heartbeat.evidence_of_life(node, now);
                    }
                }
            }
            watcher::Event::Delete(l) => {
                if let Some(node) = l.metadata.name.as_deref().and_then(node_of_lease) {
                    self.announcer.lease_gone(node);
                    self.heartbeat.forget(node);
                }
            }
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                // Leases deleted while we were disconnected produced no Delete event.
                let present: BTreeSet<String> = self
                    .caches
                    .leases
                    .state()
                    .iter()
                    .filter_map(|l| l.metadata.name.clone())
                    .collect();
                for peer in &self.peers {
                    if !present.contains(&lease_name(&peer.name)) {
                        self.announcer.lease_gone(&peer.name);
                    }
                }
            }
        }
        // The reflector shows a (re)list's leases in the store only once it is complete
        // (InitDone); until then the peers and speaker MACs read from it are empty (first list)
        // or stale. Counting the watch as working before that let a freshly started speaker
        // elect itself against an empty peer list and take a peer's answer to its RFC 5227
        // probe for a foreign host's, holding the IP back for the foreign hold while the peer
        // yielded it: a 30 s black-out after a restart.
        if !matches!(ev, watcher::Event::Init | watcher::Event::InitApply(_)) {
            self.announcer.watch_ok(now);
        }
        self.refresh_peers();
    }

    /// This node's facts from local knowledge (its lease in the cache may lag its interfaces).
    fn node_list(&self) -> Vec<NodeFacts> {
        let mut nodes: Vec<NodeFacts> = self
            .peers
            .iter()
            .filter(|n| n.name != self.node)
            .cloned()
            .collect();
        let labels = self
            .caches
            .nodes
            .state()
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node.as_str()))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        nodes.push(NodeFacts {
            name: self.node.clone(),
            labels,
            subnets: self.ifaces.subnets(&self.l2),
            live: true,
        });
        nodes
    }

    /// Runs the election at now; returns what to do and a health change, if any.
    pub fn reconcile(&mut self) -> (Vec<Action>, Option<HealthChange>) {
        let now = self.now();
        let nodes = self.node_list();
        let announcer = &self.announcer;
        self.heartbeat
            .set_ring(&self.node, |n| announcer.is_lease_live(n, now));
        self.announcer.set_suspects(self.heartbeat.suspected(now));
        let actions =
            self.announcer
                .reconcile(now, &nodes, &self.demands.demands, &self.l2.node_selector);
        let health = self.announcer.health(now);
        let change = (health != self.health).then_some(HealthChange {
            from: self.health,
            to: health,
        });
        if let Some(change) = change {
            // Degraded mode changes what this node may do; say when it starts and ends.
            let (renewed, watched) = self.announcer.last_api_contact(now);
            tracing::info!(from = ?change.from, to = ?change.to, ?renewed, ?watched, "API health changed");
            self.health = health;
        }
        (actions, change)
    }

    /// The health last computed.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Graceful stop: the announcer hands everything back and does nothing afterwards.
    pub fn shutdown(&mut self) -> Vec<IpAddr> {
        self.announcer.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decision() -> Decision {
        Decision::new(
            AnnouncerParams::new("n1", Duration::from_secs(3)),
            None,
            Interfaces::default(),
            Caches {
                services: kube::runtime::reflector::store().0,
                slices: kube::runtime::reflector::store().0,
                nodes: kube::runtime::reflector::store().0,
                leases: kube::runtime::reflector::store().0,
            },
        )
    }

    /// The announcer's defence re-sends used to stay at the default GARP interval whatever
    /// `l2.garp` said: a config change must reach the announcer.
    #[test]
    fn a_new_l2_garp_policy_reaches_the_announcer() {
        let mut d = decision();
        let mut l2 = L2Config::default();
        l2.garp.interval = Duration::from_secs(3);
        l2.garp.burst = 2;
        assert!(d.set_l2(l2.clone()));
        assert_eq!(d.announcer.params().garp, l2.garp.params());
        assert!(!d.set_l2(l2), "unchanged config is no change");
    }

    #[test]
    fn claims_are_told_apart_by_mac() {
        let mut d = decision();
        let own = MacAddr([2, 0, 0, 0, 0, 1]);
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        d.set_own_macs([own]);
        d.peer_macs.insert(peer, "n2".into());
        d.peer_macs.insert(MacAddr([2, 0, 0, 0, 0, 3]), "n1".into());
        assert_eq!(d.claimant(own), Claimant::Ourselves);
        assert_eq!(
            d.claimant(MacAddr([2, 0, 0, 0, 0, 3])),
            Claimant::Ourselves,
            "our own MAC from our lease"
        );
        assert_eq!(d.claimant(peer), Claimant::Speaker("n2"));
        assert_eq!(d.claimant(MacAddr([2, 0, 0, 0, 0, 9])), Claimant::Foreign);
    }
}
