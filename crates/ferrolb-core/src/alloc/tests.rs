use std::collections::BTreeMap;

use super::*;
use crate::pool::SearchOrder;
use crate::service::{Protocol, ServicePort};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, ranges: &[&str]) -> Pool {
    Pool::new(name, ranges.iter().map(|r| r.parse().unwrap()).collect())
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn v4() -> AllocationRequest {
    AllocationRequest::simple("default", Family::V4)
}

fn dual(require_all: bool) -> AllocationRequest {
    AllocationRequest {
        families: vec![Family::V4, Family::V6],
        require_all,
        ..v4()
    }
}

fn shared(sharing_key: &str, port: u16) -> AllocationRequest {
    let mut r = v4();
    r.sharing_key = Some(sharing_key.into());
    r.sharing.ports.insert(ServicePort {
        port,
        protocol: Protocol::Tcp,
    });
    r
}

fn requesting(ips: &[&str]) -> AllocationRequest {
    let mut r = v4();
    r.ips = ips.iter().map(|s| ip(s)).collect();
    r.families = r.ips.iter().map(Family::of).collect();
    r
}

fn addrs(a: &Allocation) -> Vec<IpAddr> {
    a.addresses()
}

#[test]
fn allocates_lowest_free_first_and_reuses_released() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/30"])]);
    let x = a.ensure(&key("x"), &v4()).unwrap();
    let y = a.ensure(&key("y"), &v4()).unwrap();
    assert_eq!(addrs(&x), vec![ip("10.0.0.0")]);
    assert_eq!(addrs(&y), vec![ip("10.0.0.1")]);
    assert_eq!(x.pool(), Some("lan"));
    a.release(&key("x"));
    assert_eq!(
        addrs(&a.ensure(&key("z"), &v4()).unwrap()),
        vec![ip("10.0.0.0")]
    );
}

#[test]
fn descending_pools_hand_out_the_highest_first() {
    let mut p = pool("lan", &["10.0.0.0/30", "10.0.1.0/31"]);
    p.search_order = SearchOrder::Descending;
    let mut a = Allocator::new(vec![p]);
    assert_eq!(
        addrs(&a.ensure(&key("x"), &v4()).unwrap()),
        vec![ip("10.0.1.1")]
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut p = pool("lan", &["10.0.0.255-10.0.1.1"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(vec![p]);
    assert_eq!(
        addrs(&a.ensure(&key("x"), &v4()).unwrap()),
        vec![ip("10.0.1.1")]
    );
    let e = a.ensure(&key("y"), &v4()).unwrap_err();
    assert_eq!(e.reason(), "pool_exhausted");
    assert_eq!(a.stats()[0].total, 1);
    let e = a.ensure(&key("z"), &requesting(&["10.0.1.0"])).unwrap_err();
    assert!(matches!(e, AllocError::IpAvoided { .. }), "{e}");
}

#[test]
fn exhaustion_names_the_pool_and_family() {
    let mut a = Allocator::new(vec![pool("tiny", &["10.0.0.1"])]);
    a.ensure(&key("x"), &v4()).unwrap();
    let e = a.ensure(&key("y"), &v4()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pool exhausted: no free IPv4 address left in pool \"tiny\""
    );
    assert!(a.get(&key("y")).is_none());
}

#[test]
fn ensure_keeps_a_satisfying_allocation() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    a.ensure(&key("x"), &v4()).unwrap();
    let y = a.ensure(&key("y"), &v4()).unwrap();
    a.release(&key("x"));
    // Lower addresses are free now; y must still not move.
    assert_eq!(a.ensure(&key("y"), &v4()).unwrap(), y);
}

#[test]
fn ensure_moves_when_the_requested_ip_changes() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    a.ensure(&key("x"), &v4()).unwrap();
    let moved = a.ensure(&key("x"), &requesting(&["10.0.0.5"])).unwrap();
    assert_eq!(addrs(&moved), vec![ip("10.0.0.5")]);
    assert!(a.holders(&ip("10.0.0.0")).is_empty(), "old IP released");
}

#[test]
fn requested_ip_in_use_names_the_holder() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    a.ensure(&key("x"), &requesting(&["10.0.0.3"])).unwrap();
    let e = a.ensure(&key("y"), &requesting(&["10.0.0.3"])).unwrap_err();
    assert_eq!(e.reason(), "ip_in_use");
    assert_eq!(
        e.to_string(),
        "requested IP 10.0.0.3 is in use by default/x (no common sharing key (allow-shared-ip))"
    );
}

#[test]
fn requested_ip_outside_every_pool() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let e = a.ensure(&key("x"), &requesting(&["10.9.9.9"])).unwrap_err();
    assert_eq!(e.to_string(), "requested IP 10.9.9.9 is outside every pool");
    assert_eq!(e.reason(), "ip_outside_pools");
}

#[test]
fn requested_ip_may_come_from_a_manual_pool_that_admits_the_service() {
    let mut manual = pool("manual", &["10.0.1.0/29"]);
    manual.auto_assign = false;
    let mut closed = pool("closed", &["10.0.2.0/29"]);
    closed.namespaces = vec!["other".into()];
    let mut a = Allocator::new(vec![manual, closed]);
    assert!(a.ensure(&key("x"), &requesting(&["10.0.1.4"])).is_ok());
    let e = a.ensure(&key("y"), &requesting(&["10.0.2.4"])).unwrap_err();
    assert!(matches!(e, AllocError::IpPoolRejects { .. }));
    assert!(e.to_string().contains("namespace \"default\""), "{e}");
    assert_eq!(e.reason(), "bad_request");
}

#[test]
fn named_pool_must_exist_and_admit_but_need_not_auto_assign() {
    let mut manual = pool("manual", &["10.0.1.0/29"]);
    manual.auto_assign = false;
    let mut labelled = pool("labelled", &["10.0.2.0/29"]);
    labelled.service_selector = BTreeMap::from([("tier".into(), "web".into())]);
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"]), manual, labelled]);
    let mut r = v4();
    r.pool = Some("manual".into());
    assert_eq!(
        addrs(&a.ensure(&key("x"), &r).unwrap()),
        vec![ip("10.0.1.0")]
    );
    r.pool = Some("nope".into());
    let e = a.ensure(&key("y"), &r).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching pool: the requested pool \"nope\" does not exist"
    );
    r.pool = Some("labelled".into());
    let e = a.ensure(&key("y"), &r).unwrap_err();
    assert!(matches!(e, AllocError::NamedPoolRejects { .. }), "{e}");
    r.labels.insert("tier".into(), "web".into());
    assert_eq!(
        addrs(&a.ensure(&key("y"), &r).unwrap()),
        vec![ip("10.0.2.0")]
    );
}

#[test]
fn restricted_pools_win_over_open_ones_then_config_order() {
    let mut team = pool("team", &["10.0.9.0/30"]);
    team.namespaces = vec!["default".into()];
    let mut manual = pool("manual", &["10.0.0.0/30"]);
    manual.auto_assign = false;
    let mut a = Allocator::new(vec![manual, pool("global", &["10.0.5.0/30"]), team]);
    assert_eq!(a.ensure(&key("x"), &v4()).unwrap().pool(), Some("team"));
    let other = AllocationRequest::simple("elsewhere", Family::V4);
    let got = a
        .ensure(&ServiceKey::new("elsewhere", "y"), &other)
        .unwrap();
    assert_eq!(got.pool(), Some("global"));
}

#[test]
fn no_matching_pool_says_why() {
    let mut manual = pool("manual", &["10.0.0.0/30"]);
    manual.auto_assign = false;
    let mut a = Allocator::new(vec![manual.clone()]);
    let e = a.ensure(&key("x"), &v4()).unwrap_err();
    assert!(e.to_string().contains("autoAssign"), "{e}");
    assert_eq!(e.reason(), "no_matching_pool");
    let e = a
        .ensure(&key("x"), &AllocationRequest::simple("default", Family::V6))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no matching pool: no pool has IPv6 addresses"
    );
    let mut ns = pool("ns", &["10.0.1.0/30"]);
    ns.namespaces = vec!["team".into()];
    a.set_pools(vec![manual, ns.clone()]);
    let e = a.ensure(&key("x"), &v4()).unwrap_err();
    assert_eq!(
        e,
        AllocError::NoMatchingPool(NoPoolWhy::Namespace {
            family: Family::V4,
            namespace: "default".into()
        })
    );
    ns.namespaces.clear();
    ns.service_selector = BTreeMap::from([("a".into(), "b".into())]);
    a.set_pools(vec![ns]);
    let e = a.ensure(&key("x"), &v4()).unwrap_err();
    assert_eq!(
        e,
        AllocError::NoMatchingPool(NoPoolWhy::Selector(Family::V4))
    );
}

#[test]
fn dual_stack_takes_both_families_from_one_pool() {
    let mut a = Allocator::new(vec![
        pool("v4only", &["10.0.0.0/30"]),
        pool("both", &["10.0.1.0/30", "fd00::/64"]),
    ]);
    let got = a.ensure(&key("x"), &dual(true)).unwrap();
    assert_eq!(addrs(&got), vec![ip("10.0.1.0"), ip("fd00::")]);
    assert_eq!(got.pool(), Some("both"));
}

#[test]
fn require_dual_stack_fails_without_a_dual_pool_prefer_takes_one_family() {
    let mut a = Allocator::new(vec![
        pool("v4", &["10.0.0.0/30"]),
        pool("v6", &["fd00::/120"]),
    ]);
    let e = a.ensure(&key("x"), &dual(true)).unwrap_err();
    assert_eq!(e, AllocError::DualStackUnavailable);
    let got = a.ensure(&key("x"), &dual(false)).unwrap();
    assert_eq!(addrs(&got), vec![ip("10.0.0.0")]);
    // Asking again must not churn.
    assert_eq!(a.ensure(&key("x"), &dual(false)).unwrap(), got);
}

#[test]
fn prefer_dual_stack_falls_back_when_the_dual_pool_is_full_in_one_family() {
    let mut a = Allocator::new(vec![pool("both", &["10.0.0.0/30", "fd00::1"])]);
    a.ensure(&key("x"), &dual(true)).unwrap();
    let e = a.ensure(&key("y"), &dual(true)).unwrap_err();
    assert!(
        matches!(
            e,
            AllocError::PoolExhausted {
                family: Family::V6,
                ..
            }
        ),
        "{e}"
    );
    let got = a.ensure(&key("y"), &dual(false)).unwrap();
    assert_eq!(addrs(&got), vec![ip("10.0.0.1")]);
}

#[test]
fn sharing_prefers_an_ip_already_held_under_the_key() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    a.ensure(&key("other"), &v4()).unwrap();
    let x = a.ensure(&key("x"), &shared("k", 80)).unwrap();
    let y = a.ensure(&key("y"), &shared("k", 443)).unwrap();
    assert_eq!(addrs(&x), addrs(&y));
    assert_eq!(a.holders(&addrs(&x)[0]).len(), 2);
    // Same port: cannot share, gets its own address.
    let z = a.ensure(&key("z"), &shared("k", 80)).unwrap();
    assert_ne!(addrs(&z), addrs(&x));
    // Releasing one sharer keeps the address held by the other.
    a.release(&key("x"));
    assert_eq!(a.holders(&addrs(&y)[0]), vec![&key("y")]);
    assert_eq!(a.stats()[0].in_use, 3);
}

#[test]
fn sharing_with_local_traffic_needs_the_same_selector() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let mut x = shared("k", 80);
    x.sharing.external_traffic_local = true;
    x.sharing.selector.insert("app".into(), "x".into());
    let got_x = a.ensure(&key("x"), &x).unwrap();
    let mut y = shared("k", 81);
    y.ips = got_x.addresses();
    y.sharing.selector.insert("app".into(), "y".into());
    let e = a.ensure(&key("y"), &y).unwrap_err();
    assert!(e.to_string().contains("selectors differ"), "{e}");
    y.sharing.selector.insert("app".into(), "x".into());
    assert_eq!(
        a.ensure(&key("y"), &y).unwrap().addresses(),
        got_x.addresses()
    );
}

#[test]
fn changing_ports_to_overlap_a_sharer_moves_the_service() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let x = a.ensure(&key("x"), &shared("k", 80)).unwrap();
    assert_eq!(a.ensure(&key("y"), &shared("k", 81)).unwrap(), x);
    let moved = a.ensure(&key("y"), &shared("k", 80)).unwrap();
    assert_ne!(moved.addresses(), x.addresses());
    // Changing to a still-compatible port keeps the address and stores the new ports.
    let kept = a.ensure(&key("y"), &shared("k", 82)).unwrap();
    assert_eq!(kept, moved);
    assert!(a
        .sharing_attrs(&key("y"))
        .unwrap()
        .ports
        .iter()
        .any(|p| p.port == 82));
}

#[test]
fn pool_default_sharing_key_applies_to_services_without_one() {
    let mut p = pool("lan", &["10.0.0.0/29"]);
    p.default_sharing_key = Some("ns-share".into());
    let mut a = Allocator::new(vec![p]);
    let mut r = v4();
    r.sharing.ports.insert(ServicePort {
        port: 80,
        protocol: Protocol::Tcp,
    });
    let x = a.ensure(&key("x"), &r).unwrap();
    assert_eq!(x.sharing_key.as_deref(), Some("ns-share"));
    let mut r2 = r.clone();
    r2.sharing.ports = [ServicePort {
        port: 81,
        protocol: Protocol::Tcp,
    }]
    .into();
    assert_eq!(a.ensure(&key("y"), &r2).unwrap().addresses(), x.addresses());
}

#[test]
fn set_pools_keeps_orphans_and_reports_them() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let x = a.ensure(&key("x"), &v4()).unwrap();
    let change = a.set_pools(vec![pool("lan", &["10.0.1.0/29"])]);
    assert_eq!(change.orphaned, vec![key("x")]);
    let kept = a.get(&key("x")).unwrap().clone();
    assert_eq!(kept.addresses(), x.addresses());
    assert!(kept.is_orphaned());
    assert_eq!(a.orphaned_ips(), 1);
    // Ensuring again keeps the orphan rather than moving it.
    assert_eq!(
        a.ensure(&key("x"), &v4()).unwrap().addresses(),
        x.addresses()
    );
    // Nobody else can take the orphaned address by request either.
    let e = a.ensure(&key("y"), &requesting(&["10.0.0.0"])).unwrap_err();
    assert_eq!(e.reason(), "ip_outside_pools");
    let change = a.set_pools(vec![pool("wide", &["10.0.0.0/23"])]);
    assert_eq!(change.placeable_again, vec![key("x")]);
    assert_eq!(a.get(&key("x")).unwrap().pool(), Some("wide"));
    assert_eq!(a.orphaned_ips(), 0);
    assert_eq!(a.stats()[0].in_use, 1);
    // The held address is not handed out again.
    assert_ne!(
        a.ensure(&key("z"), &v4()).unwrap().addresses(),
        x.addresses()
    );
}

#[test]
fn set_pools_reports_a_renamed_pool_and_named_requests_then_move() {
    let mut a = Allocator::new(vec![pool("old", &["10.0.0.0/29"])]);
    let mut r = v4();
    r.pool = Some("old".into());
    a.ensure(&key("x"), &r).unwrap();
    let change = a.set_pools(vec![pool("new", &["10.0.0.0/29"])]);
    assert_eq!(change.pool_changed, vec![key("x")]);
    let e = a.ensure(&key("x"), &r).unwrap_err();
    assert!(matches!(e, AllocError::NamedPoolMissing(_)));
    assert!(
        a.get(&key("x")).is_none(),
        "a failed ensure leaves nothing held"
    );
}

#[test]
fn restore_claims_exact_ips_and_older_wins_conflicts() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let got = a.restore(&key("old"), &v4(), &[ip("10.0.0.5")]).unwrap();
    assert_eq!(got.pool(), Some("lan"));
    let orphan = a.restore(&key("gone"), &v4(), &[ip("192.0.2.1")]).unwrap();
    assert!(orphan.is_orphaned());
    let e = a
        .restore(&key("new"), &v4(), &[ip("10.0.0.5")])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "default/new: IP 10.0.0.5 from its status is already held by default/old (no common sharing key (allow-shared-ip)); the older Service keeps it"
    );
    assert!(a.get(&key("new")).is_none());
    // The restored address is kept by ensure and not handed out to others.
    assert_eq!(
        a.ensure(&key("old"), &v4()).unwrap().addresses(),
        vec![ip("10.0.0.5")]
    );
    assert_eq!(
        a.ensure(&key("new"), &v4()).unwrap().addresses(),
        vec![ip("10.0.0.0")]
    );
}

#[test]
fn restore_rejects_two_addresses_of_one_family() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/29"])]);
    let e = a
        .restore(&key("x"), &v4(), &[ip("10.0.0.1"), ip("10.0.0.2")])
        .unwrap_err();
    assert!(matches!(e, RestoreError::TwoOfOneFamily { .. }));
}

#[test]
fn slash_64_pools_do_not_enumerate_or_overflow() {
    let mut a = Allocator::new(vec![pool("v6", &["fd00::/64", "fd01::/48"])]);
    let r = AllocationRequest::simple("default", Family::V6);
    for i in 0..1000 {
        a.ensure(&key(&format!("s{i}")), &r).unwrap();
    }
    let s = &a.stats()[0];
    assert_eq!(s.family, Family::V6);
    assert_eq!(s.total, (1u128 << 64) + (1u128 << 80));
    assert_eq!(s.in_use, 1000);
    assert_eq!(
        a.get(&key("s999")).unwrap().addresses(),
        vec![ip("fd00::3e7")]
    );
    let everything = Allocator::new(vec![pool("all", &["::/0", "0.0.0.0/0"])]);
    let totals: Vec<u128> = everything.stats().iter().map(|s| s.total).collect();
    assert_eq!(totals, vec![1u128 << 32, u128::MAX]);
}

#[test]
fn holders_and_per_service_views_agree_after_sharing_and_release() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/30"])]);
    a.ensure(&key("a"), &shared("k", 1)).unwrap();
    a.ensure(&key("b"), &shared("k", 2)).unwrap();
    a.ensure(&key("c"), &shared("k", 3)).unwrap();
    a.release(&key("b"));
    let held: Vec<&ServiceKey> = a.holders(&ip("10.0.0.0"));
    assert_eq!(held, vec![&key("a"), &key("c")]);
    for (k, alloc) in a.services() {
        for addr in alloc.addresses() {
            assert!(a.holders(&addr).contains(&k));
        }
    }
}

#[test]
fn a_quarantine_hold_keeps_an_ip_from_others_without_being_a_service() {
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/31"])]);
    let hold = Holder::quarantine(ip("10.0.0.0"), key("old"));
    a.restore_holder(&hold, &v4(), &[ip("10.0.0.0")]).unwrap();
    // Only Services are listed or reported as holders.
    assert!(a.holders(&ip("10.0.0.0")).is_empty());
    assert_eq!(a.services().count(), 0);
    assert_eq!(
        a.holdings().map(|(h, _)| h).collect::<Vec<_>>(),
        vec![hold.clone()]
    );
    assert!(a
        .set_pools(vec![pool("other", &["10.1.0.0/31"])])
        .orphaned
        .is_empty());
    a.set_pools(vec![pool("lan", &["10.0.0.0/31"])]);
    // But the address is not free: asked for, it names who may still show it.
    let err = a
        .ensure(&key("new"), &requesting(&["10.0.0.0"]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("default/old (which gave up 10.0.0.0 but may still show it)"),
        "{err}"
    );
    assert_eq!(
        addrs(&a.ensure(&key("new"), &v4()).unwrap()),
        vec![ip("10.0.0.1")]
    );
    // Once the hold ends the address is free again.
    a.release_holder(&hold);
    a.release(&key("new"));
    assert_eq!(
        addrs(&a.ensure(&key("new"), &v4()).unwrap()),
        vec![ip("10.0.0.0")]
    );
}

#[test]
fn requested_ips_held_in_another_order_are_listed_as_requested() {
    // Found by alloc_props: a dual-stack Service holding [v6, v4] that then requests exactly
    // those IPs as [v4, v6] keeps them, listed in the requested order.
    let mut a = Allocator::new(vec![pool("lan", &["10.0.0.0/31", "fd00::/127"])]);
    let v6_first = AllocationRequest {
        families: vec![Family::V6, Family::V4],
        require_all: true,
        ..v4()
    };
    let held = a.ensure(&key("x"), &v6_first).unwrap();
    assert_eq!(addrs(&held), vec![ip("fd00::"), ip("10.0.0.0")]);
    let asked = requesting(&["10.0.0.0", "fd00::"]);
    let got = a.ensure(&key("x"), &asked).unwrap();
    assert_eq!(addrs(&got), vec![ip("10.0.0.0"), ip("fd00::")]);
    assert_eq!(a.get(&key("x")), Some(&got), "returned = stored");
}
