//! Reads MetalLB's legacy BGP keys (`peers:`, `bgp-communities:`, a pool's `protocol: bgp` and
//! `bgp-advertisements:`) the way MetalLB v0.12 reads them, so an existing ConfigMap keeps its
//! meaning. What FerroLB does not do (BFD) stays an error that names the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::bgp::{
    self, BgpAdvertisement, BgpPeer, NodeSelector, PeerPassword, SelectorOp, SelectorRequirement,
};
use super::error::Report;
use super::walk::{self, describe, At};

const PEER: &[&str] = &[
    "peer-address",
    "peer-asn",
    "my-asn",
    "peer-port",
    "source-address",
    "hold-time",
    "keepalive-time",
    "router-id",
    "password",
    "bfd-profile",
    "ebgp-multihop",
    "node-selectors",
];
const SELECTOR: &[&str] = &["match-labels", "match-expressions"];
const EXPRESSION: &[&str] = &["key", "operator", "values"];
const AD: &[&str] = &[
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
];
const NO_BFD: &str = "BFD is not supported by FerroLB (a dead peer is detected by the BGP hold timer; lower hold-time instead)";

/// `peers:`; names are the peer address (with `#N` on the second and later peers sharing
/// one, which MetalLB allows under different node selectors).
pub(super) fn peers(items: &[Value], report: &mut Report) -> Vec<(BgpPeer, String)> {
    let root = At::root().key("peers");
    let mut out: Vec<(BgpPeer, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = root.index(i);
        let Some(map) = walk::as_map(item, &at, report) else {
            continue;
        };
        let mut allowed = PEER.to_vec();
        allowed.push("bfdProfile");
        walk::check_keys(map, &allowed, &at, report);
        if walk::get(map, "bfdProfile").is_some() {
            at.key("bfdProfile").error(
                report,
                format!("MetalLB reads this key as bfd-profile (its example config misspells it, and MetalLB itself rejects bfdProfile); either way, {NO_BFD}"),
            );
        }
        if walk::get(map, "bfd-profile").is_some_and(|v| v.as_str() != Some("")) {
            at.key("bfd-profile").error(report, NO_BFD);
        }
        let required = |key: &str, what: &str, report: &mut Report| {
            if walk::get(map, key).is_none() {
                at.key(key).error(report, format!("missing ({what})"));
            }
        };
        required("peer-address", "the router's address", report);
        required("peer-asn", "the router's AS number", report);
        required("my-asn", "this cluster's AS number", report);
        let address = bgp::ip(map, "peer-address", &at, report);
        let asn = bgp::asn(map, "peer-asn", &at, report);
        let my_asn = bgp::asn(map, "my-asn", &at, report);
        let port = bgp::number(map, "peer-port", (1, 65535), &at, report).unwrap_or(179) as u16;
        let hold_time =
            bgp::timer(map, "hold-time", true, &at, report).unwrap_or(Duration::from_secs(90));
        let keepalive_time = bgp::timer(map, "keepalive-time", true, &at, report);
        let source_address = bgp::ip(map, "source-address", &at, report);
        let router_id = match bgp::ip(map, "router-id", &at, report) {
            Some(std::net::IpAddr::V4(a)) => Some(a),
            Some(other) => {
                at.key("router-id").error(
                    report,
                    format!("{other} is not an IPv4 address (a BGP identifier is 4 octets)"),
                );
                None
            }
            None => None,
        };
        let password = match walk::get(map, "password") {
            Some(v) => walk::string(v, &at.key("password"), report)
                .filter(|s| !s.is_empty())
                .map(PeerPassword::Inline),
            None => None,
        };
        let ebgp_multihop = walk::bool_field(map, "ebgp-multihop", false, &at, report);
        let node_selectors = match walk::get(map, "node-selectors") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .filter_map(|(j, s)| selector(s, &at.key("node-selectors").index(j), report))
                .collect(),
            Some(other) => {
                at.key("node-selectors").error(
                    report,
                    format!("expected a list, found {}", describe(other)),
                );
                Vec::new()
            }
        };
        let (Some(address), Some(asn), Some(my_asn)) = (address, asn, my_asn) else {
            continue;
        };
        let same = out.iter().filter(|(p, _)| p.address == address).count();
        let name = if same == 0 {
            address.to_string()
        } else {
            format!("{address}#{}", same + 1)
        };
        let peer = BgpPeer {
            name,
            address,
            asn,
            my_asn,
            port,
            hold_time,
            keepalive_time,
            source_address,
            password,
            ebgp_multihop,
            node_selectors,
            router_id,
        };
        out.push((peer, at.path.clone()));
    }
    out
}

fn selector(v: &Value, at: &At, report: &mut Report) -> Option<NodeSelector> {
    let map = walk::as_map(v, at, report)?;
    walk::check_keys(map, SELECTOR, at, report);
    let mut s = NodeSelector {
        match_labels: walk::string_map(map, "match-labels", at, report),
        match_expressions: Vec::new(),
    };
    if let Some(v) = walk::get(map, "match-expressions") {
        let Value::Array(list) = v else {
            at.key("match-expressions")
                .error(report, format!("expected a list, found {}", describe(v)));
            return Some(s);
        };
        for (i, e) in list.iter().enumerate() {
            let here = at.key("match-expressions").index(i);
            let Some(m) = walk::as_map(e, &here, report) else {
                continue;
            };
            walk::check_keys(m, EXPRESSION, &here, report);
            let key = walk::get(m, "key").and_then(|v| walk::string(v, &here.key("key"), report));
            let op = walk::get(m, "operator")
                .and_then(|v| walk::string(v, &here.key("operator"), report));
            let values: Vec<String> = walk::string_list(m, "values", &here, report)
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            let operator = match op.as_deref() {
                Some("In") => SelectorOp::In,
                Some("NotIn") => SelectorOp::NotIn,
                Some("Exists") => SelectorOp::Exists,
                Some("DoesNotExist") => SelectorOp::DoesNotExist,
                Some(other) => {
                    here.key("operator").error(report, format!("{other:?} is not an operator: expected In, NotIn, Exists or DoesNotExist"));
                    continue;
                }
                None => {
                    here.key("operator").error(report, "missing");
                    continue;
                }
            };
            let Some(key) = key else {
                here.key("key").error(report, "missing");
                continue;
            };
            let needs_values = matches!(operator, SelectorOp::In | SelectorOp::NotIn);
            if needs_values == values.is_empty() {
                here.key("values").error(
                    report,
                    if needs_values {
                        "In and NotIn need at least one value"
                    } else {
                        "Exists and DoesNotExist take no values"
                    },
                );
            }
            s.match_expressions.push(SelectorRequirement {
                key,
                operator,
                values,
            });
        }
    }
    Some(s)
}

/// `bgp-communities:`, alias → `AA:NN`.
pub(super) fn communities(v: &Value, report: &mut Report) -> BTreeMap<String, String> {
    let at = At::root().key("bgp-communities");
    let Some(map) = walk::as_map(v, &at, report) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let Some(s) = walk::string(v, &at.key(k), report) else {
            continue;
        };
        match s.parse::<crate::bgp::Community>() {
            Ok(_) => {
                out.insert(k.clone(), s);
            }
            Err(why) => at.key(k).error(report, why),
        }
    }
    out
}

/// A pool's `bgp-advertisements:`; none means MetalLB's default (/32, /128, no attributes).
pub(super) fn advertisements(
    pool: &str,
    map: &Map<String, Value>,
    aliases: &BTreeMap<String, String>,
    at: &At,
    report: &mut Report,
) -> Vec<(BgpAdvertisement, String)> {
    let base = BgpAdvertisement {
        pools: vec![pool.to_string()],
        ..BgpAdvertisement::default()
    };
    let items = match walk::get(map, "bgp-advertisements") {
        None => return vec![(base, "bgp-advertisements (default)".to_string())],
        Some(Value::Array(items)) if items.is_empty() => {
            return vec![(base, "bgp-advertisements (default)".to_string())]
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            at.key("bgp-advertisements").error(
                report,
                format!("expected a list, found {}", describe(other)),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<(BgpAdvertisement, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = at.key("bgp-advertisements").index(i);
        let Some(m) = walk::as_map(item, &here, report) else {
            continue;
        };
        walk::check_keys(m, AD, &here, report);
        let mut ad = base.clone();
        if let Some(n) = bgp::number(m, "aggregation-length", (0, 32), &here, report) {
            ad.aggregation_length = n as u8;
        }
        if let Some(n) = bgp::number(m, "aggregation-length-v6", (0, 128), &here, report) {
            ad.aggregation_length_v6 = n as u8;
        }
        if let Some(n) = bgp::number(m, "localpref", (0, u64::from(u32::MAX)), &here, report) {
            ad.local_pref = n as u32;
        }
        for (j, s) in walk::string_list(m, "communities", &here, report) {
            bgp::community(
                &s,
                aliases,
                &here.key("communities").index(j),
                report,
                &mut ad.communities,
                &mut ad.large_communities,
            );
        }
        bgp::dedup_communities(&mut ad, &here.key("communities"), report);
        if let Some((_, first)) = out.iter().find(|(o, _)| *o == ad) {
            here.error(report, format!("duplicate of {first}"));
            continue;
        }
        out.push((ad, here.path.clone()));
    }
    out
}
