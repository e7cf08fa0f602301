//! Overlapping pools (kube-vip's `cidr-<namespace>` next to `cidr-global`): an address reachable
//! from two pools may serve either, but is never held by two Services without a sharing key.
//! Example tests first, then a property test driving random operation sequences against
//! random overlapping pools and checking the invariants after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::addr::AddressRange;
use crate::pool::SearchOrder;
use crate::service::{Protocol, ServicePort};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, ranges: &[&str], namespaces: &[&str]) -> Pool {
    let mut p = Pool::new(name, ranges.iter().map(|r| r.parse().unwrap()).collect());
    p.namespaces = namespaces.iter().map(|s| s.to_string()).collect();
    p
}

/// kube-vip's README shape: a namespace pool inside the global one.
fn ns_inside_global() -> Allocator {
    Allocator::new(vec![
        pool("cidr-team-a", &["10.0.0.0/30"], &["team-a"]),
        pool("cidr-global", &["10.0.0.0/29"], &[]),
    ])
}

#[test]
fn an_address_taken_through_one_pool_is_not_offered_by_the_other() {
    let mut a = ns_inside_global();
    let t = ServiceKey::new("team-a", "web");
    let g = ServiceKey::new("other", "web");
    let got = a
        .ensure(&t, &AllocationRequest::simple("team-a", Family::V4))
        .unwrap();
    assert_eq!(got.ips[0].ip, ip("10.0.0.0"));
    assert_eq!(got.pool(), Some("cidr-team-a"));
    let got = a
        .ensure(&g, &AllocationRequest::simple("other", Family::V4))
        .unwrap();
    assert_eq!(
        got.ips[0].ip,
        ip("10.0.0.1"),
        "10.0.0.0 is held through cidr-team-a"
    );
    assert_eq!(got.pool(), Some("cidr-global"));
}

#[test]
fn a_namespace_falls_back_to_global_when_its_pool_is_full() {
    let mut a = ns_inside_global();
    let mut seen = BTreeSet::new();
    for i in 0..8 {
        let k = ServiceKey::new("team-a", format!("s{i}"));
        let got = a
            .ensure(&k, &AllocationRequest::simple("team-a", Family::V4))
            .unwrap();
        assert!(seen.insert(got.ips[0].ip), "{:?} handed out twice", got);
        let want = if i < 4 { "cidr-team-a" } else { "cidr-global" };
        assert_eq!(got.pool(), Some(want), "service {i}");
    }
    let err = a
        .ensure(
            &ServiceKey::new("other", "x"),
            &AllocationRequest::simple("other", Family::V4),
        )
        .unwrap_err();
    assert!(matches!(err, AllocError::PoolExhausted { .. }), "{err}");
    let stats = a.stats();
    assert_eq!((stats[0].in_use, stats[0].total), (4, 4));
    assert_eq!((stats[1].in_use, stats[1].total), (8, 8));
}

#[test]
fn a_requested_overlapping_ip_comes_from_a_pool_the_service_may_use() {
    let mut a = ns_inside_global();
    let mut req = AllocationRequest::simple("other", Family::V4);
    req.ips = vec![ip("10.0.0.2")];
    let got = a.ensure(&ServiceKey::new("other", "x"), &req).unwrap();
    assert_eq!(got.pool(), Some("cidr-global"));
    let mut req = AllocationRequest::simple("team-a", Family::V4);
    req.ips = vec![ip("10.0.0.2")];
    let err = a.ensure(&ServiceKey::new("team-a", "y"), &req).unwrap_err();
    assert!(matches!(err, AllocError::IpInUse { .. }), "{err}");
    req.ips = vec![ip("10.0.0.3")];
    req.pool = Some("cidr-team-a".into());
    let got = a.ensure(&ServiceKey::new("team-a", "y"), &req).unwrap();
    assert_eq!(got.pool(), Some("cidr-team-a"));
    req.ips = vec![ip("10.0.0.5")];
    let err = a.ensure(&ServiceKey::new("team-a", "z"), &req).unwrap_err();
    assert!(
        err.to_string().contains("cidr-global"),
        "names where the IP is: {err}"
    );
}

#[test]
fn restart_and_reload_keep_the_pool_an_overlapping_address_was_given_from() {
    let mut a = ns_inside_global();
    let k = ServiceKey::new("other", "x");
    let mut req = AllocationRequest::simple("other", Family::V4);
    req.ips = vec![ip("10.0.0.1")];
    a.ensure(&k, &req).unwrap();
    let change = a.set_pools(ns_inside_global().pools().to_vec());
    assert_eq!(change, PoolChange::default());
    assert_eq!(a.get(&k).unwrap().pool(), Some("cidr-global"));
    let mut fresh = ns_inside_global();
    let got = fresh
        .restore(
            &k,
            &AllocationRequest::simple("other", Family::V4),
            &[ip("10.0.0.1")],
        )
        .unwrap();
    assert_eq!(got.pool(), Some("cidr-global"));
    let next = fresh
        .ensure(
            &ServiceKey::new("team-a", "y"),
            &AllocationRequest::simple("team-a", Family::V4),
        )
        .unwrap();
    assert_eq!(next.ips[0].ip, ip("10.0.0.0"));
    let next = fresh
        .ensure(
            &ServiceKey::new("team-a", "z"),
            &AllocationRequest::simple("team-a", Family::V4),
        )
        .unwrap();
    assert_eq!(next.ips[0].ip, ip("10.0.0.2"), "10.0.0.1 was restored");
}

// ---- property test ----

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
/// 10.0.0.240 ..= 10.0.1.16: small enough to exhaust, and crossing .255/.0 so `avoid_buggy_ips`
/// pools have holes the others do not.
const BASE: u32 = 0x0a00_00f0;
const SPAN: u32 = 33;

fn v4(offset: u32) -> u128 {
    u128::from(BASE + offset)
}

#[derive(Debug, Clone)]
struct PoolSpec {
    ranges: Vec<(u32, u32)>,
    namespace: Option<usize>,
    avoid_buggy: bool,
    auto_assign: bool,
    descending: bool,
    default_key: bool,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        (0..SPAN, 0..12u32, 0..SPAN, 0..6u32, any::<bool>()),
        prop::option::of(0..NAMESPACES.len()),
        any::<bool>(),
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|((s1, l1, s2, l2, two), ns, avoid, auto, desc, key)| {
            let mut ranges = vec![(s1, (s1 + l1).min(SPAN - 1))];
            // A second range, disjoint from the first (one key's entries are merged by the
            // parser, so a pool never overlaps itself).
            let (f, l) = ranges[0];
            if two && (s2 + l2 < f || s2 > l) {
                ranges.push((s2, (s2 + l2).min(SPAN - 1)));
            }
            PoolSpec {
                ranges,
                namespace: ns,
                avoid_buggy: avoid,
                auto_assign: auto,
                descending: desc,
                default_key: key,
            }
        })
}

fn build(specs: &[PoolSpec]) -> Vec<Pool> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ranges = s
                .ranges
                .iter()
                .filter_map(|&(a, b)| AddressRange::from_values(Family::V4, v4(a), v4(b)))
                .collect();
            let mut p = Pool::new(format!("p{i}"), ranges);
            p.namespaces = s
                .namespace
                .map(|n| vec![NAMESPACES[n].to_string()])
                .unwrap_or_default();
            p.avoid_buggy_ips = s.avoid_buggy;
            p.auto_assign = s.auto_assign;
            if s.descending {
                p.search_order = SearchOrder::Descending;
            }
            if s.default_key {
                p.default_sharing_key = Some(format!("default-{i}"));
            }
            p
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// Service index; none, a named pool, or a requested address; a sharing key and port.
    Ensure(usize, Option<usize>, Option<u32>, Option<u16>),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..9usize, prop::option::weighted(0.2, 0..4usize), prop::option::weighted(0.2, 0..SPAN), prop::option::weighted(0.3, 1..4u16))
            .prop_map(|(s, p, ip, port)| Op::Ensure(s, p, ip, port)),
        1 => (0..9usize).prop_map(Op::Release),
    ]
}

fn service(i: usize) -> ServiceKey {
    ServiceKey::new(NAMESPACES[i % 3], format!("s{i}"))
}

fn request(
    i: usize,
    pools: &[Pool],
    named: Option<usize>,
    at: Option<u32>,
    port: Option<u16>,
) -> AllocationRequest {
    let mut r = AllocationRequest::simple(NAMESPACES[i % 3], Family::V4);
    r.pool = named.filter(|p| *p < pools.len()).map(|p| format!("p{p}"));
    if let Some(o) = at {
        r.ips = vec![Family::V4.ip_from_u128(v4(o))];
    }
    if let Some(port) = port {
        r.sharing_key = Some("shared".into());
        r.sharing.ports.insert(ServicePort {
            port,
            protocol: Protocol::Tcp,
        });
    }
    r
}

fn usable(p: &Pool, v: u128) -> bool {
    p.ranges
        .iter()
        .any(|r| r.first_value() <= v && v <= r.last_value())
        && !(p.avoid_buggy_ips && matches!(v & 0xff, 0 | 0xff))
}

/// Every invariant the allocator promises, checked from its public views only.
fn check(a: &Allocator) -> Result<(), TestCaseError> {
    let pools = a.pools();
    let mut held: BTreeMap<IpAddr, Vec<ServiceKey>> = BTreeMap::new();
    for (k, alloc) in a.services() {
        for x in &alloc.ips {
            held.entry(x.ip).or_default().push(k.clone());
            let name = x.pool.as_deref().unwrap_or_default();
            let p = pools.iter().find(|p| p.name == name);
            prop_assert!(p.is_some(), "{k:?} holds {} from no pool", x.ip);
            let p = p.unwrap();
            let v = ip_to_u128(&x.ip);
            prop_assert!(usable(p, v), "{} is not usable in {}", x.ip, p.name);
            prop_assert!(
                p.admits(&k.namespace, &BTreeMap::new()),
                "{} does not admit {k:?}",
                p.name
            );
        }
    }
    for (addr, keys) in &held {
        prop_assert_eq!(a.holders(addr).len(), keys.len());
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                let (ax, ay) = (a.get(x).unwrap(), a.get(y).unwrap());
                let why = sharing_conflict(
                    ax.sharing_key.as_deref(),
                    a.sharing_attrs(x).unwrap(),
                    ay.sharing_key.as_deref(),
                    a.sharing_attrs(y).unwrap(),
                );
                prop_assert!(why.is_none(), "{addr} held by {x:?} and {y:?}: {why:?}");
            }
        }
    }
    // Usage counts every held address in every pool that contains it, once.
    for st in a.stats() {
        let p = pools.iter().find(|p| p.name == st.pool).unwrap();
        let in_pool = held
            .keys()
            .filter(|ip| {
                let v = ip_to_u128(ip);
                p.ranges
                    .iter()
                    .any(|r| r.first_value() <= v && v <= r.last_value())
            })
            .count() as u128;
        prop_assert_eq!(st.in_use, in_pool, "pool {}", st.pool);
    }
    Ok(())
}

/// An automatic allocation may only fail for exhaustion when no pool the Service may use
/// has a free usable address.
fn check_exhaustion(a: &Allocator, req: &AllocationRequest) -> Result<(), TestCaseError> {
    for p in a.pools() {
        let eligible = match &req.pool {
            Some(n) => &p.name == n,
            None => p.auto_assign,
        } && p.admits(&req.namespace, &req.labels);
        if !eligible {
            continue;
        }
        for o in 0..SPAN {
            let v = v4(o);
            let addr = IpAddr::V4(Ipv4Addr::from(v as u32));
            prop_assert!(
                !usable(p, v) || !a.holders(&addr).is_empty(),
                "exhausted, but {addr} in {} is free",
                p.name
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn overlapping_pools_never_hand_an_address_out_twice(
        specs in prop::collection::vec(pool_spec(), 1..5),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let pools = build(&specs);
        let mut a = Allocator::new(pools.clone());
        for op in ops {
            match op {
                Op::Ensure(i, named, at, port) => {
                    let req = request(i, &pools, named, at, port);
                    let result = a.ensure(&service(i), &req);
                    if let Err(AllocError::PoolExhausted { .. }) = &result {
                        if req.ips.is_empty() && req.sharing_key.is_none() {
                            check_exhaustion(&a, &req)?;
                        }
                    }
                    if let Ok(got) = &result {
                        if let Some(named) = &req.pool {
                            prop_assert_eq!(got.pool(), Some(named.as_str()));
                        }
                        if !req.ips.is_empty() {
                            prop_assert_eq!(got.addresses(), req.ips.clone());
                        }
                    }
                }
                Op::Release(i) => {
                    a.release(&service(i));
                }
            }
            check(&a)?;
        }
        // A restart replays every allocation onto a fresh allocator: same addresses, same
        // pools, and the invariants still hold.
        let mut fresh = Allocator::new(pools.clone());
        for (k, alloc) in a.services() {
            let i: usize = k.name[1..].parse().unwrap();
            let req = AllocationRequest {
                sharing_key: alloc.sharing_key.clone(),
                sharing: a.sharing_attrs(k).unwrap().clone(),
                ..request(i, &pools, None, None, None)
            };
            let got = fresh.restore(k, &req, &alloc.addresses());
            prop_assert!(got.is_ok(), "{k:?}: {got:?}");
        }
        check(&fresh)?;
        prop_assert_eq!(fresh.stats(), a.stats());
    }
}
