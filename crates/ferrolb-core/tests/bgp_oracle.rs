//! Differential tests: every message FerroLB's BGP codec encodes is decoded by an independent
//! implementation, NetGauze's `netgauze-bgp-pkt` (Apache-2.0, a dev-dependency only), and the
//! fields it reads must be the ones we meant to send. Random route sets come from proptest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_core::bgp::{
    decode, encode_end_of_rib, encode_keepalive, encode_route_refresh, encode_shutdown,
    encode_updates, Afi, Capability, Community, Context, LargeCommunity, Message, Open, Outbound,
    Prefix, RouteAttrs, AS_TRANS,
};
use netgauze_bgp_pkt::capabilities::BgpCapability;
use netgauze_bgp_pkt::notification::{BgpNotificationMessage, CeaseError};
use netgauze_bgp_pkt::path_attribute::{AsPath, MpReach, MpUnreach, PathAttributeValue};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use proptest::prelude::*;

/// Parses one message with NetGauze, failing the test with its error.
fn oracle(bytes: &[u8], asn4: bool) -> BgpMessage {
    let mut ctx = BgpParsingContext::asn2_default();
    ctx.set_asn4(asn4);
    let mut cur = SliceReader::new(bytes);
    let m = BgpMessage::parse(&mut cur, &mut ctx)
        .unwrap_or_else(|e| panic!("NetGauze refused our bytes {bytes:02x?}: {e:?}"));
    assert_eq!(
        cur.offset(),
        bytes.len(),
        "NetGauze read a different length"
    );
    m
}

/// Splits a stream into messages using our own framing.
fn messages<'a>(bytes: &'a [u8], ctx: &Context) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (_, n) = decode(&bytes[at..], ctx).unwrap().unwrap();
        out.push(&bytes[at..at + n]);
        at += n;
    }
    out
}

/// What one peer learns from a stream of UPDATEs, as NetGauze reads it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Learned {
    announced: BTreeMap<String, Seen>,
    withdrawn: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    next_hop: IpAddr,
    as_path: Vec<u32>,
    local_pref: Option<u32>,
    med: Option<u32>,
    communities: Vec<u32>,
    large: Vec<(u32, u32, u32)>,
}

fn learn(bytes: &[u8], asn4: bool) -> Learned {
    let mut out = Learned::default();
    for m in messages(
        bytes,
        &Context {
            four_octet_as: asn4,
        },
    ) {
        let BgpMessage::Update(u) = oracle(m, asn4) else {
            panic!("not an UPDATE")
        };
        for w in u.withdraw_routes() {
            out.withdrawn.insert(w.network().address().to_string());
        }
        let mut seen = Seen {
            next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            as_path: Vec::new(),
            local_pref: None,
            med: None,
            communities: Vec::new(),
            large: Vec::new(),
        };
        let mut v6 = Vec::new();
        let mut as4 = None;
        for a in u.path_attributes() {
            match a.value() {
                PathAttributeValue::Origin(o) => assert_eq!(*o as u8, 0, "ORIGIN must be IGP"),
                PathAttributeValue::AsPath(AsPath::As4PathSegments(s)) => {
                    seen.as_path = s.iter().flat_map(|s| s.as_numbers().to_vec()).collect()
                }
                PathAttributeValue::AsPath(AsPath::As2PathSegments(s)) => {
                    seen.as_path = s
                        .iter()
                        .flat_map(|s| s.as_numbers().iter().map(|&a| u32::from(a)))
                        .collect()
                }
                PathAttributeValue::As4Path(p) => {
                    as4 = Some(
                        p.segments()
                            .iter()
                            .flat_map(|s| s.as_numbers().to_vec())
                            .collect::<Vec<u32>>(),
                    )
                }
                PathAttributeValue::NextHop(n) => seen.next_hop = IpAddr::V4(n.next_hop()),
                PathAttributeValue::LocalPreference(l) => seen.local_pref = Some(l.metric()),
                PathAttributeValue::MultiExitDiscriminator(m) => seen.med = Some(m.metric()),
                PathAttributeValue::Communities(c) => {
                    seen.communities = c.communities().iter().map(|c| c.value()).collect()
                }
                PathAttributeValue::LargeCommunities(c) => {
                    seen.large = c
                        .communities()
                        .iter()
                        .map(|c| (c.global_admin(), c.local_data1(), c.local_data2()))
                        .collect()
                }
                PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                    next_hop_global,
                    next_hop_local,
                    nlri,
                }) => {
                    assert_eq!(*next_hop_local, None);
                    seen.next_hop = IpAddr::V6(*next_hop_global);
                    v6.extend(nlri.iter().map(|n| n.network().address().to_string()));
                }
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => {
                    for n in nlri.iter() {
                        out.withdrawn.insert(n.network().address().to_string());
                    }
                }
                other => panic!("unexpected attribute {other:?}"),
            }
        }
        if let Some(p4) = as4 {
            // RFC 6793 §4.2.3: a 2-octet speaker's path is rebuilt from AS4_PATH.
            assert!(seen.as_path.iter().all(|&a| a == u32::from(AS_TRANS)));
            seen.as_path = p4;
        }
        for n in u.nlri() {
            out.announced
                .insert(n.network().address().to_string(), seen.clone());
        }
        for p in v6 {
            out.announced.insert(p, seen.clone());
        }
    }
    out
}

/// Unicast prefixes: what FerroLB advertises (NetGauze, rightly, refuses multicast ones in
/// unicast NLRI).
fn arb_prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap()),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).unwrap()),
    ]
    .prop_filter("unicast", |p| !p.addr().is_multicast())
}

fn arb_attrs() -> impl Strategy<Value = RouteAttrs> {
    (
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::collection::btree_set(any::<u32>(), 0..5),
        prop::collection::btree_set(any::<(u32, u32, u32)>(), 0..3),
    )
        .prop_map(|(local_pref, med, c, l)| RouteAttrs {
            local_pref,
            med,
            communities: c.into_iter().map(Community).collect(),
            large_communities: l
                .into_iter()
                .map(|(a, b, c)| LargeCommunity(a, b, c))
                .collect(),
        })
}

fn arb_outbound() -> impl Strategy<Value = Outbound> {
    (
        prop_oneof![1u32..=65535, 65536u32..=u32::MAX],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(local, ibgp, four)| Outbound {
            local_asn: local,
            peer_asn: if ibgp {
                local
            } else {
                local.wrapping_add(1).max(1)
            },
            four_octet_as: four,
            next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            next_hop_v6: Some("2001:db8::11".parse().unwrap()),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever we announce, NetGauze reads the same prefixes with the attributes we meant:
    /// next hop of the prefix's family, AS_PATH empty on iBGP and our ASN on eBGP, LOCAL_PREF on
    /// iBGP only, MED and communities as given.
    #[test]
    fn netgauze_reads_what_we_announce(
        o in arb_outbound(),
        routes in prop::collection::btree_map(arb_prefix(), arb_attrs(), 0..300),
        withdraw in prop::collection::btree_set(arb_prefix(), 0..300),
    ) {
        let withdraw: Vec<Prefix> = withdraw.into_iter().filter(|p| !routes.contains_key(p)).collect();
        let announce: Vec<(Prefix, RouteAttrs)> = routes.iter().map(|(p, a)| (*p, a.clone())).collect();
        let mut bytes = Vec::new();
        let stats = encode_updates(&o, &withdraw, &announce, &mut bytes);
        prop_assert_eq!(stats.announced, announce.len());
        prop_assert_eq!(stats.withdrawn, withdraw.len());
        let learned = learn(&bytes, o.four_octet_as);
        let ibgp = o.local_asn == o.peer_asn;
        let expected: BTreeMap<String, Seen> = routes.iter().map(|(p, a)| {
            let nh = if p.is_ipv4() { IpAddr::V4(o.next_hop_v4.unwrap()) } else { IpAddr::V6(o.next_hop_v6.unwrap()) };
            (p.to_string(), Seen {
                next_hop: nh,
                as_path: if ibgp { vec![] } else { vec![o.local_asn] },
                local_pref: if ibgp { a.local_pref } else { None },
                med: a.med,
                communities: a.communities.iter().map(|c| c.0).collect(),
                large: a.large_communities.iter().map(|l| (l.0, l.1, l.2)).collect(),
            })
        }).collect();
        prop_assert_eq!(learned.announced, expected);
        let want_w: BTreeSet<String> = withdraw.iter().map(Prefix::to_string).collect();
        prop_assert_eq!(learned.withdrawn, want_w);
        // And our own decoder agrees message by message on the prefix counts.
        let ctx = Context { four_octet_as: o.four_octet_as };
        let mut ours = 0;
        for m in messages(&bytes, &ctx) {
            prop_assert!(m.len() <= 4096);
            if let Some((Message::Update(u), _)) = decode(m, &ctx).unwrap() {
                ours += u.nlri().count() + u.mp_reach.map_or(0, |r| r.prefixes().count());
            }
        }
        prop_assert_eq!(ours, routes.len());
    }

    /// OPENs we build are read back with the same ASN, hold time, identifier and capabilities.
    #[test]
    fn netgauze_reads_our_open(asn in 1u32..=u32::MAX, hold in prop_oneof![Just(0u16), 3u16..=u16::MAX], id in 1u32..0xE000_0000, v6 in any::<bool>()) {
        let afi = if v6 { Afi::Ipv6 } else { Afi::Ipv4 };
        let open = Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time: hold,
            bgp_id: Ipv4Addr::from(id),
            capabilities: vec![
                Capability::Multiprotocol { afi, safi: 1 },
                Capability::RouteRefresh,
                Capability::FourOctetAs(asn),
            ],
        };
        let mut bytes = Vec::new();
        open.encode(&mut bytes);
        let BgpMessage::Open(theirs) = oracle(&bytes, false) else { panic!("not an OPEN") };
        prop_assert_eq!(theirs.my_asn4(), asn);
        prop_assert_eq!(theirs.my_as(), open.my_as);
        prop_assert_eq!(theirs.hold_time(), hold);
        prop_assert_eq!(theirs.bgp_id(), Ipv4Addr::from(id));
        let caps = theirs.capabilities();
        prop_assert_eq!(caps.len(), 3);
        prop_assert!(caps.iter().any(|c| matches!(c, BgpCapability::RouteRefresh)));
        prop_assert!(caps.iter().any(|c| matches!(c, BgpCapability::FourOctetAs(f) if f.asn4() == asn)));
        let mp = caps.iter().find_map(|c| match c {
            BgpCapability::MultiProtocolExtensions(m) => Some(format!("{:?}", m.address_type())),
            _ => None,
        });
        prop_assert_eq!(mp.as_deref(), Some(if v6 { "Ipv6Unicast" } else { "Ipv4Unicast" }));
        // Our decoder agrees.
        let Some((Message::Open(back), _)) = decode(&bytes, &Context::default()).unwrap() else { panic!() };
        prop_assert_eq!(back, open);
    }

    /// The RFC 8203 shutdown text arrives intact (cut to 255 bytes at a character boundary).
    #[test]
    fn netgauze_reads_our_shutdown_message(text in "\\PC{0,300}") {
        let mut bytes = Vec::new();
        encode_shutdown(&text, &mut bytes);
        let BgpMessage::Notification(BgpNotificationMessage::CeaseError(CeaseError::AdministrativeShutdown { value })) = oracle(&bytes, true) else {
            panic!("not a Cease / Administrative Shutdown")
        };
        let len = usize::from(value[0]);
        prop_assert_eq!(len, value.len() - 1);
        let got = std::str::from_utf8(&value[1..]).unwrap();
        prop_assert!(text.starts_with(got));
        prop_assert!(got.len() == text.len() || text.len() > 255);
    }
}

#[test]
fn netgauze_reads_keepalive_route_refresh_and_end_of_rib() {
    let mut b = Vec::new();
    encode_keepalive(&mut b);
    assert!(matches!(oracle(&b, true), BgpMessage::KeepAlive));
    let mut b = Vec::new();
    encode_route_refresh(Afi::Ipv6, 1, &mut b);
    let BgpMessage::RouteRefresh(r) = oracle(&b, true) else {
        panic!()
    };
    assert_eq!(format!("{:?}", r.address_type()), "Ipv6Unicast");
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        let mut b = Vec::new();
        encode_end_of_rib(afi, 1, &mut b);
        let BgpMessage::Update(u) = oracle(&b, true) else {
            panic!()
        };
        let want = if afi == Afi::Ipv4 {
            "Ipv4Unicast"
        } else {
            "Ipv6Unicast"
        };
        assert_eq!(format!("{:?}", u.end_of_rib()), format!("Some({want})"));
    }
}
