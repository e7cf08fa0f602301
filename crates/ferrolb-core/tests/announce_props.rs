//! Properties of whole speakers' announce state machines run side by side: `election_props.rs`
//! proves them for the bare `winner`/`elect` functions; these prove that a set of
//! [`Announcer`]s, each fed the same leases, demands and clock, turns that into at most one
//! `Start` per IP, and that a peer's death moves only that peer's IPs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_core::arp::GarpParams;
use ferrolb_core::election::{
    elect, Action, Announcer, AnnouncerParams, IpDemand, LeaseSnapshot, MonoTime, NodeFacts,
};
use proptest::prelude::*;

const LEASE: Duration = Duration::from_secs(3);

fn announcer(node: &str) -> Announcer {
    Announcer::new(AnnouncerParams {
        garp: GarpParams {
            burst: 3,
            interval: Duration::from_millis(1100),
            refresh: Duration::ZERO,
        },
        ..AnnouncerParams::new(node, LEASE)
    })
}

fn snapshot(node: &str, version: u64) -> LeaseSnapshot {
    LeaseSnapshot {
        holder: Some(node.to_string()),
        renew_time: Some(format!("t{version}")),
        resource_version: version.to_string(),
        duration: None,
    }
}

/// Every speaker in `live` renews, watches and sees every other one's lease at `at`.
fn heartbeat(speakers: &mut BTreeMap<String, Announcer>, live: &[String], at: MonoTime, v: u64) {
    for a in speakers.values_mut() {
        a.renew_succeeded(at);
        a.watch_ok(at);
        for peer in live {
            a.lease_seen(peer, &snapshot(peer, v), at);
        }
    }
}

/// Which speakers started each IP.
type Starts = BTreeMap<IpAddr, Vec<String>>;

/// An IP's last octet and, for Local policy, the indices of the nodes with endpoints.
type IpSpec = (u8, Option<BTreeSet<u8>>);

/// Takeovers (probes) per IP over all speakers, plus every other action except the `Start`s
/// that complete earlier probes, from one reconcile round.
fn round(
    speakers: &mut BTreeMap<String, Announcer>,
    facts: &[NodeFacts],
    demands: &[IpDemand],
    at: MonoTime,
) -> (Starts, Vec<(String, Action)>) {
    let mut starts: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    let mut other = Vec::new();
    for (name, a) in speakers.iter_mut() {
        for action in a.reconcile(at, facts, demands, &BTreeMap::new()) {
            match action {
                // Winning an IP shows as its RFC 5227 probe; the `Start` that follows when the
                // probe wait is over is the same decision carried out.
                Action::Probe { ip } => starts.entry(ip).or_default().push(name.clone()),
                Action::Start { .. } => {}
                a => other.push((name.clone(), a)),
            }
        }
    }
    (starts, other)
}

fn cluster() -> impl Strategy<Value = (BTreeMap<String, bool>, Vec<IpSpec>)> {
    (
        // node name -> on the VIP subnet
        proptest::collection::btree_map("[a-d](-[0-9])?", any::<bool>(), 1..8),
        // IPs (last octet) and, for Local policy, which node indices have endpoints
        proptest::collection::vec(
            (
                any::<u8>(),
                proptest::option::of(proptest::collection::btree_set(0u8..8, 0..4)),
            ),
            1..12,
        ),
    )
}

fn setup(
    nodes: &BTreeMap<String, bool>,
    ips: &[IpSpec],
) -> (Vec<String>, Vec<NodeFacts>, Vec<IpDemand>) {
    let names: Vec<String> = nodes.keys().cloned().collect();
    let facts: Vec<NodeFacts> = nodes
        .iter()
        .map(|(name, on)| NodeFacts {
            name: name.clone(),
            labels: BTreeMap::new(),
            subnets: vec![if *on {
                "203.0.113.0/24"
            } else {
                "198.51.100.0/24"
            }
            .parse()
            .expect("literal")],
            live: true,
        })
        .collect();
    let mut seen = BTreeSet::new();
    let demands: Vec<IpDemand> = ips
        .iter()
        .filter(|(octet, _)| seen.insert(*octet))
        .map(|(octet, eps)| IpDemand {
            ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, *octet)),
            endpoint_nodes: eps.as_ref().map(|set| {
                set.iter()
                    .filter_map(|i| names.get(usize::from(*i)).cloned())
                    .collect()
            }),
        })
        .collect();
    (names, facts, demands)
}

proptest! {
    /// Speakers sharing one view start each IP on exactly the node `elect` names, and on no
    /// other: never two owners from the same information.
    #[test]
    fn speakers_with_one_view_start_each_ip_once((nodes, ips) in cluster()) {
        let (names, facts, demands) = setup(&nodes, &ips);
        let mut speakers: BTreeMap<String, Announcer> =
            names.iter().map(|n| (n.clone(), announcer(n))).collect();
        let t0 = MonoTime::from_millis(1_000);
        heartbeat(&mut speakers, &names, t0, 1);
        let (starts, other) = round(&mut speakers, &facts, &demands, t0 + Duration::from_millis(100));
        prop_assert!(other.is_empty(), "unexpected actions {other:?}");
        for d in &demands {
            let who = starts.get(&d.ip).cloned().unwrap_or_default();
            prop_assert!(who.len() <= 1, "{} started on {who:?}", d.ip);
            prop_assert_eq!(who.first().map(String::as_str), elect(d, &facts, &BTreeMap::new()));
        }
    }

    /// When one speaker dies (its lease stops changing), after the lease duration exactly its
    /// IPs move, each to exactly one survivor, and no other IP is stopped or started anywhere.
    #[test]
    fn a_dead_peer_moves_only_its_own_ips((nodes, ips) in cluster(), victim in any::<prop::sample::Index>()) {
        let (names, facts, demands) = setup(&nodes, &ips);
        let dead = victim.get(&names).clone();
        let mut speakers: BTreeMap<String, Announcer> =
            names.iter().map(|n| (n.clone(), announcer(n))).collect();
        let t0 = MonoTime::from_millis(1_000);
        heartbeat(&mut speakers, &names, t0, 1);
        let (before, _) = round(&mut speakers, &facts, &demands, t0);
        speakers.remove(&dead);
        let survivors: Vec<String> = names.iter().filter(|n| **n != dead).cloned().collect();
        // The survivors keep renewing every second for longer than a lease duration.
        let mut moved: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for s in 1..=5u64 {
            let at = t0 + Duration::from_secs(s);
            heartbeat(&mut speakers, &survivors, at, 1 + s);
            let (starts, other) = round(&mut speakers, &facts, &demands, at);
            prop_assert!(other.is_empty(), "survivors stopped something: {other:?}");
            for (ip, who) in starts {
                moved.entry(ip).or_default().extend(who);
            }
        }
        let alive_facts: Vec<NodeFacts> = facts.iter().filter(|f| f.name != dead).cloned().collect();
        for d in &demands {
            let owner_before = before.get(&d.ip).and_then(|w| w.first()).cloned();
            let who = moved.get(&d.ip).cloned().unwrap_or_default();
            if owner_before.as_deref() == Some(dead.as_str()) {
                prop_assert!(who.len() <= 1, "{} taken over by {who:?}", d.ip);
                prop_assert_eq!(who.first().map(String::as_str), elect(d, &alive_facts, &BTreeMap::new()));
            } else {
                prop_assert!(who.is_empty(), "{} (owner {owner_before:?}) moved to {who:?}", d.ip);
            }
        }
    }
}
