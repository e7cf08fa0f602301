//! Cost of the per-IP election, which every speaker re-runs for every IP on each change.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolb_core::election::winner;

fn ips(n: u32) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect()
}

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("kind-worker{i}")).collect()
}

fn bench_winner(c: &mut Criterion) {
    let ips = ips(1000);
    let mut group = c.benchmark_group("election/winner_1000_ips");
    group.throughput(Throughput::Elements(ips.len() as u64));
    for node_count in [10, 100] {
        let names = nodes(node_count);
        group.bench_with_input(
            BenchmarkId::from_parameter(node_count),
            &names,
            |b, names| {
                b.iter(|| {
                    for &ip in &ips {
                        black_box(winner(black_box(ip), names.iter().map(String::as_str)));
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_winner);
criterion_main!(benches);
