//! The native config as the importer writes it: only the keys design.md defines, in a
//! readable order, with defaults left out so the result reads like a hand-written config.

use std::collections::BTreeMap;

use serde::Serialize;

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole native config (`config.yaml`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NativeConfig {
    /// `pools:`.
    pub pools: Vec<PoolOut>,
    /// `l2:`, when anything differs from the defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<L2Section>,
    /// `bgp:`, when MetalLB had BGP peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSection>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolOut {
    /// The IPAddressPool's name.
    pub name: String,
    /// CIDRs and ranges as MetalLB had them.
    pub addresses: Vec<String>,
    /// `false` only when MetalLB said so or a restriction could not be carried over.
    #[serde(skip_serializing_if = "is_true")]
    pub auto_assign: bool,
    /// `avoidBuggyIPs`.
    #[serde(skip_serializing_if = "is_false", rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// `serviceAllocation.namespaces`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// `serviceAllocation.serviceSelectors`, when it is one `matchLabels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_selector: BTreeMap<String, String>,
    /// `l2`, `bgp` or both; left out when it is the default (`[l2]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<String>,
}

/// `l2:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Section {
    /// Anchored regexes for L2Advertisement `interfaces`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// L2Advertisement `nodeSelectors`, when one `matchLabels` shared by all of them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// `bgp:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BgpSection {
    /// The BGPPeers' `myASN`.
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    /// The BGPPeers' `routerID`.
    #[serde(rename = "routerID", skip_serializing_if = "String::is_empty")]
    pub router_id: String,
    /// One per BGPPeer.
    pub peers: Vec<Peer>,
    /// One per BGPAdvertisement.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advertisements: Vec<Advertisement>,
}

/// `bgp.peers[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// The BGPPeer's name.
    pub name: String,
    /// `peerAddress`.
    pub address: String,
    /// `peerASN`.
    pub asn: u32,
    /// `peerPort`, when not 179.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `holdTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// `keepaliveTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// `sourceAddress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `passwordSecret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<PasswordSecret>,
    /// `ebgpMultiHop`.
    #[serde(skip_serializing_if = "is_false")]
    pub ebgp_multihop: bool,
    /// `nodeSelectors`, when one `matchLabels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// `bgp.peers[].passwordSecret`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PasswordSecret {
    /// The Secret's name (it must exist in FerroLB's namespace).
    pub name: String,
    /// The key holding the password (`password` in MetalLB's basic-auth Secrets).
    pub key: String,
}

/// `bgp.advertisements[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advertisement {
    /// Pools named or selected; empty = every bgp pool.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// BGPPeer names; empty = every peer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// `nodeSelectors`, when one `matchLabels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// `aggregationLength`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<u8>,
    /// `aggregationLengthV6`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        rename = "aggregationLengthV6"
    )]
    pub aggregation_length_v6: Option<u8>,
    /// `localPref`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Communities with Community aliases resolved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}
