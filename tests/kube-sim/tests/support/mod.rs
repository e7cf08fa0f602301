//! What the tests that drive real client binaries (`kubectl`, `helm`) share: a kube-sim
//! process per test with a private kubeconfig and caches, deadline-bound runs, and the
//! loud-skip rule (a missing binary skips, except under `CI=true` or `FERROLB_E2E=1`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any single kubectl command or expectation may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Whether kubectl can run here; panics when it must (CI) and cannot.
pub fn kubectl_available() -> bool {
    tool_available("kubectl", &["version", "--client"], "install kubectl v1.32")
}

/// Whether helm 3 can run here; panics when it must (CI) and cannot.
pub fn helm_available() -> bool {
    tool_available(
        "helm",
        &["version", "--short"],
        "run tests/kube-sim/install-helm.sh",
    )
}

/// Whether `tool args` succeeds; a missing tool is a loud skip, or a failure under CI.
fn tool_available(tool: &str, args: &[&str], how: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    assert!(
        !ferrolb_testkit::strict(),
        "{tool} not found, and CI=true or FERROLB_E2E=1 makes it required ({how})"
    );
    eprintln!("SKIPPED: {tool} not found; {how} to run the {tool} tests");
    false
}

/// Skips the test (see [`kubectl_available`]) or starts a kube-sim for it.
#[macro_export]
macro_rules! sim_or_skip {
    ($name:expr) => {{
        if !$crate::support::kubectl_available() {
            return;
        }
        $crate::support::Sim::start($name)
    }};
}

/// What one finished kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert!(self.status.success(), "kubectl failed: {self:?}");
        self.stdout
    }
}

/// Kills a child process when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a pipe line by line on a thread, so tests can wait for lines with a deadline.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line matching `pred`, failing after [`DEADLINE`]; returns every line read.
pub fn wait_line(rx: &mpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line with {what} ({e}); saw {seen:#?}"),
        }
    }
}

/// A kube-sim process with its kubeconfig and a private kubectl cache.
pub struct Sim {
    pub proc: KillOnDrop,
    pub dir: PathBuf,
    pub url: String,
}

impl Sim {
    pub fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kube-sim-kubectl-{}-{test}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(dir.join("kubeconfig"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the kube-sim binary starts");
        let stdout = child.stdout.take().unwrap();
        let proc = KillOnDrop(child);
        // The binary prints its URL as the first line once it is listening.
        let url = wait_line(&lines_of(stdout), "the URL", |l| l.starts_with("http://"));
        Self { proc, dir, url }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .args(args);
        cmd
    }

    /// Runs kubectl to completion, killing it if it outlives [`DEADLINE`].
    pub fn kubectl(&self, args: &[&str]) -> Run {
        run(self.command(args), args)
    }

    /// `helm` with this sim's kubeconfig and private Helm cache, config and data homes.
    pub fn helm_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("helm");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env("HOME", &self.dir)
            .env("HELM_CACHE_HOME", self.dir.join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm-config"))
            .env("HELM_DATA_HOME", self.dir.join("helm-data"))
            .args(args);
        cmd
    }

    /// Runs helm to completion, killing it if it outlives [`DEADLINE`].
    pub fn helm(&self, args: &[&str]) -> Run {
        run(self.helm_command(args), args)
    }
}

/// Runs `cmd` to completion, killing it if it outlives [`DEADLINE`].
fn run(mut cmd: Command, args: &[&str]) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command runs");
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{cmd:?} {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the process exits; collect everything they carried.
    let collect = |rx: mpsc::Receiver<String>| rx.iter().map(|l| l + "\n").collect::<String>();
    Run {
        status,
        stdout: collect(out),
        stderr: collect(err),
    }
}

impl Sim {
    /// Writes a file into the test's directory.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// `kubectl get WHAT -o json`, parsed.
    pub fn get_json(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&args).ok()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as a kubectl argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
