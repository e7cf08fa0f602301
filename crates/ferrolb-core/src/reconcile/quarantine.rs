//! Quarantine: an IP a Service gave up in memory while its status may still show it stays
//! held in the allocator until the write that removes it from that status succeeds.
//!
//! The hold is a typed allocator holder ([`Holder::Quarantine`]), one per (IP, Service); the
//! reconciler's own record of it is [`super::state::ServiceState::quarantined`].

use std::net::IpAddr;

use super::facts::ServiceFacts;
use crate::addr::Family;
use crate::alloc::{Allocator, Holder};
use crate::service::{AllocationRequest, ServiceKey, SharingAttrs};

fn holder(ip: IpAddr, left_by: &ServiceKey) -> Holder {
    Holder::quarantine(ip, left_by.clone())
}

/// Holds `ip`, which `left_by` (as `facts`) gave up, unless some Service holds it in a way
/// no hold can share (then it was never free). Returns whether it is now held.
pub(super) fn hold(
    alloc: &mut Allocator,
    left_by: &ServiceKey,
    facts: &ServiceFacts,
    ip: IpAddr,
) -> bool {
    let mut req = fallback_request(facts);
    req.ips = vec![ip];
    req.families = vec![Family::of(&ip)];
    // The hold serves no port and takes the key and traffic policy of whoever still shares
    // the IP, so it sits beside them; Services that could not share with them cannot take the
    // IP either, even once they leave while this status is stale.
    req.sharing.ports.clear();
    req.sharing_key = None;
    let other = alloc
        .holders(&ip)
        .into_iter()
        .find(|h| *h != left_by)
        .cloned();
    if let Some(other) = other {
        req.sharing_key = alloc.get(&other).and_then(|a| a.sharing_key.clone());
        if let Some(attrs) = alloc.sharing_attrs(&other) {
            req.sharing.external_traffic_local = attrs.external_traffic_local;
            req.sharing.selector = attrs.selector.clone();
        }
    }
    alloc
        .restore_holder(&holder(ip, left_by), &req, &[ip])
        .is_ok()
}

/// Lets `ip`, held for `left_by`, go.
pub(super) fn release(alloc: &mut Allocator, left_by: &ServiceKey, ip: &IpAddr) {
    alloc.release_holder(&holder(*ip, left_by));
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
