//! MetalLB's legacy ConfigMap format (v0.12 and earlier, key `config`): layer 2 and BGP pools.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::pool::Pool;

use super::addresses::{self, HostBits};
use super::bgp::Announce;
use super::error::Report;
use super::validate::DraftPool;
use super::walk::{self, describe, At};
use super::{ConfigFormat, Draft};

/// Top-level keys of the format; `bfd-profiles` is recognised so it can be refused with a
/// reason instead of as unknown.
pub(super) const TOP_KEYS: &[&str] = &["address-pools", "peers", "bgp-communities", "bfd-profiles"];
const POOL: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];

/// Translates a MetalLB legacy config tree.
pub(super) fn parse(doc: &Value, report: &mut Report) -> Draft {
    let mut draft = Draft::empty(ConfigFormat::MetalLbLegacy);
    draft.bgp_places.metallb = true;
    let root = At::root();
    if doc.is_null() {
        return draft;
    }
    let Some(map) = walk::as_map(doc, &root, report) else {
        return draft;
    };
    walk::check_keys(map, TOP_KEYS, &root, report);
    if walk::get(map, "bfd-profiles").is_some_and(not_empty) {
        root.key("bfd-profiles").error(
            report,
            "BFD is not supported by FerroLB (a dead peer is detected by the BGP hold timer; lower hold-time instead)",
        );
    }
    match walk::get(map, "peers") {
        None => {}
        Some(Value::Array(items)) => {
            for (peer, path) in super::bgp_metallb::peers(items, report) {
                draft.bgp_places.peers.push(path);
                draft.bgp.peers.push(peer);
            }
        }
        Some(other) => root.key("peers").error(
            report,
            format!("expected a list, found {}", describe(other)),
        ),
    }
    let aliases = walk::get(map, "bgp-communities")
        .map(|v| super::bgp_metallb::communities(v, report))
        .unwrap_or_default();
    match walk::get(map, "address-pools") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(p) = pool(
                    item,
                    &root.key("address-pools").index(i),
                    &aliases,
                    &mut draft,
                    report,
                ) {
                    draft.pools.push(p);
                }
            }
        }
        Some(other) => root.key("address-pools").error(
            report,
            format!("expected a list, found {}", describe(other)),
        ),
    }
    draft
}

fn not_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        Value::Null => false,
        _ => true,
    }
}

fn pool(
    item: &Value,
    origin: &At,
    aliases: &BTreeMap<String, String>,
    draft: &mut Draft,
    report: &mut Report,
) -> Option<DraftPool> {
    let map = walk::as_map(item, origin, report)?;
    let name = walk::pool_name(map, origin, report);
    let at = At::pool_or(&name, origin);
    walk::check_keys(map, POOL, &at, report);
    let bgp = match walk::get(map, "protocol") {
        Some(Value::String(p)) if p == "layer2" => false,
        Some(Value::String(p)) if p == "bgp" => true,
        Some(Value::String(p)) => {
            at.key("protocol").error(
                report,
                format!("protocol {p:?} is not supported: expected \"layer2\" or \"bgp\""),
            );
            false
        }
        Some(other) => {
            at.key("protocol").error(
                report,
                format!("expected \"layer2\" or \"bgp\", found {}", describe(other)),
            );
            false
        }
        // MetalLB itself refuses a pool without a protocol.
        None => {
            at.key("protocol").error(
                report,
                "missing (MetalLB and FerroLB need protocol: layer2 or bgp)",
            );
            false
        }
    };
    if bgp {
        draft.announce.insert(
            name.clone(),
            Announce {
                l2: false,
                bgp: true,
            },
        );
        for (ad, path) in super::bgp_metallb::advertisements(&name, map, aliases, &at, report) {
            draft.bgp_places.ads.push((Some(name.clone()), path));
            draft.bgp.advertisements.push(ad);
        }
    } else if walk::get(map, "bgp-advertisements").is_some_and(not_empty) {
        at.key("bgp-advertisements").error(
            report,
            "only allowed on a pool with protocol: bgp (MetalLB refuses it on layer2 pools too)",
        );
    }
    let list = addresses::parse_list(map, &at, HostBits::MaskWithWarning("MetalLB"), report);
    let mut p = Pool::new(name.clone(), list.ranges);
    p.auto_assign = yaml11_bool(map, "auto-assign", true, &at, report);
    p.avoid_buggy_ips = yaml11_bool(map, "avoid-buggy-ips", false, &at, report);
    Some(DraftPool {
        pool: p,
        origin: origin.path.clone(),
        sources: list.sources,
        written: list.written,
    })
}

/// MetalLB read its config with a YAML 1.1 parser, so `auto-assign: no` meant false there and
/// must mean false here too, or a migrated pool would silently start auto-assigning.
fn yaml11_bool(
    map: &Map<String, Value>,
    key: &str,
    default: bool,
    at: &At,
    report: &mut Report,
) -> bool {
    if let Some(Value::String(s)) = walk::get(map, key) {
        match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" => return true,
            "n" | "no" | "off" => return false,
            _ => {}
        }
    }
    walk::bool_field(map, key, default, at, report)
}
