// unwrap() here only parses literal fixtures: it cannot fail unless the test itself is wrong.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::addr::Family;
use crate::config::Config;
use crate::election::MonoTime;
use crate::pool::Pool;
use crate::service::{IpFamilyPolicy, Protocol, ServiceInfo, ServiceKey, ServicePort};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(range: &str) -> Config {
    Config {
        pools: vec![Pool::new("lan", vec![range.parse().unwrap()])],
        ..Config::default()
    }
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

/// A class-less LoadBalancer `name` showing `ingress` (with our annotation if any).
fn lb(name: &str, ingress: &[&str]) -> ServiceFacts {
    let ingress: Vec<IpAddr> = ingress.iter().map(|s| ip(s)).collect();
    ServiceFacts {
        key: key(name),
        uid: Some(format!("uid-{name}")),
        handling: Handling::Ours,
        info: ServiceInfo {
            namespace: "default".into(),
            name: name.into(),
            ip_families: vec![Family::V4],
            ip_family_policy: IpFamilyPolicy::SingleStack,
            ports: vec![ServicePort {
                port: 80,
                protocol: Protocol::Tcp,
            }],
            ..ServiceInfo::default()
        },
        pool_annotation: (!ingress.is_empty()).then(|| "lan".to_string()),
        ingress,
        ingress_in_our_shape: true,
        created: 0,
    }
}

fn with_annotation(mut f: ServiceFacts, k: &str, v: &str) -> ServiceFacts {
    f.info.annotations = BTreeMap::from([(k.to_string(), v.to_string())]);
    f
}

fn all_decisions(r: &mut Reconciler, now: MonoTime) -> Vec<Decided> {
    std::iter::from_fn(|| r.next_decision(now)).collect()
}

fn writes(r: &mut Reconciler, now: MonoTime) -> Vec<Write> {
    all_decisions(r, now)
        .into_iter()
        .filter_map(|d| d.write)
        .collect()
}

fn started(range: &str, services: Vec<ServiceFacts>) -> Reconciler {
    let mut r = Reconciler::default();
    r.apply_config(config(range));
    r.synced(services);
    r
}

#[test]
fn event_and_failure_reasons_read_as_users_know_them() {
    let reasons = [
        (EventReason::IpAllocated, "IPAllocated"),
        (EventReason::IpReleased, "IPReleased"),
        (EventReason::AllocationFailed, "AllocationFailed"),
        (EventReason::IpConflict, "IPConflict"),
        (EventReason::IpOutsidePools, "IPOutsidePools"),
        (EventReason::ConfigLoaded, "ConfigLoaded"),
        (EventReason::ConfigWarning, "ConfigWarning"),
        (EventReason::ConfigInvalid, "ConfigInvalid"),
    ];
    for (r, text) in reasons {
        assert_eq!(r.to_string(), text);
    }
    assert_eq!(FailureReason::PoolExhausted.to_string(), "pool_exhausted");
    assert_eq!(FailureReason::BadAnnotation.to_string(), "bad_annotation");
    assert_eq!(EventAction::LoadConfig.to_string(), "LoadConfig");
}

#[test]
fn allocates_once_and_writes_nothing_when_the_status_matches() {
    let mut r = started("198.51.100.10-198.51.100.11", vec![lb("a", &[])]);
    let now = MonoTime::ZERO;
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
    assert_eq!(w[0].pool_annotation, Some(Some("lan".into())));
    assert_eq!(w[0].uid.as_deref(), Some("uid-a"));
    assert_eq!(w[0].events[0].reason, EventReason::IpAllocated);
    assert_eq!(
        w[0].events[0].note,
        "assigned IP 198.51.100.10 from pool lan"
    );
    assert_eq!(r.write_finished(&key("a"), WriteResult::Done, now), None);
    r.service_seen(lb("a", &["198.51.100.10"]));
    assert!(writes(&mut r, now).is_empty());
    assert_eq!(r.next_wake(), None, "nothing left to look at");
}

#[test]
fn replay_keeps_the_older_service_and_moves_the_newer() {
    let mut older = lb("old", &["198.51.100.10"]);
    older.created = 1;
    let mut newer = lb("new", &["198.51.100.10"]);
    newer.created = 2;
    let mut r = Reconciler::default();
    r.apply_config(config("198.51.100.10-198.51.100.11"));
    let replay = r.synced(vec![newer, older]);
    assert_eq!(replay.conflicts.len(), 1);
    assert_eq!(replay.conflicts[0].key, key("new"));
    assert_eq!(replay.conflicts[0].event.reason, EventReason::IpConflict);
    assert!(replay.conflicts[0]
        .event
        .note
        .ends_with("this Service will get a new IP"));
    let w = writes(&mut r, MonoTime::ZERO);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key, key("new"));
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.11")]));
}

#[test]
fn an_ip_given_up_stays_quarantined_until_the_clearing_write_lands() {
    // One IP; `a` shows it and then leaves LoadBalancer; `b` waits for capacity.
    let mut r = started("198.51.100.10/32", vec![lb("a", &["198.51.100.10"])]);
    let now = MonoTime::ZERO;
    assert!(writes(&mut r, now).is_empty());
    r.service_seen(lb("b", &[]));
    let d = all_decisions(&mut r, now);
    assert_eq!(d[0].failure, Some(FailureReason::PoolExhausted));
    r.write_finished(&key("b"), WriteResult::Done, now);
    let mut gone = lb("a", &["198.51.100.10"]);
    gone.handling = Handling::NotLoadBalancer;
    r.service_seen(gone);
    let w = writes(&mut r, now);
    assert_eq!(
        w.len(),
        1,
        "only the clearing write; b must not get the IP yet"
    );
    assert_eq!(w[0].ingress, Some(vec![]));
    assert_eq!(w[0].events[0].reason, EventReason::IpReleased);
    assert_eq!(
        r.state(&key("a")).unwrap().quarantined,
        vec![ip("198.51.100.10")]
    );
    // The clearing write fails: still held, retried after backoff.
    let b = r.write_finished(
        &key("a"),
        WriteResult::Failed {
            failure: WriteFailure::Other,
            status_written: false,
        },
        now,
    );
    assert_eq!(b.unwrap().delay, Duration::from_millis(400));
    assert!(writes(&mut r, now).is_empty());
    let later = now + Duration::from_millis(400);
    assert_eq!(r.next_wake(), Some(later));
    r.wake(later);
    let w = writes(&mut r, later);
    assert_eq!(w[0].key, key("a"));
    r.write_finished(&key("a"), WriteResult::Done, later);
    // The allocator lets go, but the cache still shows a with the IP: b waits for a's status.
    let d = all_decisions(&mut r, later);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].waiting_for, Some(key("a")));
    assert!(d[0].write.is_none());
    let mut cleared = lb("a", &[]);
    cleared.handling = Handling::NotLoadBalancer;
    r.service_seen(cleared);
    let w = writes(&mut r, later);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key, key("b"));
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn a_write_waits_while_another_status_still_shows_the_ip() {
    // `a` moves off .10 (it asks for .11); its status still shows .10 when `c`, asking for
    // .10 explicitly, is decided: `c` must wait for `a`'s status, not just the allocator.
    let mut r = started(
        "198.51.100.10-198.51.100.11",
        vec![lb("a", &["198.51.100.10"])],
    );
    let now = MonoTime::ZERO;
    r.service_seen(with_annotation(
        lb("a", &["198.51.100.10"]),
        "ferrolb.io/loadBalancerIPs",
        "198.51.100.11",
    ));
    let w = writes(&mut r, now);
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.11")]));
    // The move lands but the cache has not delivered it; `a`'s old IP stays quarantined until
    // the write is reported, so `c` cannot even be allocated it.
    r.service_seen(with_annotation(
        lb("c", &[]),
        "ferrolb.io/loadBalancerIPs",
        "198.51.100.10",
    ));
    let d = all_decisions(&mut r, now);
    assert_eq!(d[0].failure, Some(FailureReason::IpInUse));
    r.write_finished(&key("c"), WriteResult::Done, now);
    r.write_finished(&key("a"), WriteResult::Done, now);
    let d = all_decisions(&mut r, now);
    assert_eq!(
        d[0].waiting_for,
        Some(key("a")),
        "a's status may still show it"
    );
    r.service_seen(with_annotation(
        lb("a", &["198.51.100.11"]),
        "ferrolb.io/loadBalancerIPs",
        "198.51.100.11",
    ));
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key, key("c"));
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn our_own_write_is_trusted_over_a_lagging_cache_for_a_while() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &[])]);
    let now = MonoTime::ZERO;
    assert_eq!(writes(&mut r, now).len(), 1);
    r.write_finished(&key("a"), WriteResult::Done, now);
    // An unrelated change arrives from a cache that has not seen our write yet.
    r.service_seen(lb("a", &[]));
    assert!(
        writes(&mut r, now).is_empty(),
        "no second write, no second Event"
    );
    assert_eq!(r.next_wake(), Some(now + EXPECTATION_TTL));
    // Past the TTL the cache wins: the status really lacks the IP, so it is written again.
    r.wake(now + EXPECTATION_TTL);
    let w = writes(&mut r, now + EXPECTATION_TTL);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn unreachable_api_retries_every_second_at_most() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &[])]);
    let mut now = MonoTime::ZERO;
    let mut delays = Vec::new();
    for _ in 0..6 {
        assert_eq!(writes(&mut r, now).len(), 1);
        let b = r
            .write_finished(
                &key("a"),
                WriteResult::Failed {
                    failure: WriteFailure::Unreachable,
                    status_written: false,
                },
                now,
            )
            .unwrap();
        delays.push(b.delay);
        now = r.next_wake().unwrap();
        r.wake(now);
    }
    assert_eq!(
        delays,
        [400, 800, 1000, 1000, 1000, 1000].map(Duration::from_millis)
    );
}

#[test]
fn a_repeated_failure_is_announced_once() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &["198.51.100.10"])]);
    let now = MonoTime::ZERO;
    assert!(writes(&mut r, now).is_empty());
    r.service_seen(lb("b", &[]));
    let d = all_decisions(&mut r, now);
    assert_eq!(
        d[0].write.as_ref().unwrap().events[0].reason,
        EventReason::AllocationFailed
    );
    r.write_finished(&key("b"), WriteResult::Done, now);
    r.service_seen(lb("b", &[]));
    let d = all_decisions(&mut r, now);
    assert_eq!(d[0].failure, Some(FailureReason::PoolExhausted));
    assert!(d[0].write.is_none(), "same failure, no new Event");
}

#[test]
fn a_removed_pool_keeps_ips_and_warns_with_the_next_write() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &["198.51.100.10"])]);
    let now = MonoTime::ZERO;
    assert!(writes(&mut r, now).is_empty());
    r.apply_config(config("203.0.113.0/30"));
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].ingress, None, "the IP stays");
    assert_eq!(w[0].pool_annotation, None, "the marker stays with the IP");
    assert_eq!(w[0].events[0].reason, EventReason::IpOutsidePools);
}

#[test]
fn a_recreated_service_is_not_judged_by_its_predecessors_writes() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &[])]);
    let now = MonoTime::ZERO;
    assert_eq!(writes(&mut r, now).len(), 1);
    r.write_finished(&key("a"), WriteResult::Done, now);
    // Deleted and re-created before the cache delivered our write.
    let mut again = lb("a", &[]);
    again.uid = Some("uid-a2".into());
    r.service_seen(again);
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1, "the new object gets its status at once");
    assert_eq!(w[0].uid.as_deref(), Some("uid-a2"));
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn config_verdicts_say_what_the_controller_will_do() {
    let data = |text: &str| BTreeMap::from([("config.yaml".to_string(), text.to_string())]);
    assert_eq!(judge_config(None, None), ConfigVerdict::Missing);
    let good = data("pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n");
    let ConfigVerdict::Load { config, events, .. } = judge_config(None, Some(&good)) else {
        panic!("a valid config loads");
    };
    assert_eq!(events[0].reason, EventReason::ConfigLoaded);
    assert_eq!(
        judge_config(Some(&config), Some(&good)),
        ConfigVerdict::Unchanged
    );
    let bad = judge_config(Some(&config), Some(&data("pools: [")));
    assert!(!bad.valid());
    let ConfigVerdict::Reject { event, .. } = bad else {
        panic!("an invalid config is rejected");
    };
    assert_eq!(event.reason, EventReason::ConfigInvalid);
    assert!(event
        .note
        .starts_with("config rejected, the last good config stays in force: "));
}

/// `a` left LoadBalancer as the real kube-apiserver shows it: `status.loadBalancer` cleared
/// by the server itself, our annotation still there.
fn left_lb_cleared_by_server(name: &str) -> ServiceFacts {
    let mut f = lb(name, &[]);
    f.handling = Handling::NotLoadBalancer;
    f.pool_annotation = Some("lan".into());
    f
}

#[test]
fn a_status_the_server_cleared_on_a_type_change_frees_the_ip_for_a_waiting_service() {
    let mut r = started("198.51.100.10/32", vec![lb("a", &[])]);
    let now = MonoTime::ZERO;
    let w = writes(&mut r, now);
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
    r.write_finished(&key("a"), WriteResult::Done, now);
    r.service_seen(lb("a", &["198.51.100.10"]));
    // `b` waits: the only IP is taken.
    r.service_seen(lb("b", &[]));
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].ingress, None);
    assert_eq!(w[0].events[0].reason, EventReason::AllocationFailed);
    r.write_finished(&key("b"), WriteResult::Done, now);
    // The type change reaches the cache with the status already empty. The controller still
    // clears it and drops the annotation: its own record says the status showed the IP.
    let later = now + Duration::from_secs(20);
    r.service_seen(left_lb_cleared_by_server("a"));
    let w = writes(&mut r, later);
    let wa = w.iter().find(|w| w.key == key("a")).unwrap();
    assert_eq!(wa.ingress, Some(vec![]));
    assert_eq!(wa.pool_annotation, Some(None));
    assert_eq!(wa.events[0].reason, EventReason::IpReleased);
    assert!(
        w.iter().all(|w| w.key != key("b")),
        "b must wait for a's write"
    );
    r.write_finished(&key("a"), WriteResult::Done, later);
    let w = writes(&mut r, later);
    let wb = w.iter().find(|w| w.key == key("b")).unwrap();
    assert_eq!(wb.ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn a_type_change_seen_while_our_write_is_expected_still_releases() {
    // The server cleared the status before the cache delivered our own write: the expectation
    // says "shows .10", the cache says "cleared, not a LoadBalancer". Release, never keep.
    let mut r = started("198.51.100.10/32", vec![lb("a", &[])]);
    let now = MonoTime::ZERO;
    writes(&mut r, now);
    r.write_finished(&key("a"), WriteResult::Done, now);
    r.service_seen(left_lb_cleared_by_server("a"));
    r.service_seen(lb("b", &[]));
    let w = writes(&mut r, now);
    let wa = w.iter().find(|w| w.key == key("a")).unwrap();
    assert_eq!(wa.ingress, Some(vec![]));
    // Until that clearing write lands, the IP is not b's: it may only fail for now.
    let wb = w.iter().find(|w| w.key == key("b")).unwrap();
    assert_eq!(wb.ingress, None);
    r.write_finished(&key("b"), WriteResult::Done, now);
    r.write_finished(&key("a"), WriteResult::Done, now);
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, key("b"));
    assert_eq!(w[0].ingress, Some(vec![ip("198.51.100.10")]));
}

#[test]
fn an_ip_given_up_and_taken_back_is_not_left_in_quarantine() {
    // Found by reconcile_props once its API model cleared statuses like the real server: a
    // Service that gave up a shared IP (type toggled away) and took it back (toggled again)
    // while its status kept showing it held the IP twice, once through a placeholder that
    // nothing would ever let go.
    let shared = |name: &str, port: u16, ingress: &[&str]| {
        let mut f = with_annotation(lb(name, ingress), "ferrolb.io/allow-shared-ip", "k");
        f.info.ports = vec![ServicePort {
            port,
            protocol: Protocol::Tcp,
        }];
        f
    };
    let now = MonoTime::ZERO;
    let mut r = started(
        "198.51.100.10/32",
        vec![shared("a", 80, &["198.51.100.10"]), shared("b", 443, &[])],
    );
    let w = writes(&mut r, now);
    assert_eq!(w.len(), 1);
    r.write_finished(&key("b"), WriteResult::Done, now);
    // b leaves LoadBalancer in the cache; the clearing write fails.
    let mut left = shared("b", 443, &[]);
    left.handling = Handling::NotLoadBalancer;
    r.service_seen(left);
    let w = writes(&mut r, now);
    assert_eq!(w[0].ingress, Some(vec![]));
    r.write_finished(
        &key("b"),
        WriteResult::Failed {
            failure: WriteFailure::Conflict,
            status_written: false,
        },
        now,
    );
    // b is back, its status still showing the shared IP: it holds the IP itself again.
    r.service_seen(shared("b", 443, &["198.51.100.10"]));
    let later = now + Duration::from_secs(1);
    r.wake(later);
    for w in writes(&mut r, later) {
        r.write_finished(&w.key, WriteResult::Done, later);
    }
    let holders: Vec<ServiceKey> = r.allocator().services().map(|(k, _)| k.clone()).collect();
    assert_eq!(holders, vec![key("a"), key("b")], "no placeholder is left");
    assert!(r.state(&key("b")).unwrap().quarantined.is_empty());
}

#[test]
fn a_new_shared_ip_wakes_services_of_that_key_waiting_for_capacity() {
    // Found by reconcile_props: a Service re-created under the same name keeps the old
    // object's allocation, now under a sharing key, without any capacity being freed. A
    // Service of that key waiting for capacity could share the IP and must be decided again
    // (a restart would otherwise be what hands it the IP).
    let shared = |name: &str, port: u16| {
        let mut f = with_annotation(lb(name, &[]), "ferrolb.io/allow-shared-ip", "k");
        f.info.ports = vec![ServicePort {
            port,
            protocol: Protocol::Tcp,
        }];
        f
    };
    let now = MonoTime::ZERO;
    let mut r = started("198.51.100.10/32", vec![lb("web", &["198.51.100.10"])]);
    assert!(writes(&mut r, now).is_empty());
    r.service_seen(shared("b", 443));
    let w = writes(&mut r, now);
    assert_eq!(w[0].events[0].reason, EventReason::AllocationFailed);
    r.write_finished(&key("b"), WriteResult::Done, now);
    // web is deleted and re-created with the sharing key before the controller decides.
    r.service_deleted(&key("web"));
    let mut again = shared("web", 80);
    again.uid = Some("uid-web-2".into());
    r.service_seen(again);
    let mut ingress = BTreeMap::new();
    for _ in 0..3 {
        for w in writes(&mut r, now) {
            if let Some(ips) = &w.ingress {
                ingress.insert(w.key.name.clone(), ips.clone());
            }
            r.write_finished(&w.key, WriteResult::Done, now);
        }
    }
    assert_eq!(ingress.get("web"), Some(&vec![ip("198.51.100.10")]));
    assert_eq!(
        ingress.get("b"),
        Some(&vec![ip("198.51.100.10")]),
        "{ingress:?}"
    );
}
