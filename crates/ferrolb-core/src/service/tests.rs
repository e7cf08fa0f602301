use super::*;

fn svc() -> ServiceInfo {
    ServiceInfo {
        namespace: "default".into(),
        name: "web".into(),
        ip_families: vec![Family::V4],
        ports: vec![ServicePort {
            port: 80,
            protocol: Protocol::Tcp,
        }],
        ..ServiceInfo::default()
    }
}

fn with(mut s: ServiceInfo, key: &str, value: &str) -> ServiceInfo {
    s.annotations.insert(key.into(), value.into());
    s
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn plain_service_asks_for_one_primary_address() {
    let r = allocation_request(&svc()).unwrap();
    assert_eq!(r.pool, None);
    assert!(r.ips.is_empty());
    assert_eq!(r.families, vec![Family::V4]);
    assert!(r.require_all);
    assert_eq!(r.sharing.ports.len(), 1);
    assert_eq!(r.namespace, "default");
}

#[test]
fn every_annotation_prefix_is_honoured() {
    for prefix in ANNOTATION_PREFIXES {
        let s = with(svc(), &format!("{prefix}address-pool"), "lan");
        let s = with(s, &format!("{prefix}allow-shared-ip"), "k");
        let s = with(s, &format!("{prefix}loadBalancerIPs"), "10.0.0.5");
        let r = allocation_request(&s).unwrap();
        assert_eq!(r.pool.as_deref(), Some("lan"), "{prefix}");
        assert_eq!(r.sharing_key.as_deref(), Some("k"), "{prefix}");
        assert_eq!(r.ips, vec![ip("10.0.0.5")], "{prefix}");
    }
}

#[test]
fn spec_load_balancer_ip_is_an_alias_and_may_agree() {
    let mut s = svc();
    s.load_balancer_ip = Some("10.0.0.7".into());
    assert_eq!(allocation_request(&s).unwrap().ips, vec![ip("10.0.0.7")]);
    let s = with(s, "metallb.io/loadBalancerIPs", " 10.0.0.7 ");
    assert_eq!(allocation_request(&s).unwrap().ips, vec![ip("10.0.0.7")]);
}

#[test]
fn disagreeing_sources_name_both() {
    let mut s = with(svc(), "ferrolb.io/loadBalancerIPs", "10.0.0.7");
    s.load_balancer_ip = Some("10.0.0.8".into());
    let e = allocation_request(&s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ferrolb.io/loadBalancerIPs=\"10.0.0.7\" and spec.loadBalancerIP=\"10.0.0.8\" disagree; remove one or make them equal"
    );
    let s = with(svc(), "ferrolb.io/address-pool", "a");
    let s = with(s, "metallb.universe.tf/address-pool", "b");
    let e = allocation_request(&s).unwrap_err();
    assert!(matches!(e, RequestError::Conflict { .. }));
    assert!(e
        .to_string()
        .contains("metallb.universe.tf/address-pool=\"b\""));
}

#[test]
fn ip_lists_agree_regardless_of_order_and_spacing() {
    let mut s = svc();
    s.ip_families = vec![Family::V4, Family::V6];
    s.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    let s = with(s, "ferrolb.io/loadBalancerIPs", "10.0.0.1,fd00::1");
    let s = with(s, "metallb.io/loadBalancerIPs", "fd00::1 , 10.0.0.1");
    let r = allocation_request(&s).unwrap();
    assert_eq!(r.ips, vec![ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(r.families, vec![Family::V4, Family::V6]);
}

#[test]
fn empty_annotations_count_as_absent() {
    let s = with(svc(), "ferrolb.io/address-pool", "");
    let s = with(s, "metallb.io/address-pool", "lan");
    assert_eq!(allocation_request(&s).unwrap().pool.as_deref(), Some("lan"));
}

#[test]
fn bad_ip_text_is_named() {
    let s = with(svc(), "metallb.io/loadBalancerIPs", "10.0.0.1,10.0.0.x");
    let e = allocation_request(&s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "metallb.io/loadBalancerIPs: \"10.0.0.x\" is not an IP address"
    );
}

#[test]
fn two_ips_of_one_family_are_rejected() {
    let s = with(svc(), "ferrolb.io/loadBalancerIPs", "10.0.0.1,10.0.0.2");
    let e = allocation_request(&s).unwrap_err();
    assert!(matches!(
        e,
        RequestError::TwoOfOneFamily {
            family: Family::V4,
            ..
        }
    ));
    assert!(e
        .to_string()
        .contains("10.0.0.1 and 10.0.0.2 are both IPv4"));
}

#[test]
fn single_stack_takes_only_its_primary_family() {
    let mut s = svc();
    s.ip_families = vec![Family::V6, Family::V4];
    s.load_balancer_ip = Some("10.0.0.1".into());
    let e = allocation_request(&s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.loadBalancerIP: 10.0.0.1 is IPv4, but the Service (SingleStack) only takes IPv6"
    );
}

#[test]
fn requested_family_must_be_in_ip_families() {
    let mut s = svc();
    s.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    let s = with(s, "ferrolb.io/loadBalancerIPs", "fd00::1");
    assert!(matches!(
        allocation_request(&s),
        Err(RequestError::FamilyNotWanted {
            family: Family::V6,
            ..
        })
    ));
}

#[test]
fn family_policies_map_to_wanted_families() {
    let mut s = svc();
    s.ip_families = vec![Family::V6, Family::V4];
    s.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    let r = allocation_request(&s).unwrap();
    assert_eq!(
        (r.families.clone(), r.require_all),
        (vec![Family::V6, Family::V4], false)
    );
    s.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    assert!(allocation_request(&s).unwrap().require_all);
    s.ip_family_policy = IpFamilyPolicy::SingleStack;
    assert_eq!(allocation_request(&s).unwrap().families, vec![Family::V6]);
}

#[test]
fn prefer_dual_stack_with_one_requested_ip_narrows_to_that_family() {
    let mut s = svc();
    s.ip_families = vec![Family::V4, Family::V6];
    s.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    let s = with(s, "ferrolb.io/loadBalancerIPs", "fd00::9");
    let r = allocation_request(&s).unwrap();
    assert_eq!((r.ips, r.families), (vec![ip("fd00::9")], vec![Family::V6]));
}

#[test]
fn require_dual_stack_needs_every_family_when_ips_are_requested() {
    let mut s = svc();
    s.ip_families = vec![Family::V4, Family::V6];
    s.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    let s = with(s, "ferrolb.io/loadBalancerIPs", "10.0.0.1");
    let e = allocation_request(&s).unwrap_err();
    assert!(matches!(
        e,
        RequestError::MissingFamily {
            family: Family::V6,
            ..
        }
    ));
    assert!(e.to_string().contains("no IPv6 address is requested"));
}

#[test]
fn missing_ip_families_default_from_the_request_or_ipv4() {
    let mut s = svc();
    s.ip_families.clear();
    assert_eq!(allocation_request(&s).unwrap().families, vec![Family::V4]);
    s.load_balancer_ip = Some("fd00::1".into());
    assert_eq!(allocation_request(&s).unwrap().families, vec![Family::V6]);
}

#[test]
fn sharing_attributes_are_copied() {
    let mut s = svc();
    s.external_traffic_local = true;
    s.selector.insert("app".into(), "web".into());
    let r = allocation_request(&s).unwrap();
    assert!(r.sharing.external_traffic_local);
    assert_eq!(
        r.sharing.selector.get("app").map(String::as_str),
        Some("web")
    );
    assert_eq!(ServiceKey::new("a", "b").to_string(), "a/b");
}
