//! The human-readable account `ferrolb check-config` prints for a good config, so an operator
//! can confirm FerroLB read what they meant (especially after translating another format).

use std::fmt::Write;

use crate::addr::{AddressRange, Family};
use crate::pool::{Pool, SearchOrder};

use super::duration;
use super::l2::L2Config;
use super::{Announce, Config, NodeSelector, PeerPassword};

/// Describes `config` over several lines: the format, each pool, then the l2 settings.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "format: {}", config.format);
    if config.pools.is_empty() {
        let _ = writeln!(out, "pools: none (no Service will get an address)");
    } else {
        let _ = writeln!(out, "pools: {}", config.pools.len());
    }
    for p in &config.pools {
        pool(&mut out, p);
        let a = config.announce_of(&p.name);
        if a != Announce::default() {
            let modes: Vec<&str> = [(a.l2, "l2"), (a.bgp, "bgp")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, m)| *m)
                .collect();
            let _ = writeln!(out, "    announce: {}", modes.join(", "));
        }
    }
    l2(&mut out, &config.l2);
    bgp(&mut out, config);
    out
}

/// The BGP section, shown when any pool announces with BGP or any peer is configured.
fn bgp(out: &mut String, config: &Config) {
    let b = &config.bgp;
    let bgp_pools: Vec<&str> = config
        .pools
        .iter()
        .filter(|p| config.announce_of(&p.name).bgp)
        .map(|p| p.name.as_str())
        .collect();
    if b.peers.is_empty() && bgp_pools.is_empty() {
        return;
    }
    let _ = writeln!(out, "bgp:");
    let pools = if bgp_pools.is_empty() {
        "none".to_string()
    } else {
        bgp_pools.join(", ")
    };
    let _ = writeln!(out, "  pools announced with bgp: {pools}");
    if let Some(asn) = b.my_asn {
        let _ = writeln!(out, "  myASN: {asn}");
    }
    let rid = b
        .router_id
        .map_or("the session's local IPv4 address".to_string(), |r| {
            r.to_string()
        });
    let _ = writeln!(out, "  routerID: {rid}");
    let _ = writeln!(out, "  peers: {}", b.peers.len());
    for p in &b.peers {
        let kind = if p.asn == p.my_asn { "iBGP" } else { "eBGP" };
        let addr = match p.address {
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", p.port),
            a => format!("{a}:{}", p.port),
        };
        let _ = writeln!(
            out,
            "    {}: {addr} AS {} ({kind}, local AS {}), hold {}s, keepalive {}s",
            p.name,
            p.asn,
            p.my_asn,
            p.hold_time.as_secs(),
            p.keepalive_time.unwrap_or(p.hold_time / 3).as_secs()
        );
        let mut extra = Vec::new();
        if let Some(s) = p.source_address {
            extra.push(format!("source {s}"));
        }
        match &p.password {
            Some(PeerPassword::Inline(_)) => extra.push("TCP MD5 (inline password)".to_string()),
            Some(PeerPassword::Secret { name, key }) => {
                extra.push(format!("TCP MD5 (Secret {name}, key {key})"))
            }
            None => {}
        }
        if p.ebgp_multihop {
            extra.push("eBGP multihop".to_string());
        }
        extra.push(format!("nodes: {}", selectors(&p.node_selectors)));
        let _ = writeln!(out, "      {}", extra.join(", "));
    }
    if b.advertisements.is_empty() {
        let _ = writeln!(
            out,
            "  advertisements: default (every bgp pool to every peer, /32 and /128, no attributes)"
        );
    } else {
        let _ = writeln!(out, "  advertisements: {}", b.advertisements.len());
    }
    for a in &b.advertisements {
        let list = |v: &[String], all: &str| {
            if v.is_empty() {
                all.to_string()
            } else {
                v.join(", ")
            }
        };
        let mut comms: Vec<String> = a.communities.iter().map(ToString::to_string).collect();
        comms.extend(a.large_communities.iter().map(ToString::to_string));
        let _ = writeln!(
            out,
            "    pools: {}; peers: {}; nodes: {}; /{} and /{}; localPref: {}; communities: {}",
            list(&a.pools, "all bgp pools"),
            list(&a.peers, "all"),
            selectors(&a.node_selectors),
            a.aggregation_length,
            a.aggregation_length_v6,
            if a.local_pref == 0 {
                "not sent".to_string()
            } else {
                format!("{} (iBGP only)", a.local_pref)
            },
            if comms.is_empty() {
                "none".to_string()
            } else {
                comms.join(" ")
            }
        );
    }
}

fn selectors(s: &[NodeSelector]) -> String {
    if s.is_empty() {
        return "any".to_string();
    }
    s.iter()
        .map(|sel| {
            let mut parts: Vec<String> = sel
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.extend(
                sel.match_expressions
                    .iter()
                    .map(|e| format!("{} {:?} {}", e.key, e.operator, e.values.join("|"))),
            );
            parts.join(" and ")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn pool(out: &mut String, p: &Pool) {
    let sizes: Vec<String> = p
        .families()
        .into_iter()
        .map(|f| format!("{f} {}", count(p.size(f))))
        .collect();
    let _ = writeln!(out, "  {}: {}", p.name, sizes.join(", "));
    let ranges: Vec<String> = p.ranges.iter().map(range).collect();
    let _ = writeln!(out, "    addresses: {}", ranges.join(", "));
    let _ = writeln!(
        out,
        "    autoAssign: {}, avoidBuggyIPs: {}, order: {}",
        p.auto_assign,
        p.avoid_buggy_ips,
        match p.search_order {
            SearchOrder::Ascending => "lowest first",
            SearchOrder::Descending => "highest first",
        }
    );
    let namespaces = if p.namespaces.is_empty() {
        "all".to_string()
    } else {
        p.namespaces.join(", ")
    };
    let _ = writeln!(
        out,
        "    namespaces: {namespaces}, serviceSelector: {}",
        labels(&p.service_selector)
    );
    if let Some(key) = &p.default_sharing_key {
        let _ = writeln!(out, "    default sharing key: {key}");
    }
}

fn l2(out: &mut String, l2: &L2Config) {
    let _ = writeln!(out, "l2:");
    let interfaces = if l2.interfaces.is_empty() {
        "any up interface whose subnet holds the IP".to_string()
    } else {
        l2.interfaces.sources().join(", ")
    };
    let _ = writeln!(out, "  interfaces: {interfaces}");
    let excluded = if l2.exclude_interfaces.is_empty() {
        "none".to_string()
    } else {
        l2.exclude_interfaces.sources().join(", ")
    };
    let _ = writeln!(out, "  excludeInterfaces: {excluded}");
    let _ = writeln!(out, "  nodeSelector: {}", labels(&l2.node_selector));
    let refresh = if l2.garp.refresh.is_zero() {
        "off".to_string()
    } else {
        format!("every {}", duration::format(l2.garp.refresh))
    };
    let _ = writeln!(
        out,
        "  garp: burst {}, interval {}, refresh {refresh}",
        l2.garp.burst,
        duration::format(l2.garp.interval)
    );
}

fn labels(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "any".to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Address counts: exact when small or irregular, `2^n` for the powers of two that IPv6 pools
/// almost always are (`18446744073709551616` says less to a reader than `2^64`).
fn count(n: u128) -> String {
    if n == u128::MAX {
        // Only `::/0` saturates.
        return "2^128 addresses".to_string();
    }
    if n > 1 << 20 && n.is_power_of_two() {
        return format!("2^{} addresses", n.trailing_zeros());
    }
    if n == 1 {
        "1 address".to_string()
    } else {
        format!("{n} addresses")
    }
}

/// A range in CIDR form when it is exactly one CIDR block, which is how it was most likely
/// written.
fn range(r: &AddressRange) -> String {
    let size = r.size();
    let bits = match r.family() {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    if size > 1 && size.is_power_of_two() && r.first_value() % size == 0 {
        let prefix = bits - size.trailing_zeros();
        return format!("{}/{prefix}", r.first());
    }
    if r.family() == Family::V6 && r.first_value() == 0 && r.last_value() == u128::MAX {
        return "::/0".to_string();
    }
    r.to_string()
}
