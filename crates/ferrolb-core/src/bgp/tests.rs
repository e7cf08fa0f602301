//! Known-answer vectors written by hand from the RFCs, error mapping per RFC 4271 §6, and
//! whole-session scenarios for the state machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::election::MonoTime;

const M: [u8; 16] = [0xFF; 16];

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = M.to_vec();
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

fn p(s: &str) -> Prefix {
    Prefix::host(s.parse().unwrap())
}

fn ctx4() -> Context {
    Context {
        four_octet_as: true,
    }
}

/// Every message in a byte stream, decoded, with its raw bytes.
fn split(bytes: &[u8], ctx: &Context) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (_, used) = decode(&bytes[at..], ctx).unwrap().expect("whole messages");
        out.push(bytes[at..at + used].to_vec());
        at += used;
    }
    out
}

// ---- known answers ----

#[test]
fn keepalive_is_19_bytes() {
    let mut out = Vec::new();
    encode_keepalive(&mut out);
    assert_eq!(out, msg(4, &[]));
    assert_eq!(
        decode(&out, &ctx4()).unwrap(),
        Some((Message::Keepalive, 19))
    );
}

#[test]
fn open_with_capabilities_matches_rfc_layout() {
    let open = Open {
        version: 4,
        my_as: 64512,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: 1,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(64512),
        ],
    };
    let mut out = Vec::new();
    open.encode(&mut out);
    #[rustfmt::skip]
    let body = [
        4, 0xFC, 0x00, 0x00, 90, 192, 0, 2, 1, 16,
        2, 14, 1, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0, 0, 0xFC, 0x00,
    ];
    assert_eq!(out, msg(1, &body));
    let (m, n) = decode(&out, &ctx4()).unwrap().unwrap();
    assert_eq!(n, 45);
    assert_eq!(m, Message::Open(open));
}

#[test]
fn open_keeps_unknown_capabilities_and_reads_4_octet_asn() {
    #[rustfmt::skip]
    let body = [
        4, 0x5B, 0xA0, 0x00, 9, 198, 51, 100, 1, 20,
        2, 18, 65, 4, 0xFA, 0x56, 0xEA, 0x00, 64, 2, 0x80, 0x78, 70, 0, 1, 4, 0, 2, 0, 1,
    ];
    let bytes = msg(1, &body);
    let Some((Message::Open(o), _)) = decode(&bytes, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(o.my_as, AS_TRANS);
    assert_eq!(o.asn(), 4_200_000_000);
    assert!(o.capabilities.contains(&Capability::Unknown {
        code: 64,
        value: &[0x80, 0x78]
    }));
    assert!(o.capabilities.contains(&Capability::Unknown {
        code: 70,
        value: &[]
    }));
    assert_eq!(o.families(), vec![(Afi::Ipv6, 1)]);
}

fn ebgp() -> Outbound {
    Outbound {
        local_asn: 64512,
        peer_asn: 64513,
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some("2001:db8::11".parse().unwrap()),
    }
}

#[test]
fn ebgp_ipv4_update_matches_hand_encoding() {
    let mut out = Vec::new();
    let stats = encode_updates(
        &ebgp(),
        &[],
        &[(p("203.0.113.10"), RouteAttrs::default())],
        &mut out,
    );
    assert_eq!(stats.messages, 1);
    #[rustfmt::skip]
    let body = [
        0, 0, 0, 20,
        0x40, 1, 1, 0,
        0x40, 2, 6, 2, 1, 0, 0, 0xFC, 0x00,
        0x40, 3, 4, 198, 51, 100, 11,
        32, 203, 0, 113, 10,
    ];
    assert_eq!(out, msg(2, &body));
}

#[test]
fn ibgp_update_has_empty_path_local_pref_and_communities() {
    let o = Outbound {
        peer_asn: 64512,
        ..ebgp()
    };
    let attrs = RouteAttrs {
        local_pref: Some(200),
        med: None,
        communities: vec![Community(0xFC00_0064), Community::NO_EXPORT],
        large_communities: vec![LargeCommunity(64512, 1, 2)],
    };
    let mut out = Vec::new();
    encode_updates(&o, &[], &[(p("203.0.113.10"), attrs)], &mut out);
    #[rustfmt::skip]
    let body = [
        0, 0, 0, 47,
        0x40, 1, 1, 0,
        0x40, 2, 0,
        0x40, 3, 4, 198, 51, 100, 11,
        0x40, 5, 4, 0, 0, 0, 200,
        0xC0, 8, 8, 0xFC, 0, 0, 0x64, 0xFF, 0xFF, 0xFF, 0x01,
        0xC0, 32, 12, 0, 0, 0xFC, 0, 0, 0, 0, 1, 0, 0, 0, 2,
        32, 203, 0, 113, 10,
    ];
    assert_eq!(out, msg(2, &body));
    // And LOCAL_PREF never reaches an eBGP peer, whatever the caller passed.
    let mut out = Vec::new();
    let attrs = RouteAttrs {
        local_pref: Some(200),
        ..RouteAttrs::default()
    };
    encode_updates(&ebgp(), &[], &[(p("203.0.113.10"), attrs)], &mut out);
    let Some((Message::Update(u), _)) = decode(&out, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.attributes.local_pref, None);
}

#[test]
fn ipv6_goes_in_mp_reach_with_global_next_hop() {
    let mut out = Vec::new();
    encode_updates(
        &ebgp(),
        &[],
        &[(p("2001:db8:100::10"), RouteAttrs::default())],
        &mut out,
    );
    let mut body = vec![
        0, 0, 0, 55, 0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xFC, 0x00,
    ];
    body.extend_from_slice(&[0x90, 14, 0, 38, 0, 2, 1, 16]);
    body.extend_from_slice(
        &"2001:db8::11"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.push(0);
    body.push(128);
    body.extend_from_slice(
        &"2001:db8:100::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    assert_eq!(out, msg(2, &body));
    let Some((Message::Update(u), _)) = decode(&out, &ctx4()).unwrap() else {
        panic!()
    };
    let mp = u.mp_reach.unwrap();
    assert_eq!(mp.next_hop, Some("2001:db8::11".parse().unwrap()));
    assert_eq!(
        mp.prefixes().collect::<Vec<_>>(),
        vec![p("2001:db8:100::10")]
    );
}

#[test]
fn two_octet_peer_gets_as_trans_and_as4_path() {
    let o = Outbound {
        local_asn: 4_200_000_000,
        four_octet_as: false,
        ..ebgp()
    };
    let mut out = Vec::new();
    encode_updates(
        &o,
        &[],
        &[(p("203.0.113.10"), RouteAttrs::default())],
        &mut out,
    );
    let ctx = Context {
        four_octet_as: false,
    };
    let Some((Message::Update(u), _)) = decode(&out, &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attributes.as_path,
        Some(vec![AsPathSegment::Sequence(vec![23456])])
    );
    assert_eq!(
        u.attributes.as4_path,
        Some(vec![AsPathSegment::Sequence(vec![4_200_000_000])])
    );
}

#[test]
fn end_of_rib_markers() {
    let mut out = Vec::new();
    encode_end_of_rib(Afi::Ipv4, 1, &mut out);
    assert_eq!(out, msg(2, &[0, 0, 0, 0]));
    let Some((Message::Update(u), _)) = decode(&out, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.end_of_rib(), Some((Afi::Ipv4, 1)));
    let mut out = Vec::new();
    encode_end_of_rib(Afi::Ipv6, 1, &mut out);
    assert_eq!(out, msg(2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]));
    let Some((Message::Update(u), _)) = decode(&out, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.end_of_rib(), Some((Afi::Ipv6, 1)));
}

#[test]
fn withdrawals_v4_classic_v6_mp_unreach() {
    let mut out = Vec::new();
    let s = encode_updates(
        &ebgp(),
        &[p("203.0.113.10"), p("2001:db8::5")],
        &[],
        &mut out,
    );
    assert_eq!((s.messages, s.withdrawn), (2, 2));
    let msgs = split(&out, &ctx4());
    assert_eq!(msgs[0], msg(2, &[0, 5, 32, 203, 0, 113, 10, 0, 0]));
    let Some((Message::Update(u), _)) = decode(&msgs[1], &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.mp_unreach.unwrap().prefixes().collect::<Vec<_>>(),
        vec![p("2001:db8::5")]
    );
}

#[test]
fn cease_shutdown_carries_rfc8203_text() {
    let mut out = Vec::new();
    notification::encode(
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
        &notification::shutdown_data("maintenance"),
        &mut out,
    );
    let mut body = vec![6, 2, 11];
    body.extend_from_slice(b"maintenance");
    assert_eq!(out, msg(3, &body));
    let Some((Message::Notification(n), _)) = decode(&out, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(n.shutdown_message(), Some("maintenance"));
    // Long text is cut at a character boundary within 255 bytes.
    let long = "é".repeat(200);
    let data = notification::shutdown_data(&long);
    assert_eq!(usize::from(data[0]), data.len() - 1);
    assert!(data.len() - 1 <= MAX_SHUTDOWN_MESSAGE);
    assert!(std::str::from_utf8(&data[1..]).is_ok());
}

#[test]
fn packing_fills_messages_to_the_limit() {
    let announce: Vec<(Prefix, RouteAttrs)> = (0..10_000u32)
        .map(|i| {
            (
                Prefix::host(IpAddr::V4(Ipv4Addr::from(0xC633_0000 + i))),
                RouteAttrs::default(),
            )
        })
        .collect();
    let mut out = Vec::new();
    let s = encode_updates(&ebgp(), &[], &announce, &mut out);
    assert_eq!(s.announced, 10_000);
    // 5 bytes per /32 and ~4050 bytes of room: about 810 per message.
    assert!(s.messages <= 13, "{} messages", s.messages);
    let mut seen = 0;
    for m in split(&out, &ctx4()) {
        assert!(m.len() <= MAX_LEN);
        let Some((Message::Update(u), _)) = decode(&m, &ctx4()).unwrap() else {
            panic!()
        };
        seen += u.nlri().count();
    }
    assert_eq!(seen, 10_000);
    // Different attributes never share a message.
    let two = vec![
        (p("203.0.113.1"), RouteAttrs::default()),
        (
            p("203.0.113.2"),
            RouteAttrs {
                med: Some(5),
                ..RouteAttrs::default()
            },
        ),
    ];
    let mut out = Vec::new();
    assert_eq!(encode_updates(&ebgp(), &[], &two, &mut out).messages, 2);
}

// ---- errors map to the RFC 4271 §6 NOTIFICATION ----

fn err(bytes: &[u8]) -> DecodeError {
    decode(bytes, &ctx4()).expect_err("must be refused")
}

#[test]
fn header_errors() {
    let mut b = msg(4, &[]);
    b[3] = 0;
    assert_eq!(
        err(&b).code,
        ErrorCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized)
    );
    let mut b = msg(4, &[]);
    b[17] = 18;
    let e = err(&b);
    assert_eq!((e.code.pair(), e.data), ((1, 2), vec![0, 18]));
    let b = msg(9, &[]);
    let e = err(&b);
    assert_eq!((e.code.pair(), e.data), ((1, 3), vec![9]));
    assert_eq!(err(&msg(4, &[0])).code.pair(), (1, 2));
    let mut big = msg(2, &[0; 4]);
    big[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(err(&big).code.pair(), (1, 2));
}

#[test]
fn open_errors() {
    let body = [3, 0xFC, 0, 0, 90, 192, 0, 2, 1, 0];
    let e = err(&msg(1, &body));
    assert_eq!((e.code.pair(), e.data.clone()), ((2, 1), vec![0, 4]));
    let body = [4, 0xFC, 0, 0, 2, 192, 0, 2, 1, 0];
    assert_eq!(err(&msg(1, &body)).code.pair(), (2, 6));
    let body = [4, 0xFC, 0, 0, 90, 0, 0, 0, 0, 0];
    assert_eq!(err(&msg(1, &body)).code.pair(), (2, 3));
    let body = [4, 0xFC, 0, 0, 90, 192, 0, 2, 1, 3, 1, 1, 0];
    assert_eq!(err(&msg(1, &body)).code.pair(), (2, 4));
}

#[test]
fn update_errors() {
    let origin = [0x40, 1, 1, 0];
    let path = [0x40, 2, 0];
    let nh = [0x40, 3, 4, 198, 51, 100, 1];
    let build = |attrs: &[&[u8]], nlri: &[u8]| {
        let a: Vec<u8> = attrs.concat();
        let mut body = vec![0, 0];
        body.extend_from_slice(&(a.len() as u16).to_be_bytes());
        body.extend_from_slice(&a);
        body.extend_from_slice(nlri);
        msg(2, &body)
    };
    let nlri = [32, 203, 0, 113, 10];
    assert!(decode(&build(&[&origin, &path, &nh], &nlri), &ctx4()).is_ok());
    let e = err(&build(&[&origin, &path], &nlri));
    assert_eq!((e.code.pair(), e.data), ((3, 3), vec![3]));
    assert_eq!(
        err(&build(&[&origin, &origin, &path, &nh], &nlri))
            .code
            .pair(),
        (3, 1)
    );
    assert_eq!(
        err(&build(&[&[0x40, 1, 1, 3], &path, &nh], &nlri))
            .code
            .pair(),
        (3, 6)
    );
    assert_eq!(
        err(&build(&[&[0xC0, 1, 1, 0], &path, &nh], &nlri))
            .code
            .pair(),
        (3, 4)
    );
    assert_eq!(
        err(&build(&[&[0x40, 1, 2, 0, 0], &path, &nh], &nlri))
            .code
            .pair(),
        (3, 5)
    );
    assert_eq!(
        err(&build(&[&origin, &[0x40, 2, 3, 2, 2, 0], &nh], &nlri))
            .code
            .pair(),
        (3, 11)
    );
    assert_eq!(
        err(&build(&[&origin, &path, &nh], &[33, 1, 2, 3, 4, 5]))
            .code
            .pair(),
        (3, 10)
    );
    assert_eq!(
        err(&build(&[&origin, &path, &[0x40, 3, 4, 0, 0, 0, 0]], &nlri))
            .code
            .pair(),
        (3, 8)
    );
    assert_eq!(
        err(&build(&[&origin, &path, &nh, &[0x40, 99, 0]], &nlri))
            .code
            .pair(),
        (3, 2)
    );
    // Unknown optional attributes are skipped.
    assert!(decode(
        &build(&[&origin, &path, &nh, &[0xC0, 99, 1, 7]], &nlri),
        &ctx4()
    )
    .is_ok());
    // Withdrawn length past the end.
    assert_eq!(err(&msg(2, &[0, 9, 0, 0])).code.pair(), (3, 1));
}

#[test]
fn partial_input_waits_for_more() {
    let mut b = Vec::new();
    encode_keepalive(&mut b);
    for n in 0..b.len() {
        assert_eq!(decode(&b[..n], &ctx4()).unwrap(), None, "{n} bytes");
    }
}

// ---- session scenarios ----

const LOCAL: &str = "198.51.100.11";
const PEER_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn params() -> SessionParams {
    let mut p = SessionParams::new(
        64512,
        64513,
        Ipv4Addr::new(198, 51, 100, 11),
        Duration::from_secs(9),
    );
    p.seed = 7;
    p
}

fn t(ms: u64) -> MonoTime {
    MonoTime::from_millis(ms)
}

fn peer_open(asn: u32, hold: u16) -> Vec<u8> {
    let mut out = Vec::new();
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: 1,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
    .encode(&mut out);
    out
}

fn sent(outs: &[Output]) -> Vec<u8> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn notifications(bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    split(bytes, &ctx4())
        .iter()
        .filter_map(|m| match decode(m, &ctx4()).unwrap().unwrap().0 {
            Message::Notification(n) => Some((n.code.pair().0, n.code.pair().1, n.data.to_vec())),
            _ => None,
        })
        .collect()
}

fn announced(bytes: &[u8]) -> (Vec<Prefix>, Vec<Prefix>, usize) {
    let (mut a, mut w, mut eor) = (Vec::new(), Vec::new(), 0);
    for m in split(bytes, &ctx4()) {
        if let Message::Update(u) = decode(&m, &ctx4()).unwrap().unwrap().0 {
            if u.end_of_rib().is_some() {
                eor += 1;
            }
            a.extend(u.nlri());
            w.extend(u.withdrawn());
        }
    }
    (a, w, eor)
}

fn routes(ips: &[&str]) -> BTreeMap<Prefix, RouteAttrs> {
    ips.iter().map(|s| (p(s), RouteAttrs::default())).collect()
}

/// Drives a session to Established at time `now`, returning what it sent on the way.
fn establish(s: &mut Session, now: MonoTime) -> Vec<u8> {
    let o = s.poll(now);
    assert!(o.contains(&Output::Connect), "{o:?}");
    let o = s.connected(now, LOCAL.parse().unwrap());
    let open = sent(&o);
    let Some((Message::Open(ours), _)) = decode(&open, &ctx4()).unwrap() else {
        panic!("{o:?}")
    };
    assert_eq!(ours.asn(), 64512);
    assert_eq!(ours.hold_time, 9);
    let mut all = open.clone();
    all.extend(sent(&s.received(now, &peer_open(64513, 30))));
    assert_eq!(s.state(), State::OpenConfirm);
    let mut ka = Vec::new();
    encode_keepalive(&mut ka);
    let o = s.received(now, &ka);
    assert!(o.contains(&Output::StateChanged {
        from: State::OpenConfirm,
        to: State::Established
    }));
    all.extend(sent(&o));
    all
}

#[test]
fn full_table_and_end_of_rib_after_established() {
    let mut s = Session::new(params(), t(0));
    assert!(s
        .set_routes(routes(&["203.0.113.10", "203.0.113.11", "2001:db8::1"]))
        .is_empty());
    let bytes = establish(&mut s, t(0));
    let (a, w, eor) = announced(&bytes);
    // The IPv6 prefix does not go over an IPv4 session.
    assert_eq!(a, vec![p("203.0.113.10"), p("203.0.113.11")]);
    assert!(w.is_empty());
    assert_eq!(eor, 1);
    assert_eq!(s.hold_time(), Some(Duration::from_secs(9)));
    assert_eq!(s.counters().prefixes_advertised, 2);
    assert_eq!(s.counters().established, 1);
}

#[test]
fn hold_timer_is_enforced_on_receive_and_keepalives_flow() {
    let mut s = Session::new(params(), t(0));
    establish(&mut s, t(0));
    // Keepalive after hold/3 = 3 s.
    assert_eq!(s.next_wakeup(), Some(t(3000)));
    let o = s.poll(t(3000));
    assert_eq!(split(&sent(&o), &ctx4()).len(), 1);
    assert_eq!(s.state(), State::Established);
    // A keepalive from the peer at 5 s pushes expiry to 14 s.
    let mut ka = Vec::new();
    encode_keepalive(&mut ka);
    s.received(t(5000), &ka);
    assert!(s
        .poll(t(13_999))
        .iter()
        .all(|o| !matches!(o, Output::Close)));
    let o = s.poll(t(14_000));
    assert_eq!(notifications(&sent(&o)), vec![(4, 0, vec![])]);
    assert!(o.contains(&Output::Close));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.counters().resets.get("hold_timer_expired"), Some(&1));
    assert!(s
        .counters()
        .last_error
        .as_deref()
        .unwrap()
        .contains("hold timer expired"));
}

#[test]
fn bad_peer_as_is_notified_and_backoff_grows() {
    let mut s = Session::new(params(), t(0));
    let mut now;
    let mut delays = Vec::new();
    for _ in 0..8 {
        now = s.next_wakeup().unwrap();
        assert!(s.poll(now).contains(&Output::Connect));
        s.connected(now, LOCAL.parse().unwrap());
        let o = s.received(now, &peer_open(65000, 30));
        assert_eq!(
            notifications(&sent(&o)),
            vec![(2, 2, 65000u16.to_be_bytes().to_vec())]
        );
        assert!(o.contains(&Output::Close));
        delays.push(s.next_wakeup().unwrap().saturating_since(now));
    }
    assert_eq!(s.counters().resets.get("bad_peer_as"), Some(&8));
    assert!(s
        .counters()
        .last_error
        .as_deref()
        .unwrap()
        .contains("AS 65000"));
    // Equal jitter: attempt n waits between 2^(n-1) and 2^n seconds (base 1 s).
    for (n, d) in delays.iter().enumerate() {
        let full = Duration::from_secs(1 << n);
        assert!(*d >= full / 2 && *d <= full, "attempt {n}: {d:?}");
    }
    assert!(delays[7] >= Duration::from_secs(64));
}

#[test]
fn route_changes_are_incremental_updates_without_reset() {
    let mut s = Session::new(params(), t(0));
    s.set_routes(routes(&["203.0.113.10", "203.0.113.11"]));
    establish(&mut s, t(0));
    let o = s.set_routes(routes(&["203.0.113.11", "203.0.113.12"]));
    assert!(o.iter().all(|o| matches!(o, Output::Send(_))), "{o:?}");
    let (a, w, eor) = announced(&sent(&o));
    assert_eq!(
        (a, w, eor),
        (vec![p("203.0.113.12")], vec![p("203.0.113.10")], 0)
    );
    assert!(s
        .set_routes(routes(&["203.0.113.11", "203.0.113.12"]))
        .is_empty());
    assert_eq!(s.counters().established, 1);
}

#[test]
fn route_refresh_resends_the_table() {
    let mut s = Session::new(params(), t(0));
    s.set_routes(routes(&["203.0.113.10", "203.0.113.11"]));
    establish(&mut s, t(0));
    let mut rr = Vec::new();
    message::encode_route_refresh(Afi::Ipv4, 1, &mut rr);
    let (a, _, _) = announced(&sent(&s.received(t(100), &rr)));
    assert_eq!(a, vec![p("203.0.113.10"), p("203.0.113.11")]);
    assert_eq!(s.state(), State::Established);
}

#[test]
fn graceful_stop_sends_cease_with_message_and_stays_down() {
    let mut s = Session::new(params(), t(0));
    establish(&mut s, t(0));
    let o = s.stop("node drained for maintenance");
    let mut data = vec![28];
    data.extend_from_slice(b"node drained for maintenance");
    assert_eq!(notifications(&sent(&o)), vec![(6, 2, data)]);
    assert_eq!(
        o.last(),
        Some(&Output::StateChanged {
            from: State::Established,
            to: State::Idle
        })
    );
    assert!(o.contains(&Output::Close));
    assert_eq!(s.next_wakeup(), None);
    assert!(s.poll(t(1_000_000)).is_empty());
}

#[test]
fn garbage_and_peer_notifications_reset_cleanly() {
    let mut s = Session::new(params(), t(0));
    establish(&mut s, t(0));
    let o = s.received(t(10), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(notifications(&sent(&o)), vec![(1, 1, vec![])]);
    assert_eq!(s.state(), State::Idle);
    // Next session: the peer shuts us down with a message.
    let now = s.next_wakeup().unwrap();
    establish(&mut s, now);
    let mut n = Vec::new();
    notification::encode(
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
        &notification::shutdown_data("router upgrade"),
        &mut n,
    );
    let o = s.received(now, &n);
    assert!(sent(&o).is_empty());
    assert!(o.contains(&Output::Close));
    assert_eq!(s.counters().resets.get("notification_received"), Some(&1));
    assert!(s
        .counters()
        .last_error
        .as_deref()
        .unwrap()
        .contains("router upgrade"));
}

#[test]
fn connect_timeout_and_unexpected_messages() {
    let mut s = Session::new(params(), t(0));
    assert!(s.poll(t(0)).contains(&Output::Connect));
    assert_eq!(s.next_wakeup(), Some(t(5000)));
    let o = s.poll(t(5000));
    assert!(o.contains(&Output::Close));
    assert_eq!(s.counters().resets.get("connect_timeout"), Some(&1));
    assert!(s.counters().last_error.as_deref().unwrap().contains("MD5"));
    // A KEEPALIVE before the peer's OPEN is an FSM error (RFC 6608 subcode 1).
    let now = s.next_wakeup().unwrap();
    s.poll(now);
    s.connected(now, LOCAL.parse().unwrap());
    let mut ka = Vec::new();
    encode_keepalive(&mut ka);
    assert_eq!(
        notifications(&sent(&s.received(now, &ka))),
        vec![(5, 1, vec![])]
    );
}

#[test]
fn stable_session_forgives_failures_but_flapping_does_not() {
    let mut s = Session::new(params(), t(0));
    establish(&mut s, t(0));
    // Peer hangs up after 1 s: not stable, backoff keeps growing.
    s.tcp_failed(t(1000), "connection reset");
    let d1 = s.next_wakeup().unwrap().saturating_since(t(1000));
    let now = s.next_wakeup().unwrap();
    establish(&mut s, now);
    s.tcp_failed(now + Duration::from_secs(1), "connection reset");
    let d2 = s
        .next_wakeup()
        .unwrap()
        .saturating_since(now + Duration::from_secs(1));
    assert!(
        d2 >= Duration::from_secs(1) && d1 <= Duration::from_secs(1),
        "{d1:?} {d2:?}"
    );
    // Up for 60 s: the next failure starts over at the base delay.
    let now = s.next_wakeup().unwrap();
    establish(&mut s, now);
    let later = now + Duration::from_secs(60);
    let mut ka = Vec::new();
    encode_keepalive(&mut ka);
    for i in 1..=20 {
        s.received(now + Duration::from_secs(3 * i), &ka);
    }
    s.tcp_failed(later, "peer closed");
    assert!(s.next_wakeup().unwrap().saturating_since(later) <= Duration::from_secs(1));
}

// ---- properties ----

mod props {
    use proptest::prelude::*;

    use super::*;

    fn arb_prefix() -> impl Strategy<Value = Prefix> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Prefix::new(
                IpAddr::V4(Ipv4Addr::from(a)),
                l
            )
            .unwrap()),
            (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Prefix::new(
                IpAddr::V6(std::net::Ipv6Addr::from(a)),
                l
            )
            .unwrap()),
        ]
    }

    fn arb_attrs() -> impl Strategy<Value = RouteAttrs> {
        (
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            prop::collection::btree_set(any::<u32>(), 0..4),
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

    /// A message with a valid header around arbitrary body bytes, to get past framing.
    fn framed() -> impl Strategy<Value = Vec<u8>> {
        (1u8..=5, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, body)| msg(k, &body))
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600), four in any::<bool>()) {
            let _ = decode(&bytes, &Context { four_octet_as: four });
        }

        #[test]
        fn decode_never_panics_on_framed_garbage(bytes in framed(), four in any::<bool>()) {
            let _ = decode(&bytes, &Context { four_octet_as: four });
        }

        #[test]
        fn session_never_panics_on_peer_bytes(chunks in prop::collection::vec(prop_oneof![framed(), prop::collection::vec(any::<u8>(), 0..64)], 1..6)) {
            let mut s = Session::new(params(), t(0));
            establish(&mut s, t(0));
            for c in chunks {
                s.received(t(1), &c);
            }
        }

        /// encode → decode is the identity on (prefix → attributes), packed or not.
        #[test]
        fn updates_round_trip(
            routes in prop::collection::btree_map(arb_prefix(), arb_attrs(), 0..200),
            ibgp in any::<bool>(),
            four in any::<bool>(),
        ) {
            let o = Outbound { peer_asn: if ibgp { 64512 } else { 64513 }, four_octet_as: four, ..ebgp() };
            let announce: Vec<(Prefix, RouteAttrs)> = routes.iter().map(|(p, a)| (*p, a.clone())).collect();
            let mut out = Vec::new();
            encode_updates(&o, &[], &announce, &mut out);
            let ctx = Context { four_octet_as: four };
            let mut back = BTreeMap::new();
            for m in split(&out, &ctx) {
                let Some((Message::Update(u), _)) = decode(&m, &ctx).unwrap() else { panic!() };
                let a = &u.attributes;
                let attrs = RouteAttrs {
                    local_pref: a.local_pref,
                    med: a.med,
                    communities: a.communities.clone(),
                    large_communities: a.large_communities.clone(),
                };
                for p in u.nlri().chain(u.mp_reach.iter().flat_map(|r| r.prefixes())) {
                    back.insert(p, attrs.clone());
                }
            }
            let want: BTreeMap<Prefix, RouteAttrs> = routes
                .into_iter()
                .map(|(p, mut a)| {
                    if !ibgp {
                        a.local_pref = None;
                    }
                    (p, a)
                })
                .collect();
            prop_assert_eq!(back, want);
        }

        #[test]
        fn opens_round_trip(asn in 1u32.., hold in any::<u16>(), id in 1u32.., unknown in prop::collection::vec(any::<u8>(), 0..20)) {
            prop_assume!(hold != 1 && hold != 2);
            let open = Open {
                version: 4,
                my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
                hold_time: hold,
                bgp_id: Ipv4Addr::from(id),
                capabilities: vec![
                    Capability::Multiprotocol { afi: Afi::Ipv6, safi: 1 },
                    Capability::FourOctetAs(asn),
                    Capability::Unknown { code: 73, value: &unknown },
                ],
            };
            let mut out = Vec::new();
            open.encode(&mut out);
            let Some((Message::Open(back), _)) = decode(&out, &ctx4()).unwrap() else { panic!() };
            prop_assert_eq!(back, open);
        }
    }
}
