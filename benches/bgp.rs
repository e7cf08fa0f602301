//! BGP costs that grow with the number of Services: packing 10,000 prefixes into UPDATEs (a
//! freshly connected peer gets the full table), decoding them again (what a router does), and
//! planning the advertisements of 1,000 Services for one node.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::bgp::{
    decode, encode_updates, plan, Context, Message, NodeInfo, Outbound, Prefix, RouteAttrs,
    ServiceInfo, TrafficPolicy,
};
use ferrolb_core::config::{parse_config_map_data, NATIVE_KEY};

const CONFIG: &str = r#"
pools:
  - name: edge
    addresses: ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8:100::/118"]
    announce: [bgp]
bgp:
  myASN: 64512
  peers:
    - {name: tor1, address: 192.0.2.1, asn: 64513}
    - {name: tor2, address: 2001:db8::1, asn: 64512}
  advertisements:
    - {localPref: 200, communities: ["64512:100", no-export]}
"#;

/// The n-th of 1,000 documentation addresses (768 IPv4, the rest IPv6).
fn ip(i: u32) -> IpAddr {
    const V4: [[u8; 3]; 3] = [[198, 51, 100], [203, 0, 113], [192, 0, 2]];
    if i < 768 {
        let b = V4[(i / 256) as usize];
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], (i % 256) as u8))
    } else {
        IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0100_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

fn bench_bgp(c: &mut Criterion) {
    let o = Outbound {
        local_asn: 64512,
        peer_asn: 64513,
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: None,
    };
    // 10,000 distinct /32s (benchmark-only addresses; nothing is sent anywhere).
    let announce: Vec<(Prefix, RouteAttrs)> = (0..10_000u32)
        .map(|i| {
            (
                Prefix::host(IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i))),
                RouteAttrs::default(),
            )
        })
        .collect();
    let mut group = c.benchmark_group("bgp");
    group.bench_function("encode_10000_prefixes", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            black_box(encode_updates(&o, &[], black_box(&announce), &mut out));
        })
    });
    let mut wire = Vec::new();
    encode_updates(&o, &[], &announce, &mut wire);
    let ctx = Context {
        four_octet_as: true,
    };
    group.bench_function("decode_10000_prefixes", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut n = 0;
            while let Ok(Some((m, used))) = decode(&wire[at..], &ctx) {
                if let Message::Update(u) = m {
                    n += u.nlri().count();
                }
                at += used;
            }
            assert_eq!(n, 10_000);
            black_box(n)
        })
    });
    let data: BTreeMap<String, String> = [(NATIVE_KEY.to_string(), CONFIG.to_string())].into();
    let config = parse_config_map_data(&data)
        .expect("bench config is valid")
        .config;
    let labels = BTreeMap::new();
    let services: Vec<ServiceInfo> = (0..1000)
        .map(|i| ServiceInfo {
            ips: vec![ip(i)],
            pool: "edge".to_string(),
            policy: if i % 2 == 0 {
                TrafficPolicy::Cluster
            } else {
                TrafficPolicy::Local
            },
            ready_anywhere: true,
            ready_on_node: i % 3 != 0,
        })
        .collect();
    group.bench_function("plan_1000_services", |b| {
        b.iter(|| {
            black_box(plan(
                &config,
                NodeInfo { labels: &labels },
                black_box(&services),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_bgp);
criterion_main!(benches);
