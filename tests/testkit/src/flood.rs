//! Floods of hand-made frames against one speaker, for the ARP and NDP flood benches: a raw
//! socket in the client namespace sends frames at a fixed offered rate or flat out, a second
//! thread on the same socket counts the answers that come back, and the speaker's own counters,
//! CPU (from /proc/<pid>/stat) and memory are read around each step. The benches differ only in
//! the frames they send and what counts as an answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;

/// How long each step floods: `$FERROLB_FLOOD_SECS` seconds, default 5.
pub fn step_duration() -> Duration {
    Duration::from_secs(
        std::env::var("FERROLB_FLOOD_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    )
}

/// The speaker metrics that count what a flood asks and what the speaker answers, and the
/// units they are printed in.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// The counter of requests the speaker read (e.g. `ferrolb_speaker_arp_requests_total`).
    pub requests: &'static str,
    /// The counter of answers it sent.
    pub replies: &'static str,
    /// How a request is called in the printed line (`req`, `NS`).
    pub request_unit: &'static str,
    /// How an answer is called (`rep`, `NA`).
    pub reply_unit: &'static str,
}

/// What one step of a flood measured, per second of the step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Frames sent.
    pub offered: f64,
    /// Answers seen on the client's socket.
    pub answered: f64,
    /// Requests the speaker counted.
    pub counted_requests: f64,
    /// Answers the speaker counted.
    pub counted_replies: f64,
    /// The speaker's CPU use, in percent of one core.
    pub cpu_pct: f64,
    /// The speaker's resident memory at the end, in MiB.
    pub rss_mib: f64,
}

impl Step {
    /// Prints the step as one line of the bench's table, labelled `name`.
    pub fn print(&self, name: &str, counters: &Counters) {
        println!(
            "{name:<44} offered {:>9.0}/s  replies seen {:>9.0}/s  speaker counted {:>9.0} {}/s {:>9.0} {}/s  CPU {:>5.1}%  RSS {:>5.1} MiB",
            self.offered,
            self.answered,
            self.counted_requests,
            counters.request_unit,
            self.counted_replies,
            counters.reply_unit,
            self.cpu_pct,
            self.rss_mib
        );
    }
}

/// Sends `frame(n)` from the client's `eth0` for `dur` at `rate` frames/s (`None`: as fast as
/// possible) to the speaker of node 1, counting the frames for which `is_answer` holds.
pub fn step(
    c: &Cluster,
    rate: Option<u64>,
    dur: Duration,
    frame: &dyn Fn(u64) -> Vec<u8>,
    is_answer: impl Fn(&[u8]) -> bool + Send + 'static,
    counters: &Counters,
) -> Step {
    let (mut tx, mut rx) = c.lan.client().injector("eth0").split();
    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, replies) = (stop.clone(), replies.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(f) = rx.next() {
                    if is_answer(f) {
                        replies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let speaker = c.speakers[0].as_ref().expect("speaker running");
    let req0 = c.speaker_metric_sum(1, counters.requests);
    let rep0 = c.speaker_metric_sum(1, counters.replies);
    let cpu0 = speaker.cpu_time().unwrap_or_default();
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < dur {
        let due = match rate {
            Some(r) => (t.elapsed().as_secs_f64() * r as f64) as u64,
            None => sent + 512,
        };
        while sent < due {
            if matches!(tx.send_to(&frame(sent), None), Some(Ok(()))) {
                sent += 1;
            } else {
                break;
            }
        }
        if rate.is_some() {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let wall = t.elapsed();
    let cpu = speaker.cpu_time().unwrap_or_default().saturating_sub(cpu0);
    std::thread::sleep(Duration::from_millis(300)); // replies in flight
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let secs = wall.as_secs_f64();
    Step {
        offered: sent as f64 / secs,
        answered: replies.load(Ordering::Relaxed) as f64 / secs,
        counted_requests: (c.speaker_metric_sum(1, counters.requests) - req0) / secs,
        counted_replies: (c.speaker_metric_sum(1, counters.replies) - rep0) / secs,
        cpu_pct: 100.0 * cpu.as_secs_f64() / secs,
        rss_mib: speaker.rss_bytes().unwrap_or_default() as f64 / (1024.0 * 1024.0),
    }
}

/// The CPU node 1's speaker uses over `dur` with nothing flooding it, in percent of one core:
/// the baseline each step compares against.
pub fn idle_cpu_pct(c: &Cluster, dur: Duration) -> f64 {
    let speaker = c.speakers[0].as_ref().expect("speaker running");
    let idle0 = speaker.cpu_time().unwrap_or_default();
    std::thread::sleep(dur);
    let idle = speaker.cpu_time().unwrap_or_default().saturating_sub(idle0);
    100.0 * idle.as_secs_f64() / dur.as_secs_f64()
}

/// `frame` with an 802.1Q tag for VLAN `vid` after its MAC addresses: traffic for another
/// VLAN, which a speaker on the untagged link must ignore.
pub fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut t = frame[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    t.extend_from_slice(&frame[12..]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_goes_between_the_addresses_and_the_ethertype() {
        let frame: Vec<u8> = (0u8..16).collect();
        let tagged = vlan_tagged(&frame, 100);
        assert_eq!(&tagged[..12], &frame[..12]);
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&tagged[16..], &frame[12..]);
    }
}
