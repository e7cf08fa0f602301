//! Every input a fuzzer ever crashed on (`fuzz/`), replayed through the same checks the fuzz
//! target makes, so a fixed bug stays fixed. File names start with the fuzz target's name.

use std::collections::BTreeMap;
use std::path::Path;

use ferrolb_core::config::{parse_config_map_data, parse_file};

/// The config_parse target's mapping from bytes to ConfigMap data (kept in step with
/// fuzz/fuzz_targets/config_parse.rs).
fn config_parse(text: &str) {
    const KEYS: &[&str] = &[
        "config.yaml",
        "config",
        "cidr-global",
        "range-global",
        "cidr-team-a",
        "allow-share-global",
        "skip-end-ips-in-cidr",
        "search-order",
    ];
    let _ = parse_file(text);
    let split = text.char_indices().nth(1).map_or(text.len(), |(i, _)| i);
    let (selector, rest) = text.split_at(split);
    let pick = selector.bytes().next().unwrap_or(0) as usize;
    let mut map = BTreeMap::new();
    for (i, value) in rest.split('\0').enumerate().take(4) {
        map.insert(
            KEYS[(pick + i * 3) % KEYS.len()].to_string(),
            value.to_string(),
        );
    }
    if let Err(errors) = parse_config_map_data(&map) {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}");
        }
    }
}

#[test]
fn fuzz_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::read(&path).expect("read");
        if name.starts_with("config_parse") {
            config_parse(&String::from_utf8_lossy(&bytes));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no regression inputs found in {}", dir.display());
}
