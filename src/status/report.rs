//! What `ferrolb status` shows, computed from the objects it could read. Pure over the
//! objects and the current time, so it is tested without a cluster; the pool usage comes from
//! the core allocator and the announcing node from the core election, the same code the
//! controller and the speakers run.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::addr::Family;
use ferrolb_core::alloc::Allocator;
use ferrolb_core::config::Config;
use ferrolb_core::election::{elect, node_of_lease, NodeFacts};
use ferrolb_core::service::{is_handled, AllocationRequest, ServiceKey};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use serde::Serialize;

use crate::controller::service_view::allocated_from_pool;
use crate::speaker::cluster_view;

/// One read of the cluster: `Err` holds why a list could not be read (RBAC, network), so the
/// report can say what it does not know instead of guessing.
pub type Read<T> = Result<Vec<T>, String>;

/// Everything the report is computed from.
pub struct Inputs {
    /// The parsed pool config, or why there is none in force.
    pub config: Result<Config, String>,
    /// Services in every namespace.
    pub services: Read<Service>,
    /// Leases in FerroLB's namespace.
    pub leases: Read<Lease>,
    /// Nodes (labels for `l2.nodeSelector` and the exclusion label).
    pub nodes: Read<Node>,
    /// EndpointSlices, for `externalTrafficPolicy: Local`.
    pub slices: Read<EndpointSlice>,
    /// Events (events.k8s.io/v1) in every namespace, for why a Service has no IP.
    pub events: Read<Event>,
    /// The moment leases are judged at.
    pub now: jiff::Timestamp,
    /// Only Services of this `loadBalancerClass` (none: unset class), as the daemons do.
    pub lb_class: Option<String>,
}

/// One pool's usage. The JSON keys are a contract (design.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    /// Pool name.
    pub name: String,
    /// Addresses held by at least one Service.
    pub used: u128,
    /// Addresses the pool can hand out.
    pub total: u128,
}

/// One LoadBalancer Service. The JSON keys are a contract (design.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Addresses in `status.loadBalancer.ingress`.
    pub ips: Vec<String>,
    /// The pool the addresses came from, if known.
    pub pool: Option<String>,
    /// How the addresses are announced: `l2`, `bgp`, or `l2+bgp` (a pool with both).
    pub mode: String,
    /// The node(s) announcing the addresses: the layer-2 election winner, and every node
    /// advertising them over BGP.
    pub announced_by: Vec<String>,
    /// What is wrong, in words; empty when nothing is.
    pub problems: Vec<String>,
}

/// A speaker as seen through its lease, for `-o wide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerRow {
    /// Node name.
    pub node: String,
    /// Whether its lease counts as live now.
    pub live: bool,
    /// Seconds since its last renewal, if it has one.
    pub renewed_ago: Option<i64>,
    /// The subnets it can announce in.
    pub subnets: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Pools in config order.
    pub pools: Vec<PoolRow>,
    /// LoadBalancer Services, by namespace and name.
    pub services: Vec<ServiceRow>,
    /// Speakers, by node.
    pub speakers: Vec<SpeakerRow>,
    /// What could not be read or judged, one line each (printed to stderr in JSON mode).
    pub notes: Vec<String>,
}

/// A lease is live when it has a holder and its last renewal plus its duration is not past.
/// The speakers judge by when *they* saw it change; a one-shot command cannot watch for a
/// lease duration, so it compares `renewTime` with this machine's clock (close enough to tell
/// a dead speaker from a live one, and said so in the docs).
fn lease_live(lease: &Lease, now: jiff::Timestamp) -> (bool, Option<i64>) {
    let Some(spec) = lease.spec.as_ref() else {
        return (false, None);
    };
    let held = spec
        .holder_identity
        .as_deref()
        .is_some_and(|h| !h.is_empty());
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return (false, None);
    };
    let ago = now.duration_since(renewed).as_secs();
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    (held && ago <= duration, Some(ago))
}

fn is_ours(svc: &Service, lb_class: Option<&str>) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        is_handled(
            s.type_.as_deref(),
            s.load_balancer_class.as_deref(),
            lb_class,
        )
    })
}

fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

/// The newest `AllocationFailed` note about each Service.
fn allocation_failures(events: &[Event]) -> BTreeMap<ServiceKey, String> {
    let mut newest: BTreeMap<ServiceKey, (String, String)> = BTreeMap::new();
    for e in events {
        if e.reason.as_deref() != Some("AllocationFailed") {
            continue;
        }
        let Some(r) = e
            .regarding
            .as_ref()
            .filter(|r| r.kind.as_deref() == Some("Service"))
        else {
            continue;
        };
        let key = ServiceKey::new(
            r.namespace.clone().unwrap_or_default(),
            r.name.clone().unwrap_or_default(),
        );
        let when = e
            .series
            .as_ref()
            .map(|s| s.last_observed_time.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default();
        let note = e.note.clone().unwrap_or_default();
        if newest.get(&key).is_none_or(|(w, _)| *w <= when) {
            newest.insert(key, (when, note));
        }
    }
    newest.into_iter().map(|(k, (_, n))| (k, n)).collect()
}

/// Builds the report; never fails, because a partial answer with its gaps named beats none.
pub fn build(inputs: &Inputs) -> Report {
    let mut report = Report::default();
    let empty = Vec::new();
    let mut note = |r: Result<(), &String>, what: &str| -> bool {
        if let Err(e) = r {
            report.notes.push(format!("cannot read {what}: {e}"));
        }
        r.is_ok()
    };
    let services_ok = note(inputs.services.as_ref().map(|_| ()), "Services");
    let leases_ok = note(inputs.leases.as_ref().map(|_| ()), "Leases");
    note(inputs.nodes.as_ref().map(|_| ()), "Nodes");
    note(inputs.slices.as_ref().map(|_| ()), "EndpointSlices");
    let events_ok = note(inputs.events.as_ref().map(|_| ()), "Events");
    if let Err(e) = &inputs.config {
        report.notes.push(format!("no pool config in force: {e}"));
    }
    let services: Vec<Arc<Service>> = inputs
        .services
        .as_ref()
        .unwrap_or(&empty)
        .iter()
        .filter(|s| is_ours(s, inputs.lb_class.as_deref()))
        .cloned()
        .map(Arc::new)
        .collect();
    let leases: Vec<Arc<Lease>> = inputs
        .leases
        .as_ref()
        .map(|l| l.iter().cloned().map(Arc::new).collect())
        .unwrap_or_default();
    let nodes: Vec<Arc<Node>> = inputs
        .nodes
        .as_ref()
        .map(|n| n.iter().cloned().map(Arc::new).collect())
        .unwrap_or_default();
    let slices: Vec<Arc<EndpointSlice>> = inputs
        .slices
        .as_ref()
        .map(|s| s.iter().cloned().map(Arc::new).collect())
        .unwrap_or_default();

    // Speakers: the same per-node facts the speakers build, with liveness from renewTime.
    let live: BTreeMap<String, (bool, Option<i64>)> = leases
        .iter()
        .filter_map(|l| {
            let node = node_of_lease(l.metadata.name.as_deref()?)?;
            Some((node.to_string(), lease_live(l, inputs.now)))
        })
        .collect();
    let facts: Vec<NodeFacts> = cluster_view::node_facts(&leases, &nodes)
        .into_iter()
        .map(|mut f| {
            f.live = live.get(&f.name).is_some_and(|(l, _)| *l);
            f
        })
        .collect();
    report.speakers = facts
        .iter()
        .map(|f| SpeakerRow {
            node: f.name.clone(),
            live: f.live,
            renewed_ago: live.get(&f.name).and_then(|(_, a)| *a),
            subnets: f.subnets.iter().map(ToString::to_string).collect(),
        })
        .collect();

    // Pools: replay every Service's addresses into the core allocator, as the controller does
    // on start, and read its usage.
    let config = inputs.config.as_ref().ok();
    let mut alloc = Allocator::new(config.map(|c| c.pools.clone()).unwrap_or_default());
    for svc in &services {
        let ips = ingress_ips(svc);
        let key = key_of(svc);
        let family = ips.first().map(Family::of).unwrap_or(Family::V4);
        let _ = alloc.restore(
            &key,
            &AllocationRequest::simple(key.namespace.clone(), family),
            &ips,
        );
    }
    let mut usage: Vec<PoolRow> = Vec::new();
    for s in alloc.stats() {
        match usage.iter_mut().find(|p| p.name == s.pool) {
            Some(p) => {
                p.used = p.used.saturating_add(s.in_use);
                p.total = p.total.saturating_add(s.total);
            }
            None => usage.push(PoolRow {
                name: s.pool,
                used: s.in_use,
                total: s.total,
            }),
        }
    }
    report.pools = usage;

    // Services: the winner per IP from the core election over the speakers' demands.
    let demands = cluster_view::demands(&services, &slices, inputs.lb_class.as_deref());
    let selector = config
        .map(|c| c.l2.node_selector.clone())
        .unwrap_or_default();
    let winners: BTreeMap<IpAddr, Option<String>> = demands
        .demands
        .iter()
        .map(|d| (d.ip, elect(d, &facts, &selector).map(str::to_string)))
        .collect();
    let live_nodes: Vec<&str> = facts
        .iter()
        .filter(|f| f.live)
        .map(|f| f.name.as_str())
        .collect();
    let bgp_by = config
        .map(|c| {
            super::bgp::advertisers(
                c,
                &live_nodes,
                &nodes,
                &services,
                &slices,
                inputs.lb_class.as_deref(),
            )
        })
        .unwrap_or_default();
    let failures = allocation_failures(inputs.events.as_ref().unwrap_or(&empty_events()));
    let live_count = facts.iter().filter(|f| f.live).count();
    for svc in &services {
        let key = key_of(svc);
        let ips = ingress_ips(svc);
        let pool = allocated_from_pool(svc)
            .map(str::to_string)
            .or_else(|| alloc.get(&key).and_then(|a| a.pool().map(str::to_string)));
        let mut problems = Vec::new();
        let mut announced_by: Vec<String> = Vec::new();
        let (mut by_l2, mut by_bgp) = (false, false);
        if ips.is_empty() {
            match failures.get(&key) {
                Some(note) => problems.push(format!("no IP: {note}")),
                None if !events_ok => problems.push("no IP yet (Events could not be read to say why)".into()),
                None => problems.push("no IP yet, and no AllocationFailed Event: is the controller running and leading?".into()),
            }
            if let Err(e) = &inputs.config {
                problems.push(format!("pool config: {e}"));
            }
        }
        for ip in &ips {
            if config.is_some()
                && alloc
                    .get(&key)
                    .is_some_and(|a| a.ips.iter().any(|x| x.ip == *ip && x.pool.is_none()))
            {
                problems.push(format!(
                    "{ip} is outside every pool (kept after a config change; it is not moved)"
                ));
            }
            let announce = config
                .map(|c| c.announce_of_ip(ip, allocated_from_pool(svc)))
                .unwrap_or_default();
            by_l2 |= announce.l2;
            by_bgp |= announce.bgp;
            if announce.l2 {
                match winners.get(ip).cloned().flatten() {
                    Some(node) => {
                        if !announced_by.contains(&node) {
                            announced_by.push(node);
                        }
                    }
                    None if !leases_ok => problems.push(format!("{ip}: announcing node unknown (Leases could not be read)")),
                    None => problems.push(format!(
                        "{ip}: no node may announce it ({live_count} live speaker(s); a candidate needs a live lease, an interface subnet holding the IP, l2.nodeSelector, and for externalTrafficPolicy: Local a ready endpoint)"
                    )),
                }
            }
            if announce.bgp {
                match bgp_by.get(ip) {
                    Some(nodes) => {
                        for node in nodes {
                            if !announced_by.contains(node) {
                                announced_by.push(node.clone());
                            }
                        }
                    }
                    None if !leases_ok => problems.push(format!("{ip}: advertising nodes unknown (Leases could not be read)")),
                    None => problems.push(format!(
                        "{ip}: no node advertises it over BGP ({live_count} live speaker(s); a node needs a live lease, a peer whose nodeSelector matches it, an advertisement selecting it, no exclude-from-external-load-balancers label, and a ready endpoint: anywhere for externalTrafficPolicy: Cluster, on the node for Local)"
                    )),
                }
            }
        }
        let mode = match (by_l2, by_bgp) {
            (_, false) => "l2",
            (false, true) => "bgp",
            (true, true) => "l2+bgp",
        };
        report.services.push(ServiceRow {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            ips: ips.iter().map(ToString::to_string).collect(),
            pool,
            mode: mode.into(),
            announced_by,
            problems,
        });
    }
    report
        .services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if !services_ok {
        report
            .notes
            .push("the Service list is missing, so pools show no usage".into());
    }
    report
}

fn empty_events() -> Vec<Event> {
    Vec::new()
}
