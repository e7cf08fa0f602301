//! The speaker's BGP side: one peer task per configured peer whose `nodeSelector` matches this
//! node, each told the table the pure planner (`ferrolb_core::bgp::plan`) computes from the
//! speaker's caches. Config and Service changes become new tables (incremental UPDATEs); only a
//! change to a peer's own settings restarts its session. The wiring calls [`BgpManager::mark_dirty`]
//! when an input changed, [`BgpManager::reconcile`] after every loop turn, and
//! [`BgpManager::shutdown`] on SIGTERM.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::bgp::{
    degraded_table, peers_advertising, plan, router_id, session_params, NodeInfo, PeerRoutes,
};
use ferrolb_core::config::{BgpPeer, Config, PeerPassword};
use ferrolb_core::election::Health;
use ferrolb_core::service::ServiceKey;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use tokio::sync::{mpsc::error::TrySendError, oneshot};

use super::metrics::{BgpMetrics, Exported};
use super::peer::{spawn_peer, spawn_peer_with_key, PeerCommand, PeerHandle, PeerSettings};
use super::view::service_infos;
use crate::events::EventPublisher;
use crate::speaker::interfaces::Interfaces;
use crate::speaker::reasons::{publish_service_event, EventReason, ADVERTISE_ACTION};

/// How long a graceful stop waits for every peer's Cease to be written.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The caches the planner reads.
pub struct BgpCaches {
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices.
    pub slices: Store<EndpointSlice>,
    /// Nodes (for this node's labels).
    pub nodes: Store<Node>,
}

/// One running peer task and what it was last told.
struct RunningPeer {
    /// The peer's config when its task started; any change restarts the session.
    config: BgpPeer,
    router_id: Ipv4Addr,
    handle: PeerHandle,
    /// The table last handed to the task.
    table: PeerRoutes,
    exported: Exported,
}

/// Every BGP session of this node.
pub struct BgpManager {
    node: String,
    lb_class: Option<String>,
    config: Config,
    caches: BgpCaches,
    secrets: Api<Secret>,
    secrets_namespace: String,
    events: Arc<EventPublisher>,
    metrics: BgpMetrics,
    peers: BTreeMap<String, RunningPeer>,
    dirty: bool,
    health: Health,
    /// Per (Service, IP), the peers it was last reported as advertised to.
    reported: BTreeMap<(ServiceKey, IpAddr), Vec<String>>,
}

impl BgpManager {
    /// A manager with no peers yet; the first [`BgpManager::set_config`] starts them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        lb_class: Option<String>,
        caches: BgpCaches,
        secrets: Api<Secret>,
        secrets_namespace: String,
        events: Arc<EventPublisher>,
        metrics: BgpMetrics,
    ) -> Self {
        Self {
            node,
            lb_class,
            config: Config::default(),
            caches,
            secrets,
            secrets_namespace,
            events,
            metrics,
            peers: BTreeMap::new(),
            dirty: true,
            health: Health::Starting,
            reported: BTreeMap::new(),
        }
    }

    /// A new valid config is in force.
    pub fn set_config(&mut self, config: &Config) {
        if self.config != *config {
            self.config = config.clone();
            self.dirty = true;
        }
    }

    /// Services, EndpointSlices or Nodes changed: plan again at the next reconcile.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Brings sessions and tables in line with the config and caches, and exports metrics.
    pub fn reconcile(&mut self, health: Health, ifaces: &Interfaces) {
        if self.dirty || health != self.health {
            self.health = health;
            self.dirty = false;
            self.plan_and_send(ifaces);
        }
        for (name, p) in &mut self.peers {
            let status = p.handle.status.borrow().clone();
            self.metrics.update(name, &status, &mut p.exported);
        }
    }

    fn plan_and_send(&mut self, ifaces: &Interfaces) {
        let infos = service_infos(
            &self.caches.services.state(),
            &self.caches.slices.state(),
            self.lb_class.as_deref(),
            &self.node,
            &self.config,
        );
        let labels = self
            .caches
            .nodes
            .get(&reflector::ObjectRef::new(&self.node))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        let only: Vec<_> = infos.iter().map(|(_, i)| i.clone()).collect();
        let planned = plan(&self.config, NodeInfo { labels: &labels }, &only);

        // Peers gone from the plan (removed, or their selector no longer matches this node)
        // and peers whose own settings changed: stop their sessions.
        let stale: Vec<String> = self
            .peers
            .iter()
            .filter(|(name, running)| {
                match self.config.bgp.peers.iter().find(|p| &p.name == *name) {
                    Some(cfg) => {
                        !planned.contains_key(*name) || !same_session(cfg, &running.config)
                    }
                    None => true,
                }
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(p) = self.peers.remove(&name) {
                tracing::info!(peer = %name, "BGP peer removed or changed; closing its session");
                self.metrics.forget(&name, &p.exported);
                stop_peer(p.handle, "peer configuration changed".to_string());
            }
        }

        let mut sent: BTreeMap<String, PeerRoutes> = BTreeMap::new();
        let mut dead = Vec::new();
        for (name, want) in planned {
            let Some(cfg) = self.config.bgp.peers.iter().find(|p| p.name == name) else {
                continue;
            };
            if !self.peers.contains_key(&name) {
                let running = self.start_peer(cfg, ifaces);
                self.peers.insert(name.clone(), running);
            }
            let Some(p) = self.peers.get_mut(&name) else {
                continue;
            };
            let table = if self.health == Health::Degraded {
                degraded_table(&p.table, want)
            } else {
                want
            };
            if table != p.table {
                match p
                    .handle
                    .commands
                    .try_send(PeerCommand::SetRoutes(table.clone()))
                {
                    Ok(()) => p.table = table,
                    Err(TrySendError::Full(_)) => self.dirty = true,
                    Err(TrySendError::Closed(_)) => {
                        tracing::warn!(peer = %name, "BGP peer task ended; it is restarted");
                        self.dirty = true;
                        dead.push(name);
                        continue;
                    }
                }
            }
            sent.insert(name, p.table.clone());
        }
        for name in dead {
            if let Some(p) = self.peers.remove(&name) {
                self.metrics.forget(&name, &p.exported);
            }
        }
        self.report(&infos, &sent);
    }

    fn start_peer(&self, cfg: &BgpPeer, ifaces: &Interfaces) -> RunningPeer {
        let fallback = fallback_router_id(cfg, ifaces, &self.node);
        let rid = router_id(&self.config.bgp, cfg, fallback);
        let settings = PeerSettings {
            remote: SocketAddr::new(cfg.address, cfg.port),
            source: cfg.source_address,
            md5_key: None,
            multihop: cfg.ebgp_multihop,
            session: session_params(cfg, rid, &self.node),
        };
        tracing::info!(peer = %cfg.name, address = %cfg.address, asn = cfg.asn, router_id = %rid, "starting BGP session");
        let handle = match &cfg.password {
            None => spawn_peer(settings),
            Some(PeerPassword::Inline(key)) => spawn_peer(PeerSettings {
                md5_key: Some(key.as_bytes().to_vec()),
                ..settings
            }),
            Some(PeerPassword::Secret { name, key }) => spawn_peer_with_key(
                settings,
                read_secret_key(
                    self.secrets.clone(),
                    format!("{}/{name}", self.secrets_namespace),
                    name.clone(),
                    key.clone(),
                    cfg.name.clone(),
                ),
            ),
        };
        RunningPeer {
            config: cfg.clone(),
            router_id: rid,
            handle,
            table: PeerRoutes::new(),
            exported: Exported::default(),
        }
    }

    /// Publishes an Event per (Service, IP) whose set of peers changed.
    fn report(
        &mut self,
        infos: &[(ServiceKey, ferrolb_core::bgp::ServiceInfo)],
        sent: &BTreeMap<String, PeerRoutes>,
    ) {
        let mut now: BTreeMap<(ServiceKey, IpAddr), Vec<String>> = BTreeMap::new();
        for (key, info) in infos {
            for ip in &info.ips {
                let peers = peers_advertising(sent, *ip);
                if !peers.is_empty() {
                    now.insert((key.clone(), *ip), peers);
                }
            }
        }
        for ((key, ip), peers) in &now {
            if self.reported.get(&(key.clone(), *ip)) != Some(peers) {
                let note = format!(
                    "advertising {ip} from node {} to BGP peers {}",
                    self.node,
                    peers.join(", ")
                );
                self.publish(key, EventReason::Advertising, note);
            }
        }
        let live: std::collections::BTreeSet<&ServiceKey> = infos.iter().map(|(k, _)| k).collect();
        for (key, ip) in self.reported.keys() {
            // A deleted Service cannot carry an Event any more.
            if !now.contains_key(&(key.clone(), *ip)) && live.contains(key) {
                let note = format!("no longer advertising {ip} from node {}", self.node);
                self.publish(key, EventReason::AdvertisementWithdrawn, note);
            }
        }
        self.reported = now;
    }

    fn publish(&self, key: &ServiceKey, reason: EventReason, note: String) {
        publish_service_event(
            &self.events,
            &self.caches.services,
            key,
            reason,
            ADVERTISE_ACTION,
            note,
        );
    }

    /// Graceful stop: every peer gets an empty table (explicit withdrawals), then a Cease /
    /// Administrative Shutdown, and the connection is closed. Waits up to [`STOP_GRACE`].
    pub async fn shutdown(&mut self) {
        let message = format!("FerroLB speaker on node {} is shutting down", self.node);
        let mut done = Vec::new();
        for (name, p) in std::mem::take(&mut self.peers) {
            let (tx, rx) = oneshot::channel();
            let commands = p.handle.commands.clone();
            let _ = commands.try_send(PeerCommand::SetRoutes(PeerRoutes::new()));
            if commands
                .try_send(PeerCommand::Stop(message.clone(), tx))
                .is_ok()
            {
                done.push((name, rx));
            }
        }
        let all = futures::future::join_all(done.into_iter().map(|(name, rx)| async move {
            if rx.await.is_err() {
                tracing::debug!(peer = %name, "BGP peer task ended before its stop was confirmed");
            }
        }));
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            tracing::warn!("not every BGP peer confirmed its Cease within {STOP_GRACE:?}");
        }
    }

    /// The router IDs in use, by peer (for logs and tests).
    pub fn router_ids(&self) -> BTreeMap<String, Ipv4Addr> {
        self.peers
            .iter()
            .map(|(n, p)| (n.clone(), p.router_id))
            .collect()
    }
}

/// Whether two configs of one peer give the same session. The `nodeSelector` only decides
/// whether this node dials the peer at all, so editing it (while it still matches) must not
/// reset the session.
fn same_session(a: &BgpPeer, b: &BgpPeer) -> bool {
    let strip = |p: &BgpPeer| BgpPeer {
        node_selectors: Vec::new(),
        ..p.clone()
    };
    strip(a) == strip(b)
}

/// Closes a peer's session in the background: withdraw, Cease, close.
fn stop_peer(handle: PeerHandle, message: String) {
    tokio::spawn(async move {
        let (tx, rx) = oneshot::channel();
        let _ = handle
            .commands
            .send(PeerCommand::SetRoutes(PeerRoutes::new()))
            .await;
        if handle
            .commands
            .send(PeerCommand::Stop(message, tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(STOP_GRACE, rx).await;
        }
    });
}

/// The BGP identifier when the config sets none: the IPv4 source address the kernel would use
/// toward the peer (a UDP `connect` sends nothing), else the node's first IPv4 address, else
/// an address derived from the node name (so it is at least stable and distinct per node).
fn fallback_router_id(peer: &BgpPeer, ifaces: &Interfaces, node: &str) -> Ipv4Addr {
    if let Some(IpAddr::V4(src)) = peer.source_address {
        return src;
    }
    if peer.address.is_ipv4() {
        let probe = UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| {
                s.connect(SocketAddr::new(peer.address, peer.port))?;
                s.local_addr()
            })
            .ok();
        if let Some(SocketAddr::V4(a)) = probe {
            return *a.ip();
        }
    }
    let first = ifaces
        .0
        .iter()
        .flat_map(|i| i.networks.iter())
        .find_map(|n| match n.ip() {
            IpAddr::V4(a) if !a.is_loopback() => Some(a),
            _ => None,
        });
    first.unwrap_or_else(|| {
        let h = node
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        tracing::warn!(%node, "no IPv4 address for a BGP router ID; set bgp.routerID");
        Ipv4Addr::from(0x0a00_0000 | (h & 0x00ff_ffff))
    })
}

/// Reads a peer's TCP MD5 key from a Secret, retrying (1 s doubling to 30 s) until it exists
/// and holds the key; each failure is logged naming the Secret, the key and the peer.
async fn read_secret_key(
    api: Api<Secret>,
    shown: String,
    name: String,
    key: String,
    peer: String,
) -> Vec<u8> {
    let mut delay = Duration::from_secs(1);
    loop {
        match api.get(&name).await {
            Ok(secret) => {
                let value = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&key))
                    .map(|b| b.0.clone())
                    .or_else(|| {
                        secret
                            .string_data
                            .as_ref()
                            .and_then(|d| d.get(&key))
                            .map(|s| s.as_bytes().to_vec())
                    });
                match value {
                    Some(v) if !v.is_empty() => return v,
                    _ => {
                        tracing::warn!(%peer, secret = %shown, %key, "BGP passwordSecret: the Secret has no such key (or it is empty); retrying")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%peer, secret = %shown, %key, error = %e, "BGP passwordSecret: cannot read the Secret; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::config::{parse_config_map_data, NATIVE_KEY};

    #[test]
    fn only_a_peers_own_session_settings_restart_it() {
        let data = [(
            NATIVE_KEY.to_string(),
            "pools: []\nbgp: {myASN: 64512, peers: [{name: r, address: 192.0.2.1, asn: 64513, nodeSelector: {rack: a}}]}\n".to_string(),
        )]
        .into();
        // A fixed test config: a parse failure is a broken test, so panicking is right.
        let c = parse_config_map_data(&data).unwrap().config;
        let peer = c.bgp.peers[0].clone();
        let mut other_selector = peer.clone();
        other_selector.node_selectors.clear();
        assert!(same_session(&peer, &other_selector));
        let mut other_hold = peer.clone();
        other_hold.hold_time = Duration::from_secs(3);
        assert!(!same_session(&peer, &other_hold));
        let mut other_key = peer.clone();
        other_key.password = Some(PeerPassword::Inline("x".into()));
        assert!(!same_session(&peer, &other_key));
    }
}
