//! Per-pool capacity and usage, for the `ferrolb_addresses_*` gauges. Counted in `u128` and
//! saturated, because a /64 (MetalLB's PR #3140 bug) must neither overflow nor go negative.

use super::ranges::RangeIndex;
use crate::addr::Family;
use crate::pool::Pool;

/// Capacity and usage of one family of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's name.
    pub pool: String,
    /// The family counted.
    pub family: Family,
    /// Addresses that can be handed out (`.0`/`.255` excluded with `avoid_buggy_ips`).
    pub total: u128,
    /// Addresses held by at least one Service (a shared IP counts once).
    pub in_use: u128,
}

/// One entry per pool and family, in config order, IPv4 first.
pub(super) fn pool_stats(pools: &[Pool], ranges: &RangeIndex) -> Vec<PoolStats> {
    let mut out = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for family in pool.families() {
            let (total, in_use) = ranges
                .states
                .iter()
                .filter(|s| s.pool == p && s.range.family() == family)
                .fold((0u128, 0u128), |(t, u), s| {
                    (t.saturating_add(s.total()), u.saturating_add(s.in_use()))
                });
            out.push(PoolStats {
                pool: pool.name.clone(),
                family,
                total,
                in_use,
            });
        }
    }
    out
}
