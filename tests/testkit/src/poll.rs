//! Waiting for an outcome: poll a condition until a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] re-checks: often enough that tests do not idle, rarely enough that
/// polling is not the load being measured.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `f` every [`POLL_INTERVAL`] until it returns `Some`, and returns that value; panics
/// naming `what` once `deadline` has passed. Tests assert *that* something happens this way,
/// never by sleeping a guessed time.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
