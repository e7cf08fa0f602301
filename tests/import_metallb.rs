//! `ferrolb import metallb` as a user runs it: the real binary, sample files written from
//! MetalLB's documented API, and `ferrolb check-config` as the judge of the output (the field
//! by field BGP mapping is tested on the emitted tree in ferrolb-core).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ferrolb(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferrolb");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for ferrolb")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes the import's stdout to a file and runs check-config on it.
fn check(manifest: &str, name: &str) -> Output {
    let dir = std::env::temp_dir().join(format!("ferrolb-import-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ferrolb-config.yaml");
    std::fs::write(&path, manifest).expect("write manifest");
    let out = ferrolb(&["check-config", path.to_str().expect("utf-8 path")], None);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn l2_samples_import_into_a_config_check_config_accepts() {
    let out = ferrolb(&["import", "metallb", "tests/data/metallb/l2.yaml"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "",
        "the L2 sample carries every field over"
    );
    let manifest = text(&out.stdout);
    assert!(manifest.contains("kind: ConfigMap") && manifest.contains("name: ferrolb-config"));
    let verdict = check(&manifest, "l2");
    assert!(
        verdict.status.success(),
        "{}{}",
        text(&verdict.stdout),
        text(&verdict.stderr)
    );
    let summary = text(&verdict.stdout);
    for pool in ["team-a", "web", "production", "reserved"] {
        assert!(
            summary.contains(&format!("  {pool}: ")),
            "{pool} missing in:\n{summary}"
        );
    }
}

#[test]
fn bgp_sample_imports_into_a_config_check_config_accepts() {
    let out = ferrolb(&["import", "metallb", "tests/data/metallb/bgp.yaml"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warnings = text(&out.stderr);
    assert!(
        warnings.contains("\"no-export\" is 65535:65281, which an earlier entry already lists"),
        "a community written twice (by name and by number) is listed once, with a warning:\n{warnings}"
    );
    let verdict = check(&text(&out.stdout), "bgp");
    assert!(
        verdict.status.success(),
        "{}{}",
        text(&verdict.stdout),
        text(&verdict.stderr)
    );
    let summary = text(&verdict.stdout);
    for expected in [
        "tor1",
        "tor2",
        "communities: 64512:100 65535:65281 large:64512:1:2",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing in:\n{summary}"
        );
    }
}

#[test]
fn several_files_and_stdin_are_read_together_and_warnings_name_object_and_field() {
    let list = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metallb/list.yaml"),
    )
    .expect("sample");
    let out = ferrolb(
        &[
            "import",
            "metallb",
            "tests/data/metallb/unsupported.yaml",
            "-",
        ],
        Some(&list),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for expected in [
        "warning: IPAddressPool/by-namespace-label: spec.serviceAllocation.namespaceSelectors: not carried over",
        "warning: L2Advertisement/picky: spec.preferredNodeSelectors: not carried over",
        "warning: IPAddressPool/unannounced: spec.colour: not a field of MetalLB's IPAddressPool",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing in:\n{stderr}");
    }
    let manifest = text(&out.stdout);
    assert!(!manifest.contains("warning"), "warnings stay off stdout");
    let verdict = check(&manifest, "mixed");
    assert!(
        verdict.status.success(),
        "{}{}",
        text(&verdict.stdout),
        text(&verdict.stderr)
    );
    let summary = text(&verdict.stdout);
    assert!(
        summary.contains("  lan: ") && summary.contains("  by-namespace-label: "),
        "{summary}"
    );
}

#[test]
fn unreadable_input_exits_1_with_the_file_named() {
    let out = ferrolb(&["import", "metallb", "-"], Some("kind: [unclosed"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: -: invalid YAML"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "", "no half manifest on stdout");
    let out = ferrolb(
        &["import", "metallb", "tests/data/metallb/no-such-file.yaml"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read tests/data/metallb/no-such-file.yaml"));
}
