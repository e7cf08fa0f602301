//! A set of `u128` values stored as maximal runs, so that "the lowest value not in the set
//! within `lo..=hi`" costs one or two map lookups however large the range is. This is what lets
//! a /64 pool work without enumerating it: memory grows with the number of runs, which is at
//! most the number of allocations.

use std::collections::BTreeMap;

/// Values in use, as maximal runs `start -> end` (inclusive). Adjacent runs are always merged,
/// so the value after a run's end is never in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    runs: BTreeMap<u128, u128>,
    len: u128,
}

impl IntervalSet {
    /// How many values are in the set.
    pub fn len(&self) -> u128 {
        self.len
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How many maximal runs the set is stored as (for tests and memory reasoning).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The run containing `v`, if any.
    fn run_of(&self, v: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=v)
            .next_back()
            .filter(|(_, end)| **end >= v)
            .map(|(s, e)| (*s, *e))
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u128) -> bool {
        self.run_of(v).is_some()
    }

    /// Adds `v`; returns `false` when it was already present.
    pub fn insert(&mut self, v: u128) -> bool {
        if self.contains(v) {
            return false;
        }
        let before = v
            .checked_sub(1)
            .and_then(|p| self.run_of(p))
            .map(|(s, _)| s);
        let after = v
            .checked_add(1)
            .and_then(|n| self.runs.get(&n).copied().map(|e| (n, e)));
        let start = before.unwrap_or(v);
        let end = match after {
            Some((next_start, next_end)) => {
                self.runs.remove(&next_start);
                next_end
            }
            None => v,
        };
        self.runs.insert(start, end);
        self.len += 1;
        true
    }

    /// Removes `v`; returns `false` when it was not present.
    pub fn remove(&mut self, v: u128) -> bool {
        let Some((start, end)) = self.run_of(v) else {
            return false;
        };
        self.runs.remove(&start);
        if start < v {
            self.runs.insert(start, v - 1);
        }
        if v < end {
            self.runs.insert(v + 1, end);
        }
        self.len -= 1;
        true
    }

    /// The lowest value in `lo..=hi` not in the set.
    pub fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        let candidate = match self.run_of(lo) {
            // The value after a maximal run is free by construction.
            Some((_, end)) => end.checked_add(1)?,
            None => lo,
        };
        (candidate <= hi).then_some(candidate)
    }

    /// The highest value in `lo..=hi` not in the set.
    pub fn last_free(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        let candidate = match self.run_of(hi) {
            Some((start, _)) => start.checked_sub(1)?,
            None => hi,
        };
        (candidate >= lo).then_some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_on_insert_and_split_on_remove() {
        let mut s = IntervalSet::default();
        assert!(s.insert(5) && s.insert(7) && s.insert(6));
        assert_eq!((s.runs(), s.len()), (1, 3));
        assert!(!s.insert(6), "a second insert reports the value as present");
        assert!(s.remove(6));
        assert_eq!((s.runs(), s.len()), (2, 2));
        assert!(s.contains(5) && !s.contains(6) && s.contains(7));
        assert!(!s.remove(6));
    }

    #[test]
    fn first_and_last_free_skip_whole_runs() {
        let mut s = IntervalSet::default();
        for v in 10..=20 {
            s.insert(v);
        }
        assert_eq!(s.first_free(10, 30), Some(21));
        assert_eq!(s.first_free(10, 20), None);
        assert_eq!(s.first_free(0, 30), Some(0));
        assert_eq!(s.last_free(0, 20), Some(9));
        assert_eq!(s.last_free(10, 20), None);
        assert_eq!(s.last_free(0, 30), Some(30));
    }

    #[test]
    fn works_at_the_edges_of_u128() {
        let mut s = IntervalSet::default();
        assert!(s.insert(u128::MAX) && s.insert(u128::MAX - 1) && s.insert(0));
        assert_eq!(s.runs(), 2);
        assert_eq!(s.first_free(u128::MAX - 1, u128::MAX), None);
        assert_eq!(s.last_free(0, 0), None);
        assert_eq!(s.first_free(0, u128::MAX), Some(1));
        assert!(s.remove(u128::MAX));
        assert_eq!(s.last_free(0, u128::MAX), Some(u128::MAX));
    }
}
