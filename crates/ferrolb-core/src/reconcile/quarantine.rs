//! Quarantine: an IP a Service gave up in memory while its status may still show it stays
//! held in the allocator until the write that removes it from that status succeeds.
//!
//! The allocator knows only Services as holders, so a quarantined IP is held under a
//! placeholder key that this module alone makes and recognises; the reconciler's own record
//! of a quarantine is typed ([`super::state::ServiceState::quarantined`]), and placeholder keys
//! never leave the reconciler.

use std::net::IpAddr;

use super::facts::ServiceFacts;
use crate::addr::Family;
use crate::alloc::Allocator;
use crate::service::{AllocationRequest, ServiceKey, SharingAttrs};

/// A slash never occurs in a real namespace, so placeholders cannot collide with a Service.
const PLACEHOLDER_NAMESPACE: &str = "ferrolb.io/quarantine";

/// The allocator key holding `ip` for `left_by`: one per (IP, Service), so two Services
/// leaving one shared IP each keep it until their own status is rewritten.
fn placeholder(ip: &IpAddr, left_by: &ServiceKey) -> ServiceKey {
    ServiceKey::new(PLACEHOLDER_NAMESPACE, format!("{ip} {left_by}"))
}

/// Whether an allocator key is a quarantine placeholder rather than a Service.
pub(super) fn is_placeholder(key: &ServiceKey) -> bool {
    key.namespace == PLACEHOLDER_NAMESPACE
}

/// Holds `ip`, which `left_by` (as `facts`) gave up, unless some Service holds it in a way
/// no placeholder can share (then it was never free). Returns whether it is now held.
pub(super) fn hold(
    alloc: &mut Allocator,
    left_by: &ServiceKey,
    facts: &ServiceFacts,
    ip: IpAddr,
) -> bool {
    let mut req = fallback_request(facts);
    req.ips = vec![ip];
    req.families = vec![Family::of(&ip)];
    // The placeholder serves no port and takes the key and traffic policy of whoever still
    // shares the IP, so it sits beside them; Services that could not share with them cannot
    // take the IP either, even once they leave while this status is stale.
    req.sharing.ports.clear();
    req.sharing_key = None;
    let other = alloc
        .holders(&ip)
        .into_iter()
        .find(|h| *h != left_by && !is_placeholder(h))
        .cloned();
    if let Some(other) = other {
        req.sharing_key = alloc.get(&other).and_then(|a| a.sharing_key.clone());
        if let Some(attrs) = alloc.sharing_attrs(&other) {
            req.sharing.external_traffic_local = attrs.external_traffic_local;
            req.sharing.selector = attrs.selector.clone();
        }
    }
    alloc
        .restore(&placeholder(&ip, left_by), &req, &[ip])
        .is_ok()
}

/// Lets `ip`, held for `left_by`, go.
pub(super) fn release(alloc: &mut Allocator, left_by: &ServiceKey, ip: &IpAddr) {
    alloc.release(&placeholder(ip, left_by));
}

/// What to restore a Service with when its annotations no longer parse: its addresses must
/// still be registered, or another Service could be given them.
pub(super) fn fallback_request(facts: &ServiceFacts) -> AllocationRequest {
    AllocationRequest {
        pool: None,
        ips: facts.ingress.clone(),
        sharing_key: None,
        families: facts.ingress.iter().map(Family::of).collect(),
        require_all: false,
        sharing: SharingAttrs {
            ports: facts.info.ports.iter().copied().collect(),
            external_traffic_local: facts.info.external_traffic_local,
            selector: facts.info.selector.clone(),
        },
        namespace: facts.info.namespace.clone(),
        labels: facts.info.labels.clone(),
    }
}
