//! Running external commands with a deadline, and errors that name the command.

use std::fmt;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A command that failed to start, timed out, or exited non-zero.
#[derive(Debug, Clone)]
pub struct CmdError {
    /// The command line, for the message.
    pub command: String,
    /// What went wrong.
    pub reason: String,
    /// Whatever the command printed on stdout before it ended.
    pub stdout: String,
    /// Whatever the command printed on stderr before it ended.
    pub stderr: String,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.command, self.reason)?;
        if !self.stderr.trim().is_empty() {
            write!(f, "; stderr: {}", self.stderr.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for CmdError {}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Renders a command line for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, killing it at `timeout`. Returns its output whatever its exit code.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput, CmdError> {
    let command = describe(cmd);
    let fail = |reason: String, stdout: String, stderr: String| CmdError {
        command: command.clone(),
        reason,
        stdout,
        stderr,
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(
                format!("could not start: {e}"),
                String::new(),
                String::new(),
            )
        })?;
    // Drain both pipes on their own threads so a chatty command cannot block on a full pipe
    // while we wait for it.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            // std has no wait-with-timeout; a short poll keeps the deadline precise enough.
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    format!("could not be waited for: {e}"),
                    String::new(),
                    String::new(),
                ));
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(status) => Ok(CmdOutput {
            status,
            stdout,
            stderr,
        }),
        None => Err(fail(
            format!("did not finish within {timeout:?}"),
            stdout,
            stderr,
        )),
    }
}

/// Runs `cmd` and requires exit code 0 within `timeout`; returns stdout.
pub fn run_within(cmd: &mut Command, timeout: Duration) -> Result<String, CmdError> {
    let command = describe(cmd);
    let out = output_within(cmd, timeout)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(CmdError {
            command,
            reason: format!("failed with {}", out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// The deadline for configuration commands (`ip`, `nft`); they take milliseconds, so a hang
/// means something is badly wrong and the test should say so instead of stalling.
pub const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `program args...` with [`CONFIG_TIMEOUT`], requiring success.
pub fn run(program: &str, args: &[&str]) -> Result<String, CmdError> {
    run_within(Command::new(program).args(args), CONFIG_TIMEOUT)
}

/// Runs `nft -f -` with `script` on stdin inside namespace `ns`, requiring success.
pub fn nft_script(ns: &str, script: &str) -> Result<(), CmdError> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "nft", "-f", "-"]);
    let command = format!("{} <<< {script:?}", describe(&cmd));
    let fail = |reason: String, stderr: String| CmdError {
        command: command.clone(),
        reason,
        stdout: String::new(),
        stderr,
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}"), String::new()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| fail(format!("stdin write failed: {e}"), String::new()))?;
    }
    // nft reads its whole script and exits promptly; wait_with_output cannot hang on the
    // pipes because the script is tiny and stdin is closed above.
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("could not be waited for: {e}"), String::new()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(
            format!("failed with {}", out.status),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}
