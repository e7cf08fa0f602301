//! Per-frame cost of the NDP codec: every Neighbor Solicitation or Advertisement on the LAN is
//! parsed and classified, and every solicitation for an announced IP is answered. The
//! `answer_solicitation` figure is the whole user-space work of one answer (parse, validate
//! with checksum, classify against a table of 1,000 IPs, build the advertisement).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::arp::MacAddr;
use ferrolb_core::ndp::{
    build_advertisement_reply, build_unsolicited_advertisement, classify, multicast_mac,
    parse_frame, solicited_node, NdpBuf, NdpFrame, NdpMessage, Observation, NDP_FRAME_LEN,
};

const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

fn solicitation() -> Vec<u8> {
    let f = NdpFrame {
        eth_dst: multicast_mac(solicited_node(VIP)),
        eth_src: PEER,
        ip_src: HOST,
        ip_dst: solicited_node(VIP),
        message: NdpMessage::Solicitation,
        target: VIP,
        source_ll: Some(PEER),
        target_ll: None,
        nonce: None,
    };
    let mut buf = [0u8; NDP_FRAME_LEN];
    f.write(&mut buf).expect("fits").to_vec()
}

fn bench_ndp(c: &mut Criterion) {
    let request = solicitation();
    let table: HashMap<Ipv6Addr, u32> = (0..1000u16)
        .map(|i| (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100 + i), 2))
        .collect();
    let mut group = c.benchmark_group("ndp");
    group.bench_function("parse_frame", |b| {
        b.iter(|| black_box(parse_frame(black_box(&request[..])).is_ok()))
    });
    group.bench_function("answer_solicitation", |b| {
        let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
        b.iter(|| {
            let Ok(f) = parse_frame(black_box(&request[..])) else {
                return 0;
            };
            match classify(&f, OURS, |ip| table.get(&ip) == Some(&2)) {
                Observation::Solicitation {
                    ip,
                    from_mac,
                    from_ip,
                } => build_advertisement_reply(&mut buf, OURS, ip, from_mac, from_ip).len(),
                _ => 0,
            }
        })
    });
    group.bench_function("build_unsolicited_advertisement", |b| {
        let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
        b.iter(|| {
            black_box(build_unsolicited_advertisement(
                &mut buf,
                black_box(OURS),
                black_box(VIP),
            ));
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ndp);
criterion_main!(benches);
