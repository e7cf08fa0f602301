//! The allocation loop. One task owns the allocator, so allocations are serialised without
//! locks and are deterministic; API writes run concurrently (one at a time per Service) and
//! failed writes are retried with backoff. On start it first replays every existing
//! `status.loadBalancer.ingress` (oldest Service first) and only then allocates anything new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_core::alloc::Allocator;
use ferrolb_core::config::{parse_config_map_data, Config};
use ferrolb_core::service::{allocation_request, AllocationRequest, ServiceKey, SharingAttrs};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Resource;
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::decide::decide;
use super::metrics::ControllerMetrics;
use super::service_view::{view, Handling, ServiceView};
use super::writer::{normal, warning, Plan, WriteOutcome, Writer};

/// Writes in flight at once; enough to hide API latency, small enough to be polite.
const MAX_IN_FLIGHT: usize = 32;
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Retry cap when no connection to the API server could be made at all: a refused connection
/// costs it nothing, and during an outage only the writes already pending wait, so they may
/// knock every second and land as soon as it is back instead of up to 30 s later. Everything
/// else (API errors, timeouts, resets mid-request) backs off up to [`RETRY_MAX`].
const RETRY_MAX_UNREACHABLE: Duration = Duration::from_secs(1);
/// How long to trust our own write over a cache that has not delivered it yet.
const EXPECTATION_TTL: Duration = Duration::from_secs(10);

/// What a Service shows after our last successful write, until the cache catches up.
#[derive(Debug, Clone)]
struct Expectation {
    ingress: Vec<std::net::IpAddr>,
    pool: Option<String>,
    at: tokio::time::Instant,
}

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

/// The loop's state.
pub struct Worker {
    settings: WorkerSettings,
    allocator: Allocator,
    services: Store<Service>,
    writer: Writer,
    metrics: ControllerMetrics,
    config: Option<Config>,
    dirty: BTreeSet<ServiceKey>,
    in_flight: BTreeSet<ServiceKey>,
    /// Failed for lack of capacity or a matching pool: retried when that may have changed.
    waiting: BTreeSet<ServiceKey>,
    /// When to look at a Service again (failed write, or an expectation to re-check).
    retries: BTreeMap<ServiceKey, tokio::time::Instant>,
    /// Consecutive failed writes per Service, for backoff.
    attempts: BTreeMap<ServiceKey, u32>,
    /// Last failure note per Service, so a repeated failure is not re-announced every pass.
    last_failure: BTreeMap<ServiceKey, String>,
    /// Our writes the Service cache may not have delivered yet; without this a fast second
    /// pass would see the old status and allocate (and announce) the same IP twice.
    expected: BTreeMap<ServiceKey, Expectation>,
    /// Events owed to Services outside a decision (a config change orphaned their IPs); sent
    /// with the Service's next write so thousands of them never stall the loop.
    pending_notices: BTreeMap<ServiceKey, Vec<super::writer::Notice>>,
    /// Allocator figures changed since they were last published.
    stats_stale: bool,
    /// IPs a Service gave up in memory whose status still shows them, held in the allocator
    /// under placeholder keys until the write that removes them from that status succeeds;
    /// without this, writes running concurrently could show one IP on two Services.
    quarantined: BTreeMap<ServiceKey, Vec<ServiceKey>>,
    /// Which Services' status, as last observed, shows each IP. The last line of defence: an
    /// IP is never written to a Service while another Service that is not a current holder
    /// still shows it, whatever the bookkeeping above believes.
    shown: BTreeMap<std::net::IpAddr, BTreeSet<ServiceKey>>,
    /// The reverse of `shown`, to update it when a status changes.
    shows: BTreeMap<ServiceKey, Vec<std::net::IpAddr>>,
    /// Services whose write waits for another Service's status to change, by that Service.
    blocked_by: BTreeMap<ServiceKey, BTreeSet<ServiceKey>>,
    /// The IPs of our last successful status write per Service, and the reverse. The cache can
    /// lag our own writes by seconds (a dropped watch), so what a status shows is judged from
    /// both: a move must quarantine, and the guard must see, an IP we wrote that the cache has
    /// not delivered yet.
    written: BTreeMap<ServiceKey, Vec<std::net::IpAddr>>,
    written_by_ip: BTreeMap<std::net::IpAddr, BTreeSet<ServiceKey>>,
}

/// Namespace of the allocator keys that hold quarantined IPs; a slash never occurs in a real
/// namespace, so these cannot collide with a Service.
const QUARANTINE_NS: &str = "ferrolb.io/quarantine";

fn is_quarantine(key: &ServiceKey) -> bool {
    key.namespace == QUARANTINE_NS
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
            allocator: Allocator::new(Vec::new()),
            services,
            writer,
            metrics,
            config: None,
            dirty: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            waiting: BTreeSet::new(),
            retries: BTreeMap::new(),
            attempts: BTreeMap::new(),
            last_failure: BTreeMap::new(),
            expected: BTreeMap::new(),
            pending_notices: BTreeMap::new(),
            stats_stale: true,
            quarantined: BTreeMap::new(),
            shown: BTreeMap::new(),
            shows: BTreeMap::new(),
            blocked_by: BTreeMap::new(),
            written: BTreeMap::new(),
            written_by_ip: BTreeMap::new(),
        }
    }

    fn lookup(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn all_keys(&self) -> BTreeSet<ServiceKey> {
        let mut keys: BTreeSet<ServiceKey> = self
            .services
            .state()
            .iter()
            .map(|s| {
                ServiceKey::new(
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        keys.extend(
            self.allocator
                .services()
                .map(|(k, _)| k.clone())
                .filter(|k| !is_quarantine(k)),
        );
        keys
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
        self.rebuild_shown();
        self.dirty = self.all_keys();
        tracing::info!(services = self.dirty.len(), elapsed = ?started.elapsed(), "replayed existing allocations; reconciling");
        on_synced();

        // Phase 2: react to changes.
        let mut writes: JoinSet<(Plan, WriteOutcome)> = JoinSet::new();
        loop {
            self.dispatch(&mut writes);
            if self.stats_stale {
                // Once per pass, not per decision: a cold start decides thousands at once.
                self.publish_stats();
                self.stats_stale = false;
            }
            let next_retry = self.retries.values().min().copied();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = services.next() => match ev {
                    None => return Err(WorkerError::StreamEnded("Service")),
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                        let key = ServiceKey::new(s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
                        self.observe_status(&key, Some(&s));
                        self.dirty.insert(key);
                    }
                    Some(Ok(watcher::Event::Delete(s))) => {
                        let key = ServiceKey::new(s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default());
                        self.observe_status(&key, None);
                        self.dirty.insert(key);
                    }
                    // After a re-list, deletions that happened while disconnected have no event.
                    Some(Ok(watcher::Event::InitDone)) => {
                        self.rebuild_shown();
                        self.dirty = self.all_keys();
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
                    if let Ok((plan, outcome)) = done {
                        self.finished(plan, outcome);
                    }
                }
                _ = sleep_until(next_retry), if next_retry.is_some() => {
                    let now = tokio::time::Instant::now();
                    let due: Vec<ServiceKey> = self.retries.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
                    for k in due {
                        self.retries.remove(&k);
                        self.dirty.insert(k);
                    }
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

    /// Starts writes for dirty Services that are not already being written.
    fn dispatch(&mut self, writes: &mut JoinSet<(Plan, WriteOutcome)>) {
        // Deciding one Service can wake others (a release frees capacity), so keep going until
        // nothing dispatchable is left rather than walking a snapshot.
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some(key) = self
                .dirty
                .iter()
                .find(|k| !self.in_flight.contains(*k))
                .cloned()
            else {
                break;
            };
            self.dirty.remove(&key);
            let Some(plan) = self.plan(&key) else {
                continue;
            };
            self.in_flight.insert(key);
            let writer = self.writer.clone();
            writes.spawn(async move {
                let outcome = writer.apply(&plan).await;
                (plan, outcome)
            });
        }
    }

    fn plan(&mut self, key: &ServiceKey) -> Option<Plan> {
        if is_quarantine(key) {
            return None;
        }
        let started = Instant::now();
        let svc = self.lookup(key);
        let Some(svc) = svc else {
            // Deleted: give its addresses back; nothing to write on a gone object, and its
            // status went with it, so IPs it was giving up are free too.
            if self.allocator.release(key).is_some() {
                self.capacity_freed();
            }
            self.end_quarantine(key);
            self.remember_written(key, None);
            self.retries.remove(key);
            self.attempts.remove(key);
            self.last_failure.remove(key);
            self.waiting.remove(key);
            self.expected.remove(key);
            self.pending_notices.remove(key);
            self.stats_stale = true;
            return None;
        };
        let mut v = view(&svc, self.settings.lb_class.as_deref());
        if let Some(exp) = self.expected.get(key) {
            let caught_up = v.ingress == exp.ingress && v.pool_annotation == exp.pool;
            if caught_up || exp.at.elapsed() > EXPECTATION_TTL {
                self.expected.remove(key);
            } else {
                // Decide against our own write; look again once it can no longer be in flight,
                // so a manual edit made meanwhile is still corrected.
                v.ingress = exp.ingress.clone();
                v.pool_annotation = exp.pool.clone();
                v.ingress_in_our_shape = true;
                let recheck = exp.at + EXPECTATION_TTL;
                self.retries.entry(key.clone()).or_insert(recheck);
            }
        }
        let mut d = decide(&mut self.allocator, &v);
        if let Some(new) = &d.ingress {
            let mut showing = v.ingress.clone();
            for ip in self.written.get(key).into_iter().flatten() {
                if !showing.contains(ip) {
                    showing.push(*ip);
                }
            }
            let dropped: Vec<std::net::IpAddr> = showing
                .iter()
                .filter(|ip| !new.contains(ip))
                .copied()
                .collect();
            self.quarantine(key, &v, &dropped);
        }
        if let Some(other) = d
            .ingress
            .as_deref()
            .and_then(|ips| self.stale_holder(key, ips))
        {
            // Another Service's status still shows one of these IPs although it no longer
            // holds it (its own rewrite is pending or failing). Keep the allocation, write
            // nothing yet, and look again shortly.
            tracing::debug!(service = %key, other = %other, "waiting for another Service's status to drop a shared-out IP");
            d.ingress = None;
            d.pool_annotation = None;
            d.events.clear();
            d.allocated = false;
            // Woken as soon as the other status changes; the retry is only a backstop, and it
            // must not be pushed out by a later deadline already scheduled for this Service.
            self.blocked_by
                .entry(other)
                .or_default()
                .insert(key.clone());
            let soon = tokio::time::Instant::now() + RETRY_MIN;
            let at = self.retries.entry(key.clone()).or_insert(soon);
            *at = (*at).min(soon);
        }
        if d.ingress.is_some() || d.pool_annotation.is_some() {
            tracing::debug!(service = %key, showing = ?v.ingress, ingress = ?d.ingress, pool = ?d.pool_annotation, "decided");
        }
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        if d.allocated {
            self.metrics.allocations.inc();
        }
        if d.released {
            self.capacity_freed();
        }
        match d.failure {
            Some(reason) => {
                self.metrics.failed(reason);
                if reason != "bad_annotation" {
                    self.waiting.insert(key.clone());
                }
                let note = d.events.first().map(|e| e.note.clone()).unwrap_or_default();
                if self.last_failure.get(key) == Some(&note) {
                    d.events.clear();
                } else {
                    self.last_failure.insert(key.clone(), note);
                }
            }
            None => {
                self.waiting.remove(key);
                self.last_failure.remove(key);
            }
        }
        if v.handling != Handling::Ours {
            self.waiting.remove(key);
            self.last_failure.remove(key);
        }
        self.stats_stale = true;
        let mut plan = Plan::new(key.clone(), svc.object_ref(&()));
        plan.outcome = (
            d.ingress.clone().unwrap_or_else(|| v.ingress.clone()),
            d.pool_annotation
                .clone()
                .unwrap_or_else(|| v.pool_annotation.clone()),
        );
        plan.ingress = d.ingress;
        plan.pool_annotation = d.pool_annotation;
        plan.events = d.events;
        plan.events
            .extend(self.pending_notices.remove(key).unwrap_or_default());
        (!plan.is_empty()).then_some(plan)
    }

    fn finished(&mut self, plan: Plan, outcome: WriteOutcome) {
        let key = plan.key;
        tracing::debug!(service = %key, ingress = ?plan.ingress, outcome = ?outcome, "write finished");
        self.in_flight.remove(&key);
        match outcome {
            WriteOutcome::Done => {
                self.attempts.remove(&key);
                if let Some(ips) = &plan.ingress {
                    self.remember_written(&key, Some(ips));
                    self.end_quarantine(&key);
                }
                if plan.ingress.is_some() || plan.pool_annotation.is_some() {
                    let (ingress, pool) = plan.outcome;
                    let at = tokio::time::Instant::now();
                    self.expected.insert(key, Expectation { ingress, pool, at });
                }
            }
            WriteOutcome::Gone => {
                self.remember_written(&key, None);
                self.end_quarantine(&key);
                self.attempts.remove(&key);
                self.retries.remove(&key);
                self.expected.remove(&key);
            }
            WriteOutcome::Failed {
                error: e,
                status_written,
            } => {
                if status_written {
                    if let Some(ips) = &plan.ingress {
                        self.remember_written(&key, Some(ips));
                        self.end_quarantine(&key);
                    }
                }
                let attempts = self.attempts.get(&key).copied().unwrap_or(0) + 1;
                // Our patches carry no precondition, so a 409 is the server's transient
                // contention, not a lost race: retry soon instead of backing off.
                let conflict = matches!(&e, kube::Error::Api(s) if s.is_conflict());
                let cap = if api_unreachable(&e) {
                    RETRY_MAX_UNREACHABLE
                } else {
                    RETRY_MAX
                };
                let delay = if conflict {
                    RETRY_MIN
                } else {
                    RETRY_MIN.saturating_mul(1 << attempts.min(10)).min(cap)
                };
                // A long outage retries every second: say so on the first failure and then
                // every tenth, not every time.
                if attempts == 1 || attempts % 10 == 0 {
                    tracing::warn!(service = %key, error = %e, attempt = attempts, retry_in = ?delay, "writing Service failed");
                } else {
                    tracing::debug!(service = %key, error = %e, attempt = attempts, retry_in = ?delay, "writing Service failed");
                }
                self.attempts.insert(key.clone(), attempts);
                self.retries
                    .insert(key, tokio::time::Instant::now() + delay);
            }
        }
    }

    /// Holds each of `dropped` (IPs `key`'s status shows but its new allocation lacks) that no
    /// other Service holds, until `key`'s status no longer shows it.
    fn quarantine(&mut self, key: &ServiceKey, v: &ServiceView, dropped: &[std::net::IpAddr]) {
        for ip in dropped {
            // One placeholder per (IP, Service): two Services leaving one shared IP each keep it
            // until their own status is rewritten.
            let holder = ServiceKey::new(QUARANTINE_NS, format!("{ip} {key}"));
            let mut req = fallback_request(v);
            req.ips = vec![*ip];
            req.families = vec![ferrolb_core::addr::Family::of(ip)];
            // The placeholder serves no port and takes the key and traffic policy of whoever
            // still shares the IP, so it sits beside them; Services that could not share with
            // them cannot take the IP either, even once they leave while this status is stale.
            req.sharing.ports.clear();
            req.sharing_key = None;
            let other = self
                .allocator
                .holders(ip)
                .into_iter()
                .find(|h| *h != key && !is_quarantine(h))
                .cloned();
            if let Some(other) = other {
                req.sharing_key = self
                    .allocator
                    .get(&other)
                    .and_then(|a| a.sharing_key.clone());
                if let Some(attrs) = self.allocator.sharing_attrs(&other) {
                    req.sharing.external_traffic_local = attrs.external_traffic_local;
                    req.sharing.selector = attrs.selector.clone();
                }
            }
            match self.allocator.restore(&holder, &req, &[*ip]) {
                Ok(_) => {
                    let held = self.quarantined.entry(key.clone()).or_default();
                    if !held.contains(&holder) {
                        held.push(holder);
                    }
                    self.stats_stale = true;
                }
                // Someone already holds it in a way no placeholder can share: it was never free.
                Err(e) => tracing::debug!(service = %key, %ip, error = %e, "no quarantine needed"),
            }
        }
    }

    /// Records what `svc`'s status shows now (`None`: the Service is gone).
    fn observe_status(&mut self, key: &ServiceKey, svc: Option<&Service>) {
        if let Some(waiting) = self.blocked_by.remove(key) {
            self.dirty.extend(waiting);
        }
        for ip in self.shows.remove(key).unwrap_or_default() {
            if let Some(set) = self.shown.get_mut(&ip) {
                set.remove(key);
                if set.is_empty() {
                    self.shown.remove(&ip);
                }
            }
        }
        let Some(svc) = svc else { return };
        let v = view(svc, self.settings.lb_class.as_deref());
        // Only statuses we wrote or will write: another provider's Services are not ours to
        // wait for (a Service that just left LoadBalancer still carries our annotation).
        if v.handling != Handling::Ours && v.pool_annotation.is_none() {
            return;
        }
        let ips = v.ingress;
        for ip in &ips {
            self.shown.entry(*ip).or_default().insert(key.clone());
        }
        if !ips.is_empty() {
            self.shows.insert(key.clone(), ips);
        }
    }

    fn rebuild_shown(&mut self) {
        self.shown.clear();
        self.shows.clear();
        for svc in self.services.state() {
            let key = ServiceKey::new(
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone().unwrap_or_default(),
            );
            self.observe_status(&key, Some(&svc));
        }
    }

    /// A Service other than `key` whose observed status shows one of `ips` without holding
    /// it in the allocator: writing `ips` to `key` now could show one IP on two Services.
    fn stale_holder(&self, key: &ServiceKey, ips: &[std::net::IpAddr]) -> Option<ServiceKey> {
        ips.iter().find_map(|ip| {
            let holders = self.allocator.holders(ip);
            self.shown
                .get(ip)
                .into_iter()
                .chain(self.written_by_ip.get(ip))
                .flatten()
                .find(|other| *other != key && !holders.contains(other))
                .cloned()
        })
    }

    /// Records the IPs our last successful status write for `key` put there (`None`: the
    /// Service is gone, so is its status).
    fn remember_written(&mut self, key: &ServiceKey, ips: Option<&[std::net::IpAddr]>) {
        for ip in self.written.remove(key).unwrap_or_default() {
            if let Some(set) = self.written_by_ip.get_mut(&ip) {
                set.remove(key);
                if set.is_empty() {
                    self.written_by_ip.remove(&ip);
                }
            }
        }
        let Some(ips) = ips.filter(|i| !i.is_empty()) else {
            return;
        };
        for ip in ips {
            self.written_by_ip
                .entry(*ip)
                .or_default()
                .insert(key.clone());
        }
        self.written.insert(key.clone(), ips.to_vec());
        // Services waiting for `key`'s status to change may go now.
        if let Some(waiting) = self.blocked_by.remove(key) {
            self.dirty.extend(waiting);
        }
    }

    /// `key`'s status no longer shows the IPs it gave up: let them go.
    fn end_quarantine(&mut self, key: &ServiceKey) {
        let Some(held) = self.quarantined.remove(key) else {
            return;
        };
        for holder in held {
            self.allocator.release(&holder);
        }
        self.stats_stale = true;
        self.capacity_freed();
    }

    fn capacity_freed(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        self.dirty.extend(waiting);
    }

    fn publish_stats(&self) {
        self.metrics
            .set_pool_stats(&self.allocator.stats(), self.allocator.orphaned_ips());
    }

    /// Registers every existing ingress before anything new is allocated: oldest Service first,
    /// so when two Services claim one IP the older keeps it and the newer is re-allocated.
    async fn replay(&mut self) {
        let mut views: Vec<ServiceView> = self
            .services
            .state()
            .iter()
            .map(|s| view(s, self.settings.lb_class.as_deref()))
            .filter(|v| v.handling == Handling::Ours && !v.ingress.is_empty())
            .collect();
        views.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
        for v in views {
            let req = allocation_request(&v.info).unwrap_or_else(|_| fallback_request(&v));
            match self.allocator.restore(&v.key, &req, &v.ingress) {
                Ok(a) if a.is_orphaned() => {
                    tracing::warn!(service = %v.key, ips = ?a.addresses(), "kept an IP that is outside every pool");
                }
                Ok(_) => {}
                Err(e) => {
                    self.metrics.ip_conflicts.inc();
                    let note = format!("{e}; this Service will get a new IP");
                    tracing::warn!(service = %v.key, %note, "duplicate IP found during replay");
                    if let Some(svc) = self.lookup(&v.key) {
                        self.writer
                            .event(
                                &warning("IPConflict", "Allocate", note),
                                &svc.object_ref(&()),
                            )
                            .await;
                    }
                }
            }
        }
        self.publish_stats();
    }

    /// Applies a new ConfigMap (or its absence): a valid config replaces the pools at once
    /// without moving any IP; an invalid one is rejected and the last good one stays.
    async fn on_config(&mut self, cm: Option<&ConfigMap>) {
        let (ns, name) = (&self.settings.namespace, &self.settings.config_map);
        let Some(cm) = cm else {
            tracing::info!(configmap = %format!("{ns}/{name}"), "pool ConfigMap not found: no pools are configured, so no IPs will be allocated");
            self.metrics.config_valid.set(1);
            self.apply_config(Config::default()).await;
            return;
        };
        let reference = cm.object_ref(&());
        let data = cm.data.clone().unwrap_or_default();
        match parse_config_map_data(&data) {
            Ok(parsed) => {
                self.metrics.config_valid.set(1);
                if self.config.as_ref() == Some(&parsed.config) {
                    return;
                }
                let pools = parsed.config.pools.len();
                tracing::info!(configmap = %format!("{ns}/{name}"), pools, format = ?parsed.config.format, "loaded pool config");
                self.writer
                    .event(
                        &normal(
                            "ConfigLoaded",
                            "LoadConfig",
                            format!("loaded {pools} pool(s) ({:?} format)", parsed.config.format),
                        ),
                        &reference,
                    )
                    .await;
                if !parsed.warnings.is_empty() {
                    let note = parsed.warnings.join("; ");
                    tracing::warn!(configmap = %format!("{ns}/{name}"), %note, "pool config warnings");
                    self.writer
                        .event(&warning("ConfigWarning", "LoadConfig", note), &reference)
                        .await;
                }
                self.apply_config(parsed.config).await;
            }
            Err(errors) => {
                self.metrics.config_valid.set(0);
                let list = errors.to_string();
                tracing::error!(configmap = %format!("{ns}/{name}"), errors = %list, "pool config rejected; the last good config stays in force");
                let note = format!(
                    "config rejected, the last good config stays in force: {}",
                    list.replace('\n', "; ")
                );
                self.writer
                    .event(&warning("ConfigInvalid", "LoadConfig", note), &reference)
                    .await;
            }
        }
    }

    async fn apply_config(&mut self, config: Config) {
        let change = self.allocator.set_pools(config.pools.clone());
        self.config = Some(config);
        for key in change.orphaned {
            let ips = self
                .allocator
                .get(&key)
                .map(|a| a.addresses())
                .unwrap_or_default();
            let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let note = format!(
                "IP {} is outside every pool after a config change; it is kept until the Service is deleted or changed",
                list.join(", ")
            );
            self.pending_notices.entry(key).or_default().push(warning(
                "IPOutsidePools",
                "LoadConfig",
                note,
            ));
        }
        // New pools take effect at once: waiting Services may fit now, annotations may change.
        self.dirty = self.all_keys();
        self.stats_stale = true;
    }
}

/// What to restore a Service with when its annotations no longer parse: its addresses must
/// still be registered, or another Service could be given them.
fn fallback_request(v: &ServiceView) -> AllocationRequest {
    let families = v
        .ingress
        .iter()
        .map(ferrolb_core::addr::Family::of)
        .collect();
    AllocationRequest {
        pool: None,
        ips: v.ingress.clone(),
        sharing_key: None,
        families,
        require_all: false,
        sharing: SharingAttrs {
            ports: v.info.ports.iter().copied().collect(),
            external_traffic_local: v.info.external_traffic_local,
            selector: v.info.selector.clone(),
        },
        namespace: v.info.namespace.clone(),
        labels: v.info.labels.clone(),
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

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
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
}
