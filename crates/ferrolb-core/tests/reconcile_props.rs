//! The controller's safety rule as a property: random interleavings of Service create, update
//! and delete, stale and dropped watch caches, failing writes, controller restarts and config
//! changes, against a model of the API server that only completed writes change (and only on
//! the object, by uid, they were decided for).
//!
//! Checked at every step: no IP is shown on two Services' statuses unless they share a sharing
//! key with disjoint ports. Once faults stop: every Service converges (the status the API shows
//! is what the allocator holds, no write or timer is left, no free IP is withheld from a
//! Service that asked for one), and a restart changes no IP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_core::addr::{AddressRange, Family};
use ferrolb_core::config::Config;
use ferrolb_core::election::MonoTime;
use ferrolb_core::pool::Pool;
use ferrolb_core::reconcile::{
    Handling, Reconciler, ServiceFacts, Write, WriteFailure, WriteResult,
};
use ferrolb_core::service::{
    IpFamilyPolicy, Protocol, ServiceInfo, ServiceKey, ServicePort, SHARING_ANNOTATION,
};
use proptest::prelude::*;

const NAMES: usize = 6;
const NS: &str = "default";

fn range(text: &str) -> AddressRange {
    text.parse().expect("test ranges are valid")
}

/// The config variants: a pool that shrinks, disappears or gains a neighbour.
fn config(variant: u8) -> Config {
    let pools = match variant % 4 {
        0 => vec![Pool::new("a", vec![range("198.51.100.0-198.51.100.3")])],
        1 => vec![Pool::new("a", vec![range("198.51.100.0-198.51.100.1")])],
        2 => vec![
            Pool::new("a", vec![range("198.51.100.0-198.51.100.3")]),
            Pool::new("b", vec![range("198.51.100.10-198.51.100.11")]),
        ],
        _ => Vec::new(),
    };
    Config {
        pools,
        ..Config::default()
    }
}

/// What a user controls of a Service. Sharing key and ports are fixed for the life of one
/// object (changing them means a new object), so "may these two share" has one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    load_balancer: bool,
    sharing_key: Option<&'static str>,
    ports: Vec<u16>,
}

/// One Service object in the API server.
#[derive(Debug, Clone)]
struct Object {
    uid: u64,
    created: i64,
    spec: Spec,
    ingress: Vec<IpAddr>,
    pool_annotation: Option<String>,
}

impl Object {
    fn facts(&self, name: &str) -> ServiceFacts {
        let mut annotations = BTreeMap::new();
        if let Some(k) = self.spec.sharing_key {
            annotations.insert(format!("ferrolb.io/{SHARING_ANNOTATION}"), k.to_string());
        }
        ServiceFacts {
            key: ServiceKey::new(NS, name),
            uid: Some(self.uid.to_string()),
            handling: if self.spec.load_balancer {
                Handling::Ours
            } else {
                Handling::NotLoadBalancer
            },
            info: ServiceInfo {
                namespace: NS.into(),
                name: name.into(),
                annotations,
                ip_families: vec![Family::V4],
                ip_family_policy: IpFamilyPolicy::SingleStack,
                ports: self
                    .spec
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        port: *p,
                        protocol: Protocol::Tcp,
                    })
                    .collect(),
                ..ServiceInfo::default()
            },
            ingress: self.ingress.clone(),
            ingress_in_our_shape: true,
            pool_annotation: self.pool_annotation.clone(),
            created: self.created,
        }
    }
}

/// What happens to a write handed out by the controller.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Done,
    /// Fails before anything is written.
    Fails(WriteFailure),
    /// The first of its two patches lands, the second fails.
    FailsHalfway(WriteFailure),
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Spec),
    ToggleType(usize),
    Delete(usize),
    /// The cache receives the next `n` watch events.
    Deliver(usize),
    /// The watch breaks: events are lost until a re-list.
    DropWatch,
    Relist,
    /// The `i`-th write in flight ends.
    Finish(usize, Fate),
    Advance(u64),
    Config(u8),
    /// The controller process dies; its writes in flight land (true) or not, and a fresh one
    /// starts from what the API shows.
    Restart(bool),
}

/// What became of a write that reached the API server.
enum Landing {
    /// The object it was decided for is gone.
    Gone,
    /// Every patch landed.
    Landed,
    /// The annotation landed; the status refused an ingress on a non-LoadBalancer Service.
    StatusRefused,
}

/// The API server, the controller's cache of it, and the controller.
struct World {
    api: BTreeMap<String, Object>,
    next_uid: u64,
    clock: i64,
    /// Watch events not yet delivered to the cache: the object as it was then, or deletion.
    queue: Vec<(String, Option<ServiceFacts>)>,
    watch_broken: bool,
    core: Reconciler,
    in_flight: Vec<Write>,
    now: MonoTime,
    config: Config,
}

impl World {
    fn new() -> Self {
        let mut w = World {
            api: BTreeMap::new(),
            next_uid: 1,
            clock: 0,
            queue: Vec::new(),
            watch_broken: false,
            core: Reconciler::new(4),
            in_flight: Vec::new(),
            now: MonoTime::ZERO,
            config: config(0),
        };
        w.start_controller();
        w
    }

    fn all_facts(&self) -> Vec<ServiceFacts> {
        self.api.iter().map(|(n, o)| o.facts(n)).collect()
    }

    fn start_controller(&mut self) {
        self.core = Reconciler::new(4);
        self.core.apply_config(self.config.clone());
        let all = self.all_facts();
        self.core.synced(all);
        self.queue.clear();
        self.watch_broken = false;
        self.pass();
    }

    /// An API change: the watch reports it, unless broken.
    fn changed(&mut self, name: &str) {
        if !self.watch_broken {
            let facts = self.api.get(name).map(|o| o.facts(name));
            self.queue.push((name.to_string(), facts));
        }
    }

    /// The driver's loop body: hand out every write the core decides now.
    fn pass(&mut self) {
        while let Some(d) = self.core.next_decision(self.now) {
            if let Some(w) = d.write {
                self.in_flight.push(w);
            }
        }
    }

    /// Carries out `w` as the writer does: bound to the uid, annotation before IPs, and
    /// after them when clearing. Like the real kube-apiserver, the status subresource refuses
    /// an ingress on a Service that is not of type LoadBalancer (422), after the annotation
    /// has landed.
    fn land(&mut self, w: &Write, halfway: bool) -> Landing {
        let Some(obj) = self.api.get_mut(&w.key.name) else {
            return Landing::Gone;
        };
        if w.uid.as_deref() != Some(obj.uid.to_string().as_str()) {
            return Landing::Gone;
        }
        let releasing = w.ingress.as_ref().is_some_and(Vec::is_empty);
        let mut landing = Landing::Landed;
        if releasing {
            obj.ingress.clear();
            if !halfway {
                if let Some(p) = &w.pool_annotation {
                    obj.pool_annotation = p.clone();
                }
            }
        } else {
            if let Some(p) = &w.pool_annotation {
                obj.pool_annotation = p.clone();
            }
            if !halfway {
                if let Some(ips) = &w.ingress {
                    if obj.spec.load_balancer {
                        obj.ingress = ips.clone();
                    } else {
                        landing = Landing::StatusRefused;
                    }
                }
            }
        }
        let name = w.key.name.clone();
        self.changed(&name);
        landing
    }

    fn finish(&mut self, i: usize, fate: Fate) {
        if self.in_flight.is_empty() {
            return;
        }
        let w = self.in_flight.remove(i % self.in_flight.len());
        let result = match fate {
            Fate::Done => match self.land(&w, false) {
                Landing::Landed => WriteResult::Done,
                Landing::Gone => WriteResult::Gone,
                Landing::StatusRefused => WriteResult::Failed {
                    failure: WriteFailure::Other,
                    status_written: false,
                },
            },
            Fate::Fails(failure) => WriteResult::Failed {
                failure,
                status_written: false,
            },
            Fate::FailsHalfway(failure) => match self.land(&w, true) {
                Landing::Gone => WriteResult::Gone,
                Landing::Landed | Landing::StatusRefused => {
                    let releasing = w.ingress.as_ref().is_some_and(Vec::is_empty);
                    WriteResult::Failed {
                        failure,
                        status_written: releasing && w.pool_annotation.is_some(),
                    }
                }
            },
        };
        self.core.write_finished(&w.key, result, self.now);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Create(i, spec) => {
                let name = format!("s{i}");
                if self.api.contains_key(&name) {
                    return;
                }
                self.clock += 1;
                let obj = Object {
                    uid: self.next_uid,
                    created: self.clock,
                    spec,
                    ingress: Vec::new(),
                    pool_annotation: None,
                };
                self.next_uid += 1;
                self.api.insert(name.clone(), obj);
                self.changed(&name);
            }
            Op::ToggleType(i) => {
                let name = format!("s{i}");
                if let Some(o) = self.api.get_mut(&name) {
                    o.spec.load_balancer = !o.spec.load_balancer;
                    // The real kube-apiserver clears `status.loadBalancer` when `spec.type`
                    // leaves LoadBalancer: the status our writes left is gone without a write
                    // of ours.
                    if !o.spec.load_balancer {
                        o.ingress.clear();
                    }
                    self.changed(&name);
                }
            }
            Op::Delete(i) => {
                let name = format!("s{i}");
                if self.api.remove(&name).is_some() {
                    self.changed(&name);
                }
            }
            Op::Deliver(n) => {
                let n = n.min(self.queue.len());
                for (name, facts) in self.queue.drain(..n).collect::<Vec<_>>() {
                    match facts {
                        Some(f) => self.core.service_seen(f),
                        None => self.core.service_deleted(&ServiceKey::new(NS, name)),
                    }
                }
            }
            Op::DropWatch => {
                self.queue.clear();
                self.watch_broken = true;
            }
            Op::Relist => self.relist(),
            Op::Finish(i, fate) => self.finish(i, fate),
            Op::Advance(ms) => {
                self.now = self.now + Duration::from_millis(ms);
                self.core.wake(self.now);
            }
            Op::Config(v) => {
                self.config = config(v);
                self.core.apply_config(self.config.clone());
            }
            Op::Restart(writes_land) => {
                for w in std::mem::take(&mut self.in_flight) {
                    if writes_land {
                        self.land(&w, false);
                    }
                }
                self.start_controller();
            }
        }
        self.pass();
    }

    fn relist(&mut self) {
        self.queue.clear();
        self.watch_broken = false;
        let all = self.all_facts();
        self.core.relisted(all);
    }

    /// No IP on two Services unless they share a key and no port.
    fn check_no_double_ip(&self) -> Result<(), TestCaseError> {
        let mut shown: BTreeMap<IpAddr, Vec<(&String, &Object)>> = BTreeMap::new();
        for (name, o) in &self.api {
            for ip in &o.ingress {
                shown.entry(*ip).or_default().push((name, o));
            }
        }
        for (ip, showers) in shown {
            for (i, (a, oa)) in showers.iter().enumerate() {
                for (b, ob) in &showers[i + 1..] {
                    let same_key =
                        oa.spec.sharing_key.is_some() && oa.spec.sharing_key == ob.spec.sharing_key;
                    let disjoint = oa.spec.ports.iter().all(|p| !ob.spec.ports.contains(p));
                    prop_assert!(
                        same_key && disjoint,
                        "{ip} shown on {a} ({:?}) and {b} ({:?})",
                        oa.spec,
                        ob.spec
                    );
                }
            }
        }
        Ok(())
    }

    /// Faults stop: the watch works, every write succeeds, time passes. Returns whether the
    /// controller came to rest.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.watch_broken {
                self.relist();
            }
            let n = self.queue.len();
            self.apply(Op::Deliver(n));
            self.check_no_double_ip()?;
            if !self.in_flight.is_empty() {
                self.apply(Op::Finish(0, Fate::Done));
                self.check_no_double_ip()?;
                continue;
            }
            if !self.queue.is_empty() {
                continue;
            }
            match self.core.next_wake() {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.core.wake(self.now);
                    self.pass();
                }
                None => return Ok(()),
            }
        }
        Err(TestCaseError::fail("the controller never came to rest"))
    }

    /// After settling: what the API shows is what the allocator holds, and nobody who asked
    /// for an IP is denied one while a pool IP lies unused.
    fn check_converged(&self) -> Result<(), TestCaseError> {
        let alloc = self.core.allocator();
        for (holder, _) in alloc.holdings() {
            prop_assert!(
                holder
                    .service()
                    .is_some_and(|key| self.api.contains_key(&key.name)),
                "{holder} (a deleted Service or a quarantine) still holds IPs after settling"
            );
        }
        let used: BTreeSet<IpAddr> = self.api.values().flat_map(|o| o.ingress.clone()).collect();
        let free_exists = self.config.pools.iter().flat_map(|p| &p.ranges).any(|r| {
            let size = r.last_value() - r.first_value() + 1;
            (used.iter().filter(|ip| r.contains(ip)).count() as u128) < size
        });
        for (name, o) in &self.api {
            let key = ServiceKey::new(NS, name.as_str());
            let held = alloc.get(&key).map(|a| a.addresses()).unwrap_or_default();
            if o.spec.load_balancer {
                prop_assert_eq!(&o.ingress, &held, "{} shows what it holds", name);
                prop_assert!(
                    !o.ingress.is_empty() || !free_exists,
                    "{name} has no IP although a pool IP is free"
                );
            } else {
                prop_assert!(
                    o.ingress.is_empty(),
                    "{name} is no LoadBalancer but shows {:?}",
                    o.ingress
                );
                prop_assert!(o.pool_annotation.is_none(), "{name} keeps our annotation");
            }
        }
        Ok(())
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::bool::weighted(0.85),
        prop::option::of(prop::sample::select(vec!["k", "j"])),
        prop::sample::select(vec![vec![80], vec![443], vec![80, 443]]),
    )
        .prop_map(|(load_balancer, sharing_key, ports)| Spec {
            load_balancer,
            sharing_key,
            ports,
        })
}

fn failure() -> impl Strategy<Value = WriteFailure> {
    prop::sample::select(vec![
        WriteFailure::Conflict,
        WriteFailure::Unreachable,
        WriteFailure::Other,
    ])
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Done),
        1 => failure().prop_map(Fate::Fails),
        1 => failure().prop_map(Fate::FailsHalfway),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NAMES, spec()).prop_map(|(i, s)| Op::Create(i, s)),
        1 => (0..NAMES).prop_map(Op::ToggleType),
        2 => (0..NAMES).prop_map(Op::Delete),
        4 => (0..4usize).prop_map(Op::Deliver),
        1 => Just(Op::DropWatch),
        1 => Just(Op::Relist),
        6 => (0..8usize, fate()).prop_map(|(i, f)| Op::Finish(i, f)),
        2 => prop::sample::select(vec![50u64, 300, 2_000, 12_000]).prop_map(Op::Advance),
        1 => (0..4u8).prop_map(Op::Config),
        1 => any::<bool>().prop_map(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_ip_on_two_services_and_everything_converges(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in ops {
            w.apply(op);
            w.check_no_double_ip()?;
        }
        w.settle()?;
        w.check_converged()?;

        // A restart on a settled cluster changes no IP and writes nothing that moves one.
        let before: BTreeMap<String, Vec<IpAddr>> =
            w.api.iter().map(|(n, o)| (n.clone(), o.ingress.clone())).collect();
        w.apply(Op::Restart(false));
        w.settle()?;
        w.check_converged()?;
        let after: BTreeMap<String, Vec<IpAddr>> =
            w.api.iter().map(|(n, o)| (n.clone(), o.ingress.clone())).collect();
        prop_assert_eq!(before, after, "a restart moved an IP");
    }
}
