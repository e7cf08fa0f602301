//! Why the allocator could not give a Service addresses. The Display text goes into the
//! `AllocationFailed` Event, `reason()` into the failure metric's label.

use std::net::IpAddr;

use thiserror::Error;

use super::sharing::SharingConflict;
use super::Holder;
use crate::addr::Family;

/// Why no candidate pool exists for an automatic allocation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoPoolWhy {
    /// No pool has addresses of the family at all.
    #[error("no pool has {0} addresses")]
    NoFamily(Family),
    /// Pools of the family exist, but none has autoAssign.
    #[error(
        "no pool with {0} addresses has autoAssign: true (name one with ferrolb.io/address-pool)"
    )]
    NoneAutoAssign(Family),
    /// The autoAssign pools are all limited to other namespaces.
    #[error("no autoAssign pool with {family} addresses admits namespace {namespace:?}")]
    Namespace {
        /// The wanted family.
        family: Family,
        /// The Service's namespace.
        namespace: String,
    },
    /// The autoAssign pools open to the namespace all select other Service labels.
    #[error(
        "no autoAssign pool with {0} addresses has a serviceSelector matching the Service's labels"
    )]
    Selector(Family),
}

/// Why a Service got no addresses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    /// Every candidate pool is full in this family.
    #[error(
        "pool exhausted: no free {family} address left in {}",
        pool_list(pools)
    )]
    PoolExhausted {
        /// The pools tried, in the order tried.
        pools: Vec<String>,
        /// The family with no free address.
        family: Family,
    },
    /// No pool may be used automatically.
    #[error("no matching pool: {0}")]
    NoMatchingPool(NoPoolWhy),
    /// The pool named by annotation does not exist.
    #[error("no matching pool: the requested pool {0:?} does not exist")]
    NamedPoolMissing(String),
    /// The pool named by annotation exists but is limited to other namespaces or labels.
    #[error("no matching pool: pool {pool:?} does not admit the Service ({why})")]
    NamedPoolRejects {
        /// The named pool.
        pool: String,
        /// Namespace or selector, in words.
        why: String,
    },
    /// The pool named by annotation has no addresses of a family the Service requires.
    #[error("no matching pool: pool {pool:?} has no {family} addresses")]
    NamedPoolLacksFamily {
        /// The named pool.
        pool: String,
        /// The missing family.
        family: Family,
    },
    /// RequireDualStack, but no single usable pool has every family.
    #[error("no matching pool: the Service requires dual-stack but no usable pool has both IPv4 and IPv6 addresses")]
    DualStackUnavailable,
    /// The requested IP is held by a Service it may not be shared with.
    #[error("requested IP {ip} is in use by {holder} ({why})")]
    IpInUse {
        /// The requested IP.
        ip: IpAddr,
        /// One holder of it.
        holder: Holder,
        /// Why they cannot share it.
        why: SharingConflict,
    },
    /// The requested IP is in no pool.
    #[error("requested IP {0} is outside every pool")]
    IpOutsidePools(IpAddr),
    /// The requested IP's pool is limited to other namespaces or labels.
    #[error("requested IP {ip} is in pool {pool:?}, which does not admit the Service ({why})")]
    IpPoolRejects {
        /// The requested IP.
        ip: IpAddr,
        /// Its pool.
        pool: String,
        /// Namespace or selector, in words.
        why: String,
    },
    /// The requested IP is not in the pool the Service also names.
    #[error("requested IP {ip} is in pool {actual}, not in the requested pool {named:?}")]
    IpNotInNamedPool {
        /// The requested IP.
        ip: IpAddr,
        /// The pool named by annotation.
        named: String,
        /// Where the IP actually is (`"no pool"` never happens: that is `IpOutsidePools`).
        actual: String,
    },
    /// The requested IP ends in .0 or .255 and its pool avoids those.
    #[error("requested IP {ip} ends in .0 or .255 and pool {pool:?} has avoidBuggyIPs: true")]
    IpAvoided {
        /// The requested IP.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
}

impl AllocError {
    /// A short, stable label per kind of failure, for the failure counter's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::PoolExhausted { .. } => "pool_exhausted",
            AllocError::NoMatchingPool(_)
            | AllocError::NamedPoolMissing(_)
            | AllocError::NamedPoolRejects { .. }
            | AllocError::NamedPoolLacksFamily { .. }
            | AllocError::DualStackUnavailable => "no_matching_pool",
            AllocError::IpInUse { .. } => "ip_in_use",
            AllocError::IpOutsidePools(_) => "ip_outside_pools",
            AllocError::IpPoolRejects { .. }
            | AllocError::IpNotInNamedPool { .. }
            | AllocError::IpAvoided { .. } => "bad_request",
        }
    }
}

/// Why an existing `status.loadBalancer.ingress` could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// An older Service already holds the IP and the two may not share it.
    #[error("{service}: IP {ip} from its status is already held by {holder} ({why}); the older Service keeps it")]
    Conflict {
        /// The holder being restored.
        service: Holder,
        /// The contested IP.
        ip: IpAddr,
        /// The holder already holding it.
        holder: Holder,
        /// Why they cannot share it (boxed: keeps the `Result` small).
        why: Box<SharingConflict>,
    },
    /// The status lists two IPs of one family (or one IP twice); a Service holds one per family.
    #[error("{service}: status lists {first} and {second}, two {family} addresses")]
    TwoOfOneFamily {
        /// The holder being restored.
        service: Holder,
        /// The family listed twice.
        family: Family,
        /// The first address of that family.
        first: IpAddr,
        /// The second.
        second: IpAddr,
    },
}

fn pool_list(pools: &[String]) -> String {
    let quoted: Vec<String> = pools.iter().map(|p| format!("{p:?}")).collect();
    match quoted.len() {
        1 => format!("pool {}", quoted[0]),
        _ => format!("pools {}", quoted.join(", ")),
    }
}
