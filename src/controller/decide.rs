//! Deciding what one Service should look like, in memory: allocate, keep or release its
//! addresses and say what to write. No I/O here, so every rule is unit-tested directly.

use std::net::IpAddr;

use ferrolb_core::alloc::{Allocation, Allocator};
use ferrolb_core::service::allocation_request;

use super::service_view::{Handling, ServiceView};
use super::writer::{normal, warning, Notice};

/// What to write for a Service, and what happened, for metrics.
#[derive(Debug, Default)]
pub struct Decision {
    /// `Some(ips)`: the ingress must become exactly this.
    pub ingress: Option<Vec<IpAddr>>,
    /// `Some(v)`: the pool annotation must become `v`.
    pub pool_annotation: Option<Option<String>>,
    /// Events to publish.
    pub events: Vec<Notice>,
    /// Failure reason label, when the Service could not get what it asked for.
    pub failure: Option<&'static str>,
    /// A new allocation was made.
    pub allocated: bool,
    /// Addresses were given back (capacity may have appeared for waiting Services).
    pub released: bool,
}

fn list(ips: &[IpAddr]) -> String {
    let words: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let noun = if ips.len() == 1 { "IP" } else { "IPs" };
    format!("{noun} {}", words.join(", "))
}

fn describe(a: &Allocation) -> String {
    match a.pool() {
        Some(pool) if !a.is_orphaned() => format!("{} from pool {pool}", list(&a.addresses())),
        _ => format!("{} (outside every configured pool)", list(&a.addresses())),
    }
}

/// Decides for `view`, updating `alloc`.
pub fn decide(alloc: &mut Allocator, view: &ServiceView) -> Decision {
    let mut d = Decision::default();
    let key = &view.key;
    match view.handling {
        Handling::Deleting => d.released = alloc.release(key).is_some(),
        Handling::NotLoadBalancer | Handling::OtherClass => {
            let held = alloc.release(key);
            // Ours if the allocator holds it, or if our pool annotation says an earlier
            // controller wrote the status: after a restart or a leader change the allocator
            // only replays LoadBalancer Services, so a Service whose type changed while no
            // leader ran would otherwise keep a stale IP in its status for ever.
            let ours = held.is_some() || view.pool_annotation.is_some();
            let addresses = held
                .as_ref()
                .map_or_else(|| view.ingress.clone(), |a| a.addresses());
            if held.is_some() {
                d.released = true;
            }
            if ours && !view.ingress.is_empty() {
                d.ingress = Some(Vec::new());
            }
            if ours && !addresses.is_empty() {
                let why = if view.handling == Handling::OtherClass {
                    "the Service's loadBalancerClass is not handled by this controller"
                } else {
                    "the Service is no longer of type LoadBalancer"
                };
                d.events.push(normal(
                    "IPReleased",
                    "Release",
                    format!("released {}: {why}", list(&addresses)),
                ));
            }
            if view.pool_annotation.is_some() {
                d.pool_annotation = Some(None);
            }
        }
        Handling::Ours => match allocation_request(&view.info) {
            Err(e) => {
                d.failure = Some("bad_annotation");
                let note = match alloc.get(key) {
                    Some(a) => format!("bad annotation: {e}; keeping {}", list(&a.addresses())),
                    None => format!("bad annotation: {e}"),
                };
                d.events.push(warning("AllocationFailed", "Allocate", note));
            }
            Ok(req) => match alloc.ensure(key, &req) {
                Ok(a) => {
                    let ips = a.addresses();
                    let changed = ips != view.ingress;
                    if changed || !view.ingress_in_our_shape {
                        d.ingress = Some(ips.clone());
                    }
                    let pool = a.pool().map(String::from);
                    if pool != view.pool_annotation {
                        d.pool_annotation = Some(pool);
                    }
                    if changed {
                        d.allocated = true;
                        d.events.push(normal(
                            "IPAllocated",
                            "Allocate",
                            format!("assigned {}", describe(&a)),
                        ));
                    }
                }
                Err(e) => {
                    d.failure = Some(e.reason());
                    if !view.ingress.is_empty() {
                        d.ingress = Some(Vec::new());
                        d.released = true;
                    }
                    if view.pool_annotation.is_some() {
                        d.pool_annotation = Some(None);
                    }
                    d.events
                        .push(warning("AllocationFailed", "Allocate", e.to_string()));
                }
            },
        },
    }
    d
}

#[cfg(test)]
mod tests {
    // unwrap() here only parses literal fixtures: it cannot fail unless the test itself is wrong.
    use super::*;
    use crate::controller::service_view::view;
    use ferrolb_core::pool::Pool;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn pools() -> Vec<Pool> {
        vec![Pool::new(
            "lan",
            vec!["198.51.100.10-198.51.100.11".parse().unwrap()],
        )]
    }

    fn svc(name: &str, extra: serde_json::Value) -> ServiceView {
        let mut s = json!({"metadata": {"name": name, "namespace": "default", "annotations": {}},
                           "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}});
        merge(&mut s, extra);
        view(&serde_json::from_value::<Service>(s).unwrap(), None)
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn allocates_then_writes_nothing_when_status_matches() {
        let mut alloc = Allocator::new(pools());
        let d = decide(&mut alloc, &svc("a", json!({})));
        assert_eq!(d.ingress, Some(vec!["198.51.100.10".parse().unwrap()]));
        assert_eq!(d.pool_annotation, Some(Some("lan".into())));
        assert!(d.allocated);
        assert_eq!(d.events[0].reason, "IPAllocated");
        assert_eq!(d.events[0].note, "assigned IP 198.51.100.10 from pool lan");
        let settled = svc(
            "a",
            json!({"metadata": {"annotations": {"ferrolb.io/allocated-from-pool": "lan"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10", "ipMode": "VIP"}]}}}),
        );
        let d = decide(&mut alloc, &settled);
        assert!(d.ingress.is_none() && d.pool_annotation.is_none() && d.events.is_empty());
    }

    #[test]
    fn exhaustion_and_bad_annotations_are_reported_with_reasons() {
        let mut alloc = Allocator::new(pools());
        decide(&mut alloc, &svc("a", json!({})));
        decide(&mut alloc, &svc("b", json!({})));
        let d = decide(&mut alloc, &svc("c", json!({})));
        assert_eq!(d.failure, Some("pool_exhausted"));
        assert_eq!(d.events[0].reason, "AllocationFailed");
        let d = decide(
            &mut alloc,
            &svc(
                "d",
                json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": "not-an-ip"}}}),
            ),
        );
        assert_eq!(d.failure, Some("bad_annotation"));
        assert!(d.events[0].note.starts_with("bad annotation: "));
    }

    #[test]
    fn type_change_releases_and_clears_status() {
        let mut alloc = Allocator::new(pools());
        decide(&mut alloc, &svc("a", json!({})));
        let gone = svc(
            "a",
            json!({"spec": {"type": "ClusterIP"}, "metadata": {"annotations": {"ferrolb.io/allocated-from-pool": "lan"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10", "ipMode": "VIP"}]}}}),
        );
        let d = decide(&mut alloc, &gone);
        assert_eq!(d.ingress, Some(vec![]));
        assert_eq!(d.pool_annotation, Some(None));
        assert!(d.released);
        assert_eq!(d.events[0].reason, "IPReleased");
        assert!(alloc.get(&gone.key).is_none());
    }

    #[test]
    fn type_change_seen_only_after_a_restart_still_clears_our_status() {
        // A fresh allocator (new leader): the Service turned ClusterIP while no leader ran.
        let mut alloc = Allocator::new(pools());
        let stale = svc(
            "a",
            json!({"spec": {"type": "ClusterIP"}, "metadata": {"annotations": {"ferrolb.io/allocated-from-pool": "lan"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10", "ipMode": "VIP"}]}}}),
        );
        let d = decide(&mut alloc, &stale);
        assert_eq!(d.ingress, Some(vec![]));
        assert_eq!(d.pool_annotation, Some(None));
        assert_eq!(d.events[0].reason, "IPReleased");
        assert!(d.events[0].note.contains("198.51.100.10"));
        // Without our annotation the status is someone else's: left alone.
        let foreign = svc(
            "b",
            json!({"spec": {"type": "ClusterIP"},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.11", "ipMode": "VIP"}]}}}),
        );
        let d = decide(&mut alloc, &foreign);
        assert!(d.ingress.is_none() && d.events.is_empty());
    }
}
