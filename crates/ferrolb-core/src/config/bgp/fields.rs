//! Field readers both formats share (ASNs, addresses, numbers, timers, communities), each
//! problem reported at its path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::bgp::{Community, LargeCommunity};

use super::model::BgpAdvertisement;
use crate::config::error::Report;
use crate::config::walk::{self, describe, At};

/// An ASN: a whole number from 1 to 4294967295.
pub(in crate::config) fn asn(
    map: &Map<String, Value>,
    key: &str,
    at: &At,
    report: &mut Report,
) -> Option<u32> {
    let v = walk::get(map, key)?;
    match v.as_u64().map(u32::try_from) {
        Some(Ok(n)) if n > 0 => {
            if n == u32::from(crate::bgp::AS_TRANS) {
                at.key(key).error(report, "23456 is AS_TRANS, reserved for 2-octet speakers (RFC 6793); use your real ASN");
                return None;
            }
            Some(n)
        }
        _ => {
            at.key(key).error(
                report,
                format!(
                    "expected an AS number from 1 to 4294967295, found {}",
                    describe(v)
                ),
            );
            None
        }
    }
}

/// An IP address literal.
pub(in crate::config) fn ip(
    map: &Map<String, Value>,
    key: &str,
    at: &At,
    report: &mut Report,
) -> Option<IpAddr> {
    let v = walk::get(map, key)?;
    let s = walk::string(v, &at.key(key), report)?;
    if s.is_empty() {
        return None;
    }
    match s.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            at.key(key)
                .error(report, format!("{s:?} is not an IPv4 or IPv6 address"));
            None
        }
    }
}

/// A whole number in `lo..=hi`.
pub(in crate::config) fn number(
    map: &Map<String, Value>,
    key: &str,
    (lo, hi): (u64, u64),
    at: &At,
    report: &mut Report,
) -> Option<u64> {
    let v = walk::get(map, key)?;
    match v.as_u64() {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            at.key(key).error(
                report,
                format!(
                    "expected a whole number from {lo} to {hi}, found {}",
                    describe(v)
                ),
            );
            None
        }
    }
}

/// A BGP timer: a duration string in whole seconds (the OPEN carries seconds). With `round`,
/// fractions are rounded to the nearest second as MetalLB does, instead of refused.
pub(in crate::config) fn timer(
    map: &Map<String, Value>,
    key: &str,
    round: bool,
    at: &At,
    report: &mut Report,
) -> Option<Duration> {
    let v = walk::get(map, key)?;
    let here = at.key(key);
    let d = match v {
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => match crate::config::duration::parse(s) {
            Ok(d) => d,
            Err(why) => {
                here.error(report, format!("invalid duration {s:?}: {why}"));
                return None;
            }
        },
        Value::Number(n) if n.as_u64() == Some(0) => Duration::ZERO,
        other => {
            here.error(
                report,
                format!(
                    "expected a duration such as \"90s\", found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let d = if round {
        Duration::from_secs((d.as_millis() as u64).saturating_add(500) / 1000)
    } else {
        d
    };
    if d.subsec_nanos() != 0 {
        here.error(
            report,
            format!(
                "{} is not a whole number of seconds (BGP timers are in seconds)",
                crate::config::duration::format(d)
            ),
        );
        return None;
    }
    if d.as_secs() > u64::from(u16::MAX) {
        here.error(
            report,
            format!("{}s exceeds the 65535 s BGP allows", d.as_secs()),
        );
        return None;
    }
    Some(d)
}

/// Parses one community string (`AA:NN`, `large:A:B:C`, a well-known name, or a MetalLB
/// alias from `aliases`) into the right list.
pub(in crate::config) fn community(
    text: &str,
    aliases: &BTreeMap<String, String>,
    at: &At,
    report: &mut Report,
    std: &mut Vec<Community>,
    large: &mut Vec<LargeCommunity>,
) {
    let resolved = aliases.get(text).map(String::as_str).unwrap_or(text);
    let result = if resolved.starts_with("large:") {
        resolved.parse::<LargeCommunity>().map(|l| large.push(l))
    } else {
        resolved.parse::<Community>().map(|c| std.push(c))
    };
    if let Err(why) = result {
        at.error(report, why);
    }
}

/// Sorts a community list, reporting duplicates (MetalLB rejects them too).
pub(in crate::config) fn dedup_communities(
    ad: &mut BgpAdvertisement,
    at: &At,
    report: &mut Report,
) {
    let mut seen = BTreeSet::new();
    for c in &ad.communities {
        if !seen.insert(c.0) {
            at.error(report, format!("community {c} is listed twice"));
        }
    }
    let mut seen = BTreeSet::new();
    for c in &ad.large_communities {
        if !seen.insert(*c) {
            at.error(report, format!("large community {c} is listed twice"));
        }
    }
    ad.communities.sort_unstable();
    ad.communities.dedup();
    ad.large_communities.sort_unstable();
    ad.large_communities.dedup();
}
