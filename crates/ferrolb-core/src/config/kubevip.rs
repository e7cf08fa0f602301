//! kube-vip-cloud-provider's ConfigMap keys (`cidr-<ns>`, `range-global`, `allow-share-*`, ...),
//! translated so that a migrated cluster hands out addresses the way kube-vip did.

use std::collections::BTreeMap;

use crate::addr::{AddressRange, Family};
use crate::pool::{Pool, SearchOrder};

use super::addresses::{self, HostBits};
use super::error::Report;
use super::validate::DraftPool;
use super::walk::At;
use super::{ConfigFormat, Draft};

const GLOBAL: &str = "global";
const SKIP_END: &str = "skip-end-ips-in-cidr";
const SEARCH_ORDER: &str = "search-order";
/// The key prefixes that take a namespace (or `global`) suffix.
const PREFIXES: &[&str] = &["cidr-", "range-", "allow-share-", "interface-"];
/// kube-vip's way of asking for a DHCP lease instead of a pool address.
const DHCP_MARKER: &str = "0.0.0.0/32";

/// Whether `key` is one of kube-vip-cloud-provider's keys.
pub(super) fn is_key(key: &str) -> bool {
    key == SKIP_END || key == SEARCH_ORDER || PREFIXES.iter().any(|p| key.starts_with(p))
}

fn field(key: &str) -> String {
    format!("data[{key:?}]")
}

/// Go's `strconv.ParseBool`, which is what kube-vip's flags go through.
fn go_bool(key: &str, value: &str, report: &mut Report) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        other => {
            report.error(
                None,
                field(key),
                format!("expected \"true\" or \"false\", found {other:?}"),
            );
            None
        }
    }
}

/// Translates the data keys. Every key that is not a kube-vip key was reported by the caller.
pub(super) fn parse(data: &BTreeMap<String, String>, report: &mut Report) -> Draft {
    let mut draft = Draft::empty(ConfigFormat::KubeVip);
    let skip_end = data
        .get(SKIP_END)
        .and_then(|v| go_bool(SKIP_END, v, report))
        .unwrap_or(false);
    let order = match data.get(SEARCH_ORDER).map(|s| s.trim()) {
        None | Some("") | Some("asc") => SearchOrder::Ascending,
        Some("desc") => SearchOrder::Descending,
        Some(other) => {
            report.error(
                None,
                field(SEARCH_ORDER),
                format!("expected \"asc\" or \"desc\", found {other:?}"),
            );
            SearchOrder::Ascending
        }
    };

    // (namespace, key, value) per address key; namespace pools go first so the output order
    // matches kube-vip's "namespace pool, then global" lookup.
    let mut scoped = Vec::new();
    let mut global = Vec::new();
    let mut shares = Vec::new();
    for (key, value) in data {
        let Some((prefix, ns)) = PREFIXES
            .iter()
            .find_map(|p| key.strip_prefix(p).map(|ns| (*p, ns)))
        else {
            continue;
        };
        if ns.is_empty() {
            report.error(
                None,
                field(key),
                format!("missing namespace after {prefix:?} (use {prefix}<namespace> or {prefix}global)"),
            );
            continue;
        }
        match prefix {
            "cidr-" | "range-" => {
                let cidr_key = format!("cidr-{ns}");
                if prefix == "range-" && data.contains_key(&cidr_key) {
                    report.warn(
                        None,
                        field(key),
                        format!("ignored: kube-vip uses {cidr_key:?} instead of {key:?} when both are set, and so does FerroLB"),
                    );
                    continue;
                }
                if ns == GLOBAL {
                    global.push((ns, key, value));
                } else {
                    scoped.push((ns, key, value));
                }
            }
            "allow-share-" => {
                if go_bool(key, value, report) == Some(true) {
                    shares.push((ns, key));
                }
            }
            _ => report.warn(
                None,
                field(key),
                "ignored: FerroLB announces each IP on the interface whose subnet holds it (l2.interfaces in the native format restricts the choice)",
            ),
        }
    }
    for (ns, key, value) in scoped.into_iter().chain(global) {
        let mut d = pool(key, value, skip_end, report);
        if ns != GLOBAL {
            d.pool.namespaces = vec![ns.to_string()];
        }
        d.pool.search_order = order;
        draft.pools.push(d);
    }
    for (ns, key) in shares {
        let sharing = format!("kube-vip/{key}");
        let mut any = false;
        for d in draft
            .pools
            .iter_mut()
            .filter(|d| pool_namespace(&d.pool) == ns)
        {
            any = true;
            d.pool.default_sharing_key = Some(sharing.clone());
            if d.pool.families().contains(&Family::V6) {
                report.warn(
                    None,
                    field(key),
                    format!(
                        "pool {:?} also has IPv6 addresses; kube-vip shares only IPv4 addresses, FerroLB shares both (ports must still not overlap)",
                        d.pool.name
                    ),
                );
            }
        }
        if !any {
            report.warn(
                None,
                field(key),
                format!("ignored: there is no cidr-{ns} or range-{ns} pool to share"),
            );
        }
    }
    draft
}

fn pool_namespace(p: &Pool) -> &str {
    p.namespaces.first().map(String::as_str).unwrap_or(GLOBAL)
}

/// One pool from a `cidr-*`/`range-*` value, named after its key. kube-vip never hands out
/// IPv4 .0/.255, so the pool avoids them too.
fn pool(key: &str, value: &str, skip_end: bool, report: &mut Report) -> DraftPool {
    let at = At::pool(key);
    let mut ranges = Vec::new();
    let mut sources = Vec::new();
    let mut written = 0;
    for (i, item) in value.split(',').enumerate() {
        let text = item.trim();
        // A trailing comma is harmless; kube-vip users write them.
        if text.is_empty() {
            continue;
        }
        written += 1;
        let here = at.key("addresses").index(i);
        if text == DHCP_MARKER {
            here.error(
                report,
                format!("{text:?} is kube-vip's DHCP marker: DHCP addresses are not supported"),
            );
            continue;
        }
        let Some(mut r) =
            addresses::parse(text, &here, HostBits::MaskWithWarning("kube-vip"), report)
        else {
            continue;
        };
        if skip_end && text.contains('/') {
            r = without_ends(r);
        }
        ranges.push(r);
        sources.push((format!("addresses[{i}]"), text.to_string()));
    }
    let (ranges, sources) = union(ranges, sources);
    let mut p = Pool::new(key, ranges);
    p.avoid_buggy_ips = true;
    DraftPool {
        pool: p,
        origin: field(key),
        sources,
        written,
    }
}

/// kube-vip reads the entries of one key as a set (its README's `192.168.0.200/30,192.168.0.200/29`
/// is the /29), so overlapping or touching entries become one range, listed in address order.
/// The source of a merged range names every entry it came from.
fn union(
    ranges: Vec<AddressRange>,
    sources: Vec<(String, String)>,
) -> (Vec<AddressRange>, Vec<(String, String)>) {
    let mut items: Vec<(AddressRange, (String, String))> =
        ranges.into_iter().zip(sources).collect();
    items.sort_by_key(|(r, _)| (r.family(), r.first_value(), r.last_value()));
    let mut out: Vec<(AddressRange, (String, String))> = Vec::new();
    for (r, (f, t)) in items {
        if let Some((last, (lf, lt))) = out.last_mut() {
            let touches = last.family() == r.family()
                && last
                    .last_value()
                    .checked_add(1)
                    .is_none_or(|n| n >= r.first_value());
            if touches {
                if r.last_value() > last.last_value() {
                    if let Some(m) =
                        AddressRange::from_values(r.family(), last.first_value(), r.last_value())
                    {
                        *last = m;
                    }
                }
                lf.push_str(&format!("+{f}"));
                lt.push_str(&format!(",{t}"));
                continue;
            }
        }
        out.push((r, (f, t)));
    }
    out.into_iter().unzip()
}

/// `skip-end-ips-in-cidr`: drops the network and broadcast address of an IPv4 CIDR. A /31 or
/// /32 has neither (RFC 3021), so it is left whole rather than emptied.
fn without_ends(r: AddressRange) -> AddressRange {
    if r.family() != Family::V4 || r.size() < 4 {
        return r;
    }
    AddressRange::from_values(Family::V4, r.first_value() + 1, r.last_value() - 1).unwrap_or(r)
}
