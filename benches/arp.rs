//! Per-frame cost of the ARP codec: every ARP frame on the LAN is parsed, and every request for
//! an announced IP is answered.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::arp::{build_gratuitous, build_reply, parse_frame, ArpOp, MacAddr, FRAME_LEN};

const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 240);
const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn bench_arp(c: &mut Criterion) {
    let mut request = [0u8; FRAME_LEN];
    build_gratuitous(&mut request, PEER, HOST, ArpOp::Request);
    let mut group = c.benchmark_group("arp");
    group.bench_function("parse_frame", |b| {
        b.iter(|| black_box(parse_frame(black_box(&request[..]))))
    });
    group.bench_function("build_reply", |b| {
        let mut buf = [0u8; FRAME_LEN];
        b.iter(|| {
            black_box(build_reply(
                &mut buf,
                black_box(OURS),
                black_box(VIP),
                black_box(PEER),
                black_box(HOST),
            ));
        })
    });
    group.bench_function("build_gratuitous", |b| {
        let mut buf = [0u8; FRAME_LEN];
        b.iter(|| {
            black_box(build_gratuitous(
                &mut buf,
                black_box(OURS),
                black_box(VIP),
                ArpOp::Reply,
            ));
        })
    });
    group.finish();
}

criterion_group!(benches, bench_arp);
criterion_main!(benches);
