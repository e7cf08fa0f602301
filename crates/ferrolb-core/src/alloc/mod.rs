//! IP allocation from pools: pure, deterministic, and built so that no IP is ever held by two
//! Services except through a valid sharing key, and no IP moves unless its Service asks for
//! something different.
//!
//! The controller calls [`Allocator::restore`] for every Service that already has
//! `status.loadBalancer.ingress` (oldest first) before anything else, then [`Allocator::ensure`]
//! on every reconcile and [`Allocator::release`] when a Service stops being ours. Every map is a
//! `BTreeMap`, so the same calls in the same order give the same answers.

mod error;
mod free_space;
mod holder;
mod place;
mod ranges;
mod sharing;
mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::addr::{ip_to_u128, Family};
use crate::pool::Pool;
use crate::service::{AllocationRequest, ServiceKey, SharingAttrs};

pub use error::{AllocError, NoPoolWhy, RestoreError};
pub use free_space::IntervalSet;
pub use holder::{Holder, Quarantine};

use holder::Who;
pub use sharing::{conflict as sharing_conflict, SharingConflict};
pub use stats::PoolStats;

use ranges::RangeIndex;

/// One address held by a Service and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedIp {
    /// The address.
    pub ip: IpAddr,
    /// The pool whose ranges contain it; `None` when a config change left it outside every
    /// pool ("orphaned": kept, never silently moved).
    pub pool: Option<String>,
}

/// The addresses a Service holds; what the controller writes into its status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    /// One address per family, primary family first.
    pub ips: Vec<AssignedIp>,
    /// The sharing key in force for these addresses: the Service's own, or its pool's
    /// `default_sharing_key`.
    pub sharing_key: Option<String>,
}

impl Allocation {
    /// The addresses alone, in order, for `status.loadBalancer.ingress`.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.ips.iter().map(|a| a.ip).collect()
    }

    /// The pool to report in `ferrolb.io/allocated-from-pool`: the first address's pool.
    pub fn pool(&self) -> Option<&str> {
        self.ips.iter().find_map(|a| a.pool.as_deref())
    }

    /// Whether some address lies outside every pool, which deserves a Warning Event.
    pub fn is_orphaned(&self) -> bool {
        self.ips.iter().any(|a| a.pool.is_none())
    }
}

/// What a config change did to existing allocations. Nothing is moved; this only tells the
/// controller whom to warn and whose `allocated-from-pool` annotation to refresh.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolChange {
    /// Services with an address that was in a pool and now lies outside every pool.
    pub orphaned: Vec<ServiceKey>,
    /// Services with an address that was outside every pool and now lies in one again.
    pub placeable_again: Vec<ServiceKey>,
    /// Services with an address that now belongs to a pool with a different name.
    pub pool_changed: Vec<ServiceKey>,
}

/// What is stored per Service beyond its addresses: enough to re-check the sharing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    alloc: Allocation,
    own_key: Option<String>,
    attrs: SharingAttrs,
}

/// An address as a map key: family first so IPv4 value 10 and `::a` never meet.
type IpKey = (Family, u128);

fn ip_key(ip: &IpAddr) -> IpKey {
    (Family::of(ip), ip_to_u128(ip))
}

/// The allocator: pools, and who holds which address.
#[derive(Debug, Clone)]
pub struct Allocator {
    pools: Vec<Pool>,
    ranges: RangeIndex,
    services: BTreeMap<ServiceKey, Record>,
    /// Addresses given up but possibly still shown ([`Holder::Quarantine`]).
    quarantines: BTreeMap<Quarantine, Record>,
    /// Holders per address, sorted. A sorted `Vec` rather than a `BTreeSet`: almost every
    /// address has one holder, and a one-element `BTreeSet` costs a whole ~500-byte node.
    holders: BTreeMap<IpKey, Vec<Holder>>,
    /// Addresses held under each sharing key, so a Service with a key finds its future
    /// co-holders without scanning every allocation.
    by_key: BTreeMap<String, BTreeSet<IpKey>>,
}

impl Allocator {
    /// An allocator over `pools` (already validated: unique names; overlapping only where the
    /// kube-vip format allows it) with nothing allocated.
    pub fn new(pools: Vec<Pool>) -> Self {
        Self {
            ranges: RangeIndex::new(&pools),
            pools,
            services: BTreeMap::new(),
            quarantines: BTreeMap::new(),
            holders: BTreeMap::new(),
            by_key: BTreeMap::new(),
        }
    }

    /// The pools in force.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Replaces the pools. Every allocation is kept exactly as it is; addresses now outside
    /// every pool stay held and are reported, so a config edit never reshuffles IPs.
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> PoolChange {
        self.ranges = RangeIndex::new(&pools);
        self.pools = pools;
        for (family, v) in self.holders.keys() {
            self.ranges.take(*family, *v);
        }
        let mut change = PoolChange::default();
        // Quarantine holds end on their own; only Services are told about their addresses.
        let quarantined: Vec<Quarantine> = self.quarantines.keys().cloned().collect();
        for q in &quarantined {
            self.repool(Who::Quarantine(q));
        }
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            let (orphaned, again, changed) = self.repool(Who::Service(&key));
            if orphaned {
                change.orphaned.push(key.clone());
            }
            if again {
                change.placeable_again.push(key.clone());
            }
            if changed {
                change.pool_changed.push(key);
            }
        }
        change
    }

    /// Re-derives the pool of each address `who` holds after a pool change; returns whether
    /// one left every pool, one came back into a pool, and one changed pools.
    fn repool(&mut self, who: Who<'_>) -> (bool, bool, bool) {
        let (mut orphaned, mut again, mut changed) = (false, false, false);
        let Some(rec) = self.record(who) else {
            return (false, false, false);
        };
        let new_pools: Vec<Option<String>> = rec
            .alloc
            .ips
            .iter()
            .map(|a| {
                self.pool_for(&a.ip, a.pool.as_deref(), who.namespace(), &BTreeMap::new())
                    .map(|p| self.pools[p].name.clone())
            })
            .collect();
        if let Some(rec) = self.record_mut(who) {
            for (a, new_pool) in rec.alloc.ips.iter_mut().zip(new_pools) {
                match (&a.pool, &new_pool) {
                    (Some(_), None) => orphaned = true,
                    (None, Some(_)) => again = true,
                    (Some(old), Some(new)) if old != new => changed = true,
                    _ => {}
                }
                a.pool = new_pool;
            }
        }
        (orphaned, again, changed)
    }

    fn record(&self, who: Who<'_>) -> Option<&Record> {
        match who {
            Who::Service(key) => self.services.get(key),
            Who::Quarantine(q) => self.quarantines.get(q),
        }
    }

    fn record_mut(&mut self, who: Who<'_>) -> Option<&mut Record> {
        match who {
            Who::Service(key) => self.services.get_mut(key),
            Who::Quarantine(q) => self.quarantines.get_mut(q),
        }
    }

    /// Gives `key` addresses satisfying `req`. Addresses the Service already holds are kept
    /// whenever they still satisfy the request (same requested IPs, same named pool, still
    /// admitted, sharing still valid; orphaned addresses count as satisfying). Otherwise they
    /// are released and a new allocation is made; if that fails the Service holds nothing,
    /// matching the cleared status the controller then writes.
    pub fn ensure(
        &mut self,
        key: &ServiceKey,
        req: &AllocationRequest,
    ) -> Result<Allocation, AllocError> {
        let key = Who::Service(key);
        if let Some(sharing_key) = self.still_satisfies(key, req) {
            let mut alloc = self.update_attrs(key, req, sharing_key);
            if !req.ips.is_empty() && alloc.addresses() != req.ips {
                // The requested addresses, held in another order: list them as asked, as a
                // fresh allocation would.
                alloc
                    .ips
                    .sort_by_key(|a| req.ips.iter().position(|ip| *ip == a.ip));
                if let Some(rec) = self.record_mut(key) {
                    rec.alloc.ips.clone_from(&alloc.ips);
                }
            }
            return Ok(alloc);
        }
        self.release_who(key);
        let (picked, sharing_key) = self.place(key, req)?;
        let alloc = Allocation {
            ips: picked
                .into_iter()
                .map(|(ip, pool)| AssignedIp {
                    ip,
                    pool: Some(self.pools[pool].name.clone()),
                })
                .collect(),
            sharing_key,
        };
        self.insert(key, alloc.clone(), req);
        Ok(alloc)
    }

    /// Replays an address list found in a Service's status at start-up: claims exactly those
    /// addresses, whether or not a pool holds them (orphans are kept and flagged). Fails when
    /// another Service, restored earlier and therefore older, holds one of them incompatibly;
    /// the caller then lets this Service get a new address through [`Allocator::ensure`].
    /// An empty list claims nothing.
    pub fn restore(
        &mut self,
        key: &ServiceKey,
        req: &AllocationRequest,
        ips: &[IpAddr],
    ) -> Result<Allocation, RestoreError> {
        self.restore_who(Who::Service(key), req, ips)
    }

    /// [`Allocator::restore`] for any holder: how a quarantine hold is taken (the addresses a
    /// Service gave up, held beside whoever still shares them).
    pub fn restore_holder(
        &mut self,
        holder: &Holder,
        req: &AllocationRequest,
        ips: &[IpAddr],
    ) -> Result<Allocation, RestoreError> {
        self.restore_who(holder.who(), req, ips)
    }

    fn restore_who(
        &mut self,
        key: Who<'_>,
        req: &AllocationRequest,
        ips: &[IpAddr],
    ) -> Result<Allocation, RestoreError> {
        for (i, ip) in ips.iter().enumerate() {
            if let Some(other) = ips[..i].iter().find(|o| Family::of(o) == Family::of(ip)) {
                return Err(RestoreError::TwoOfOneFamily {
                    service: key.to_holder(),
                    family: Family::of(ip),
                    first: *other,
                    second: *ip,
                });
            }
        }
        let sharing_key = req.sharing_key.clone().or_else(|| {
            // The first address's pool only, as `place` does, so a restart re-derives the key
            // the allocation was made under.
            ips.first()
                .and_then(|ip| self.pool_for(ip, None, &req.namespace, &req.labels))
                .and_then(|p| self.pools[p].default_sharing_key.clone())
        });
        for ip in ips {
            if let Err((holder, why)) =
                self.check_share(ip, key, sharing_key.as_deref(), &req.sharing)
            {
                return Err(RestoreError::Conflict {
                    service: key.to_holder(),
                    ip: *ip,
                    holder,
                    why: Box::new(why),
                });
            }
        }
        self.release_who(key);
        let alloc = Allocation {
            ips: ips
                .iter()
                .map(|ip| AssignedIp {
                    ip: *ip,
                    pool: self
                        .pool_for(ip, None, &req.namespace, &req.labels)
                        .map(|p| self.pools[p].name.clone()),
                })
                .collect(),
            sharing_key,
        };
        if !alloc.ips.is_empty() {
            self.insert(key, alloc.clone(), req);
        }
        Ok(alloc)
    }

    /// Frees the Service's addresses (shared ones stay held by the other sharers) and returns
    /// what it held.
    pub fn release(&mut self, key: &ServiceKey) -> Option<Allocation> {
        self.release_who(Who::Service(key))
    }

    /// [`Allocator::release`] for any holder: how a quarantine hold ends.
    pub fn release_holder(&mut self, holder: &Holder) -> Option<Allocation> {
        self.release_who(holder.who())
    }

    fn release_who(&mut self, key: Who<'_>) -> Option<Allocation> {
        let rec = match key {
            Who::Service(k) => self.services.remove(k),
            Who::Quarantine(q) => self.quarantines.remove(q),
        }?;
        for a in &rec.alloc.ips {
            self.unhold(key, &a.ip, rec.alloc.sharing_key.as_deref());
        }
        Some(rec.alloc)
    }

    /// What the Service holds.
    pub fn get(&self, key: &ServiceKey) -> Option<&Allocation> {
        self.services.get(key).map(|r| &r.alloc)
    }

    /// The Services holding `ip`, in key order (more than one only through a sharing key).
    /// Quarantine holds are not Services and are not listed.
    pub fn holders(&self, ip: &IpAddr) -> Vec<&ServiceKey> {
        self.holders
            .get(&ip_key(ip))
            .map(|s| s.iter().filter_map(Holder::service).collect())
            .unwrap_or_default()
    }

    /// Every Service with an allocation, in key order.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceKey, &Allocation)> {
        self.services.iter().map(|(k, r)| (k, &r.alloc))
    }

    /// Every holder with its addresses, quarantine holds included, in holder order.
    pub fn holdings(&self) -> impl Iterator<Item = (Holder, &Allocation)> {
        let services = self
            .services
            .iter()
            .map(|(k, r)| (Holder::Service(k.clone()), &r.alloc));
        let quarantines = self
            .quarantines
            .iter()
            .map(|(q, r)| (Holder::Quarantine(Box::new(q.clone())), &r.alloc));
        services.chain(quarantines)
    }

    /// The sharing attributes stored for the Service, so callers (and tests) can re-check the
    /// sharing rule independently.
    pub fn sharing_attrs(&self, key: &ServiceKey) -> Option<&SharingAttrs> {
        self.services.get(key).map(|r| &r.attrs)
    }

    /// Capacity and usage per pool and family.
    pub fn stats(&self) -> Vec<PoolStats> {
        stats::pool_stats(&self.pools, &self.ranges)
    }

    /// How many distinct held addresses lie outside every pool.
    pub fn orphaned_ips(&self) -> usize {
        self.holders
            .keys()
            .filter(|(f, v)| self.ranges.find(*f, *v).is_none())
            .count()
    }

    /// The indices of the pools containing `ip`, in config order. More than one only where
    /// kube-vip pools overlap.
    fn pools_of(&self, ip: &IpAddr) -> Vec<usize> {
        let (f, v) = ip_key(ip);
        let mut pools: Vec<usize> = self
            .ranges
            .find_all(f, v)
            .into_iter()
            .map(|i| self.ranges.states[i].pool)
            .collect();
        pools.dedup();
        pools
    }

    /// The pool an address counts as coming from. Where pools overlap this is `current` if it
    /// still holds the address (so a config reload renames nothing), else the first pool that
    /// could have handed it to the Service (admits it, does not avoid the address) in the order
    /// automatic allocation tries pools (restricted first), else the first pool holding it.
    fn pool_for(
        &self,
        ip: &IpAddr,
        current: Option<&str>,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<usize> {
        let pools = self.pools_of(ip);
        if let [only] = pools.as_slice() {
            return Some(*only);
        }
        if let Some(p) = current.and_then(|c| pools.iter().find(|&&p| self.pools[p].name == c)) {
            return Some(*p);
        }
        let (f, v) = ip_key(ip);
        let usable_in: Vec<usize> = self
            .ranges
            .find_all(f, v)
            .into_iter()
            .filter(|&r| self.ranges.states[r].is_usable(v))
            .map(|r| self.ranges.states[r].pool)
            .collect();
        let mut admitting: Vec<usize> = usable_in
            .iter()
            .copied()
            .filter(|&p| self.pools[p].admits(namespace, labels))
            .collect();
        admitting.sort_by_key(|&p| !self.pools[p].is_restricted());
        admitting.first().or(pools.first()).copied()
    }

    /// `Err((holder, why))` when `me` may not hold `ip` next to its current holders.
    fn check_share(
        &self,
        ip: &IpAddr,
        me: Who<'_>,
        sharing_key: Option<&str>,
        attrs: &SharingAttrs,
    ) -> Result<(), (Holder, SharingConflict)> {
        let Some(holders) = self.holders.get(&ip_key(ip)) else {
            return Ok(());
        };
        for other in holders.iter().filter(|h| h.who() != me) {
            let Some(rec) = self.record(other.who()) else {
                continue;
            };
            if let Some(why) = sharing::conflict(
                sharing_key,
                attrs,
                rec.alloc.sharing_key.as_deref(),
                &rec.attrs,
            ) {
                return Err((other.clone(), why));
            }
        }
        Ok(())
    }

    /// The sharing key to keep when the held addresses still satisfy `req`, or `None` when
    /// they must be reallocated.
    fn still_satisfies(&self, key: Who<'_>, req: &AllocationRequest) -> Option<Option<String>> {
        let rec = self.record(key)?;
        let held: Vec<IpAddr> = rec.alloc.addresses();
        if !req.ips.is_empty() {
            let mut want = req.ips.clone();
            let mut have = held.clone();
            want.sort();
            have.sort();
            if want != have {
                return None;
            }
        } else {
            let have: BTreeSet<Family> = held.iter().map(Family::of).collect();
            let want: BTreeSet<Family> = req.families.iter().copied().collect();
            let families_ok = if req.require_all {
                have == want
            } else {
                !have.is_empty() && have.is_subset(&want)
            };
            if !families_ok {
                return None;
            }
        }
        for a in &rec.alloc.ips {
            let Some(pool_name) = &a.pool else {
                continue;
            };
            if req.pool.as_ref().is_some_and(|named| named != pool_name) {
                return None;
            }
            let pool = self.pools.iter().find(|p| &p.name == pool_name)?;
            if !pool.admits(&req.namespace, &req.labels) {
                return None;
            }
        }
        // A Service keeps the key its addresses were given under unless it changed its own;
        // a pool's default key changing later must not move anyone.
        let sharing_key = if req.sharing_key == rec.own_key {
            rec.alloc.sharing_key.clone()
        } else {
            req.sharing_key.clone().or_else(|| {
                rec.alloc
                    .ips
                    .first()
                    .and_then(|a| {
                        self.pool_for(&a.ip, a.pool.as_deref(), &req.namespace, &req.labels)
                    })
                    .and_then(|p| self.pools[p].default_sharing_key.clone())
            })
        };
        held.iter()
            .all(|ip| {
                self.check_share(ip, key, sharing_key.as_deref(), &req.sharing)
                    .is_ok()
            })
            .then_some(sharing_key)
    }

    /// Stores new sharing attributes for a Service whose addresses stay.
    fn update_attrs(
        &mut self,
        key: Who<'_>,
        req: &AllocationRequest,
        sharing_key: Option<String>,
    ) -> Allocation {
        let mut alloc = self
            .record(key)
            .map(|r| r.alloc.clone())
            .unwrap_or_default();
        if alloc.sharing_key != sharing_key {
            // Re-index under the new key; the addresses themselves stay put.
            self.release_who(key);
            alloc.sharing_key = sharing_key;
            self.insert(key, alloc.clone(), req);
        } else if let Some(rec) = self.record_mut(key) {
            rec.attrs = req.sharing.clone();
            rec.own_key = req.sharing_key.clone();
        }
        alloc
    }

    fn insert(&mut self, key: Who<'_>, alloc: Allocation, req: &AllocationRequest) {
        for a in &alloc.ips {
            let k = ip_key(&a.ip);
            let set = self.holders.entry(k).or_default();
            if set.is_empty() {
                self.ranges.take(k.0, k.1);
            }
            if let Err(at) = set.binary_search_by(|h| h.who().cmp(&key)) {
                set.insert(at, key.to_holder());
            }
            if let Some(sk) = &alloc.sharing_key {
                self.by_key.entry(sk.clone()).or_default().insert(k);
            }
        }
        let rec = Record {
            alloc,
            own_key: req.sharing_key.clone(),
            attrs: req.sharing.clone(),
        };
        match key {
            Who::Service(k) => self.services.insert(k.clone(), rec),
            Who::Quarantine(q) => self.quarantines.insert(q.clone(), rec),
        };
    }

    fn unhold(&mut self, key: Who<'_>, ip: &IpAddr, sharing_key: Option<&str>) {
        let k = ip_key(ip);
        let Some(set) = self.holders.get_mut(&k) else {
            return;
        };
        if let Ok(at) = set.binary_search_by(|h| h.who().cmp(&key)) {
            set.remove(at);
        }
        if !set.is_empty() {
            // Co-holders share this Service's key (the sharing rule), so the key index stays.
            return;
        }
        self.holders.remove(&k);
        self.ranges.give_back(k.0, k.1);
        if let Some(sk) = sharing_key {
            if let Some(ips) = self.by_key.get_mut(sk) {
                ips.remove(&k);
                if ips.is_empty() {
                    self.by_key.remove(sk);
                }
            }
        }
    }
}

#[cfg(test)]
mod overlap_tests;
#[cfg(test)]
mod tests;
