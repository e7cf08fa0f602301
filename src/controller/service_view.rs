//! Reading a Service into the plain [`ServiceFacts`] the pure reconcile core decides on:
//! whether the controller handles it, what its status shows, and what it asks for.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_core::addr::Family;
use ferrolb_core::reconcile::{Handling, ServiceFacts};
use ferrolb_core::service::{
    IpFamilyPolicy, Protocol, ServiceInfo, ServiceKey, ServicePort, ANNOTATION_PREFIXES,
};
use k8s_openapi::api::core::v1::Service;

/// The annotation the controller writes with the pool the IPs came from.
pub const ALLOCATED_FROM_POOL: &str = "ferrolb.io/allocated-from-pool";

/// The pool the controller recorded for `svc`'s addresses, if any: what decides how an address
/// kept outside every pool (after a config edit) is announced.
pub fn allocated_from_pool(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

/// The `ipMode` the controller writes: traffic arrives with the VIP as destination.
pub const IP_MODE: &str = "VIP";

fn family(text: &str) -> Option<Family> {
    match text {
        "IPv4" => Some(Family::V4),
        "IPv6" => Some(Family::V6),
        _ => None,
    }
}

fn protocol(text: Option<&str>) -> Protocol {
    match text {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// Reads `svc`; `lb_class` is the controller's `--lb-class` (`None`: only class-less Services).
pub fn view(svc: &Service, lb_class: Option<&str>) -> ServiceFacts {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    let key = ServiceKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let handling = Handling::classify(
        meta.deletion_timestamp.is_some(),
        spec.type_.as_deref(),
        spec.load_balancer_class.as_deref(),
        lb_class,
    );
    let ip_families: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| family(f))
        .collect();
    let info = ServiceInfo {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        // Only the annotations the allocator reads: the core keeps these facts for every
        // Service, and a `kubectl apply`'s last-applied-configuration alone is kilobytes.
        annotations: meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        load_balancer_ip: spec.load_balancer_ip.clone().filter(|s| !s.is_empty()),
        ip_families: if ip_families.is_empty() {
            vec![Family::V4]
        } else {
            ip_families
        },
        ip_family_policy: match spec.ip_family_policy.as_deref() {
            Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
            _ => IpFamilyPolicy::SingleStack,
        },
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePort {
                    port: u16::try_from(p.port).ok()?,
                    protocol: protocol(p.protocol.as_deref()),
                })
            })
            .collect(),
        external_traffic_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        selector: spec.selector.clone().unwrap_or_default(),
    };
    let entries = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let ingress: Vec<IpAddr> = entries
        .iter()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    let ingress_in_our_shape = entries.iter().all(|i| {
        i.ip.is_some()
            && i.hostname.is_none()
            && i.ip_mode.as_deref() == Some(IP_MODE)
            && i.ports.is_none()
    });
    let annotations: BTreeMap<String, String> = meta.annotations.clone().unwrap_or_default();
    ServiceFacts {
        key,
        uid: meta.uid.clone(),
        handling,
        info,
        ingress_in_our_shape: ingress_in_our_shape && entries.len() == ingress.len(),
        ingress,
        pool_annotation: annotations.get(ALLOCATED_FROM_POOL).cloned(),
        created: meta
            .creation_timestamp
            .as_ref()
            .map_or(i64::MAX, |t| t.0.as_second()),
    }
}

#[cfg(test)]
mod tests {
    // unwrap() here only parses literal fixtures: it cannot fail unless the test itself is wrong.
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn class_and_type_decide_handling() {
        let base = serde_json::json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(view(&svc(base.clone()), None).handling, Handling::Ours);
        assert_eq!(
            view(&svc(base.clone()), Some("x")).handling,
            Handling::OtherClass
        );
        let mut classed = base.clone();
        classed["spec"]["loadBalancerClass"] = "x".into();
        assert_eq!(
            view(&svc(classed.clone()), Some("x")).handling,
            Handling::Ours
        );
        assert_eq!(view(&svc(classed), None).handling, Handling::OtherClass);
        let mut cip = base;
        cip["spec"]["type"] = "ClusterIP".into();
        assert_eq!(view(&svc(cip), None).handling, Handling::NotLoadBalancer);
    }

    #[test]
    fn reads_ingress_ports_and_families() {
        let v = view(
            &svc(serde_json::json!({
                "metadata": {"name": "a", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack",
                         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}], "externalTrafficPolicy": "Local"},
                "status": {"loadBalancer": {"ingress": [{"ip": "2001:db8::1", "ipMode": "VIP"}, {"ip": "198.51.100.1", "ipMode": "VIP"}]}}
            })),
            None,
        );
        assert_eq!(v.info.ip_families, vec![Family::V6, Family::V4]);
        assert_eq!(v.info.ip_family_policy, IpFamilyPolicy::RequireDualStack);
        assert_eq!(
            v.info.ports[0],
            ServicePort {
                port: 53,
                protocol: Protocol::Udp
            }
        );
        assert!(v.info.external_traffic_local);
        assert_eq!(v.ingress.len(), 2);
        assert!(v.ingress_in_our_shape);
        assert_eq!(v.created, 1_767_225_600);
    }

    #[test]
    fn keeps_only_the_annotations_the_allocator_reads() {
        let v = view(
            &svc(serde_json::json!({
                "metadata": {"name": "a", "namespace": "ns", "annotations": {
                    "ferrolb.io/address-pool": "lan",
                    "metallb.universe.tf/allow-shared-ip": "k",
                    "metallb.io/loadBalancerIPs": "198.51.100.7",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a huge\": \"blob\"}",
                    "example.com/team": "web"}},
                "spec": {"type": "LoadBalancer"}
            })),
            None,
        );
        let keys: Vec<&str> = v.info.annotations.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ferrolb.io/address-pool",
                "metallb.io/loadBalancerIPs",
                "metallb.universe.tf/allow-shared-ip"
            ]
        );
    }
}
