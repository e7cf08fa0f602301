//! BGPPeers, BGPAdvertisements and Communities: the `bgp` section.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::object::{
    boolean, known_fields, number, selectors, strings, text, Obj, Warnings, ADV_FIELDS,
    PEER_FIELDS, PEER_UNSUPPORTED,
};
use super::pools::{selected, PoolDraft};
use crate::bgp::{Community, LargeCommunity};
use crate::import::output::{Advertisement, BgpSection, PasswordSecret, Peer};
use crate::import::selector::{list_as_match_labels, scalar};

pub(super) fn community_aliases(objs: &[Obj], w: &mut Warnings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for obj in objs {
        known_fields(obj, &["communities"], &[], w);
        let Some(Value::Array(items)) = obj.spec.get("communities") else {
            continue;
        };
        for (i, c) in items.iter().enumerate() {
            match (c.get("name").map(scalar), c.get("value").map(scalar)) {
                (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
                    out.insert(n, v);
                }
                _ => w.at(
                    obj,
                    &format!("spec.communities[{i}]"),
                    "needs a name and a value; ignored",
                ),
            }
        }
    }
    out
}

/// Resolves one community of a BGPAdvertisement (an alias from the input's Community objects,
/// `AA:NN`, `large:A:B:C` or a well-known name) to the canonical text the native parser reads,
/// with the same parser, so whatever is emitted passes `check-config` and two spellings of one
/// community (`no-export` and `65535:65281`) compare equal.
pub(super) fn community(
    obj: &Obj,
    i: usize,
    c: &str,
    aliases: &BTreeMap<String, String>,
    w: &mut Warnings,
) -> Option<String> {
    let resolved = aliases.get(c).map(String::as_str).unwrap_or(c);
    let parsed = if resolved.starts_with("large:") {
        resolved.parse::<LargeCommunity>().map(|l| l.to_string())
    } else {
        resolved.parse::<Community>().map(|s| s.to_string())
    };
    match parsed {
        Ok(text) => Some(text),
        Err(why) => {
            w.at(
                obj,
                &format!("spec.communities[{i}]"),
                format!("{c:?} is neither a community nor a Community alias in the input ({why}); left out"),
            );
            None
        }
    }
}

/// The communities of a BGPAdvertisement, canonical and each once: the native format rejects a
/// community listed twice, so a repeat (often one written both by name and by number) is left
/// out with a warning.
pub(super) fn advertisement_communities(
    obj: &Obj,
    aliases: &BTreeMap<String, String>,
    w: &mut Warnings,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, c) in strings(obj, "communities", w).iter().enumerate() {
        let Some(text) = community(obj, i, c, aliases, w) else {
            continue;
        };
        if out.contains(&text) {
            w.at(
                obj,
                &format!("spec.communities[{i}]"),
                format!("{c:?} is {text}, which an earlier entry already lists; listed once"),
            );
        } else {
            out.push(text);
        }
    }
    out
}

pub(super) fn bgp_section(
    peers_in: &[Obj],
    ads_in: &[Obj],
    aliases: &BTreeMap<String, String>,
    pools: &mut [PoolDraft],
    w: &mut Warnings,
) -> Option<BgpSection> {
    let mut section = BgpSection::default();
    let mut my_asn: Option<(u32, String)> = None;
    for obj in peers_in {
        known_fields(obj, PEER_FIELDS, PEER_UNSUPPORTED, w);
        let asn = |field: &str, w: &mut Warnings| {
            number(obj, field, w).and_then(|n| {
                let a = u32::try_from(n).ok();
                if a.is_none() {
                    w.at(
                        obj,
                        &format!("spec.{field}"),
                        format!("{n} is not a 4-octet ASN"),
                    );
                }
                a
            })
        };
        let (Some(mine), Some(theirs), Some(address)) =
            (asn("myASN", w), asn("peerASN", w), text(obj, "peerAddress"))
        else {
            w.at(
                obj,
                "spec",
                "needs myASN, peerASN and peerAddress; peer left out",
            );
            continue;
        };
        match &my_asn {
            None => my_asn = Some((mine, obj.id())),
            Some((first, from)) if *first != mine => w.at(
                obj,
                "spec.myASN",
                format!("FerroLB has one myASN for every peer; using {first} from {from}"),
            ),
            _ => {}
        }
        if let Some(id) = text(obj, "routerID") {
            if section.router_id.is_empty() {
                section.router_id = id;
            } else if section.router_id != id {
                w.at(
                    obj,
                    "spec.routerID",
                    format!("FerroLB has one routerID; using {}", section.router_id),
                );
            }
        }
        let mut peer = Peer {
            name: obj.name.clone(),
            address,
            asn: theirs,
            port: number(obj, "peerPort", w)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 179),
            hold_time: text(obj, "holdTime"),
            keepalive_time: text(obj, "keepaliveTime"),
            source_address: text(obj, "sourceAddress"),
            password: text(obj, "password"),
            password_secret: None,
            ebgp_multihop: boolean(obj, "ebgpMultiHop", false, w),
            node_selector: BTreeMap::new(),
        };
        if let Some(Value::Object(s)) = obj.spec.get("passwordSecret") {
            if let Some(name) = s.get("name").map(scalar).filter(|n| !n.is_empty()) {
                let ns = s.get("namespace").map(scalar).unwrap_or_default();
                if !ns.is_empty() && ns != "ferrolb-system" {
                    w.at(obj, "spec.passwordSecret.namespace", format!("FerroLB reads the Secret from its own namespace: copy Secret {ns}/{name} to ferrolb-system"));
                }
                peer.password_secret = Some(PasswordSecret {
                    name,
                    key: "password".into(),
                });
            }
        }
        match list_as_match_labels(&selectors(obj, "nodeSelectors", w)) {
            Some(l) => peer.node_selector = l,
            None => w.at(obj, "spec.nodeSelectors", "not carried over: FerroLB's nodeSelector is one matchLabels (or In with one value); every node opens this session"),
        }
        section.peers.push(peer);
    }
    let peer_names: BTreeSet<String> = section.peers.iter().map(|p| p.name.clone()).collect();
    for obj in ads_in {
        known_fields(obj, ADV_FIELDS, &[], w);
        let (picked, all) = selected(obj, pools, w);
        for &i in &picked {
            pools[i].bgp = true;
        }
        let mut ad = Advertisement {
            pools: if all {
                Vec::new()
            } else {
                picked.iter().map(|&i| pools[i].out.name.clone()).collect()
            },
            peers: strings(obj, "peers", w),
            ..Advertisement::default()
        };
        if !all && picked.is_empty() {
            w.at(
                obj,
                "spec.ipAddressPools",
                "selects no pool in the input; advertisement left out",
            );
            continue;
        }
        for (i, p) in ad.peers.iter().enumerate() {
            if !peer_names.contains(p) {
                w.at(
                    obj,
                    &format!("spec.peers[{i}]"),
                    format!("no BGPPeer named {p:?} in the input"),
                );
            }
        }
        ad.aggregation_length =
            number(obj, "aggregationLength", w).and_then(|n| u8::try_from(n).ok());
        ad.aggregation_length_v6 =
            number(obj, "aggregationLengthV6", w).and_then(|n| u8::try_from(n).ok());
        ad.local_pref = number(obj, "localPref", w)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n != 0);
        ad.communities = advertisement_communities(obj, aliases, w);
        match list_as_match_labels(&selectors(obj, "nodeSelectors", w)) {
            Some(l) => ad.node_selector = l,
            None => w.at(obj, "spec.nodeSelectors", "not carried over: FerroLB's nodeSelector is one matchLabels (or In with one value); every eligible node is a next hop"),
        }
        if obj.has("serviceSelectors") {
            w.at(
                obj,
                "spec.serviceSelectors",
                "not carried over: FerroLB advertises every Service of a bgp pool",
            );
        }
        section.advertisements.push(ad);
    }
    match my_asn {
        Some((asn, _)) => {
            section.my_asn = asn;
            Some(section)
        }
        None => {
            if !ads_in.is_empty() {
                w.0.push(
                    "BGPAdvertisements without any usable BGPPeer: nothing is advertised over BGP"
                        .to_string(),
                );
            }
            None
        }
    }
}
