//! Real tools as independent judges: arping and curl, one-shot and as samplers.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::cmd::{self, CmdError};

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.len() != 6 {
            return Err(format!("not a MAC address: {s:?}"));
        }
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| format!("not a MAC address: {s:?}"))?;
        }
        Ok(MacAddr(out))
    }
}

/// Where the probes run: a namespace, its LAN interface and its own address.
#[derive(Debug, Clone)]
pub(crate) struct Prober {
    pub ns: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
}

/// How long one arping listens for answers after its single request. Replies on a veth bridge
/// take microseconds; a speaker in user space answers within a few milliseconds.
pub const ARPING_WINDOW: Duration = Duration::from_millis(300);

/// How long one curl may take, connect included.
pub const CURL_TIMEOUT: Duration = Duration::from_millis(1000);

impl Prober {
    /// Sends one ARP request for `ip` and returns every distinct MAC that answered within
    /// `window`, in order of arrival. Relies on Thomas Habets' arping (Debian `arping`):
    /// `-c 1` sends one request, `-w` is the overall deadline during which all replies
    /// (including extra ones from a second responder) are printed.
    pub fn arping_all(&self, ip: Ipv4Addr, window: Duration) -> Result<Vec<MacAddr>, CmdError> {
        self.arping(ip, window, false)
    }

    /// Sends one ARP request for `ip` and returns the first MAC that answers within `window`;
    /// `-C 1` makes arping exit at the first reply instead of waiting out the window.
    pub fn arping_first(
        &self,
        ip: Ipv4Addr,
        window: Duration,
    ) -> Result<Option<MacAddr>, CmdError> {
        Ok(self.arping(ip, window, true)?.into_iter().next())
    }

    fn arping(
        &self,
        ip: Ipv4Addr,
        window: Duration,
        first: bool,
    ) -> Result<Vec<MacAddr>, CmdError> {
        let w = format!("{:.3}", window.as_secs_f64());
        let src = self.ip.to_string();
        let target = ip.to_string();
        let mut args = vec![
            "netns",
            "exec",
            &self.ns,
            "arping",
            "-i",
            &self.ifname,
            "-S",
            &src,
            "-c",
            "1",
        ];
        if first {
            args.extend(["-C", "1"]);
        }
        args.extend(["-w", &w, &target]);
        let out = cmd::output_within(
            Command::new("ip").args(&args),
            window + Duration::from_secs(5),
        )?;
        // Exit code 1 means "no reply", which is an answer, not an error; anything that
        // printed no statistics at all did not run properly.
        if !out.stdout.contains("packets transmitted") {
            return Err(CmdError {
                command: format!("ip {}", args.join(" ")),
                reason: format!("printed no statistics (exit {})", out.status),
                stdout: out.stdout,
                stderr: out.stderr,
            });
        }
        Ok(parse_arping(&out.stdout, ip))
    }

    /// `curl -sS --max-time` from this namespace; Ok(body) on HTTP 2xx, Err(reason) otherwise.
    pub fn curl(&self, url: &str, timeout: Duration) -> Result<String, String> {
        let t = format!("{:.3}", timeout.as_secs_f64());
        let args = [
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-sS",
            "--fail",
            "--noproxy",
            "*",
            "--max-time",
            &t,
            url,
        ];
        let out = cmd::output_within(
            Command::new("ip").args(args),
            timeout + Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "curl {url}: {} ({})",
                out.stderr.trim(),
                out.status
            ))
        }
    }
}

/// Extracts the MACs from arping lines like
/// `42 bytes from 02:fe:00:00:01:01 (198.51.100.11): index=0 time=12.4 usec`,
/// keeping only replies about `ip`, each MAC once, in order of arrival.
pub fn parse_arping(stdout: &str, ip: Ipv4Addr) -> Vec<MacAddr> {
    let mut macs = Vec::new();
    let want = format!("({ip})");
    for line in stdout.lines() {
        let Some(rest) = line.split(" bytes from ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(mac), Some(addr)) = (words.next(), words.next()) else {
            continue;
        };
        if addr.trim_end_matches(':') != want {
            continue;
        }
        if let Ok(mac) = mac.parse::<MacAddr>() {
            if !macs.contains(&mac) {
                macs.push(mac);
            }
        }
    }
    macs
}

/// One curl probe of a [`CurlSampler`].
#[derive(Debug, Clone)]
pub struct CurlSample {
    /// When the probe started, since the sampler started.
    pub at: Duration,
    /// How long the probe took.
    pub took: Duration,
    /// The body on success, the reason on failure.
    pub result: Result<String, String>,
}

/// One arping probe of an [`ArpSampler`].
#[derive(Debug, Clone)]
pub struct ArpSample {
    /// When the probe started, since the sampler started.
    pub at: Duration,
    /// Every MAC that answered this one request (two or more = two owners at once).
    pub macs: Vec<MacAddr>,
}

/// A stretch of failed curl probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Start of the first failed probe.
    pub start: Duration,
    /// Start of the first successful probe after it, or the end of the last probe if none.
    pub end: Duration,
    /// Whether a successful probe ended it.
    pub recovered: bool,
}

impl Outage {
    /// How long it lasted.
    pub fn len(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// Every run of failed probes in `samples`, in order.
pub fn outages(samples: &[CurlSample]) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut start = None;
    for s in samples {
        match (&s.result, start) {
            (Err(_), None) => start = Some(s.at),
            (Ok(_), Some(st)) => {
                out.push(Outage {
                    start: st,
                    end: s.at,
                    recovered: true,
                });
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(st), Some(last)) = (start, samples.last()) {
        out.push(Outage {
            start: st,
            end: last.at + last.took,
            recovered: false,
        });
    }
    out
}

/// The longest run of failed probes, if any failed.
pub fn longest_outage(samples: &[CurlSample]) -> Option<Outage> {
    outages(samples).into_iter().max_by_key(Outage::len)
}

/// Where successful bodies changed: (time, previous body, new body), e.g. node-1 → node-2.
pub fn body_changes(samples: &[CurlSample]) -> Vec<(Duration, String, String)> {
    let mut out = Vec::new();
    let mut last: Option<&str> = None;
    for s in samples {
        if let Ok(body) = &s.result {
            if let Some(prev) = last {
                if prev != body {
                    out.push((s.at, prev.to_string(), body.clone()));
                }
            }
            last = Some(body);
        }
    }
    out
}

/// A background probe loop, stopped (and its samples returned) by `stop` or on drop.
pub struct Sampler<S> {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<S>>>,
    thread: Option<JoinHandle<()>>,
}

/// Samples `curl URL` from a namespace every period.
pub type CurlSampler = Sampler<CurlSample>;

/// Samples which MACs answer ARP for an IP every period.
pub type ArpSampler = Sampler<ArpSample>;

impl<S: Clone + Send + 'static> Sampler<S> {
    /// Starts calling `probe(elapsed_at_start)` every `every` (back to back if a probe takes
    /// longer) on a background thread.
    pub(crate) fn start(every: Duration, probe: impl Fn(Duration) -> S + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<S>>> = Arc::default();
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = thread::spawn(move || {
            let t0 = Instant::now();
            let mut next = t0;
            while !stop2.load(Ordering::Relaxed) {
                let s = probe(t0.elapsed());
                if let Ok(mut v) = samples2.lock() {
                    v.push(s);
                }
                // Fixed schedule: skip ticks a slow probe overran rather than bunching up.
                next += every;
                let now = Instant::now();
                while next < now {
                    next += every;
                }
                // Pace in short steps so stop() is answered promptly.
                while !stop2.load(Ordering::Relaxed) && Instant::now() < next {
                    thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
                }
            }
        });
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// The samples so far, without stopping.
    pub fn snapshot(&self) -> Vec<S> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits up to `timeout` until `pred` holds for the samples so far; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[S]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.snapshot()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops after the probe in flight and returns every sample.
    pub fn stop(mut self) -> Vec<S> {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S> Drop for Sampler<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arping_lines_parse() {
        let out = "ARPING 198.51.100.99\n42 bytes from 02:fe:00:00:01:02 (198.51.100.99): index=0 time=13.360 usec\n42 bytes from 02:fe:00:00:01:01 (198.51.100.99): index=1 time=45.428 usec\n";
        let ip: Ipv4Addr = "198.51.100.99".parse().unwrap();
        let macs = parse_arping(out, ip);
        assert_eq!(
            macs,
            vec![
                "02:fe:00:00:01:02".parse().unwrap(),
                "02:fe:00:00:01:01".parse().unwrap()
            ]
        );
        assert!(parse_arping(out, "198.51.100.98".parse().unwrap()).is_empty());
    }
}
