//! Choosing addresses for a new allocation: requested IPs, a named pool, or automatic pool
//! choice with one pool serving every family when possible.

use std::net::IpAddr;

use super::error::{AllocError, NoPoolWhy};
use super::Who;
use super::{ip_key, Allocator};
use crate::addr::Family;
use crate::pool::{Pool, SearchOrder};
use crate::service::AllocationRequest;

/// Addresses chosen (with the index of their pool) and the sharing key they are held under.
type Placement = (Vec<(IpAddr, usize)>, Option<String>);

/// Why `pool` does not admit the request, in words, or `None` when it does.
fn rejection(pool: &Pool, req: &AllocationRequest) -> Option<String> {
    if !(pool.namespaces.is_empty() || pool.namespaces.contains(&req.namespace)) {
        return Some(format!(
            "namespace {:?} is not in its namespaces {:?}",
            req.namespace, pool.namespaces
        ));
    }
    if !pool.admits(&req.namespace, &req.labels) {
        return Some(format!(
            "the Service's labels do not match its serviceSelector {:?}",
            pool.service_selector
        ));
    }
    None
}

impl Allocator {
    /// Picks addresses for `me` per `req`, without changing any state.
    pub(super) fn place(
        &self,
        me: Who<'_>,
        req: &AllocationRequest,
    ) -> Result<Placement, AllocError> {
        let named = match &req.pool {
            Some(name) => {
                let p = self
                    .pools
                    .iter()
                    .position(|p| &p.name == name)
                    .ok_or_else(|| AllocError::NamedPoolMissing(name.clone()))?;
                if let Some(why) = rejection(&self.pools[p], req) {
                    return Err(AllocError::NamedPoolRejects {
                        pool: name.clone(),
                        why,
                    });
                }
                Some(p)
            }
            None => None,
        };
        if !req.ips.is_empty() {
            return self.place_requested(me, req, named);
        }
        let candidates = match named {
            Some(p) => vec![p],
            None => self.candidate_pools(req)?,
        };
        self.place_auto(me, req, &candidates, named.is_some())
    }

    /// Checks and claims the requested IPs.
    fn place_requested(
        &self,
        me: Who<'_>,
        req: &AllocationRequest,
        named: Option<usize>,
    ) -> Result<Placement, AllocError> {
        let mut picked = Vec::new();
        for ip in &req.ips {
            let (family, v) = ip_key(ip);
            let ranges = self.ranges.find_all(family, v);
            let Some(&first) = ranges.first() else {
                return Err(AllocError::IpOutsidePools(*ip));
            };
            // Where pools overlap (kube-vip), the address may come from any of them that the
            // Service may use, tried in the order automatic allocation tries pools.
            let mut order = ranges.clone();
            order.sort_by_key(|&r| !self.pools[self.ranges.states[r].pool].is_restricted());
            let range = match named {
                Some(n) => match ranges.iter().find(|&&r| self.ranges.states[r].pool == n) {
                    Some(r) => *r,
                    None => {
                        let holders: Vec<String> = ranges
                            .iter()
                            .map(|&r| format!("{:?}", self.pools[self.ranges.states[r].pool].name))
                            .collect();
                        return Err(AllocError::IpNotInNamedPool {
                            ip: *ip,
                            named: self.pools[n].name.clone(),
                            actual: holders.join(", "),
                        });
                    }
                },
                None => order
                    .iter()
                    .copied()
                    .find(|&r| rejection(&self.pools[self.ranges.states[r].pool], req).is_none())
                    .unwrap_or(first),
            };
            let p = self.ranges.states[range].pool;
            let pool = &self.pools[p];
            if let Some(why) = rejection(pool, req) {
                return Err(AllocError::IpPoolRejects {
                    ip: *ip,
                    pool: pool.name.clone(),
                    why,
                });
            }
            if !self.ranges.states[range].is_usable(v) {
                return Err(AllocError::IpAvoided {
                    ip: *ip,
                    pool: pool.name.clone(),
                });
            }
            picked.push((*ip, p));
        }
        let sharing_key = req.sharing_key.clone().or_else(|| {
            picked
                .first()
                .and_then(|(_, p)| self.pools[*p].default_sharing_key.clone())
        });
        for (ip, _) in &picked {
            self.check_share(ip, me, sharing_key.as_deref(), &req.sharing)
                .map_err(|(holder, why)| AllocError::IpInUse {
                    ip: *ip,
                    holder,
                    why,
                })?;
        }
        Ok((picked, sharing_key))
    }

    /// The pools an automatic allocation may use, best first: autoAssign, admitting the
    /// Service, with at least one wanted family; restricted pools before open ones.
    fn candidate_pools(&self, req: &AllocationRequest) -> Result<Vec<usize>, AllocError> {
        let has_family = |p: &Pool| req.families.iter().any(|f| p.families().contains(f));
        let mut candidates: Vec<usize> = (0..self.pools.len())
            .filter(|&i| {
                let p = &self.pools[i];
                p.auto_assign && has_family(p) && p.admits(&req.namespace, &req.labels)
            })
            .collect();
        if candidates.is_empty() {
            return Err(AllocError::NoMatchingPool(self.why_no_pool(req)));
        }
        // Stable: config order within each group.
        candidates.sort_by_key(|&i| !self.pools[i].is_restricted());
        Ok(candidates)
    }

    /// The first filter that removed every pool, for the `no matching pool` message.
    fn why_no_pool(&self, req: &AllocationRequest) -> NoPoolWhy {
        let family = req.families.first().copied().unwrap_or(Family::V4);
        let with_family: Vec<&Pool> = self
            .pools
            .iter()
            .filter(|p| req.families.iter().any(|f| p.families().contains(f)))
            .collect();
        if with_family.is_empty() {
            return NoPoolWhy::NoFamily(family);
        }
        let auto: Vec<&&Pool> = with_family.iter().filter(|p| p.auto_assign).collect();
        if auto.is_empty() {
            return NoPoolWhy::NoneAutoAssign(family);
        }
        if !auto
            .iter()
            .any(|p| p.namespaces.is_empty() || p.namespaces.contains(&req.namespace))
        {
            return NoPoolWhy::Namespace {
                family,
                namespace: req.namespace.clone(),
            };
        }
        NoPoolWhy::Selector(family)
    }

    /// One address per wanted family from the first candidate pool that has them all; for
    /// PreferDualStack, failing that, whatever one pool offers.
    fn place_auto(
        &self,
        me: Who<'_>,
        req: &AllocationRequest,
        candidates: &[usize],
        named: bool,
    ) -> Result<Placement, AllocError> {
        let mut exhausted: Vec<String> = Vec::new();
        let mut exhausted_family: Option<Family> = None;
        for &p in candidates {
            let pool = &self.pools[p];
            let families = pool.families();
            if !req.families.iter().all(|f| families.contains(f)) {
                continue;
            }
            let key = self.effective_key(req, p);
            let mut picked = Vec::new();
            for &family in &req.families {
                match self.pick_in_pool(me, req, p, family, key.as_deref()) {
                    Some(ip) => picked.push((ip, p)),
                    None => {
                        exhausted.push(pool.name.clone());
                        exhausted_family.get_or_insert(family);
                        break;
                    }
                }
            }
            if picked.len() == req.families.len() {
                return Ok((picked, key));
            }
        }
        if !req.require_all {
            for &p in candidates {
                let key = self.effective_key(req, p);
                let families = self.pools[p].families();
                let picked: Vec<(IpAddr, usize)> = req
                    .families
                    .iter()
                    .filter(|f| families.contains(f))
                    .filter_map(|&f| self.pick_in_pool(me, req, p, f, key.as_deref()))
                    .map(|ip| (ip, p))
                    .collect();
                if !picked.is_empty() {
                    return Ok((picked, key));
                }
                let name = &self.pools[p].name;
                if !exhausted.contains(name) {
                    exhausted.push(name.clone());
                }
                if let Some(f) = req.families.iter().find(|f| families.contains(f)) {
                    exhausted_family.get_or_insert(*f);
                }
            }
        }
        match exhausted_family {
            Some(family) => Err(AllocError::PoolExhausted {
                pools: exhausted,
                family,
            }),
            None if named => {
                let pool = &self.pools[candidates[0]];
                let families = pool.families();
                let family = req
                    .families
                    .iter()
                    .copied()
                    .find(|f| !families.contains(f))
                    .unwrap_or(Family::V4);
                Err(AllocError::NamedPoolLacksFamily {
                    pool: pool.name.clone(),
                    family,
                })
            }
            None => Err(AllocError::DualStackUnavailable),
        }
    }

    /// The Service's own key, else the pool's default one.
    fn effective_key(&self, req: &AllocationRequest, pool: usize) -> Option<String> {
        req.sharing_key
            .clone()
            .or_else(|| self.pools[pool].default_sharing_key.clone())
    }

    /// With a sharing key, the lowest address of the pool already held under that key whose
    /// holders all accept `me`; otherwise the pool's first free address in its search order.
    fn pick_in_pool(
        &self,
        me: Who<'_>,
        req: &AllocationRequest,
        p: usize,
        family: Family,
        key: Option<&str>,
    ) -> Option<IpAddr> {
        let ranges = self
            .ranges
            .states
            .iter()
            .filter(|s| s.pool == p && s.range.family() == family);
        if let Some(shared) = key.and_then(|k| self.by_key.get(k)) {
            let best = ranges
                .clone()
                .filter_map(|s| {
                    shared
                        .range((family, s.range.first_value())..=(family, s.range.last_value()))
                        .map(|(f, v)| f.ip_from_u128(*v))
                        .find(|ip| {
                            s.is_usable(ip_key(ip).1)
                                && self.check_share(ip, me, key, &req.sharing).is_ok()
                        })
                })
                .min();
            if best.is_some() {
                return best;
            }
        }
        let free = ranges.filter_map(|s| match self.pools[p].search_order {
            SearchOrder::Ascending => s.lowest_free(),
            SearchOrder::Descending => s.highest_free(),
        });
        let v = match self.pools[p].search_order {
            SearchOrder::Ascending => free.min(),
            SearchOrder::Descending => free.max(),
        }?;
        Some(family.ip_from_u128(v))
    }
}
