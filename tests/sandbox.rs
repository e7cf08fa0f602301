//! The README's first command, `cargo run --release --example sandbox`, keeps working: this
//! runs the sandbox example in `--once` mode and checks what a newcomer would see.
//!
//! With root and the tools (ip, nft, arping, curl) the whole data plane must run: EXTERNAL-IP,
//! curl through the elected node, failover. Without them the sandbox must explain why and still
//! show allocation. Under `CI=true` or `FERROLB_E2E=1` the data plane is required. It runs once
//! per backend `FERROLB_API` selects (`--api sim`, `--api real`).
//!
//! Cargo gives tests no `CARGO_BIN_EXE_*` for examples, but `cargo test` builds every example
//! into `target/<profile>/examples/`, next to the `ferrolb` binary it does give us.

// Needs libc/alloc calls std has no safe form of (kill(2) and geteuid(2)); every unsafe block says
// why it is sound.
#![allow(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ferrolb_testkit::{for_each_backend_blocking, on_path, strict, ApiBackend};

/// Generous: the run itself takes a few seconds, but kubectl's first start can be slow.
const TIMEOUT: Duration = Duration::from_secs(300);

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Skips loudly, or fails under CI=true / FERROLB_E2E=1.
fn skip(why: &str) {
    assert!(
        !strict(),
        "sandbox test cannot run (CI=true or FERROLB_E2E=1): {why}"
    );
    eprintln!("\n*** SKIPPED: sandbox example test: {why} ***\n");
}

/// The example binary, if built and newer than its sources.
fn example_binary() -> Result<PathBuf, String> {
    let ferrolb = Path::new(env!("CARGO_BIN_EXE_ferrolb"));
    let dir = ferrolb
        .parent()
        .ok_or("CARGO_BIN_EXE_ferrolb has no parent")?;
    let exe = dir.join("examples").join("sandbox");
    let built = mtime(&exe).ok_or_else(|| {
        format!(
            "{} is not built (`cargo test` builds examples, `cargo test --test sandbox` alone \
             does not: run `cargo build --example sandbox` first)",
            exe.display()
        )
    })?;
    // `cargo test --test sandbox` would run an old build after an edit: refuse to judge it.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("examples/sandbox.rs")];
    rust_files_under(&root.join("tests/testkit/src"), &mut sources);
    for src in sources {
        if mtime(&src).is_some_and(|m| m > built) {
            return Err(format!(
                "{} is older than {}: run `cargo build --example sandbox` (or plain `cargo test`)",
                exe.display(),
                src.display()
            ));
        }
    }
    Ok(exe)
}

/// Every `.rs` file under `dir`: the test kit the example is built from.
fn rust_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            rust_files_under(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sandbox_once_shows_allocation_announcement_and_failover() {
    // `--api real` on the real backend: the same steps against kube-apiserver and etcd.
    for_each_backend_blocking(sandbox_once);
}

fn sandbox_once(backend: ApiBackend) {
    let exe = match example_binary() {
        Ok(exe) => exe,
        Err(why) => return skip(&why),
    };
    let mut child = Command::new(&exe)
        .arg("--once")
        .args(["--api", &backend.to_string()])
        .env("FERROLB_BIN", env!("CARGO_BIN_EXE_ferrolb"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            // SIGTERM first: the sandbox then removes its namespaces and processes itself.
            // SAFETY: kill(2) on our own unreaped child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let all = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    let status =
        status.unwrap_or_else(|| panic!("sandbox did not finish within {TIMEOUT:?}\n{all}"));
    assert!(status.success(), "sandbox --once failed ({status})\n{all}");

    assert!(
        stdout.contains("EXTERNAL-IP: web 203.0.113."),
        "no EXTERNAL-IP line\n{all}"
    );
    // SAFETY: geteuid(2) cannot fail and has no side effects.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "nft", "arping", "curl"].iter().all(|t| on_path(t));
    if strict() || (root && tools) {
        for want in [
            "curl http://203.0.113.",
            "/ -> node-",
            "failover: curl http://203.0.113.",
            "after node-",
            "moved back to node-",
        ] {
            assert!(stdout.contains(want), "missing `{want}`\n{all}");
        }
        assert!(
            !stdout.contains("WITHOUT THE DATA PLANE"),
            "data plane expected\n{all}"
        );
        // The BGP step: BIRD learns the demo Service's IP from all three speakers (CI installs
        // bird2, so there it must run).
        if strict() || (on_path("bird") && on_path("birdc")) {
            for want in [
                "BGP: the router's kernel route for 203.0.113.",
                "ECMP via node-1, node-2, node-3",
                "nexthop via 198.51.100.11",
                "from behind the router, many connections -> node-",
            ] {
                assert!(stdout.contains(want), "missing `{want}`\n{all}");
            }
        } else {
            assert!(stdout.contains("BGP: skipped"), "{all}");
        }
    } else {
        assert!(
            stdout.contains("Running WITHOUT THE DATA PLANE because: "),
            "no explanation of the missing data plane\n{all}"
        );
        eprintln!("sandbox ran without the data plane (not root or tools missing), as expected");
    }
}
