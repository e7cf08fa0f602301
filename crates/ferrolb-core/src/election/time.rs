//! The monotonic timestamp every election input carries.
//!
//! The election logic never reads a clock itself: the caller passes the time in, so tests can
//! drive whole outage scenarios with exact, repeatable times, and no decision ever depends on
//! another node's wall clock.

use std::ops::Add;
use std::time::Duration;

/// A point on this speaker's own monotonic clock, as the time elapsed since an epoch the caller
/// picks once (typically `Instant` at process start). Only differences between two `MonoTime`s
/// from the same speaker mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(Duration);

impl MonoTime {
    /// The caller's epoch.
    pub const ZERO: MonoTime = MonoTime(Duration::ZERO);

    /// The time `elapsed` after the caller's epoch (e.g. `start.elapsed()`).
    pub const fn from_elapsed(elapsed: Duration) -> Self {
        MonoTime(elapsed)
    }

    /// The time `ms` milliseconds after the caller's epoch; mostly for tests and scenarios.
    pub const fn from_millis(ms: u64) -> Self {
        MonoTime(Duration::from_millis(ms))
    }

    /// The time since the caller's epoch.
    pub const fn elapsed(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is actually later, because inputs from
    /// different tasks may arrive slightly out of order and must not panic or wrap.
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;

    /// Saturates instead of overflowing: a time ~584 years out is "never" for every purpose here.
    fn add(self, rhs: Duration) -> MonoTime {
        MonoTime(self.0.saturating_add(rhs))
    }
}
