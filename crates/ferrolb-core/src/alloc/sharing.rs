//! The one rule that decides whether two Services may hold the same IP. Kept on its own so the
//! allocator, the restore path and the property tests all apply exactly the same rule.

use std::fmt;

use crate::service::{ServicePort, SharingAttrs};

/// Why two Services may not share an IP; the text ends up in user-facing errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharingConflict {
    /// At least one of them has no sharing key.
    NoKey,
    /// Both have keys, but different ones.
    DifferentKeys(String, String),
    /// Both expose this port with this protocol.
    PortOverlap(ServicePort),
    /// One uses `externalTrafficPolicy: Local` and their selectors differ, so the node
    /// announcing the IP could not have both Services' pods.
    SelectorsDiffer,
}

impl fmt::Display for SharingConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharingConflict::NoKey => f.write_str("no common sharing key (allow-shared-ip)"),
            SharingConflict::DifferentKeys(a, b) => {
                write!(f, "sharing keys {a:?} and {b:?} differ")
            }
            SharingConflict::PortOverlap(p) => write!(f, "both use port {p}"),
            SharingConflict::SelectorsDiffer => {
                f.write_str("externalTrafficPolicy is Local and their selectors differ")
            }
        }
    }
}

/// Whether a Service with `key_a`/`a` may hold an IP together with one with `key_b`/`b`:
/// same key, disjoint port/protocol sets, and both `Cluster` or the same selector.
pub fn conflict(
    key_a: Option<&str>,
    a: &SharingAttrs,
    key_b: Option<&str>,
    b: &SharingAttrs,
) -> Option<SharingConflict> {
    let (Some(ka), Some(kb)) = (key_a, key_b) else {
        return Some(SharingConflict::NoKey);
    };
    if ka != kb {
        return Some(SharingConflict::DifferentKeys(
            ka.to_string(),
            kb.to_string(),
        ));
    }
    if let Some(p) = a.ports.intersection(&b.ports).next() {
        return Some(SharingConflict::PortOverlap(*p));
    }
    let both_cluster = !a.external_traffic_local && !b.external_traffic_local;
    if !both_cluster && a.selector != b.selector {
        return Some(SharingConflict::SelectorsDiffer);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Protocol;
    use std::collections::BTreeMap;

    fn attrs(ports: &[(u16, Protocol)], local: bool, app: &str) -> SharingAttrs {
        SharingAttrs {
            ports: ports
                .iter()
                .map(|(port, protocol)| ServicePort {
                    port: *port,
                    protocol: *protocol,
                })
                .collect(),
            external_traffic_local: local,
            selector: BTreeMap::from([("app".to_string(), app.to_string())]),
        }
    }

    #[test]
    fn needs_the_same_key_on_both_sides() {
        let a = attrs(&[(80, Protocol::Tcp)], false, "x");
        let b = attrs(&[(443, Protocol::Tcp)], false, "y");
        assert_eq!(
            conflict(None, &a, Some("k"), &b),
            Some(SharingConflict::NoKey)
        );
        assert_eq!(
            conflict(Some("k"), &a, None, &b),
            Some(SharingConflict::NoKey)
        );
        assert!(matches!(
            conflict(Some("k"), &a, Some("j"), &b),
            Some(SharingConflict::DifferentKeys(..))
        ));
        assert_eq!(conflict(Some("k"), &a, Some("k"), &b), None);
    }

    #[test]
    fn ports_conflict_only_with_the_same_protocol() {
        let a = attrs(&[(53, Protocol::Tcp)], false, "x");
        let b = attrs(&[(53, Protocol::Udp)], false, "x");
        let c = attrs(&[(53, Protocol::Tcp), (54, Protocol::Tcp)], false, "x");
        assert_eq!(conflict(Some("k"), &a, Some("k"), &b), None);
        let e = conflict(Some("k"), &a, Some("k"), &c).unwrap();
        assert_eq!(e.to_string(), "both use port 53/TCP");
    }

    #[test]
    fn local_traffic_needs_the_same_selector() {
        let a = attrs(&[(80, Protocol::Tcp)], true, "x");
        let b = attrs(&[(81, Protocol::Tcp)], false, "y");
        let c = attrs(&[(82, Protocol::Tcp)], false, "x");
        assert_eq!(
            conflict(Some("k"), &a, Some("k"), &b),
            Some(SharingConflict::SelectorsDiffer)
        );
        assert_eq!(conflict(Some("k"), &a, Some("k"), &c), None);
        let d = attrs(&[(83, Protocol::Tcp)], false, "z");
        assert_eq!(conflict(Some("k"), &b, Some("k"), &d), None, "both Cluster");
    }
}
