//! What the reconciler hands out and is told back: writes to make, how they went, what a
//! decision was, and what replaying existing statuses found.

use std::net::IpAddr;
use std::time::Duration;

use super::event::{Event, FailureReason};
use super::retry::WriteFailure;
use crate::service::ServiceKey;

/// A write to make on one Service: its status and pool annotation, then its Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The Service.
    pub key: ServiceKey,
    /// The uid the decision was made for; the write must be refused if the name now belongs
    /// to another object.
    pub uid: Option<String>,
    /// `Some(ips)`: make `status.loadBalancer.ingress` exactly these (empty clears it).
    pub ingress: Option<Vec<IpAddr>>,
    /// `Some(Some(pool))`: set the pool annotation; `Some(None)`: remove it.
    pub pool_annotation: Option<Option<String>>,
    /// Events to publish on the Service once written.
    pub events: Vec<Event>,
}

/// How a [`Write`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    /// Everything written.
    Done,
    /// The Service no longer exists, or its name belongs to a re-created object.
    Gone,
    /// A write failed. `status_written`: the status part succeeded before the failure (the
    /// annotation is removed after the status when releasing).
    Failed {
        /// Why, for the retry policy.
        failure: WriteFailure,
        /// Whether the ingress reached the status.
        status_written: bool,
    },
}

/// One Service decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The Service.
    pub key: ServiceKey,
    /// What to write now (the caller must carry it out and report with
    /// [`Reconciler::write_finished`]).
    pub write: Option<Write>,
    /// A new allocation was made.
    pub allocated: bool,
    /// The Service could not get what it asked for.
    pub failure: Option<FailureReason>,
    /// The write is held until this Service's status changes.
    pub waiting_for: Option<ServiceKey>,
}

/// When a failed write is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failures so far.
    pub attempts: u32,
    /// Delay before the next attempt.
    pub delay: Duration,
}

/// A Service whose status, at start-up, claims an IP an older Service already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConflict {
    /// The newer Service, which will get a new IP.
    pub key: ServiceKey,
    /// Its uid.
    pub uid: Option<String>,
    /// The `IPConflict` Warning to publish on it.
    pub event: Event,
}

/// What replaying the existing statuses found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// Services that lose an IP to an older one.
    pub conflicts: Vec<ReplayConflict>,
    /// Services keeping an IP that is outside every pool.
    pub orphaned: Vec<(ServiceKey, Vec<IpAddr>)>,
}
