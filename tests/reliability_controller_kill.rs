//! Reliability, controller, scenario 1: SIGKILL the leader again and again while Services churn.
//!
//! Two replicas of the real `ferrolb controller` binary run with leader election on short
//! timings. A seeded churn task creates, edits and deletes Services over 500 name slots; the
//! test SIGKILLs whichever replica holds the lease at a random moment, `FERROLB_KILLS` times
//! (default 20), starting a new replica each time so two always run. Then it checks, from
//! kube-sim's full history and the final Services, that no IP was ever handed to two Services
//! that may not share it, and that every surviving LoadBalancer Service settles with the right
//! IP. `FERROLB_CHURN_SEED` replays a given churn (the seed is printed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_testkit::api_cluster::churn::{self, Churn, CHURN_NS, POOLS};
use ferrolb_testkit::api_cluster::invariants::{self, check_history, RvSampler};
use ferrolb_testkit::api_cluster::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Leader election timings of the scenario (accepted by `LeaseSettings::validate`).
const LEADER: &[&str] = &[
    "--leader-lease-duration",
    "2s",
    "--leader-renew-deadline",
    "1500ms",
    "--leader-retry-period",
    "300ms",
];
const SLOTS: usize = 500;
const PINNED: usize = 100;
/// How long after the churn stops everything must be settled (a deadline, not a measurement).
const SETTLE_DEADLINE: Duration = Duration::from_secs(180);
/// Spec versions this old (before a status write) may explain a forbidden pair as a race
/// between the controller's cache and a user's edit.
const STALE_WINDOW: Duration = Duration::from_secs(5);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn lease_holder(c: &Cluster) -> Option<(String, i32)> {
    let api: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    let spec = api
        .get_opt("ferrolb-controller")
        .await
        .ok()
        .flatten()?
        .spec?;
    Some((spec.holder_identity?, spec.lease_transitions.unwrap_or(0)))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_leader_during_churn_never_double_allocates_and_converges() {
    let seed = env_u64("FERROLB_CHURN_SEED", 20_260_101);
    let kills = env_u64("FERROLB_KILLS", 20) as usize;
    println!("scenario 1: churn seed {seed} (FERROLB_CHURN_SEED={seed} reproduces), {kills} kills");

    let c = Cluster::start_with(kube_sim::SimOptions {
        keep_full_history: true,
        ..Default::default()
    })
    .await;
    c.namespace(CHURN_NS).await;
    c.put_config(POOLS).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = RvSampler::start(c.sim().store().clone());

    let mut generation = 0;
    let mut replicas: Vec<(String, Controller)> = Vec::new();
    for _ in 0..2 {
        let name = format!("r{generation}");
        replicas.push((name.clone(), c.named_controller(&name, LEADER)));
        generation += 1;
    }

    let churn_task = {
        let (stop, client) = (stop.clone(), c.client.clone());
        tokio::spawn(async move {
            let mut model = Churn::new(seed, SLOTS, PINNED);
            let mut errors = Vec::new();
            let mut ops = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let op = model.next_op(0..SLOTS);
                if let Err(e) = churn::apply(&client, &op).await {
                    errors.push(format!("{op:?}: {e}"));
                }
                ops += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (model, ops, errors)
        })
    };

    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
    let started = Instant::now();
    let mut takeovers = Vec::new();
    for k in 0..kills {
        let since = Instant::now();
        let (holder, _) = eventually(
            &format!("a live replica to lead before kill {k}"),
            DEADLINE,
            || async {
                let (h, t) = lease_holder(&c).await?;
                replicas.iter().any(|(n, _)| h == *n).then_some((h, t))
            },
        )
        .await;
        if k > 0 {
            takeovers.push(since.elapsed());
        }
        let pause = Duration::from_millis(rng.random_range(100..2500));
        tokio::time::sleep(pause).await;
        let idx = replicas
            .iter()
            .position(|(n, _)| holder == *n)
            .expect("the holder is a live replica");
        let (name, mut victim) = replicas.remove(idx);
        let pid = victim.pid();
        victim.kill();
        println!("kill {k}: SIGKILL {name} (pid {pid}) after {pause:?} as leader");
        let fresh = format!("r{generation}");
        generation += 1;
        replicas.push((fresh.clone(), c.named_controller(&fresh, LEADER)));
        for (n, r) in replicas.iter_mut() {
            assert!(r.running(), "replica {n} died on its own");
        }
    }
    // A live replica leads again before convergence is judged.
    eventually(
        "a live replica to lead after the last kill",
        DEADLINE,
        || async {
            let (h, _) = lease_holder(&c).await?;
            replicas.iter().any(|(n, _)| h == *n).then_some(())
        },
    )
    .await;
    let churn_for = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (model, ops, errors) = churn_task.await.expect("churn task");
    assert!(errors.is_empty(), "churn requests failed: {errors:#?}");

    // Convergence: every surviving Service correct, as read from the store.
    let settle_start = Instant::now();
    let mut last = Vec::new();
    let mut settled = false;
    while settle_start.elapsed() < SETTLE_DEADLINE {
        last = churn::unsettled(&model, &churn::stored_services(c.sim()));
        if last.is_empty() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle_time = settle_start.elapsed();
    assert!(
        settled,
        "not settled after {SETTLE_DEADLINE:?}: {} problems, first: {:#?}",
        last.len(),
        &last[..last.len().min(20)]
    );
    for (n, r) in replicas.iter_mut() {
        assert!(r.running(), "replica {n} died on its own");
    }
    let (_, transitions) = lease_holder(&c).await.expect("lease");
    // Only now: the writes that settle the last leader's catch-up must be dated too, or the
    // stale window cannot be applied to them.
    let clock = sampler.finish().await;

    let services = kube_sim::resources::find("", "v1", "services").expect("services");
    let history = c.sim().store().full_history().expect("full history");
    let rep = check_history(&history, services, &clock, STALE_WINDOW);
    let lbs = (0..SLOTS).filter(|&i| model.is_lb(i)).count();
    let pinned = (0..SLOTS).filter(|&i| model.pinned_ip(i).is_some()).count();
    let takeover_max = takeovers.iter().max().copied().unwrap_or_default();
    println!(
        "scenario 1 report: seed {seed}; {kills} SIGKILLs of the leader over {churn_for:?}; \
         lease transitions {transitions}; churn ops {ops} {:?}; final {lbs} LoadBalancers \
         ({pinned} pinned) settled {settle_time:?} after the churn stopped; history: {} \
         Service changes, {} status writes, {} valid shared IPs given, {} violations, {} \
         stale-cache races, {} joins beside a user-made intruder, {} forbidden-pair episodes (all causes, longest {:?}), {} open; \
         leader gap after a kill: max {takeover_max:?}",
        model.counts,
        rep.service_changes,
        rep.status_writes,
        rep.valid_shares,
        rep.violations.len(),
        rep.stale_races.len(),
        rep.joined_despite_intruder.len(),
        rep.episodes,
        rep.longest_episode,
        rep.open_episodes.len()
    );
    for r in rep.stale_races.iter().take(10) {
        println!("  stale race: {r}");
    }
    // For the first violations, the whole story of their IP, to tell a bug from a race.
    for v in rep.violations.iter().take(2) {
        let Some(ip) = v
            .split("was given ")
            .nth(1)
            .and_then(|r| r.split(',').next())
        else {
            continue;
        };
        println!("  story of {ip} ({v}):");
        for ch in history.iter().filter(|ch| ch.resource == services) {
            let new = invariants::SvcFacts::of(&ch.object);
            let old = ch.old.as_ref().map(|o| invariants::SvcFacts::of(o));
            let touches = new.ips.iter().any(|i| i == ip)
                || old.as_ref().is_some_and(|o| o.ips.iter().any(|i| i == ip));
            if touches {
                println!(
                    "    rv {} {:?} {}: lb={} key={:?} ips {:?} -> {:?}",
                    ch.rv,
                    ch.kind,
                    invariants::key_of(&ch.object),
                    new.lb,
                    new.key,
                    old.map(|o| o.ips).unwrap_or_default(),
                    new.ips
                );
            }
        }
    }
    let leases = kube_sim::resources::find("coordination.k8s.io", "v1", "leases").expect("leases");
    for ch in history
        .iter()
        .filter(|ch| ch.resource == leases && ch.object["metadata"]["name"] == "ferrolb-controller")
    {
        let h = ch.object["spec"]["holderIdentity"].as_str().unwrap_or("-");
        let prev = ch
            .old
            .as_ref()
            .and_then(|o| o["spec"]["holderIdentity"].as_str().map(String::from))
            .unwrap_or_default();
        if h != prev {
            println!("  rv {}: lease holder {prev} -> {h}", ch.rv);
        }
    }
    assert!(
        rep.undated.is_empty(),
        "writes after the RV clock stopped (a test bug): {:#?}",
        rep.undated
    );
    assert!(
        rep.violations.is_empty(),
        "double allocations: {:#?}",
        &rep.violations[..rep.violations.len().min(20)]
    );
    assert!(rep.open_episodes.is_empty(), "{:#?}", rep.open_episodes);
    assert!(
        transitions as usize >= kills,
        "the lease changed hands only {transitions} times for {kills} kills"
    );
    // The run did exercise what it claims to.
    assert!(rep.valid_shares > 0, "no IP was ever shared");
    for kind in [
        "create",
        "delete",
        "ports",
        "sharing-key",
        "requested-ip",
        "type->ClusterIP",
    ] {
        assert!(
            model.counts.get(kind).copied().unwrap_or(0) > 0,
            "the churn made no {kind} edit"
        );
    }
}
