//! Collecting one setting from its several spellings (our annotation, MetalLB's two prefixes,
//! `spec.loadBalancerIP`) and insisting that they agree.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{RequestError, ANNOTATION_PREFIXES, IPS_ANNOTATION};
use crate::addr::Family;

/// The name of where a value came from (an annotation key or a spec field), for messages.
pub(super) type Source = String;

/// The field name used in messages for `spec.loadBalancerIP`.
const SPEC_LB_IP: &str = "spec.loadBalancerIP";

/// Every non-empty spelling of annotation `suffix`, in priority order. Empty values count as
/// absent: `kubectl annotate ... key=` is how people switch a setting off.
fn present(annotations: &BTreeMap<String, String>, suffix: &str) -> Vec<(Source, String)> {
    ANNOTATION_PREFIXES
        .iter()
        .filter_map(|prefix| {
            let key = format!("{prefix}{suffix}");
            let value = annotations.get(&key)?.trim();
            (!value.is_empty()).then(|| (key, value.to_string()))
        })
        .collect()
}

/// The value of a plain string setting (pool name, sharing key), or an error naming two
/// spellings that disagree.
pub(super) fn single_value(
    annotations: &BTreeMap<String, String>,
    suffix: &str,
) -> Result<Option<String>, RequestError> {
    let found = present(annotations, suffix);
    let Some((first_source, first_value)) = found.first() else {
        return Ok(None);
    };
    if let Some((source, value)) = found.iter().find(|(_, v)| v != first_value) {
        return Err(RequestError::Conflict {
            first: first_source.clone(),
            first_value: first_value.clone(),
            second: source.clone(),
            second_value: value.clone(),
        });
    }
    Ok(Some(first_value.clone()))
}

/// The requested IPs and the first source that gave them. All spellings, including
/// `spec.loadBalancerIP`, are parsed; they must name the same set of IPs (order and spacing do
/// not matter).
pub(super) fn ip_sources(
    annotations: &BTreeMap<String, String>,
    spec_ip: Option<&str>,
) -> Result<Option<(Source, Vec<IpAddr>)>, RequestError> {
    let mut found = present(annotations, IPS_ANNOTATION);
    if let Some(text) = spec_ip.map(str::trim).filter(|t| !t.is_empty()) {
        found.push((SPEC_LB_IP.to_string(), text.to_string()));
    }
    let mut parsed: Vec<(Source, String, Vec<IpAddr>)> = Vec::new();
    for (source, text) in found {
        let ips = parse_ip_list(&source, &text)?;
        parsed.push((source, text, ips));
    }
    let Some((first_source, first_text, first_ips)) = parsed.first() else {
        return Ok(None);
    };
    let mut first_sorted = first_ips.clone();
    first_sorted.sort();
    for (source, text, ips) in &parsed[1..] {
        let mut sorted = ips.clone();
        sorted.sort();
        if sorted != first_sorted {
            return Err(RequestError::Conflict {
                first: first_source.clone(),
                first_value: first_text.clone(),
                second: source.clone(),
                second_value: text.clone(),
            });
        }
    }
    Ok(Some((first_source.clone(), first_ips.clone())))
}

/// Parses a comma list of IPs with at most one per family.
fn parse_ip_list(source: &str, text: &str) -> Result<Vec<IpAddr>, RequestError> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let ip: IpAddr = part.parse().map_err(|_| RequestError::BadIp {
            origin: source.to_string(),
            value: part.to_string(),
        })?;
        if let Some(other) = ips.iter().find(|o| Family::of(o) == Family::of(&ip)) {
            return Err(RequestError::TwoOfOneFamily {
                origin: source.to_string(),
                family: Family::of(&ip),
                first: *other,
                second: ip,
            });
        }
        ips.push(ip);
    }
    Ok(ips)
}
