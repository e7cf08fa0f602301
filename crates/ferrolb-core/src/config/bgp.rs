//! The BGP side of the config model (`bgp:` in the native format; `peers:`,
//! `bgp-communities:` and `bgp-advertisements:` in MetalLB's legacy one), the field readers
//! both formats share, and the checks that need the whole config.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::addr::Family;
use crate::bgp::{Community, LargeCommunity};

use super::error::Report;
use super::labels;
use super::validate::DraftPool;
use super::walk::{self, describe, At};

/// Which protocols announce a pool's IPs (`pools[].announce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Answer ARP / NDP for the IPs (layer 2 mode).
    pub l2: bool,
    /// Advertise the IPs to BGP peers.
    pub bgp: bool,
}

impl Default for Announce {
    /// `[l2]`: what every pool did before BGP mode existed.
    fn default() -> Self {
        Self {
            l2: true,
            bgp: false,
        }
    }
}

/// The `bgp:` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BgpConfig {
    /// Our ASN (native format; MetalLB's legacy format sets it per peer).
    pub my_asn: Option<u32>,
    /// Our BGP identifier; `None` = the session's local IPv4 address.
    pub router_id: Option<Ipv4Addr>,
    /// The routers to peer with.
    pub peers: Vec<BgpPeer>,
    /// What to advertise; empty = one default advertisement for every BGP pool.
    pub advertisements: Vec<BgpAdvertisement>,
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    /// Unique name (MetalLB legacy peers, which have none, are named after their address).
    pub name: String,
    /// The router's address.
    pub address: IpAddr,
    /// The router's ASN; equal to `my_asn` means iBGP.
    pub asn: u32,
    /// Our ASN on this session.
    pub my_asn: u32,
    /// TCP port, 179 by default.
    pub port: u16,
    /// Proposed hold time: zero or at least 3 s, whole seconds.
    pub hold_time: Duration,
    /// Keepalive interval; `None` = hold time / 3.
    pub keepalive_time: Option<Duration>,
    /// Local address to connect from; `None` = the kernel's choice.
    pub source_address: Option<IpAddr>,
    /// TCP MD5 key source.
    pub password: Option<PeerPassword>,
    /// Peer is not directly connected (eBGP TTL 255 instead of 1).
    pub ebgp_multihop: bool,
    /// Nodes that open a session to this peer (OR across selectors; empty = all).
    pub node_selectors: Vec<NodeSelector>,
    /// A per-peer BGP identifier (MetalLB legacy `router-id`).
    pub router_id: Option<Ipv4Addr>,
}

/// Where a peer's TCP MD5 key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPassword {
    /// Written in the config.
    Inline(String),
    /// A key of a Secret in the speaker's namespace.
    Secret {
        /// Secret name.
        name: String,
        /// Key within the Secret's data.
        key: String,
    },
}

/// One advertisement rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Pools it covers; empty = every BGP pool.
    pub pools: Vec<String>,
    /// Peers it goes to; empty = every peer.
    pub peers: Vec<String>,
    /// Nodes that may be next hops (OR across selectors; empty = all).
    pub node_selectors: Vec<NodeSelector>,
    /// IPv4 prefix length advertised for each IP.
    pub aggregation_length: u8,
    /// IPv6 prefix length advertised for each IP.
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF for iBGP peers; 0 = not sent.
    pub local_pref: u32,
    /// Standard communities, sorted.
    pub communities: Vec<Community>,
    /// Large communities, sorted.
    pub large_communities: Vec<LargeCommunity>,
}

impl Default for BgpAdvertisement {
    fn default() -> Self {
        Self {
            pools: Vec::new(),
            peers: Vec::new(),
            node_selectors: Vec::new(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: 0,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
}

/// A Kubernetes-style label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelector {
    /// Labels that must be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// How the values are used.
    pub operator: SelectorOp,
    /// Values for `In` / `NotIn`.
    pub values: Vec<String>,
}

/// Label selector operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl NodeSelector {
    /// Whether a node with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.operator {
                    SelectorOp::In => v.is_some_and(|v| r.values.contains(v)),
                    SelectorOp::NotIn => !v.is_some_and(|v| r.values.contains(v)),
                    SelectorOp::Exists => v.is_some(),
                    SelectorOp::DoesNotExist => v.is_none(),
                }
            })
    }
}

/// A list of selectors matches when it is empty or any one matches (MetalLB's rule).
pub fn selectors_match(selectors: &[NodeSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

// ---- field readers shared by both formats ----

/// An ASN: a whole number from 1 to 4294967295.
pub(super) fn asn(
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
pub(super) fn ip(
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
pub(super) fn number(
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
pub(super) fn timer(
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
        Value::String(s) => match super::duration::parse(s) {
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
                super::duration::format(d)
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
pub(super) fn community(
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
pub(super) fn dedup_communities(ad: &mut BgpAdvertisement, at: &At, report: &mut Report) {
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

// ---- checks that need the whole config ----

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
pub(super) fn check(
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
pub(super) fn shortest_mask(family: Family, first: u128, last: u128) -> u8 {
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

    #[test]
    fn selectors_are_or_of_and() {
        let labels: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
        let sel = |k: &str, op, vals: &[&str]| NodeSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![SelectorRequirement {
                key: k.into(),
                operator: op,
                values: vals.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert!(selectors_match(&[], &labels));
        assert!(selectors_match(
            &[sel("zone", SelectorOp::In, &["a", "b"])],
            &labels
        ));
        assert!(!selectors_match(
            &[sel("zone", SelectorOp::NotIn, &["a"])],
            &labels
        ));
        assert!(selectors_match(
            &[
                sel("zone", SelectorOp::NotIn, &["a"]),
                sel("rack", SelectorOp::DoesNotExist, &[])
            ],
            &labels
        ));
        assert!(!selectors_match(
            &[sel("rack", SelectorOp::Exists, &[])],
            &labels
        ));
    }
}
