//! Reliability, controller, scenario 2: API faults during churn, one controller.
//!
//! Phases, each injected while a seeded churn runs: dropped watches, 410 Gone on resume,
//! 500s, 429s and 409 storms on Service writes, 2 s latency on every request, and an API
//! outage (connections refused) of `FERROLB_OUTAGE_SECS` (default 20 s to keep the suite
//! short; the report in docs/reliability.md also ran it at 60 s) that begins while the
//! controller is writing. After each phase the
//! controller must converge (every Service correct, none lost) and stay alive and healthy; at
//! the end kube-sim's full history must show no double allocation. Recovery times (fault
//! end to converged) are printed.

use std::future::Future;
use std::time::{Duration, Instant};

use ferrolb_testkit::api_cluster::churn::{self, Churn, CHURN_NS, POOLS};
use ferrolb_testkit::api_cluster::invariants::{check_history, RvSampler};
use ferrolb_testkit::api_cluster::*;

const SLOTS: usize = 200;
const PINNED: usize = 40;
const CONVERGE_DEADLINE: Duration = Duration::from_secs(180);

struct Run {
    c: Cluster,
    ctl: Controller,
    model: Churn,
    ops: usize,
    op_errors: usize,
    services: usize,
}

impl Run {
    /// Makes `n` churn requests; a failed one (the fault may hit the churn too) is resynced
    /// from the store so the model stays true.
    async fn churn(&mut self, n: usize, mut between: impl FnMut(usize, &Cluster)) {
        for k in 0..n {
            between(k, &self.c);
            let op = self.model.next_op(0..SLOTS);
            if churn::apply(&self.c.client, &op).await.is_err() {
                self.op_errors += 1;
                let name = match &op {
                    churn::Op::Create(n, _) | churn::Op::Patch(n, _, _) | churn::Op::Delete(n) => {
                        n.clone()
                    }
                };
                let i: usize = name["slot-".len()..].parse().expect("slot name");
                let now = self.c.sim().store().get(self.services, CHURN_NS, &name);
                self.model.resync(i, now.as_deref());
            }
            self.ops += 1;
        }
    }

    /// Waits until every Service is correct; returns how long that took.
    async fn converge(&mut self, phase: &str) -> Duration {
        let start = Instant::now();
        loop {
            let problems = churn::unsettled(&self.model, &churn::stored_services(self.c.sim()));
            if problems.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < CONVERGE_DEADLINE,
                "{phase}: not converged after {CONVERGE_DEADLINE:?}: {} problems, first {:#?}",
                problems.len(),
                &problems[..problems.len().min(15)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = start.elapsed();
        assert!(self.ctl.running(), "{phase}: the controller died");
        assert_eq!(
            self.ctl.http_get("/healthz").await.0,
            200,
            "{phase}: /healthz"
        );
        took
    }

    fn failures_served(&self, status: u16) -> usize {
        self.c
            .sim()
            .faults()
            .request_log()
            .iter()
            .filter(|r| r.status == status && r.resource == "services" && r.verb == "patch")
            .count()
    }
}

async fn timed<F: Future<Output = ()>>(f: F) -> Duration {
    let s = Instant::now();
    f.await;
    s.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_converges_after_every_api_fault_without_double_allocating() {
    let seed: u64 = std::env::var("FERROLB_CHURN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_260_202);
    let outage = Duration::from_secs(
        std::env::var("FERROLB_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    println!("scenario 2: churn seed {seed}, outage {outage:?}");
    let c = Cluster::start_with(kube_sim::SimOptions {
        keep_full_history: true,
        ..Default::default()
    })
    .await;
    c.namespace(CHURN_NS).await;
    c.put_config(POOLS).await;
    let ctl = c.controller(&["--leader-elect", "false"]);
    let services = kube_sim::resources::find("", "v1", "services").expect("services");

    let sampler = RvSampler::start(c.sim().store().clone());

    let mut run = Run {
        c,
        ctl,
        model: Churn::new(seed, SLOTS, PINNED),
        ops: 0,
        op_errors: 0,
        services,
    };
    let mut report: Vec<(String, usize, Duration)> = Vec::new();

    // Baseline.
    run.churn(400, |_, _| {}).await;
    let t = run.converge("baseline").await;
    report.push(("baseline (no fault)".into(), 0, t));

    // Dropped watches: every 10th request, all watches closed.
    let mut closed = 0;
    run.churn(200, |k, c| {
        if k % 10 == 0 {
            c.sim().faults().close_watches();
            closed += 1;
        }
    })
    .await;
    let t = run.converge("dropped watches").await;
    report.push(("watches closed".into(), closed, t));

    // 410 on resume: history dropped, then watches closed, so every resume gets 410.
    let mut gone = 0;
    run.churn(150, |k, c| {
        if k % 50 == 25 {
            c.sim().store().drop_history();
            c.sim().faults().close_watches();
            gone += 1;
        }
    })
    .await;
    let t = run.converge("410 on resume").await;
    report.push(("410 Gone on watch resume".into(), gone, t));

    // Write errors: only creates and deletes from the churn, so every injected failure hits
    // the controller's patches.
    for (status, count, what) in [
        (500u16, 80u32, "500 on Service patches"),
        (429, 80, "429 on Service patches"),
        (409, 300, "409 conflict storm on Service patches"),
    ] {
        let before = run.failures_served(status);
        run.model.allow_edits(false);
        run.c
            .sim()
            .faults()
            .fail_next(count, status, Some("patch"), Some("services"));
        run.churn(120, |_, _| {}).await;
        run.model.allow_edits(true);
        let t = run.converge(what).await;
        let served = run.failures_served(status) - before;
        assert!(served > 0, "{what}: no injected failure was ever served");
        run.c.sim().faults().clear();
        report.push((what.into(), served, t));
    }

    // 2 s latency on every request, while the churn goes on.
    run.c.sim().faults().set_latency(Duration::from_secs(2));
    let slow = timed(run.churn(8, |_, _| {})).await;
    run.c.sim().faults().set_latency(Duration::ZERO);
    let t = run.converge("2 s latency").await;
    report.push((format!("2 s latency for {slow:.0?}"), 8, t));

    // Outage with writes in flight: with 300 ms latency on every request, the controller is
    // still writing the last change when the listener closes, so its pending writes fail and
    // must be retried once the API is back.
    run.churn(60, |_, _| {}).await;
    run.c.sim().faults().set_latency(Duration::from_millis(300));
    let mut pending = 0;
    for _ in 0..50 {
        run.churn(1, |_, _| {}).await;
        pending = churn::unsettled(&run.model, &churn::stored_services(run.c.sim())).len();
        if pending > 0 {
            break;
        }
    }
    run.c.sim().faults().pause(outage);
    let down = Instant::now();
    run.c.sim().faults().set_latency(Duration::ZERO);
    assert!(
        pending > 0,
        "no controller write was pending when the API went away"
    );
    // The API refuses connections: requests made now fail, and the model is resynced.
    run.churn(5, |_, _| {}).await;
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The listener comes back by itself; measure from the end of the outage.
    let t = run.converge("API outage").await;
    report.push((
        format!("API outage of {outage:?}, {pending} Service(s) mid-write"),
        1,
        t,
    ));

    let clock = sampler.finish().await;
    let history = run.c.sim().store().full_history().expect("full history");
    let rep = check_history(&history, run.services, &clock, Duration::from_secs(5));
    println!(
        "scenario 2 report: {} churn ops ({} failed under faults) {:?}",
        run.ops, run.op_errors, run.model.counts
    );
    for (what, times, t) in &report {
        println!("  {what}: injected {times}x, converged {t:?} after the fault ended");
    }
    println!(
        "  history: {} Service changes, {} status writes, {} valid shares, {} violations, {} stale-cache races, {} episodes (longest {:?}), {} open",
        rep.service_changes,
        rep.status_writes,
        rep.valid_shares,
        rep.violations.len(),
        rep.stale_races.len(),
        rep.episodes,
        rep.longest_episode,
        rep.open_episodes.len()
    );
    assert!(
        rep.undated.is_empty(),
        "writes after the RV clock stopped (a test bug): {:#?}",
        rep.undated
    );
    assert!(rep.violations.is_empty(), "{:#?}", rep.violations);
    assert!(rep.open_episodes.is_empty(), "{:#?}", rep.open_episodes);
}
