//! Announcer rules, one test each, then whole-cluster scenarios driven with explicit times.

use super::*;

const LEASE: Duration = Duration::from_millis(3000);

fn t(ms: u64) -> MonoTime {
    MonoTime::from_millis(ms)
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn ips(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|i| IpAddr::from([198, 51, 100, i])).collect()
}

fn facts(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.to_owned(),
        labels: BTreeMap::new(),
        subnets: vec!["198.51.100.0/24".parse().expect("literal")],
        live: false, // ignored by the announcer; set false to prove it
    }
}

fn snap(rv: u64) -> LeaseSnapshot {
    LeaseSnapshot {
        holder: Some("holder".into()),
        renew_time: Some(format!("renew-{rv}")),
        resource_version: rv.to_string(),
        duration: None,
    }
}

fn announcer(node: &str) -> Announcer {
    Announcer::new(AnnouncerParams::new(node, LEASE))
}

fn winner_among(ip: IpAddr, nodes: &[&str]) -> String {
    rendezvous::winner(ip, nodes.iter().copied())
        .expect("non-empty")
        .to_owned()
}

fn no_selector() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Speaker "a" with peers "b" and "c", all healthy and seen at `at`.
struct Single {
    a: Announcer,
    nodes: Vec<NodeFacts>,
    demands: Vec<IpDemand>,
    rv: u64,
}

impl Single {
    fn new() -> Self {
        Single {
            a: announcer("a"),
            nodes: ["a", "b", "c"].map(facts).to_vec(),
            demands: ips(30).into_iter().map(IpDemand::cluster).collect(),
            rv: 0,
        }
    }

    /// Our renewal and watch succeed at `at`, and `peers` are seen renewing.
    fn healthy_at(&mut self, at: u64, peers: &[&str]) {
        self.a.renew_succeeded(t(at));
        self.a.watch_ok(t(at));
        self.peers_renew(at, peers);
    }

    fn peers_renew(&mut self, at: u64, peers: &[&str]) {
        for p in peers {
            self.rv += 1;
            self.a.lease_seen(p, &snap(self.rv), t(at));
        }
    }

    fn reconcile(&mut self, at: u64) -> Vec<Action> {
        self.a
            .reconcile(t(at), &self.nodes, &self.demands, &no_selector())
    }

    fn owned(&self) -> BTreeSet<IpAddr> {
        self.a.announced().collect()
    }

    fn elected(&self) -> BTreeSet<IpAddr> {
        self.a.elected().collect()
    }

    fn wins_among(&self, nodes: &[&str]) -> BTreeSet<IpAddr> {
        self.demands
            .iter()
            .map(|d| d.ip)
            .filter(|&ip| winner_among(ip, nodes) == "a")
            .collect()
    }

    /// A steady healthy start: everyone seen at 0, 1000, 2000; "a" reconciled at 2000 (probes)
    /// and 2100 (probe wait over: announces).
    fn steady() -> Self {
        let mut s = Single::new();
        for at in [0, 1000, 2000] {
            s.healthy_at(at, &["b", "c"]);
        }
        s.reconcile(2000);
        s.reconcile(2100);
        assert_eq!(s.owned(), s.wins_among(&["a", "b", "c"]));
        s
    }
}

fn starts(actions: &[Action]) -> BTreeSet<IpAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { ip } => Some(*ip),
            _ => None,
        })
        .collect()
}

fn probes(actions: &[Action]) -> BTreeSet<IpAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { ip } => Some(*ip),
            _ => None,
        })
        .collect()
}

fn stops(actions: &[Action]) -> BTreeMap<IpAddr, StopReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stop { ip, reason } => Some((*ip, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_starting_speaker_takes_nothing() {
    let mut s = Single::new();
    assert_eq!(s.a.health(t(0)), Health::Starting);
    assert!(s.reconcile(0).is_empty());
    // A renewal alone is not enough: without a successful list we have not seen the peers.
    s.a.renew_succeeded(t(100));
    assert_eq!(s.a.health(t(100)), Health::Starting);
    assert!(s.reconcile(100).is_empty());
}

#[test]
fn a_healthy_speaker_announces_exactly_the_ips_it_wins() {
    let mut s = Single::new();
    s.healthy_at(0, &["b", "c"]);
    let actions = s.reconcile(0);
    let expected = s.wins_among(&["a", "b", "c"]);
    assert!(!expected.is_empty() && expected.len() < 30, "{expected:?}");
    // Probe first (RFC 5227); announce when the probe wait is over.
    assert_eq!(probes(&actions), expected);
    assert_eq!(actions.len(), expected.len());
    assert_eq!(s.a.next_wakeup(), Some(t(100)));
    assert!(s.reconcile(99).is_empty());
    assert_eq!(s.owned(), BTreeSet::new());
    let actions = s.reconcile(100);
    assert_eq!(starts(&actions), expected);
    assert_eq!(actions.len(), expected.len());
    assert_eq!(s.a.next_wakeup(), None);
    // Nothing changed: nothing to do.
    s.healthy_at(1000, &["b", "c"]);
    assert!(s.reconcile(1000).is_empty());
}

#[test]
fn a_peer_that_stops_renewing_hands_over_its_ips_after_one_lease_duration() {
    let mut s = Single::steady();
    // "c" last renewed at 2000; "b" keeps renewing.
    for at in [3000, 4000, 5000] {
        s.healthy_at(at, &["b"]);
        assert!(s.reconcile(at).is_empty(), "c still live at {at}");
    }
    s.healthy_at(5001, &[]);
    let actions = s.reconcile(5001);
    let gained: BTreeSet<IpAddr> = s
        .wins_among(&["a", "b"])
        .difference(&s.wins_among(&["a", "b", "c"]))
        .copied()
        .collect();
    assert!(!gained.is_empty());
    assert_eq!(probes(&actions), gained);
    assert!(stops(&actions).is_empty());
}

#[test]
fn a_released_or_deleted_lease_hands_over_at_once() {
    let mut s = Single::steady();
    s.a.lease_seen(
        "c",
        &LeaseSnapshot {
            holder: None,
            ..snap(99)
        },
        t(2100),
    );
    s.a.lease_gone("b");
    let actions = s.reconcile(2100);
    let expected: BTreeSet<IpAddr> = s.demands.iter().map(|d| d.ip).collect();
    assert_eq!(s.elected(), expected, "a is the only live node left");
    assert!(!probes(&actions).is_empty());
}

#[test]
fn a_joining_node_takes_only_the_ips_it_wins() {
    let mut s = Single::steady();
    s.nodes.push(facts("d"));
    s.healthy_at(2500, &["b", "c", "d"]);
    let actions = s.reconcile(2500);
    let lost: BTreeMap<IpAddr, StopReason> = s
        .wins_among(&["a", "b", "c"])
        .difference(&s.wins_among(&["a", "b", "c", "d"]))
        .map(|&ip| (ip, StopReason::NotElected))
        .collect();
    assert!(!lost.is_empty());
    for ip in lost.keys() {
        assert_eq!(winner_among(*ip, &["a", "b", "c", "d"]), "d");
    }
    assert_eq!(stops(&actions), lost);
    assert!(starts(&actions).is_empty());
}

#[test]
fn a_removed_demand_stops_even_while_degraded() {
    let mut s = Single::steady();
    let first = *s.owned().iter().next().expect("a owns something");
    s.demands.retain(|d| d.ip != first);
    let actions = s.reconcile(2500);
    assert_eq!(
        stops(&actions),
        BTreeMap::from([(first, StopReason::NotDemanded)])
    );

    let second = *s.owned().iter().next().expect("a owns more");
    s.demands.retain(|d| d.ip != second);
    assert_eq!(s.a.health(t(9000)), Health::Degraded);
    let actions = s.reconcile(9000);
    assert_eq!(
        stops(&actions),
        BTreeMap::from([(second, StopReason::NotDemanded)])
    );
}

#[test]
fn local_policy_moves_the_ip_with_its_endpoints() {
    let mut s = Single::steady();
    let previously_owned = s.owned().len();
    let ip = IpAddr::from([198, 51, 100, 200]);
    s.demands = vec![IpDemand::local(ip, ["a"])];
    let actions = s.reconcile(2100);
    assert_eq!(probes(&actions), BTreeSet::from([ip]));
    assert_eq!(stops(&actions).len(), previously_owned);
    s.demands = vec![IpDemand::local(ip, ["b"])];
    let actions = s.reconcile(2200);
    assert_eq!(
        stops(&actions),
        BTreeMap::from([(ip, StopReason::NotElected)])
    );
}

#[test]
fn a_degraded_speaker_keeps_its_ips_and_takes_over_none() {
    let mut s = Single::steady();
    let before = s.owned();
    s.a.renew_failed(t(2500));
    assert_eq!(s.a.health(t(5000)), Health::Healthy);
    assert_eq!(
        s.a.health(t(5001)),
        Health::Degraded,
        "2000 + lease duration"
    );
    // "c" releases its lease: a healthy "a" would take some of its IPs.
    s.a.lease_seen(
        "c",
        &LeaseSnapshot {
            holder: None,
            ..snap(99)
        },
        t(5500),
    );
    assert!(!s.a.is_live("c", t(5500)));
    for at in (5500..=60_000).step_by(1000) {
        s.a.renew_failed(t(at));
        let actions = s.reconcile(at);
        assert!(actions.is_empty(), "at {at}: {actions:?}");
    }
    assert_eq!(s.a.health(t(60_000)), Health::Degraded);
    assert_eq!(s.owned(), before);
}

#[test]
fn no_peer_expires_while_degraded() {
    let mut s = Single::steady();
    s.a.watch_failed(t(2500));
    s.a.renew_failed(t(2500));
    assert!(s.a.is_live("b", t(60_000)));
    assert!(s.a.is_live("c", t(60_000)));
    assert!(!s.a.is_live("a", t(60_000)), "we are degraded ourselves");
}

#[test]
fn a_silently_stalled_watch_also_degrades_and_freezes_liveness() {
    let mut s = Single::steady();
    // No failure is ever reported: renewals succeed, the watch just goes quiet after 2000.
    for at in (3000..=30_000).step_by(1000) {
        s.a.renew_succeeded(t(at));
        assert!(s.reconcile(at).is_empty(), "at {at}");
    }
    assert_eq!(s.a.health(t(30_000)), Health::Degraded);
    assert!(s.a.is_live("b", t(30_000)));
    // The watch comes back and peers are still renewing: nothing moves.
    s.healthy_at(31_000, &["b", "c"]);
    assert!(s.reconcile(31_000).is_empty());
}

/// The race the freeze exists for: our renewals start failing shortly after a peer's last
/// change. Without the freeze the peer would expire (at 5001) before we count as degraded (at
/// 6001) and we would grab its IPs during a cluster-wide outage.
#[test]
fn a_failed_renewal_freezes_peer_expiry_before_we_count_as_degraded() {
    let mut s = Single::steady();
    s.a.renew_succeeded(t(3000));
    s.a.watch_ok(t(3000));
    s.a.renew_failed(t(3500));
    for at in [4000, 5001, 5500, 6000] {
        assert_eq!(s.a.health(t(at)), Health::Healthy);
        assert!(s.a.is_live("c", t(at)));
        assert!(s.reconcile(at).is_empty(), "at {at}");
    }
}

#[test]
fn after_the_api_returns_the_outage_is_not_held_against_peers() {
    let mut s = Single::steady();
    let before = s.owned();
    s.a.renew_failed(t(2500));
    s.a.watch_failed(t(2500));
    // Back at 60 s; the peers' renewals are not visible yet.
    s.a.renew_succeeded(t(60_000));
    s.a.watch_ok(t(60_000));
    assert_eq!(s.a.health(t(60_000)), Health::Healthy);
    assert!(s.reconcile(60_000).is_empty());
    assert!(s.a.is_live("b", t(60_000)));
    // b had 2.5 s of lease left at the freeze, so it has until 62.5 s to show up; c shows up.
    s.peers_renew(61_000, &["c"]);
    s.a.renew_succeeded(t(62_000));
    s.a.watch_ok(t(62_000));
    assert!(s.reconcile(62_500).is_empty());
    assert_eq!(s.owned(), before);
    assert!(!s.a.is_live("b", t(62_501)));
    let actions = s.reconcile(62_501);
    assert!(!probes(&actions).is_empty(), "b really is gone");
}

/// A peer speaker that does not outrank us keeps claiming one of our IPs: we defend with
/// gratuitous ARP at most once per GARP interval from the first claim on, and report a conflict
/// only once the contest has outlived a handover (one lease duration).
#[test]
fn a_healthy_owner_defends_with_rate_limited_garp_and_reports_a_lasting_contest() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    let peer = "b";
    assert!(rendezvous::score(peer, ip) < rendezvous::score("a", ip));
    // Announced at 2100; GARP interval 1100 ms, lease 3000 ms.
    let claim = |s: &mut Single, at: u64| {
        s.healthy_at(at, &["b", "c"]);
        s.a.claim_seen(ip, mac(2), Claimant::Speaker(peer), t(at))
    };
    assert!(
        claim(&mut s, 2500).is_empty(),
        "within a GARP interval of the takeover"
    );
    assert_eq!(claim(&mut s, 3200), [Action::ResendGarp { ip }]);
    assert!(claim(&mut s, 4299).is_empty());
    assert_eq!(claim(&mut s, 4300), [Action::ResendGarp { ip }]);
    assert_eq!(claim(&mut s, 5400), [Action::ResendGarp { ip }]);
    assert!(claim(&mut s, 5500).is_empty(), "contest began at 2500");
    assert_eq!(s.a.conflicts(), 0);
    assert_eq!(claim(&mut s, 5501), [Action::Conflict { ip, mac: mac(2) }]);
    assert_eq!(claim(&mut s, 5600), [Action::Conflict { ip, mac: mac(2) }]);
    assert_eq!(s.a.conflicts(), 2);
    assert!(s.a.is_announcing(ip));
    // Quiet for more than a lease duration: the next claim starts a new episode.
    assert_eq!(claim(&mut s, 8601), [Action::ResendGarp { ip }]);
    assert_eq!(s.a.conflicts(), 2);
}

/// The re-sends follow `l2.garp` as configured, not the defaults the announcer started with.
#[test]
fn defence_re_sends_follow_the_configured_garp_interval() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    s.a.set_garp(GarpParams {
        burst: 2,
        interval: Duration::from_millis(3000),
        refresh: Duration::ZERO,
    });
    let claim = |s: &mut Single, at: u64| {
        s.healthy_at(at, &["b", "c"]);
        s.a.claim_seen(ip, mac(2), Claimant::Speaker("b"), t(at))
    };
    assert!(claim(&mut s, 3200).is_empty(), "1.1 s is no longer enough");
    assert!(claim(&mut s, 5099).is_empty());
    assert_eq!(claim(&mut s, 5100), [Action::ResendGarp { ip }]);
}

#[test]
fn claims_on_ips_we_do_not_announce_are_ignored() {
    let mut s = Single::steady();
    let theirs = s
        .demands
        .iter()
        .map(|d| d.ip)
        .find(|ip| !s.a.is_announcing(*ip))
        .expect("some IP is owned elsewhere");
    assert!(s
        .a
        .claim_seen(theirs, mac(2), Claimant::Speaker("b"), t(2500))
        .is_empty());
    assert!(s
        .a
        .claim_seen(theirs, mac(9), Claimant::Foreign, t(2500))
        .is_empty());
    assert_eq!(s.a.conflicts(), 0);
}

#[test]
fn a_degraded_owner_yields_on_a_claim_and_retakes_only_when_healthy() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    s.a.renew_failed(t(2500));
    assert_eq!(s.a.health(t(6000)), Health::Degraded);
    assert_eq!(
        s.a.claim_seen(ip, mac(2), Claimant::Speaker("b"), t(6000)),
        [Action::Stop {
            ip,
            reason: StopReason::ClaimedBy(mac(2))
        }]
    );
    assert!(!s.a.is_announcing(ip));
    assert!(s.reconcile(7000).is_empty(), "not retaken while degraded");
    s.healthy_at(8000, &["b", "c"]);
    assert_eq!(probes(&s.reconcile(8000)), BTreeSet::from([ip]));
}

/// "a" has won IPs at 2000 and its probes are out (announce due at 2100).
fn probing() -> (Single, IpAddr) {
    let mut s = Single::new();
    for at in [0, 1000, 2000] {
        s.healthy_at(at, &["b", "c"]);
    }
    let actions = s.reconcile(2000);
    let ip = *probes(&actions).iter().next().expect("a won something");
    (s, ip)
}

#[test]
fn a_probe_answered_by_a_foreign_mac_holds_the_ip_then_probes_again() {
    let (mut s, ip) = probing();
    assert_eq!(
        s.a.claim_seen(ip, mac(9), Claimant::Foreign, t(2050)),
        [Action::Hold {
            ip,
            mac: mac(9),
            hold: DEFAULT_FOREIGN_HOLD
        }]
    );
    // Its probe deadline passes: every other won IP is announced, this one is not.
    let actions = s.reconcile(2100);
    assert!(!starts(&actions).contains(&ip));
    assert!(!s.a.is_announcing(ip));
    assert!(s.elected().contains(&ip), "still ours to retry");
    assert_eq!(s.a.next_wakeup(), Some(t(32_050)));
    // Still in use: further answers change nothing.
    assert!(s
        .a
        .claim_seen(ip, mac(9), Claimant::Foreign, t(3000))
        .is_empty());
    s.healthy_at(32_000, &["b", "c"]);
    assert!(s.reconcile(32_049).is_empty());
    // The hold is over: probe again, and announce when nobody answers.
    assert_eq!(s.reconcile(32_050), [Action::Probe { ip }]);
    assert_eq!(s.a.next_wakeup(), Some(t(32_150)));
    assert_eq!(s.reconcile(32_150), [Action::Start { ip }]);
    assert!(s.a.is_announcing(ip));
}

#[test]
fn a_probe_answered_by_a_peer_speaker_is_a_handover_not_a_foreign_host_nor_a_conflict() {
    let (mut s, ip) = probing();
    // The previous owner still answers until its lease view shows "a".
    assert!(s
        .a
        .claim_seen(ip, mac(2), Claimant::Speaker("b"), t(2050))
        .is_empty());
    assert_eq!(s.a.conflicts(), 0);
    assert!(starts(&s.reconcile(2100)).contains(&ip));
    assert!(s.a.is_announcing(ip));
}

#[test]
fn our_own_frames_heard_on_another_port_are_no_claim() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    assert!(s
        .a
        .claim_seen(ip, mac(1), Claimant::Ourselves, t(2500))
        .is_empty());
    assert!(s.a.is_announcing(ip));
}

#[test]
fn a_foreign_claim_on_an_announced_ip_stops_answering_and_holds_it() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    assert_eq!(
        s.a.claim_seen(ip, mac(9), Claimant::Foreign, t(2500)),
        [Action::Hold {
            ip,
            mac: mac(9),
            hold: DEFAULT_FOREIGN_HOLD
        }]
    );
    assert!(!s.a.is_announcing(ip));
    assert_eq!(s.a.conflicts(), 0, "a foreign host is never fought");
    assert_eq!(s.a.next_wakeup(), Some(t(32_500)));
}

#[test]
fn a_foreign_claim_holds_the_ip_even_while_degraded() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    assert_eq!(s.a.health(t(9000)), Health::Degraded);
    assert!(matches!(
        s.a.claim_seen(ip, mac(9), Claimant::Foreign, t(9000))[..],
        [Action::Hold { .. }]
    ));
}

#[test]
fn stop_during_a_probe_cancels_the_announcement() {
    let (mut s, ip) = probing();
    s.demands.retain(|d| d.ip != ip);
    let actions = s.reconcile(2050);
    assert_eq!(
        actions,
        [Action::Stop {
            ip,
            reason: StopReason::NotDemanded
        }]
    );
    assert!(!starts(&s.reconcile(2100)).contains(&ip));
    assert!(!s.elected().contains(&ip));
}

#[test]
fn losing_the_election_during_a_hold_gives_the_ip_up() {
    let (mut s, ip) = probing();
    s.a.claim_seen(ip, mac(9), Claimant::Foreign, t(2050));
    s.reconcile(2100);
    // "d" joins and wins everything it can; if it wins this IP, "a" lets go of the held IP.
    let winner_with_d = winner_among(ip, &["a", "b", "c", "d"]);
    s.nodes.push(facts("d"));
    s.healthy_at(2500, &["b", "c", "d"]);
    let actions = s.reconcile(2500);
    if winner_with_d == "a" {
        assert!(!stops(&actions).contains_key(&ip));
        return;
    }
    assert_eq!(stops(&actions).get(&ip), Some(&StopReason::NotElected));
    assert!(!s.elected().contains(&ip));
    assert!(s
        .reconcile(32_050)
        .iter()
        .all(|a| *a != Action::Probe { ip }));
}

/// The old owner's side of a failback: the returning winner ("z", who outranks "a" for the IP)
/// claims it before a's lease view shows z's lease. That is a handover in progress: a neither
/// fights nor reports it, and hands over as soon as its view catches up.
#[test]
fn a_claim_by_a_returning_winner_is_a_handover_not_a_conflict() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    let returning = (0..1000)
        .map(|i| format!("z{i}"))
        .find(|n| rendezvous::score(n, ip) > rendezvous::score("a", ip))
        .expect("some name outranks a");
    s.nodes.push(facts(&returning));
    let claim = |s: &mut Single, at: u64| {
        s.healthy_at(at, &["b", "c"]);
        s.a.claim_seen(ip, mac(7), Claimant::Speaker(&returning), t(at))
    };
    for at in [2200, 3400, 5200] {
        assert!(claim(&mut s, at).is_empty(), "at {at}");
    }
    assert_eq!(s.a.conflicts(), 0);
    // a's view catches up: z's lease is seen, and a stops.
    s.healthy_at(5300, &["b", "c", &returning]);
    assert_eq!(
        stops(&s.reconcile(5300)).get(&ip),
        Some(&StopReason::NotElected)
    );
}

/// But a speaker that outranks us and never shows up live (a degraded one that missed our
/// takeover) is fought once the contest outlives a handover, and reported.
#[test]
fn a_claim_by_an_outranking_speaker_that_never_becomes_live_is_a_conflict() {
    let mut s = Single::steady();
    let ip = *s.owned().iter().next().expect("a owns something");
    let zombie = (0..1000)
        .map(|i| format!("z{i}"))
        .find(|n| rendezvous::score(n, ip) > rendezvous::score("a", ip))
        .expect("some name outranks a");
    let mut claim = |at: u64| {
        s.healthy_at(at, &["b", "c"]);
        s.a.claim_seen(ip, mac(7), Claimant::Speaker(&zombie), t(at))
    };
    assert!(claim(2200).is_empty());
    assert!(claim(5200).is_empty());
    assert_eq!(
        claim(5201),
        [
            Action::Conflict { ip, mac: mac(7) },
            Action::ResendGarp { ip }
        ]
    );
}

#[test]
fn shutdown_hands_back_every_ip_and_then_does_nothing() {
    let mut s = Single::steady();
    let owned = s.owned();
    let released: BTreeSet<IpAddr> = s.a.shutdown().into_iter().collect();
    assert_eq!(released, owned);
    assert_eq!(s.a.announced().count(), 0);
    s.healthy_at(3000, &["b", "c"]);
    assert!(s.reconcile(3000).is_empty());
    let ip = *owned.iter().next().expect("a owned something");
    assert!(s
        .a
        .claim_seen(ip, mac(2), Claimant::Speaker("b"), t(3000))
        .is_empty());
    assert!(s
        .a
        .claim_seen(ip, mac(9), Claimant::Foreign, t(3000))
        .is_empty());
    assert_eq!(s.a.next_wakeup(), None);
}

/// A small cluster: every speaker talks to a shared lease store (the API) when it can reach it,
/// and every GARP one speaker sends is heard by all the others (the LAN).
struct Cluster {
    names: Vec<String>,
    facts: Vec<NodeFacts>,
    demands: Vec<IpDemand>,
    speakers: BTreeMap<String, Announcer>,
    api_reachable: BTreeSet<String>,
    store: BTreeMap<String, LeaseSnapshot>,
    rv: u64,
    /// Every action taken, with time and node.
    log: Vec<(u64, String, Action)>,
}

impl Cluster {
    fn new(names: &[&str], ip_count: u8) -> Self {
        Cluster {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            facts: names.iter().map(|n| facts(n)).collect(),
            demands: ips(ip_count).into_iter().map(IpDemand::cluster).collect(),
            speakers: names
                .iter()
                .map(|n| ((*n).to_owned(), announcer(n)))
                .collect(),
            api_reachable: names.iter().map(|n| (*n).to_owned()).collect(),
            store: BTreeMap::new(),
            rv: 0,
            log: Vec::new(),
        }
    }

    fn mac_of(&self, node: &str) -> MacAddr {
        let i = self.names.iter().position(|n| n == node).unwrap_or(0);
        mac(u8::try_from(i + 1).unwrap_or(0xff))
    }

    /// One renew period: each speaker in turn renews and relists (if it can reach the API),
    /// then reconciles; GARP from any start or re-send reaches every other speaker.
    fn tick(&mut self, at: u64) -> Vec<(String, Action)> {
        let mut out = Vec::new();
        for name in self.names.clone() {
            let now = t(at);
            if self.api_reachable.contains(&name) {
                self.rv += 1;
                self.store.insert(name.clone(), snap(self.rv));
                let sp = self.speakers.get_mut(&name).expect("speaker exists");
                sp.renew_succeeded(now);
                sp.watch_ok(now);
                for (node, lease) in &self.store {
                    sp.lease_seen(node, lease, now);
                }
            } else {
                let sp = self.speakers.get_mut(&name).expect("speaker exists");
                sp.renew_failed(now);
                sp.watch_failed(now);
            }
            let sp = self.speakers.get_mut(&name).expect("speaker exists");
            let actions = sp.reconcile(now, &self.facts, &self.demands, &no_selector());
            self.deliver(at, &name, actions, &mut out);
        }
        out
    }

    fn deliver(
        &mut self,
        at: u64,
        from: &str,
        actions: Vec<Action>,
        out: &mut Vec<(String, Action)>,
    ) {
        let mut queue: Vec<(String, Action)> =
            actions.into_iter().map(|a| (from.to_owned(), a)).collect();
        while let Some((node, action)) = queue.pop() {
            self.log.push((at, node.clone(), action));
            out.push((node.clone(), action));
            match action {
                // Gratuitous ARP: every other speaker hears the sender claim the IP.
                Action::Start { ip } | Action::ResendGarp { ip } => {
                    let sender_mac = self.mac_of(&node);
                    for other in self.names.clone() {
                        if other == node {
                            continue;
                        }
                        let sp = self.speakers.get_mut(&other).expect("speaker exists");
                        for reaction in
                            sp.claim_seen(ip, sender_mac, Claimant::Speaker(&node), t(at))
                        {
                            queue.push((other.clone(), reaction));
                        }
                    }
                }
                // A probe: whoever answers for the IP replies, and the prober hears it.
                Action::Probe { ip } => {
                    let owners: Vec<String> = self
                        .names
                        .iter()
                        .filter(|o| **o != node && self.speakers[*o].is_announcing(ip))
                        .cloned()
                        .collect();
                    for owner in owners {
                        let owner_mac = self.mac_of(&owner);
                        let sp = self.speakers.get_mut(&node).expect("speaker exists");
                        for reaction in
                            sp.claim_seen(ip, owner_mac, Claimant::Speaker(&owner), t(at))
                        {
                            queue.push((node.clone(), reaction));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn run(&mut self, from: u64, to: u64) -> Vec<(u64, String, Action)> {
        let mark = self.log.len();
        for at in (from..=to).step_by(1000) {
            self.tick(at);
        }
        self.log[mark..].to_vec()
    }

    fn owners(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let mut map: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for (name, sp) in &self.speakers {
            for ip in sp.announced() {
                map.entry(ip).or_default().push(name.clone());
            }
        }
        map
    }

    /// Every demanded IP announced by exactly the rendezvous winner among `alive`.
    fn assert_converged(&self, alive: &[&str]) {
        let owners = self.owners();
        for d in &self.demands {
            let expected = vec![winner_among(d.ip, alive)];
            assert_eq!(owners.get(&d.ip), Some(&expected), "{}", d.ip);
        }
    }
}

#[test]
fn scenario_api_outage_nothing_moves_and_nothing_goes_dark() {
    let mut c = Cluster::new(&["a", "b", "c"], 40);
    c.run(0, 5000);
    c.assert_converged(&["a", "b", "c"]);
    let before = c.owners();

    c.api_reachable.clear();
    let during = c.run(6000, 60_000);
    assert!(during.is_empty(), "{during:?}");
    assert_eq!(c.owners(), before);
    for sp in c.speakers.values() {
        assert_eq!(sp.health(t(60_000)), Health::Degraded);
    }

    c.api_reachable = c.names.iter().cloned().collect();
    let after = c.run(61_000, 75_000);
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(c.owners(), before);
}

#[test]
fn scenario_single_node_partition_isolated_speaker_yields_after_hearing_the_new_owner() {
    let mut c = Cluster::new(&["a", "b", "c"], 40);
    c.run(0, 5000);
    c.assert_converged(&["a", "b", "c"]);
    let before = c.owners();
    let isolated = "b";
    let its_ips: BTreeSet<IpAddr> = before
        .iter()
        .filter(|(_, o)| o[0] == isolated)
        .map(|(ip, _)| *ip)
        .collect();
    assert!(!its_ips.is_empty());

    // "b" loses the API but stays on the LAN.
    c.api_reachable.remove(isolated);
    let log = c.run(6000, 20_000);

    // Peers took over exactly b's IPs, each started once, by the new winner.
    let mut taken: BTreeMap<IpAddr, (u64, String)> = BTreeMap::new();
    for (at, node, action) in &log {
        if let Action::Start { ip } = action {
            let previous = taken.insert(*ip, (*at, node.clone()));
            assert!(previous.is_none(), "{ip} started twice");
        }
    }
    assert_eq!(taken.keys().copied().collect::<BTreeSet<_>>(), its_ips);
    for (ip, (at, node)) in &taken {
        assert_eq!(*node, winner_among(*ip, &["a", "c"]));
        assert!(*at > 8000, "{ip} taken before b's lease expired, at {at}");
    }
    // b held on until it heard the new owner, then yielded at that very moment; it never
    // started anything.
    let mut yielded = BTreeSet::new();
    for (at, node, action) in &log {
        if node != isolated {
            continue;
        }
        match action {
            Action::Stop {
                ip,
                reason: StopReason::ClaimedBy(m),
            } => {
                let (taken_at, taker) = &taken[ip];
                assert_eq!(*m, c.mac_of(taker));
                assert_eq!(at, taken_at, "{ip} yielded on the first GARP");
                yielded.insert(*ip);
            }
            other => panic!("isolated speaker did {other:?} at {at}"),
        }
    }
    assert_eq!(yielded, its_ips);
    // Nobody else's IPs moved, and now each IP has exactly one owner.
    c.assert_converged(&["a", "c"]);

    // The partition heals: b is a candidate again and gets its IPs back; it briefly overlaps
    // with the current owner, which the healthy owners resolve within a renew period.
    c.api_reachable.insert(isolated.to_owned());
    c.run(21_000, 30_000);
    c.assert_converged(&["a", "b", "c"]);
    assert_eq!(c.owners(), before);
}

#[test]
fn scenario_graceful_stop_hands_over_without_waiting_for_expiry() {
    let mut c = Cluster::new(&["a", "b", "c"], 40);
    c.run(0, 5000);
    let sp = c.speakers.get_mut("c").expect("c exists");
    let released = sp.shutdown();
    assert!(!released.is_empty());
    c.store.remove("c");
    c.api_reachable.remove("c");
    for name in ["a", "b"] {
        c.speakers.get_mut(name).expect("exists").lease_gone("c");
    }
    // The very next reconciles (probe, then announce; well within one lease duration) hand
    // c's IPs over.
    c.run(5100, 6100);
    c.assert_converged(&["a", "b"]);
}

/// A node crashes and comes back (a fresh speaker): its IPs fail over and fail back, and no
/// speaker reports a conflict on the way, though the previous owners answer the returning
/// speaker's probes and the LAN carries every GARP.
#[test]
fn scenario_failback_raises_no_conflict() {
    let mut c = Cluster::new(&["a", "b", "c"], 40);
    c.run(0, 5000);
    let before = c.owners();
    // "a" ticks first, so its probes meet the current owners before they see its new lease.
    c.api_reachable.remove("a");
    let crashed = c.speakers.remove("a").expect("a exists");
    drop(crashed);
    c.names.retain(|n| n != "a");
    c.run(6000, 12_000);
    c.assert_converged(&["b", "c"]);
    c.names.insert(0, "a".to_owned());
    c.speakers.insert("a".to_owned(), announcer("a"));
    c.api_reachable.insert("a".to_owned());
    let log = c.run(13_000, 20_000);
    c.assert_converged(&["a", "b", "c"]);
    assert_eq!(c.owners(), before);
    let conflicts: Vec<_> = log
        .iter()
        .filter(|(_, _, a)| matches!(a, Action::Conflict { .. }))
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:?}");
    assert!(log
        .iter()
        .any(|(_, n, a)| n == "a" && matches!(a, Action::Probe { .. })));
}

/// A peer the heartbeat detector suspects is not a candidate, however fresh its lease; lifting
/// the suspicion gives its IPs back.
#[test]
fn a_suspected_peer_is_not_live_and_its_ips_move_until_the_suspicion_is_lifted() {
    let mut s = Single::steady();
    s.a.set_suspects(["b"]);
    assert!(!s.a.is_live("b", t(2200)));
    s.reconcile(2200);
    s.reconcile(2300);
    assert_eq!(s.owned(), s.wins_among(&["a", "c"]));
    s.a.set_suspects(Vec::<String>::new());
    assert!(s.a.is_live("b", t(2400)));
    let actions = s.reconcile(2400);
    assert_eq!(s.owned(), s.wins_among(&["a", "b", "c"]));
    assert!(starts(&actions).is_empty());
    // Suspecting ourselves means nothing: our liveness is our own health.
    s.a.set_suspects(["a"]);
    assert!(s.a.is_live("a", t(2400)));
}

/// While we renew rarely (the relaxed heartbeat cadence writes 15 s into our lease), ten
/// seconds without a renewal or a watch event is not API trouble; past what we wrote, it is.
#[test]
fn our_own_health_is_judged_by_the_duration_we_last_wrote() {
    let mut s = Single::steady();
    s.a.set_own_lease_duration(Duration::from_secs(15));
    s.a.renew_succeeded(t(3000));
    s.a.watch_ok(t(3000));
    s.peers_renew(3000, &["b", "c"]);
    assert_eq!(s.a.health(t(13_000)), Health::Healthy);
    assert_eq!(s.a.health(t(18_000)), Health::Healthy);
    assert_eq!(s.a.health(t(18_001)), Health::Degraded);
    // A failed renewal after 8 quiet seconds: API trouble, at once, as at the fast cadence.
    let mut failing = s.a.clone();
    failing.renew_failed(t(11_000));
    assert_eq!(failing.health(t(11_000)), Health::Degraded);
    // Back to the fast cadence: 3 s again (never below --lease-duration).
    s.a.set_own_lease_duration(Duration::from_secs(1));
    s.a.renew_succeeded(t(20_000));
    s.a.watch_ok(t(20_000));
    assert_eq!(s.a.health(t(23_000)), Health::Healthy);
    assert_eq!(s.a.health(t(23_001)), Health::Degraded);
}
