//! `ferrolb speaker`: the per-node agent. It keeps its own lease alive, watches peers' leases,
//! Services, EndpointSlices, Nodes and the pool ConfigMap, asks the pure
//! [`Announcer`](ferrolb_core::election::Announcer) which IPs this node must announce, and
//! answers ARP for exactly those on the interface whose subnet holds each IP.
//!
//! One task runs the loop; ARP is answered by per-interface threads from a shared table, so
//! neither a slow API server nor a busy loop delays a reply.

pub mod arp_io;
pub mod arp_socket;
pub mod bgp;
pub mod cluster_view;
pub mod interfaces;
pub mod lease;
pub mod metrics;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_core::arp::{GarpParams, MacAddr};
use ferrolb_core::config::{parse_config_map_data, L2Config};
use ferrolb_core::election::{
    lease_name, node_of_lease, Action, Announcer, AnnouncerParams, Health, MonoTime, NodeFacts,
    StopReason, LEASE_PREFIX,
};
use ferrolb_core::service::ServiceKey;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::SpeakerArgs;
use crate::http_server::{self, BindError, Readiness};
use crate::kube_client::{self, ClientError};
use arp_io::{ArpIo, Claim, GarpSender};
use cluster_view::Demands;
use interfaces::{InterfaceError, Interfaces};
use lease::RenewResult;
use metrics::{AnnounceLabels, SpeakerMetrics};

/// How often the announcement is recomputed even without news: peers' leases expire with time.
const TICK: Duration = Duration::from_millis(100);
/// At most one conflict Event per IP in this window; the metric counts every claim.
const CONFLICT_EVENT_EVERY: Duration = Duration::from_secs(10);
/// How long to listen for an answer to the RFC 5227 probe sent before announcing an IP. A host
/// using the IP answers within a round trip; this is short enough to add little to failover.
const PROBE_WAIT: Duration = Duration::from_millis(100);
/// How long to hold off an IP another host uses before probing it again.
const FOREIGN_HOLD: Duration = Duration::from_secs(30);

/// Why the speaker stopped with an error.
#[derive(Debug, Error)]
pub enum SpeakerError {
    /// No cluster to talk to.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The metrics address is taken.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Interfaces cannot be listed.
    #[error(transparent)]
    Interfaces(#[from] InterfaceError),
    /// A watch stream ended, which kube-runtime watchers never do on their own.
    #[error("the {0} watch stream ended unexpectedly")]
    StreamEnded(&'static str),
}

type WatchItem<K> = Result<watcher::Event<K>, watcher::Error>;

/// Everything the loop owns.
struct Speaker {
    node: String,
    lb_class: Option<String>,
    config_map: String,
    epoch: Instant,
    announcer: Announcer,
    l2: L2Config,
    ifaces: Interfaces,
    arp: ArpIo,
    garp: GarpSender,
    garp_tasks: BTreeMap<IpAddr, JoinHandle<()>>,
    /// Elected IPs whose RFC 5227 probe is out: announced at the deadline unless a foreign host
    /// answers first.
    probing: BTreeMap<IpAddr, tokio::time::Instant>,
    /// Elected IPs another host uses: not announced, probed again at the deadline.
    foreign: BTreeMap<IpAddr, tokio::time::Instant>,
    /// MACs of every speaker (from the leases, and our own ports).
    speaker_macs: BTreeSet<MacAddr>,
    announced_labels: BTreeMap<IpAddr, Vec<AnnounceLabels>>,
    /// The interface each announced IP is answered on.
    announced_on: BTreeMap<IpAddr, String>,
    last_conflict_event: BTreeMap<IpAddr, Instant>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    demands: Demands,
    peers: Vec<NodeFacts>,
    published_tx: watch::Sender<BTreeMap<String, String>>,
    events: Arc<crate::events::EventPublisher>,
    metrics: SpeakerMetrics,
    ready: Readiness,
    /// The health last reported, to log its transitions.
    health: Health,
}

fn garp_params(l2: &L2Config) -> GarpParams {
    GarpParams {
        burst: l2.garp.burst,
        interval: l2.garp.interval,
        refresh: l2.garp.refresh,
    }
}

impl Speaker {
    fn now(&self) -> MonoTime {
        MonoTime::from_elapsed(self.epoch.elapsed())
    }

    fn refresh_demands(&mut self) {
        self.demands = cluster_view::demands(
            &self.services.state(),
            &self.slices.state(),
            self.lb_class.as_deref(),
        );
        // Services can join or leave an IP that is already announced (shared IPs).
        let announced: Vec<(IpAddr, String)> = self
            .announced_on
            .iter()
            .map(|(ip, i)| (*ip, i.clone()))
            .collect();
        for (ip, iface) in announced {
            self.sync_announcing_gauge(ip, &iface);
        }
    }

    /// Makes `ferrolb_speaker_announcing` show exactly the Services that use `ip` now.
    fn sync_announcing_gauge(&mut self, ip: IpAddr, iface: &str) {
        let wanted: Vec<AnnounceLabels> = self
            .demands
            .services
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|key| AnnounceLabels {
                service: key.to_string(),
                ip: ip.to_string(),
                interface: iface.to_string(),
            })
            .collect();
        let current = self.announced_labels.entry(ip).or_default();
        for gone in current.iter().filter(|l| !wanted.contains(l)) {
            self.metrics.announcing.remove(gone);
        }
        for l in &wanted {
            self.metrics.announcing.get_or_create(l).set(1);
        }
        *current = wanted;
    }

    fn refresh_peers(&mut self) {
        let leases = self.leases.state();
        self.peers = cluster_view::node_facts(&leases, &self.nodes.state());
        self.speaker_macs = cluster_view::speaker_macs(&leases);
        self.speaker_macs.extend(self.arp.port_macs());
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

    fn sync_interfaces(&mut self) {
        let wanted: Vec<(u32, String, MacAddr)> = self
            .ifaces
            .eligible(&self.l2)
            .filter_map(|i| Some((i.index, i.name.clone(), i.mac?)))
            .collect();
        self.arp.sync_ports(&wanted);
        self.garp = self.arp.garp_sender();
        let macs: Vec<String> = self
            .arp
            .port_macs()
            .iter()
            .map(ToString::to_string)
            .collect();
        self.speaker_macs.extend(self.arp.port_macs());
        let published: BTreeMap<String, String> = [
            (
                cluster_view::SUBNETS_ANNOTATION.to_string(),
                interfaces::subnets_annotation(&self.ifaces.subnets(&self.l2)),
            ),
            (cluster_view::MACS_ANNOTATION.to_string(), macs.join(",")),
        ]
        .into();
        self.published_tx.send_if_modified(|cur| {
            let changed = *cur != published;
            *cur = published.clone();
            changed
        });
    }

    async fn reconcile(&mut self) {
        let now = self.now();
        let nodes = self.node_list();
        let selector = self.l2.node_selector.clone();
        let actions = self
            .announcer
            .reconcile(now, &nodes, &self.demands.demands, &selector);
        self.carry_out(actions).await;
        let health = self.announcer.health(now);
        if health != self.health {
            // Degraded mode changes what this node may do; say when it starts and ends.
            let (renewed, watched) = self.announcer.last_api_contact(now);
            tracing::info!(from = ?self.health, to = ?health, ?renewed, ?watched, "API health changed");
            self.health = health;
        }
        self.ready.set(health == Health::Healthy);
        self.metrics
            .degraded
            .set(i64::from(health == Health::Degraded));
    }

    async fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start { ip } => self.begin_probe(ip),
                Action::Stop { ip, reason } => self.stop(ip, reason),
                Action::ResendGarp { ip } => {
                    if let IpAddr::V4(v4) = ip {
                        self.garp.send(v4);
                    }
                }
                Action::Conflict { ip, mac } => self.conflict(ip, mac).await,
            }
        }
    }

    /// Elected for `ip`: ask the LAN whether someone already uses it before announcing.
    fn begin_probe(&mut self, ip: IpAddr) {
        let IpAddr::V4(v4) = ip else {
            tracing::warn!(%ip, "cannot announce an IPv6 address: NDP is not implemented");
            return;
        };
        let Some(iface) = self.ifaces.for_ip(v4, &self.l2).cloned() else {
            tracing::error!(%ip, "elected for an IP no eligible interface's subnet holds");
            return;
        };
        self.arp.probe(v4, iface.index);
        self.probing
            .insert(ip, tokio::time::Instant::now() + PROBE_WAIT);
    }

    /// The next probe deadline or foreign hold-down expiry.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        self.probing
            .values()
            .chain(self.foreign.values())
            .min()
            .copied()
    }

    async fn on_timer(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<IpAddr> = self
            .probing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in due {
            self.probing.remove(&ip);
            if self.announcer.is_announcing(ip) {
                self.start(ip).await;
            }
        }
        let retry: Vec<IpAddr> = self
            .foreign
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in retry {
            self.foreign.remove(&ip);
            if self.announcer.is_announcing(ip) {
                tracing::info!(%ip, "probing an IP another host used, to see whether it is free now");
                self.begin_probe(ip);
            }
        }
    }

    /// A host that is not a speaker claims `ip`: it was there first (or an operator configured
    /// it by hand). Never fight it: stop answering, say so, and look again later.
    async fn foreign_claim(&mut self, ip: IpAddr, mac: MacAddr) {
        if !self.announcer.is_announcing(ip) || self.foreign.contains_key(&ip) {
            return;
        }
        if let IpAddr::V4(v4) = ip {
            self.arp.withdraw(v4);
            self.metrics
                .foreign_claims
                .get_or_create(&metrics::IpLabels { ip: v4.to_string() })
                .inc();
        }
        self.probing.remove(&ip);
        if let Some(task) = self.garp_tasks.remove(&ip) {
            task.abort();
        }
        self.announced_on.remove(&ip);
        for l in self.announced_labels.remove(&ip).unwrap_or_default() {
            self.metrics.announcing.remove(&l);
        }
        self.foreign
            .insert(ip, tokio::time::Instant::now() + FOREIGN_HOLD);
        tracing::warn!(%ip, %mac, "another host (not a speaker) uses this IP; not announcing it");
        let services = self.demands.services.get(&ip).cloned().unwrap_or_default();
        let note = format!("IP {ip} is already used by another host ({mac}) on the LAN; node {} does not announce it and will check again in {}s", self.node, FOREIGN_HOLD.as_secs());
        self.publish(&services, true, "IPInUseByOtherHost", note);
    }

    async fn start(&mut self, ip: IpAddr) {
        let IpAddr::V4(v4) = ip else { return };
        let Some(iface) = self.ifaces.for_ip(v4, &self.l2).cloned() else {
            tracing::error!(%ip, "elected for an IP no eligible interface's subnet holds");
            return;
        };
        self.arp.announce(v4, iface.index);
        self.metrics.takeovers.inc();
        let sender = self.garp.clone();
        let schedule = garp_params(&self.l2).schedule();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for at in schedule {
                tokio::time::sleep_until(started + at).await;
                sender.send(v4);
            }
        });
        if let Some(old) = self.garp_tasks.insert(ip, task) {
            old.abort();
        }
        let services = self.demands.services.get(&ip).cloned().unwrap_or_default();
        self.announced_on.insert(ip, iface.name.clone());
        self.sync_announcing_gauge(ip, &iface.name);
        tracing::info!(%ip, interface = %iface.name, services = ?services.iter().map(ToString::to_string).collect::<Vec<_>>(), "announcing");
        let note = format!("announcing {ip} from node {} on {}", self.node, iface.name);
        self.publish(&services, false, "Announcing", note);
    }

    fn stop(&mut self, ip: IpAddr, reason: StopReason) {
        if let IpAddr::V4(v4) = ip {
            self.arp.withdraw(v4);
            self.arp.unwatch(v4);
        }
        self.probing.remove(&ip);
        self.foreign.remove(&ip);
        if let Some(task) = self.garp_tasks.remove(&ip) {
            task.abort();
        }
        self.announced_on.remove(&ip);
        for l in self.announced_labels.remove(&ip).unwrap_or_default() {
            self.metrics.announcing.remove(&l);
        }
        self.metrics.withdrawals.inc();
        match reason {
            StopReason::ClaimedBy(mac) => {
                tracing::warn!(%ip, %mac, "another MAC claims this IP while we cannot reach the API server; yielding")
            }
            StopReason::NotElected => tracing::info!(%ip, "another node now announces this IP"),
            StopReason::NotDemanded => tracing::info!(%ip, "no Service uses this IP any more"),
        }
    }

    async fn conflict(&mut self, ip: IpAddr, mac: MacAddr) {
        if let IpAddr::V4(v4) = ip {
            self.metrics.conflict(v4);
        }
        let due = self
            .last_conflict_event
            .get(&ip)
            .is_none_or(|t| t.elapsed() >= CONFLICT_EVENT_EVERY);
        if due {
            self.last_conflict_event.insert(ip, Instant::now());
            tracing::warn!(%ip, %mac, "another MAC claims an IP this node announces; re-announcing");
            let services = self.demands.services.get(&ip).cloned().unwrap_or_default();
            let note = format!(
                "{mac} also claims {ip}, which node {} announces; re-sending gratuitous ARP",
                self.node
            );
            self.publish(&services, true, "IPConflict", note);
        }
    }

    fn publish(&self, services: &[ServiceKey], warning: bool, reason: &'static str, note: String) {
        for key in services {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(key.namespace.clone()),
                name: Some(key.name.clone()),
                uid: self
                    .services
                    .get(&reflector::ObjectRef::new(&key.name).within(&key.namespace))
                    .and_then(|s| s.metadata.uid.clone()),
                ..ObjectReference::default()
            };
            let events = self.events.clone();
            let notice = crate::events::Notice {
                warning,
                reason,
                action: "Announce",
                note: note.clone(),
            };
            tokio::spawn(async move {
                if let Err(e) = events.publish(&notice, &reference).await {
                    tracing::debug!(error = %e, "could not publish an Event");
                }
            });
        }
    }

    fn on_config(&mut self, cm: Option<&ConfigMap>) {
        let l2 = match cm {
            None => L2Config::default(),
            Some(cm) => match parse_config_map_data(&cm.data.clone().unwrap_or_default()) {
                Ok(parsed) => parsed.config.l2,
                Err(errors) => {
                    tracing::error!(configmap = %self.config_map, errors = %errors, "pool config rejected; the last good config stays in force");
                    return;
                }
            },
        };
        if l2 != self.l2 {
            tracing::info!(interfaces = ?l2.interfaces, garp = ?l2.garp, "loaded l2 config");
            self.l2 = l2;
            self.sync_interfaces();
        }
    }

    fn on_lease_event(&mut self, ev: &watcher::Event<Lease>) {
        let now = self.now();
        match ev {
            watcher::Event::Apply(l) | watcher::Event::InitApply(l) => {
                if let Some(node) = l.metadata.name.as_deref().and_then(node_of_lease) {
                    self.announcer
                        .lease_seen(node, &cluster_view::snapshot(l), now);
                }
            }
            watcher::Event::Delete(l) => {
                if let Some(node) = l.metadata.name.as_deref().and_then(node_of_lease) {
                    self.announcer.lease_gone(node);
                }
            }
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                // Leases deleted while we were disconnected produced no Delete event.
                let present: BTreeSet<String> = self
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
        // probe for a foreign host's, holding the IP back for FOREIGN_HOLD while the peer
        // yielded it: a 30 s black-out after a restart.
        if !matches!(ev, watcher::Event::Init | watcher::Event::InitApply(_)) {
            self.announcer.watch_ok(now);
        }
        self.refresh_peers();
    }

    async fn graceful_stop(&mut self) {
        let ips = self.announcer.shutdown();
        self.probing.clear();
        self.foreign.clear();
        // Stop answering first, then release the lease: peers must never see us gone while we
        // still answer.
        self.arp.withdraw_all();
        for ip in ips {
            if let Some(t) = self.garp_tasks.remove(&ip) {
                t.abort();
            }
        }
        self.ready.set(false);
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn watched<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl Stream<Item = WatchItem<K>>)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store::<K>();
    (
        reader,
        reflector::reflector(writer, watcher(api, config))
            .backoff(crate::watch_backoff::WatchBackoff::default()),
    )
}

/// Runs the speaker until `shutdown`, then stops answering and releases its lease.
pub async fn run(args: SpeakerArgs, shutdown: CancellationToken) -> Result<(), SpeakerError> {
    let node = args.node_name.clone();
    let client = kube_client::connect(args.cluster.kubeconfig.as_deref(), "speaker", &node).await?;
    let mut registry = Registry::default();
    let metrics = SpeakerMetrics::register(&mut registry);
    let ready = Readiness::default();
    let bound = http_server::serve(
        args.metrics_addr,
        Arc::new(registry),
        ready.clone(),
        shutdown.clone(),
    )
    .await?;
    tracing::info!(%node, metrics = %bound, lease_duration = ?args.lease_duration, lease_renew = ?args.lease_renew, "speaker starting");

    let mut iface_rx = interfaces::monitor(shutdown.clone()).await?;
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<Claim>();
    let arp = ArpIo::new(claims_tx, metrics.clone());
    let ns = args.cluster.namespace.clone();
    let (services, svc_events) = watched(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let (slices, slice_events) = watched(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    );
    let (nodes, node_events) =
        watched(Api::<Node>::all(client.clone()), watcher::Config::default());
    let (leases, lease_events) = watched(
        Api::<Lease>::namespaced(client.clone(), &ns),
        watcher::Config::default(),
    );
    let cm_config =
        watcher::Config::default().fields(&format!("metadata.name={}", args.cluster.config_map));
    let mut cm_events = watcher(Api::<ConfigMap>::namespaced(client.clone(), &ns), cm_config)
        .backoff(crate::watch_backoff::WatchBackoff::default())
        .boxed();
    let (mut svc_events, mut slice_events, mut node_events, mut lease_events) = (
        svc_events.boxed(),
        slice_events.boxed(),
        node_events.boxed(),
        lease_events.boxed(),
    );

    let (published_tx, published_rx) = watch::channel(BTreeMap::new());
    let (renew_tx, mut renew_rx) = mpsc::unbounded_channel::<RenewResult>();
    let l2 = L2Config::default();
    let garp = arp.garp_sender();
    let mut sp = Speaker {
        announcer: Announcer::new(AnnouncerParams {
            node: node.clone(),
            lease_duration: args.lease_duration,
            garp: garp_params(&l2),
        }),
        node: node.clone(),
        lb_class: args.lb_class.clone(),
        config_map: format!("{ns}/{}", args.cluster.config_map),
        epoch: Instant::now(),
        l2,
        ifaces: iface_rx.borrow_and_update().clone(),
        arp,
        garp,
        garp_tasks: BTreeMap::new(),
        probing: BTreeMap::new(),
        foreign: BTreeMap::new(),
        speaker_macs: BTreeSet::new(),
        announced_labels: BTreeMap::new(),
        announced_on: BTreeMap::new(),
        last_conflict_event: BTreeMap::new(),
        services,
        slices,
        nodes,
        leases,
        demands: Demands::default(),
        peers: Vec::new(),
        published_tx,
        events: Arc::new(crate::events::EventPublisher::new(
            client.clone(),
            "ferrolb-speaker",
            node.clone(),
        )),
        metrics,
        ready,
        health: Health::Starting,
    };
    sp.sync_interfaces();
    let lease_task = lease::start(
        Api::<Lease>::namespaced(client.clone(), &ns),
        &node,
        args.lease_duration,
        args.lease_renew,
        published_rx,
        renew_tx,
        shutdown.clone(),
    );
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = loop {
        tokio::select! {
            // Shutdown first: other streams end during shutdown too, and that is not an error.
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            _ = tick.tick() => {}
            changed = iface_rx.changed() => {
                if changed.is_err() {
                    break Err(SpeakerError::StreamEnded("interface"));
                }
                sp.ifaces = iface_rx.borrow_and_update().clone();
                tracing::info!(subnets = %interfaces::subnets_annotation(&sp.ifaces.subnets(&sp.l2)), "interfaces changed");
                sp.sync_interfaces();
            }
            Some(r) = renew_rx.recv() => {
                let now = sp.now();
                match r {
                    RenewResult::Ok => sp.announcer.renew_succeeded(now),
                    RenewResult::Failed(why) => {
                        sp.metrics.lease_renew_failures.inc();
                        tracing::warn!(lease = %lease_name(&node), error = %why, "lease renewal failed");
                        sp.announcer.renew_failed(now);
                    }
                }
            }
            Some(claim) = claims_rx.recv() => {
                let ip = IpAddr::V4(claim.ip);
                if sp.speaker_macs.contains(&claim.mac) {
                    // A peer speaker: split brain, which the announcer resolves.
                    let now = sp.now();
                    let actions = sp.announcer.claim_seen(ip, claim.mac, now);
                    sp.carry_out(actions).await;
                } else {
                    sp.foreign_claim(ip, claim.mac).await;
                }
                continue;
            }
            _ = sleep_until(sp.next_timer()) => sp.on_timer().await,
            ev = lease_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Lease")),
                Some(Ok(ev)) => {
                    let ours = match &ev {
                        watcher::Event::Apply(l) | watcher::Event::InitApply(l) | watcher::Event::Delete(l) => {
                            l.metadata.name.as_deref().is_some_and(|n| n.starts_with(LEASE_PREFIX))
                        }
                        _ => true,
                    };
                    if ours {
                        sp.on_lease_event(&ev);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "lease watch failed; retrying");
                    let now = sp.now();
                    sp.announcer.watch_failed(now);
                }
            },
            ev = svc_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Service")),
                Some(Ok(_)) => sp.refresh_demands(),
                Some(Err(e)) => tracing::warn!(error = %e, "Service watch failed; retrying"),
            },
            ev = slice_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("EndpointSlice")),
                Some(Ok(_)) => sp.refresh_demands(),
                Some(Err(e)) => tracing::warn!(error = %e, "EndpointSlice watch failed; retrying"),
            },
            ev = node_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("Node")),
                Some(Ok(_)) => sp.refresh_peers(),
                Some(Err(e)) => tracing::warn!(error = %e, "Node watch failed; retrying"),
            },
            ev = cm_events.next() => match ev {
                None => break Err(SpeakerError::StreamEnded("ConfigMap")),
                Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => sp.on_config(Some(&cm)),
                Some(Ok(watcher::Event::Delete(_))) => sp.on_config(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "ConfigMap watch failed; retrying"),
            },
        }
        sp.reconcile().await;
    };
    sp.graceful_stop().await;
    lease_task.release(Duration::from_secs(2)).await;
    match result {
        Err(SpeakerError::StreamEnded(_)) if shutdown.is_cancelled() => Ok(()),
        other => other,
    }
}
