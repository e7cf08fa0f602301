//! The translation itself: MetalLB objects (already split into single objects) to one
//! [`NativeConfig`], with a warning for every field that does not survive.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::output::NativeConfig;
use super::Imported;
use bgp::{bgp_section, community_aliases};
use object::{read, Obj, Warnings};
use pools::{l2_section, pool, PoolDraft};

mod bgp;
mod object;
mod pools;

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
