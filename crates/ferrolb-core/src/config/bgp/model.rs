//! The BGP config types both formats produce: announce protocols, peers, advertisements,
//! node selectors.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::bgp::{Community, LargeCommunity};

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

#[cfg(test)]
mod tests {
    use super::*;

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
