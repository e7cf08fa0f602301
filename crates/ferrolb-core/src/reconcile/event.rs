//! What the controller tells users: Event reasons and actions, and the failure reasons of the
//! allocation-failure metric, as enums whose `Display` is the exact string users, alerts and
//! tests match on.

use std::fmt;

use crate::alloc::AllocError;

/// The `reason` of an Event the controller publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventReason {
    /// A Service was given (new) addresses.
    IpAllocated,
    /// A Service's addresses were given back (it left LoadBalancer or our class).
    IpReleased,
    /// A Service could not get what it asked for.
    AllocationFailed,
    /// Two Services' statuses claimed one IP at start-up; the newer one is re-allocated.
    IpConflict,
    /// A config change left a Service's IP outside every pool; it is kept.
    IpOutsidePools,
    /// A new pool config is in force.
    ConfigLoaded,
    /// The pool config is in force but has something worth fixing.
    ConfigWarning,
    /// The pool config was rejected; the last good one stays.
    ConfigInvalid,
}

impl EventReason {
    /// The reason as published; `'static` because Event series are keyed on it.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventReason::IpAllocated => "IPAllocated",
            EventReason::IpReleased => "IPReleased",
            EventReason::AllocationFailed => "AllocationFailed",
            EventReason::IpConflict => "IPConflict",
            EventReason::IpOutsidePools => "IPOutsidePools",
            EventReason::ConfigLoaded => "ConfigLoaded",
            EventReason::ConfigWarning => "ConfigWarning",
            EventReason::ConfigInvalid => "ConfigInvalid",
        }
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `action` of an Event: what the controller was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventAction {
    /// Allocating (or keeping) a Service's addresses.
    Allocate,
    /// Giving a Service's addresses back.
    Release,
    /// Reading the pool ConfigMap.
    LoadConfig,
}

impl EventAction {
    /// The action as published.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventAction::Allocate => "Allocate",
            EventAction::Release => "Release",
            EventAction::LoadConfig => "LoadConfig",
        }
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Event to publish about a Service or the pool ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// Why.
    pub reason: EventReason,
    /// Doing what.
    pub action: EventAction,
    /// The human message.
    pub note: String,
}

impl Event {
    /// A Normal Event.
    pub fn normal(reason: EventReason, action: EventAction, note: String) -> Self {
        Self {
            warning: false,
            reason,
            action,
            note,
        }
    }

    /// A Warning Event.
    pub fn warning(reason: EventReason, action: EventAction, note: String) -> Self {
        Self {
            warning: true,
            reason,
            action,
            note,
        }
    }
}

/// Why a Service got no (or not the asked-for) addresses: the `reason` label of
/// `ferrolb_allocation_failures_total`, and what decides whether it waits for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// Every candidate pool is full.
    PoolExhausted,
    /// No pool can serve the Service (family, autoAssign, namespace, named pool...).
    NoMatchingPool,
    /// The requested IP is held by a Service it may not share with.
    IpInUse,
    /// The requested IP is in no pool.
    IpOutsidePools,
    /// The request contradicts a pool's rules.
    BadRequest,
    /// The Service's annotations do not parse.
    BadAnnotation,
}

impl FailureReason {
    /// The metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::PoolExhausted => "pool_exhausted",
            FailureReason::NoMatchingPool => "no_matching_pool",
            FailureReason::IpInUse => "ip_in_use",
            FailureReason::IpOutsidePools => "ip_outside_pools",
            FailureReason::BadRequest => "bad_request",
            FailureReason::BadAnnotation => "bad_annotation",
        }
    }

    /// Whether a change elsewhere (a release, a new pool) may cure it, so the Service is
    /// decided again when capacity may have appeared. A bad annotation only the user can fix.
    pub const fn waits_for_capacity(self) -> bool {
        !matches!(self, FailureReason::BadAnnotation)
    }
}

impl From<&AllocError> for FailureReason {
    fn from(e: &AllocError) -> Self {
        match e {
            AllocError::PoolExhausted { .. } => FailureReason::PoolExhausted,
            AllocError::NoMatchingPool(_)
            | AllocError::NamedPoolMissing(_)
            | AllocError::NamedPoolRejects { .. }
            | AllocError::NamedPoolLacksFamily { .. }
            | AllocError::DualStackUnavailable => FailureReason::NoMatchingPool,
            AllocError::IpInUse { .. } => FailureReason::IpInUse,
            AllocError::IpOutsidePools(_) => FailureReason::IpOutsidePools,
            AllocError::IpPoolRejects { .. }
            | AllocError::IpNotInNamedPool { .. }
            | AllocError::IpAvoided { .. } => FailureReason::BadRequest,
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
