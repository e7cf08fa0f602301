//! A process running inside a namespace, killed when its guard is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variables removed from every spawned process: no proxy is reachable from inside
/// a test namespace, and a proxy setting inherited from the developer's shell would silently
/// send HTTP (kube clients, curl) nowhere.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// A child process started with `ip netns exec <ns> ...`.
///
/// Its stdout and stderr go to files (see [`NsChild::stdout_path`]). Dropping the guard sends
/// SIGKILL and reaps the process, also during a panic; when the test is panicking the log
/// paths and the tail of stderr are printed so a failure explains itself.
#[derive(Debug)]
pub struct NsChild {
    label: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl NsChild {
    /// Starts `program args...` in namespace `ns`, logging to `<log_dir>/<label>.{out,err}`.
    pub(crate) fn spawn(
        ns: &str,
        label: &str,
        log_dir: &Path,
        program: &str,
        args: &[&str],
    ) -> std::io::Result<Self> {
        let stdout_path = log_dir.join(format!("{label}.out"));
        let stderr_path = log_dir.join(format!("{label}.err"));
        let stdout = File::create(&stdout_path)?;
        let stderr = File::create(&stderr_path)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        // `ip netns exec` execs the program in place, so this pid is the program's pid and
        // signals reach it directly.
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start `ip netns exec {ns} {program}`: {e}"),
                )
            })?;
        Ok(Self {
            label: label.to_string(),
            child,
            stdout_path,
            stderr_path,
            exited: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far, from `/proc/<pid>/stat`; `None`
    /// once it has exited or if the file cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The command name (field 2) may hold spaces; fields after it follow the last ')'.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
        Some(Duration::from_millis((utime + stime) * 1000 / hz))
    }

    /// Resident memory of the process in bytes (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Sends SIGTERM (graceful stop).
    pub fn term(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGKILL (crash).
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// Sends SIGSTOP: the process freezes without closing its sockets, like a hung node.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// Sends SIGCONT, undoing [`NsChild::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&mut self, sig: libc::c_int) {
        if self.exited.is_some() || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own unreaped child; the pid cannot have been reused because
        // we have not waited for it yet.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    /// The exit status, if it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.term();
        if let Some(s) = self.wait_exit(grace) {
            return Some(s);
        }
        self.kill();
        self.wait_exit(Duration::from_secs(5))
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits up to `timeout` until stdout or stderr contains `needle`; false on timeout.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            self.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            let err = self.stderr();
            let tail: Vec<&str> = err.lines().rev().take(20).collect();
            eprintln!(
                "netns harness: process {} logs: {} and {}; last stderr lines:",
                self.label,
                self.stdout_path.display(),
                self.stderr_path.display()
            );
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
        }
    }
}
