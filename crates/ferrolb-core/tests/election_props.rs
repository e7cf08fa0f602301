//! Properties of the election and the ARP codec that must hold for every input, not just the
//! examples in the unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_core::arp::{
    build_gratuitous, build_probe, build_reply, parse_frame, ArpFrame, ArpOp, MacAddr, FRAME_LEN,
};
use ferrolb_core::election::{candidates, elect, winner, IpDemand, NodeFacts};
use proptest::prelude::*;

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

/// Node names: short DNS-ish names, so collisions and shared prefixes are common.
fn node_name() -> impl Strategy<Value = String> {
    "[a-c]{1,2}(-[0-9]{1,2})?"
}

fn node_set(max: usize) -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(node_name(), 1..max)
}

fn any_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn any_op() -> impl Strategy<Value = ArpOp> {
    prop_oneof![Just(ArpOp::Request), Just(ArpOp::Reply)]
}

fn any_frame() -> impl Strategy<Value = ArpFrame> {
    (
        any_mac(),
        any_mac(),
        any_op(),
        any_mac(),
        any::<[u8; 4]>(),
        any_mac(),
        any::<[u8; 4]>(),
    )
        .prop_map(
            |(eth_dst, eth_src, op, sender_mac, sip, target_mac, tip)| ArpFrame {
                eth_dst,
                eth_src,
                op,
                sender_mac,
                sender_ip: Ipv4Addr::from(sip),
                target_mac,
                target_ip: Ipv4Addr::from(tip),
            },
        )
}

proptest! {
    /// Speakers list their candidates in whatever order their caches yield them; all must
    /// still agree.
    #[test]
    fn the_winner_does_not_depend_on_candidate_order(
        ip in any_ip(),
        nodes in node_set(12),
        seed in any::<u64>(),
    ) {
        let sorted: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut shuffled = sorted.clone();
        // A deterministic permutation from the seed; proptest shrinks the seed, not a Vec.
        let len = shuffled.len();
        for i in (1..len).rev() {
            let j = (seed.rotate_left(i as u32) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(winner(ip, sorted.iter().copied()), winner(ip, shuffled.iter().copied()));
    }

    /// Exactly one winner per IP for one view, and it is one of the candidates: two nodes with
    /// the same view can never both decide to announce.
    #[test]
    fn one_view_gives_exactly_one_winner(ip in any_ip(), nodes in node_set(12)) {
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let w = winner(ip, names.iter().copied());
        prop_assert!(w.is_some());
        let claimants: Vec<&str> = names
            .iter()
            .copied()
            .filter(|me| winner(ip, names.iter().copied()) == Some(*me))
            .collect();
        prop_assert_eq!(claimants.len(), 1);
        prop_assert_eq!(Some(claimants[0]), w);
    }

    /// Adding or removing a node that does not win an IP leaves that IP where it is, so
    /// membership churn only moves the IPs of the node that came or went.
    #[test]
    fn unrelated_nodes_coming_and_going_do_not_move_an_ip(
        ip in any_ip(),
        nodes in node_set(12),
        extra in node_name(),
    ) {
        let base: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let w = winner(ip, base.iter().copied());
        // Adding: either the newcomer wins, or nothing changes.
        let with_extra = winner(ip, base.iter().copied().chain([extra.as_str()]));
        prop_assert!(with_extra == w || with_extra == Some(extra.as_str()));
        // Removing any node but the winner changes nothing.
        for gone in &base {
            if Some(*gone) == w {
                continue;
            }
            let rest = base.iter().copied().filter(|n| n != gone);
            prop_assert_eq!(winner(ip, rest), w);
        }
    }

    /// `elect` only ever returns a node that `candidates` allowed, whatever the liveness,
    /// subnets and endpoints.
    #[test]
    fn elect_picks_among_candidates_only(
        last_octet in any::<u8>(),
        // Keyed by name: a cluster never has two nodes of one name.
        spec in proptest::collection::btree_map(node_name(), any::<(bool, bool, bool)>(), 0..10),
        local in any::<bool>(),
    ) {
        let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, last_octet));
        let nodes: Vec<NodeFacts> = spec
            .iter()
            .map(|(name, (live, on_subnet, _))| NodeFacts {
                name: name.clone(),
                labels: BTreeMap::new(),
                subnets: vec![if *on_subnet { "198.51.100.0/24" } else { "203.0.113.0/24" }
                    .parse()
                    .expect("literal")],
                live: *live,
            })
            .collect();
        let endpoints: BTreeSet<String> = spec
            .iter()
            .filter(|(_, (_, _, has_ep))| *has_ep)
            .map(|(n, _)| n.clone())
            .collect();
        let demand = IpDemand { ip, endpoint_nodes: local.then_some(endpoints.clone()) };
        let allowed = candidates(&demand, &nodes, &BTreeMap::new());
        for name in &allowed {
            let n = nodes.iter().find(|n| &n.name == name).expect("from nodes");
            prop_assert!(n.live && n.subnets[0].contains(ip));
            prop_assert!(!local || endpoints.contains(*name));
        }
        match elect(&demand, &nodes, &BTreeMap::new()) {
            Some(w) => prop_assert!(allowed.contains(&w)),
            None => prop_assert!(allowed.is_empty()),
        }
    }

    /// Raw sockets hand us whatever is on the wire: no input may panic the parser.
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_frame(&bytes);
    }

    /// Arbitrary bytes with a valid ARP header prefix reach the deeper validation paths, which
    /// fully random bytes almost never do.
    #[test]
    fn parsing_near_valid_frames_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..70),
        fix_header in any::<bool>(),
    ) {
        if fix_header && bytes.len() >= 20 {
            bytes[12..20].copy_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
        }
        if let Ok(f) = parse_frame(&bytes) {
            // Whatever parsed must survive a rebuild unchanged.
            let mut buf = [0u8; FRAME_LEN];
            prop_assert_eq!(parse_frame(f.write(&mut buf)), Ok(f));
        }
    }

    /// Every frame we can represent is written and read back unchanged, with padding ignored.
    #[test]
    fn build_then_parse_round_trips(frame in any_frame()) {
        let mut buf = [0xa5u8; FRAME_LEN];
        let bytes = frame.write(&mut buf);
        prop_assert_eq!(bytes.len(), FRAME_LEN);
        prop_assert_eq!(parse_frame(bytes), Ok(frame));
    }

    /// The builders' fields land where the parser finds them.
    #[test]
    fn builders_round_trip(
        ours in any_mac(),
        theirs in any_mac(),
        vip in any::<[u8; 4]>(),
        host in any::<[u8; 4]>(),
        op in any_op(),
    ) {
        let (vip, host) = (Ipv4Addr::from(vip), Ipv4Addr::from(host));
        let mut buf = [0u8; FRAME_LEN];
        let r = parse_frame(build_reply(&mut buf, ours, vip, theirs, host)).expect("reply parses");
        prop_assert_eq!((r.op, r.sender_mac, r.sender_ip), (ArpOp::Reply, ours, vip));
        prop_assert_eq!((r.eth_dst, r.target_mac, r.target_ip), (theirs, theirs, host));
        let g = parse_frame(build_gratuitous(&mut buf, ours, vip, op)).expect("garp parses");
        prop_assert_eq!((g.op, g.sender_mac, g.sender_ip, g.target_ip), (op, ours, vip, vip));
        prop_assert_eq!(g.eth_dst, MacAddr::BROADCAST);
        let p = parse_frame(build_probe(&mut buf, ours, vip)).expect("probe parses");
        prop_assert_eq!((p.sender_ip, p.target_ip), (Ipv4Addr::UNSPECIFIED, vip));
    }
}
