//! MetalLB's legacy ConfigMap format (v0.12 and earlier, key `config`), layer 2 pools only.

use serde_json::{Map, Value};

use crate::pool::Pool;

use super::addresses::{self, HostBits};
use super::error::Report;
use super::validate::DraftPool;
use super::walk::{self, describe, At};
use super::{ConfigFormat, Draft};

/// Top-level keys of the format; BGP-only sections are recognised so they can be refused
/// with a reason instead of as unknown.
pub(super) const TOP_KEYS: &[&str] = &["address-pools", "peers", "bgp-communities", "bfd-profiles"];
const POOL: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];
const LAYER2_ONLY: &str = "FerroLB announces with layer 2 only";

/// Translates a MetalLB legacy config tree.
pub(super) fn parse(doc: &Value, report: &mut Report) -> Draft {
    let mut draft = Draft::empty(ConfigFormat::MetalLbLegacy);
    let root = At::root();
    if doc.is_null() {
        return draft;
    }
    let Some(map) = walk::as_map(doc, &root, report) else {
        return draft;
    };
    walk::check_keys(map, TOP_KEYS, &root, report);
    for key in ["peers", "bgp-communities", "bfd-profiles"] {
        if walk::get(map, key).is_some_and(not_empty) {
            root.key(key).error(
                report,
                format!("BGP settings are not supported: {LAYER2_ONLY}"),
            );
        }
    }
    match walk::get(map, "address-pools") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(p) = pool(item, &root.key("address-pools").index(i), report) {
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

fn pool(item: &Value, origin: &At, report: &mut Report) -> Option<DraftPool> {
    let map = walk::as_map(item, origin, report)?;
    let name = walk::pool_name(map, origin, report);
    let at = At::pool_or(&name, origin);
    walk::check_keys(map, POOL, &at, report);
    match walk::get(map, "protocol") {
        Some(Value::String(p)) if p == "layer2" => {}
        Some(Value::String(p)) => at.key("protocol").error(
            report,
            format!("protocol {p:?} is not supported: {LAYER2_ONLY}"),
        ),
        Some(other) => at.key("protocol").error(
            report,
            format!("expected \"layer2\", found {}", describe(other)),
        ),
        // MetalLB itself refuses a pool without a protocol.
        None => at
            .key("protocol")
            .error(report, "missing (FerroLB needs protocol: layer2)"),
    }
    if walk::get(map, "bgp-advertisements").is_some_and(not_empty) {
        at.key("bgp-advertisements").error(
            report,
            format!("BGP advertisements are not supported: {LAYER2_ONLY}"),
        );
    }
    let items = walk::string_list(map, "addresses", &at, report);
    let written = match walk::get(map, "addresses") {
        Some(Value::Array(a)) => a.len(),
        // Present but not a list: already reported as a type error, not as "no addresses".
        Some(_) => 1,
        None => 0,
    };
    let mut ranges = Vec::new();
    let mut sources = Vec::new();
    for (i, text) in items {
        let here = at.key("addresses").index(i);
        if let Some(r) =
            addresses::parse(&text, &here, HostBits::MaskWithWarning("MetalLB"), report)
        {
            ranges.push(r);
            sources.push((format!("addresses[{i}]"), text));
        }
    }
    let mut p = Pool::new(name.clone(), ranges);
    p.auto_assign = yaml11_bool(map, "auto-assign", true, &at, report);
    p.avoid_buggy_ips = yaml11_bool(map, "avoid-buggy-ips", false, &at, report);
    Some(DraftPool {
        pool: p,
        origin: origin.path.clone(),
        sources,
        written,
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
