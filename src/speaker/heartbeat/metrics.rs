//! The heartbeat metrics (prefix `ferrolb_speaker_heartbeat`; see docs/operations.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of the rejection counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why: `malformed`, `version`, `bad_mac`, `bad_field`, `replayed`, `old_epoch`, `no_key`,
    /// `overflow`.
    pub reason: String,
}

/// Every heartbeat metric.
#[derive(Clone, Default)]
pub struct HeartbeatMetrics {
    /// Heartbeats sent (one per watcher per interval).
    pub sent: Counter,
    /// Heartbeats accepted (authenticated, not replayed, from a peer).
    pub received: Counter,
    /// Datagrams refused, by reason.
    pub rejected: Family<ReasonLabels, Counter>,
    /// Peers currently suspected dead.
    pub suspected: Gauge,
    /// Suspicions cancelled by wire evidence of life.
    pub cancelled: Counter,
    /// 1 while heartbeats cannot replace the fast lease cadence: no key, no socket, a live
    /// watcher that does not hear us, a live peer on our subnets without heartbeats, or a peer
    /// we watch that we do not hear.
    pub missing: Gauge,
    /// 1 while a valid key is loaded.
    pub key_loaded: Gauge,
    /// 1 while the lease is renewed at the relaxed cadence.
    pub lease_relaxed: Gauge,
    /// How many peers our heartbeats currently go to (our watchers).
    pub watchers: Gauge,
    /// How many peers we watch (track and may suspect).
    pub watching: Gauge,
    /// Suspect and alive messages sent and received, by `kind` and `direction`.
    pub messages: Family<MessageLabels, Counter>,
}

/// Labels of the message counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// `suspect` or `alive`.
    pub kind: String,
    /// `sent` (datagrams) or `received` (accepted messages).
    pub direction: String,
}

impl HeartbeatMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker_heartbeat");
        r.register("sent", "Heartbeat datagrams sent", m.sent.clone());
        r.register(
            "received",
            "Heartbeats accepted from peers",
            m.received.clone(),
        );
        r.register(
            "rejected",
            "Heartbeat datagrams refused, by reason",
            m.rejected.clone(),
        );
        r.register(
            "peers_suspected",
            "Peers suspected dead because their heartbeats stopped",
            m.suspected.clone(),
        );
        r.register(
            "suspicions_cancelled",
            "Suspicions cancelled because the peer still answered for its IPs",
            m.cancelled.clone(),
        );
        r.register(
            "missing",
            "1 while heartbeats are not working both ways with every live peer (the lease stays at the fast cadence)",
            m.missing.clone(),
        );
        r.register(
            "key_loaded",
            "1 while the key from Secret ferrolb-heartbeat is loaded",
            m.key_loaded.clone(),
        );
        r.register(
            "lease_relaxed",
            "1 while the speaker lease is renewed at the relaxed cadence",
            m.lease_relaxed.clone(),
        );
        r.register(
            "watchers",
            "Peers this speaker's heartbeats go to (its watchers)",
            m.watchers.clone(),
        );
        r.register(
            "watching",
            "Peers whose heartbeats this speaker tracks (it is their watcher)",
            m.watching.clone(),
        );
        r.register(
            "messages",
            "Suspect and alive messages sent (datagrams) and accepted, by kind",
            m.messages.clone(),
        );
        // Every series exists from the start at 0, so `rate()` and the dashboard see a healthy
        // cluster's zero instead of no data (the family prints nothing until a series exists).
        for kind in ["suspect", "alive"] {
            for direction in ["sent", "received"] {
                m.messages_by(kind, direction, 0);
            }
        }
        m
    }

    /// Counts `n` suspect or alive messages.
    pub fn messages_by(&self, kind: &str, direction: &str, n: u64) {
        self.messages
            .get_or_create(&MessageLabels {
                kind: kind.to_string(),
                direction: direction.to_string(),
            })
            .inc_by(n);
    }

    /// Counts one refused datagram.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_counters_are_exported_at_zero_before_any_message() {
        let mut registry = Registry::default();
        let _m = HeartbeatMetrics::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("encoding to a String cannot fail");
        for kind in ["suspect", "alive"] {
            for direction in ["sent", "received"] {
                let series = format!(
                    "ferrolb_speaker_heartbeat_messages_total{{kind=\"{kind}\",direction=\"{direction}\"}} 0"
                );
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
    }
}
