//! Reconnect delays: exponential with jitter and a cap, so a peer that keeps refusing or
//! NOTIFYing us (Bad Peer AS, a wrong MD5 key) sees a slowing trickle of attempts rather than
//! the reconnect storm MetalLB users reported (metallb#309, #1114), and a fleet of speakers
//! that lost a router at the same moment does not come back in lockstep.

use std::time::Duration;

/// Exponential backoff state for one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff whose first delay is about `base`, doubling up to `cap`; `seed` is the
    /// injected randomness (the driver passes a random number, tests a fixed one).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap,
            failures: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns how long to wait before the next attempt: a uniformly
    /// random point in the upper half of `min(cap, base·2^failures)` ("equal jitter"), so the
    /// delay still grows while no two speakers retry together.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self
            .base
            .checked_mul(1u32 << exp)
            .map_or(self.cap, |d| d.min(self.cap));
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            self.random() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Forgets past failures after a session proved stable.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut prev_hi = Duration::ZERO;
        for n in 0..12u32 {
            let d = b.next_delay();
            let full = Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60));
            assert!(
                d >= full / 2 && d <= full,
                "attempt {n}: {d:?} outside [{:?}, {full:?}]",
                full / 2
            );
            assert!(full >= prev_hi);
            prev_hi = full;
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn different_seeds_spread_retries() {
        let delays: Vec<Duration> = (1..=8u64)
            .map(|s| {
                let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(60), s * 7919);
                b.next_delay()
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 4, "{delays:?}");
    }
}
