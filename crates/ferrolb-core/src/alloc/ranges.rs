//! The pools' ranges as the allocator sees them: which range holds an address, and which
//! addresses of a range are free.
//!
//! A pool with `avoid_buggy_ips` must skip every IPv4 `.0` and `.255`. Rather than marking those
//! as used (a /8 would need 130 000 entries) each range works in *slots*: for such a range the
//! slot numbering simply leaves those addresses out, so "lowest free slot" stays one or two map
//! lookups and never walks past skipped addresses.

use super::free_space::IntervalSet;
use crate::addr::{AddressRange, Family};
use crate::pool::Pool;

/// How addresses map to slots in one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slots {
    /// Every address is a slot, numbered by its value.
    Every,
    /// IPv4 without `.0` and `.255`: 254 slots per /24.
    SkipBuggy,
}

impl Slots {
    /// The slot of `v`, or `None` when `v` is skipped.
    fn of(self, v: u128) -> Option<u128> {
        match self {
            Slots::Every => Some(v),
            Slots::SkipBuggy => {
                let low = v & 0xff;
                (low != 0 && low != 0xff).then(|| (v >> 8) * 254 + (low - 1))
            }
        }
    }

    /// The address of slot `s`.
    fn address(self, s: u128) -> u128 {
        match self {
            Slots::Every => s,
            Slots::SkipBuggy => ((s / 254) << 8) | (s % 254 + 1),
        }
    }

    /// The first slot at or after address `v`, for the start of a range.
    fn ceil(self, v: u128) -> u128 {
        match self {
            Slots::Every => v,
            Slots::SkipBuggy => match v & 0xff {
                0 => (v >> 8) * 254,
                0xff => ((v >> 8) + 1) * 254,
                low => (v >> 8) * 254 + (low - 1),
            },
        }
    }

    /// One past the last slot at or before address `v`, for the end of a range; exclusive so
    /// that a range holding no slot (`10.0.0.0-10.0.0.0`) comes out empty without underflow.
    fn floor_exclusive(self, v: u128) -> u128 {
        match self {
            Slots::Every => v.saturating_add(1),
            Slots::SkipBuggy => match v & 0xff {
                0 => (v >> 8) * 254,
                0xff => ((v >> 8) + 1) * 254,
                low => (v >> 8) * 254 + low,
            },
        }
    }
}

/// One range of one pool, with the slots in use.
#[derive(Debug, Clone)]
pub(super) struct RangeState {
    /// Index of the owning pool in the allocator's pool list.
    pub pool: usize,
    /// The addresses.
    pub range: AddressRange,
    slots: Slots,
    /// First slot, and one past the last (`lo == end` means no usable slot).
    lo: u128,
    end: u128,
    used: IntervalSet,
    /// Held addresses of the range that are not slots (a `.0` held from before the pool
    /// gained `avoid_buggy_ips`); they count as in use but are never handed out.
    unslotted_in_use: u128,
}

impl RangeState {
    fn new(pool: usize, range: AddressRange, avoid_buggy: bool) -> Self {
        let slots = if avoid_buggy && range.family() == Family::V4 {
            Slots::SkipBuggy
        } else {
            Slots::Every
        };
        let lo = slots.ceil(range.first_value());
        let end = slots.floor_exclusive(range.last_value()).max(lo);
        Self {
            pool,
            range,
            slots,
            lo,
            end,
            used: IntervalSet::default(),
            unslotted_in_use: 0,
        }
    }

    /// How many addresses can be handed out, saturating for `::/0`.
    pub fn total(&self) -> u128 {
        let n = self.end - self.lo;
        // `floor_exclusive` saturates at u128::MAX for the very last address.
        if self.slots == Slots::Every && self.range.last_value() == u128::MAX {
            n.saturating_add(1)
        } else {
            n
        }
    }

    /// How many addresses of the range are held.
    pub fn in_use(&self) -> u128 {
        self.used.len().saturating_add(self.unslotted_in_use)
    }

    /// Whether `v` may be handed out by this range at all.
    pub fn is_usable(&self, v: u128) -> bool {
        self.slots.of(v).is_some()
    }

    fn last_slot(&self) -> Option<u128> {
        // Saturation above makes `end` one short for an range ending at u128::MAX; include it.
        if self.slots == Slots::Every && self.range.last_value() == u128::MAX {
            return Some(u128::MAX);
        }
        (self.end > self.lo).then(|| self.end - 1)
    }

    /// The lowest free address.
    pub fn lowest_free(&self) -> Option<u128> {
        let hi = self.last_slot()?;
        self.used
            .first_free(self.lo, hi)
            .map(|s| self.slots.address(s))
    }

    /// The highest free address.
    pub fn highest_free(&self) -> Option<u128> {
        let hi = self.last_slot()?;
        self.used
            .last_free(self.lo, hi)
            .map(|s| self.slots.address(s))
    }

    /// Marks `v` (an address of this range) held.
    pub fn take(&mut self, v: u128) {
        match self.slots.of(v) {
            Some(s) => {
                self.used.insert(s);
            }
            None => self.unslotted_in_use += 1,
        }
    }

    /// Marks `v` (an address of this range) free again.
    pub fn give_back(&mut self, v: u128) {
        match self.slots.of(v) {
            Some(s) => {
                self.used.remove(s);
            }
            None => self.unslotted_in_use = self.unslotted_in_use.saturating_sub(1),
        }
    }
}

/// Every range of every pool, findable by address.
///
/// Ranges may overlap: kube-vip-cloud-provider lets a `cidr-<namespace>` pool and `cidr-global`
/// share addresses. An address reachable from several ranges is taken and given back in all of
/// them at once, so each range's free space always excludes what any pool handed out, and an
/// address can never go to two Services through two pools.
#[derive(Debug, Clone, Default)]
pub(super) struct RangeIndex {
    pub states: Vec<RangeState>,
    /// `(family, first, last, state index)`, sorted by family and first address.
    sorted: Vec<(Family, u128, u128, usize)>,
    /// For each entry of `sorted`: the highest `last` among it and the entries before it of the
    /// same family, so a lookup knows when no earlier range can reach an address.
    reach: Vec<u128>,
}

impl RangeIndex {
    /// Indexes the ranges of `pools`, overlapping or not.
    pub fn new(pools: &[Pool]) -> Self {
        let mut index = Self::default();
        for (p, pool) in pools.iter().enumerate() {
            for range in &pool.ranges {
                let i = index.states.len();
                index
                    .sorted
                    .push((range.family(), range.first_value(), range.last_value(), i));
                index
                    .states
                    .push(RangeState::new(p, *range, pool.avoid_buggy_ips));
            }
        }
        index.sorted.sort_unstable();
        let mut prev: Option<(Family, u128)> = None;
        for &(family, _, last, _) in &index.sorted {
            let reach = match prev {
                Some((f, r)) if f == family => r.max(last),
                _ => last,
            };
            index.reach.push(reach);
            prev = Some((family, reach));
        }
        index
    }

    /// Every range holding the address `(family, v)`, in no particular order, without
    /// allocating: this is on every take and give-back. Walks back from the last range
    /// starting at or before `v` while the running maximum of ends still reaches `v`, so
    /// without overlaps it yields after one binary search and one step.
    fn holding(&self, family: Family, v: u128) -> impl Iterator<Item = usize> + '_ {
        let end = self.sorted.partition_point(|e| (e.0, e.1) <= (family, v));
        (0..end)
            .rev()
            .take_while(move |&j| self.sorted[j].0 == family && self.reach[j] >= v)
            .filter(move |&j| self.sorted[j].2 >= v)
            .map(move |j| self.sorted[j].3)
    }

    /// Every range holding the address `(family, v)`, in config order (pool order, then the
    /// order the ranges are written).
    pub fn find_all(&self, family: Family, v: u128) -> Vec<usize> {
        let mut out: Vec<usize> = self.holding(family, v).collect();
        out.sort_unstable();
        out
    }

    /// The first range (in config order) holding the address `(family, v)`.
    pub fn find(&self, family: Family, v: u128) -> Option<usize> {
        self.holding(family, v).min()
    }

    /// Marks `(family, v)` held in every range that holds it.
    pub fn take(&mut self, family: Family, v: u128) {
        let mut holding = self.holding(family, v);
        let Some(first) = holding.next() else {
            return;
        };
        // Rarely more than one: only overlapping kube-vip pools share an address.
        let rest: Vec<usize> = holding.collect();
        self.states[first].take(v);
        for i in rest {
            self.states[i].take(v);
        }
    }

    /// Marks `(family, v)` free again in every range that holds it.
    pub fn give_back(&mut self, family: Family, v: u128) {
        let mut holding = self.holding(family, v);
        let Some(first) = holding.next() else {
            return;
        };
        let rest: Vec<usize> = holding.collect();
        self.states[first].give_back(v);
        for i in rest {
            self.states[i].give_back(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &str, avoid: bool) -> RangeState {
        RangeState::new(0, text.parse().unwrap(), avoid)
    }

    #[test]
    fn skip_buggy_slots_round_trip() {
        let s = Slots::SkipBuggy;
        for v in [1u128, 254, 257, 0x0a00_00fe, 0x0a00_0101] {
            let slot = s.of(v).unwrap();
            assert_eq!(s.address(slot), v);
        }
        assert_eq!(s.of(0x0a00_0100), None);
        assert_eq!(s.of(0x0a00_00ff), None);
    }

    #[test]
    fn totals_respect_avoid_buggy_and_huge_ranges() {
        assert_eq!(state("10.0.0.0/24", true).total(), 254);
        assert_eq!(state("10.0.0.0/24", false).total(), 256);
        assert_eq!(state("10.0.0.0/23", true).total(), 508);
        assert_eq!(state("10.0.0.255-10.0.1.0", true).total(), 0);
        assert_eq!(state("10.0.0.0", true).total(), 0);
        assert_eq!(state("fd00::/64", true).total(), 1 << 64);
        assert_eq!(state("::/0", false).total(), u128::MAX);
    }

    #[test]
    fn lowest_and_highest_free_skip_buggy_and_used() {
        let mut r = state("10.0.0.254-10.0.1.2", true);
        assert_eq!(r.lowest_free(), Some(0x0a00_00fe));
        r.take(0x0a00_00fe);
        assert_eq!(
            r.lowest_free(),
            Some(0x0a00_0101),
            ".255 and .0 are skipped"
        );
        assert_eq!(r.highest_free(), Some(0x0a00_0102));
        r.take(0x0a00_0101);
        r.take(0x0a00_0102);
        assert_eq!((r.lowest_free(), r.in_use()), (None, 3));
        r.give_back(0x0a00_0101);
        assert_eq!(r.lowest_free(), Some(0x0a00_0101));
    }

    #[test]
    fn range_ending_at_the_top_of_ipv6() {
        let mut r = state("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", false);
        assert_eq!(r.total(), 2);
        r.take(u128::MAX - 1);
        assert_eq!(r.lowest_free(), Some(u128::MAX));
        r.take(u128::MAX);
        assert_eq!(r.lowest_free(), None);
    }

    #[test]
    fn find_respects_family_and_bounds() {
        let pools = vec![
            Pool::new("a", vec!["10.0.0.0/30".parse().unwrap()]),
            Pool::new("b", vec!["::/126".parse().unwrap()]),
        ];
        let idx = RangeIndex::new(&pools);
        assert_eq!(idx.find(Family::V4, 0x0a00_0003), Some(0));
        assert_eq!(idx.find(Family::V4, 0x0a00_0004), None);
        assert_eq!(idx.find(Family::V6, 2), Some(1));
        assert_eq!(idx.find(Family::V4, 2), None);
    }

    #[test]
    fn find_all_sees_every_overlapping_range() {
        let pools = vec![
            Pool::new("ns", vec!["10.0.0.8/29".parse().unwrap()]),
            Pool::new(
                "global",
                vec![
                    "10.0.0.0/24".parse().unwrap(),
                    "10.0.1.0/30".parse().unwrap(),
                ],
            ),
            Pool::new("b", vec!["::/120".parse().unwrap()]),
        ];
        let idx = RangeIndex::new(&pools);
        assert_eq!(idx.find_all(Family::V4, 0x0a00_000a), vec![0, 1]);
        assert_eq!(
            idx.find_all(Family::V4, 0x0a00_0020),
            vec![1],
            "past the /29"
        );
        assert_eq!(idx.find_all(Family::V4, 0x0a00_0101), vec![2]);
        assert_eq!(idx.find_all(Family::V4, 0x0a00_0104), Vec::<usize>::new());
        assert_eq!(idx.find_all(Family::V6, 0x0a), vec![3]);
    }

    #[test]
    fn taking_an_overlapping_address_takes_it_in_both_ranges() {
        let pools = vec![
            Pool::new("ns", vec!["10.0.0.0/31".parse().unwrap()]),
            Pool::new("global", vec!["10.0.0.0/30".parse().unwrap()]),
        ];
        let mut idx = RangeIndex::new(&pools);
        idx.take(Family::V4, 0x0a00_0000);
        assert_eq!(idx.states[0].lowest_free(), Some(0x0a00_0001));
        assert_eq!(idx.states[1].lowest_free(), Some(0x0a00_0001));
        idx.give_back(Family::V4, 0x0a00_0000);
        assert_eq!(idx.states[1].lowest_free(), Some(0x0a00_0000));
    }
}
