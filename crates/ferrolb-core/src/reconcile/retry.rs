//! How long to wait before writing a Service again after a failed write, by kind of failure.

use std::time::Duration;

/// The first retry delay, and the delay after a conflict.
pub const RETRY_MIN: Duration = Duration::from_millis(200);
/// The backoff cap for failures that reached the API server (errors, timeouts, resets).
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Retry cap when no connection to the API server could be made at all: a refused connection
/// costs it nothing, and during an outage only the writes already pending wait, so they may
/// knock every second and land as soon as it is back instead of up to 30 s later.
pub const RETRY_MAX_UNREACHABLE: Duration = Duration::from_secs(1);

/// Why a write failed, as far as the retry policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// 409: our patches carry no precondition, so this is the server's transient contention,
    /// not a lost race.
    Conflict,
    /// No connection could be made (refused, no route): the request never reached the server.
    Unreachable,
    /// Anything else: an API error, a timeout, a connection reset mid-request.
    Other,
}

/// The delay before attempt `attempts + 1`, `attempts` (at least 1) being the number of
/// consecutive failed writes so far.
pub fn retry_delay(failure: WriteFailure, attempts: u32) -> Duration {
    let cap = match failure {
        WriteFailure::Conflict => return RETRY_MIN,
        WriteFailure::Unreachable => RETRY_MAX_UNREACHABLE,
        WriteFailure::Other => RETRY_MAX,
    };
    RETRY_MIN.saturating_mul(1 << attempts.min(10)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_conflicts_retry_at_once() {
        assert_eq!(
            retry_delay(WriteFailure::Other, 1),
            Duration::from_millis(400)
        );
        assert_eq!(
            retry_delay(WriteFailure::Other, 2),
            Duration::from_millis(800)
        );
        assert_eq!(retry_delay(WriteFailure::Other, 20), RETRY_MAX);
        assert_eq!(
            retry_delay(WriteFailure::Unreachable, 1),
            Duration::from_millis(400)
        );
        assert_eq!(
            retry_delay(WriteFailure::Unreachable, 9),
            RETRY_MAX_UNREACHABLE
        );
        assert_eq!(retry_delay(WriteFailure::Conflict, 9), RETRY_MIN);
    }
}
