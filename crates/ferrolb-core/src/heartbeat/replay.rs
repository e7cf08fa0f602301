//! The replay guard: an authenticated heartbeat is accepted only if it is newer than anything
//! already accepted from its sender, so a recorded datagram played back later (to keep a dead
//! node looking alive) is refused.
//!
//! Per sender it remembers the boot epoch and the highest counter. Within one epoch the counter
//! must strictly increase. A larger epoch is a restart and starts over. Once the sender's Lease
//! names its current epoch ([`ReplayGuard::set_lease_epoch`]), only that epoch is accepted: the
//! Lease is written through the authenticated API, so not even a receiver that just restarted
//! (and remembers nothing) can be fed an older boot's datagrams.

use std::collections::BTreeMap;

use thiserror::Error;

use super::datagram::Heartbeat;

/// Why an authenticated heartbeat was refused as a replay. Each variant is one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Replay {
    /// Same epoch, counter not above the last one accepted.
    #[error("heartbeat counter {counter} is not above the last accepted {last}")]
    OldCounter {
        /// The counter received.
        counter: u64,
        /// The highest counter accepted in this epoch.
        last: u64,
    },
    /// An epoch older than the one accepted, or other than the one the sender's Lease names.
    #[error("heartbeat epoch {epoch} is not the sender's current epoch {current}")]
    OldEpoch {
        /// The epoch received.
        epoch: u64,
        /// The epoch in force.
        current: u64,
    },
}

impl Replay {
    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Replay::OldCounter { .. } => "replayed",
            Replay::OldEpoch { .. } => "old_epoch",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SenderState {
    /// The highest (epoch, counter) accepted.
    accepted: Option<(u64, u64)>,
    /// The epoch the sender's Lease names, if any.
    lease_epoch: Option<u64>,
}

/// Per-sender newest-accepted bookkeeping.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    senders: BTreeMap<String, SenderState>,
    rejected: u64,
}

impl ReplayGuard {
    /// A guard that has accepted nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `node`'s Lease names `epoch` as its current boot epoch (or none, `None`).
    pub fn set_lease_epoch(&mut self, node: &str, epoch: Option<u64>) {
        match self.senders.get_mut(node) {
            Some(s) => s.lease_epoch = epoch,
            None if epoch.is_some() => {
                self.senders.insert(
                    node.to_owned(),
                    SenderState {
                        accepted: None,
                        lease_epoch: epoch,
                    },
                );
            }
            None => {}
        }
    }

    /// `node`'s Lease is gone: forget it, so a later incarnation starts afresh.
    pub fn forget(&mut self, node: &str) {
        self.senders.remove(node);
    }

    /// Accepts `hb` (already authenticated) if it is newer than everything accepted from its
    /// sender; records it.
    pub fn check(&mut self, hb: &Heartbeat) -> Result<(), Replay> {
        let state = self.senders.entry(hb.node.clone()).or_default();
        let verdict = match (state.lease_epoch, state.accepted) {
            (Some(current), _) if hb.epoch != current => Err(Replay::OldEpoch {
                epoch: hb.epoch,
                current,
            }),
            (_, Some((epoch, last))) if hb.epoch == epoch && hb.counter <= last => {
                Err(Replay::OldCounter {
                    counter: hb.counter,
                    last,
                })
            }
            (None, Some((epoch, _))) if hb.epoch < epoch => Err(Replay::OldEpoch {
                epoch: hb.epoch,
                current: epoch,
            }),
            _ => Ok(()),
        };
        match verdict {
            Ok(()) => state.accepted = Some((hb.epoch, hb.counter)),
            Err(_) => self.rejected += 1,
        }
        verdict
    }

    /// How many heartbeats were refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hb(node: &str, epoch: u64, counter: u64) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            epoch,
            counter,
            interval: Duration::from_millis(200),
            misses: 3,
        }
    }

    #[test]
    fn counters_must_strictly_increase_within_an_epoch() {
        let mut g = ReplayGuard::new();
        assert_eq!(g.check(&hb("a", 5, 1)), Ok(()));
        assert_eq!(g.check(&hb("a", 5, 3)), Ok(()));
        assert_eq!(
            g.check(&hb("a", 5, 3)),
            Err(Replay::OldCounter {
                counter: 3,
                last: 3
            })
        );
        assert!(g.check(&hb("a", 5, 2)).is_err());
        // Another sender has its own sequence.
        assert_eq!(g.check(&hb("b", 1, 1)), Ok(()));
        assert_eq!(g.rejected(), 2);
    }

    #[test]
    fn a_restart_starts_over_but_an_older_boot_is_refused() {
        let mut g = ReplayGuard::new();
        g.check(&hb("a", 5, 100)).unwrap();
        assert_eq!(g.check(&hb("a", 6, 0)), Ok(()), "restarted: larger epoch");
        assert_eq!(
            g.check(&hb("a", 5, 101)),
            Err(Replay::OldEpoch {
                epoch: 5,
                current: 6
            })
        );
    }

    #[test]
    fn the_lease_epoch_pins_the_sender_even_for_a_fresh_receiver() {
        let mut g = ReplayGuard::new();
        g.set_lease_epoch("a", Some(7));
        // An older boot's recording, played to a receiver that remembers nothing else.
        assert!(matches!(
            g.check(&hb("a", 6, 1_000)),
            Err(Replay::OldEpoch { .. })
        ));
        // A *newer* epoch than the lease names is refused too, until the lease catches up.
        assert!(g.check(&hb("a", 8, 0)).is_err());
        assert_eq!(g.check(&hb("a", 7, 1)), Ok(()));
        g.set_lease_epoch("a", Some(8));
        assert_eq!(g.check(&hb("a", 8, 0)), Ok(()));
        // Forgetting the sender clears everything.
        g.forget("a");
        assert_eq!(g.check(&hb("a", 1, 0)), Ok(()));
    }
}
