//! Reading MetalLB objects: identity, known and unsupported fields, typed field access, each
//! problem recorded as a warning naming the object and the field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::import::selector::{scalar, Selector};

pub(super) const GROUP: &str = "metallb.io/";

/// One MetalLB object, as much as the translation needs of it.
pub(super) struct Obj {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) spec: Map<String, Value>,
}

impl Obj {
    pub(super) fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Whether `spec.<field>` is set to anything but null.
    pub(super) fn has(&self, field: &str) -> bool {
        self.spec.get(field).is_some_and(|v| !v.is_null())
    }
}

/// Collects warnings, each naming the object and the field.
#[derive(Default)]
pub(super) struct Warnings(pub(super) Vec<String>);

impl Warnings {
    pub(super) fn at(&mut self, obj: &Obj, field: &str, msg: impl AsRef<str>) {
        self.0
            .push(format!("{}: {field}: {}", obj.id(), msg.as_ref()));
    }

    pub(super) fn object(&mut self, id: &str, msg: impl AsRef<str>) {
        self.0.push(format!("{id}: {}", msg.as_ref()));
    }
}

/// Fields of each kind's `spec`, and the subset FerroLB carries over; the rest get a warning
/// saying why they are dropped.
pub(super) const POOL_FIELDS: &[&str] = &[
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
];
pub(super) const L2_FIELDS: &[&str] = &[
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "interfaces",
    "serviceSelectors",
    "preferredNodeSelectors",
];
pub(super) const PEER_FIELDS: &[&str] = &[
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
pub(super) const PEER_UNSUPPORTED: &[(&str, &str)] = &[
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
pub(super) const ADV_FIELDS: &[&str] = &[
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

pub(super) fn known_fields(
    obj: &Obj,
    known: &[&str],
    unsupported: &[(&str, &str)],
    w: &mut Warnings,
) {
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

pub(super) fn strings(obj: &Obj, field: &str, w: &mut Warnings) -> Vec<String> {
    match obj.spec.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(_) => {
            w.at(obj, &format!("spec.{field}"), "expected a list; ignored");
            Vec::new()
        }
    }
}

pub(super) fn selectors(obj: &Obj, field: &str, w: &mut Warnings) -> Vec<Selector> {
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

pub(super) fn boolean(obj: &Obj, field: &str, default: bool, w: &mut Warnings) -> bool {
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

pub(super) fn number(obj: &Obj, field: &str, w: &mut Warnings) -> Option<u64> {
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

pub(super) fn text(obj: &Obj, field: &str) -> Option<String> {
    obj.spec
        .get(field)
        .filter(|v| !v.is_null())
        .map(scalar)
        .filter(|s| !s.is_empty())
}

/// Reads one object's identity, or says why it is not one MetalLB object FerroLB imports.
pub(super) fn read(raw: &Value, index: usize, w: &mut Warnings) -> Option<Obj> {
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
