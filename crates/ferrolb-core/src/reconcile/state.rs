//! Everything the reconciler remembers about one Service, in one place.

use std::net::IpAddr;

use super::event::Event;
use super::facts::ServiceFacts;
use crate::election::MonoTime;
use crate::service::ServiceKey;

/// What a Service shows after our last successful write, until the cache catches up. Without
/// it a fast second decision would see the old status and allocate (and announce) again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The ingress our write left.
    pub ingress: Vec<IpAddr>,
    /// The pool annotation our write left.
    pub pool: Option<String>,
    /// When the write finished.
    pub at: MonoTime,
}

/// A write handed to the caller and not yet reported back: at most one per Service, so two
/// writes for one Service never race each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The ingress being written, if any.
    pub ingress: Option<Vec<IpAddr>>,
    /// Whether the pool annotation is being written.
    pub writes_annotation: bool,
    /// Ingress and pool annotation the Service shows once the write is carried out.
    pub outcome: (Vec<IpAddr>, Option<String>),
}

/// Why a Service's write is held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Another Service's status still shows one of the IPs this Service would be given,
    /// although the allocator no longer gives it to that Service (its own rewrite is pending
    /// or failing). Released when that Service's status changes, or at the backstop retry.
    WaitingFor(ServiceKey),
    /// The Service failed for lack of capacity or of a matching pool; decided again when
    /// capacity may have appeared (a release, an end of quarantine, a new config).
    WaitingForCapacity,
}

/// One Service's state in the reconciler.
#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    /// As last observed; `None` once deleted (the state lingers until its last write ends).
    pub facts: Option<ServiceFacts>,
    /// The IPs its observed status shows (see [`ServiceFacts::shown_ips`]).
    pub shows: Vec<IpAddr>,
    /// The IPs of our last successful status write. The cache can lag our own writes by
    /// seconds (a dropped watch), so what a status shows is judged from both.
    pub written: Vec<IpAddr>,
    /// The write in flight, if any.
    pub in_flight: Option<InFlight>,
    /// When to decide it again (a failed write's backoff, an expectation to re-check, the
    /// backstop of a hold).
    pub retry_at: Option<MonoTime>,
    /// Consecutive failed writes, for backoff.
    pub attempts: u32,
    /// Last failure message, so a repeated failure is not re-announced every pass.
    pub last_failure: Option<String>,
    /// Why its write is held back, if it is.
    pub hold: Option<Hold>,
    /// Our write the cache may not have delivered yet.
    pub expectation: Option<Expectation>,
    /// Events owed to it outside a decision (a config change orphaned its IPs), sent with its
    /// next write so thousands of them never stall the loop.
    pub pending_notices: Vec<Event>,
    /// IPs it gave up in memory that its status may still show: held in the allocator until
    /// the write that removes them from its status succeeds, so that writes running
    /// concurrently can never show one IP on two Services.
    pub quarantined: Vec<IpAddr>,
}

impl ServiceState {
    /// Every IP its status may show now: observed, or written by us and not yet observed.
    pub fn may_show(&self) -> impl Iterator<Item = &IpAddr> {
        self.shows
            .iter()
            .chain(self.written.iter().filter(|ip| !self.shows.contains(ip)))
    }

    /// Whether nothing is left to remember: the Service is gone and nothing refers to it.
    pub fn is_forgettable(&self) -> bool {
        self.facts.is_none()
            && self.in_flight.is_none()
            && self.shows.is_empty()
            && self.written.is_empty()
            && self.quarantined.is_empty()
    }
}
