//! The checks that need the whole config: peers and advertisements against the pools and
//! each other.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::addr::Family;

use super::model::{Announce, BgpConfig, NodeSelector, PeerPassword};
use crate::config::error::Report;
use crate::config::labels;
use crate::config::validate::DraftPool;
use crate::config::walk::At;

/// Where each peer and advertisement was written, so cross-checks point at the source.
#[derive(Debug, Clone, Default)]
pub(crate) struct Places {
    /// Path of each peer, in `BgpConfig::peers` order.
    pub(crate) peers: Vec<String>,
    /// Pool (for MetalLB's per-pool advertisements) and path of each advertisement.
    pub(crate) ads: Vec<(Option<String>, String)>,
    /// Written in MetalLB's legacy format, whose keys are spelled `hold-time`, not `holdTime`.
    pub(crate) metallb: bool,
}

impl Places {
    /// The key as the operator wrote it in this config's format.
    fn key<'k>(&self, native: &'k str) -> &'k str {
        if !self.metallb {
            return native;
        }
        match native {
            "holdTime" => "hold-time",
            "keepaliveTime" => "keepalive-time",
            "sourceAddress" => "source-address",
            "ebgpMultihop" => "ebgp-multihop",
            "nodeSelector" => "node-selectors",
            "aggregationLength" => "aggregation-length",
            "aggregationLengthV6" => "aggregation-length-v6",
            other => other,
        }
    }
}

/// Cross-checks peers and advertisements against each other and against the pools.
pub(in crate::config) fn check(
    bgp: &BgpConfig,
    pools: &[DraftPool],
    announce: &BTreeMap<String, Announce>,
    places: &Places,
    report: &mut Report,
) {
    let peer_at = |i: usize| At {
        pool: None,
        path: places.peers.get(i).cloned().unwrap_or_default(),
    };
    let ad_at = |i: usize| match places.ads.get(i) {
        Some((pool, path)) => At {
            pool: pool.as_deref(),
            path: path.clone(),
        },
        None => At::root(),
    };
    let mut names = BTreeMap::new();
    for (i, p) in bgp.peers.iter().enumerate() {
        let at = peer_at(i);
        if p.name.is_empty() {
            at.key("name").error(report, "must not be empty");
        } else if names.insert(p.name.as_str(), i).is_some() {
            at.key("name").error(
                report,
                format!(
                    "duplicate peer name {:?}: every peer needs a unique name",
                    p.name
                ),
            );
        }
        if !p.hold_time.is_zero() && p.hold_time < Duration::from_secs(3) {
            at.key(places.key("holdTime")).error(
                report,
                format!(
                    "{}s is not allowed: use 0s (no keepalives) or at least 3s (RFC 4271)",
                    p.hold_time.as_secs()
                ),
            );
        }
        if let Some(k) = p.keepalive_time {
            if k > p.hold_time {
                at.key(places.key("keepaliveTime")).error(
                    report,
                    format!(
                        "{}s exceeds holdTime {}s",
                        k.as_secs(),
                        p.hold_time.as_secs()
                    ),
                );
            }
        }
        if let Some(PeerPassword::Inline(pw)) = &p.password {
            if pw.len() > 80 {
                at.key("password").error(
                    report,
                    format!(
                        "{} bytes is longer than the 80 bytes TCP MD5 allows",
                        pw.len()
                    ),
                );
            }
        }
        if let Some(src) = p.source_address {
            if src.is_ipv4() != p.address.is_ipv4() {
                at.key(places.key("sourceAddress")).error(
                    report,
                    format!("{src} is not of the same family as address {}", p.address),
                );
            }
        }
        if p.ebgp_multihop && p.asn == p.my_asn {
            at.key(places.key("ebgpMultihop"))
                .error(report, "only applies to eBGP, but asn equals myASN (iBGP)");
        }
        for s in &p.node_selectors {
            selector(s, &at.key(places.key("nodeSelector")), report);
        }
    }
    for (i, ad) in bgp.advertisements.iter().enumerate() {
        let at = ad_at(i);
        for (j, name) in ad.peers.iter().enumerate() {
            if !names.contains_key(name.as_str()) {
                at.key("peers")
                    .index(j)
                    .error(report, format!("no peer is named {name:?}"));
            }
        }
        for (j, name) in ad.pools.iter().enumerate() {
            match pools.iter().find(|p| &p.pool.name == name) {
                None => at.key("pools").index(j).error(report, format!("no pool is named {name:?}")),
                Some(_) if !announce.get(name).copied().unwrap_or_default().bgp => at
                    .key("pools")
                    .index(j)
                    .error(report, format!("pool {name:?} does not announce with bgp (add bgp to its announce list)")),
                Some(_) => {}
            }
        }
        if ad.aggregation_length > 32 {
            at.key(places.key("aggregationLength"))
                .error(report, format!("{} exceeds 32", ad.aggregation_length));
        }
        if ad.aggregation_length_v6 > 128 {
            at.key(places.key("aggregationLengthV6"))
                .error(report, format!("{} exceeds 128", ad.aggregation_length_v6));
        }
        // An aggregate shorter than a pool's own blocks would claim addresses outside the pool.
        for d in pools {
            let covered = announce.get(&d.pool.name).copied().unwrap_or_default().bgp
                && (ad.pools.is_empty() || ad.pools.contains(&d.pool.name));
            if !covered {
                continue;
            }
            for r in &d.pool.ranges {
                let (len, key) = match r.family() {
                    Family::V4 => (ad.aggregation_length, places.key("aggregationLength")),
                    Family::V6 => (ad.aggregation_length_v6, places.key("aggregationLengthV6")),
                };
                let shortest = shortest_mask(r.family(), r.first_value(), r.last_value());
                if len < shortest {
                    at.key(key).error(
                        report,
                        format!("/{len} is shorter than pool {:?}'s /{shortest} block {}, so it would advertise addresses outside the pool", d.pool.name, r),
                    );
                }
            }
        }
        if ad.communities.len() > 64 || ad.large_communities.len() > 64 {
            at.key("communities")
                .error(report, "more than 64 communities of one kind");
        }
        for s in &ad.node_selectors {
            selector(s, &at.key(places.key("nodeSelector")), report);
        }
    }
    if bgp.peers.is_empty() && announce.values().any(|a| a.bgp) {
        report.warn(
            None,
            "bgp.peers",
            "pools announce with bgp but no peer is configured, so nothing is advertised",
        );
    }
}

fn selector(s: &NodeSelector, at: &At, report: &mut Report) {
    for (k, v) in &s.match_labels {
        if let Err(why) = labels::check_key(k) {
            at.error(report, format!("label key {k:?} is invalid: {why}"));
        }
        if let Err(why) = labels::check_value(v) {
            at.key(k)
                .error(report, format!("label value {v:?} is invalid: {why}"));
        }
    }
}

/// The shortest prefix length among the CIDR blocks that exactly cover `first..=last`.
pub(in crate::config) fn shortest_mask(family: Family, first: u128, last: u128) -> u8 {
    let bits: u32 = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let mut best = bits as u8;
    let mut cur = first;
    loop {
        // Largest aligned block starting at cur that stays within last.
        let mut size_log = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while size_log > 0 {
            let span = if size_log >= 128 {
                u128::MAX
            } else {
                (1u128 << size_log) - 1
            };
            if cur.checked_add(span).is_some_and(|end| end <= last) {
                break;
            }
            size_log -= 1;
        }
        best = best.min((bits - size_log) as u8);
        let span = if size_log >= 128 {
            u128::MAX
        } else {
            (1u128 << size_log) - 1
        };
        match cur.checked_add(span) {
            Some(end) if end < last => cur = end + 1,
            _ => break,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_mask_of_ranges() {
        let v4 = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
        assert_eq!(
            shortest_mask(Family::V4, v4([198, 51, 100, 0]), v4([198, 51, 100, 255])),
            24
        );
        assert_eq!(
            shortest_mask(Family::V4, v4([198, 51, 100, 10]), v4([198, 51, 100, 20])),
            30
        );
        assert_eq!(
            shortest_mask(Family::V4, v4([198, 51, 100, 7]), v4([198, 51, 100, 7])),
            32
        );
        assert_eq!(shortest_mask(Family::V6, 0, u128::MAX), 0);
    }
}
