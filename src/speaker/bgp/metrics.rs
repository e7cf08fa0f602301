//! Per-peer BGP metrics (`ferrolb_speaker_bgp_*`; docs/operations.md lists them). They are
//! refreshed from each peer task's [`PeerStatus`] by the manager, so the session code stays
//! free of Prometheus.

use ferrolb_core::bgp::{SessionCounters, State};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::peer::PeerStatus;

/// Labels of per-peer metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's `name` in the config.
    pub peer: String,
}

/// Labels of the resets counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResetLabels {
    /// The peer's name.
    pub peer: String,
    /// Why the session went down (`hold_timer_expired`, `connect_timeout`, ...).
    pub reason: String,
}

/// Labels of the last-error gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The peer's name.
    pub peer: String,
    /// The most recent error, in words.
    pub error: String,
}

/// Every BGP metric of the speaker.
#[derive(Clone, Default)]
pub struct BgpMetrics {
    /// 1 while the session is Established.
    pub session_up: Family<PeerLabels, Gauge>,
    /// Times the session reached Established.
    pub established: Family<PeerLabels, Counter>,
    /// Session resets by reason.
    pub resets: Family<ResetLabels, Counter>,
    /// Prefixes the peer holds from this node.
    pub prefixes: Family<PeerLabels, Gauge>,
    /// UPDATE messages sent.
    pub updates: Family<PeerLabels, Counter>,
    /// 1 for the peer's most recent error (the label holds the text).
    pub last_error: Family<ErrorLabels, Gauge>,
}

/// What was last exported for one peer, to turn the task's running totals into counter
/// increments (a restarted task starts its totals from zero).
#[derive(Debug, Default)]
pub struct Exported {
    counters: SessionCounters,
}

impl BgpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker_bgp");
        r.register(
            "session_up",
            "1 while the BGP session to the peer is Established",
            m.session_up.clone(),
        );
        r.register(
            "sessions_established",
            "Times the BGP session to the peer reached Established",
            m.established.clone(),
        );
        r.register(
            "session_resets",
            "BGP session resets by reason",
            m.resets.clone(),
        );
        r.register(
            "prefixes_advertised",
            "Prefixes the peer currently holds from this node",
            m.prefixes.clone(),
        );
        r.register(
            "updates_sent",
            "BGP UPDATE messages sent to the peer (End-of-RIB included)",
            m.updates.clone(),
        );
        r.register(
            "last_error",
            "1 for the most recent error of the peer's session; the error label says what",
            m.last_error.clone(),
        );
        m
    }

    /// Exports `status` of `peer`; `seen` is what was exported from the same task before.
    pub fn update(&self, peer: &str, status: &PeerStatus, seen: &mut Exported) {
        let labels = PeerLabels {
            peer: peer.to_string(),
        };
        let now = &status.counters;
        let before = &seen.counters;
        self.session_up
            .get_or_create(&labels)
            .set(i64::from(status.state == State::Established));
        self.prefixes
            .get_or_create(&labels)
            .set(i64::try_from(now.prefixes_advertised).unwrap_or(i64::MAX));
        self.established
            .get_or_create(&labels)
            .inc_by(now.established.saturating_sub(before.established));
        self.updates
            .get_or_create(&labels)
            .inc_by(now.updates_sent.saturating_sub(before.updates_sent));
        for (reason, n) in &now.resets {
            let old = before.resets.get(reason).copied().unwrap_or(0);
            if *n > old {
                self.resets
                    .get_or_create(&ResetLabels {
                        peer: peer.to_string(),
                        reason: (*reason).to_string(),
                    })
                    .inc_by(n - old);
            }
        }
        if now.last_error != before.last_error {
            if let Some(old) = &before.last_error {
                self.last_error.remove(&ErrorLabels {
                    peer: peer.to_string(),
                    error: old.clone(),
                });
            }
            if let Some(new) = &now.last_error {
                self.last_error
                    .get_or_create(&ErrorLabels {
                        peer: peer.to_string(),
                        error: new.clone(),
                    })
                    .set(1);
            }
        }
        seen.counters = now.clone();
    }

    /// A peer left the config: its gauges go (counters stay, as Prometheus expects).
    pub fn forget(&self, peer: &str, seen: &Exported) {
        let labels = PeerLabels {
            peer: peer.to_string(),
        };
        self.session_up.remove(&labels);
        self.prefixes.remove(&labels);
        if let Some(err) = &seen.counters.last_error {
            self.last_error.remove(&ErrorLabels {
                peer: peer.to_string(),
                error: err.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn status(
        state: State,
        established: u64,
        resets: &[(&'static str, u64)],
        err: Option<&str>,
    ) -> PeerStatus {
        PeerStatus {
            state,
            counters: SessionCounters {
                established,
                resets: resets.iter().copied().collect(),
                updates_sent: established * 2,
                prefixes_advertised: 3,
                last_error: err.map(str::to_string),
            },
        }
    }

    fn text(r: &Registry) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn running_totals_become_counter_increments_and_the_last_error_is_replaced() {
        let mut r = Registry::default();
        let m = BgpMetrics::register(&mut r);
        let mut seen = Exported::default();
        m.update("tor", &status(State::Established, 1, &[], None), &mut seen);
        m.update(
            "tor",
            &status(
                State::Idle,
                1,
                &[("hold_timer_expired", 1)],
                Some("hold timer expired"),
            ),
            &mut seen,
        );
        m.update(
            "tor",
            &status(
                State::Established,
                2,
                &[("hold_timer_expired", 1)],
                Some("connect: refused"),
            ),
            &mut seen,
        );
        let t = text(&r);
        assert!(
            t.contains("ferrolb_speaker_bgp_session_up{peer=\"tor\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("ferrolb_speaker_bgp_sessions_established_total{peer=\"tor\"} 2"),
            "{t}"
        );
        assert!(t.contains("ferrolb_speaker_bgp_session_resets_total{peer=\"tor\",reason=\"hold_timer_expired\"} 1"), "{t}");
        assert!(
            t.contains("ferrolb_speaker_bgp_updates_sent_total{peer=\"tor\"} 4"),
            "{t}"
        );
        assert!(
            t.contains("ferrolb_speaker_bgp_last_error{peer=\"tor\",error=\"connect: refused\"} 1"),
            "{t}"
        );
        assert!(
            !t.contains("hold timer expired\"}"),
            "the old error is gone: {t}"
        );
        // A restarted task starts from zero: counters never go backwards.
        let mut fresh = Exported::default();
        m.update("tor", &status(State::Established, 1, &[], None), &mut fresh);
        assert!(text(&r).contains("ferrolb_speaker_bgp_sessions_established_total{peer=\"tor\"} 3"));
        m.forget("tor", &fresh);
        assert!(!text(&r).contains("ferrolb_speaker_bgp_session_up{"));
    }
}
