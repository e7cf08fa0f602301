//! The importer against samples written from MetalLB's documented API (`tests/data/metallb/`):
//! the emitted tree, the warnings, and round trips through the config parser and the
//! allocator that check imported pools hand out addresses as MetalLB would.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Value};

use super::*;
use crate::addr::{AddressRange, Family};
use crate::alloc::{AllocError, Allocator};
use crate::config;
use crate::service::{AllocationRequest, ServiceKey};

const L2: &str = include_str!("../../../../tests/data/metallb/l2.yaml");
const LIST: &str = include_str!("../../../../tests/data/metallb/list.yaml");
const BGP: &str = include_str!("../../../../tests/data/metallb/bgp.yaml");
const UNSUPPORTED: &str = include_str!("../../../../tests/data/metallb/unsupported.yaml");

fn import(files: &[(&str, &str)]) -> Imported {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    metallb(&files).unwrap()
}

/// The emitted `config.yaml`, read back as a generic tree: what a user (or the parser) sees.
fn tree(i: &Imported) -> Value {
    serde_saphyr::from_str::<Value>(&i.config_yaml()).unwrap()
}

#[test]
fn l2_sample_carries_every_l2_field() {
    let i = import(&[("l2.yaml", L2)]);
    assert_eq!(i.warnings, Vec::<String>::new());
    assert_eq!(
        tree(&i),
        json!({
            "pools": [
                {"name": "team-a", "addresses": ["198.51.100.64/30"], "namespaces": ["team-a"]},
                {"name": "web", "addresses": ["198.51.100.80-198.51.100.81"],
                 "serviceSelector": {"tier": "web"}},
                {"name": "production",
                 "addresses": ["198.51.100.0/26", "203.0.113.250-203.0.113.255", "2001:db8:1::/120"],
                 "avoidBuggyIPs": true},
                {"name": "reserved", "addresses": ["192.0.2.10/32"], "autoAssign": false},
            ],
            "l2": {
                "interfaces": ["^bond0\\.100$", "^eth0$"],
                "nodeSelector": {"node-role.example.com/edge": "true"},
            },
        })
    );
}

#[test]
fn a_list_reads_like_the_same_objects_as_documents() {
    let from_list = import(&[("list.yaml", LIST)]);
    assert!(from_list.warnings.is_empty(), "{:?}", from_list.warnings);
    assert_eq!(
        tree(&from_list),
        json!({"pools": [{"name": "lan", "addresses": ["198.51.100.240-198.51.100.250"]}]})
    );
    let items = serde_saphyr::from_str::<Value>(LIST).unwrap()["items"].clone();
    let docs: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    let from_docs = import(&[("docs.yaml", &docs.join("\n---\n"))]);
    assert_eq!(from_docs, from_list);
}

/// The BGP mapping is checked on the emitted tree alone: the native parser learns the `bgp:`
/// section in a concurrent change, so `check-config` cannot judge it yet.
#[test]
fn bgp_sample_maps_peers_advertisements_and_communities() {
    let i = import(&[("bgp.yaml", BGP)]);
    assert_eq!(
        tree(&i),
        json!({
            "pools": [
                {"name": "bgp-pool", "addresses": ["203.0.113.0/28", "2001:db8:2::/124"],
                 "announce": ["bgp"]},
                {"name": "both", "addresses": ["203.0.113.32/29"], "announce": ["l2", "bgp"]},
            ],
            "bgp": {
                "myASN": 64512,
                "routerID": "192.0.2.10",
                "peers": [
                    {"name": "tor1", "address": "192.0.2.1", "asn": 64513, "port": 1179,
                     "holdTime": "1m30s", "keepaliveTime": "30s", "sourceAddress": "192.0.2.10",
                     "password": "hunter2", "ebgpMultihop": true, "nodeSelector": {"rack": "r1"}},
                    {"name": "tor2", "address": "2001:db8::1", "asn": 64512,
                     "passwordSecret": {"name": "tor2-md5", "key": "password"}},
                ],
                "advertisements": [
                    {"pools": ["bgp-pool"], "peers": ["tor1"],
                     "nodeSelector": {"kubernetes.io/hostname": "node-1"},
                     "aggregationLength": 28, "aggregationLengthV6": 124, "localPref": 200,
                     "communities": ["64512:100", "large:64512:1:2", "65535:65281"]},
                    {"pools": ["both"]},
                ],
            },
        })
    );
    let expected = [
        "BFDProfile/fast: ignored: BFD is not supported",
        "BGPPeer/tor1: spec.bfdProfile: not carried over",
        "BGPPeer/tor1: spec.connectTime: not carried over",
        "BGPPeer/tor1: spec.disableMP: not carried over",
        "BGPPeer/tor1: spec.dualStackAddressFamily: not carried over",
        "BGPPeer/tor1: spec.enableGracefulRestart: not carried over",
        "BGPPeer/tor1: spec.vrf: not carried over",
        "BGPPeer/tor2: spec.localASN: not carried over",
        "BGPPeer/tor2: spec.passwordSecret.namespace: FerroLB reads the Secret from its own namespace: copy Secret metallb-system/tor2-md5 to ferrolb-system",
        "BGPPeer/tor2: spec.nodeSelectors: not carried over",
        "BGPPeer/unnumbered: spec.dynamicASN: not carried over",
        "BGPPeer/unnumbered: spec.interface: not carried over",
        "BGPPeer/unnumbered: spec: needs myASN, peerASN and peerAddress; peer left out",
        "BGPAdvertisement/aggregated: spec.communities[3]: \"no-export\" is 65535:65281, which an earlier entry already lists",
        "BGPAdvertisement/aggregated: spec.communities[4]: \"not-an-alias\" is neither",
        "BGPAdvertisement/aggregated: spec.serviceSelectors: not carried over",
    ];
    assert_eq!(i.warnings.len(), expected.len(), "{:#?}", i.warnings);
    for (w, e) in i.warnings.iter().zip(expected) {
        assert!(w.starts_with(e), "{w:?} should start with {e:?}");
    }
}

#[test]
fn bgp_peers_without_advertisements_and_differing_asns() {
    let text = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 64512, peerASN: 65000, peerAddress: 192.0.2.1, routerID: 192.0.2.9}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 64600, peerASN: 65001, peerAddress: 192.0.2.2, routerID: 192.0.2.8, peerPort: 179}
"#;
    let i = import(&[("peers.yaml", text)]);
    let t = tree(&i);
    assert_eq!(t["bgp"]["myASN"], json!(64512));
    assert_eq!(t["bgp"]["routerID"], json!("192.0.2.9"));
    assert_eq!(
        t["bgp"]["peers"][1],
        json!({"name": "b", "address": "192.0.2.2", "asn": 65001})
    );
    assert!(t["bgp"].get("advertisements").is_none());
    assert_eq!(
        i.warnings,
        vec![
            "no IPAddressPool in the input: the config has no pools",
            "BGPPeer/b: spec.myASN: FerroLB has one myASN for every peer; using 64512 from BGPPeer/a",
            "BGPPeer/b: spec.routerID: FerroLB has one routerID; using 192.0.2.9",
        ]
    );
}

#[test]
fn unsupported_fields_are_named_and_never_widen_a_pool() {
    let i = import(&[("unsupported.yaml", UNSUPPORTED)]);
    let t = tree(&i);
    assert_eq!(
        t["pools"][0],
        json!({"name": "by-namespace-label", "addresses": ["198.51.100.128/29"], "autoAssign": false}),
        "selectors FerroLB cannot express make the pool manual rather than open"
    );
    assert_eq!(t["pools"][1]["addresses"], json!(["198.51.100.136/29"]));
    assert!(
        t.get("l2").is_none(),
        "differing node selectors are not merged"
    );
    let expected = [
        "Namespace/metallb-system: apiVersion \"v1\" is not MetalLB's",
        "IPAddressPool/by-namespace-label: spec.serviceAllocation.namespaceSelectors: not carried over",
        "IPAddressPool/by-namespace-label: spec.serviceAllocation.serviceSelectors: not carried over",
        "IPAddressPool/unannounced: spec.colour: not a field of MetalLB's IPAddressPool",
        "IPAddressPool/unannounced: spec.addresses[1]: \"not-an-address\" is not a CIDR or range",
        "L2Advertisement/picky: spec.ipAddressPools[1]: no IPAddressPool named \"missing-pool\"",
        "L2Advertisement/picky: spec.serviceSelectors: not carried over",
        "L2Advertisement/picky: spec.preferredNodeSelectors: not carried over",
        "L2Advertisement/picky: spec.nodeSelectors: not carried over",
        "L2Advertisement/other-nodes: spec.nodeSelectors: not carried over",
        "IPAddressPool/unannounced: no L2Advertisement or BGPAdvertisement selects it",
    ];
    assert_eq!(i.warnings.len(), expected.len(), "{:#?}", i.warnings);
    for (w, e) in i.warnings.iter().zip(expected) {
        assert!(w.starts_with(e), "{w:?} should start with {e:?}");
    }
}

#[test]
fn unreadable_yaml_is_an_error_naming_the_file() {
    let e = metallb(&[("broken.yaml".into(), "a: [".into())]).unwrap_err();
    assert!(
        e.to_string().starts_with("broken.yaml: invalid YAML:"),
        "{e}"
    );
}

#[test]
fn the_manifest_is_a_ferrolb_config_config_map_that_check_config_accepts() {
    let i = import(&[("l2.yaml", L2), ("list.yaml", LIST)]);
    let m = serde_saphyr::from_str::<Value>(&i.manifest()).unwrap();
    assert_eq!(m["kind"], "ConfigMap");
    assert_eq!(
        m["metadata"],
        json!({"name": "ferrolb-config", "namespace": "ferrolb-system"})
    );
    let parsed = config::parse_file(&i.manifest()).unwrap();
    let names: Vec<&str> = parsed
        .config
        .pools
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["team-a", "web", "production", "reserved", "lan"]);
    // The two files' L2Advertisements disagree on nodes and interfaces, and FerroLB's l2
    // settings are global, so neither is carried over (and both are named).
    assert!(parsed.config.l2.node_selector.is_empty());
    let l2_warnings: Vec<&String> = i
        .warnings
        .iter()
        .filter(|w| w.starts_with("L2Advertisement/everything: spec."))
        .collect();
    assert_eq!(l2_warnings.len(), 2, "{:#?}", i.warnings);
    let single = import(&[("l2.yaml", L2)]);
    let parsed = config::parse_file(&single.manifest()).unwrap();
    assert_eq!(
        parsed
            .config
            .l2
            .node_selector
            .get("node-role.example.com/edge"),
        Some(&"true".to_string())
    );
    assert_eq!(
        parsed.config.l2.interfaces.sources(),
        ["^bond0\\.100$", "^eth0$"]
    );
}

// ---- round trips: imported pools allocate as MetalLB would ----

fn allocator() -> Allocator {
    let i = import(&[("l2.yaml", L2)]);
    Allocator::new(config::parse_file(&i.manifest()).unwrap().config.pools)
}

fn req(ns: &str, labels: &[(&str, &str)]) -> AllocationRequest {
    let mut r = AllocationRequest::simple(ns, Family::V4);
    r.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    r
}

fn got(a: &mut Allocator, ns: &str, name: &str, r: &AllocationRequest) -> (String, Vec<IpAddr>) {
    let alloc = a.ensure(&ServiceKey::new(ns, name), r).unwrap();
    (
        alloc.pool().unwrap_or_default().to_string(),
        alloc.addresses(),
    )
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn namespaces_and_service_selectors_pick_the_pool_metallb_would() {
    let mut a = allocator();
    // team-a's pool (priority 10) is the only one restricted to its namespace.
    assert_eq!(
        got(&mut a, "team-a", "x", &req("team-a", &[])),
        ("team-a".into(), ips(&["198.51.100.64"]))
    );
    // tier=web matches web's serviceSelector (priority 20, before the unprioritised pool).
    assert_eq!(
        got(
            &mut a,
            "default",
            "web",
            &req("default", &[("tier", "web")])
        ),
        ("web".into(), ips(&["198.51.100.80"]))
    );
    // Everyone else: production; avoidBuggyIPs skips 198.51.100.0.
    assert_eq!(
        got(&mut a, "default", "plain", &req("default", &[])),
        ("production".into(), ips(&["198.51.100.1"]))
    );
    // team-a's pool is not for other namespaces, web's not for other labels.
    assert_eq!(
        got(&mut a, "other", "y", &req("other", &[("tier", "db")])).0,
        "production"
    );
}

#[test]
fn ranges_and_avoid_buggy_ips_exhaust_in_metallb_order() {
    let mut a = allocator();
    let mut handed = Vec::new();
    for n in 0.. {
        match a.ensure(
            &ServiceKey::new("default", format!("s{n}")),
            &req("default", &[]),
        ) {
            Ok(alloc) => {
                assert_eq!(alloc.pool(), Some("production"));
                handed.push(alloc.addresses()[0]);
            }
            Err(AllocError::PoolExhausted { pools, .. }) => {
                assert_eq!(pools, vec!["production".to_string()]);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // 198.51.100.1-.63 (the .0 is avoided), then 203.0.113.250-.254 (the .255 is avoided).
    let mut want: Vec<IpAddr> = (1..=63)
        .map(|h| format!("198.51.100.{h}").parse().unwrap())
        .collect();
    want.extend((250..=254).map(|h| format!("203.0.113.{h}").parse::<IpAddr>().unwrap()));
    assert_eq!(handed, want);
}

#[test]
fn manual_pools_serve_only_services_that_ask_and_dual_stack_uses_one_pool() {
    let mut a = allocator();
    let mut named = req("default", &[]);
    named.pool = Some("reserved".into());
    assert_eq!(
        got(&mut a, "default", "named", &named),
        ("reserved".into(), ips(&["192.0.2.10"]))
    );
    let mut requested = req("default", &[]);
    requested.ips = ips(&["192.0.2.10"]);
    let e = a
        .ensure(&ServiceKey::new("default", "other"), &requested)
        .unwrap_err();
    assert!(matches!(e, AllocError::IpInUse { .. }), "{e}");
    let mut dual = req("default", &[]);
    dual.families = vec![Family::V4, Family::V6];
    dual.require_all = true;
    assert_eq!(
        got(&mut a, "default", "dual", &dual),
        ("production".into(), ips(&["198.51.100.1", "2001:db8:1::"]))
    );
}

// ---- any MetalLB layer-2 input imports into a config check-config accepts ----

mod property {
    use proptest::prelude::*;

    use super::*;

    fn address() -> impl Strategy<Value = String> {
        prop_oneof![
            (0..64u8, 26..33u8).prop_map(|(h, len)| format!("10.0.0.{}/{len}", h * 4)),
            (0..255u8, 26..31u8).prop_map(|(h, len)| format!("10.0.0.{h}/{len}")),
            (0..250u8, 0..6u8).prop_map(|(a, n)| format!("10.0.0.{a}-10.0.0.{}", a + n)),
            (0..255u8).prop_map(|h| format!("10.0.0.{h}")),
            (0..16u16).prop_map(|h| format!("fd00::{h:x}/126")),
            Just("not-an-address".to_string()),
            Just("10.0.0.9-10.0.0.1".to_string()),
        ]
    }

    fn selector() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({"matchLabels": {"tier": "web"}})),
            Just(
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]})
            ),
            Just(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
        ]
    }

    fn pool_object() -> impl Strategy<Value = (Vec<String>, Value)> {
        (
            prop::collection::vec(address(), 0..4),
            any::<Option<bool>>(),
            any::<Option<bool>>(),
            prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["a", "team-b", "c1"]),
                0..3,
            )),
            prop::option::of(prop::collection::vec(selector(), 0..3)),
            prop::option::of(0..5u32),
        )
            .prop_map(|(addresses, auto, avoid, ns, sel, prio)| {
                let mut sa = serde_json::Map::new();
                if let Some(ns) = ns {
                    sa.insert("namespaces".into(), json!(ns));
                }
                if let Some(sel) = sel {
                    sa.insert("serviceSelectors".into(), json!(sel));
                }
                if let Some(p) = prio {
                    sa.insert("priority".into(), json!(p));
                }
                let mut spec = json!({"addresses": addresses.clone()});
                if let Some(a) = auto {
                    spec["autoAssign"] = json!(a);
                }
                if let Some(a) = avoid {
                    spec["avoidBuggyIPs"] = json!(a);
                }
                if !sa.is_empty() {
                    spec["serviceAllocation"] = Value::Object(sa);
                }
                (addresses, spec)
            })
    }

    fn l2_object(pools: usize) -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(0..pools.max(1), 0..3),
            prop::collection::vec("[a-z][a-z0-9.@_-]{0,6}", 0..3),
            prop::option::of(prop::collection::vec(selector(), 0..2)),
        )
            .prop_map(|(picked, ifaces, nodes)| {
                let mut spec = json!({
                    "ipAddressPools": picked.iter().map(|i| format!("p{i}")).collect::<Vec<_>>(),
                    "interfaces": ifaces,
                });
                if let Some(n) = nodes {
                    spec["nodeSelectors"] = json!(n);
                }
                spec
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn imports_always_pass_check_config_and_never_invent_addresses(
            pools in prop::collection::vec(pool_object(), 1..5),
            l2 in prop::collection::vec(l2_object(4), 0..3),
        ) {
            let mut docs = Vec::new();
            for (i, (_, spec)) in pools.iter().enumerate() {
                docs.push(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": format!("p{i}"), "namespace": "metallb-system"}, "spec": spec}));
            }
            for (i, spec) in l2.iter().enumerate() {
                docs.push(json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                    "metadata": {"name": format!("l{i}")}, "spec": spec}));
            }
            let text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
            let imported = import(&[("random.yaml", &text.join("\n---\n"))]);
            let parsed = config::parse_file(&imported.manifest());
            prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), imported.manifest());
            let parsed = parsed.unwrap();
            for p in &parsed.config.pools {
                let i: usize = p.name[1..].parse().unwrap();
                let (written, spec) = &pools[i];
                // Every imported address was in the MetalLB pool (host bits masked as Go does).
                let source: Vec<AddressRange> = written
                    .iter()
                    .filter_map(|a| match a.parse::<AddressRange>() {
                        Ok(r) => Some(r),
                        Err(crate::addr::RangeError::HostBitsSet(_, f)) => f.parse().ok(),
                        Err(_) => None,
                    })
                    .collect();
                for r in &p.ranges {
                    prop_assert!(source.contains(r), "{r} not written in pool {}", p.name);
                }
                // A restriction that could not be carried over never leaves the pool open.
                let sels = spec["serviceAllocation"]["serviceSelectors"].as_array().map_or(0, Vec::len);
                let simple = spec["serviceAllocation"]["serviceSelectors"][0]["matchExpressions"][0]["operator"] != "Exists";
                if sels > 1 || (sels == 1 && !simple) {
                    prop_assert!(!p.auto_assign, "pool {} was widened", p.name);
                }
            }
        }
    }
}

#[test]
fn host_bits_are_masked_as_metallb_does_and_nonsense_is_left_out_by_name() {
    let doc = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: ["198.51.100.77/26", "2001:db8::5/120", "198.51.100.300/24", "203.0.113.9-203.0.113.12"]
"#;
    let i = import(&[("pool.yaml", doc)]);
    assert_eq!(
        tree(&i)["pools"][0]["addresses"],
        json!([
            "198.51.100.64/26",
            "2001:db8::/120",
            "203.0.113.9-203.0.113.12"
        ])
    );
    // The fourth says no advertisement selects the pool.
    assert_eq!(i.warnings.len(), 4, "{:#?}", i.warnings);
    assert!(i.warnings[0].starts_with("IPAddressPool/lan: spec.addresses[0]: \"198.51.100.77/26\" has host bits set; written as 198.51.100.64/26"), "{}", i.warnings[0]);
    assert!(i.warnings[1].starts_with("IPAddressPool/lan: spec.addresses[1]: \"2001:db8::5/120\" has host bits set; written as 2001:db8::/120"), "{}", i.warnings[1]);
    assert!(
        i.warnings[2].starts_with(
            "IPAddressPool/lan: spec.addresses[2]: \"198.51.100.300/24\" is not a CIDR or range"
        ) && i.warnings[2].ends_with("; left out"),
        "{}",
        i.warnings[2]
    );
}
