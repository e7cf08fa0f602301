//! This node's own speaker lease: renewed at the cadence the heartbeat rule picks (the fast
//! `--lease-renew` / `--lease-duration`, or the relaxed one while every peer hears our
//! heartbeats), carrying the node's subnets, released on graceful stop so peers take over at
//! once instead of waiting for expiry.
//!
//! Renewals run in their own task so a slow API server never stalls the announce loop; each
//! result is reported back, because our own renewals failing is half of what "API-degraded"
//! means.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_core::election::lease_name;
use ferrolb_core::heartbeat::LeaseTiming;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// The outcome of one renewal attempt.
#[derive(Debug)]
pub enum RenewResult {
    /// Written, with this `spec.leaseDurationSeconds`.
    Ok(Duration),
    /// Failed (network, API error, timeout).
    Failed(String),
}

struct OwnLease {
    api: Api<Lease>,
    name: String,
    node: String,
    /// The duration to write.
    duration: Duration,
    /// The last lease we read or wrote, so a renewal is one PUT, not a GET and a PUT.
    last: Option<Lease>,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl OwnLease {
    fn desired(&self, base: Option<Lease>, published: &BTreeMap<String, String>) -> Lease {
        let mut lease = base.unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: None,
        });
        lease
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(published.iter().map(|(k, v)| (k.clone(), v.clone())));
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.node.as_str()) {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.node.clone());
        spec.renew_time = Some(now());
        spec.lease_duration_seconds =
            Some(i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX));
        lease
    }

    async fn renew(&mut self, published: &BTreeMap<String, String>) -> Result<(), kube::Error> {
        let base = match self.last.take() {
            Some(l) => Some(l),
            None => self.api.get_opt(&self.name).await?,
        };
        let result = match base {
            None => {
                self.api
                    .create(&PostParams::default(), &self.desired(None, published))
                    .await
            }
            Some(b) => {
                self.api
                    .replace(
                        &self.name,
                        &PostParams::default(),
                        &self.desired(Some(b), published),
                    )
                    .await
            }
        };
        match result {
            Ok(written) => {
                self.last = Some(written);
                Ok(())
            }
            // Someone else wrote it (our previous incarnation, an operator): read it afresh
            // next time. The lease is per node, so we simply take it back.
            Err(e) => {
                self.last = None;
                Err(e)
            }
        }
    }

    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.node.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// Handle to the renewal task.
pub struct LeaseTask {
    release: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

impl LeaseTask {
    /// Releases the lease (after the caller stopped answering ARP) and waits for it, briefly.
    pub async fn release(mut self, within: Duration) {
        let Some(tx) = self.release.take() else {
            return;
        };
        let (done_tx, done_rx) = oneshot::channel();
        if tx.send(done_tx).is_ok() {
            let _ = tokio::time::timeout(within, done_rx).await;
        }
    }
}

/// Starts renewing lease `ferrolb-speaker-<node>` at the timing `timing` holds (renewing at
/// once when it changes, so peers learn a new duration without delay), publishing the latest
/// `annotations` (and renewing at once when they change); results go to `results`. After a
/// failed renewal the next attempt comes after `fast.renew`, whatever the cadence, and a
/// renewal slower than `fast.duration` counts as failed.
pub fn start(
    api: Api<Lease>,
    node: &str,
    fast: LeaseTiming,
    mut timing: watch::Receiver<LeaseTiming>,
    mut annotations: watch::Receiver<BTreeMap<String, String>>,
    results: mpsc::UnboundedSender<RenewResult>,
    shutdown: CancellationToken,
) -> LeaseTask {
    let mut lease = OwnLease {
        api,
        name: lease_name(node),
        node: node.to_string(),
        duration: fast.duration,
        last: None,
    };
    let (release_tx, mut release_rx) = oneshot::channel::<oneshot::Sender<()>>();
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                done = &mut release_rx => {
                    match lease.release().await {
                        Ok(()) => tracing::info!(lease = %lease.name, "released speaker lease"),
                        Err(e) => tracing::warn!(lease = %lease.name, error = %e, "could not release speaker lease; peers wait for it to expire"),
                    }
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                _ = tokio::time::sleep_until(next) => {}
                changed = timing.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                changed = annotations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = shutdown.cancelled(), if release_rx.is_terminated() => return,
            }
            let published = annotations.borrow_and_update().clone();
            let now_timing = *timing.borrow_and_update();
            lease.duration = now_timing.duration;
            // A renewal slower than the (fast) lease is a failure: peers may consider us gone.
            let limit = fast.duration;
            let started = tokio::time::Instant::now();
            let outcome = match tokio::time::timeout(limit, lease.renew(&published)).await {
                Ok(Ok(())) => RenewResult::Ok(now_timing.duration),
                Ok(Err(e)) => RenewResult::Failed(e.to_string()),
                Err(_) => {
                    lease.last = None;
                    RenewResult::Failed(format!(
                        "renewal took longer than the lease duration {limit:?}"
                    ))
                }
            };
            next = started
                + match outcome {
                    RenewResult::Ok(_) => now_timing.renew,
                    RenewResult::Failed(_) => fast.renew,
                };
            if results.send(outcome).is_err() {
                return;
            }
        }
    });
    LeaseTask {
        release: Some(release_tx),
    }
}
