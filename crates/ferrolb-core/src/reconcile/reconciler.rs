//! The reconciler: observations in, writes and Events out, one state per Service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::decide::decide;
use super::event::{Event, EventAction, EventReason};
use super::facts::{Handling, ServiceFacts};
use super::plan::{Backoff, Decided, Replay, ReplayConflict, Write, WriteResult};
use super::quarantine;
use super::retry::{retry_delay, RETRY_MIN};
use super::state::{Expectation, Hold, InFlight, ServiceState};
use crate::alloc::Allocator;
use crate::config::Config;
use crate::election::MonoTime;
use crate::service::{allocation_request, ServiceKey};

/// How long to trust our own write over a cache that has not delivered it yet.
pub const EXPECTATION_TTL: Duration = Duration::from_secs(10);
/// Writes in flight at once by default; enough to hide API latency, small enough to be polite.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// The controller's decision core. Feed it what the Service and ConfigMap watches deliver and
/// how writes went; ask it for [`Reconciler::next_decision`] until it has nothing, carry out
/// the writes, and call [`Reconciler::wake`] at [`Reconciler::next_wake`].
#[derive(Debug, Clone)]
pub struct Reconciler {
    allocator: Allocator,
    config: Option<Config>,
    max_in_flight: usize,
    synced: bool,
    services: BTreeMap<ServiceKey, ServiceState>,
    /// Services to decide again.
    dirty: BTreeSet<ServiceKey>,
    in_flight: usize,
    /// Index of [`ServiceState::may_show`]: which Services' statuses may show each IP.
    showing: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    /// Index of [`Hold::WaitingFor`]: who waits for each Service's status to change.
    waiters: BTreeMap<ServiceKey, BTreeSet<ServiceKey>>,
    /// Index of [`ServiceState::retry_at`].
    timers: BTreeSet<(MonoTime, ServiceKey)>,
    stats_stale: bool,
}

impl Default for Reconciler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_IN_FLIGHT)
    }
}

impl Reconciler {
    /// A reconciler with no pools and no Services that hands out at most `max_in_flight`
    /// writes at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            allocator: Allocator::new(Vec::new()),
            config: None,
            max_in_flight: max_in_flight.max(1),
            synced: false,
            services: BTreeMap::new(),
            dirty: BTreeSet::new(),
            in_flight: 0,
            showing: BTreeMap::new(),
            waiters: BTreeMap::new(),
            timers: BTreeSet::new(),
            stats_stale: true,
        }
    }

    /// The allocator, for metrics and tests.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// The pool config in force.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// Whether allocator figures changed since the last call (publish them once per pass).
    pub fn take_stats_stale(&mut self) -> bool {
        std::mem::take(&mut self.stats_stale)
    }

    /// How many Services it tracks.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether it tracks no Service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Puts `config` in force. No IP moves; IPs now outside every pool are kept and their
    /// Services get an `IPOutsidePools` Warning with their next write. Every Service is decided
    /// again, since waiting ones may fit and annotations may change.
    pub fn apply_config(&mut self, config: Config) {
        let change = self.allocator.set_pools(config.pools.clone());
        self.config = Some(config);
        for key in change.orphaned {
            let ips = self
                .allocator
                .get(&key)
                .map(|a| a.addresses())
                .unwrap_or_default();
            let note = format!(
                "IP {} is outside every pool after a config change; it is kept until the Service is deleted or changed",
                ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            let Some(state) = self.services.get_mut(&key) else {
                continue;
            };
            // An IP its status never showed is not kept but re-allocated (see `decide`).
            let shown: BTreeSet<&IpAddr> = state.may_show().collect();
            if !ips.iter().all(|ip| shown.contains(ip)) {
                continue;
            }
            state.pending_notices.push(Event::warning(
                EventReason::IpOutsidePools,
                EventAction::LoadConfig,
                note,
            ));
        }
        self.dirty = self.services.keys().cloned().collect();
        self.stats_stale = true;
    }

    /// The Service cache is complete for the first time: registers every existing ingress
    /// before anything new is allocated, oldest Service first, so when two Services claim one
    /// IP the older keeps it and the newer is re-allocated. Then every Service is decided.
    pub fn synced(&mut self, services: Vec<ServiceFacts>) -> Replay {
        let mut replay = Replay::default();
        let mut ours: Vec<&ServiceFacts> = services
            .iter()
            .filter(|f| f.handling == Handling::Ours && !f.ingress.is_empty())
            .collect();
        ours.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
        for f in ours {
            let req =
                allocation_request(&f.info).unwrap_or_else(|_| quarantine::fallback_request(f));
            match self.allocator.restore(&f.key, &req, &f.ingress) {
                Ok(a) if a.is_orphaned() => replay.orphaned.push((f.key.clone(), a.addresses())),
                Ok(_) => {}
                Err(e) => replay.conflicts.push(ReplayConflict {
                    key: f.key.clone(),
                    uid: f.uid.clone(),
                    event: Event::warning(
                        EventReason::IpConflict,
                        EventAction::Allocate,
                        format!("{e}; this Service will get a new IP"),
                    ),
                }),
            }
        }
        self.synced = true;
        self.relisted(services);
        replay
    }

    /// The Service cache was re-listed (after a watch gap): `services` is everything that
    /// exists now. Services missing from it were deleted while the watch was down.
    pub fn relisted(&mut self, services: Vec<ServiceFacts>) {
        let listed: BTreeSet<ServiceKey> = services.iter().map(|f| f.key.clone()).collect();
        let gone: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|(k, s)| s.facts.is_some() && !listed.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.service_deleted(&key);
        }
        for f in services {
            self.service_seen(f);
        }
        self.dirty = self.services.keys().cloned().collect();
    }

    /// The cache delivered `facts` (created or changed).
    pub fn service_seen(&mut self, facts: ServiceFacts) {
        let key = facts.key.clone();
        let shows = facts.shown_ips().to_vec();
        self.status_changed(&key);
        let state = self.services.entry(key.clone()).or_default();
        let old_uid = state.facts.as_ref().and_then(|f| f.uid.as_deref());
        let recreated = matches!((old_uid, facts.uid.as_deref()), (Some(a), Some(b)) if a != b);
        state.facts = Some(facts);
        if recreated {
            // The name belongs to a new object: the old one's status, and so our writes to
            // it and what they gave up, went with it.
            state.expectation = None;
            self.set_written(&key, Vec::new());
            self.end_quarantine(&key);
        }
        self.set_shows(&key, shows);
        self.dirty.insert(key);
    }

    /// The cache says the Service is gone; so is its status, with every IP our writes put
    /// there or it was giving up. (Its allocation is released when it is next decided, unless
    /// an object of the same name is back by then and keeps it.)
    pub fn service_deleted(&mut self, key: &ServiceKey) {
        self.status_changed(key);
        if let Some(state) = self.services.get_mut(key) {
            state.facts = None;
            state.expectation = None;
            self.set_shows(key, Vec::new());
            self.set_written(key, Vec::new());
            self.end_quarantine(key);
            self.dirty.insert(key.clone());
        }
    }

    /// Services held for `key`'s status may go now.
    fn status_changed(&mut self, key: &ServiceKey) {
        if let Some(waiting) = self.waiters.remove(key) {
            for w in waiting {
                if let Some(s) = self.services.get_mut(&w) {
                    if s.hold == Some(Hold::WaitingFor(key.clone())) {
                        s.hold = None;
                    }
                }
                self.dirty.insert(w);
            }
        }
    }

    /// Decides the next Service that needs it, if a write slot is free. Deciding one Service
    /// can wake others (a release frees capacity), so call until `None`.
    pub fn next_decision(&mut self, now: MonoTime) -> Option<Decided> {
        if !self.synced {
            return None;
        }
        while self.in_flight < self.max_in_flight {
            let key = self
                .dirty
                .iter()
                .find(|k| self.services.get(*k).is_none_or(|s| s.in_flight.is_none()))
                .cloned()?;
            self.dirty.remove(&key);
            if let Some(d) = self.decide_one(&key, now) {
                return Some(d);
            }
        }
        None
    }

    fn decide_one(&mut self, key: &ServiceKey, now: MonoTime) -> Option<Decided> {
        let state = self.services.get_mut(key)?;
        let Some(mut facts) = state.facts.clone() else {
            // Deleted: give its addresses back; nothing to write on a gone object, and its
            // status went with it, so IPs it was giving up are free too.
            if self.allocator.release(key).is_some() {
                self.capacity_freed();
            }
            self.end_quarantine(key);
            self.set_written(key, Vec::new());
            self.set_retry(key, None);
            self.forget_if_done(key);
            self.stats_stale = true;
            return None;
        };
        if let Some(exp) = state.expectation.clone() {
            let caught_up = facts.ingress == exp.ingress && facts.pool_annotation == exp.pool;
            if caught_up || now.saturating_since(exp.at) >= EXPECTATION_TTL {
                state.expectation = None;
            } else {
                // Decide against our own write; look again once it can no longer be in
                // flight, so a manual edit made meanwhile is still corrected.
                facts.ingress = exp.ingress;
                facts.pool_annotation = exp.pool;
                facts.ingress_in_our_shape = true;
                if state.retry_at.is_none() {
                    self.set_retry(key, Some(exp.at + EXPECTATION_TTL));
                }
            }
        }
        let may_show: BTreeSet<IpAddr> = facts
            .ingress
            .iter()
            .chain(self.services.get(key).map_or(&[][..], |s| &s.written))
            .copied()
            .collect();
        // A quarantine ends when the clearing write succeeds, or when the status is seen
        // without the IP by other means (a write that failed halfway, a user's edit).
        self.end_quarantine_except(key, &may_show);
        let written = self
            .services
            .get(key)
            .map(|s| s.written.clone())
            .unwrap_or_default();
        let mut d = decide(&mut self.allocator, &facts, &written);
        // A new IP under a sharing key is room for every Service of that key that failed for
        // lack of capacity: they may share it now.
        let opened_sharing = d.allocated
            && self
                .allocator
                .get(key)
                .is_some_and(|a| a.sharing_key.is_some());
        if let Some(new) = &d.ingress {
            let dropped: Vec<IpAddr> = may_show
                .iter()
                .filter(|ip| !new.contains(ip))
                .copied()
                .collect();
            self.quarantine(key, &facts, &dropped);
        }
        // An IP it gave up and now holds again (a type toggled back, a shared IP re-taken)
        // is held by the Service itself; a placeholder beside it would never be let go, since
        // the status keeps showing the IP.
        let held: BTreeSet<IpAddr> = self
            .allocator
            .get(key)
            .map(|a| a.addresses())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let still_quarantined: BTreeSet<IpAddr> = may_show.difference(&held).copied().collect();
        self.end_quarantine_except(key, &still_quarantined);
        let waiting_for = d
            .ingress
            .as_deref()
            .and_then(|ips| self.stale_holder(key, ips));
        if let Some(other) = &waiting_for {
            // Another Service's status still shows one of these IPs although it no longer
            // holds it. Keep the allocation, write nothing yet; woken as soon as the other
            // status changes, the retry is only a backstop and must not be pushed out by a
            // later deadline already scheduled.
            d.ingress = None;
            d.pool_annotation = None;
            d.events.clear();
            d.allocated = false;
            self.waiters
                .entry(other.clone())
                .or_default()
                .insert(key.clone());
            let soon = now + RETRY_MIN;
            let at = self.services.get(key).and_then(|s| s.retry_at);
            self.set_retry(key, Some(at.map_or(soon, |at| at.min(soon))));
        }
        if d.released || opened_sharing {
            self.capacity_freed();
        }
        self.stats_stale = true;
        let state = self.services.get_mut(key)?;
        state.hold = waiting_for.clone().map(Hold::WaitingFor);
        match d.failure {
            Some(reason) => {
                if reason.waits_for_capacity() && facts.handling == Handling::Ours {
                    state.hold = Some(Hold::WaitingForCapacity);
                }
                let note = d.events.first().map(|e| e.note.clone()).unwrap_or_default();
                if state.last_failure.as_ref() == Some(&note) {
                    d.events.clear();
                } else {
                    state.last_failure = Some(note);
                }
            }
            None => state.last_failure = None,
        }
        if facts.handling != Handling::Ours {
            state.last_failure = None;
        }
        let mut events = d.events;
        events.append(&mut state.pending_notices);
        let write = (d.ingress.is_some() || d.pool_annotation.is_some() || !events.is_empty())
            .then(|| {
                state.in_flight = Some(InFlight {
                    ingress: d.ingress.clone(),
                    writes_annotation: d.pool_annotation.is_some(),
                    outcome: (
                        d.ingress.clone().unwrap_or_else(|| facts.ingress.clone()),
                        d.pool_annotation
                            .clone()
                            .unwrap_or_else(|| facts.pool_annotation.clone()),
                    ),
                });
                Write {
                    key: key.clone(),
                    uid: facts.uid.clone(),
                    ingress: d.ingress,
                    pool_annotation: d.pool_annotation,
                    events,
                }
            });
        if write.is_some() {
            self.in_flight += 1;
        }
        Some(Decided {
            key: key.clone(),
            write,
            allocated: d.allocated,
            failure: d.failure,
            waiting_for,
        })
    }

    /// The write handed out for `key` ended with `result` at `now`; `Some` when it will be
    /// retried.
    pub fn write_finished(
        &mut self,
        key: &ServiceKey,
        result: WriteResult,
        now: MonoTime,
    ) -> Option<Backoff> {
        let flight = self.services.get_mut(key)?.in_flight.take()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut backoff = None;
        match result {
            WriteResult::Done => {
                if let Some(ips) = &flight.ingress {
                    self.set_written(key, ips.clone());
                    self.end_quarantine(key);
                }
                if let Some(s) = self.services.get_mut(key) {
                    s.attempts = 0;
                    if flight.ingress.is_some() || flight.writes_annotation {
                        let (ingress, pool) = flight.outcome;
                        s.expectation = Some(Expectation {
                            ingress,
                            pool,
                            at: now,
                        });
                    }
                }
            }
            WriteResult::Gone => {
                self.set_written(key, Vec::new());
                self.end_quarantine(key);
                self.set_retry(key, None);
                if let Some(s) = self.services.get_mut(key) {
                    s.attempts = 0;
                    s.expectation = None;
                }
            }
            WriteResult::Failed {
                failure,
                status_written,
            } => {
                if status_written {
                    if let Some(ips) = &flight.ingress {
                        self.set_written(key, ips.clone());
                        self.end_quarantine(key);
                    }
                }
                if let Some(s) = self.services.get_mut(key) {
                    s.attempts += 1;
                    let delay = retry_delay(failure, s.attempts);
                    backoff = Some(Backoff {
                        attempts: s.attempts,
                        delay,
                    });
                    self.set_retry(key, Some(now + delay));
                }
            }
        }
        self.forget_if_done(key);
        backoff
    }

    /// The earliest time [`Reconciler::wake`] has something to do.
    pub fn next_wake(&self) -> Option<MonoTime> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Marks every Service whose retry is due at `now` for a new decision.
    pub fn wake(&mut self, now: MonoTime) {
        while let Some((at, key)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.set_retry(&key, None);
            self.dirty.insert(key);
        }
    }

    /// Holds each of `dropped` (IPs `key`'s status may show but its new allocation lacks)
    /// until `key`'s status no longer shows it.
    fn quarantine(&mut self, key: &ServiceKey, facts: &ServiceFacts, dropped: &[IpAddr]) {
        for ip in dropped {
            let already = self
                .services
                .get(key)
                .is_some_and(|s| s.quarantined.contains(ip));
            if quarantine::hold(&mut self.allocator, key, facts, *ip) && !already {
                if let Some(s) = self.services.get_mut(key) {
                    s.quarantined.push(*ip);
                }
                self.stats_stale = true;
            }
        }
    }

    /// `key`'s status no longer shows the IPs it gave up: let them go.
    fn end_quarantine(&mut self, key: &ServiceKey) {
        self.end_quarantine_except(key, &BTreeSet::new());
    }

    /// Lets go of the IPs `key` gave up that are not in `still_shown`.
    fn end_quarantine_except(&mut self, key: &ServiceKey, still_shown: &BTreeSet<IpAddr>) {
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        let (kept, ended): (Vec<IpAddr>, Vec<IpAddr>) = std::mem::take(&mut state.quarantined)
            .into_iter()
            .partition(|ip| still_shown.contains(ip));
        state.quarantined = kept;
        if ended.is_empty() {
            return;
        }
        for ip in ended {
            quarantine::release(&mut self.allocator, key, &ip);
        }
        self.stats_stale = true;
        self.capacity_freed();
    }

    fn capacity_freed(&mut self) {
        for (key, s) in &mut self.services {
            if s.hold == Some(Hold::WaitingForCapacity) {
                s.hold = None;
                self.dirty.insert(key.clone());
            }
        }
    }

    /// A Service other than `key` whose status may show one of `ips` without holding it in
    /// the allocator: writing `ips` to `key` now could show one IP on two Services. The last
    /// line of defence, whatever the bookkeeping above believes.
    fn stale_holder(&self, key: &ServiceKey, ips: &[IpAddr]) -> Option<ServiceKey> {
        ips.iter().find_map(|ip| {
            let holders = self.allocator.holders(ip);
            self.showing
                .get(ip)
                .into_iter()
                .flatten()
                .find(|other| *other != key && !holders.contains(other))
                .cloned()
        })
    }

    fn set_shows(&mut self, key: &ServiceKey, shows: Vec<IpAddr>) {
        self.update_showing(key, |s| s.shows = shows);
    }

    /// Records the IPs our last successful status write for `key` put there (empty: none, or
    /// the Service is gone); Services waiting for `key`'s status may go now.
    fn set_written(&mut self, key: &ServiceKey, ips: Vec<IpAddr>) {
        let changed = self
            .services
            .get(key)
            .is_some_and(|s| !s.written.is_empty() || !ips.is_empty());
        self.update_showing(key, |s| s.written = ips);
        if changed {
            self.status_changed(key);
        }
    }

    fn update_showing(&mut self, key: &ServiceKey, change: impl FnOnce(&mut ServiceState)) {
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        let before: BTreeSet<IpAddr> = state.may_show().copied().collect();
        change(state);
        let after: BTreeSet<IpAddr> = state.may_show().copied().collect();
        for ip in before.difference(&after) {
            if let Some(set) = self.showing.get_mut(ip) {
                set.remove(key);
                if set.is_empty() {
                    self.showing.remove(ip);
                }
            }
        }
        for ip in after.difference(&before) {
            self.showing.entry(*ip).or_default().insert(key.clone());
        }
    }

    fn set_retry(&mut self, key: &ServiceKey, at: Option<MonoTime>) {
        let Some(state) = self.services.get_mut(key) else {
            return;
        };
        if let Some(old) = state.retry_at.take() {
            self.timers.remove(&(old, key.clone()));
        }
        if let Some(at) = at {
            state.retry_at = Some(at);
            self.timers.insert((at, key.clone()));
        }
    }

    fn forget_if_done(&mut self, key: &ServiceKey) {
        let forgettable = self
            .services
            .get(key)
            .is_some_and(ServiceState::is_forgettable);
        if forgettable && self.allocator.get(key).is_none() {
            self.set_retry(key, None);
            self.services.remove(key);
        }
    }

    /// What the reconciler believes `key` shows and holds, for tests and debugging.
    pub fn state(&self, key: &ServiceKey) -> Option<&ServiceState> {
        self.services.get(key)
    }
}
