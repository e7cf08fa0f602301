//! The pool model: what every config format (native, MetalLB legacy, kube-vip) is translated
//! into, and the only thing the allocator reads.

use std::collections::BTreeMap;

use crate::addr::{AddressRange, Family};

/// Which free address a pool hands out first. Ascending is the default everywhere; kube-vip's
/// `search-order: desc` is the only way to get descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchOrder {
    /// Lowest free address first.
    #[default]
    Ascending,
    /// Highest free address first.
    Descending,
}

/// A named set of addresses and the rules for who may get one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique name; what `ferrolb.io/address-pool` refers to.
    pub name: String,
    /// The pool's addresses, as written, in order. Never overlapping within or across pools.
    pub ranges: Vec<AddressRange>,
    /// `false`: only Services that name this pool or request one of its IPs get addresses here.
    pub auto_assign: bool,
    /// `true`: never hand out an IPv4 address ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Namespaces whose Services may use the pool; empty means every namespace.
    pub namespaces: Vec<String>,
    /// `matchLabels` a Service must carry to use the pool; empty means every Service.
    pub service_selector: BTreeMap<String, String>,
    /// Which free address is handed out first.
    pub search_order: SearchOrder,
    /// A sharing key applied to Services from this pool that carry none of their own; this is
    /// how kube-vip's `allow-share-<ns>` is expressed without weakening the sharing rules.
    pub default_sharing_key: Option<String>,
}

impl Pool {
    /// A pool with the defaults of the native format: auto-assigned, open to every namespace
    /// and Service, lowest address first.
    pub fn new(name: impl Into<String>, ranges: Vec<AddressRange>) -> Self {
        Self {
            name: name.into(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            namespaces: Vec::new(),
            service_selector: BTreeMap::new(),
            search_order: SearchOrder::Ascending,
            default_sharing_key: None,
        }
    }

    /// The families the pool has addresses in, in order (IPv4 first).
    pub fn families(&self) -> Vec<Family> {
        let mut f: Vec<Family> = self.ranges.iter().map(AddressRange::family).collect();
        f.sort();
        f.dedup();
        f
    }

    /// How many addresses of `family` the pool holds as written (before `avoid_buggy_ips`),
    /// saturating at `u128::MAX`.
    pub fn size(&self, family: Family) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family() == family)
            .fold(0u128, |acc, r| acc.saturating_add(r.size()))
    }

    /// Whether a Service in `namespace` with `labels` may get an address from this pool.
    pub fn admits(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
            && self
                .service_selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Whether the pool is restricted to some namespaces or Services. Restricted pools are
    /// tried before open ones when a Service names no pool, so a namespace's own pool wins over
    /// a global fallback (the kube-vip `cidr-<ns>` before `cidr-global` rule, generalised).
    pub fn is_restricted(&self) -> bool {
        !self.namespaces.is_empty() || !self.service_selector.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_by_namespace_and_labels() {
        let mut p = Pool::new("p", vec!["10.0.0.0/30".parse().unwrap()]);
        let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
        assert!(p.admits("any", &BTreeMap::new()));
        p.namespaces = vec!["team-a".into()];
        assert!(p.admits("team-a", &BTreeMap::new()) && !p.admits("team-b", &BTreeMap::new()));
        p.service_selector = labels.clone();
        assert!(p.admits("team-a", &labels) && !p.admits("team-a", &BTreeMap::new()));
        assert!(p.is_restricted());
    }

    #[test]
    fn size_and_families() {
        let p = Pool::new(
            "p",
            vec![
                "10.0.0.0/30".parse().unwrap(),
                "fd00::/64".parse().unwrap(),
                "10.0.1.1".parse().unwrap(),
            ],
        );
        assert_eq!(p.families(), vec![Family::V4, Family::V6]);
        assert_eq!(p.size(Family::V4), 5);
        assert_eq!(p.size(Family::V6), 1 << 64);
    }
}
