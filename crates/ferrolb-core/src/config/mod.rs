//! Pool configuration: the native format, MetalLB's legacy ConfigMap and
//! kube-vip-cloud-provider's keys, all parsed into one [`Config`] and validated completely.
//!
//! Parsing goes text → generic YAML tree → typed model by hand (see `walk`), so that every
//! unknown key and wrong type is reported with its exact path, and every problem in a config is
//! reported at once. Nothing here panics on input: a bad config is a list of [`ConfigError`]s.

#![warn(missing_docs)]

mod addresses;
mod bgp;
mod bgp_metallb;
mod bgp_native;
pub mod duration;
mod error;
mod kubevip;
mod l2;
mod labels;
mod metallb;
mod native;
mod summary;
mod validate;
mod walk;
mod yaml;

#[cfg(test)]
mod bgp_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::pool::Pool;

pub use bgp::{
    selectors_match, Announce, BgpAdvertisement, BgpConfig, BgpPeer, NodeSelector, PeerPassword,
    SelectorOp, SelectorRequirement,
};
pub use error::{ConfigError, ConfigErrors};
pub use l2::{GarpPolicy, L2Config, RegexList, DEFAULT_EXCLUDE_INTERFACES};
pub use summary::summary;

use error::Report;
use validate::DraftPool;
use walk::{describe, At};

/// The ConfigMap key holding the native format.
pub const NATIVE_KEY: &str = "config.yaml";
/// The ConfigMap key holding MetalLB's legacy format.
pub const METALLB_KEY: &str = "config";

/// A validated configuration: what the controller allocates from and the speaker announces by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Pools in the order they were written (for kube-vip: namespace pools first, then global).
    pub pools: Vec<Pool>,
    /// Announcement settings.
    pub l2: L2Config,
    /// Which format the config was written in, so logs and `check-config` can say so.
    pub format: ConfigFormat,
    /// BGP peers and advertisements.
    pub bgp: BgpConfig,
    /// How each pool is announced, by pool name; pools not listed use the default (`[l2]`).
    pub announce: BTreeMap<String, Announce>,
}

impl Config {
    /// How the named pool's IPs are announced.
    pub fn announce_of(&self, pool: &str) -> Announce {
        self.announce.get(pool).copied().unwrap_or_default()
    }

    /// The pool whose ranges hold `ip`, if any (pools never overlap outside the kube-vip
    /// format; there the first one in config order is taken).
    pub fn pool_of_ip(&self, ip: &std::net::IpAddr) -> Option<&Pool> {
        self.pools
            .iter()
            .find(|p| p.ranges.iter().any(|r| r.contains(ip)))
    }

    /// How a Service IP is announced: by the pool whose ranges hold it in the config in force;
    /// for an IP kept outside every pool, by the pool it was allocated from (`hint`, the
    /// `ferrolb.io/allocated-from-pool` annotation); otherwise the default (`[l2]`), which is
    /// what such an IP got before `announce` existed.
    pub fn announce_of_ip(&self, ip: &std::net::IpAddr, hint: Option<&str>) -> Announce {
        match (self.pool_of_ip(ip), hint) {
            (Some(pool), _) => self.announce_of(&pool.name),
            (None, Some(name)) => self.announce_of(name),
            (None, None) => Announce::default(),
        }
    }
}

/// The config formats FerroLB reads, so users of MetalLB and kube-vip can switch without
/// rewriting their config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigFormat {
    /// FerroLB's own format, key `config.yaml`.
    #[default]
    Native,
    /// MetalLB ≤ v0.12, key `config` with `address-pools:`.
    MetalLbLegacy,
    /// kube-vip-cloud-provider's `cidr-*`/`range-*` keys.
    KubeVip,
}

impl std::fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigFormat::Native => "native",
            ConfigFormat::MetalLbLegacy => "MetalLB legacy",
            ConfigFormat::KubeVip => "kube-vip-cloud-provider",
        })
    }
}

/// A config that passed validation, with the things worth telling the operator about even
/// though they are not errors (ignored kube-vip keys, masked CIDRs, a GARP burst of 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The config to put in force.
    pub config: Config,
    /// One line each, formatted like errors.
    pub warnings: Vec<String>,
}

/// Parses a ConfigMap's `data`, detecting the format from its keys. This is what the controller
/// and the speaker call on every ConfigMap change.
pub fn parse_config_map_data(data: &BTreeMap<String, String>) -> Result<Parsed, ConfigErrors> {
    let mut report = Report::default();
    let draft = from_data(data, &mut report);
    finish(draft, report)
}

/// Parses the file given to `ferrolb check-config`: a ConfigMap manifest (YAML or JSON, one
/// document or a stream holding exactly one ConfigMap), or a bare native or MetalLB config.
pub fn parse_file(text: &str) -> Result<Parsed, ConfigErrors> {
    let mut report = Report::default();
    let draft = match yaml::documents(text) {
        Ok(docs) => from_documents(docs, &mut report),
        Err(e) => {
            report.error(None, "", e);
            None
        }
    };
    finish(draft, report)
}

/// A config translated from its format but not yet cross-checked.
struct Draft {
    format: ConfigFormat,
    pools: Vec<DraftPool>,
    l2: L2Config,
    bgp: BgpConfig,
    bgp_places: bgp::Places,
    announce: BTreeMap<String, Announce>,
}

impl Draft {
    fn empty(format: ConfigFormat) -> Self {
        Self {
            format,
            pools: Vec::new(),
            l2: L2Config::default(),
            bgp: BgpConfig::default(),
            bgp_places: bgp::Places::default(),
            announce: BTreeMap::new(),
        }
    }
}

fn finish(draft: Option<Draft>, mut report: Report) -> Result<Parsed, ConfigErrors> {
    if let Some(d) = &draft {
        validate::pools(&d.pools, d.format == ConfigFormat::KubeVip, &mut report);
        validate::l2(&d.l2, &mut report);
        bgp::check(&d.bgp, &d.pools, &d.announce, &d.bgp_places, &mut report);
    }
    match draft {
        Some(d) if report.errors.is_empty() => Ok(Parsed {
            config: Config {
                pools: d.pools.into_iter().map(|p| p.pool).collect(),
                l2: d.l2,
                format: d.format,
                bgp: d.bgp,
                announce: d.announce,
            },
            warnings: report.warnings,
        }),
        // A draft of `None` always comes with an error recorded.
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Which format a ConfigMap data key belongs to.
fn key_format(key: &str) -> Option<ConfigFormat> {
    match key {
        NATIVE_KEY => Some(ConfigFormat::Native),
        METALLB_KEY => Some(ConfigFormat::MetalLbLegacy),
        k if kubevip::is_key(k) => Some(ConfigFormat::KubeVip),
        _ => None,
    }
}

fn from_data(data: &BTreeMap<String, String>, report: &mut Report) -> Option<Draft> {
    let mut found: Vec<(ConfigFormat, &str)> = Vec::new();
    for key in data.keys() {
        match key_format(key) {
            Some(f) => {
                if !found.iter().any(|(g, _)| *g == f) {
                    found.push((f, key));
                }
            }
            None => {
                let hint = walk::did_you_mean(key, [NATIVE_KEY, METALLB_KEY, "cidr-global", "range-global"])
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_else(|| {
                        " (expected \"config.yaml\", MetalLB's \"config\", or kube-vip keys such as \"cidr-global\")".to_string()
                    });
                report.error(None, format!("data[{key:?}]"), format!("unknown key{hint}"));
            }
        }
    }
    match found.as_slice() {
        [] => Some(Draft::empty(ConfigFormat::Native)),
        [(ConfigFormat::Native, _)] => {
            let text = data.get(NATIVE_KEY).map(String::as_str).unwrap_or_default();
            match yaml::single(text) {
                Ok(v) => Some(native::parse(&v, report)),
                Err(e) => {
                    report.error(None, format!("data[{NATIVE_KEY:?}]"), e);
                    None
                }
            }
        }
        [(ConfigFormat::MetalLbLegacy, _)] => {
            let text = data
                .get(METALLB_KEY)
                .map(String::as_str)
                .unwrap_or_default();
            match yaml::single(text) {
                Ok(v) => Some(metallb::parse(&v, report)),
                Err(e) => {
                    report.error(None, format!("data[{METALLB_KEY:?}]"), e);
                    None
                }
            }
        }
        [(ConfigFormat::KubeVip, _)] => Some(kubevip::parse(data, report)),
        several => {
            let list: Vec<String> = several
                .iter()
                .map(|(f, k)| format!("{k:?} ({f})"))
                .collect();
            report.error(
                None,
                "data",
                format!(
                    "keys from different config formats: {}; use one format per ConfigMap",
                    list.join(", ")
                ),
            );
            None
        }
    }
}

/// Picks the one document that is the config out of a file.
fn from_documents(docs: Vec<Value>, report: &mut Report) -> Option<Draft> {
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.len() > 1 {
        // A manifest stream (Namespace + ConfigMap, ...): the ConfigMap is the config.
        let mut maps = docs
            .into_iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some("ConfigMap"));
        return match (maps.next(), maps.next()) {
            (Some(cm), None) => from_document(&cm, report),
            (None, _) => {
                report.error(
                    None,
                    "",
                    "several YAML documents but no ConfigMap among them",
                );
                None
            }
            (Some(_), Some(_)) => {
                report.error(
                    None,
                    "",
                    "several ConfigMaps in one file; check them one at a time",
                );
                None
            }
        };
    }
    match docs.into_iter().next() {
        None => Some(Draft::empty(ConfigFormat::Native)),
        Some(doc) => from_document(&doc, report),
    }
}

/// Bare-file top-level keys of the native format.
const NATIVE_TOP: &[&str] = &["pools", "l2", "bgp"];

fn from_document(doc: &Value, report: &mut Report) -> Option<Draft> {
    let map = walk::as_map(doc, &At::root(), report)?;
    if map.contains_key("kind") || map.contains_key("apiVersion") {
        return from_manifest(map, report);
    }
    if map.is_empty() || NATIVE_TOP.iter().any(|k| map.contains_key(*k)) {
        return Some(native::parse(doc, report));
    }
    if metallb::TOP_KEYS.iter().any(|k| map.contains_key(*k)) {
        return Some(metallb::parse(doc, report));
    }
    if map.keys().all(|k| kubevip::is_key(k)) {
        let data = string_data(map, &At::root(), report);
        return Some(kubevip::parse(&data, report));
    }
    let hint = map
        .keys()
        .find_map(|k| {
            walk::did_you_mean(k, NATIVE_TOP.iter().chain(metallb::TOP_KEYS).copied())
                .map(|s| (k, s))
        })
        .map(|(k, s)| format!(" ({k:?}: did you mean {s:?}?)"))
        .unwrap_or_default();
    report.error(
        None,
        "",
        format!("not a FerroLB config: expected a ConfigMap manifest, a native config (pools:, l2:) or a MetalLB config (address-pools:){hint}"),
    );
    None
}

fn from_manifest(map: &serde_json::Map<String, Value>, report: &mut Report) -> Option<Draft> {
    let at = At::root();
    match walk::get(map, "kind") {
        Some(Value::String(k)) if k == "ConfigMap" => {}
        Some(other) => {
            at.key("kind").error(
                report,
                format!("expected ConfigMap, found {}", describe(other)),
            );
            return None;
        }
        None => {
            at.key("kind").error(report, "missing (expected ConfigMap)");
            return None;
        }
    }
    walk::check_keys(
        map,
        &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "binaryData",
            "immutable",
        ],
        &at,
        report,
    );
    let data = match walk::get(map, "data") {
        None => BTreeMap::new(),
        Some(v) => {
            let m = walk::as_map(v, &at.key("data"), report)?;
            string_data(m, &at, report)
        }
    };
    from_data(&data, report)
}

/// ConfigMap data must be strings; `allow-share-global: true` unquoted is the classic slip.
fn string_data(
    map: &serde_json::Map<String, Value>,
    at: &At,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let at = At {
            pool: at.pool,
            path: format!("data[{k:?}]"),
        };
        if let Some(s) = walk::string(v, &at, report) {
            out.insert(k.clone(), s);
        }
    }
    out
}
