//! Finding the `ferrolb` binary that tests, benches and the sandbox run.
//!
//! Cargo tells a package's own integration tests and benches where its binaries are
//! (`CARGO_BIN_EXE_ferrolb`), but only when it compiles *them*, not a library they use, and
//! never for examples. So the test kit finds the binary where Cargo puts it: a test or bench
//! executable lives in `target/<profile>/deps/`, an example in `target/<profile>/examples/`,
//! and `ferrolb` in `target/<profile>/` above both.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// The repository's root (where the workspace `Cargo.toml`, `examples/` and `deploy/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `ferrolb` binary next to the running test or bench (`target/<profile>/ferrolb`).
///
/// Cargo builds a package's binaries before it runs that package's integration tests and
/// benches, so for them this is the freshly built binary (the same file
/// `CARGO_BIN_EXE_ferrolb` names). Falls back to `ferrolb` on `$PATH` when the running
/// executable's path cannot be read.
pub fn ferrolb() -> PathBuf {
    profile_dir()
        .map(|dir| dir.join("ferrolb"))
        .unwrap_or_else(|_| PathBuf::from("ferrolb"))
}

/// `target/<profile>`: the directory above the one holding the running executable.
fn profile_dir() -> Result<PathBuf, LocateError> {
    let exe = std::env::current_exe().map_err(LocateError::CurrentExe)?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or(LocateError::UnexpectedPath(exe))
}

/// Why [`locate_or_build`] found no `ferrolb` binary.
#[derive(Debug, Error)]
pub enum LocateError {
    /// `$FERROLB_BIN` names something that is not a file.
    #[error("FERROLB_BIN={} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// The running executable's own path is unknown.
    #[error("cannot find this executable's path: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// The running executable is not inside a `target/<profile>/<dir>/` tree.
    #[error("unexpected executable path {}", .0.display())]
    UnexpectedPath(PathBuf),
    /// `cargo build --bin ferrolb` could not be started.
    #[error("cannot run {}: {source}", cargo.display())]
    Cargo {
        /// The `cargo` executable from `$CARGO`.
        cargo: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// `cargo build --bin ferrolb` ran and failed.
    #[error("`cargo build --profile {profile} --bin ferrolb` failed ({status})")]
    BuildFailed {
        /// The Cargo profile built.
        profile: String,
        /// Cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// There is no binary where it should be.
    #[error(
        "no ferrolb binary at {}: build it with `cargo build --release --bin ferrolb` \
         (or set FERROLB_BIN)",
        .0.display()
    )]
    Missing(PathBuf),
}

/// Finds the `ferrolb` binary for a program Cargo does not build it for (the sandbox example),
/// in this order:
///
/// 1. `$FERROLB_BIN`, when set (tests/sandbox.rs passes Cargo's own path this way).
/// 2. Started by Cargo (`cargo run --example sandbox` sets `$CARGO` at run time): run
///    `cargo build --bin ferrolb` in the same profile, because Cargo builds no binaries for
///    `cargo run --example`; when it is up to date that takes a moment, and it means the
///    caller never runs a binary older than the sources.
/// 3. Otherwise (e.g. the example run directly, maybe under sudo): `target/<profile>/ferrolb`,
///    next to the directory holding the running executable.
pub fn locate_or_build() -> Result<PathBuf, LocateError> {
    if let Some(path) = std::env::var_os("FERROLB_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(LocateError::NotAFile(path));
        }
        return Ok(path);
    }
    let profile_dir = profile_dir()?;
    let candidate = profile_dir.join("ferrolb");
    if let Some(cargo) = std::env::var_os("CARGO") {
        // Cargo names the dev profile's directory `debug`; every other profile's after itself.
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(name) => name.to_string(),
        };
        let manifest = workspace_root().join("Cargo.toml");
        println!("building the ferrolb binary (cargo build --profile {profile} --bin ferrolb) ...");
        let status = Command::new(&cargo)
            .args([
                "build",
                "--quiet",
                "--profile",
                &profile,
                "--bin",
                "ferrolb",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .map_err(|source| LocateError::Cargo {
                cargo: PathBuf::from(&cargo),
                source,
            })?;
        if !status.success() {
            return Err(LocateError::BuildFailed { profile, status });
        }
    }
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(LocateError::Missing(candidate))
    }
}
