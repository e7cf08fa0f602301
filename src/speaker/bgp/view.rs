//! What the BGP planner needs from the speaker's caches: per LoadBalancer Service of our class,
//! its IPs grouped by the pool that announces them, its traffic policy, and where its ready
//! endpoints are. Pure functions over cached objects.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::bgp::{ServiceInfo, TrafficPolicy};
use ferrolb_core::config::Config;
use ferrolb_core::service::ServiceKey;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::controller::service_view::allocated_from_pool;
use crate::speaker::cluster_view::endpoint_nodes;

/// One planner input per (Service, pool) of every LoadBalancer Service of class `lb_class`
/// that shows an IP, seen from `node`. An IP's pool is the one whose ranges hold it, else the
/// pool the Service was allocated from (an IP kept outside every pool after a config edit).
pub fn service_infos(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    lb_class: Option<&str>,
    node: &str,
    config: &Config,
) -> Vec<(ServiceKey, ServiceInfo)> {
    let endpoints = endpoint_nodes(slices);
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        if svc.metadata.deletion_timestamp.is_some()
            || spec.type_.as_deref() != Some("LoadBalancer")
            || spec.load_balancer_class.as_deref() != lb_class
        {
            continue;
        }
        let key = ServiceKey::new(
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        let hint = allocated_from_pool(svc);
        let ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse::<IpAddr>().ok());
        let mut by_pool: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for ip in ips {
            let pool = config
                .pool_of_ip(&ip)
                .map(|p| p.name.clone())
                .or_else(|| hint.map(str::to_string))
                .unwrap_or_default();
            by_pool.entry(pool).or_default().push(ip);
        }
        let ready = endpoints.get(&key);
        let policy = if spec.external_traffic_policy.as_deref() == Some("Local") {
            TrafficPolicy::Local
        } else {
            TrafficPolicy::Cluster
        };
        for (pool, ips) in by_pool {
            out.push((
                key.clone(),
                ServiceInfo {
                    ips,
                    pool,
                    policy,
                    ready_anywhere: ready.is_some_and(|n| !n.is_empty()),
                    ready_on_node: ready.is_some_and(|n| n.contains(node)),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::service_view::ALLOCATED_FROM_POOL;
    use ferrolb_core::config::{parse_config_map_data, NATIVE_KEY};
    use serde_json::json;

    fn svc(name: &str, ips: &[&str], local: bool, pool: Option<&str>) -> Arc<Service> {
        let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        let mut s = json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local { "Local" } else { "Cluster" }},
            "status": {"loadBalancer": {"ingress": ingress}}});
        if let Some(p) = pool {
            s["metadata"]["annotations"] = json!({ALLOCATED_FROM_POOL: p});
        }
        // A literal Service built just above: it always deserialises.
        Arc::new(serde_json::from_value(s).unwrap())
    }

    fn slice(svc: &str, nodes: &[(&str, bool)]) -> Arc<EndpointSlice> {
        let eps: Vec<_> = nodes
            .iter()
            .map(|(n, r)| json!({"addresses": ["10.0.0.1"], "nodeName": n, "conditions": {"ready": r}}))
            .collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("{svc}-x"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": svc}}, "addressType": "IPv4", "endpoints": eps}))
            .unwrap(),
        )
    }

    #[test]
    fn ips_are_grouped_by_pool_and_endpoints_are_judged_per_node() {
        let data = [(
            NATIVE_KEY.to_string(),
            "pools:\n  - {name: edge, addresses: [203.0.113.0/24], announce: [bgp]}\n  - {name: lan, addresses: [198.51.100.0/24]}\n".to_string(),
        )]
        .into();
        // A fixed test config: a parse failure is a broken test, so panicking is right.
        let config = parse_config_map_data(&data).unwrap().config;
        let services = [
            svc(
                "dual",
                &["203.0.113.5", "198.51.100.5"],
                false,
                Some("edge"),
            ),
            svc("kept", &["10.9.9.9"], true, Some("edge")),
        ];
        let slices = [
            slice("dual", &[("n2", true)]),
            slice("kept", &[("n1", true), ("n2", false)]),
        ];
        let infos = service_infos(&services, &slices, None, "n1", &config);
        let pools: Vec<(&str, &str, bool, bool)> = infos
            .iter()
            .map(|(k, i)| {
                (
                    k.name.as_str(),
                    i.pool.as_str(),
                    i.ready_anywhere,
                    i.ready_on_node,
                )
            })
            .collect();
        assert_eq!(
            pools,
            vec![
                ("dual", "edge", true, false),
                ("dual", "lan", true, false),
                // Outside every pool: the annotation names the pool.
                ("kept", "edge", true, true),
            ]
        );
        assert_eq!(infos[2].1.policy, TrafficPolicy::Local);
    }
}
