//! Reads the native format's `bgp:` section and `pools[].announce`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::bgp::{
    self, Announce, BgpAdvertisement, BgpConfig, BgpPeer, NodeSelector, PeerPassword, Places,
};
use super::error::Report;
use super::walk::{self, describe, At};

const BGP: &[&str] = &["myASN", "routerID", "peers", "advertisements"];
const PEER: &[&str] = &[
    "name",
    "address",
    "asn",
    "port",
    "holdTime",
    "keepaliveTime",
    "sourceAddress",
    "password",
    "passwordSecret",
    "ebgpMultihop",
    "nodeSelector",
];
const SECRET: &[&str] = &["name", "key"];
const AD: &[&str] = &[
    "pools",
    "peers",
    "nodeSelector",
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
];

/// `announce: [l2]`, `[bgp]` or `[l2, bgp]`; absent = `[l2]`.
pub(super) fn announce(map: &Map<String, Value>, at: &At, report: &mut Report) -> Announce {
    if walk::get(map, "announce").is_none() {
        return Announce::default();
    }
    let items = walk::string_list(map, "announce", at, report);
    let mut a = Announce {
        l2: false,
        bgp: false,
    };
    for (i, s) in &items {
        let slot = match s.as_str() {
            "l2" => &mut a.l2,
            "bgp" => &mut a.bgp,
            other => {
                let hint = match other.to_ascii_lowercase().as_str() {
                    "layer2" | "arp" | "ndp" => " (did you mean \"l2\"?)",
                    _ => "",
                };
                at.key("announce").index(*i).error(
                    report,
                    format!("{other:?} is not a mode: expected \"l2\" or \"bgp\"{hint}"),
                );
                continue;
            }
        };
        if *slot {
            at.key("announce")
                .index(*i)
                .error(report, format!("{s:?} is listed twice"));
        }
        *slot = true;
    }
    if matches!(walk::get(map, "announce"), Some(Value::Array(v)) if v.is_empty()) {
        at.key("announce").error(report, "must list at least one mode (\"l2\", \"bgp\" or both); an IP nobody announces is unreachable");
    }
    a
}

/// The `bgp:` section.
pub(super) fn section(
    map: &Map<String, Value>,
    at: &At,
    report: &mut Report,
) -> (BgpConfig, Places) {
    let mut places = Places::default();
    walk::check_keys(map, BGP, at, report);
    let mut cfg = BgpConfig {
        my_asn: bgp::asn(map, "myASN", at, report),
        ..BgpConfig::default()
    };
    if let Some(v) = walk::get(map, "routerID") {
        if let Some(s) = walk::string(v, &at.key("routerID"), report) {
            if !s.is_empty() {
                match s.parse::<std::net::Ipv4Addr>() {
                    Ok(id) if id.is_unspecified() || id.is_multicast() || id.is_broadcast() => at
                        .key("routerID")
                        .error(report, format!("{id} cannot be a BGP identifier (use a unicast address, usually the node's own)")),
                    Ok(id) => cfg.router_id = Some(id),
                    Err(_) => at.key("routerID").error(report, format!("{s:?} is not an IPv4 address (a BGP identifier is 4 octets)")),
                }
            }
        }
    }
    for (i, item) in list(map, "peers", at, report).iter().enumerate() {
        if let Some(p) = peer(item, &at.key("peers").index(i), cfg.my_asn, report) {
            places.peers.push(if p.name.is_empty() {
                format!("bgp.peers[{i}]")
            } else {
                format!("bgp.peers[{:?}]", p.name)
            });
            cfg.peers.push(p);
        }
    }
    if !cfg.peers.is_empty() && cfg.my_asn.is_none() && walk::get(map, "myASN").is_none() {
        at.key("myASN")
            .error(report, "required once a peer is configured");
    }
    for (i, item) in list(map, "advertisements", at, report).iter().enumerate() {
        if let Some(a) = advertisement(item, &at.key("advertisements").index(i), report) {
            places.ads.push((None, format!("bgp.advertisements[{i}]")));
            cfg.advertisements.push(a);
        }
    }
    (cfg, places)
}

fn list<'v>(map: &'v Map<String, Value>, key: &str, at: &At, report: &mut Report) -> &'v [Value] {
    match walk::get(map, key) {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(other) => {
            at.key(key).error(
                report,
                format!("expected a list, found {}", describe(other)),
            );
            &[]
        }
    }
}

fn peer(item: &Value, origin: &At, my_asn: Option<u32>, report: &mut Report) -> Option<BgpPeer> {
    let map = walk::as_map(item, origin, report)?;
    let name = match walk::get(map, "name") {
        Some(v) => walk::string(v, &origin.key("name"), report).unwrap_or_default(),
        None => String::new(),
    };
    // Errors inside a named peer say which peer by name, like pools do.
    let at = if name.is_empty() {
        origin.clone()
    } else {
        At {
            pool: None,
            path: format!("bgp.peers[{name:?}]"),
        }
    };
    walk::check_keys(map, PEER, &at, report);
    if name.is_empty() && walk::get(map, "name").is_none() {
        at.key("name")
            .error(report, "missing (every peer needs a unique name)");
    }
    let address = bgp::ip(map, "address", &at, report);
    if address.is_none() && walk::get(map, "address").is_none() {
        at.key("address")
            .error(report, "missing (the router's IPv4 or IPv6 address)");
    }
    let asn = bgp::asn(map, "asn", &at, report);
    if asn.is_none() && walk::get(map, "asn").is_none() {
        at.key("asn")
            .error(report, "missing (the router's AS number)");
    }
    let port = bgp::number(map, "port", (1, 65535), &at, report).unwrap_or(179) as u16;
    let hold_time = bgp::timer(map, "holdTime", false, &at, report)
        .unwrap_or(std::time::Duration::from_secs(90));
    let keepalive_time = bgp::timer(map, "keepaliveTime", false, &at, report);
    let source_address = bgp::ip(map, "sourceAddress", &at, report);
    let inline = match walk::get(map, "password") {
        Some(v) => walk::string(v, &at.key("password"), report).filter(|s| !s.is_empty()),
        None => None,
    };
    let secret = match walk::get(map, "passwordSecret") {
        Some(v) => secret_ref(v, &at.key("passwordSecret"), report),
        None => None,
    };
    let password = match (inline, secret) {
        (Some(_), Some(_)) => {
            at.key("passwordSecret").error(
                report,
                "password and passwordSecret are mutually exclusive; set one",
            );
            None
        }
        (Some(p), None) => Some(PeerPassword::Inline(p)),
        (None, s) => s,
    };
    let ebgp_multihop = walk::bool_field(map, "ebgpMultihop", false, &at, report);
    let labels = walk::string_map(map, "nodeSelector", &at, report);
    let node_selectors = if labels.is_empty() {
        Vec::new()
    } else {
        vec![NodeSelector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }]
    };
    Some(BgpPeer {
        name,
        address: address?,
        asn: asn?,
        my_asn: my_asn.unwrap_or(0),
        port,
        hold_time,
        keepalive_time,
        source_address,
        password,
        ebgp_multihop,
        node_selectors,
        router_id: None,
    })
}

fn secret_ref(v: &Value, at: &At, report: &mut Report) -> Option<PeerPassword> {
    let map = walk::as_map(v, at, report)?;
    walk::check_keys(map, SECRET, at, report);
    let name = walk::get(map, "name")
        .and_then(|v| walk::string(v, &at.key("name"), report))
        .unwrap_or_default();
    let key = walk::get(map, "key")
        .and_then(|v| walk::string(v, &at.key("key"), report))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "password".to_string());
    if name.is_empty() {
        // `passwordSecret: {name: ""}` is the design's "unset" spelling.
        return None;
    }
    if let Err(why) = super::labels::check_namespace(&name) {
        at.key("name").error(report, format!("{name:?} is {why}"));
    }
    Some(PeerPassword::Secret { name, key })
}

fn advertisement(item: &Value, at: &At, report: &mut Report) -> Option<BgpAdvertisement> {
    let map = walk::as_map(item, at, report)?;
    walk::check_keys(map, AD, at, report);
    let mut ad = BgpAdvertisement {
        pools: walk::string_list(map, "pools", at, report)
            .into_iter()
            .map(|(_, s)| s)
            .collect(),
        peers: walk::string_list(map, "peers", at, report)
            .into_iter()
            .map(|(_, s)| s)
            .collect(),
        ..BgpAdvertisement::default()
    };
    let labels = walk::string_map(map, "nodeSelector", at, report);
    if !labels.is_empty() {
        ad.node_selectors = vec![NodeSelector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }];
    }
    if let Some(n) = bgp::number(map, "aggregationLength", (0, 32), at, report) {
        ad.aggregation_length = n as u8;
    }
    if let Some(n) = bgp::number(map, "aggregationLengthV6", (0, 128), at, report) {
        ad.aggregation_length_v6 = n as u8;
    }
    if let Some(n) = bgp::number(map, "localPref", (0, u64::from(u32::MAX)), at, report) {
        ad.local_pref = n as u32;
    }
    let no_aliases = BTreeMap::new();
    for (i, s) in walk::string_list(map, "communities", at, report) {
        bgp::community(
            &s,
            &no_aliases,
            &at.key("communities").index(i),
            report,
            &mut ad.communities,
            &mut ad.large_communities,
        );
    }
    bgp::dedup_communities(&mut ad, &at.key("communities"), report);
    Some(ad)
}
