//! How long watches wait before retrying after an error.
//!
//! kube-runtime's default grows to 30 s, so after a long API outage a speaker could stay
//! API-degraded (holding its IPs, taking over nothing) for up to half a minute after the API
//! server is back, and the controller could sit on pending work as long. FerroLB retries from
//! 200 ms, doubling to at most 3 s, with jitter so hundreds of nodes do not reconnect in step.

use std::time::Duration;

use kube::runtime::utils::Backoff;
use rand::Rng;

const MIN: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(3);

/// The watch retry schedule (an endless iterator of delays, reset after a success).
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        // Between half and all of the base delay.
        let factor = rand::rng().random_range(0.5..=1.0);
        Some(base.mul_f64(factor))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = b.by_ref().take(8).collect();
        assert!(delays[0] <= MIN && delays[0] >= MIN / 2);
        assert!(delays.iter().all(|d| *d <= MAX));
        assert!(delays[7] >= MAX / 2, "capped, not stuck small: {delays:?}");
        b.reset();
        assert!(b.next().is_some_and(|d| d <= MIN));
    }
}
