//! Fuzzes the pool config parser in all three formats: as a whole file (`check-config`) and as
//! ConfigMap data whose keys select the native, MetalLB-legacy or kube-vip format.
#![no_main]

use std::collections::BTreeMap;

use ferrolb_core::config::{parse_config_map_data, parse_file};
use libfuzzer_sys::fuzz_target;

/// Keys that select each format, so the fuzzer reaches every translator quickly.
const KEYS: &[&str] = &["config.yaml", "config", "cidr-global", "range-global", "cidr-team-a", "allow-share-global", "skip-end-ips-in-cidr", "search-order"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_file(text);
    // First byte picks keys; the rest is split on NUL into values.
    let (selector, rest) = text.split_at(text.char_indices().nth(1).map_or(text.len(), |(i, _)| i));
    let pick = selector.bytes().next().unwrap_or(0) as usize;
    let mut map = BTreeMap::new();
    for (i, value) in rest.split('\0').enumerate().take(4) {
        let key = KEYS[(pick + i * 3) % KEYS.len()];
        map.insert(key.to_string(), value.to_string());
    }
    if let Err(errors) = parse_config_map_data(&map) {
        // Every rejection must carry at least one error that renders on one line.
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(!e.to_string().contains('\n'));
        }
    }
});
