//! Fuzzes the parsing of what a Service asks for (pool, requested IPs, sharing key, from our
//! annotations, MetalLB's two prefixes and spec.loadBalancerIP), and feeds what parses to an
//! allocator, which must never panic on it.
#![no_main]

use std::collections::BTreeMap;

use ferrolb_core::addr::Family;
use ferrolb_core::alloc::Allocator;
use ferrolb_core::pool::Pool;
use ferrolb_core::service::{allocation_request, IpFamilyPolicy, ServiceInfo, ServiceKey};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "ferrolb.io/address-pool",
    "ferrolb.io/loadBalancerIPs",
    "ferrolb.io/allow-shared-ip",
    "metallb.io/address-pool",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/allow-shared-ip",
    "metallb.universe.tf/loadBalancerIPs",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0');
    let flags = parts.next().unwrap_or("").bytes().next().unwrap_or(0);
    let mut annotations = BTreeMap::new();
    for (i, value) in parts.by_ref().take(NAMES.len()).enumerate() {
        if flags & (1 << (i % 8)) != 0 || value.len() % 2 == 0 {
            annotations.insert(NAMES[i].to_string(), value.to_string());
        }
    }
    let svc = ServiceInfo {
        namespace: "default".into(),
        name: "fuzz".into(),
        annotations,
        load_balancer_ip: parts.next().map(String::from),
        ip_families: if flags & 1 == 0 { vec![Family::V4, Family::V6] } else { vec![Family::V6] },
        ip_family_policy: match flags % 3 {
            0 => IpFamilyPolicy::SingleStack,
            1 => IpFamilyPolicy::PreferDualStack,
            _ => IpFamilyPolicy::RequireDualStack,
        },
        ..ServiceInfo::default()
    };
    match allocation_request(&svc) {
        Ok(req) => {
            let pools = vec![
                Pool::new("a", vec!["198.51.100.0/30".parse().expect("static range")]),
                Pool::new("b", vec!["2001:db8::/126".parse().expect("static range")]),
            ];
            let mut alloc = Allocator::new(pools);
            let _ = alloc.ensure(&ServiceKey::new("default", "fuzz"), &req);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
