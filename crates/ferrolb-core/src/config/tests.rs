//! Behaviour of the public entry points, format by format, with exact messages for the errors
//! operators will see most.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::addr::{AddressRange, Family};
use crate::pool::SearchOrder;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn native(yaml: &str) -> Result<Parsed, ConfigErrors> {
    parse_config_map_data(&data(&[(NATIVE_KEY, yaml)]))
}

fn metallb(yaml: &str) -> Result<Parsed, ConfigErrors> {
    parse_config_map_data(&data(&[(METALLB_KEY, yaml)]))
}

fn errors(r: Result<Parsed, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(p) => panic!("expected errors, got {p:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn ok(r: Result<Parsed, ConfigErrors>) -> Parsed {
    match r {
        Ok(p) => p,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn range(s: &str) -> AddressRange {
    s.parse().unwrap()
}

const DESIGN_EXAMPLE: &str = r#"
pools:
  - name: lan
    addresses: ["192.168.1.240-192.168.1.250", "192.168.2.0/28", "fd00:1::/64"]
    autoAssign: true          # false: only Services that name this pool or request its IPs
    avoidBuggyIPs: false      # true: never hand out IPv4 .0 / .255
    namespaces: []            # empty = every namespace
    serviceSelector: {}       # matchLabels on the Service
l2:
  interfaces: []              # regexes; empty = any up interface whose subnet holds the IP
  excludeInterfaces: ["^lo$", "^docker", "^veth", "^cali", "^cni", "^flannel", "^cilium", "^kube-ipvs"]
  nodeSelector: {}            # matchLabels: nodes allowed to announce
  garp: { burst: 5, interval: 1100ms, refresh: 0s }   # refresh > 0: re-announce periodically
"#;

// ---- native format ----

#[test]
fn design_example_parses_to_the_documented_model() {
    let p = ok(native(DESIGN_EXAMPLE));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let c = p.config;
    assert_eq!(c.format, ConfigFormat::Native);
    assert_eq!(c.pools.len(), 1);
    let lan = &c.pools[0];
    assert_eq!(lan.name, "lan");
    assert_eq!(
        lan.ranges,
        vec![
            range("192.168.1.240-192.168.1.250"),
            range("192.168.2.0/28"),
            range("fd00:1::/64")
        ]
    );
    assert!(lan.auto_assign && !lan.avoid_buggy_ips);
    assert!(lan.namespaces.is_empty() && lan.service_selector.is_empty());
    assert_eq!(lan.size(Family::V4), 27);
    assert_eq!(
        c.l2,
        L2Config::default(),
        "the example spells out the defaults"
    );
}

#[test]
fn native_reads_every_field() {
    let p = ok(native(
        r#"
pools:
  - name: web
    addresses: [10.0.0.0/30]
    autoAssign: false
    avoidBuggyIPs: true
    namespaces: [team-a, team-b]
    serviceSelector: {tier: web, "app.kubernetes.io/name": shop}
l2:
  interfaces: ["^eth", "^bond0$"]
  excludeInterfaces: []
  nodeSelector: {node-role.kubernetes.io/edge: ""}
  garp: {burst: 3, interval: 1.5s, refresh: 2m}
"#,
    ));
    let c = p.config;
    let web = &c.pools[0];
    assert!(!web.auto_assign && web.avoid_buggy_ips);
    assert_eq!(web.namespaces, vec!["team-a", "team-b"]);
    assert_eq!(
        web.service_selector.get("tier").map(String::as_str),
        Some("web")
    );
    assert_eq!(web.service_selector.len(), 2);
    assert_eq!(c.l2.interfaces.sources(), ["^eth", "^bond0$"]);
    assert!(c.l2.exclude_interfaces.is_empty());
    assert!(c.l2.interface_eligible("eth0") && c.l2.interface_eligible("bond0"));
    assert!(!c.l2.interface_eligible("wlan0") && !c.l2.interface_eligible("bond01"));
    assert_eq!(c.l2.node_selector.len(), 1);
    assert_eq!(
        c.l2.garp,
        GarpPolicy {
            burst: 3,
            interval: Duration::from_millis(1500),
            refresh: Duration::from_secs(120),
        }
    );
}

#[test]
fn unknown_fields_name_the_path_and_suggest() {
    let e = errors(native(
        "pools:\n- name: lan\n  addresses: [10.0.0.0/30]\n  autoassign: false\nl2:\n  garp: {brust: 1}\nmystery: 1\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"mystery: unknown field (expected one of: pools, l2, bgp)"#,
            r#"pool "lan": autoassign: unknown field (did you mean "autoAssign"?)"#,
            r#"l2.garp.brust: unknown field (did you mean "burst"?)"#,
        ]
    );
}

#[test]
fn reversed_range_names_pool_field_and_value() {
    let e = errors(native(
        "pools:\n- name: lan\n  addresses: [10.0.1.0/30, 10.0.2.0/30, 10.0.0.9-10.0.0.1]\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "lan": addresses[2]: range "10.0.0.9-10.0.0.1" is reversed: 10.0.0.9 is after 10.0.0.1"#
        ]
    );
}

#[test]
fn every_error_is_collected_not_just_the_first() {
    let e = errors(native(
        r#"
pools:
  - name: a
    addresses: [10.0.0.0/24, "banana", 10.0.0.1-fd00::1, 192.168.0.1/24]
    autoAssign: "yes"
  - name: a
    addresses: []
  - addresses: [10.1.0.0/24]
  - name: "my pool"
    addresses: [10.2.0.0/24]
    namespaces: [Team_A]
    serviceSelector: {"-bad": x, ok: "not ok"}
l2:
  interfaces: ["eth["]
  garp: {burst: -1, interval: 0s, refresh: 5}
  excludeInterfaces: ["^lo$", "(a"]
"#,
    ));
    let expected = [
        r#"pool "a": addresses[1]: "banana" is not an IP address, a CIDR or a first-last range"#,
        r#"pool "a": addresses[2]: range "10.0.0.1-fd00::1" mixes IPv4 and IPv6"#,
        r#"pool "a": addresses[3]: CIDR "192.168.0.1/24" has host bits set (did you mean 192.168.0.0/24?)"#,
        r#"pool "a": autoAssign: expected true or false, found string "yes""#,
        r#"l2.interfaces[0]: invalid regex "eth[": unclosed character class"#,
        r#"l2.excludeInterfaces[1]: invalid regex "(a": unclosed group"#,
        r#"l2.garp.burst: expected a whole number from 0 to 4294967295, found number -1"#,
        r#"l2.garp.refresh: expected a duration with a unit, found number 5 (did you mean "5s" or "5ms"?)"#,
        r#"pool "a": name: duplicate pool name: pools[0] and pools[1] are both named "a""#,
        r#"pool "a": addresses: a pool needs at least one address"#,
        r#"pools[2].name: must not be empty"#,
        r#"pool "my pool": name: "my pool" must not contain spaces or control characters (Services name pools in an annotation)"#,
        r#"pool "my pool": namespaces[0]: "Team_A" is not a valid namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"#,
        r#"pool "my pool": serviceSelector: label key "-bad" is invalid: must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
        r#"pool "my pool": serviceSelector.ok: label value "not ok" is invalid: must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
        r#"l2.garp.interval: must be greater than 0s (a burst sent all at once is dropped by switches and hosts alike)"#,
    ];
    assert_eq!(e, expected);
}

#[test]
fn overlaps_name_both_pools_and_both_ranges() {
    let e = errors(native(
        "pools:\n- name: a\n  addresses: [10.0.0.0/29, fd00::/64]\n- name: b\n  addresses: [10.0.0.5-10.0.0.9, 10.0.0.100]\n- name: c\n  addresses: [10.0.0.100/32, 10.0.0.96/29]\n- name: d\n  addresses: [\"fd00::ffff\"]\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "b": addresses[0]: "10.0.0.5-10.0.0.9" overlaps "10.0.0.0/29" (addresses[0] of pool "a")"#,
            r#"pool "c": addresses[1]: "10.0.0.96/29" overlaps "10.0.0.100" (addresses[1] of pool "b")"#,
            r#"pool "c": addresses[1]: "10.0.0.96/29" overlaps "10.0.0.100/32" (addresses[0] of the same pool)"#,
            r#"pool "c": addresses[0]: "10.0.0.100/32" overlaps "10.0.0.100" (addresses[1] of pool "b")"#,
            r#"pool "d": addresses[0]: "fd00::ffff" overlaps "fd00::/64" (addresses[1] of pool "a")"#,
        ]
    );
    let e = errors(native(
        "pools:\n- name: a\n  addresses: [10.0.0.0/24, 10.0.0.7]\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "a": addresses[1]: "10.0.0.7" overlaps "10.0.0.0/24" (addresses[0] of the same pool)"#
        ]
    );
    // IPv4 10 and IPv6 ::a are different addresses.
    ok(native(
        "pools:\n- name: a\n  addresses: [10.0.0.10, \"::a\"]\n",
    ));
}

#[test]
fn overlap_errors_are_capped() {
    let pools: String = (0..20)
        .map(|i| format!("- name: p{i}\n  addresses: [10.0.0.0/24]\n"))
        .collect();
    let e = errors(native(&format!("pools:\n{pools}")));
    assert_eq!(e.len(), 51);
    assert_eq!(
        e.last().map(String::as_str),
        Some("pools: more than 50 overlapping ranges; the rest are not listed")
    );
}

#[test]
fn type_errors_explain_the_fix() {
    let e = errors(native(
        "pools:\n- name: p\n  addresses: 10.0.0.0/30\n  serviceSelector: {matchLabels: {app: x}, version: 1.10}\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "p": addresses: expected a list, found string "10.0.0.0/30""#,
            r#"pool "p": serviceSelector.matchLabels: expected a string, found a map (write the labels directly, without matchLabels)"#,
            r#"pool "p": serviceSelector.version: expected a string, found number 1.1 (quote it to make it a string)"#,
        ]
    );
    assert_eq!(
        errors(native("pools: {}\n")),
        vec!["pools: expected a list, found a map"]
    );
    assert_eq!(
        errors(native("- 1\n")),
        vec!["expected a map, found a list"]
    );
    assert_eq!(
        errors(native("pools: [\n")),
        vec![r#"data["config.yaml"]: invalid YAML: unclosed bracket '[' at line 1, column 8"#]
    );
}

/// `burst: 0` has one meaning, the scheduler's: one send per takeover (and per refresh). The
/// validator used to call it "no gratuitous ARP" and reject it beside a refresh, while the
/// speaker sent one packet anyway.
#[test]
fn garp_burst_zero_means_one_send_for_validator_and_scheduler_alike() {
    let p = ok(native("l2:\n  garp: {burst: 0}\n"));
    assert_eq!(
        p.warnings,
        vec!["l2.garp.burst: 0 is sent as 1: every takeover sends at least one gratuitous ARP, or clients would keep the old MAC until their ARP cache expires; write 1 to say so"]
    );
    let sends: Vec<Duration> = p.config.l2.garp.params().schedule().collect();
    assert_eq!(sends, vec![Duration::ZERO]);

    let p = ok(native("l2:\n  garp: {burst: 0, refresh: 30s}\n"));
    let sends: Vec<Duration> = p.config.l2.garp.params().schedule().take(3).collect();
    assert_eq!(
        sends,
        vec![
            Duration::ZERO,
            Duration::from_secs(30),
            Duration::from_secs(60)
        ]
    );

    let p = ok(native("l2:\n  garp: {refresh: 0, interval: 250ms}\n"));
    assert_eq!(p.config.l2.garp.interval, Duration::from_millis(250));
    assert_eq!(p.config.l2.garp.burst, 5);
}

#[test]
fn plain_interface_names_warn_that_they_are_regexes() {
    let p = ok(native("l2:\n  interfaces: [eth0, \"^bond0$\"]\n"));
    assert_eq!(
        p.warnings,
        vec![
            r#"l2.interfaces: "eth0" is a regex, so it also matches names that merely contain it; write "^eth0$" to match that interface alone"#
        ]
    );
}

#[test]
fn null_sections_mean_defaults() {
    let p = ok(native("pools:\nl2:\n"));
    assert_eq!(p.config, Config::default());
    let p = ok(native(
        "pools:\n- name: p\n  addresses: [10.0.0.1]\n  namespaces:\n",
    ));
    assert!(p.config.pools[0].namespaces.is_empty());
}

// ---- MetalLB legacy ----

const METALLB_V012: &str = r#"
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 198.51.100.0/24
  - 192.168.0.150 - 192.168.0.200
  - 192.168.10.1/32
  auto-assign: false
  avoid-buggy-ips: true
- name: v6
  protocol: layer2
  addresses: ["2001:db8::/120"]
peers: []
"#;

#[test]
fn metallb_v012_example_translates() {
    let p = ok(metallb(METALLB_V012));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let c = p.config;
    assert_eq!(c.format, ConfigFormat::MetalLbLegacy);
    let d = &c.pools[0];
    assert_eq!(d.name, "default");
    assert_eq!(
        d.ranges,
        vec![
            range("198.51.100.0/24"),
            range("192.168.0.150-192.168.0.200"),
            range("192.168.10.1")
        ]
    );
    assert!(!d.auto_assign && d.avoid_buggy_ips);
    assert!(c.pools[1].auto_assign && !c.pools[1].avoid_buggy_ips);
    assert_eq!(c.pools[1].families(), vec![Family::V6]);
    assert_eq!(c.l2, L2Config::default());
}

#[test]
fn metallb_bgp_is_read_and_bfd_is_refused_with_a_reason() {
    // BGP pools, peers and communities now translate (see bgp_tests.rs for the details);
    // BFD, which FerroLB does not implement, stays an error that names the key.
    let e = errors(metallb(
        r#"
peers:
- peer-address: 10.0.0.1
  peer-asn: 64501
  my-asn: 64500
  bfd-profile: fast
bfd-profiles: [{name: fast}]
bgp-communities: {no-advertise: 65535:65282}
address-pools:
- name: edge
  protocol: bgp
  addresses: [10.1.0.0/24]
  bgp-advertisements: [{aggregation-length: 32, communities: [no-advertise]}]
- name: lan
  addresses: [10.2.0.0/24]
"#,
    ));
    assert_eq!(
        e,
        vec![
            "bfd-profiles: BFD is not supported by FerroLB (a dead peer is detected by the BGP hold timer; lower hold-time instead)",
            "peers[0].bfd-profile: BFD is not supported by FerroLB (a dead peer is detected by the BGP hold timer; lower hold-time instead)",
            r#"pool "lan": protocol: missing (MetalLB and FerroLB need protocol: layer2 or bgp)"#,
        ]
    );
}

#[test]
fn metallb_quirks_are_kept_for_migration() {
    // MetalLB read YAML 1.1 booleans and let Go mask host bits.
    let p = ok(metallb(
        "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [192.168.1.1/24]\n  auto-assign: no\n  avoid-buggy-ips: yes\n",
    ));
    let pool = &p.config.pools[0];
    assert!(!pool.auto_assign && pool.avoid_buggy_ips);
    assert_eq!(pool.ranges, vec![range("192.168.1.0/24")]);
    assert_eq!(
        p.warnings,
        vec![
            r#"pool "p": addresses[0]: CIDR "192.168.1.1/24" has host bits set; using 192.168.1.0/24 as MetalLB does"#
        ]
    );
    let e = errors(metallb(
        "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  auto-asign: false\n",
    ));
    assert_eq!(
        e,
        vec![r#"pool "p": auto-asign: unknown field (did you mean "auto-assign"?)"#]
    );
}

// ---- kube-vip ----

fn kubevip_example() -> BTreeMap<String, String> {
    data(&[
        ("cidr-global", "192.168.0.200/29,2001:db8::10/127"),
        (
            "range-team-a",
            "192.168.1.10-192.168.1.11, 2001:db8:1::10-2001:db8:1::14",
        ),
        ("cidr-team-b", "10.20.0.0/30,"),
        ("allow-share-team-a", "true"),
        ("allow-share-global", "false"),
        ("search-order", "desc"),
    ])
}

#[test]
fn kubevip_example_with_mixed_families_translates() {
    let p = ok(parse_config_map_data(&kubevip_example()));
    let c = &p.config;
    assert_eq!(c.format, ConfigFormat::KubeVip);
    let names: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cidr-team-b", "range-team-a", "cidr-global"]);
    let a = &c.pools[1];
    assert_eq!(a.namespaces, vec!["team-a"]);
    assert_eq!(a.families(), vec![Family::V4, Family::V6]);
    assert_eq!(
        a.default_sharing_key.as_deref(),
        Some("kube-vip/allow-share-team-a")
    );
    assert_eq!(c.pools[0].default_sharing_key, None);
    let g = &c.pools[2];
    assert!(g.namespaces.is_empty());
    assert_eq!(
        g.ranges,
        vec![range("192.168.0.200/29"), range("2001:db8::10/127")]
    );
    for pool in &c.pools {
        assert!(pool.avoid_buggy_ips && pool.auto_assign);
        assert_eq!(pool.search_order, SearchOrder::Descending);
    }
    assert_eq!(
        p.warnings,
        vec![
            r#"data["allow-share-team-a"]: pool "range-team-a" also has IPv6 addresses; kube-vip shares only IPv4 addresses, FerroLB shares both (ports must still not overlap)"#
        ]
    );
}

#[test]
fn kubevip_options_and_warnings() {
    let p = ok(parse_config_map_data(&data(&[
        ("cidr-global", "10.0.0.0/24,10.0.1.0/31,fd00::/126"),
        ("range-global", "10.9.0.1-10.9.0.5"),
        ("skip-end-ips-in-cidr", "true"),
        ("interface-global", "eth1"),
        ("allow-share-team-x", "true"),
        ("search-order", "asc"),
    ])));
    let g = &p.config.pools;
    assert_eq!(g.len(), 1, "range-global loses to cidr-global");
    assert_eq!(
        g[0].ranges,
        vec![
            range("10.0.0.1-10.0.0.254"),
            range("10.0.1.0/31"),
            range("fd00::/126")
        ]
    );
    assert_eq!(g[0].search_order, SearchOrder::Ascending);
    assert_eq!(
        p.warnings,
        vec![
            r#"data["interface-global"]: ignored: FerroLB announces each IP on the interface whose subnet holds it (l2.interfaces in the native format restricts the choice)"#,
            r#"data["range-global"]: ignored: kube-vip uses "cidr-global" instead of "range-global" when both are set, and so does FerroLB"#,
            r#"data["allow-share-team-x"]: ignored: there is no cidr-team-x or range-team-x pool to share"#,
        ]
    );
}

#[test]
fn kubevip_errors() {
    let e = errors(parse_config_map_data(&data(&[
        ("cidr-global", "0.0.0.0/32"),
        ("cidr-team-a", "10.0.0.0/33,10.0.1.0/24"),
        ("range-team-b", "10.0.1.5-10.0.1.9"),
        ("cidr-", "10.5.0.0/24"),
        ("cidr-Team_C", "10.6.0.0/24"),
        ("search-order", "random"),
        ("allow-share-global", "yes"),
    ])));
    assert_eq!(
        e,
        vec![
            r#"data["search-order"]: expected "asc" or "desc", found "random""#,
            r#"data["allow-share-global"]: expected "true" or "false", found "yes""#,
            r#"data["cidr-"]: missing namespace after "cidr-" (use cidr-<namespace> or cidr-global)"#,
            r#"pool "cidr-team-a": addresses[0]: invalid CIDR "10.0.0.0/33""#,
            r#"pool "cidr-global": addresses[0]: "0.0.0.0/32" is kube-vip's DHCP marker: DHCP addresses are not supported"#,
            r#"pool "cidr-Team_C": namespaces[0]: "Team_C" is not a valid namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"#,
        ]
    );
}

/// kube-vip-cloud-provider's README ("Multiple pools or ranges") writes overlapping entries in
/// one key, and its pools may overlap each other; kube-vip accepts all of it, and so must we.
#[test]
fn kubevip_readme_overlaps_are_accepted_as_unions() {
    let p = ok(parse_config_map_data(&data(&[(
        "cidr-global",
        "192.168.0.200/30,192.168.0.200/29",
    )])));
    assert_eq!(p.config.pools[0].ranges, vec![range("192.168.0.200/29")]);
    let p = ok(parse_config_map_data(&data(&[(
        "range-global",
        "192.168.0.10-192.168.0.11,192.168.0.10-192.168.0.13",
    )])));
    assert_eq!(
        p.config.pools[0].ranges,
        vec![range("192.168.0.10-192.168.0.13")]
    );
    // Touching entries join; separate ones stay apart, in address order.
    let p = ok(parse_config_map_data(&data(&[(
        "range-global",
        "10.0.0.20-10.0.0.29,10.0.0.1-10.0.0.9,10.0.0.10-10.0.0.12",
    )])));
    assert_eq!(
        p.config.pools[0].ranges,
        vec![range("10.0.0.1-10.0.0.12"), range("10.0.0.20-10.0.0.29")]
    );
    let p = ok(parse_config_map_data(&data(&[
        ("cidr-global", "192.168.0.200/29"),
        ("cidr-team-a", "192.168.0.200/30"),
        ("range-team-b", "192.168.0.203-192.168.0.205"),
    ])));
    let names: Vec<&str> = p.config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cidr-team-a", "range-team-b", "cidr-global"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// The kube-vip leniency must not leak into the formats that MetalLB defines as disjoint.
#[test]
fn overlaps_stay_errors_in_native_and_metallb_formats() {
    let e = errors(native(
        "pools:\n- name: a\n  addresses: [192.168.0.200/30, 192.168.0.200/29]\n",
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "a": addresses[1]: "192.168.0.200/29" overlaps "192.168.0.200/30" (addresses[0] of the same pool)"#
        ]
    );
    let e = errors(parse_config_map_data(&data(&[(
        "config",
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/29]\n- name: b\n  protocol: layer2\n  addresses: [10.0.0.4/30]\n",
    )])));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("overlaps"), "{e:?}");
}

// ---- detection and files ----

#[test]
fn empty_data_is_the_empty_config() {
    let p = ok(parse_config_map_data(&BTreeMap::new()));
    assert_eq!(p.config, Config::default());
    assert!(p.config.pools.is_empty());
    assert_eq!(ok(native("")).config, Config::default());
    assert_eq!(ok(native("# nothing yet\n")).config, Config::default());
}

#[test]
fn formats_are_detected_and_not_mixed() {
    assert_eq!(
        ok(metallb("address-pools: []\n")).config.format,
        ConfigFormat::MetalLbLegacy
    );
    let e = errors(parse_config_map_data(&data(&[
        ("config.yaml", "pools: []"),
        ("cidr-global", "10.0.0.0/24"),
        ("config", ""),
    ])));
    assert_eq!(
        e,
        vec![
            r#"data: keys from different config formats: "cidr-global" (kube-vip-cloud-provider), "config" (MetalLB legacy), "config.yaml" (native); use one format per ConfigMap"#
        ]
    );
    let e = errors(parse_config_map_data(&data(&[
        ("config.yml", "pools: []"),
        ("notes", "hi"),
    ])));
    assert_eq!(
        e,
        vec![
            r#"data["config.yml"]: unknown key (did you mean "config.yaml"?)"#,
            r#"data["notes"]: unknown key (expected "config.yaml", MetalLB's "config", or kube-vip keys such as "cidr-global")"#,
        ]
    );
}

#[test]
fn parse_file_reads_manifests_and_bare_configs() {
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ferrolb-config\n  namespace: ferrolb-system\ndata:\n  config.yaml: |\n{}",
        DESIGN_EXAMPLE
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let from_manifest = ok(parse_file(&manifest)).config;
    assert_eq!(from_manifest, ok(native(DESIGN_EXAMPLE)).config);
    assert_eq!(ok(parse_file(DESIGN_EXAMPLE)).config, from_manifest);

    let stream = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ferrolb-system}}\n---\n{manifest}"
    );
    assert_eq!(ok(parse_file(&stream)).config, from_manifest);

    let json = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubevip"},
                   "data": {"cidr-global": "10.0.0.0/24", "allow-share-global": "true"}}"#;
    let c = ok(parse_file(json)).config;
    assert_eq!(c.format, ConfigFormat::KubeVip);
    assert_eq!(
        c.pools[0].default_sharing_key.as_deref(),
        Some("kube-vip/allow-share-global")
    );

    assert_eq!(
        ok(parse_file(METALLB_V012)).config,
        ok(metallb(METALLB_V012)).config
    );
    assert_eq!(ok(parse_file("")).config, Config::default());
}

#[test]
fn parse_file_errors() {
    assert_eq!(
        errors(parse_file(
            "kind: ConfigMap\ndata:\n  allow-share-global: true\n  cidr-global: 10.0.0.0/24\n"
        )),
        vec![
            r#"data["allow-share-global"]: expected a string, found boolean true (quote it to make it a string)"#
        ]
    );
    assert_eq!(
        errors(parse_file("apiVersion: v1\nkind: Secret\n")),
        vec![r#"kind: expected ConfigMap, found string "Secret""#]
    );
    assert_eq!(
        errors(parse_file("pool:\n- name: x\n")),
        vec![
            r#"not a FerroLB config: expected a ConfigMap manifest, a native config (pools:, l2:) or a MetalLB config (address-pools:) ("pool": did you mean "pools"?)"#
        ]
    );
    assert_eq!(
        errors(parse_file("kind: Namespace\n---\nkind: Service\n")),
        vec!["several YAML documents but no ConfigMap among them"]
    );
    assert_eq!(errors(parse_file("a: [")).len(), 1);
}

#[test]
fn summary_is_readable() {
    let s = summary(&ok(native(DESIGN_EXAMPLE)).config);
    let expected = "\
format: native
pools: 1
  lan: IPv4 27 addresses, IPv6 2^64 addresses
    addresses: 192.168.1.240-192.168.1.250, 192.168.2.0/28, fd00:1::/64
    autoAssign: true, avoidBuggyIPs: false, order: lowest first
    namespaces: all, serviceSelector: any
l2:
  interfaces: any up interface whose subnet holds the IP
  excludeInterfaces: ^lo$, ^docker, ^veth, ^cali, ^cni, ^flannel, ^cilium, ^kube-ipvs
  nodeSelector: any
  garp: burst 5, interval 1100ms, refresh off
";
    assert_eq!(s, expected);
    let s = summary(&ok(parse_config_map_data(&kubevip_example())).config);
    assert!(s.contains("format: kube-vip-cloud-provider"), "{s}");
    assert!(s.contains("namespaces: team-a"), "{s}");
    assert!(
        s.contains("default sharing key: kube-vip/allow-share-team-a"),
        "{s}"
    );
    assert!(s.contains("order: highest first"), "{s}");
    assert!(summary(&Config::default()).contains("pools: none"));
}

// ---- robustness ----

fn interesting_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(NATIVE_KEY.to_string()),
        Just(METALLB_KEY.to_string()),
        Just("cidr-global".to_string()),
        Just("range-team-a".to_string()),
        Just("allow-share-global".to_string()),
        Just("skip-end-ips-in-cidr".to_string()),
        Just("search-order".to_string()),
        "[a-z-]{0,12}",
    ]
}

fn interesting_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(DESIGN_EXAMPLE.to_string()),
        Just(METALLB_V012.to_string()),
        "[0-9./:, -]{0,40}",
        "(pools|l2|address-pools|name|addresses|garp|burst|[:\\[\\]{}\\-, \n]|[0-9.]{1,4}){0,30}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parse_file_never_panics(text in any::<String>()) {
        let _ = parse_file(&text);
    }

    #[test]
    fn parse_file_never_panics_on_yamlish_text(text in interesting_value()) {
        let _ = parse_file(&text);
    }

    #[test]
    fn parse_data_never_panics(map in prop::collection::btree_map(interesting_key(), interesting_value(), 0..4)) {
        if let Err(e) = parse_config_map_data(&map) {
            prop_assert!(!e.0.is_empty(), "a rejected config must say why");
            for err in &e.0 {
                prop_assert!(!err.to_string().contains('\n'), "errors are one line: {err}");
            }
        }
    }
}
