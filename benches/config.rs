//! How long a ConfigMap change takes to parse and validate. The controller and every speaker do
//! this on each change, so it must stay far below a watch event's latency even for big configs.

use std::collections::BTreeMap;
use std::fmt::Write;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::config::parse_config_map_data;

const POOLS: usize = 50;

fn native() -> BTreeMap<String, String> {
    let mut y = String::from("pools:\n");
    for i in 0..POOLS {
        let _ = write!(
            y,
            "- name: pool-{i}\n  addresses: [\"10.{i}.0.0/24\", \"10.{i}.1.10-10.{i}.1.250\", \"fd00:{i:x}::/64\"]\n  autoAssign: {}\n  namespaces: [team-{i}]\n  serviceSelector: {{tier: web}}\n",
            i % 2 == 0
        );
    }
    y.push_str("l2:\n  interfaces: [\"^eth\", \"^bond\"]\n  nodeSelector: {edge: \"true\"}\n  garp: {burst: 3, interval: 500ms, refresh: 1m}\n");
    [("config.yaml".to_string(), y)].into()
}

fn metallb() -> BTreeMap<String, String> {
    let mut y = String::from("address-pools:\n");
    for i in 0..POOLS {
        let _ = write!(
            y,
            "- name: pool-{i}\n  protocol: layer2\n  addresses:\n  - 10.{i}.0.0/24\n  - 10.{i}.1.10 - 10.{i}.1.250\n  - fd00:{i:x}::/64\n  auto-assign: false\n  avoid-buggy-ips: true\n"
        );
    }
    [("config".to_string(), y)].into()
}

fn kubevip() -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    for i in 0..POOLS - 1 {
        data.insert(
            format!("cidr-team-{i}"),
            format!("10.{i}.0.0/24,fd00:{i:x}::/64"),
        );
        data.insert(format!("allow-share-team-{i}"), "true".to_string());
    }
    data.insert(
        "range-global".to_string(),
        "192.168.0.10-192.168.0.250,fd01::10-fd01::ff".to_string(),
    );
    data.insert("search-order".to_string(), "desc".to_string());
    data.insert("skip-end-ips-in-cidr".to_string(), "true".to_string());
    data
}

fn bench(c: &mut Criterion) {
    for (name, data) in [
        ("native", native()),
        ("metallb_legacy", metallb()),
        ("kube_vip", kubevip()),
    ] {
        // Prove the input is valid, so the bench measures the success path and not an early exit.
        match parse_config_map_data(&data) {
            Ok(p) => assert_eq!(p.config.pools.len(), POOLS, "{name}"),
            Err(e) => panic!("{name} bench config is invalid:\n{e}"),
        }
        c.bench_function(&format!("config/parse_validate_50_pools/{name}"), |b| {
            b.iter(|| parse_config_map_data(std::hint::black_box(&data)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
