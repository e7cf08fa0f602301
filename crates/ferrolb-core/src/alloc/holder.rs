//! Who holds an address in the allocator. Mostly Services; but an address a Service gave up
//! while its status may still show it must stay held too (the reconciler's quarantine), and
//! that hold is a kind of its own rather than a Service under a made-up key.

use std::fmt;
use std::net::IpAddr;

use crate::service::ServiceKey;

/// One holder of addresses. As small as a [`ServiceKey`] (the rare quarantine is boxed), so
/// the allocator's memory per allocation does not grow for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Holder {
    /// A Service, holding what its status shows (or is about to).
    Service(ServiceKey),
    /// An address given up by a Service whose status may still show it.
    Quarantine(Box<Quarantine>),
}

/// `ip`, given up by `left_by` but possibly still shown in its status, so no one else may be
/// given it yet. One per (IP, Service): two Services leaving one shared IP each keep it until
/// their own status is rewritten.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quarantine {
    /// The address held.
    pub ip: IpAddr,
    /// The Service whose status may still show it.
    pub left_by: ServiceKey,
}

impl Holder {
    /// A quarantine hold of `ip` for `left_by`.
    pub fn quarantine(ip: IpAddr, left_by: ServiceKey) -> Self {
        Holder::Quarantine(Box::new(Quarantine { ip, left_by }))
    }

    /// The Service, when this holder is one.
    pub fn service(&self) -> Option<&ServiceKey> {
        match self {
            Holder::Service(key) => Some(key),
            Holder::Quarantine(_) => None,
        }
    }

    pub(super) fn who(&self) -> Who<'_> {
        match self {
            Holder::Service(key) => Who::Service(key),
            Holder::Quarantine(q) => Who::Quarantine(q),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Service(key) => write!(f, "{key}"),
            Holder::Quarantine(q) => {
                write!(
                    f,
                    "{} (which gave up {} but may still show it)",
                    q.left_by, q.ip
                )
            }
        }
    }
}

/// A borrowed [`Holder`]: how the allocator names one without cloning a key on every call.
/// Ordered exactly as `Holder` is, so it can search the sorted holder lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Who<'a> {
    Service(&'a ServiceKey),
    Quarantine(&'a Quarantine),
}

impl<'a> Who<'a> {
    pub(super) fn to_holder(self) -> Holder {
        match self {
            Who::Service(key) => Holder::Service(key.clone()),
            Who::Quarantine(q) => Holder::Quarantine(Box::new(q.clone())),
        }
    }

    /// The namespace the hold belongs to, for pools limited to namespaces.
    pub(super) fn namespace(self) -> &'a str {
        match self {
            Who::Service(key) => &key.namespace,
            Who::Quarantine(q) => &q.left_by.namespace,
        }
    }
}
