//! FerroLB's own format (the `config.yaml` key), as specified in the design.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::pool::Pool;

use super::addresses::{self, HostBits};
use super::bgp::Announce;
use super::error::Report;
use super::l2::{self, GarpPolicy, L2Config, RegexList};
use super::validate::DraftPool;
use super::walk::{self, describe, At};
use super::{ConfigFormat, Draft};

const TOP: &[&str] = &["pools", "l2", "bgp"];
const POOL: &[&str] = &[
    "name",
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "namespaces",
    "serviceSelector",
    "announce",
];
const L2: &[&str] = &["interfaces", "excludeInterfaces", "nodeSelector", "garp"];
const GARP: &[&str] = &["burst", "interval", "refresh"];

/// Translates a native config tree; an empty document is the empty config.
pub(super) fn parse(doc: &Value, report: &mut Report) -> Draft {
    let mut draft = Draft::empty(ConfigFormat::Native);
    let root = At::root();
    if doc.is_null() {
        return draft;
    }
    let Some(map) = walk::as_map(doc, &root, report) else {
        return draft;
    };
    walk::check_keys(map, TOP, &root, report);
    if let Some(v) = walk::get(map, "pools") {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some((p, a)) = pool(item, &root.key("pools").index(i), report) {
                        draft.announce.insert(p.pool.name.clone(), a);
                        draft.pools.push(p);
                    }
                }
            }
            other => root.key("pools").error(
                report,
                format!("expected a list, found {}", describe(other)),
            ),
        }
    }
    if let Some(v) = walk::get(map, "l2") {
        if let Some(m) = walk::as_map(v, &root.key("l2"), report) {
            draft.l2 = l2_section(m, &root.key("l2"), report);
        }
    }
    if let Some(v) = walk::get(map, "bgp") {
        if let Some(m) = walk::as_map(v, &root.key("bgp"), report) {
            let (bgp, places) = super::bgp_native::section(m, &root.key("bgp"), report);
            draft.bgp = bgp;
            draft.bgp_places = places;
        }
    }
    draft
}

fn pool(item: &Value, origin: &At, report: &mut Report) -> Option<(DraftPool, Announce)> {
    let map = walk::as_map(item, origin, report)?;
    let name = walk::pool_name(map, origin, report);
    let at = At::pool_or(&name, origin);
    walk::check_keys(map, POOL, &at, report);
    let list = addresses::parse_list(map, &at, HostBits::Reject, report);
    let mut p = Pool::new(name.clone(), list.ranges);
    p.auto_assign = walk::bool_field(map, "autoAssign", true, &at, report);
    p.avoid_buggy_ips = walk::bool_field(map, "avoidBuggyIPs", false, &at, report);
    p.namespaces = walk::string_list(map, "namespaces", &at, report)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    p.service_selector = walk::string_map(map, "serviceSelector", &at, report);
    let announce = super::bgp_native::announce(map, &at, report);
    Some((
        DraftPool {
            pool: p,
            origin: origin.path.clone(),
            sources: list.sources,
            written: list.written,
        },
        announce,
    ))
}

fn l2_section(map: &Map<String, Value>, at: &At, report: &mut Report) -> L2Config {
    walk::check_keys(map, L2, at, report);
    let mut l2 = L2Config::default();
    if let Some(list) = regexes(map, "interfaces", at, report) {
        for p in list.sources() {
            if p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                at.key("interfaces").warn(
                    report,
                    format!("{p:?} is a regex, so it also matches names that merely contain it; write \"^{p}$\" to match that interface alone"),
                );
            }
        }
        l2.interfaces = list;
    }
    if walk::get(map, "excludeInterfaces").is_some() {
        l2.exclude_interfaces =
            regexes(map, "excludeInterfaces", at, report).unwrap_or_else(l2::default_excludes);
    }
    l2.node_selector = walk::string_map(map, "nodeSelector", at, report);
    if let Some(v) = walk::get(map, "garp") {
        if let Some(m) = walk::as_map(v, &at.key("garp"), report) {
            l2.garp = garp(m, &at.key("garp"), report);
        }
    }
    l2
}

/// A list of regexes; `None` (after reporting every bad one) if any is invalid.
fn regexes(map: &Map<String, Value>, key: &str, at: &At, report: &mut Report) -> Option<RegexList> {
    let items = walk::string_list(map, key, at, report);
    let sources: Vec<String> = items.iter().map(|(_, s)| s.clone()).collect();
    match RegexList::new(sources) {
        Ok(list) => Some(list),
        Err((_, set_error)) => {
            // Rare, so re-checking one by one to name every bad pattern costs nothing.
            let mut named = false;
            for (i, src) in &items {
                if let Err((_, why)) = RegexList::new(vec![src.clone()]) {
                    at.key(key)
                        .index(*i)
                        .error(report, format!("invalid regex {src:?}: {why}"));
                    named = true;
                }
            }
            if !named {
                // Each pattern is fine alone but together they exceed the size limit.
                at.key(key)
                    .error(report, format!("invalid regex list: {set_error}"));
            }
            None
        }
    }
}

fn garp(map: &Map<String, Value>, at: &At, report: &mut Report) -> GarpPolicy {
    walk::check_keys(map, GARP, at, report);
    let mut g = GarpPolicy::default();
    match walk::get(map, "burst") {
        None => {}
        Some(v) => match v.as_u64().map(u32::try_from) {
            Some(Ok(n)) => g.burst = n,
            _ => at.key("burst").error(
                report,
                format!(
                    "expected a whole number from 0 to {}, found {}",
                    u32::MAX,
                    describe(v)
                ),
            ),
        },
    }
    if let Some(d) = duration(map, "interval", at, report) {
        g.interval = d;
    }
    if let Some(d) = duration(map, "refresh", at, report) {
        g.refresh = d;
    }
    g
}

fn duration(map: &Map<String, Value>, key: &str, at: &At, report: &mut Report) -> Option<Duration> {
    let at = at.key(key);
    match walk::get(map, key)? {
        Value::String(s) => match super::duration::parse(s) {
            Ok(d) => Some(d),
            Err(why) => {
                at.error(report, format!("invalid duration {s:?}: {why}"));
                None
            }
        },
        // A bare 0 is unambiguous, any other bare number is not (seconds? milliseconds?).
        Value::Number(n) if n.as_u64() == Some(0) => Some(Duration::ZERO),
        Value::Number(n) => {
            at.error(
                report,
                format!("expected a duration with a unit, found number {n} (did you mean \"{n}s\" or \"{n}ms\"?)"),
            );
            None
        }
        other => {
            at.error(
                report,
                format!(
                    "expected a duration such as \"1100ms\" or \"2s\", found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}
