//! BGP config: native `bgp:` and `pools[].announce`, MetalLB's legacy BGP keys, and the
//! errors operators will meet, with exact messages.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::bgp::{Community, LargeCommunity};

fn native(yaml: &str) -> Result<Parsed, ConfigErrors> {
    parse_config_map_data(&[(NATIVE_KEY.to_string(), yaml.to_string())].into())
}

fn metallb(yaml: &str) -> Result<Parsed, ConfigErrors> {
    parse_config_map_data(&[(METALLB_KEY.to_string(), yaml.to_string())].into())
}

fn ok(r: Result<Parsed, ConfigErrors>) -> Parsed {
    r.unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(r: Result<Parsed, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(p) => panic!("expected errors, got {p:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const NATIVE_BGP: &str = r#"
pools:
  - name: lan
    addresses: ["198.51.100.0/28"]
  - name: edge
    addresses: ["203.0.113.0/24", "2001:db8:100::/120"]
    announce: [bgp]
  - name: both
    addresses: ["192.0.2.0/28"]
    announce: [l2, bgp]
bgp:
  myASN: 4200000000
  routerID: 192.0.2.250
  peers:
    - name: tor1
      address: 192.0.2.1
      asn: 64513
      holdTime: 9s
      keepaliveTime: 3s
      password: s3cret
      nodeSelector: {rack: r1}
    - name: tor2
      address: 2001:db8::1
      asn: 4200000000
      port: 1179
      holdTime: 0s
      sourceAddress: 2001:db8::11
      passwordSecret: {name: bgp-auth}
  advertisements:
    - pools: [edge]
      peers: [tor2]
      aggregationLength: 24
      aggregationLengthV6: 120
      localPref: 150
      communities: ["64512:100", no-export, "large:4200000000:1:2"]
      nodeSelector: {bgp: "yes"}
    - pools: [both]
"#;

#[test]
fn native_bgp_reads_every_field() {
    let p = ok(native(NATIVE_BGP));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let c = p.config;
    assert_eq!(
        c.announce_of("lan"),
        Announce {
            l2: true,
            bgp: false
        }
    );
    assert_eq!(
        c.announce_of("edge"),
        Announce {
            l2: false,
            bgp: true
        }
    );
    assert_eq!(
        c.announce_of("both"),
        Announce {
            l2: true,
            bgp: true
        }
    );
    let b = &c.bgp;
    assert_eq!(b.my_asn, Some(4_200_000_000));
    assert_eq!(b.router_id, Some("192.0.2.250".parse().unwrap()));
    let tor1 = &b.peers[0];
    assert_eq!(tor1.name, "tor1");
    assert_eq!(tor1.address, "192.0.2.1".parse::<IpAddr>().unwrap());
    assert_eq!(
        (tor1.asn, tor1.my_asn, tor1.port),
        (64513, 4_200_000_000, 179)
    );
    assert_eq!(tor1.hold_time, Duration::from_secs(9));
    assert_eq!(tor1.keepalive_time, Some(Duration::from_secs(3)));
    assert_eq!(tor1.password, Some(PeerPassword::Inline("s3cret".into())));
    assert_eq!(
        tor1.node_selectors[0].match_labels,
        BTreeMap::from([("rack".to_string(), "r1".to_string())])
    );
    let tor2 = &b.peers[1];
    assert_eq!((tor2.port, tor2.hold_time), (1179, Duration::ZERO));
    assert_eq!(tor2.source_address, Some("2001:db8::11".parse().unwrap()));
    assert_eq!(
        tor2.password,
        Some(PeerPassword::Secret {
            name: "bgp-auth".into(),
            key: "password".into()
        })
    );
    let ad = &b.advertisements[0];
    assert_eq!(
        (
            ad.aggregation_length,
            ad.aggregation_length_v6,
            ad.local_pref
        ),
        (24, 120, 150)
    );
    assert_eq!(
        ad.communities,
        vec![Community(64512 << 16 | 100), Community::NO_EXPORT]
    );
    assert_eq!(
        ad.large_communities,
        vec![LargeCommunity(4_200_000_000, 1, 2)]
    );
    assert_eq!(b.advertisements[1].aggregation_length, 32);
}

#[test]
fn native_bgp_errors_name_object_and_field() {
    let e = errors(native(
        r#"
pools:
  - name: edge
    addresses: ["203.0.113.0/24"]
    announce: [bgp, layer2]
  - name: lan
    addresses: ["198.51.100.0/28"]
bgp:
  peers:
    - name: tor3
      address: 192.0.2.300
      asn: 0
    - name: tor1
      address: 192.0.2.1
      asn: 64513
    - name: tor1
      address: 192.0.2.2
      asn: 64513
      holdTime: 9s
      keepaliveTime: 10s
      password: x
      passwordSecret: {name: s}
      ebgpMultihop: true
      holdtime: 9s
  advertisements:
    - pools: [lan, nope]
      peers: [tor9]
      aggregationLength: 16
      communities: ["64512:100", "70000:1", "64512:100", "large:1:2"]
"#,
    ));
    assert_eq!(
        e,
        vec![
            r#"pool "edge": announce[1]: "layer2" is not a mode: expected "l2" or "bgp" (did you mean "l2"?)"#,
            r#"bgp.peers["tor3"].address: "192.0.2.300" is not an IPv4 or IPv6 address"#,
            r#"bgp.peers["tor3"].asn: expected an AS number from 1 to 4294967295, found number 0"#,
            r#"bgp.peers["tor1"].holdtime: unknown field (did you mean "holdTime"?)"#,
            r#"bgp.peers["tor1"].passwordSecret: password and passwordSecret are mutually exclusive; set one"#,
            r#"bgp.myASN: required once a peer is configured"#,
            r#"bgp.advertisements[0].communities[1]: "70000:1": "70000" must be a number from 0 to 65535"#,
            r#"bgp.advertisements[0].communities[3]: "large:1:2": a large community has three parts, large:A:B:C"#,
            r#"bgp.advertisements[0].communities: community 64512:100 is listed twice"#,
            r#"bgp.peers["tor1"].name: duplicate peer name "tor1": every peer needs a unique name"#,
            r#"bgp.peers["tor1"].keepaliveTime: 10s exceeds holdTime 9s"#,
            r#"bgp.advertisements[0].peers[0]: no peer is named "tor9""#,
            r#"bgp.advertisements[0].pools[0]: pool "lan" does not announce with bgp (add bgp to its announce list)"#,
            r#"bgp.advertisements[0].pools[1]: no pool is named "nope""#,
        ]
    );
}

#[test]
fn hold_time_and_aggregation_rules() {
    let e = errors(native(
        r#"
pools: [{name: edge, addresses: ["203.0.113.0/24", "2001:db8::/120"], announce: [bgp]}]
bgp:
  myASN: 64512
  peers: [{name: r, address: 192.0.2.1, asn: 64512, holdTime: 2s, ebgpMultihop: true}]
  advertisements: [{aggregationLength: 23, aggregationLengthV6: 112}]
"#,
    ));
    assert_eq!(
        e,
        vec![
            r#"bgp.peers["r"].holdTime: 2s is not allowed: use 0s (no keepalives) or at least 3s (RFC 4271)"#,
            r#"bgp.peers["r"].ebgpMultihop: only applies to eBGP, but asn equals myASN (iBGP)"#,
            r#"bgp.advertisements[0].aggregationLength: /23 is shorter than pool "edge"'s /24 block 203.0.113.0-203.0.113.255, so it would advertise addresses outside the pool"#,
            r#"bgp.advertisements[0].aggregationLengthV6: /112 is shorter than pool "edge"'s /120 block 2001:db8::-2001:db8::ff, so it would advertise addresses outside the pool"#,
        ]
    );
}

#[test]
fn bgp_pools_without_peers_warn() {
    let p = ok(native(
        "pools: [{name: e, addresses: [203.0.113.0/24], announce: [bgp]}]\n",
    ));
    assert_eq!(
        p.warnings,
        vec!["bgp.peers: pools announce with bgp but no peer is configured, so nothing is advertised"]
    );
}

const METALLB_BGP: &str = r#"
peers:
- peer-address: 192.0.2.1
  peer-asn: 64501
  my-asn: 64500
  hold-time: 120s
  keepalive-time: 30s
  router-id: 192.0.2.100
  password: yourPassword
  ebgp-multihop: true
  source-address: 192.0.2.10
  node-selectors:
  - match-labels: {kubernetes.io/hostname: prod-01}
    match-expressions:
    - {key: beta.kubernetes.io/arch, operator: In, values: [amd64, arm]}
- peer-address: 192.0.2.1
  peer-asn: 64501
  my-asn: 64500
  hold-time: 3.4s
bgp-communities:
  no-export: 65535:65281
  team: 64500:7
address-pools:
- name: bgp-space
  protocol: bgp
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [team, no-export]
  - aggregation-length: 24
- name: quiet
  protocol: bgp
  addresses: [203.0.113.0/28]
- name: l2
  protocol: layer2
  addresses: [192.0.2.128/28]
"#;

#[test]
fn metallb_bgp_translates_as_metallb_reads_it() {
    let p = ok(metallb(METALLB_BGP));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let c = p.config;
    assert_eq!(
        c.announce_of("bgp-space"),
        Announce {
            l2: false,
            bgp: true
        }
    );
    assert_eq!(
        c.announce_of("l2"),
        Announce {
            l2: true,
            bgp: false
        }
    );
    let b = &c.bgp;
    assert_eq!(b.my_asn, None);
    let p0 = &b.peers[0];
    assert_eq!(p0.name, "192.0.2.1");
    assert_eq!((p0.asn, p0.my_asn, p0.port), (64501, 64500, 179));
    assert_eq!(p0.hold_time, Duration::from_secs(120));
    assert_eq!(p0.keepalive_time, Some(Duration::from_secs(30)));
    assert_eq!(p0.router_id, Some("192.0.2.100".parse().unwrap()));
    assert!(p0.ebgp_multihop);
    let sel = &p0.node_selectors[0];
    assert_eq!(sel.match_expressions[0].operator, SelectorOp::In);
    let node: BTreeMap<String, String> = [
        ("kubernetes.io/hostname".to_string(), "prod-01".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "arm".to_string()),
    ]
    .into();
    assert!(selectors_match(&p0.node_selectors, &node));
    // Same address twice is allowed (different node selectors); hold time rounds like Go.
    assert_eq!(b.peers[1].name, "192.0.2.1#2");
    assert_eq!(b.peers[1].hold_time, Duration::from_secs(3));
    // Per-pool advertisements, plus MetalLB's default for a bgp pool without any.
    assert_eq!(b.advertisements.len(), 3);
    let a0 = &b.advertisements[0];
    assert_eq!(a0.pools, vec!["bgp-space".to_string()]);
    assert_eq!(a0.local_pref, 100);
    assert_eq!(
        a0.communities,
        vec![Community(64500 << 16 | 7), Community::NO_EXPORT]
    );
    assert_eq!(b.advertisements[1].aggregation_length, 24);
    assert_eq!(b.advertisements[2].pools, vec!["quiet".to_string()]);
    assert_eq!(b.advertisements[2].aggregation_length, 32);
}

#[test]
fn metallb_bgp_errors() {
    let e = errors(metallb(
        r#"
peers:
- peer-address: 192.0.2.1
  peer-asn: 64501
  bfdProfile: fast
  hold-time: 1s
bgp-communities: {bad: "1:2:3"}
address-pools:
- name: p
  protocol: bgp
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - {aggregation-length: 16, communities: [nope]}
  - {aggregation-length: 16, communities: [nope]}
- name: q
  protocol: layer2
  addresses: [203.0.113.0/28]
  bgp-advertisements: [{aggregation-length: 32}]
"#,
    ));
    assert_eq!(
        e,
        vec![
            "peers[0].bfdProfile: MetalLB reads this key as bfd-profile (its example config misspells it, and MetalLB itself rejects bfdProfile); either way, BFD is not supported by FerroLB (a dead peer is detected by the BGP hold timer; lower hold-time instead)",
            "peers[0].my-asn: missing (this cluster's AS number)",
            r#"bgp-communities.bad: "1:2:3": "2:3" must be a number from 0 to 65535"#,
            r#"pool "p": bgp-advertisements[0].communities[0]: "nope" is not a community: expected "AA:NN", "large:A:B:C" or a well-known name such as no-export"#,
            r#"pool "p": bgp-advertisements[1].communities[0]: "nope" is not a community: expected "AA:NN", "large:A:B:C" or a well-known name such as no-export"#,
            r#"pool "p": bgp-advertisements[1]: duplicate of bgp-advertisements[0]"#,
            r#"pool "q": bgp-advertisements: only allowed on a pool with protocol: bgp (MetalLB refuses it on layer2 pools too)"#,
            r#"pool "p": bgp-advertisements[0].aggregation-length: /16 is shorter than pool "p"'s /24 block 198.51.100.0-198.51.100.255, so it would advertise addresses outside the pool"#,
        ]
    );
}

#[test]
fn summary_shows_peers_advertisements_and_modes() {
    let s = summary(&ok(native(NATIVE_BGP)).config);
    for want in [
        "  edge: ",
        "    announce: bgp",
        "    announce: l2, bgp",
        "bgp:\n  pools announced with bgp: edge, both\n  myASN: 4200000000\n  routerID: 192.0.2.250\n  peers: 2\n",
        "    tor1: 192.0.2.1:179 AS 64513 (eBGP, local AS 4200000000), hold 9s, keepalive 3s\n      TCP MD5 (inline password), nodes: rack=r1\n",
        "    tor2: [2001:db8::1]:1179 AS 4200000000 (iBGP, local AS 4200000000), hold 0s, keepalive 0s\n      source 2001:db8::11, TCP MD5 (Secret bgp-auth, key password), nodes: any\n",
        "    pools: edge; peers: tor2; nodes: bgp=yes; /24 and /120; localPref: 150 (iBGP only); communities: 64512:100 65535:65281 large:4200000000:1:2\n",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    // The password itself is never printed.
    assert!(!s.contains("s3cret"), "{s}");
}

#[test]
fn announce_of_ip_follows_the_pool_holding_the_ip_then_the_hint() {
    let c = ok(native(NATIVE_BGP)).config;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // By range, whatever the annotation says (a stale hint after a config edit loses).
    assert!(c.announce_of_ip(&ip("203.0.113.7"), Some("lan")).bgp);
    assert!(!c.announce_of_ip(&ip("203.0.113.7"), None).l2);
    assert!(c.announce_of_ip(&ip("2001:db8:100::5"), None).bgp);
    assert_eq!(
        c.announce_of_ip(&ip("192.0.2.3"), None),
        Announce {
            l2: true,
            bgp: true
        }
    );
    // Kept outside every pool: the pool it came from decides; unknown: the default, l2 only.
    assert!(c.announce_of_ip(&ip("10.1.2.3"), Some("edge")).bgp);
    assert!(!c.announce_of_ip(&ip("10.1.2.3"), Some("edge")).l2);
    assert_eq!(c.announce_of_ip(&ip("10.1.2.3"), None), Announce::default());
    assert_eq!(
        c.pool_of_ip(&ip("198.51.100.3")).map(|p| p.name.as_str()),
        Some("lan")
    );
}
