//! Checks that need the whole config at once (names, overlaps across pools) or that are the
//! same whichever format the config was written in.

use std::collections::HashMap;

use crate::addr::Family;
use crate::pool::Pool;

use super::error::Report;
use super::l2::L2Config;
use super::labels;
use super::walk::At;

/// A translated pool plus what is needed to point at its parts in the source text.
#[derive(Debug, Clone)]
pub(crate) struct DraftPool {
    /// The pool as it will be used.
    pub(crate) pool: Pool,
    /// Where the pool is written (`pools[1]`, `address-pools[0]`, `cidr-team-a`), used when
    /// its name cannot identify it.
    pub(crate) origin: String,
    /// For each of `pool.ranges`: the field it came from and the text as written, so overlap
    /// errors quote what the operator typed rather than a normalised form.
    pub(crate) sources: Vec<(String, String)>,
    /// How many address entries were written, valid or not; an empty list is its own error,
    /// a list of bad entries has already been reported entry by entry.
    pub(crate) written: usize,
}

impl DraftPool {
    /// Where errors about this pool go: under its name when it has one.
    pub(crate) fn at(&self) -> At<'_> {
        if self.pool.name.is_empty() {
            At {
                pool: None,
                path: self.origin.clone(),
            }
        } else {
            At::pool(&self.pool.name)
        }
    }

    fn label(&self) -> String {
        if self.pool.name.is_empty() {
            self.origin.clone()
        } else {
            format!("pool {:?}", self.pool.name)
        }
    }
}

/// Every pool-level and cross-pool check. `overlaps_allowed` is for kube-vip's format only,
/// where a namespace pool may share addresses with the global one (the allocator still never
/// hands an address out twice); native and MetalLB pools must be disjoint, as in MetalLB.
pub(crate) fn pools(drafts: &[DraftPool], overlaps_allowed: bool, report: &mut Report) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for d in drafts {
        let at = d.at();
        let name = d.pool.name.as_str();
        if name.is_empty() {
            at.key("name").error(report, "must not be empty");
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            at.key("name").error(
                report,
                format!("{name:?} must not contain spaces or control characters (Services name pools in an annotation)"),
            );
        } else if let Some(first) = seen.insert(name, &d.origin) {
            at.key("name").error(
                report,
                format!(
                    "duplicate pool name: {first} and {} are both named {name:?}",
                    d.origin
                ),
            );
        }
        if d.written == 0 {
            at.key("addresses")
                .error(report, "a pool needs at least one address");
        }
        for (i, ns) in d.pool.namespaces.iter().enumerate() {
            if let Err(why) = labels::check_namespace(ns) {
                at.key("namespaces")
                    .index(i)
                    .error(report, format!("{ns:?} is {why}"));
            }
        }
        selector(&d.pool.service_selector, &at.key("serviceSelector"), report);
    }
    if !overlaps_allowed {
        overlaps(drafts, report);
    }
}

/// Past this many, the operator has a systematic mistake (a pool pasted twice) and more
/// lines would only bury the other errors.
const MAX_OVERLAP_ERRORS: usize = 50;

/// Reports every pair of ranges that share an address, naming both.
fn overlaps(drafts: &[DraftPool], report: &mut Report) {
    // (family, first, last, pool index, range index), swept in address order while keeping
    // the ranges that still reach the current one; each of those overlaps it.
    let mut all: Vec<(Family, u128, u128, usize, usize)> = drafts
        .iter()
        .enumerate()
        .flat_map(|(p, d)| {
            d.pool.ranges.iter().enumerate().map(move |(r, range)| {
                (
                    range.family(),
                    range.first_value(),
                    range.last_value(),
                    p,
                    r,
                )
            })
        })
        .collect();
    all.sort_unstable();
    let mut active: Vec<(Family, u128, usize, usize)> = Vec::new();
    let mut reported = 0;
    for &(family, first, last, p, r) in &all {
        active.retain(|&(f, end, _, _)| f == family && end >= first);
        for &(_, _, op, or) in &active {
            reported += 1;
            if reported > MAX_OVERLAP_ERRORS {
                report.error(
                    None,
                    "pools",
                    format!("more than {MAX_OVERLAP_ERRORS} overlapping ranges; the rest are not listed"),
                );
                return;
            }
            overlap(drafts, (p, r), (op, or), report);
        }
        active.push((family, last, p, r));
    }
}

/// Reports one overlapping pair against whichever of the two is written later, so the earlier
/// one reads as the established range and the message points at the newcomer.
fn overlap(drafts: &[DraftPool], a: (usize, usize), b: (usize, usize), report: &mut Report) {
    let ((bp, br), (ep, er)) = if a > b { (a, b) } else { (b, a) };
    let (blamed, earlier) = (&drafts[bp], &drafts[ep]);
    let (field, text) = &blamed.sources[br];
    let (efield, etext) = &earlier.sources[er];
    let whose = if bp == ep {
        "the same pool".to_string()
    } else {
        earlier.label()
    };
    let at = blamed.at();
    let at = At {
        pool: at.pool,
        path: if at.path.is_empty() {
            field.clone()
        } else {
            format!("{}.{field}", at.path)
        },
    };
    at.error(
        report,
        format!("{text:?} overlaps {etext:?} ({efield} of {whose})"),
    );
}

/// Label keys and values a Kubernetes object could actually carry.
fn selector(labels: &std::collections::BTreeMap<String, String>, at: &At, report: &mut Report) {
    for (k, v) in labels {
        if let Err(why) = labels::check_key(k) {
            at.error(report, format!("label key {k:?} is invalid: {why}"));
        }
        if let Err(why) = labels::check_value(v) {
            at.key(k)
                .error(report, format!("label value {v:?} is invalid: {why}"));
        }
    }
}

/// The warning for `l2.garp.burst: 0`, whose meaning the GARP scheduler fixes (one send).
const GARP_BURST_ZERO: &str = "0 is sent as 1: every takeover sends at least one gratuitous ARP, or clients would keep the old MAC until their ARP cache expires; write 1 to say so";

/// Checks of the l2 section that hold whatever format it came from.
pub(crate) fn l2(l2: &L2Config, report: &mut Report) {
    let at = At::root().key("l2");
    selector(&l2.node_selector, &at.key("nodeSelector"), report);
    let garp = at.key("garp");
    if l2.garp.interval.is_zero() {
        garp.key("interval").error(
            report,
            "must be greater than 0s (a burst sent all at once is dropped by switches and hosts alike)",
        );
    }
    if l2.garp.burst == 0 {
        // One meaning, shared with the scheduler (`GarpParams`): a takeover always tells the LAN.
        garp.key("burst").warn(report, GARP_BURST_ZERO);
    }
}
