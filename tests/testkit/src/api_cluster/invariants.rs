//! The allocation invariants of `/work/shared/design.md`, re-checked from the Service objects
//! themselves (never from the controller's own view): over a whole kube-sim history and over
//! a snapshot of the current Services.
//!
//! The sharing rule is implemented here independently of `ferrolb-core`, so a bug in the
//! core's rule cannot hide itself: two LoadBalancer Services may show the same IP only if both
//! carry the same non-empty sharing key, their port/protocol sets are disjoint, and both use
//! `externalTrafficPolicy: Cluster` or they have the same selector.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Annotations that carry a sharing key, in order of precedence (all must agree anyway).
const SHARING_KEYS: &[&str] = &[
    "ferrolb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];

/// What the sharing rule looks at, read from a Service object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcFacts {
    /// `spec.type == LoadBalancer` and no deletionTimestamp: only these "hold" an IP.
    pub lb: bool,
    /// `status.loadBalancer.ingress[].ip`.
    pub ips: Vec<String>,
    /// The sharing key, if any.
    pub key: Option<String>,
    /// (port, protocol) pairs.
    pub ports: BTreeSet<(i64, String)>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// `spec.selector` as JSON.
    pub selector: Value,
}

impl SvcFacts {
    /// Reads the facts of a Service object (JSON as stored by kube-sim).
    pub fn of(obj: &Value) -> Self {
        let spec = &obj["spec"];
        let ann = &obj["metadata"]["annotations"];
        let key = SHARING_KEYS
            .iter()
            .find_map(|k| ann[*k].as_str().filter(|v| !v.trim().is_empty()))
            .map(|v| v.trim().to_string());
        let ports = spec["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["port"].as_i64().unwrap_or(-1),
                            p["protocol"].as_str().unwrap_or("TCP").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ips = obj["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["ip"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            lb: spec["type"] == "LoadBalancer" && obj["metadata"]["deletionTimestamp"].is_null(),
            ips,
            key,
            ports,
            local: spec["externalTrafficPolicy"] == "Local",
            selector: spec["selector"].clone(),
        }
    }

    /// The same facts with another status (to compare specs only).
    fn spec_only(&self) -> Self {
        Self {
            ips: Vec::new(),
            ..self.clone()
        }
    }
}

/// `Ok` if `a` and `b` may hold one IP together; otherwise why not.
pub fn may_share(a: &SvcFacts, b: &SvcFacts) -> Result<(), String> {
    let (Some(ka), Some(kb)) = (&a.key, &b.key) else {
        return Err("no common sharing key".into());
    };
    if ka != kb {
        return Err(format!("sharing keys {ka:?} and {kb:?} differ"));
    }
    if let Some(p) = a.ports.intersection(&b.ports).next() {
        return Err(format!("both use port {}/{}", p.0, p.1));
    }
    if (a.local || b.local) && a.selector != b.selector {
        return Err("externalTrafficPolicy Local with different selectors".into());
    }
    Ok(())
}

/// `namespace/name`.
pub fn key_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Every pair of LoadBalancer Services in `objects` that shows one IP without being allowed
/// to: `(ip, a, b, why)`.
pub fn snapshot_conflicts(objects: &[Value]) -> Vec<(String, String, String, String)> {
    let facts: Vec<(String, SvcFacts)> = objects
        .iter()
        .map(|o| (key_of(o), SvcFacts::of(o)))
        .filter(|(_, f)| f.lb)
        .collect();
    let mut by_ip: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (_, f)) in facts.iter().enumerate() {
        for ip in &f.ips {
            by_ip.entry(ip.as_str()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (ip, holders) in by_ip {
        for (x, &i) in holders.iter().enumerate() {
            for &j in &holders[x + 1..] {
                if let Err(why) = may_share(&facts[i].1, &facts[j].1) {
                    out.push((ip.to_string(), facts[i].0.clone(), facts[j].0.clone(), why));
                }
            }
        }
    }
    out
}

/// Maps resourceVersions to wall-clock instants, from samples of the store's current RV
/// taken while a test runs.
#[derive(Debug, Default, Clone)]
pub struct RvClock {
    samples: Vec<(Instant, u64)>,
}

impl RvClock {
    /// Records that the store's RV was `rv` at `at`.
    pub fn sample(&mut self, at: Instant, rv: u64) {
        self.samples.push((at, rv));
    }

    /// The earliest sampled instant by which `rv` had been committed.
    pub fn time_of(&self, rv: u64) -> Option<Instant> {
        self.samples.iter().find(|(_, r)| *r >= rv).map(|(t, _)| *t)
    }

    /// The highest RV sampled at or before `at` (0 if none).
    pub fn rv_at(&self, at: Instant) -> u64 {
        self.samples
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, r)| *r)
    }
}

/// Samples a kube-sim store's RV every 20 ms in the background, building the [`RvClock`] a
/// history check needs to date changes.
pub struct RvSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clock: std::sync::Arc<std::sync::Mutex<RvClock>>,
    task: tokio::task::JoinHandle<()>,
}

impl RvSampler {
    /// Starts sampling `store` (must run inside a tokio runtime).
    pub fn start(store: std::sync::Arc<kube_sim::Store>) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clock = std::sync::Arc::new(std::sync::Mutex::new(RvClock::default()));
        let task = {
            let (stop, clock) = (stop.clone(), clock.clone());
            tokio::spawn(async move {
                let sample = || {
                    let rv = store.current_rv();
                    clock
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .sample(Instant::now(), rv);
                };
                while !stop.load(Ordering::Relaxed) {
                    sample();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // One last sample, so everything committed before `finish` can be dated.
                sample();
            })
        };
        Self { stop, clock, task }
    }

    /// Stops sampling and returns the clock.
    pub async fn finish(self) -> RvClock {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.task.await;
        let clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.clone()
    }
}

/// What a walk over the full history found.
#[derive(Debug, Default)]
pub struct HistoryReport {
    /// Service changes looked at.
    pub service_changes: usize,
    /// Changes that wrote a Service status (only the controller writes status in these tests).
    pub status_writes: usize,
    /// Status writes that gave a Service an IP another LoadBalancer Service showed, with both
    /// allowed to share.
    pub valid_shares: usize,
    /// Status writes that created a forbidden pair, where no version of the two specs seen in
    /// the `stale_window` before the write would have allowed it: real double allocations.
    pub violations: Vec<String>,
    /// Status writes that created a forbidden pair which some spec version inside the stale
    /// window allowed: the controller decided on a cache older than a user's edit (a race a
    /// real API server has too, since status patches carry no precondition). Must heal.
    pub stale_races: Vec<String>,
    /// Status writes that created a forbidden pair after the RV clock's last sample, so the
    /// stale window cannot be applied: a gap in the judge (the sampler was stopped too
    /// early), reported apart so it is never mistaken for, or hides, a verdict.
    pub undated: Vec<String>,
    /// Status writes that added a Service to the rightful holders of an IP while another
    /// Service, made incompatible with those holders by a user's edit (e.g. a changed
    /// sharing key), still showed the IP until its own move was written.
    pub joined_despite_intruder: Vec<String>,
    /// Episodes in which a forbidden pair existed at all, whatever caused it (user edits that
    /// break a share, type flips back to LoadBalancer with an old status, races).
    pub episodes: usize,
    /// Episodes still open at the end of the history.
    pub open_episodes: Vec<String>,
    /// Longest closed episode, in wall-clock time (when the RV clock can tell).
    pub longest_episode: Duration,
}

/// Walks every committed change of `services_resource` in `history`, oldest first, and checks
/// the rule at every status write; see [`HistoryReport`]. `clock` dates RVs for the stale
/// window and episode lengths.
pub fn check_history(
    history: &[std::sync::Arc<kube_sim::Change>],
    services_resource: usize,
    clock: &RvClock,
    stale_window: Duration,
) -> HistoryReport {
    let mut rep = HistoryReport::default();
    let mut current: BTreeMap<String, SvcFacts> = BTreeMap::new();
    // Spec versions per Service: (rv from which it applied, facts without status).
    let mut versions: BTreeMap<String, Vec<(u64, SvcFacts)>> = BTreeMap::new();
    // Open episodes: (ip, a, b) with a < b -> start rv.
    let mut open: BTreeMap<(String, String, String), u64> = BTreeMap::new();

    for ch in history.iter().filter(|c| c.resource == services_resource) {
        rep.service_changes += 1;
        let key = key_of(&ch.object);
        let new = SvcFacts::of(&ch.object);
        let old = ch.old.as_ref().map(|o| SvcFacts::of(o));
        if ch.kind == kube_sim::ChangeKind::Deleted {
            current.remove(&key);
            versions.remove(&key);
        } else {
            let v = versions.entry(key.clone()).or_default();
            if v.last().is_none_or(|(_, f)| *f != new.spec_only()) {
                v.push((ch.rv, new.spec_only()));
            }
            current.insert(key.clone(), new.clone());
        }

        // Did this change write a status that adds an IP?
        let old_ips: BTreeSet<&String> = old.iter().flat_map(|o| o.ips.iter()).collect();
        let status_write = ch.kind == kube_sim::ChangeKind::Modified
            && old.as_ref().is_some_and(|o| o.ips != new.ips);
        if status_write {
            rep.status_writes += 1;
        }
        if status_write && new.lb {
            for ip in new.ips.iter().filter(|ip| !old_ips.contains(ip)) {
                for (other, f) in &current {
                    if *other == key || !f.lb || !f.ips.contains(ip) {
                        continue;
                    }
                    match may_share(&new, f) {
                        Ok(()) => rep.valid_shares += 1,
                        Err(why) => {
                            let trail = |k: &str| -> String {
                                versions
                                    .get(k)
                                    .map(|vs| {
                                        let tail = &vs[vs.len().saturating_sub(4)..];
                                        tail.iter()
                                            .map(|(rv, f)| {
                                                format!("rv{rv}:lb={},key={:?}", f.lb, f.key)
                                            })
                                            .collect::<Vec<_>>()
                                            .join(" ")
                                    })
                                    .unwrap_or_default()
                            };
                            let msg = format!(
                                "rv {}: {key} was given {ip}, which {other} shows: {why} \
                                 [{key} specs: {}] [{other} specs: {}]",
                                ch.rv,
                                trail(&key),
                                trail(other),
                            );
                            let intruder = current.iter().any(|(u, fu)| {
                                u != &key
                                    && u != other
                                    && fu.lb
                                    && fu.ips.contains(ip)
                                    && may_share(&new, fu).is_ok()
                                    && may_share(f, fu).is_err()
                            });
                            if clock.time_of(ch.rv).is_none() {
                                rep.undated.push(msg);
                            } else if intruder {
                                rep.joined_despite_intruder.push(msg);
                            } else if allowed_recently(
                                &versions,
                                &key,
                                other,
                                ch.rv,
                                clock,
                                stale_window,
                            ) {
                                rep.stale_races.push(msg);
                            } else {
                                // Only violations carry the full trails: they are rare, and
                                // building one walks the whole history.
                                rep.violations.push(format!(
                                    "{msg}\n  changes of {key}:\n{}\n  changes of {other}:\n{}",
                                    change_trail(history, services_resource, &key, ch.rv),
                                    change_trail(history, services_resource, other, ch.rv),
                                ));
                            }
                        }
                    }
                }
            }
        }

        // Episode bookkeeping for every pair touching this Service.
        let touching: Vec<(String, String, String)> = open
            .keys()
            .filter(|(_, a, b)| *a == key || *b == key)
            .cloned()
            .collect();
        for pair in touching {
            let (ip, a, b) = &pair;
            let still = match (current.get(a), current.get(b)) {
                (Some(fa), Some(fb)) => {
                    fa.lb
                        && fb.lb
                        && fa.ips.contains(ip)
                        && fb.ips.contains(ip)
                        && may_share(fa, fb).is_err()
                }
                _ => false,
            };
            if !still {
                let start = open.remove(&pair).unwrap_or(ch.rv);
                if let (Some(t0), Some(t1)) = (clock.time_of(start), clock.time_of(ch.rv)) {
                    rep.longest_episode = rep.longest_episode.max(t1.saturating_duration_since(t0));
                }
            }
        }
        if let Some(me) = current.get(&key).filter(|f| f.lb) {
            for ip in &me.ips {
                for (other, f) in &current {
                    if *other == key || !f.lb || !f.ips.contains(ip) || may_share(me, f).is_ok() {
                        continue;
                    }
                    let (a, b) = if key < *other {
                        (key.clone(), other.clone())
                    } else {
                        (other.clone(), key.clone())
                    };
                    let pair = (ip.clone(), a, b);
                    if let std::collections::btree_map::Entry::Vacant(e) = open.entry(pair) {
                        rep.episodes += 1;
                        e.insert(ch.rv);
                    }
                }
            }
        }
    }
    rep.open_episodes = open
        .into_iter()
        .map(|((ip, a, b), rv)| format!("{ip} shown by {a} and {b} since rv {rv}"))
        .collect();
    rep
}

/// The last changes of Service `key` up to `rv`, one line each, so a violation can be read
/// from the test's output alone (CI keeps nothing else).
fn change_trail(
    history: &[std::sync::Arc<kube_sim::Change>],
    services_resource: usize,
    key: &str,
    rv: u64,
) -> String {
    let lines: Vec<String> = history
        .iter()
        .filter(|c| c.resource == services_resource && c.rv <= rv && key_of(&c.object) == key)
        .map(|c| {
            let f = SvcFacts::of(&c.object);
            let pool = c.object["metadata"]["annotations"]["ferrolb.io/allocated-from-pool"]
                .as_str()
                .unwrap_or("-");
            let ports: Vec<String> = f.ports.iter().map(|(p, _)| p.to_string()).collect();
            format!(
                "    rv{} {:?} lb={} key={:?} ports={} local={} ips={:?} pool={pool}",
                c.rv,
                c.kind,
                f.lb,
                f.key,
                ports.join(","),
                f.local,
                f.ips
            )
        })
        .collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Whether some pair of spec versions of `a` and `b` that were current at some RV inside the
/// window before `rv` allowed them to share.
fn allowed_recently(
    versions: &BTreeMap<String, Vec<(u64, SvcFacts)>>,
    a: &str,
    b: &str,
    rv: u64,
    clock: &RvClock,
    window: Duration,
) -> bool {
    let Some(t) = clock.time_of(rv) else {
        return false;
    };
    let from = t.checked_sub(window).map_or(0, |t0| clock.rv_at(t0));
    let live = |k: &str| -> Vec<SvcFacts> {
        let Some(vs) = versions.get(k) else {
            return Vec::new();
        };
        vs.iter()
            .enumerate()
            .filter(|(i, (start, _))| {
                // Version i applied from `start` until the next version's start.
                let end = vs.get(i + 1).map_or(u64::MAX, |(s, _)| *s);
                *start <= rv && end > from
            })
            .map(|(_, (_, f))| f.clone())
            .collect()
    };
    let (va, vb) = (live(a), live(b));
    va.iter()
        .any(|x| vb.iter().any(|y| may_share(x, y).is_ok()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube_sim::{Change, ChangeKind};
    use serde_json::json;

    use super::*;

    const SERVICES: usize = 7;

    fn svc(name: &str, port: i64, ip: Option<&str>) -> Value {
        let ingress: Vec<Value> = ip.into_iter().map(|ip| json!({ "ip": ip })).collect();
        json!({
            "metadata": {
                "namespace": "churn",
                "name": name,
                "annotations": { "ferrolb.io/allow-shared-ip": "grp" },
            },
            "spec": { "type": "LoadBalancer", "ports": [{ "port": port, "protocol": "TCP" }] },
            "status": { "loadBalancer": { "ingress": ingress } },
        })
    }

    fn change(rv: u64, kind: ChangeKind, object: Value, old: Option<Value>) -> Arc<Change> {
        Arc::new(Change {
            rv,
            resource: SERVICES,
            namespace: "churn".into(),
            kind,
            object: Arc::new(object),
            old: old.map(Arc::new),
        })
    }

    fn added(rv: u64, name: &str, port: i64) -> Arc<Change> {
        change(rv, ChangeKind::Added, svc(name, port, None), None)
    }

    /// `name` goes from (`port0`, `ip0`) to (`port1`, `ip1`) at `rv`.
    fn modified(
        rv: u64,
        name: &str,
        (port0, ip0): (i64, Option<&str>),
        (port1, ip1): (i64, Option<&str>),
    ) -> Arc<Change> {
        change(
            rv,
            ChangeKind::Modified,
            svc(name, port1, ip1),
            Some(svc(name, port0, ip0)),
        )
    }

    const IP: Option<&str> = Some("192.0.2.67");

    /// `b` (port 80) is given the IP `a` holds at rv 5; `a` is on `a_port` before rv 4 and on
    /// port 80 from rv 4 (a user's edit).
    fn share_with(a_port: i64) -> Vec<Arc<Change>> {
        vec![
            added(1, "a", a_port),
            modified(2, "a", (a_port, None), (a_port, IP)),
            added(3, "b", 80),
            modified(4, "a", (a_port, IP), (80, IP)),
            modified(5, "b", (80, None), (80, IP)),
        ]
    }

    /// The CI case in miniature: `b` is given `a`'s IP because the controller's cache still
    /// showed `a` on another port, but a user had just moved `a` to `b`'s port.
    fn overtaken_share() -> Vec<Arc<Change>> {
        share_with(53)
    }

    fn clock_up_to(last_rv: u64) -> RvClock {
        let t0 = Instant::now();
        let mut clock = RvClock::default();
        for rv in 0..=last_rv {
            clock.sample(t0 + Duration::from_millis(rv * 20), rv);
        }
        clock
    }

    #[test]
    fn a_write_overtaken_by_a_users_edit_is_a_stale_race() {
        let rep = check_history(
            &overtaken_share(),
            SERVICES,
            &clock_up_to(5),
            Duration::from_secs(5),
        );
        assert_eq!(rep.stale_races.len(), 1, "{rep:#?}");
        assert!(
            rep.violations.is_empty() && rep.undated.is_empty(),
            "{rep:#?}"
        );
    }

    #[test]
    fn a_write_the_clock_cannot_date_is_reported_apart_not_judged() {
        let rep = check_history(
            &overtaken_share(),
            SERVICES,
            &clock_up_to(4),
            Duration::from_secs(5),
        );
        assert_eq!(rep.undated.len(), 1, "{rep:#?}");
        assert!(
            rep.violations.is_empty() && rep.stale_races.is_empty(),
            "{rep:#?}"
        );
    }

    #[test]
    fn a_share_no_recent_spec_allowed_is_a_violation() {
        // `a` was on port 80 all along: nothing excuses the write.
        let rep = check_history(
            &share_with(80),
            SERVICES,
            &clock_up_to(5),
            Duration::from_secs(5),
        );
        assert_eq!(rep.violations.len(), 1, "{rep:#?}");
        assert!(
            rep.stale_races.is_empty() && rep.undated.is_empty(),
            "{rep:#?}"
        );
    }
}
