//! Who watches whom: each speaker sends its heartbeats by unicast to only [`WATCHERS`] peers,
//! chosen by a pure function every speaker computes the same way from the Leases, so the
//! traffic a speaker sends and receives stays constant whatever the size of its subnet.
//!
//! **The rule.** A member is a live speaker whose `ferrolb.io/heartbeat` advert lists its
//! heartbeat addresses (address/prefix, one per subnet it serves). Each subnet (network and
//! prefix, exactly as members publish it) has a ring of the members with an address in it,
//! ordered by a hash of the node name ([`ring_position`]; ties by name). A member's watchers on
//! a subnet are the next `min(k, n - 1)` members after it on that subnet's ring (`n` members);
//! its watchers are the union over its subnets. Each watcher is reached at its own address on
//! the first (in address order, so IPv4 before IPv6) subnet the two share.
//!
//! **What holds** (property-tested in `tests/heartbeat_props.rs`):
//! * every member that shares a subnet with `p` other members has at least `min(k, p)`
//!   watchers, all sharing a subnet with it, never itself;
//! * on each subnet a member watches at most `k` others (exactly `min(k, n - 1)`), so it
//!   watches at most `k × subnets` peers in all, whatever the cluster size;
//! * a member joining or leaving a ring changes the watchers of at most the `k` members before
//!   it on that ring; every other member keeps its watchers (hashing the name, not the join
//!   order, places members, so no one else moves).
//!
//! Pure and deterministic: no clock, no I/O, no randomness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

use crate::election::MonoTime;

/// How many peers watch each speaker (on each of its subnets).
pub const WATCHERS: usize = 3;

/// How long a speaker keeps sending heartbeats to a peer that stopped being its watcher. Peers
/// see Lease changes at slightly different moments; the dropped watcher still expects our
/// heartbeats until its own view catches up, and must not suspect us meanwhile. A Lease watch
/// event reaches every speaker well within this.
pub const RELEASE_GRACE: Duration = Duration::from_secs(10);

/// One speaker as the ring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node name.
    pub node: String,
    /// Its heartbeat addresses with their prefix lengths (host bits kept).
    pub addrs: Vec<IpNetwork>,
}

/// A member's place on every ring: the first 8 bytes of SHA-256 of its name, so places are
/// spread evenly and every speaker, of any version and architecture, computes the same.
pub fn ring_position(node: &str) -> u64 {
    let digest = Sha256::digest(node.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// A subnet as a ring key: its network address and prefix.
type SubnetKey = (IpAddr, u8);

fn subnet_of(addr: &IpNetwork) -> SubnetKey {
    (addr.network(), addr.prefix())
}

/// The watcher assignment for one view of the members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// node → watcher → the watcher's address to send to.
    watchers: BTreeMap<String, BTreeMap<String, IpAddr>>,
    /// Every subnet's ring, in subnet order: (member, its address there), in ring order.
    rings: Vec<Vec<(String, IpAddr)>>,
}

/// Assigns `k` watchers per subnet to every member.
pub fn assign(members: &[Member], k: usize) -> Assignment {
    // Rings: subnet → members on it (position, name, address in it), in ring order.
    let mut rings: BTreeMap<SubnetKey, Vec<(u64, &str, IpAddr)>> = BTreeMap::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for m in members {
        // A name listed twice is one member (its first entry), so the ring never holds it twice.
        if !seen.insert(m.node.as_str()) {
            continue;
        }
        let pos = ring_position(&m.node);
        let mut subnets_done = BTreeSet::new();
        for a in &m.addrs {
            if subnets_done.insert(subnet_of(a)) {
                rings
                    .entry(subnet_of(a))
                    .or_default()
                    .push((pos, &m.node, a.ip()));
            }
        }
    }
    let mut out = Assignment::default();
    for ring in rings.values_mut() {
        ring.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let n = ring.len();
        for (i, (_, node, _)) in ring.iter().enumerate() {
            let mine = out.watchers.entry((*node).to_owned()).or_default();
            for step in 1..=k.min(n.saturating_sub(1)) {
                let (_, w, addr) = ring[(i + step) % n];
                // Rings are visited in subnet order: the first shared subnet wins.
                mine.entry(w.to_owned()).or_insert(addr);
            }
        }
        out.rings.push(
            ring.iter()
                .map(|(_, node, addr)| ((*node).to_owned(), *addr))
                .collect(),
        );
    }
    out
}

impl Assignment {
    /// `node`'s watchers, each with the address to send its heartbeats to.
    pub fn watchers_of(&self, node: &str) -> BTreeMap<String, IpAddr> {
        self.watchers.get(node).cloned().unwrap_or_default()
    }

    /// The members `node` watches (whose heartbeats it tracks and may suspect).
    pub fn watched_by(&self, node: &str) -> BTreeSet<String> {
        self.watchers
            .iter()
            .filter(|(_, ws)| ws.contains_key(node))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every other member sharing a subnet with `node`, with its address there: where a
    /// suspicion or a refutation is sent.
    pub fn neighbours_of(&self, node: &str) -> BTreeMap<String, IpAddr> {
        let mut out = BTreeMap::new();
        for ring in &self.rings {
            if ring.iter().any(|(n, _)| n == node) {
                for (other, addr) in ring {
                    if other != node {
                        out.entry(other.clone()).or_insert(*addr);
                    }
                }
            }
        }
        out
    }

    /// Whether `node` is on any ring.
    pub fn is_member(&self, node: &str) -> bool {
        self.watchers.contains_key(node)
    }
}

/// Where this speaker sends its heartbeats: its current watchers, plus each watcher it dropped
/// less than [`RELEASE_GRACE`] ago (hysteresis: the dropped watcher may still be watching us
/// until its own view of the Leases catches up).
#[derive(Debug, Clone, Default)]
pub struct SendSet {
    current: BTreeMap<String, IpAddr>,
    released: BTreeMap<String, (IpAddr, MonoTime)>,
}

impl SendSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The watchers are `now` from `at` on.
    pub fn update(&mut self, now: BTreeMap<String, IpAddr>, at: MonoTime) {
        for (node, addr) in std::mem::take(&mut self.current) {
            if !now.contains_key(&node) {
                self.released.insert(node, (addr, at + RELEASE_GRACE));
            }
        }
        for node in now.keys() {
            self.released.remove(node);
        }
        self.released.retain(|_, (_, until)| *until > at);
        self.current = now;
    }

    /// The current watchers.
    pub fn current(&self) -> &BTreeMap<String, IpAddr> {
        &self.current
    }

    /// Where to send a heartbeat at `at`: current watchers and those still in their grace.
    pub fn targets(&self, at: MonoTime) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self.current.values().copied().collect();
        out.extend(
            self.released
                .values()
                .filter(|(_, until)| *until > at)
                .map(|(a, _)| *a),
        );
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node: &str, addrs: &[&str]) -> Member {
        Member {
            node: node.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn lan(n: usize) -> Vec<Member> {
        (1..=n)
            .map(|i| member(&format!("node-{i}"), &[&format!("198.51.100.{i}/24")]))
            .collect()
    }

    #[test]
    fn ring_positions_are_fixed_by_the_name() {
        // Pinned: every speaker version must place members identically.
        assert_eq!(ring_position("node-1"), ring_position("node-1"));
        assert_ne!(ring_position("node-1"), ring_position("node-2"));
        assert_eq!(ring_position(""), 0xe3b0_c442_98fc_1c14);
    }

    #[test]
    fn three_nodes_watch_each_other_and_larger_rings_give_k() {
        let a = assign(&lan(3), WATCHERS);
        for i in 1..=3 {
            let me = format!("node-{i}");
            let w = a.watchers_of(&me);
            assert_eq!(w.len(), 2, "{me}: {w:?}");
            assert!(!w.contains_key(&me));
            assert_eq!(a.watched_by(&me).len(), 2);
        }
        let a = assign(&lan(20), WATCHERS);
        for i in 1..=20 {
            let me = format!("node-{i}");
            assert_eq!(a.watchers_of(&me).len(), 3);
            assert_eq!(a.watched_by(&me).len(), 3);
            assert_eq!(a.neighbours_of(&me).len(), 19);
        }
    }

    #[test]
    fn a_lone_member_has_no_watchers_and_strangers_none_at_all() {
        let a = assign(&lan(1), WATCHERS);
        assert!(a.watchers_of("node-1").is_empty());
        assert!(a.is_member("node-1"));
        assert!(!a.is_member("node-9"));
        assert!(a.watchers_of("node-9").is_empty());
    }

    #[test]
    fn watchers_are_reached_on_a_shared_subnet_in_its_family() {
        let a = assign(
            &[
                member("v4", &["198.51.100.1/24"]),
                member("dual", &["198.51.100.2/24", "2001:db8::2/64"]),
                member("v6", &["2001:db8::3/64"]),
                member("elsewhere", &["203.0.113.4/24"]),
            ],
            WATCHERS,
        );
        let w = a.watchers_of("v6");
        assert_eq!(w.get("dual"), Some(&"2001:db8::2".parse().unwrap()));
        assert!(!w.contains_key("v4"), "v4 shares no subnet with v6");
        let w = a.watchers_of("v4");
        assert_eq!(w.get("dual"), Some(&"198.51.100.2".parse().unwrap()));
        assert!(a.watchers_of("elsewhere").is_empty());
        // The dual-stack node is watched on both rings, once per watcher, IPv4 first.
        let w = a.watchers_of("dual");
        assert_eq!(w.get("v4"), Some(&"198.51.100.1".parse().unwrap()));
        assert_eq!(w.get("v6"), Some(&"2001:db8::3".parse().unwrap()));
    }

    #[test]
    fn the_send_set_keeps_a_dropped_watcher_for_the_grace() {
        let t = MonoTime::from_millis;
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut s = SendSet::new();
        s.update(
            BTreeMap::from([
                ("a".into(), ip("198.51.100.1")),
                ("b".into(), ip("198.51.100.2")),
            ]),
            t(0),
        );
        s.update(BTreeMap::from([("a".into(), ip("198.51.100.1"))]), t(1000));
        assert_eq!(s.current().len(), 1);
        assert_eq!(s.targets(t(1000)), [ip("198.51.100.1"), ip("198.51.100.2")]);
        let end = 1000 + RELEASE_GRACE.as_millis() as u64;
        assert_eq!(s.targets(t(end - 1)).len(), 2);
        assert_eq!(s.targets(t(end)), [ip("198.51.100.1")]);
        // Re-added within the grace: a watcher again, not released.
        s.update(
            BTreeMap::from([
                ("a".into(), ip("198.51.100.1")),
                ("b".into(), ip("198.51.100.2")),
            ]),
            t(2000),
        );
        s.update(
            BTreeMap::from([
                ("a".into(), ip("198.51.100.1")),
                ("b".into(), ip("198.51.100.2")),
            ]),
            t(end + 5000),
        );
        assert_eq!(s.targets(t(end + 5000)).len(), 2);
    }
}
