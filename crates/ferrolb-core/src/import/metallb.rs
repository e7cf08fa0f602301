//! The translation itself: MetalLB objects (already split into single objects) to one
//! [`NativeConfig`], with a warning for every field that does not survive.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::output::{
    Advertisement, BgpSection, L2Section, NativeConfig, PasswordSecret, Peer, PoolOut,
};
use super::selector::{list_as_match_labels, scalar, Selector};
use super::Imported;
use crate::addr::{AddressRange, RangeError};
use crate::bgp::{Community, LargeCommunity};

const GROUP: &str = "metallb.io/";

/// One MetalLB object, as much as the translation needs of it.
struct Obj {
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    spec: Map<String, Value>,
}

impl Obj {
    fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// Collects warnings, each naming the object and the field.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn at(&mut self, obj: &Obj, field: &str, msg: impl AsRef<str>) {
        self.0
            .push(format!("{}: {field}: {}", obj.id(), msg.as_ref()));
    }

    fn object(&mut self, id: &str, msg: impl AsRef<str>) {
        self.0.push(format!("{id}: {}", msg.as_ref()));
    }
}

/// Fields of each kind's `spec`, and the subset FerroLB carries over; the rest get a warning
/// saying why they are dropped.
const POOL_FIELDS: &[&str] = &[
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
];
const L2_FIELDS: &[&str] = &[
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "interfaces",
    "serviceSelectors",
    "preferredNodeSelectors",
];
const PEER_FIELDS: &[&str] = &[
    "myASN",
    "peerASN",
    "peerAddress",
    "peerPort",
    "holdTime",
    "keepaliveTime",
    "routerID",
    "sourceAddress",
    "password",
    "passwordSecret",
    "ebgpMultiHop",
    "nodeSelectors",
];
/// BGPPeer fields FerroLB has no equivalent for, with the reason.
const PEER_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "localASN",
        "FerroLB speaks as myASN only (no local-as override)",
    ),
    ("dynamicASN", "FerroLB needs the peer's ASN written out"),
    (
        "interface",
        "BGP unnumbered is not supported; FerroLB dials peerAddress",
    ),
    ("connectTime", "FerroLB retries with its own backoff"),
    (
        "bfdProfile",
        "BFD is not supported; the hold timer detects failures",
    ),
    ("enableGracefulRestart", "graceful restart is not supported"),
    (
        "vrf",
        "VRFs are not supported; sessions use the default routing table",
    ),
    (
        "disableMP",
        "deprecated in MetalLB; FerroLB negotiates its address families itself",
    ),
    (
        "dualStackAddressFamily",
        "FerroLB negotiates its address families itself",
    ),
];
const ADV_FIELDS: &[&str] = &[
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "peers",
    "serviceSelectors",
];

fn known_fields(obj: &Obj, known: &[&str], unsupported: &[(&str, &str)], w: &mut Warnings) {
    for key in obj.spec.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        match unsupported.iter().find(|(k, _)| k == key) {
            Some((_, why)) => w.at(
                obj,
                &format!("spec.{key}"),
                format!("not carried over: {why}"),
            ),
            None => w.at(
                obj,
                &format!("spec.{key}"),
                format!("not a field of MetalLB's {}; ignored", obj.kind),
            ),
        }
    }
}

fn strings(obj: &Obj, field: &str, w: &mut Warnings) -> Vec<String> {
    match obj.spec.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(_) => {
            w.at(obj, &format!("spec.{field}"), "expected a list; ignored");
            Vec::new()
        }
    }
}

fn selectors(obj: &Obj, field: &str, w: &mut Warnings) -> Vec<Selector> {
    let Some(v) = obj.spec.get(field) else {
        return Vec::new();
    };
    let empty = Vec::new();
    let items = match v {
        Value::Array(items) => items,
        Value::Null => &empty,
        _ => {
            w.at(
                obj,
                &format!("spec.{field}"),
                "expected a list of label selectors; ignored",
            );
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let sel = Selector::read(s);
            if sel.is_none() {
                w.at(
                    obj,
                    &format!("spec.{field}[{i}]"),
                    "not a label selector; ignored",
                );
            }
            sel
        })
        .collect()
}

fn boolean(obj: &Obj, field: &str, default: bool, w: &mut Warnings) -> bool {
    match obj.spec.get(field) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            w.at(
                obj,
                &format!("spec.{field}"),
                format!("expected true or false, found {other}; using {default}"),
            );
            default
        }
    }
}

fn number(obj: &Obj, field: &str, w: &mut Warnings) -> Option<u64> {
    match obj.spec.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            if n.is_none() {
                w.at(
                    obj,
                    &format!("spec.{field}"),
                    format!("expected a non-negative number, found {v}; ignored"),
                );
            }
            n
        }
    }
}

fn text(obj: &Obj, field: &str) -> Option<String> {
    obj.spec
        .get(field)
        .filter(|v| !v.is_null())
        .map(scalar)
        .filter(|s| !s.is_empty())
}

/// Reads one object's identity, or says why it is not one MetalLB object FerroLB imports.
fn read(raw: &Value, index: usize, w: &mut Warnings) -> Option<Obj> {
    let Some(m) = raw.as_object() else {
        w.object(&format!("document {}", index + 1), "not an object; ignored");
        return None;
    };
    let kind = m.get("kind").map(scalar).unwrap_or_default();
    let api = m.get("apiVersion").map(scalar).unwrap_or_default();
    let meta = m.get("metadata");
    let name = meta
        .and_then(|md| md.get("name"))
        .map(scalar)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("<object {} without a name>", index + 1));
    let id = format!("{kind}/{name}");
    if !api.starts_with(GROUP) {
        w.object(
            &id,
            format!("apiVersion {api:?} is not MetalLB's (metallb.io); ignored"),
        );
        return None;
    }
    let labels = meta
        .and_then(|md| md.get("labels"))
        .and_then(Value::as_object)
        .map(|l| l.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
        .unwrap_or_default();
    let spec = match m.get("spec") {
        Some(Value::Object(s)) => s.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            w.object(&id, "spec: not an object; ignored");
            Map::new()
        }
    };
    Some(Obj {
        kind,
        name,
        labels,
        spec,
    })
}

/// A pool being imported, with what the advertisements need to find it.
struct PoolDraft {
    out: PoolOut,
    labels: BTreeMap<String, String>,
    /// MetalLB's `serviceAllocation.priority`: lower first, 0 (unset) last.
    priority: u64,
    l2: bool,
    bgp: bool,
}

pub(super) fn translate(objects: &[Value]) -> Imported {
    let mut w = Warnings::default();
    let mut by_kind: BTreeMap<&str, Vec<Obj>> = BTreeMap::new();
    for (i, raw) in objects.iter().enumerate() {
        let Some(obj) = read(raw, i, &mut w) else {
            continue;
        };
        let kind: &'static str = match obj.kind.as_str() {
            "IPAddressPool" => "IPAddressPool",
            "L2Advertisement" => "L2Advertisement",
            "BGPPeer" => "BGPPeer",
            "BGPAdvertisement" => "BGPAdvertisement",
            "Community" => "Community",
            other => {
                let why = match other {
                    "BFDProfile" => "BFD is not supported",
                    "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState" => {
                        "status objects are MetalLB's own output"
                    }
                    _ => "FerroLB has no equivalent",
                };
                w.object(&obj.id(), format!("ignored: {why}"));
                continue;
            }
        };
        by_kind.entry(kind).or_default().push(obj);
    }
    let take = |k: &str, m: &mut BTreeMap<&str, Vec<Obj>>| m.remove(k).unwrap_or_default();
    let pools_in = take("IPAddressPool", &mut by_kind);
    let l2_in = take("L2Advertisement", &mut by_kind);
    let peers_in = take("BGPPeer", &mut by_kind);
    let bgp_ads_in = take("BGPAdvertisement", &mut by_kind);
    let communities_in = take("Community", &mut by_kind);

    let mut pools: Vec<PoolDraft> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut taken = Vec::new();
    for obj in &pools_in {
        if !seen.insert(obj.name.clone()) {
            w.at(
                obj,
                "metadata.name",
                "a second IPAddressPool with this name; ignored",
            );
            continue;
        }
        if let Some(p) = pool(obj, &mut taken, &mut w) {
            pools.push(p);
        }
    }
    if pools_in.is_empty() {
        w.0.push("no IPAddressPool in the input: the config has no pools".to_string());
    }

    let l2 = l2_section(&l2_in, &mut pools, &mut w);
    let communities = community_aliases(&communities_in, &mut w);
    let bgp = bgp_section(&peers_in, &bgp_ads_in, &communities, &mut pools, &mut w);

    for p in &mut pools {
        p.out.announce = match (p.l2, p.bgp) {
            (true, true) => vec!["l2".into(), "bgp".into()],
            (false, true) => vec!["bgp".into()],
            (true, false) => Vec::new(),
            (false, false) => {
                w.0.push(format!(
                    "IPAddressPool/{}: no L2Advertisement or BGPAdvertisement selects it: MetalLB allocates from it but announces nothing; FerroLB will announce it with l2",
                    p.out.name
                ));
                Vec::new()
            }
        };
    }
    // MetalLB tries lower priorities first and unset ones last; FerroLB tries pools in config
    // order (restricted pools before open ones), so the order carries the priority.
    pools.sort_by_key(|p| p.priority);
    Imported {
        config: NativeConfig {
            pools: pools.into_iter().map(|p| p.out).collect(),
            l2,
            bgp,
        },
        warnings: w.0,
    }
}

/// One pool; `taken` holds the ranges of the pools read so far, so overlaps are left out.
fn pool(obj: &Obj, taken: &mut Vec<(AddressRange, String)>, w: &mut Warnings) -> Option<PoolDraft> {
    known_fields(obj, POOL_FIELDS, &[], w);
    let mut addresses = Vec::new();
    for (i, a) in strings(obj, "addresses", w).into_iter().enumerate() {
        let field = format!("spec.addresses[{i}]");
        let (range, text) = match a.parse::<AddressRange>() {
            Ok(r) => (r, a.trim().to_string()),
            // MetalLB (Go's net.ParseCIDR) masks the host bits; FerroLB's native format
            // rejects them as a typo, so write the masked form.
            Err(RangeError::HostBitsSet(_, fixed)) => {
                match fixed.parse::<AddressRange>() {
                    Ok(r) => {
                        w.at(obj, &field, format!("{a:?} has host bits set; written as {fixed}, the network MetalLB used"));
                        (r, fixed)
                    }
                    Err(e) => {
                        w.at(
                            obj,
                            &field,
                            format!("{a:?} is not a CIDR or range ({e}); left out"),
                        );
                        continue;
                    }
                }
            }
            Err(e) => {
                w.at(
                    obj,
                    &field,
                    format!("{a:?} is not a CIDR or range ({e}); left out"),
                );
                continue;
            }
        };
        // MetalLB's webhook rejects overlapping pools; a file assembled from several clusters
        // or edited by hand may still have them, and the native format rejects them too.
        if let Some((_, owner)) = taken.iter().find(|(r, _)| r.overlaps(&range)) {
            w.at(obj, &field, format!("{a:?} overlaps {owner}; left out"));
            continue;
        }
        taken.push((range, format!("{}.{field}", obj.id())));
        addresses.push(text);
    }
    if addresses.is_empty() {
        w.at(obj, "spec.addresses", "no usable address; pool left out");
        return None;
    }
    let mut out = PoolOut {
        name: obj.name.clone(),
        addresses,
        auto_assign: boolean(obj, "autoAssign", true, w),
        avoid_buggy_ips: boolean(obj, "avoidBuggyIPs", false, w),
        namespaces: Vec::new(),
        service_selector: BTreeMap::new(),
        announce: Vec::new(),
    };
    let mut priority = u64::MAX;
    match obj.spec.get("serviceAllocation") {
        None | Some(Value::Null) => {}
        Some(Value::Object(sa)) => {
            let sub = Obj {
                kind: obj.kind.clone(),
                name: obj.name.clone(),
                labels: BTreeMap::new(),
                spec: sa.clone(),
            };
            for key in sa.keys() {
                if ![
                    "priority",
                    "namespaces",
                    "namespaceSelectors",
                    "serviceSelectors",
                ]
                .contains(&key.as_str())
                {
                    w.at(
                        obj,
                        &format!("spec.serviceAllocation.{key}"),
                        "not a field of MetalLB's serviceAllocation; ignored",
                    );
                }
            }
            if let Some(p) = number(&sub, "priority", w).filter(|p| *p > 0) {
                priority = p;
            }
            out.namespaces = strings(&sub, "namespaces", w);
            let ns_selectors = selectors(&sub, "namespaceSelectors", w);
            if !ns_selectors.is_empty() {
                if out.namespaces.is_empty() {
                    out.auto_assign = false;
                    w.at(obj, "spec.serviceAllocation.namespaceSelectors", "not carried over: FerroLB matches namespaces by name only; the pool is imported with autoAssign: false so it is not handed to namespaces MetalLB would refuse (list the namespaces in `namespaces` instead)");
                } else {
                    w.at(obj, "spec.serviceAllocation.namespaceSelectors", format!("not carried over: FerroLB matches namespaces by name only; only {:?} may use the pool", out.namespaces));
                }
            }
            let svc = selectors(&sub, "serviceSelectors", w);
            match list_as_match_labels(&svc) {
                Some(labels) => out.service_selector = labels,
                None => {
                    out.auto_assign = false;
                    w.at(obj, "spec.serviceAllocation.serviceSelectors", "not carried over: FerroLB's serviceSelector is one matchLabels (or In with one value); the pool is imported with autoAssign: false so it is not handed to Services MetalLB would refuse");
                }
            }
        }
        Some(_) => w.at(obj, "spec.serviceAllocation", "expected an object; ignored"),
    }
    Some(PoolDraft {
        out,
        labels: obj.labels.clone(),
        priority,
        l2: false,
        bgp: false,
    })
}

/// The pools an advertisement applies to (by name and by label selector; neither = all), as
/// indices into `pools`. Names of pools that do not exist are warned about.
fn selected(obj: &Obj, pools: &[PoolDraft], w: &mut Warnings) -> (Vec<usize>, bool) {
    let names = strings(obj, "ipAddressPools", w);
    let sels = selectors(obj, "ipAddressPoolSelectors", w);
    if names.is_empty() && sels.is_empty() {
        return ((0..pools.len()).collect(), true);
    }
    for (i, n) in names.iter().enumerate() {
        if !pools.iter().any(|p| &p.out.name == n) {
            w.at(
                obj,
                &format!("spec.ipAddressPools[{i}]"),
                format!("no IPAddressPool named {n:?} in the input"),
            );
        }
    }
    let picked = pools
        .iter()
        .enumerate()
        .filter(|(_, p)| names.contains(&p.out.name) || sels.iter().any(|s| s.matches(&p.labels)))
        .map(|(i, _)| i)
        .collect();
    (picked, false)
}

fn l2_section(ads: &[Obj], pools: &mut [PoolDraft], w: &mut Warnings) -> Option<L2Section> {
    let mut node_selectors = Vec::new();
    let mut interfaces = Vec::new();
    for obj in ads {
        known_fields(obj, L2_FIELDS, &[], w);
        for i in selected(obj, pools, w).0 {
            pools[i].l2 = true;
        }
        if obj
            .spec
            .get("serviceSelectors")
            .is_some_and(|v| !v.is_null())
        {
            w.at(
                obj,
                "spec.serviceSelectors",
                "not carried over: FerroLB announces every Service of an l2 pool",
            );
        }
        if obj
            .spec
            .get("preferredNodeSelectors")
            .is_some_and(|v| !v.is_null())
        {
            w.at(obj, "spec.preferredNodeSelectors", "not carried over: FerroLB picks the announcing node by rendezvous hashing over the eligible nodes");
        }
        node_selectors.push(list_as_match_labels(&selectors(obj, "nodeSelectors", w)));
        let mut names = strings(obj, "interfaces", w);
        names.sort();
        names.dedup();
        interfaces.push(names);
    }
    let mut section = L2Section::default();
    // FerroLB's l2 settings are global: carry them over only when every L2Advertisement agrees.
    let same_nodes = node_selectors.windows(2).all(|p| p[0] == p[1]);
    match node_selectors.first() {
        Some(Some(labels)) if same_nodes => section.node_selector = labels.clone(),
        Some(_) => {
            for (obj, sel) in ads.iter().zip(&node_selectors) {
                if sel.as_ref().is_none_or(|s| !s.is_empty()) {
                    w.at(obj, "spec.nodeSelectors", "not carried over: FerroLB has one l2.nodeSelector (matchLabels) for every pool, and the L2Advertisements differ or use expressions; every node may announce");
                }
            }
        }
        None => {}
    }
    let same_ifaces = interfaces.windows(2).all(|p| p[0] == p[1]);
    match interfaces.first() {
        Some(names) if same_ifaces => {
            section.interfaces = names
                .iter()
                .map(|n| format!("^{}$", regex::escape(n)))
                .collect();
        }
        Some(_) => {
            for (obj, names) in ads.iter().zip(&interfaces) {
                if !names.is_empty() {
                    w.at(obj, "spec.interfaces", "not carried over: FerroLB has one l2.interfaces list for every pool, and the L2Advertisements differ; FerroLB picks the interface whose subnet holds the IP");
                }
            }
        }
        None => {}
    }
    (section != L2Section::default()).then_some(section)
}

fn community_aliases(objs: &[Obj], w: &mut Warnings) -> BTreeMap<String, String> {
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
fn community(
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
fn advertisement_communities(
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

fn bgp_section(
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
        if obj
            .spec
            .get("serviceSelectors")
            .is_some_and(|v| !v.is_null())
        {
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
