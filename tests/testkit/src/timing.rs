//! What the timed end-to-end benches (IPv4 and IPv6 speaker scenarios) share: how many runs,
//! which parts to run, the failover series, and one line per measured figure.

use crate::cluster::{median_p99, Cluster};

/// How many runs each scenario makes: `$FERROLB_BENCH_RUNS`, default 10.
pub fn runs() -> usize {
    std::env::var("FERROLB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Whether the bench should run its part `part`: every part, unless `$FERROLB_BENCH_ONLY`
/// names one.
pub fn wanted(part: &str) -> bool {
    std::env::var("FERROLB_BENCH_ONLY")
        .ok()
        .is_none_or(|only| only == part)
}

/// Prints median, p99 (nearest rank), min and max of `values` (sorted in place) in `unit`, on
/// one line labelled `name`.
pub fn report(name: &str, unit: &str, values: &mut [f64]) {
    let (median, p99) = median_p99(values);
    let (min, max) = (
        values.first().copied().unwrap_or(f64::NAN),
        values.last().copied().unwrap_or(f64::NAN),
    );
    println!("{name:<44} n={:<3} median {median:>9.1} {unit}  p99 {p99:>9.1} {unit}  (min {min:.1}, max {max:.1})", values.len());
}

/// Makes node `owner` stop serving: a graceful handover (SIGTERM to its speaker) or a hard
/// failure (the node cut off the LAN).
pub fn fail_owner(c: &mut Cluster, owner: usize, graceful: bool) {
    if graceful {
        c.speaker(owner).term();
    } else {
        c.lan.cut_node(owner);
    }
}

/// Milliseconds measured over `n` hard and `n` graceful failovers.
#[derive(Debug, Default)]
pub struct FailoverSeries {
    /// Longest curl gap when the owner is cut off.
    pub hard_gap: Vec<f64>,
    /// Time from SIGTERM to the first answer from the new owner.
    pub graceful_switch: Vec<f64>,
    /// Longest curl gap across a SIGTERM.
    pub graceful_gap: Vec<f64>,
}

impl FailoverSeries {
    /// Runs `failover(graceful)` (which returns the gap and the switch time in milliseconds)
    /// `n` times each way, hard then graceful in turn.
    pub fn measure(n: usize, failover: impl Fn(bool) -> (f64, f64)) -> Self {
        let mut s = FailoverSeries::default();
        for _ in 0..n {
            s.hard_gap.push(failover(false).0);
            let (gap, switch) = failover(true);
            s.graceful_gap.push(gap);
            s.graceful_switch.push(switch);
        }
        s
    }
}
