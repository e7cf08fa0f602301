//! Capture of arbitrary frames with tcpdump (any BPF filter expression), read back as raw
//! bytes from the pcap file, and decoded again by tcpdump itself (`-r -vv`) when a test wants
//! tcpdump's own judgement of what went on the wire.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::child::NsChild;
use super::cmd;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture timestamp.
    pub time: SystemTime,
    /// The Ethernet frame.
    pub bytes: Vec<u8>,
}

/// A running `tcpdump` writing frames that match a filter to a pcap file.
pub struct FrameCapture {
    child: NsChild,
    pcap: PathBuf,
}

impl FrameCapture {
    /// Starts `tcpdump -i <ifname> <filter>` in `ns`, writing `<log_dir>/<label>.pcap`, and
    /// returns once tcpdump is listening.
    pub(crate) fn start(
        ns: &str,
        ifname: &str,
        log_dir: &Path,
        label: &str,
        filter: &str,
    ) -> std::io::Result<Self> {
        let (child, pcap) = super::pcap::start_tcpdump(ns, ifname, log_dir, label, filter)?;
        Ok(Self { child, pcap })
    }

    /// The frames captured so far.
    pub fn frames(&self) -> Vec<Frame> {
        std::fs::read(&self.pcap)
            .map(|b| pcap_frames(&b))
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until `pred` holds for the frames captured so far.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Frame]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.frames()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// tcpdump's own verbose decoding of the capture so far (`tcpdump -r <pcap> -n -vv -e`).
    pub fn decoded(&self) -> String {
        let pcap = self.pcap.to_string_lossy().into_owned();
        cmd::output_within(
            Command::new("tcpdump").args(["-r", &pcap, "-n", "-vv", "-e"]),
            Duration::from_secs(10),
        )
        .map(|o| o.stdout)
        .unwrap_or_else(|e| panic!("netns harness: tcpdump -r {pcap}: {e}"))
    }

    /// Stops tcpdump and returns everything captured.
    pub fn stop(mut self) -> Vec<Frame> {
        self.child.stop(Duration::from_secs(10));
        self.frames()
    }
}

/// The records of a classic pcap file with Ethernet link type (either byte order, micro- or
/// nanosecond stamps); a truncated final record (still being written) is ignored.
pub fn pcap_frames(data: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let magic_le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let (le, nanos) = match magic_le {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return out,
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    if u32_at(data, 20) != 1 {
        return out;
    }
    let mut pos = 24;
    while pos + 16 <= data.len() {
        let secs = u64::from(u32_at(data, pos));
        let frac = u64::from(u32_at(data, pos + 4));
        let incl = u32_at(data, pos + 8) as usize;
        let start = pos + 16;
        if start + incl > data.len() {
            break;
        }
        let sub = if nanos {
            Duration::from_nanos(frac)
        } else {
            Duration::from_micros(frac)
        };
        out.push(Frame {
            time: UNIX_EPOCH + Duration::from_secs(secs) + sub,
            bytes: data[start..start + incl].to_vec(),
        });
        pos = start + incl;
    }
    out
}
