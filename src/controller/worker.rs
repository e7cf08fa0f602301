//! The allocation loop: a thin driver around the pure decision core
//! ([`ferrolb_core::reconcile::Reconciler`]), which owns the allocator and every rule.
//!
//! This task feeds the core what the Service and ConfigMap watches deliver and how writes
//! went, carries out the writes it decides (concurrently, at most one per Service, through
//! [`Writer`]) and sleeps until the core's next wake-up. One task owns the core, so
//! allocations are serialised without locks and are deterministic.

use std::time::{Duration, Instant};

use ferrolb_core::election::MonoTime;
use ferrolb_core::reconcile::{
    judge_config, ConfigVerdict, Reconciler, ServiceFacts, WriteFailure, WriteResult,
    DEFAULT_MAX_IN_FLIGHT,
};
use ferrolb_core::service::ServiceKey;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::Resource;
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::ControllerMetrics;
use super::service_view::view;
use super::writer::{notice, service_ref, Plan, WriteOutcome, Writer};

/// Why the loop stopped.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// A watch stream ended, which kube-runtime watchers never do on their own.
    #[error("the {0} watch stream ended unexpectedly")]
    StreamEnded(&'static str),
}

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `--lb-class`.
    pub lb_class: Option<String>,
    /// Namespace of the pool ConfigMap.
    pub namespace: String,
    /// Name of the pool ConfigMap.
    pub config_map: String,
}

/// The loop's state: the core, and what it needs to talk to the world.
pub struct Worker {
    settings: WorkerSettings,
    core: Reconciler,
    services: Store<Service>,
    writer: Writer,
    metrics: ControllerMetrics,
    /// The epoch of the core's [`MonoTime`].
    epoch: Instant,
}

type WatchItem<K> = Result<watcher::Event<K>, watcher::Error>;

impl Worker {
    /// A loop over the Services in `services` (a reflector store fed by the stream given to
    /// [`Worker::run`]).
    pub fn new(
        settings: WorkerSettings,
        services: Store<Service>,
        writer: Writer,
        metrics: ControllerMetrics,
    ) -> Self {
        Self {
            settings,
            core: Reconciler::new(DEFAULT_MAX_IN_FLIGHT),
            services,
            writer,
            metrics,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> MonoTime {
        MonoTime::from_elapsed(self.epoch.elapsed())
    }

    fn instant(&self, at: MonoTime) -> Instant {
        self.epoch + at.elapsed()
    }

    fn facts(&self, svc: &Service) -> ServiceFacts {
        view(svc, self.settings.lb_class.as_deref())
    }

    fn all_facts(&self) -> Vec<ServiceFacts> {
        self.services
            .state()
            .iter()
            .map(|s| self.facts(s))
            .collect()
    }

    /// Runs until `shutdown`; `services` must be the reflector-wrapped Service watch feeding
    /// the store given to [`Worker::new`], `config` a watch of the pool ConfigMap alone.
    pub async fn run<S, C>(
        mut self,
        mut services: S,
        mut config: C,
        shutdown: CancellationToken,
        on_synced: impl FnOnce(),
    ) -> Result<(), WorkerError>
    where
        S: Stream<Item = WatchItem<Service>> + Unpin,
        C: Stream<Item = WatchItem<ConfigMap>> + Unpin,
    {
        // Phase 1: both caches complete before anything is decided.
        let (mut svc_synced, mut cm_synced) = (false, false);
        let mut initial_cm: Option<ConfigMap> = None;
        while !(svc_synced && cm_synced) {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ev = services.next() => match ev {
                    None => return Err(WorkerError::StreamEnded("Service")),
                    Some(Ok(watcher::Event::InitDone)) => svc_synced = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "Service watch failed; retrying"),
                },
                ev = config.next() => match ev {
                    None => return Err(WorkerError::StreamEnded("ConfigMap")),
                    Some(Ok(watcher::Event::InitApply(cm))) => initial_cm = Some(cm),
                    Some(Ok(watcher::Event::InitDone)) => cm_synced = true,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "ConfigMap watch failed; retrying"),
                },
            }
        }
        let started = Instant::now();
        self.on_config(initial_cm.as_ref()).await;
        self.replay().await;
        tracing::info!(services = self.core.len(), elapsed = ?started.elapsed(), "replayed existing allocations; reconciling");
        on_synced();

        // Phase 2: react to changes.
        let mut writes: JoinSet<(ServiceKey, WriteOutcome)> = JoinSet::new();
        loop {
            self.dispatch(&mut writes);
            if self.core.take_stats_stale() {
                // Once per pass, not per decision: a cold start decides thousands at once.
                self.publish_stats();
            }
            let next_wake = self.core.next_wake().map(|at| self.instant(at));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = services.next() => match ev {
                    None => return Err(WorkerError::StreamEnded("Service")),
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                        let facts = self.facts(&s);
                        self.core.service_seen(facts);
                    }
                    Some(Ok(watcher::Event::Delete(s))) => {
                        let key = ServiceKey::new(s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
                        self.core.service_deleted(&key);
                    }
                    // After a re-list, deletions that happened while disconnected have no event.
                    Some(Ok(watcher::Event::InitDone)) => {
                        let all = self.all_facts();
                        self.core.relisted(all);
                    }
                    Some(Ok(watcher::Event::Init)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "Service watch failed; retrying"),
                },
                ev = config.next() => match ev {
                    None => return Err(WorkerError::StreamEnded("ConfigMap")),
                    Some(Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) => self.on_config(Some(&cm)).await,
                    Some(Ok(watcher::Event::Delete(_))) => self.on_config(None).await,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "ConfigMap watch failed; retrying"),
                },
                Some(done) = writes.join_next(), if !writes.is_empty() => {
                    if let Ok((key, outcome)) = done {
                        self.finished(&key, outcome);
                    }
                }
                _ = sleep_until(next_wake), if next_wake.is_some() => {
                    let now = self.now();
                    self.core.wake(now);
                }
            }
        }
        // Let writes already sent finish, briefly, so a graceful stop leaves no half-done work.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while writes.join_next().await.is_some() {}
        })
        .await;
        Ok(())
    }

    /// Starts every write the core decides now.
    fn dispatch(&mut self, writes: &mut JoinSet<(ServiceKey, WriteOutcome)>) {
        loop {
            let started = Instant::now();
            let now = self.now();
            let Some(decided) = self.core.next_decision(now) else {
                break;
            };
            self.metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
            if decided.allocated {
                self.metrics.allocations.inc();
            }
            if let Some(reason) = decided.failure {
                self.metrics.failed(reason.as_str());
            }
            if let Some(other) = &decided.waiting_for {
                tracing::debug!(service = %decided.key, other = %other, "waiting for another Service's status to drop a shared-out IP");
            }
            let Some(write) = decided.write else {
                continue;
            };
            tracing::debug!(service = %write.key, ingress = ?write.ingress, pool = ?write.pool_annotation, "decided");
            let key = write.key.clone();
            let plan = Plan::from(write);
            let writer = self.writer.clone();
            writes.spawn(async move {
                let outcome = writer.apply(&plan).await;
                (key, outcome)
            });
        }
    }

    fn finished(&mut self, key: &ServiceKey, outcome: WriteOutcome) {
        tracing::debug!(service = %key, outcome = ?outcome, "write finished");
        let now = self.now();
        let (result, error) = match outcome {
            WriteOutcome::Done => (WriteResult::Done, None),
            WriteOutcome::Gone => (WriteResult::Gone, None),
            WriteOutcome::Failed {
                error,
                status_written,
            } => (
                WriteResult::Failed {
                    failure: write_failure(&error),
                    status_written,
                },
                Some(error),
            ),
        };
        let backoff = self.core.write_finished(key, result, now);
        if let (Some(b), Some(e)) = (backoff, error) {
            // A long outage retries every second: say so on the first failure and then every
            // tenth, not every time.
            if b.attempts == 1 || b.attempts % 10 == 0 {
                tracing::warn!(service = %key, error = %e, attempt = b.attempts, retry_in = ?b.delay, "writing Service failed");
            } else {
                tracing::debug!(service = %key, error = %e, attempt = b.attempts, retry_in = ?b.delay, "writing Service failed");
            }
        }
    }

    fn publish_stats(&self) {
        let alloc = self.core.allocator();
        self.metrics
            .set_pool_stats(&alloc.stats(), alloc.orphaned_ips());
    }

    /// Hands the complete cache to the core, which registers every existing ingress before
    /// anything new is allocated, and reports what it found.
    async fn replay(&mut self) {
        let all = self.all_facts();
        let replay = self.core.synced(all);
        for (key, ips) in &replay.orphaned {
            tracing::warn!(service = %key, ips = ?ips, "kept an IP that is outside every pool");
        }
        for c in replay.conflicts {
            self.metrics.ip_conflicts.inc();
            tracing::warn!(service = %c.key, note = %c.event.note, "duplicate IP found during replay");
            self.writer
                .event(&notice(&c.event), &service_ref(&c.key, c.uid))
                .await;
        }
        self.publish_stats();
    }

    /// Applies a new ConfigMap (or its absence): a valid config replaces the pools at once
    /// without moving any IP; an invalid one is rejected and the last good one stays.
    async fn on_config(&mut self, cm: Option<&ConfigMap>) {
        let name = format!("{}/{}", self.settings.namespace, self.settings.config_map);
        let data = cm.map(|c| c.data.clone().unwrap_or_default());
        let verdict = judge_config(self.core.config(), data.as_ref());
        self.metrics.config_valid.set(i64::from(verdict.valid()));
        log_verdict(&name, &verdict, false);
        match verdict {
            ConfigVerdict::Missing => self.core.apply_config(Default::default()),
            ConfigVerdict::Unchanged => {}
            ConfigVerdict::Load { config, events, .. } => {
                if let Some(cm) = cm {
                    let reference = cm.object_ref(&());
                    for e in &events {
                        self.writer.event(&notice(e), &reference).await;
                    }
                }
                self.core.apply_config(*config);
            }
            ConfigVerdict::Reject { event, .. } => {
                if let Some(cm) = cm {
                    self.writer
                        .event(&notice(&event), &cm.object_ref(&()))
                        .await;
                }
            }
        }
    }
}

/// Logs what a config verdict means, as leader and standby replicas both do.
pub fn log_verdict(configmap: &str, verdict: &ConfigVerdict, standby: bool) {
    match verdict {
        ConfigVerdict::Missing => {
            tracing::info!(%configmap, standby, "pool ConfigMap not found: no pools are configured, so no IPs will be allocated")
        }
        ConfigVerdict::Unchanged => {}
        ConfigVerdict::Load {
            config, warnings, ..
        } => {
            tracing::info!(%configmap, standby, pools = config.pools.len(), format = ?config.format, "loaded pool config");
            if let Some(note) = warnings {
                tracing::warn!(%configmap, standby, %note, "pool config warnings");
            }
        }
        ConfigVerdict::Reject { errors, .. } => {
            tracing::error!(%configmap, standby, %errors, "pool config rejected; the last good config stays in force")
        }
    }
}

/// The kind of failure the retry policy branches on.
fn write_failure(e: &kube::Error) -> WriteFailure {
    if matches!(e, kube::Error::Api(s) if s.is_conflict()) {
        WriteFailure::Conflict
    } else if api_unreachable(e) {
        WriteFailure::Unreachable
    } else {
        WriteFailure::Other
    }
}

/// Whether `e` means no connection to the API server could be made (refused, or no route):
/// the request never reached it.
fn api_unreachable(e: &kube::Error) -> bool {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as hyper's connect errors wrap the OS error.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn service_error(kind: std::io::ErrorKind) -> kube::Error {
        kube::Error::Service(Box::new(Wrapped(std::io::Error::from(kind))))
    }

    #[test]
    fn only_failures_to_connect_count_as_unreachable() {
        use std::io::ErrorKind;
        assert!(api_unreachable(&service_error(
            ErrorKind::ConnectionRefused
        )));
        assert!(api_unreachable(&service_error(ErrorKind::HostUnreachable)));
        assert!(!api_unreachable(&service_error(ErrorKind::TimedOut)));
        assert!(!api_unreachable(&service_error(ErrorKind::ConnectionReset)));
        let api = kube::Error::Api(Box::new(kube::core::Status::failure(
            "boom",
            "InternalError",
        )));
        assert!(!api_unreachable(&api));
    }

    #[test]
    fn the_retry_policy_sees_conflicts_and_unreachable_servers_as_such() {
        use std::io::ErrorKind;
        let conflict = kube::Error::Api(Box::new(
            kube::core::Status::failure("the object has been modified", "Conflict").with_code(409),
        ));
        assert_eq!(write_failure(&conflict), WriteFailure::Conflict);
        assert_eq!(
            write_failure(&service_error(ErrorKind::ConnectionRefused)),
            WriteFailure::Unreachable
        );
        assert_eq!(
            write_failure(&service_error(ErrorKind::TimedOut)),
            WriteFailure::Other
        );
    }
}
