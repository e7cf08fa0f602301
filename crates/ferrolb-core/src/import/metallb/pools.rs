//! IPAddressPools and L2Advertisements: the pools, and which of them layer 2 announces.

use std::collections::BTreeMap;

use serde_json::Value;

use super::object::{
    boolean, known_fields, number, selectors, strings, Obj, Warnings, L2_FIELDS, POOL_FIELDS,
};
use crate::addr::{AddressRange, RangeError};
use crate::import::output::{L2Section, PoolOut};
use crate::import::selector::list_as_match_labels;

/// A pool being imported, with what the advertisements need to find it.
pub(super) struct PoolDraft {
    pub(super) out: PoolOut,
    pub(super) labels: BTreeMap<String, String>,
    /// MetalLB's `serviceAllocation.priority`: lower first, 0 (unset) last.
    pub(super) priority: u64,
    pub(super) l2: bool,
    pub(super) bgp: bool,
}

/// One pool; `taken` holds the ranges of the pools read so far, so overlaps are left out.
pub(super) fn pool(
    obj: &Obj,
    taken: &mut Vec<(AddressRange, String)>,
    w: &mut Warnings,
) -> Option<PoolDraft> {
    known_fields(obj, POOL_FIELDS, &[], w);
    let mut addresses = Vec::new();
    for (i, a) in strings(obj, "addresses", w).into_iter().enumerate() {
        let field = format!("spec.addresses[{i}]");
        // MetalLB (Go's net.ParseCIDR) masks the host bits; FerroLB's native format rejects
        // them as a typo, so write the masked form.
        let parsed = match a.parse::<AddressRange>() {
            Err(RangeError::HostBitsSet(_, fixed)) => fixed.parse::<AddressRange>().map(|r| {
                w.at(
                    obj,
                    &field,
                    format!(
                        "{a:?} has host bits set; written as {fixed}, the network MetalLB used"
                    ),
                );
                (r, fixed)
            }),
            other => other.map(|r| (r, a.trim().to_string())),
        };
        let (range, text) = match parsed {
            Ok(ok) => ok,
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
pub(super) fn selected(obj: &Obj, pools: &[PoolDraft], w: &mut Warnings) -> (Vec<usize>, bool) {
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

pub(super) fn l2_section(
    ads: &[Obj],
    pools: &mut [PoolDraft],
    w: &mut Warnings,
) -> Option<L2Section> {
    let mut node_selectors = Vec::new();
    let mut interfaces = Vec::new();
    for obj in ads {
        known_fields(obj, L2_FIELDS, &[], w);
        for i in selected(obj, pools, w).0 {
            pools[i].l2 = true;
        }
        if obj.has("serviceSelectors") {
            w.at(
                obj,
                "spec.serviceSelectors",
                "not carried over: FerroLB announces every Service of an l2 pool",
            );
        }
        if obj.has("preferredNodeSelectors") {
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
