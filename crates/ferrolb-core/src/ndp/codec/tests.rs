//! Codec tests. The byte vectors marked "captured" were recorded with `tcpdump -xx` on a veth
//! pair between two namespaces on the development machine (Linux 6.18, ndisc6 1.0.5): real
//! frames from other implementations, so the codec is checked against the wire, not itself.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).map_or(0, |d| d as u8))
        .collect();
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x02, 0x00]);
const NODE_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x01, 0x01]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("test address")
}

/// Captured: `ndisc6 2001:db8::11 eth0` from fe80::fe:ff:fe00:200 (multicast NS with SLLA).
fn ndisc6_solicitation() -> Vec<u8> {
    hex("3333 ff00 0011 02fe 0000 0200 86dd 6000
         ac21 0020 3aff fe80 0000 0000 0000 00fe
         00ff fe00 0200 ff02 0000 0000 0000 0000
         0001 ff00 0011 8700 4647 0000 0000 2001
         0db8 0000 0000 0000 0000 0000 0011 0101
         02fe 0000 0200")
}

/// Captured: the Linux kernel's answer to it (S=1, O=1, TLLA).
fn linux_advertisement() -> Vec<u8> {
    hex("02fe 0000 0200 02fe 0000 0101 86dd 6000
         0000 0020 3aff 2001 0db8 0000 0000 0000
         0000 0000 0011 fe80 0000 0000 0000 00fe
         00ff fe00 0200 8800 b591 6000 0000 2001
         0db8 0000 0000 0000 0000 0000 0011 0201
         02fe 0000 0101")
}

/// Captured: the Linux kernel's DAD probe for 2001:db8::300, with a nonce option.
fn linux_dad_probe() -> Vec<u8> {
    hex("3333 ff00 0300 02fe 0000 0101 86dd 6000
         0000 0020 3aff 0000 0000 0000 0000 0000
         0000 0000 0000 ff02 0000 0000 0000 0000
         0001 ff00 0300 8700 7f44 0000 0000 2001
         0db8 0000 0000 0000 0000 0000 0300 0e01
         acac aeef 5e05")
}

/// Captured: a Linux unicast reachability probe (NUD) for a link-local address.
fn linux_unicast_probe() -> Vec<u8> {
    hex("02fe 0000 0200 02fe 0000 0101 86dd 6000
         0000 0020 3aff fe80 0000 0000 0000 00fe
         00ff fe00 0101 fe80 0000 0000 0000 00fe
         00ff fe00 0200 8700 7327 0000 0000 fe80
         0000 0000 0000 00fe 00ff fe00 0200 0101
         02fe 0000 0101")
}

/// Captured: a Linux solicited NA without any option (S=1, O=0), 24-byte ICMPv6 body.
fn linux_bare_advertisement() -> Vec<u8> {
    hex("02fe 0000 0101 02fe 0000 0200 86dd 6000
         0000 0018 3aff fe80 0000 0000 0000 00fe
         00ff fe00 0200 fe80 0000 0000 0000 00fe
         00ff fe00 0101 8800 372f 4000 0000 fe80
         0000 0000 0000 00fe 00ff fe00 0200")
}

/// Rewrites the ICMPv6 checksum of a frame after a test edited it, with the pseudo-header
/// summed here by hand (not by the code under test).
fn fix_checksum(f: &mut [u8]) {
    let payload = usize::from(u16::from_be_bytes([f[18], f[19]]));
    f[56] = 0;
    f[57] = 0;
    let mut sum: u32 = 0;
    for pair in f[22..54].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum += payload as u32 + 58;
    let body = &f[54..54 + payload];
    for pair in body.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&b| u32::from(b));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    f[56..58].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn parses_a_captured_multicast_solicitation() {
    let b = ndisc6_solicitation();
    let f = parse_frame(&b).expect("valid NS");
    assert_eq!(
        f,
        NdpFrame {
            eth_dst: MacAddr([0x33, 0x33, 0xff, 0, 0, 0x11]),
            eth_src: CLIENT_MAC,
            ip_src: ip("fe80::fe:ff:fe00:200"),
            ip_dst: ip("ff02::1:ff00:11"),
            message: NdpMessage::Solicitation,
            target: ip("2001:db8::11"),
            source_ll: Some(CLIENT_MAC),
            target_ll: None,
            nonce: None,
        }
    );
}

#[test]
fn parses_captured_linux_advertisements_and_probes() {
    let b = linux_advertisement();
    let na = parse_frame(&b).expect("valid NA");
    assert_eq!(
        na.message,
        NdpMessage::Advertisement {
            router: false,
            solicited: true,
            override_flag: true
        }
    );
    assert_eq!(na.target, ip("2001:db8::11"));
    assert_eq!(na.target_ll, Some(NODE_MAC));

    let b = linux_dad_probe();
    let dad = parse_frame(&b).expect("valid DAD probe");
    assert!(dad.ip_src.is_unspecified());
    assert_eq!(dad.ip_dst, solicited_node(ip("2001:db8::300")));
    assert_eq!(dad.nonce, Some(&[0xac, 0xac, 0xae, 0xef, 0x5e, 0x05][..]));
    assert_eq!(dad.source_ll, None);

    let b = linux_unicast_probe();
    let nud = parse_frame(&b).expect("valid unicast NS");
    assert_eq!(
        nud.ip_dst, nud.target,
        "a unicast probe is sent to its target"
    );
    assert_eq!(nud.eth_dst, CLIENT_MAC);

    let b = linux_bare_advertisement();
    let bare = parse_frame(&b).expect("valid optionless NA");
    assert_eq!(bare.target_ll, None);
    assert_eq!(
        bare.message,
        NdpMessage::Advertisement {
            router: false,
            solicited: true,
            override_flag: false
        }
    );
}

#[test]
fn checksum_matches_the_captured_frames() {
    for b in [
        ndisc6_solicitation(),
        linux_advertisement(),
        linux_dad_probe(),
        linux_unicast_probe(),
        linux_bare_advertisement(),
    ] {
        let payload = usize::from(u16::from_be_bytes([b[18], b[19]]));
        let msg = &b[54..54 + payload];
        let found = u16::from_be_bytes([b[56], b[57]]);
        assert_eq!(
            icmpv6_checksum(ipv6_at(&b, 22), ipv6_at(&b, 38), msg),
            found
        );
    }
}

#[test]
fn ethernet_padding_after_the_payload_is_ignored() {
    let mut b = linux_bare_advertisement();
    b.extend([0xde, 0xad, 0xbe, 0xef]);
    assert!(parse_frame(&b).is_ok());
}

#[test]
fn truncation_at_every_length_is_an_error_not_a_panic() {
    let b = ndisc6_solicitation();
    for n in 0..b.len() {
        assert!(parse_frame(&b[..n]).is_err(), "{n} bytes");
    }
    assert_eq!(
        parse_frame(&b[..13]),
        Err(NdpError::Truncated { len: 13, need: 14 })
    );
    assert_eq!(
        parse_frame(&b[..40]),
        Err(NdpError::Truncated { len: 40, need: 54 })
    );
    // The payload length promises 32 bytes; 31 follow.
    assert_eq!(
        parse_frame(&b[..85]),
        Err(NdpError::PayloadLength {
            declared: 32,
            available: 31
        })
    );
}

#[test]
fn each_header_field_is_validated() {
    let with = |at: usize, bytes: &[u8], fix: bool| {
        let mut b = ndisc6_solicitation();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        if fix {
            fix_checksum(&mut b);
        }
        parse_frame(&b).map(|f| f.target)
    };
    assert_eq!(
        with(12, &[0x08, 0x06], false),
        Err(NdpError::NotIpv6(0x0806))
    );
    assert_eq!(
        with(12, &[0x81, 0x00], false),
        Err(NdpError::NotIpv6(0x8100))
    );
    assert_eq!(with(14, &[0x40], false), Err(NdpError::Version(4)));
    assert_eq!(with(20, &[17], false), Err(NdpError::NextHeader(17)));
    assert_eq!(with(20, &[0], false), Err(NdpError::NextHeader(0)));
    assert_eq!(with(21, &[254], false), Err(NdpError::HopLimit(254)));
    assert_eq!(with(21, &[1], false), Err(NdpError::HopLimit(1)));
    assert_eq!(
        with(54, &[128], true),
        Err(NdpError::NotNeighborDiscovery(128))
    );
    assert_eq!(
        with(54, &[134], true),
        Err(NdpError::NotNeighborDiscovery(134))
    );
    assert_eq!(with(55, &[1], true), Err(NdpError::Code(1)));
    assert_eq!(
        with(56, &[0x46, 0x48], false),
        Err(NdpError::Checksum {
            found: 0x4648,
            expected: 0x4647
        })
    );
    // A flipped bit anywhere in the covered bytes breaks the checksum.
    assert!(matches!(
        with(70, &[0x21], false),
        Err(NdpError::Checksum { .. })
    ));
    assert!(matches!(
        with(30, &[0xff], false),
        Err(NdpError::Checksum { .. })
    ));
    assert_eq!(
        with(62, &ip("ff02::1").octets(), true),
        Err(NdpError::MulticastTarget(ip("ff02::1")))
    );
    assert_eq!(
        with(22, &ip("ff02::2").octets(), true),
        Err(NdpError::MulticastSource(ip("ff02::2")))
    );
}

#[test]
fn options_are_checked_and_unknown_ones_skipped() {
    // Appends `opt` to the captured NS and fixes lengths and checksum.
    let with_option = |opt: &[u8]| {
        let mut b = ndisc6_solicitation();
        b.extend_from_slice(opt);
        let len = (b.len() - 54) as u16;
        b[18..20].copy_from_slice(&len.to_be_bytes());
        fix_checksum(&mut b);
        b
    };
    let b = with_option(&[0; 8]);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::ZeroLengthOption { kind: 0, offset: 8 })
    );
    let b = with_option(&[200, 0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::ZeroLengthOption {
            kind: 200,
            offset: 8
        })
    );
    let b = with_option(&[200, 2, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::OptionOverrun {
            offset: 8,
            need: 16,
            available: 8
        })
    );
    let b = with_option(&[200]);
    assert!(matches!(
        parse_frame(&b),
        Err(NdpError::OptionOverrun { need: 2, .. })
    ));
    // An unknown, well-formed option is skipped.
    let b = with_option(&[200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let f = parse_frame(&b).expect("unknown option skipped");
    assert_eq!(f.source_ll, Some(CLIENT_MAC));
    // A second source address option does not replace the first.
    let b = with_option(&[1, 1, 2, 0, 0, 0, 0, 9]);
    assert_eq!(parse_frame(&b).map(|f| f.source_ll), Ok(Some(CLIENT_MAC)));
    // Link-layer options must be 8 bytes on Ethernet.
    let b = with_option(&[2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::LinkAddressLength { kind: 2, units: 2 })
    );
}

#[test]
fn dad_probes_and_multicast_advertisements_follow_rfc_4861_rules() {
    // A DAD probe to a unicast destination.
    let mut b = linux_dad_probe();
    b[38..54].copy_from_slice(&ip("2001:db8::300").octets());
    fix_checksum(&mut b);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::DadDestination(ip("2001:db8::300")))
    );
    // A DAD probe with a source link-layer address option.
    let mut b = linux_dad_probe();
    b[78..80].copy_from_slice(&[OPTION_SOURCE_LL, 1]);
    fix_checksum(&mut b);
    assert_eq!(parse_frame(&b), Err(NdpError::DadWithSourceAddress));
    // A solicited advertisement to all-nodes.
    let mut b = linux_advertisement();
    b[38..54].copy_from_slice(&ALL_NODES.octets());
    fix_checksum(&mut b);
    assert_eq!(
        parse_frame(&b),
        Err(NdpError::SolicitedMulticast(ALL_NODES))
    );
    // ... which is fine with S cleared.
    b[58] = 0x20;
    fix_checksum(&mut b);
    assert!(parse_frame(&b).is_ok());
}

#[test]
fn solicited_node_group_and_its_mac() {
    let vip = ip("2001:db8::100");
    assert_eq!(solicited_node(vip), ip("ff02::1:ff00:100"));
    assert_eq!(
        multicast_mac(solicited_node(vip)),
        MacAddr([0x33, 0x33, 0xff, 0x00, 0x01, 0x00])
    );
    assert_eq!(
        solicited_node(ip("2001:db8::abcd:1234:5678")),
        ip("ff02::1:ff34:5678")
    );
    assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert!(is_solicited_node(ip("ff02::1:ff00:100")));
    assert!(!is_solicited_node(ALL_NODES));
    assert!(!is_solicited_node(ip("ff02::1:fe00:100")));
}

#[test]
fn reply_to_a_solicitation_is_unicast_solicited_and_overriding() {
    let mut buf = [0xaa; NDP_FRAME_LEN];
    let vip = ip("2001:db8::100");
    let asker = ip("2001:db8::200");
    let bytes = build_advertisement_reply(&mut buf, NODE_MAC, vip, CLIENT_MAC, asker).to_vec();
    // Written out byte by byte: what a receiver must see on the wire.
    let mut want = hex("02fe 0000 0200 02fe 0000 0101 86dd 6000 0000 0020 3aff");
    want.extend(vip.octets());
    want.extend(asker.octets());
    want.extend([136, 0, 0, 0, 0x60, 0, 0, 0]);
    want.extend(vip.octets());
    want.extend([2, 1, 0x02, 0xfe, 0, 0, 0x01, 0x01]);
    fix_checksum(&mut want);
    assert_eq!(bytes, want);
}

#[test]
fn reply_to_a_dad_probe_goes_to_all_nodes_without_solicited() {
    let mut buf = [0; NDP_FRAME_LEN];
    let vip = ip("2001:db8::300");
    let f = parse_frame(build_advertisement_reply(
        &mut buf,
        NODE_MAC,
        vip,
        CLIENT_MAC,
        Ipv6Addr::UNSPECIFIED,
    ))
    .expect("own frame parses");
    assert_eq!((f.eth_dst, f.ip_dst), (multicast_mac(ALL_NODES), ALL_NODES));
    assert_eq!(
        f.message,
        NdpMessage::Advertisement {
            router: false,
            solicited: false,
            override_flag: true
        }
    );
    assert_eq!(
        (f.ip_src, f.target, f.target_ll),
        (vip, vip, Some(NODE_MAC))
    );
}

#[test]
fn unsolicited_advertisement_overrides_to_all_nodes() {
    let mut buf = [0; NDP_FRAME_LEN];
    let vip = ip("2001:db8::100");
    let b = build_unsolicited_advertisement(&mut buf, NODE_MAC, vip).to_vec();
    assert_eq!(b.len(), NDP_FRAME_LEN);
    assert_eq!(&b[..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(b[21], 255, "hop limit");
    assert_eq!(b[58], 0x20, "O=1, S=0, R=0");
    let f = parse_frame(&b).expect("own frame parses");
    assert_eq!((f.ip_src, f.ip_dst, f.target), (vip, ALL_NODES, vip));
    assert_eq!(f.target_ll, Some(NODE_MAC));
}

#[test]
fn dad_probe_is_a_valid_probe_with_our_nonce() {
    let mut buf = [0; NDP_FRAME_LEN];
    let vip = ip("2001:db8::100");
    let b = build_dad_probe(&mut buf, NODE_MAC, vip, [1, 2, 3, 4, 5, 6]).to_vec();
    let f = parse_frame(&b).expect("own frame parses");
    assert_eq!(f.ip_src, Ipv6Addr::UNSPECIFIED);
    assert_eq!(f.ip_dst, ip("ff02::1:ff00:100"));
    assert_eq!(f.eth_dst, MacAddr([0x33, 0x33, 0xff, 0, 1, 0]));
    assert_eq!(f.message, NdpMessage::Solicitation);
    assert_eq!(f.nonce, Some(&[1, 2, 3, 4, 5, 6][..]));
    assert_eq!(f.source_ll, None);
}

#[test]
fn write_refuses_a_too_small_buffer() {
    let b = ndisc6_solicitation();
    let f = parse_frame(&b).expect("valid");
    let mut small = [0u8; 40];
    assert_eq!(f.write(&mut small), None);
    let mut exact = vec![0u8; f.encoded_len()];
    assert!(f.write(&mut exact).is_some());
}

mod differential {
    //! Our frames, decoded by an independent implementation (etherparse).
    use super::*;
    use etherparse::{
        icmpv6::NeighborAdvertisementPayloadSlice, Icmpv6Type, NetSlice, SlicedPacket,
        TransportSlice,
    };

    fn check_na(bytes: &[u8], src: Ipv6Addr, dst: Ipv6Addr, solicited: bool) {
        let p = SlicedPacket::from_ethernet(bytes).expect("etherparse decodes our frame");
        let Some(NetSlice::Ipv6(ip6)) = &p.net else {
            panic!("etherparse: not IPv6: {:?}", p.net)
        };
        let h = ip6.header();
        assert_eq!(h.hop_limit(), 255);
        assert_eq!(h.source_addr(), src);
        assert_eq!(h.destination_addr(), dst);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("etherparse: not ICMPv6: {:?}", p.transport)
        };
        assert!(
            icmp.is_checksum_valid(src.octets(), dst.octets()),
            "etherparse says the checksum is wrong"
        );
        let Icmpv6Type::NeighborAdvertisement(flags) = icmp.icmp_type() else {
            panic!("etherparse: not an NA: {:?}", icmp.icmp_type())
        };
        assert!(!flags.router);
        assert_eq!(flags.solicited, solicited);
        assert!(flags.r#override);
        let payload =
            NeighborAdvertisementPayloadSlice::from_slice(icmp.payload()).expect("NA payload");
        let opts = payload.options();
        assert_eq!(opts.len(), 8);
        assert_eq!(opts[..2], [2, 1], "one target link-layer address option");
        assert_eq!(opts[2..], NODE_MAC.octets());
    }

    #[test]
    fn etherparse_agrees_with_our_advertisements() {
        let vip = ip("2001:db8::100");
        let mut buf = [0; NDP_FRAME_LEN];
        let asker = ip("fe80::fe:ff:fe00:200");
        let b = build_advertisement_reply(&mut buf, NODE_MAC, vip, CLIENT_MAC, asker).to_vec();
        check_na(&b, vip, asker, true);
        let b = build_unsolicited_advertisement(&mut buf, NODE_MAC, vip).to_vec();
        check_na(&b, vip, ALL_NODES, false);
        let b =
            build_advertisement_reply(&mut buf, NODE_MAC, vip, CLIENT_MAC, Ipv6Addr::UNSPECIFIED)
                .to_vec();
        check_na(&b, vip, ALL_NODES, false);
    }

    #[test]
    fn etherparse_agrees_with_our_dad_probe() {
        let vip = ip("2001:db8::100");
        let mut buf = [0; NDP_FRAME_LEN];
        let b = build_dad_probe(&mut buf, NODE_MAC, vip, [9; 6]).to_vec();
        let p = SlicedPacket::from_ethernet(&b).expect("etherparse decodes our frame");
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("etherparse: not ICMPv6")
        };
        assert!(
            icmp.is_checksum_valid(Ipv6Addr::UNSPECIFIED.octets(), solicited_node(vip).octets())
        );
        assert!(matches!(icmp.icmp_type(), Icmpv6Type::NeighborSolicitation));
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn mac() -> impl Strategy<Value = MacAddr> {
        any::<[u8; 6]>().prop_map(MacAddr)
    }

    fn unicast() -> impl Strategy<Value = Ipv6Addr> {
        any::<[u8; 16]>()
            .prop_map(Ipv6Addr::from)
            .prop_filter("unicast", |a| !a.is_multicast())
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_frame(&bytes);
        }

        /// Captured frames with random bytes overwritten and the checksum repaired, so the
        /// mutations reach the option and semantic checks instead of stopping at the checksum.
        #[test]
        fn mutated_valid_frames_never_panic_and_reencode(
            which in 0usize..5,
            edits in proptest::collection::vec((0usize..86, any::<u8>()), 1..6),
            fix in any::<bool>(),
        ) {
            let mut b = [ndisc6_solicitation(), linux_advertisement(), linux_dad_probe(),
                linux_unicast_probe(), linux_bare_advertisement()][which].clone();
            for (at, v) in edits {
                if let Some(slot) = b.get_mut(at) { *slot = v; }
            }
            if fix && b.len() >= 58 && b[12..14] == [0x86, 0xdd] {
                let payload = usize::from(u16::from_be_bytes([b[18], b[19]]));
                if 54 + payload <= b.len() && payload >= 4 { fix_checksum(&mut b); }
            }
            if let Ok(f) = parse_frame(&b) {
                let mut out = vec![0u8; f.encoded_len()];
                let written = f.write(&mut out).expect("fits its own length").to_vec();
                prop_assert_eq!(parse_frame(&written), Ok(f));
            }
        }

        #[test]
        fn replies_round_trip(ours in mac(), theirs in mac(), vip in unicast(), asker in unicast()) {
            let mut buf = [0; NDP_FRAME_LEN];
            let f = parse_frame(build_advertisement_reply(&mut buf, ours, vip, theirs, asker))
                .expect("own reply parses");
            let dad = asker.is_unspecified();
            prop_assert_eq!(f.target, vip);
            prop_assert_eq!(f.ip_src, vip);
            prop_assert_eq!(f.target_ll, Some(ours));
            prop_assert_eq!(f.eth_src, ours);
            prop_assert_eq!(f.ip_dst, if dad { ALL_NODES } else { asker });
            prop_assert_eq!(f.eth_dst, if dad { multicast_mac(ALL_NODES) } else { theirs });
            prop_assert_eq!(f.message, NdpMessage::Advertisement {
                router: false, solicited: !dad, override_flag: true });
        }

        #[test]
        fn unsolicited_and_probes_round_trip(ours in mac(), vip in unicast(), nonce in any::<[u8; 6]>()) {
            let mut buf = [0; NDP_FRAME_LEN];
            let na = parse_frame(build_unsolicited_advertisement(&mut buf, ours, vip))
                .expect("own NA parses");
            prop_assert_eq!((na.target, na.target_ll), (vip, Some(ours)));
            let mut buf = [0; NDP_FRAME_LEN];
            let ns = build_dad_probe(&mut buf, ours, vip, nonce).to_vec();
            let ns = parse_frame(&ns).expect("own probe parses");
            prop_assert_eq!(ns.target, vip);
            prop_assert_eq!(ns.nonce, Some(&nonce[..]));
        }
    }
}
