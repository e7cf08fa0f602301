//! The sample pool configs in `config/` and the deliberately broken ones in `config/broken/`,
//! checked with the real binary (`ferrolb check-config FILE`), the way a user would check an
//! edit before applying it. A sample that stops parsing, or an error message that changes
//! wording, fails here instead of in a user's terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.yaml` files directly in `dir`, sorted so failures are reported in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn check_config(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run ferrolb check-config")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_sample_config_is_valid() {
    let files = yaml_files(&repo().join("config"));
    // Native IPv4, native IPv6, native multi-pool, MetalLB legacy, kube-vip: losing one of
    // them (a rename, a stray delete) should be noticed.
    assert!(
        files.len() >= 5,
        "expected at least 5 sample configs in config/, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        let out = check_config(file);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let first = stdout.lines().next().unwrap_or_default();
        // "<file>: valid" and then the summary of what the config defines.
        let ok = out.status.code() == Some(0)
            && first == format!("{}: valid", file.display())
            && stdout.lines().count() > 1
            && !stdout.contains("warning:")
            && stderr.trim().is_empty();
        if !ok {
            failures.push(format!(
                "{}: exit {:?}\nstdout:\n{stdout}stderr:\n{stderr}",
                file.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The base's own ConfigMap is a sample too: `kubectl apply -k deploy/` must install a valid
/// config.
#[test]
fn the_deploy_base_config_is_valid() {
    let file = repo().join("deploy/config.yaml");
    let out = check_config(&file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn every_broken_config_fails_with_exactly_the_expected_errors() {
    let dir = repo().join("config/broken");
    let files = yaml_files(&dir);
    assert!(
        files.len() >= 8,
        "expected at least 8 broken configs in config/broken/, found {files:?}"
    );
    // Every .expected belongs to a config (a renamed config must not leave its
    // expectations behind, untested).
    for entry in std::fs::read_dir(&dir).expect("read config/broken") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("yaml").is_file(),
                "{} has no config next to it",
                path.display()
            );
        }
    }
    let mut failures = Vec::new();
    for file in &files {
        let expected_path = file.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !expected.is_empty(),
            "{} lists no error",
            expected_path.display()
        );
        let out = check_config(file);
        let stderr = text(&out.stderr);
        // The header names the file and the count; then one "error: " line per problem.
        let header = format!("{}: invalid ({} error(s))", file.display(), expected.len());
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        if out.status.code() != Some(1)
            || stderr.lines().next() != Some(header.as_str())
            || errors != expected
        {
            failures.push(format!(
                "{}: exit {:?}\nexpected stderr:\n{header}\n{}\nactual stderr:\n{stderr}",
                file.display(),
                out.status.code(),
                expected.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
