//! Fuzzes the BGP codec and session on arbitrary bytes from a peer: decoding must never panic,
//! every error must map to a NOTIFICATION that itself decodes, what decodes as an UPDATE must
//! re-encode (as FerroLB would announce it) to messages that decode to the same prefixes, and
//! an Established session fed the bytes must never panic.
#![no_main]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use ferrolb_core::bgp::{
    decode, encode_keepalive, encode_notification, encode_updates, Afi, Capability, Context,
    Message, Open, Outbound, Prefix, RouteAttrs, Session, SessionParams,
};
use ferrolb_core::election::MonoTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (four, bytes) = match data.split_first() {
        Some((b, rest)) => (b & 1 == 1, rest),
        None => return,
    };
    let ctx = Context {
        four_octet_as: four,
    };
    match decode(bytes, &ctx) {
        Ok(Some((Message::Update(u), _))) => {
            let announce: Vec<(Prefix, RouteAttrs)> = u
                .nlri()
                .chain(u.mp_reach.iter().flat_map(|r| r.prefixes()))
                .map(|p| (p, RouteAttrs::default()))
                .collect();
            let o = Outbound {
                local_asn: 64512,
                peer_asn: 64513,
                four_octet_as: four,
                next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 1)),
                next_hop_v6: Some("2001:db8::1".parse().unwrap()),
            };
            let mut out = Vec::new();
            encode_updates(&o, &[], &announce, &mut out);
            let mut back = BTreeSet::new();
            let mut at = 0;
            while at < out.len() {
                let (m, n) = decode(&out[at..], &ctx)
                    .expect("our UPDATE decodes")
                    .expect("whole");
                let Message::Update(u2) = m else {
                    panic!("not an UPDATE")
                };
                back.extend(
                    u2.nlri()
                        .chain(u2.mp_reach.iter().flat_map(|r| r.prefixes())),
                );
                at += n;
            }
            let want: BTreeSet<Prefix> = announce.iter().map(|(p, _)| *p).collect();
            assert_eq!(back, want);
        }
        Ok(_) => {}
        Err(e) => {
            let mut n = Vec::new();
            encode_notification(e.code, &e.data, &mut n);
            let (m, _) = decode(&n, &ctx)
                .expect("our NOTIFICATION decodes")
                .expect("whole");
            assert!(matches!(m, Message::Notification(x) if x.code == e.code));
        }
    }

    // The same bytes arriving on an Established session.
    let t0 = MonoTime::ZERO;
    let mut s = Session::new(
        SessionParams::new(
            64512,
            64513,
            Ipv4Addr::new(198, 51, 100, 11),
            Duration::from_secs(9),
        ),
        t0,
    );
    s.poll(t0);
    s.connected(t0, "198.51.100.11".parse().unwrap());
    let mut open = Vec::new();
    Open {
        version: 4,
        my_as: 64513,
        hold_time: 9,
        bgp_id: Ipv4Addr::new(198, 51, 100, 1),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: 1,
            },
            Capability::FourOctetAs(64513),
        ],
    }
    .encode(&mut open);
    encode_keepalive(&mut open);
    s.received(t0, &open);
    s.received(t0, bytes);
});
