//! Turning what the speaker watches into election inputs: Services and EndpointSlices into one
//! demand per IP, Leases and Nodes into per-node facts. Pure functions over the cached objects.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::election::{node_of_lease, IpDemand, LeaseSnapshot, NodeFacts};
use ferrolb_core::service::{is_handled, ServiceKey};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::interfaces::parse_subnets_annotation;
use crate::controller::service_view::allocated_from_pool;

/// The lease annotation listing the subnets a node can announce in.
pub const SUBNETS_ANNOTATION: &str = "ferrolb.io/subnets";

/// The lease annotation listing the MACs of a node's announcing interfaces, so every speaker
/// can tell a peer's claim on an IP from a foreign host's.
pub const MACS_ANNOTATION: &str = "ferrolb.io/macs";

/// The EndpointSlice label naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One demand per IP, and the Services behind each IP (for Events and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demands {
    /// One entry per IP, in IP order.
    pub demands: Vec<IpDemand>,
    /// The Services using each IP.
    pub services: BTreeMap<IpAddr, Vec<ServiceKey>>,
}

fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

/// Nodes with a ready endpoint of each Service, from its EndpointSlices.
pub fn endpoint_nodes(slices: &[Arc<EndpointSlice>]) -> BTreeMap<ServiceKey, BTreeSet<String>> {
    let mut out: BTreeMap<ServiceKey, BTreeSet<String>> = BTreeMap::new();
    for slice in slices {
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let key = ServiceKey::new(
            slice.metadata.namespace.clone().unwrap_or_default(),
            svc.clone(),
        );
        let nodes = out.entry(key).or_default();
        for ep in &slice.endpoints {
            // An unset `ready` means "unknown", which consumers are told to treat as ready.
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if let (true, Some(node)) = (ready, ep.node_name.as_ref()) {
                nodes.insert(node.clone());
            }
        }
    }
    out
}

/// What must be announced: every IP in the ingress of a LoadBalancer Service of our class.
/// Services sharing an IP become one demand; if any of them uses `externalTrafficPolicy:
/// Local`, only nodes with a ready endpoint of every such Service qualify.
pub fn demands(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    lb_class: Option<&str>,
) -> Demands {
    let endpoints = endpoint_nodes(slices);
    let mut by_ip: BTreeMap<IpAddr, (Option<BTreeSet<String>>, Vec<ServiceKey>)> = BTreeMap::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if svc.metadata.deletion_timestamp.is_some()
            || !is_handled(
                spec.type_.as_deref(),
                spec.load_balancer_class.as_deref(),
                lb_class,
            )
        {
            continue;
        }
        let key = key_of(svc);
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for ip in ingress
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse::<IpAddr>().ok())
        {
            let entry = by_ip.entry(ip).or_insert((None, Vec::new()));
            if local {
                let nodes = endpoints.get(&key).cloned().unwrap_or_default();
                entry.0 = Some(match entry.0.take() {
                    Some(prev) => prev.intersection(&nodes).cloned().collect(),
                    None => nodes,
                });
            }
            entry.1.push(key.clone());
        }
    }
    let mut out = Demands::default();
    for (ip, (nodes, keys)) in by_ip {
        out.demands.push(IpDemand {
            ip,
            endpoint_nodes: nodes,
        });
        out.services.insert(ip, keys);
    }
    out
}

/// Drops the demands for IPs whose pool is not announced with `l2` (`pools[].announce`): those
/// are the BGP side's. An IP outside every pool is judged by the pool its Service was
/// allocated from (`ferrolb.io/allocated-from-pool`).
pub fn retain_l2(
    demands: &mut Demands,
    config: &ferrolb_core::config::Config,
    services: &kube::runtime::reflector::Store<Service>,
) {
    let hint = |ip: &IpAddr| -> Option<String> {
        let key = demands.services.get(ip)?.first()?;
        let svc = services
            .get(&kube::runtime::reflector::ObjectRef::new(&key.name).within(&key.namespace))?;
        allocated_from_pool(&svc).map(str::to_string)
    };
    let drop: BTreeSet<IpAddr> = demands
        .demands
        .iter()
        .map(|d| d.ip)
        .filter(|ip| !config.announce_of_ip(ip, hint(ip).as_deref()).l2)
        .collect();
    if drop.is_empty() {
        return;
    }
    demands.demands.retain(|d| !drop.contains(&d.ip));
    demands.services.retain(|ip, _| !drop.contains(ip));
}

/// Every MAC some speaker announces from, with its node, from the leases'
/// [`MACS_ANNOTATION`]: a claim from one of these is a peer's, never a foreign host's.
pub fn speaker_macs(leases: &[Arc<Lease>]) -> BTreeMap<ferrolb_core::arp::MacAddr, String> {
    leases
        .iter()
        .filter_map(|l| {
            let node = node_of_lease(l.metadata.name.as_deref()?)?;
            let text = l.metadata.annotations.as_ref()?.get(MACS_ANNOTATION)?;
            Some((node.to_string(), text))
        })
        .flat_map(|(node, text)| {
            text.split(',')
                .filter_map(|m| m.trim().parse().ok())
                .map(|mac| (mac, node.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What liveness tracking needs from a lease.
pub fn snapshot(lease: &Lease) -> LeaseSnapshot {
    let spec = lease.spec.as_ref();
    LeaseSnapshot {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renew_time: spec
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string()),
        resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(std::time::Duration::from_secs),
    }
}

/// The speaker nodes known from their leases, with labels from their Node objects (a node
/// whose Node object is not visible has no labels, so it can only be excluded by the
/// selector, never by the exclusion label it cannot be seen to carry).
pub fn node_facts(leases: &[Arc<Lease>], nodes: &[Arc<Node>]) -> Vec<NodeFacts> {
    let labels: BTreeMap<&str, BTreeMap<String, String>> = nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                n.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let mut out: Vec<NodeFacts> = leases
        .iter()
        .filter_map(|l| {
            let node = node_of_lease(l.metadata.name.as_deref()?)?.to_string();
            let subnets = l
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SUBNETS_ANNOTATION))
                .map(|s| parse_subnets_annotation(s))
                .unwrap_or_default();
            Some(NodeFacts {
                labels: labels.get(node.as_str()).cloned().unwrap_or_default(),
                name: node,
                subnets,
                live: true,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str, local: bool, class: Option<&str>) -> Arc<Service> {
        let mut s = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local { "Local" } else { "Cluster" }},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        if let Some(c) = class {
            s["spec"]["loadBalancerClass"] = json!(c);
        }
        // A literal Service built just above: it always deserialises.
        Arc::new(serde_json::from_value(s).unwrap())
    }

    fn slice(svc: &str, eps: &[(&str, Option<bool>)]) -> Arc<EndpointSlice> {
        let endpoints: Vec<_> = eps
            .iter()
            .map(|(n, r)| json!({"addresses": ["10.0.0.1"], "nodeName": n, "conditions": {"ready": r}}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "endpoints": endpoints}))
            .unwrap(),
        )
    }

    #[test]
    fn shared_ips_merge_and_local_policy_uses_ready_endpoints() {
        let services = vec![
            svc("a", "203.0.113.10", false, None),
            svc("b", "203.0.113.10", false, None),
            svc("c", "203.0.113.11", true, None),
            svc("other", "203.0.113.12", false, Some("someone-else")),
        ];
        let slices = vec![slice(
            "c",
            &[("n1", Some(true)), ("n2", Some(false)), ("n3", None)],
        )];
        let d = demands(&services, &slices, None);
        assert_eq!(
            d.demands.len(),
            2,
            "one demand per IP, other classes ignored"
        );
        assert_eq!(
            d.demands[0],
            IpDemand::cluster("203.0.113.10".parse().unwrap())
        );
        assert_eq!(d.services[&"203.0.113.10".parse().unwrap()].len(), 2);
        assert_eq!(
            d.demands[1],
            IpDemand::local("203.0.113.11".parse().unwrap(), ["n1", "n3"])
        );
    }

    #[test]
    fn the_l2_side_keeps_only_ips_of_pools_announced_with_l2() {
        let data = [(
            ferrolb_core::config::NATIVE_KEY.to_string(),
            "pools:\n  - {name: lan, addresses: [203.0.113.0/28]}\n  - {name: edge, addresses: [203.0.113.16/28], announce: [bgp]}\n  - {name: both, addresses: [203.0.113.32/28], announce: [l2, bgp]}\n".to_string(),
        )]
        .into();
        let config = ferrolb_core::config::parse_config_map_data(&data)
            .unwrap()
            .config;
        let services = vec![
            svc("a", "203.0.113.1", false, None),
            svc("b", "203.0.113.17", false, None),
            svc("c", "203.0.113.33", false, None),
            svc("d", "10.0.0.1", false, None),
        ];
        let mut d = demands(&services, &[], None);
        let (store, _writer) = kube::runtime::reflector::store::<Service>();
        retain_l2(&mut d, &config, &store);
        let ips: Vec<String> = d.demands.iter().map(|x| x.ip.to_string()).collect();
        // The bgp-only pool's IP is gone; an IP outside every pool with no hint stays l2.
        assert_eq!(ips, vec!["10.0.0.1", "203.0.113.1", "203.0.113.33"]);
        assert!(!d.services.contains_key(&"203.0.113.17".parse().unwrap()));
    }

    #[test]
    fn node_facts_from_leases_and_nodes() {
        let lease: Arc<Lease> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "ferrolb-speaker-n1", "namespace": "ferrolb-system",
                "annotations": {"ferrolb.io/subnets": "198.51.100.0/24"}}, "spec": {"holderIdentity": "n1"}}))
            .unwrap(),
        );
        let other: Arc<Lease> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "ferrolb-controller"}})).unwrap(),
        );
        let node: Arc<Node> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}}))
                .unwrap(),
        );
        let facts = node_facts(&[lease, other], &[node]);
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].name, "n1");
        assert_eq!(facts[0].labels["zone"], "a");
        assert_eq!(facts[0].subnets, vec!["198.51.100.0/24".parse().unwrap()]);
    }
}
