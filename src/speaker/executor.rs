//! Execution: carries out the announcer's [`Action`]s on the wire (per address family), the
//! GARP schedules, the metrics and the Events, and keeps one [`IpEntry`] per IP this node has
//! won, so everything about an IP is torn down in one place ([`Executor::forget`]).
//!
//! Nothing here decides anything: what to do comes from the pure `Announcer`; this module only
//! knows how.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_core::arp::{GarpParams, MacAddr};
use ferrolb_core::config::L2Config;
use ferrolb_core::election::{Action, StopReason};
use ferrolb_core::service::ServiceKey;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::Store;
use tokio::task::JoinHandle;

use super::family::Families;
use super::interfaces::{Interface, Interfaces};
use super::metrics::{AnnounceLabels, FamilyLabels, IpLabels, SpeakerMetrics};
use super::reasons::{publish_service_event, EventReason, ANNOUNCE_ACTION};
use crate::events::EventPublisher;

/// At most one conflict Event per IP in this window; the metric counts every conflict.
const CONFLICT_EVENT_EVERY: Duration = Duration::from_secs(10);

/// Where an IP this node won stands, as far as the wire is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Probe sent, not answered for yet.
    Probing,
    /// Answered for, GARP schedule running.
    Announcing,
    /// A foreign host uses it: not answered for, still watched.
    Held,
}

/// The interface an IP is probed and answered on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Kernel interface index.
    pub index: u32,
    /// Interface name, for logs, metrics and Events.
    pub name: String,
}

/// Everything the speaker holds for one IP it has won. Dropping it cancels its GARP schedule;
/// [`Executor::forget`] also clears the wire and the metrics.
#[derive(Debug)]
pub struct IpEntry {
    /// Where the IP stands.
    pub stage: Stage,
    /// The interface it is probed and answered on (`None` if no eligible interface holds it).
    pub port: Option<Port>,
    garp_task: Option<JoinHandle<()>>,
    /// The `ferrolb_speaker_announcing` series set for it.
    labels: Vec<AnnounceLabels>,
    /// When the last `IPConflict` Event about it went out.
    last_conflict_event: Option<Instant>,
    /// When the last `IPProbedByOtherHost` Event about it went out.
    last_probed_event: Option<Instant>,
}

impl IpEntry {
    fn new(port: Option<Port>) -> Self {
        IpEntry {
            stage: Stage::Probing,
            port,
            garp_task: None,
            labels: Vec::new(),
            last_conflict_event: None,
            last_probed_event: None,
        }
    }

    fn cancel_garp(&mut self) {
        if let Some(task) = self.garp_task.take() {
            task.abort();
        }
    }
}

impl Drop for IpEntry {
    fn drop(&mut self) {
        self.cancel_garp();
    }
}

/// What the executor reads from the cluster view when it acts: which interface holds an IP,
/// and which Services use it.
pub struct World<'a> {
    /// The node's interfaces now.
    pub ifaces: &'a Interfaces,
    /// The `l2` config in force.
    pub l2: &'a L2Config,
    /// The Services using each IP.
    pub services: &'a BTreeMap<IpAddr, Vec<ServiceKey>>,
}

impl World<'_> {
    /// The eligible interface whose subnet holds `ip` (the first by index if several do).
    fn port_for(&self, ip: IpAddr) -> Option<Port> {
        self.ifaces
            .eligible(self.l2)
            .filter(|i| i.networks.iter().any(|n| n.contains(ip)))
            .min_by_key(|i| i.index)
            .map(|i: &Interface| Port {
                index: i.index,
                name: i.name.clone(),
            })
    }

    fn services_of(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.services.get(&ip).cloned().unwrap_or_default()
    }
}

/// Carries out actions and owns the per-IP state.
pub struct Executor {
    node: String,
    families: Families,
    ips: BTreeMap<IpAddr, IpEntry>,
    garp: GarpParams,
    metrics: SpeakerMetrics,
    events: Arc<EventPublisher>,
    services: Store<Service>,
}

impl Executor {
    /// An executor for `node` that owns nothing yet.
    pub fn new(
        node: String,
        families: Families,
        metrics: SpeakerMetrics,
        events: Arc<EventPublisher>,
        services: Store<Service>,
    ) -> Self {
        Executor {
            node,
            families,
            ips: BTreeMap::new(),
            garp: GarpParams::default(),
            metrics,
            events,
            services,
        }
    }

    /// The `l2.garp` policy for schedules started from now on.
    pub fn set_garp(&mut self, garp: GarpParams) {
        self.garp = garp;
    }

    /// The state held for `ip`, if this node has won it.
    pub fn entry(&self, ip: IpAddr) -> Option<&IpEntry> {
        self.ips.get(&ip)
    }

    /// Carries out `actions` in order.
    pub fn execute(&mut self, actions: Vec<Action>, world: &World<'_>) {
        for action in actions {
            match action {
                Action::Probe { ip } => self.probe(ip, world),
                Action::Start { ip } => self.start(ip, world),
                Action::Stop { ip, reason } => self.stop(ip, reason),
                Action::Hold { ip, mac, hold } => self.hold(ip, mac, hold, world),
                Action::ResendGarp { ip } => {
                    if let Some(io) = self.families.for_ip(ip) {
                        (io.unsolicited())(ip);
                    }
                }
                Action::Conflict { ip, mac } => self.conflict(ip, mac, world),
            }
        }
    }

    /// Won `ip`: ask its segment whether someone already uses it before announcing.
    fn probe(&mut self, ip: IpAddr, world: &World<'_>) {
        let port = world.port_for(ip);
        let entry = self.ips.entry(ip).or_insert_with(|| IpEntry::new(None));
        entry.stage = Stage::Probing;
        entry.port = port.clone();
        let Some(io) = self.families.for_ip(ip) else {
            tracing::warn!(%ip, "cannot announce an IPv6 address: no NDP responder");
            return;
        };
        let Some(port) = port else {
            tracing::error!(%ip, "elected for an IP no eligible interface's subnet holds");
            return;
        };
        io.probe(ip, port.index);
    }

    fn start(&mut self, ip: IpAddr, world: &World<'_>) {
        let Some(io) = self.families.for_ip(ip) else {
            return;
        };
        let Some(port) = world.port_for(ip) else {
            tracing::error!(%ip, "elected for an IP no eligible interface's subnet holds");
            return;
        };
        io.announce(ip, port.index);
        self.metrics
            .takeovers
            .get_or_create(&FamilyLabels::of(ip))
            .inc();
        let send = io.unsolicited();
        let schedule = self.garp.schedule();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            for at in schedule {
                tokio::time::sleep_until(started + at).await;
                send(ip);
            }
        });
        let entry = self.ips.entry(ip).or_insert_with(|| IpEntry::new(None));
        entry.cancel_garp();
        entry.garp_task = Some(task);
        entry.stage = Stage::Announcing;
        entry.port = Some(port.clone());
        self.sync_labels(ip, world);
        let services = world.services_of(ip);
        tracing::info!(%ip, interface = %port.name, services = ?services.iter().map(ToString::to_string).collect::<Vec<_>>(), "announcing");
        let note = format!("announcing {ip} from node {} on {}", self.node, port.name);
        self.publish(&services, EventReason::Announcing, note);
    }

    /// Everything about `ip` goes: not answered, not watched, no GARP, no gauge series.
    /// Returns the state it was in.
    fn forget(&mut self, ip: IpAddr) -> Option<Stage> {
        if let Some(io) = self.families.for_ip(ip) {
            io.withdraw(ip);
            io.unwatch(ip);
        }
        let entry = self.ips.remove(&ip)?;
        for l in &entry.labels {
            self.metrics.announcing.remove(l);
        }
        Some(entry.stage)
    }

    fn stop(&mut self, ip: IpAddr, reason: StopReason) {
        let was = self.forget(ip);
        if was == Some(Stage::Announcing) {
            self.metrics
                .withdrawals
                .get_or_create(&FamilyLabels::of(ip))
                .inc();
        }
        match reason {
            StopReason::ClaimedBy(mac) => {
                tracing::warn!(%ip, %mac, "another speaker claims this IP while we cannot reach the API server; yielding")
            }
            StopReason::NotElected => tracing::info!(%ip, "another node now announces this IP"),
            StopReason::NotDemanded => tracing::info!(%ip, "no Service uses this IP any more"),
        }
    }

    /// A host that is not a speaker claims `ip`: it was there first (or an operator configured
    /// it by hand). Never fight it: stop answering (still listening), say so.
    fn hold(&mut self, ip: IpAddr, mac: MacAddr, hold: Duration, world: &World<'_>) {
        if let Some(io) = self.families.for_ip(ip) {
            io.withdraw(ip);
        }
        let entry = self.ips.entry(ip).or_insert_with(|| IpEntry::new(None));
        entry.stage = Stage::Held;
        entry.cancel_garp();
        let labels = std::mem::take(&mut entry.labels);
        for l in &labels {
            self.metrics.announcing.remove(l);
        }
        self.metrics
            .foreign_claims
            .get_or_create(&IpLabels { ip: ip.to_string() })
            .inc();
        tracing::warn!(%ip, %mac, "another host (not a speaker) uses this IP; not announcing it");
        let note = format!("IP {ip} is already used by another host ({mac}) on the LAN; node {} does not announce it and will check again in {}s", self.node, hold.as_secs());
        self.publish(
            &world.services_of(ip),
            EventReason::IpInUseByOtherHost,
            note,
        );
    }

    fn conflict(&mut self, ip: IpAddr, mac: MacAddr, world: &World<'_>) {
        self.metrics
            .conflicts
            .get_or_create(&IpLabels { ip: ip.to_string() })
            .inc();
        let Some(entry) = self.ips.get_mut(&ip) else {
            return;
        };
        let due = entry
            .last_conflict_event
            .is_none_or(|t| t.elapsed() >= CONFLICT_EVENT_EVERY);
        if !due {
            return;
        }
        entry.last_conflict_event = Some(Instant::now());
        tracing::warn!(%ip, %mac, "another speaker keeps claiming an IP this node announces; re-announcing");
        let resend = if ip.is_ipv4() {
            "gratuitous ARP"
        } else {
            "unsolicited Neighbor Advertisements"
        };
        let note = format!(
            "{mac} also claims {ip}, which node {} announces; re-sending {resend}",
            self.node
        );
        self.publish(&world.services_of(ip), EventReason::IpConflict, note);
    }

    /// A host that is not a speaker ran duplicate address detection for `ip`, which this node
    /// announces, and the responder defended it: say so on the Services (at most one Event per
    /// IP per [`CONFLICT_EVENT_EVERY`]), since that host is misconfigured with a Service IP.
    pub fn probed_by_other_host(&mut self, ip: IpAddr, mac: MacAddr, world: &World<'_>) {
        let Some(entry) = self.ips.get_mut(&ip) else {
            return;
        };
        if entry
            .last_probed_event
            .is_some_and(|t| t.elapsed() < CONFLICT_EVENT_EVERY)
        {
            return;
        }
        entry.last_probed_event = Some(Instant::now());
        let note = format!("host {mac} tried to configure {ip} (duplicate address detection); node {} announces it and defended it", self.node);
        self.publish(
            &world.services_of(ip),
            EventReason::IpProbedByOtherHost,
            note,
        );
    }

    /// Services can join or leave an IP that is already announced (shared IPs): make
    /// `ferrolb_speaker_announcing` show exactly the Services that use each announced IP now.
    pub fn sync_all_labels(&mut self, world: &World<'_>) {
        let announced: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|(_, e)| e.stage == Stage::Announcing)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in announced {
            self.sync_labels(ip, world);
        }
    }

    fn sync_labels(&mut self, ip: IpAddr, world: &World<'_>) {
        let Some(entry) = self.ips.get_mut(&ip) else {
            return;
        };
        let Some(port) = &entry.port else { return };
        let wanted: Vec<AnnounceLabels> = world
            .services
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|key| AnnounceLabels {
                service: key.to_string(),
                ip: ip.to_string(),
                interface: port.name.clone(),
            })
            .collect();
        for gone in entry.labels.iter().filter(|l| !wanted.contains(l)) {
            self.metrics.announcing.remove(gone);
        }
        for l in &wanted {
            self.metrics.announcing.get_or_create(l).set(1);
        }
        entry.labels = wanted;
    }

    /// Graceful stop: nothing is answered from now on, every schedule is cancelled.
    pub fn shutdown(&mut self) {
        for io in self.families.all() {
            io.withdraw_all();
        }
        self.ips.clear();
    }

    fn publish(&self, services: &[ServiceKey], reason: EventReason, note: String) {
        for key in services {
            publish_service_event(
                &self.events,
                &self.services,
                key,
                reason,
                ANNOUNCE_ACTION,
                note.clone(),
            );
        }
    }
}
