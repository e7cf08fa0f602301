//! The controller's decision core: which IPs each Service gets and when it is safe to write
//! them, given what the watches delivered, how earlier writes went and the time.
//!
//! Pure and clock-free, shaped like the speaker's [`crate::election::Announcer`]: the caller
//! feeds observations ([`Reconciler::synced`], [`Reconciler::service_seen`],
//! [`Reconciler::service_deleted`], [`Reconciler::relisted`], [`Reconciler::apply_config`],
//! [`Reconciler::write_finished`], [`Reconciler::wake`]), takes [`Decided`] writes from
//! [`Reconciler::next_decision`] and sleeps until [`Reconciler::next_wake`].
//!
//! The rules that keep one IP off two Services, even while writes are in flight:
//!
//! * **Replay first**: at start every existing ingress is registered, oldest Service first,
//!   before anything new is allocated; a newer Service claiming an older one's IP gets an
//!   `IPConflict` Warning and a new IP.
//! * **Uid-bound writes**: every [`Write`] names the uid it was decided for.
//! * **Quarantine**: an IP a Service gives up while its status may still show it stays held
//!   until the write that clears that status succeeds (or the Service is gone).
//! * **Shown = cache ∪ own writes**: the cache can lag our own writes, so what a status may
//!   show is judged from both.
//! * **Hold for a stale status**: a write is held while another Service's status may show one
//!   of its IPs without holding it; released when that status changes.
//! * **Expectations**: after a write, its result is trusted over a cache that has not delivered
//!   it yet, for at most [`EXPECTATION_TTL`].
//! * **Backoff**: failed writes are retried with exponential backoff, capped at 1 s when the
//!   API server was unreachable and at 30 s otherwise; conflicts retry at once.
//! * **Waiting for capacity**: Services that failed for lack of capacity or a pool are decided
//!   again when capacity may have appeared.
//! * **Config changes move nothing**: IPs outside every pool are kept with an
//!   `IPOutsidePools` Warning, sent with the Service's next write.

mod config;
mod decide;
mod event;
mod facts;
mod plan;
mod quarantine;
mod reconciler;
mod retry;
mod state;

pub use config::{judge_config, ConfigVerdict};
pub use decide::{decide, ip_list, Decision};
pub use event::{Event, EventAction, EventReason, FailureReason};
pub use facts::{Handling, ServiceFacts};
pub use plan::{Backoff, Decided, Replay, ReplayConflict, Write, WriteResult};
pub use reconciler::{Reconciler, DEFAULT_MAX_IN_FLIGHT, EXPECTATION_TTL};
pub use retry::{retry_delay, WriteFailure, RETRY_MAX, RETRY_MAX_UNREACHABLE, RETRY_MIN};
pub use state::{Expectation, Hold, InFlight, ServiceState};

#[cfg(test)]
mod tests;
