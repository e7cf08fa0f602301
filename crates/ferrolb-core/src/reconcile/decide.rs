//! Deciding what one Service should look like, in memory: allocate, keep or release its
//! addresses and say what to write. The holds that keep concurrent writes safe are layered
//! on top of this by [`super::Reconciler`].

use std::net::IpAddr;

use super::event::{Event, EventAction, EventReason, FailureReason};
use super::facts::{Handling, ServiceFacts};
use crate::alloc::{AllocError, Allocation, Allocator};
use crate::service::{allocation_request, AllocationRequest};

/// What to write for a Service, and what happened, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `Some(ips)`: the ingress must become exactly this.
    pub ingress: Option<Vec<IpAddr>>,
    /// `Some(v)`: the pool annotation must become `v`.
    pub pool_annotation: Option<Option<String>>,
    /// Events to publish.
    pub events: Vec<Event>,
    /// Why the Service could not get what it asked for.
    pub failure: Option<FailureReason>,
    /// A new allocation was made.
    pub allocated: bool,
    /// Addresses were given back (capacity may have appeared for waiting Services).
    pub released: bool,
}

/// "IP a" or "IPs a, b", as Event messages say it.
pub fn ip_list(ips: &[IpAddr]) -> String {
    let words: Vec<String> = ips.iter().map(ToString::to_string).collect();
    let noun = if ips.len() == 1 { "IP" } else { "IPs" };
    format!("{noun} {}", words.join(", "))
}

fn describe(a: &Allocation) -> String {
    match a.pool() {
        Some(pool) if !a.is_orphaned() => format!("{} from pool {pool}", ip_list(&a.addresses())),
        _ => format!(
            "{} (outside every configured pool)",
            ip_list(&a.addresses())
        ),
    }
}

/// Ensures `facts`' allocation. An address outside every pool is kept only while the status
/// shows it ("a config change moves nothing"); one the Service was given but never showed
/// (its write had not landed when the pool went) is not handed out: that write would put an
/// IP outside every pool on a Service.
fn ensure_in_pools(
    alloc: &mut Allocator,
    facts: &ServiceFacts,
    written: &[IpAddr],
    req: &AllocationRequest,
) -> Result<Allocation, AllocError> {
    let shown = |ip: &IpAddr| facts.ingress.contains(ip) || written.contains(ip);
    let unshown_orphan = alloc
        .get(&facts.key)
        .is_some_and(|a| a.is_orphaned() && !a.addresses().iter().all(shown));
    if unshown_orphan {
        alloc.release(&facts.key);
    }
    alloc.ensure(&facts.key, req)
}

/// Decides for `facts`, updating `alloc`. `written` is what our last successful write put in
/// the status, which a lagging cache may not show yet: a status that may show an IP is
/// cleared explicitly, never assumed empty.
pub fn decide(alloc: &mut Allocator, facts: &ServiceFacts, written: &[IpAddr]) -> Decision {
    let mut d = Decision::default();
    let key = &facts.key;
    let may_show_any = !facts.ingress.is_empty() || !written.is_empty();
    match facts.handling {
        Handling::Deleting => d.released = alloc.release(key).is_some(),
        Handling::NotLoadBalancer | Handling::OtherClass => {
            let held = alloc.release(key);
            // Ours if the allocator holds it, or if our pool annotation says an earlier
            // controller wrote the status: after a restart or a leader change the allocator
            // only replays LoadBalancer Services, so a Service whose type changed while no
            // leader ran would otherwise keep a stale IP in its status for ever.
            let ours = held.is_some() || facts.pool_annotation.is_some();
            let addresses = held
                .as_ref()
                .map_or_else(|| facts.ingress.clone(), |a| a.addresses());
            if held.is_some() {
                d.released = true;
            }
            if ours && may_show_any {
                d.ingress = Some(Vec::new());
            }
            if ours && !addresses.is_empty() {
                let why = if facts.handling == Handling::OtherClass {
                    "the Service's loadBalancerClass is not handled by this controller"
                } else {
                    "the Service is no longer of type LoadBalancer"
                };
                d.events.push(Event::normal(
                    EventReason::IpReleased,
                    EventAction::Release,
                    format!("released {}: {why}", ip_list(&addresses)),
                ));
            }
            if facts.pool_annotation.is_some() {
                d.pool_annotation = Some(None);
            }
        }
        Handling::Ours => match allocation_request(&facts.info) {
            Err(e) => {
                d.failure = Some(FailureReason::BadAnnotation);
                let note = match alloc.get(key) {
                    Some(a) => format!("bad annotation: {e}; keeping {}", ip_list(&a.addresses())),
                    None => format!("bad annotation: {e}"),
                };
                d.events.push(Event::warning(
                    EventReason::AllocationFailed,
                    EventAction::Allocate,
                    note,
                ));
            }
            Ok(req) => match ensure_in_pools(alloc, facts, written, &req) {
                Ok(a) => {
                    let ips = a.addresses();
                    let changed = ips != facts.ingress;
                    if changed || !facts.ingress_in_our_shape {
                        d.ingress = Some(ips.clone());
                    }
                    // Addresses outside every pool have no pool to name, but the annotation
                    // they came with stays: it is what marks the status as ours, and a leader
                    // started after this Service left LoadBalancer clears only marked statuses.
                    let pool = a
                        .pool()
                        .map(String::from)
                        .or_else(|| facts.pool_annotation.clone());
                    if pool != facts.pool_annotation {
                        d.pool_annotation = Some(pool);
                    }
                    if changed {
                        d.allocated = true;
                        d.events.push(Event::normal(
                            EventReason::IpAllocated,
                            EventAction::Allocate,
                            format!("assigned {}", describe(&a)),
                        ));
                    }
                }
                Err(e) => {
                    d.failure = Some(FailureReason::from(&e));
                    if may_show_any {
                        d.ingress = Some(Vec::new());
                        d.released = true;
                    }
                    if facts.pool_annotation.is_some() {
                        d.pool_annotation = Some(None);
                    }
                    d.events.push(Event::warning(
                        EventReason::AllocationFailed,
                        EventAction::Allocate,
                        e.to_string(),
                    ));
                }
            },
        },
    }
    d
}
