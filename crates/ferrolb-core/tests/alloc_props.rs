//! Random sequences of allocator calls over tiny pools (so exhaustion, sharing and orphaning all
//! happen), checking after every step the rules the design promises: no unlawful sharing,
//! consistent views, freed addresses reusable, restart reproduces the state, and nothing moves
//! unless its own Service asked for something else.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_core::addr::{AddressRange, Family};
use ferrolb_core::alloc::{sharing_conflict, Allocation, Allocator};
use ferrolb_core::pool::Pool;
use ferrolb_core::service::{AllocationRequest, Protocol, ServiceKey, ServicePort, SharingAttrs};
use proptest::prelude::*;

const SERVICES: usize = 6;

fn range(text: &str) -> AddressRange {
    text.parse().expect("test ranges are valid")
}

/// Which variable pools exist and how big they are. Namespaces, selectors and default keys
/// never change, so "still admitted" only changes through a Service's own request.
#[derive(Debug, Clone)]
struct Config {
    a_v4: u8,
    a_v6: u8,
    b: bool,
    m: bool,
}

fn pools(c: &Config) -> Vec<Pool> {
    let mut out = Vec::new();
    let mut a_ranges = Vec::new();
    if c.a_v4 > 0 {
        a_ranges.push(range(&format!("10.0.0.0-10.0.0.{}", c.a_v4 - 1)));
    }
    if c.a_v6 > 0 {
        a_ranges.push(range(&format!("fd00::-fd00::{}", c.a_v6 - 1)));
    }
    if !a_ranges.is_empty() {
        out.push(Pool::new("a", a_ranges));
    }
    if c.b {
        let mut b = Pool::new("b", vec![range("10.0.2.0/31")]);
        b.namespaces = vec!["team".into()];
        out.push(b);
    }
    // Never shrinks: a pool's default key cannot be re-derived for an orphaned address.
    let mut c_pool = Pool::new("c", vec![range("fd01::/127")]);
    c_pool.default_sharing_key = Some("c-share".into());
    out.push(c_pool);
    if c.m {
        let mut m = Pool::new("m", vec![range("10.0.3.254-10.0.4.1")]);
        m.auto_assign = false;
        m.avoid_buggy_ips = true;
        out.push(m);
    }
    out
}

/// Addresses a Service may ask for by name, including some outside every pool.
const UNIVERSE: [&str; 19] = [
    "10.0.0.0",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5",
    "fd00::",
    "fd00::1",
    "fd00::2",
    "fd00::3",
    "10.0.2.0",
    "10.0.2.1",
    "fd01::",
    "fd01::1",
    "10.0.3.254",
    "10.0.3.255",
    "10.0.4.0",
    "10.0.4.1",
    "192.0.2.1",
];

fn universe() -> Vec<IpAddr> {
    UNIVERSE.iter().map(|s| s.parse().expect("valid")).collect()
}

#[derive(Debug, Clone)]
struct Shape {
    families: u8,
    key: u8,
    ports: u8,
    local: bool,
    app: u8,
    pool: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Ensure(usize, Shape),
    RequestIp(usize, usize, Shape),
    Share(usize, usize, u16),
    Release(usize),
    SetPools(Config),
    Rebuild,
}

fn shape() -> impl Strategy<Value = Shape> {
    (0u8..4, 0u8..3, 1u8..4, any::<bool>(), 0u8..2, 0u8..6).prop_map(
        |(families, key, ports, local, app, pool)| Shape {
            families,
            key,
            ports,
            local,
            app,
            pool,
        },
    )
}

fn config() -> impl Strategy<Value = Config> {
    (0u8..6, 0u8..4, any::<bool>(), any::<bool>()).prop_map(|(a_v4, a_v6, b, m)| Config {
        a_v4,
        a_v6,
        b,
        m,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SERVICES, shape()).prop_map(|(s, sh)| Op::Ensure(s, sh)),
        2 => (0..SERVICES, 0..UNIVERSE.len(), shape()).prop_map(|(s, i, sh)| Op::RequestIp(s, i, sh)),
        2 => (0..SERVICES, 0..SERVICES, 80u16..84).prop_map(|(s, o, p)| Op::Share(s, o, p)),
        2 => (0..SERVICES).prop_map(Op::Release),
        1 => config().prop_map(Op::SetPools),
        1 => Just(Op::Rebuild),
    ]
}

fn service(i: usize) -> ServiceKey {
    let ns = if i >= 4 { "team" } else { "default" };
    ServiceKey::new(ns, format!("s{i}"))
}

fn request(svc: usize, s: &Shape) -> AllocationRequest {
    let key = service(svc);
    let mut req = AllocationRequest::simple(key.namespace, Family::V4);
    (req.families, req.require_all) = match s.families {
        0 => (vec![Family::V4], true),
        1 => (vec![Family::V6], true),
        2 => (vec![Family::V4, Family::V6], false),
        _ => (vec![Family::V6, Family::V4], true),
    };
    req.sharing_key = match s.key {
        0 => None,
        k => Some(format!("k{k}")),
    };
    req.pool = match s.pool {
        1 => Some("a".into()),
        2 => Some("m".into()),
        3 => Some("nope".into()),
        _ => None,
    };
    req.sharing = SharingAttrs {
        ports: (0..3u16)
            .filter(|b| s.ports & (1 << b) != 0)
            .map(|b| ServicePort {
                port: 80 + b,
                protocol: Protocol::Tcp,
            })
            .collect(),
        external_traffic_local: s.local,
        selector: BTreeMap::from([("app".to_string(), format!("app{}", s.app))]),
    };
    req
}

/// What the test remembers about each Service, as the controller would.
#[derive(Default)]
struct Model {
    last_request: BTreeMap<usize, AllocationRequest>,
    created: BTreeMap<usize, u64>,
    clock: u64,
}

fn snapshot(a: &Allocator) -> BTreeMap<ServiceKey, Allocation> {
    a.services().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The sharing rule, re-checked pairwise from the stored attributes.
fn check_sharing(a: &Allocator) -> Result<(), TestCaseError> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for (k, alloc) in a.services() {
        for ip in alloc.addresses() {
            by_ip.entry(ip).or_default().push(k);
        }
    }
    for (ip, hs) in &by_ip {
        for (i, x) in hs.iter().enumerate() {
            for y in &hs[i + 1..] {
                let (ax, ay) = (a.get(x).expect("held"), a.get(y).expect("held"));
                let why = sharing_conflict(
                    ax.sharing_key.as_deref(),
                    a.sharing_attrs(x).expect("held"),
                    ay.sharing_key.as_deref(),
                    a.sharing_attrs(y).expect("held"),
                );
                prop_assert!(why.is_none(), "{} and {} share {}: {:?}", x, y, ip, why);
            }
        }
    }
    Ok(())
}

fn check_invariants(a: &Allocator) -> Result<(), TestCaseError> {
    let mut by_ip: BTreeMap<IpAddr, BTreeSet<ServiceKey>> = BTreeMap::new();
    for (k, alloc) in a.services() {
        let families: BTreeSet<Family> = alloc.ips.iter().map(|x| Family::of(&x.ip)).collect();
        prop_assert_eq!(families.len(), alloc.ips.len(), "one address per family");
        prop_assert!(!alloc.ips.is_empty(), "stored allocations are never empty");
        for assigned in &alloc.ips {
            by_ip.entry(assigned.ip).or_default().insert(k.clone());
            let in_pool = a
                .pools()
                .iter()
                .find(|p| p.ranges.iter().any(|r| r.contains(&assigned.ip)))
                .map(|p| p.name.clone());
            prop_assert_eq!(
                &assigned.pool,
                &in_pool,
                "pool of {} is current",
                assigned.ip
            );
        }
    }
    // Per-IP and per-Service views agree, for every address that exists anywhere.
    let mut all_ips: BTreeSet<IpAddr> = universe().into_iter().collect();
    all_ips.extend(by_ip.keys().copied());
    for ip in &all_ips {
        let from_services = by_ip.get(ip).cloned().unwrap_or_default();
        let from_index: BTreeSet<ServiceKey> = a.holders(ip).into_iter().cloned().collect();
        prop_assert_eq!(&from_services, &from_index, "holders of {}", ip);
    }
    check_sharing(a)?;
    // Usage counts match the held addresses, and free space is really usable.
    for stat in a.stats() {
        let pool = a
            .pools()
            .iter()
            .find(|p| p.name == stat.pool)
            .expect("stats name pools");
        let held = by_ip
            .keys()
            .filter(|ip| {
                Family::of(ip) == stat.family && pool.ranges.iter().any(|r| r.contains(ip))
            })
            .count();
        prop_assert_eq!(
            stat.in_use,
            held as u128,
            "in_use of {} {}",
            stat.pool,
            stat.family
        );
        if stat.in_use < stat.total {
            let mut probe_alloc = a.clone();
            let ns = pool.namespaces.first().cloned().unwrap_or("probe".into());
            let mut req = AllocationRequest::simple(ns.clone(), stat.family);
            req.pool = Some(stat.pool.clone());
            let got = probe_alloc.ensure(&ServiceKey::new(ns, "probe"), &req);
            prop_assert!(
                got.is_ok(),
                "{} {} has room but: {:?}",
                stat.pool,
                stat.family,
                got
            );
            if let Ok(got) = got {
                // A held address is only acceptable through the pool's default sharing key;
                // the pairwise check on the probe allocator proves that sharing is lawful.
                if by_ip.contains_key(&got.ips[0].ip) {
                    prop_assert!(got.sharing_key.is_some(), "probe got a held address");
                    check_sharing(&probe_alloc)?;
                }
            }
        }
    }
    Ok(())
}

fn rebuild(a: &Allocator, m: &Model) -> Result<Allocator, TestCaseError> {
    let mut order: Vec<(u64, usize)> = (0..SERVICES)
        .filter(|i| a.get(&service(*i)).is_some())
        .map(|i| (m.created[&i], i))
        .collect();
    order.sort();
    let mut fresh = Allocator::new(a.pools().to_vec());
    for (_, i) in order {
        let key = service(i);
        let ips = a.get(&key).expect("listed").addresses();
        let restored = fresh.restore(&key, &m.last_request[&i], &ips);
        prop_assert!(restored.is_ok(), "restore of {}: {:?}", key, restored);
    }
    prop_assert_eq!(
        snapshot(&fresh),
        snapshot(a),
        "rebuild reproduces allocations"
    );
    prop_assert_eq!(fresh.stats(), a.stats(), "rebuild reproduces stats");
    prop_assert_eq!(fresh.orphaned_ips(), a.orphaned_ips());
    Ok(fresh)
}

fn run(ops: Vec<Op>, start: Config) -> Result<(), TestCaseError> {
    let mut a = Allocator::new(pools(&start));
    let mut m = Model::default();
    for op in ops {
        let before = snapshot(&a);
        let mut may_move: Option<ServiceKey> = None;
        let mut ensured: Option<(usize, AllocationRequest)> = None;
        match &op {
            Op::Ensure(s, sh) => ensured = Some((*s, request(*s, sh))),
            Op::RequestIp(s, i, sh) => {
                let mut req = request(*s, sh);
                req.ips = vec![universe()[*i]];
                req.families = vec![Family::of(&req.ips[0])];
                ensured = Some((*s, req));
            }
            Op::Share(s, other, port) => {
                let mut req = request(
                    *s,
                    &Shape {
                        families: 0,
                        key: 1,
                        ports: 0,
                        local: false,
                        app: 0,
                        pool: 0,
                    },
                );
                req.sharing.ports = [ServicePort {
                    port: *port,
                    protocol: Protocol::Tcp,
                }]
                .into();
                if let Some(theirs) = a.get(&service(*other)) {
                    req.ips = theirs.addresses();
                    req.families = req.ips.iter().map(Family::of).collect();
                    req.sharing_key = theirs.sharing_key.clone();
                }
                ensured = Some((*s, req));
            }
            Op::Release(s) => {
                a.release(&service(*s));
                m.created.remove(s);
                may_move = Some(service(*s));
            }
            Op::SetPools(c) => {
                a.set_pools(pools(c));
            }
            Op::Rebuild => a = rebuild(&a, &m)?,
        }
        if let Some((s, req)) = ensured {
            let key = service(s);
            let unchanged = m.last_request.get(&s) == Some(&req);
            let held_before = a.get(&key).cloned();
            let result = a.ensure(&key, &req);
            if unchanged {
                if let Some(prev) = &held_before {
                    prop_assert_eq!(
                        result.as_ref().map(Allocation::addresses),
                        Ok(prev.addresses()),
                        "{} moved on an unchanged request",
                        key
                    );
                }
            } else {
                may_move = Some(key.clone());
            }
            match &result {
                Ok(got) => {
                    prop_assert_eq!(Some(got), a.get(&key), "returned = stored");
                    for (i, ip) in req.ips.iter().enumerate() {
                        prop_assert_eq!(Some(ip), got.ips.get(i).map(|x| &x.ip));
                    }
                    m.clock += 1;
                    m.created.entry(s).or_insert(m.clock);
                }
                Err(_) => {
                    prop_assert!(a.get(&key).is_none(), "failed ensure holds nothing");
                    m.created.remove(&s);
                }
            }
            m.last_request.insert(s, req);
        }
        let after = snapshot(&a);
        for (k, alloc) in &before {
            if Some(k) != may_move.as_ref() {
                prop_assert_eq!(
                    after.get(k).map(Allocation::addresses),
                    Some(alloc.addresses()),
                    "{} moved during {:?}",
                    k,
                    op
                );
            }
        }
        check_invariants(&a)?;
    }
    // A final restart must reproduce whatever the sequence built.
    rebuild(&a, &m)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn allocator_invariants_hold(ops in prop::collection::vec(op(), 1..60), start in config()) {
        run(ops, start)?;
    }
}
