//! Direct heartbeats between speakers (issue 12, design.md "Fast failure detection").
//!
//! * [`key`]: the key from Secret `ferrolb-heartbeat`, read again every 10 s.
//! * [`socket`]: the dual-stack UDP socket on `--heartbeat-port`: unicast heartbeats to our
//!   watchers, suspicions and refutations to our neighbours; sender and receiver tasks.
//! * [`view`]: the failure detector and peers' heartbeat annotations, owned by the decision.
//! * [`metrics`]: the `ferrolb_speaker_heartbeat_*` metrics.
//!
//! [`HeartbeatLink`] is what the speaker's loop holds: it starts the tasks, feeds accepted
//! messages to the decision, and after every reconcile points the sender at our watchers
//! (keeping dropped ones for the release grace), tells our neighbours whom we began to
//! suspect, publishes our addresses and whom we hear, picks the lease cadence and raises or
//! clears the alarm. The pure rules live in
//! `ferrolb_core::heartbeat`.

pub mod key;
pub mod metrics;
pub mod socket;
pub mod view;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrolb_core::heartbeat::{
    usable_heartbeat_addr, Body, Cadence, HeartbeatAdvert, LeaseTiming, Message, SendSet,
    DEFAULT_INTERVAL, DEFAULT_MISSES, HEARS_ANNOTATION, HEARTBEAT_ANNOTATION,
};
use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::decision::Decision;
use key::{KeyState, KeyWatch};
use metrics::HeartbeatMetrics;

/// The speaker loop's handle on heartbeats.
pub struct HeartbeatLink {
    node: String,
    advert: Option<HeartbeatAdvert>,
    fast: LeaseTiming,
    key: Option<KeyWatch>,
    sending: watch::Receiver<bool>,
    targets_tx: watch::Sender<socket::Targets>,
    outgoing_tx: Option<mpsc::Sender<Body>>,
    send_set: SendSet,
    epochs_tx: watch::Sender<BTreeMap<String, u64>>,
    timing_tx: watch::Sender<LeaseTiming>,
    metrics: HeartbeatMetrics,
    renew_ok: bool,
    /// The alarm's last reason, to log transitions only.
    last_problem: Option<String>,
    cancelled_seen: u64,
}

/// This process's boot epoch.
fn boot_epoch() -> u64 {
    // Wall-clock nanoseconds at start: larger after every restart unless the clock went back
    // (then peers refuse our heartbeats until they see our Lease's new epoch: judged by the
    // Lease alone meanwhile, never worse).
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl HeartbeatLink {
    /// Starts heartbeats on UDP `port` (`0`: off) and returns the link, the lease timing
    /// channel the lease task follows, and the accepted messages for the decision. `fast` is
    /// `--lease-renew` / `--lease-duration`.
    pub fn start(
        node: &str,
        port: u16,
        fast: LeaseTiming,
        secrets: Api<Secret>,
        namespace: &str,
        metrics: HeartbeatMetrics,
        shutdown: &CancellationToken,
    ) -> (Self, watch::Receiver<LeaseTiming>, mpsc::Receiver<Message>) {
        let (timing_tx, timing_rx) = watch::channel(fast);
        let (targets_tx, targets_rx) = watch::channel(socket::Targets::default());
        let (outgoing_tx, outgoing_rx) = mpsc::channel(256);
        let (epochs_tx, epochs_rx) = watch::channel(BTreeMap::new());
        let (sending_tx, sending) = watch::channel(false);
        let (accepted_tx, accepted) = mpsc::channel(4096);
        let mut link = HeartbeatLink {
            node: node.to_owned(),
            advert: None,
            fast,
            key: None,
            sending,
            targets_tx,
            outgoing_tx: None,
            send_set: SendSet::new(),
            epochs_tx,
            timing_tx,
            metrics: metrics.clone(),
            renew_ok: true,
            last_problem: None,
            cancelled_seen: 0,
        };
        if port == 0 {
            tracing::info!("heartbeats are off (--heartbeat-port 0): failover waits for lease expiry and the lease is renewed at the fast cadence");
            return (link, timing_rx, accepted);
        }
        let sock = match socket::open(port) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(port, error = %e, "cannot open the heartbeat socket (UDP port --heartbeat-port); no heartbeats: failover waits for lease expiry");
                link.last_problem = Some(format!("socket: {e}"));
                metrics.missing.set(1);
                return (link, timing_rx, accepted);
            }
        };
        let key = key::watch_key(secrets, namespace.to_owned(), shutdown.clone());
        let params = socket::SendParams {
            node: node.to_owned(),
            epoch: boot_epoch(),
            port,
            interval: DEFAULT_INTERVAL,
            misses: DEFAULT_MISSES,
        };
        link.advert = Some(HeartbeatAdvert {
            epoch: params.epoch,
            interval: params.interval,
            port,
            addrs: Vec::new(),
        });
        let epoch = params.epoch;
        socket::spawn_sender(
            sock.clone(),
            params,
            key.clone(),
            targets_rx,
            outgoing_rx,
            sending_tx,
            metrics.clone(),
            shutdown.clone(),
        );
        socket::spawn_receiver(
            sock,
            node.to_owned(),
            epoch,
            key.clone(),
            epochs_rx,
            accepted_tx,
            outgoing_tx.clone(),
            metrics,
            shutdown.clone(),
        );
        link.outgoing_tx = Some(outgoing_tx);
        link.key = Some(key);
        (link, timing_rx, accepted)
    }

    /// Our addresses on the eligible interfaces changed: the ones peers can reach us at
    /// (IPv4 or global IPv6, never link-local) go in our advert.
    pub fn set_addresses(&mut self, addrs: impl IntoIterator<Item = IpNetwork>) {
        if let Some(advert) = &mut self.advert {
            let mut usable: Vec<IpNetwork> =
                addrs.into_iter().filter(usable_heartbeat_addr).collect();
            usable.sort();
            usable.dedup();
            advert.addrs = usable;
        }
    }

    /// Our last lease renewal succeeded (`true`) or failed.
    pub fn renewed(&mut self, ok: bool) {
        self.renew_ok = ok;
    }

    fn key_problem(&self) -> Option<String> {
        let key = self.key.as_ref()?;
        match &key.borrow().1 {
            KeyState::Loaded => None,
            KeyState::Unknown => Some("heartbeat key not read yet".into()),
            KeyState::Unusable(why) => Some(why.clone()),
        }
    }

    /// After every reconcile: publish whom we hear and our heartbeat advert, choose the lease
    /// cadence, update the metrics and the alarm. Returns the annotations to publish.
    pub fn sync(&mut self, decision: &mut Decision) -> BTreeMap<String, String> {
        let now = decision.now();
        let to_tell = decision.heartbeat_mut().suspicions_to_tell(now);
        if let Some(out) = &self.outgoing_tx {
            for (node, epoch, first) in to_tell {
                if first {
                    tracing::info!(peer = %node, "stopped hearing a peer this speaker watches; telling every peer on our subnets");
                }
                if out.try_send(Body::Suspect { node, epoch }).is_err() {
                    tracing::warn!("heartbeat sender is behind; a suspicion was not sent (peers fall back to the peer's lease)");
                }
            }
        }
        let view = decision.heartbeat();
        self.send_set.update(view.watchers().clone(), now);
        let targets = socket::Targets {
            watchers: self.send_set.targets(now),
            neighbours: view.neighbours().values().copied().collect(),
        };
        self.targets_tx.send_if_modified(|cur| {
            let changed = *cur != targets;
            *cur = targets;
            changed
        });
        self.metrics
            .watchers
            .set(i64::try_from(view.watchers().len()).unwrap_or(i64::MAX));
        self.metrics
            .watching
            .set(i64::try_from(view.watched().len()).unwrap_or(i64::MAX));
        let own = decision.ifaces().subnets(decision.l2());
        let is_live = |n: &str| decision.is_live(n);
        let key_loaded = self
            .key
            .as_ref()
            .is_some_and(|k| k.borrow().1 == KeyState::Loaded);
        self.metrics.key_loaded.set(i64::from(key_loaded));
        let sending = key_loaded && *self.sending.borrow();
        // Off the rings (our advert not seen yet, or no address to be reached at) nobody
        // watches us: the lease must stay fast.
        let on_ring = view.on_ring(&self.node);
        let choice = view.cadence(&self.node, &own, is_live, sending && on_ring, self.renew_ok);
        let unheard = view.unheard_senders(is_live, now);
        let suspected = view.suspected(now);
        self.metrics
            .suspected
            .set(i64::try_from(suspected.len()).unwrap_or(i64::MAX));
        let cancelled = view.cancelled();
        if cancelled > self.cancelled_seen {
            self.metrics
                .cancelled
                .inc_by(cancelled - self.cancelled_seen);
            self.cancelled_seen = cancelled;
        }
        let timing = choice.cadence.timing(self.fast);
        self.metrics
            .lease_relaxed
            .set(i64::from(choice.cadence == Cadence::Relaxed));
        self.timing_tx.send_if_modified(|cur| {
            let changed = *cur != timing;
            if changed {
                tracing::info!(renew = ?timing.renew, duration = ?timing.duration, "speaker lease cadence changed");
            }
            *cur = timing;
            changed
        });
        self.epochs_tx.send_if_modified(|cur| {
            let epochs = view.epochs();
            let changed = *cur != epochs;
            *cur = epochs;
            changed
        });

        let problem = if self.advert.is_none() {
            self.last_problem
                .clone()
                .filter(|p| p.starts_with("socket"))
        } else if let Some(p) = self.key_problem() {
            Some(p)
        } else if !sending {
            Some("no heartbeat went out to any watcher".into())
        } else if !on_ring && self.advert.as_ref().is_some_and(|a| a.addrs.is_empty()) {
            Some("no address on an eligible interface to receive heartbeats at".into())
        } else if !choice.unheard_by.is_empty() {
            Some(format!(
                "not heard by live peers {}",
                choice.unheard_by.join(",")
            ))
        } else if !unheard.is_empty() {
            Some(format!("not hearing live peers {}", unheard.join(",")))
        } else {
            None
        };
        if problem != self.last_problem {
            match &problem {
                Some(p) => {
                    tracing::warn!(problem = %p, "heartbeats missing; the lease stays at the fast cadence and failover to or from these peers waits for lease expiry (check UDP port --heartbeat-port between nodes and Secret ferrolb-heartbeat)")
                }
                None => tracing::info!("heartbeats work both ways with every live peer"),
            }
            self.last_problem = problem.clone();
        }
        self.metrics.missing.set(i64::from(problem.is_some()));

        let mut published = BTreeMap::new();
        // Published while a key is loaded, whether or not the last sends worked: a firewall
        // that fails our sends must not take us off the rings and put us back a moment later
        // (a lease write each time); failing sends keep the lease fast instead.
        let advert = match (&self.advert, key_loaded) {
            (Some(a), true) => a.to_string(),
            _ => String::new(),
        };
        published.insert(HEARTBEAT_ANNOTATION.to_string(), advert);
        published.insert(HEARS_ANNOTATION.to_string(), view.hears_annotation(now));
        published
    }

    /// When the decision must run next for a peer's suspicion deadline.
    pub fn next_deadline(&self, decision: &Decision) -> Option<tokio::time::Instant> {
        decision
            .heartbeat()
            .next_deadline(decision.now())
            .map(|at| decision.instant_of(at))
    }
}
