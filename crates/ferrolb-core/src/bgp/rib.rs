//! Adj-RIB-Out: what a peer has been told, so a change in what we want to advertise becomes
//! the smallest set of announcements and withdrawals instead of a session reset.

use std::collections::BTreeMap;

use super::attrs::RouteAttrs;
use super::prefix::Prefix;

/// The routes sent to one peer on the current session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdjRibOut {
    sent: BTreeMap<Prefix, RouteAttrs>,
}

/// The UPDATE content that brings a peer from what it was told to what is wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibDiff {
    /// Prefixes to withdraw.
    pub withdraw: Vec<Prefix>,
    /// Prefixes to (re)announce with their new attributes; an attribute change is an
    /// announcement alone (it implicitly replaces the old path, RFC 4271 §3.1).
    pub announce: Vec<(Prefix, RouteAttrs)>,
}

impl RibDiff {
    /// Whether nothing needs sending.
    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }
}

impl AdjRibOut {
    /// What the peer currently holds from us.
    pub fn sent(&self) -> &BTreeMap<Prefix, RouteAttrs> {
        &self.sent
    }

    /// Forgets everything: a new session starts from an empty table on the peer's side.
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// Computes and records the change from what was sent to `desired`.
    pub fn sync(&mut self, desired: &BTreeMap<Prefix, RouteAttrs>) -> RibDiff {
        let mut diff = RibDiff::default();
        for p in self.sent.keys() {
            if !desired.contains_key(p) {
                diff.withdraw.push(*p);
            }
        }
        for (p, a) in desired {
            if self.sent.get(p) != Some(a) {
                diff.announce.push((*p, a.clone()));
            }
        }
        for p in &diff.withdraw {
            self.sent.remove(p);
        }
        for (p, a) in &diff.announce {
            self.sent.insert(*p, a.clone());
        }
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::host(s.parse().unwrap())
    }

    #[test]
    fn diff_is_minimal_and_idempotent() {
        let mut rib = AdjRibOut::default();
        let mut want = BTreeMap::new();
        want.insert(p("198.51.100.1"), RouteAttrs::default());
        want.insert(p("198.51.100.2"), RouteAttrs::default());
        let d = rib.sync(&want);
        assert_eq!(d.announce.len(), 2);
        assert!(rib.sync(&want).is_empty());
        want.remove(&p("198.51.100.1"));
        want.insert(
            p("198.51.100.2"),
            RouteAttrs {
                local_pref: Some(200),
                ..RouteAttrs::default()
            },
        );
        let d = rib.sync(&want);
        assert_eq!(d.withdraw, vec![p("198.51.100.1")]);
        assert_eq!(d.announce.len(), 1);
        assert_eq!(d.announce[0].1.local_pref, Some(200));
        assert_eq!(rib.sent(), &want);
    }
}
