//! The IPv6 Neighbor Discovery responder (`ferrolb::speaker::ndp_io`) on a real namespaced LAN
//! with IPv6 documentation addresses, judged by independent parts: `ndisc6` (who answers for
//! the VIP), the client kernel's neighbour cache (`ip -6 neigh`), `ip -6 maddr` (which groups
//! the node joined), `tcpdump`'s own decoding of what went on the wire, and frames built and
//! decoded byte by byte here, without the product's codec.
//!
//! The responder runs in-process, on a thread inside node 1's namespace (every socket it opens
//! belongs there); the speaker's per-family executor drives the same API. One test re-runs this
//! binary under `setpriv` to show that CAP_NET_RAW alone is enough.
//!
//! Needs root, ip, nft, arping, curl, tcpdump and ndisc6; skips loudly without them, except
//! under `CI=true` or `FERROLB_E2E=1`, where a missing prerequisite fails.

// if_nametoindex(3) is FFI; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use ferrolb_testkit::netns;

use std::net::Ipv6Addr;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrolb::speaker::metrics::IpLabels;
use ferrolb::speaker::ndp_io::{ClaimKind, NdpClaim, NdpIo, NdpMetrics};
use ferrolb_core::arp::{GarpParams, MacAddr as CoreMac};
use netns::ndp::{ip6, mac, multicast_mac, na_of, Na, RawNd};
use netns::MacAddr;
use tokio::sync::mpsc;

const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// Shares VIP's solicited-node group (same last 24 bits).
const VIP_SAME_GROUP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 0, 0, 0x100);
const VIP_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const STRANGER: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x09, 0x09]);

fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A LAN of two nodes and a client with IPv6, and the responder running for node 1's eth0.
/// Fields drop in order: the responder's sockets close before the namespaces go.
struct Rig {
    io: Arc<NdpIo>,
    metrics: NdpMetrics,
    claims: mpsc::UnboundedReceiver<NdpClaim>,
    node: netns::NsThread,
    ifindex: u32,
    lan: netns::Lan,
}

impl Rig {
    fn start() -> Option<Rig> {
        netns::require_ipv6().ok()?;
        let lan = netns::Lan::builder().nodes(2).build();
        lan.add_ipv6();
        let node = lan.node(1).ns_thread();
        let (tx, claims) = mpsc::unbounded_channel();
        let metrics = NdpMetrics::default();
        let m = metrics.clone();
        let mac = CoreMac(lan.node(1).mac().0);
        let (io, ifindex) = node.run(move || {
            // SAFETY: if_nametoindex with a NUL-terminated constant.
            let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
            assert_ne!(idx, 0, "node 1 has eth0");
            let io = Arc::new(NdpIo::new(tx, m));
            io.sync_ports(&[(idx, "eth0".to_string(), mac)]);
            (io, idx)
        });
        assert_eq!(io.port_macs(), vec![mac], "the port opened");
        Some(Rig {
            io,
            metrics,
            claims,
            node,
            ifindex,
            lan,
        })
    }

    /// Runs `f` with the responder inside node 1's namespace (where it creates sockets).
    fn with<T: Send + 'static>(&self, f: impl FnOnce(&NdpIo, u32) -> T + Send + 'static) -> T {
        let io = self.io.clone();
        let idx = self.ifindex;
        self.node.run(move || f(&io, idx))
    }

    fn node_mac(&self) -> MacAddr {
        self.lan.node(1).mac()
    }

    fn count(
        &self,
        family: &prometheus_client::metrics::family::Family<
            IpLabels,
            prometheus_client::metrics::counter::Counter,
        >,
        ip: Ipv6Addr,
    ) -> u64 {
        family.get_or_create(&IpLabels { ip: ip.to_string() }).get()
    }

    fn next_claim(&mut self, timeout: Duration) -> Option<NdpClaim> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(c) = self.claims.try_recv() {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

// Frames are built and read by hand in `netns::ndp` (independent of ferrolb_core::ndp).

/// Reads frames on the client's raw socket until an advertisement from `from` matches `pred`.
fn wait_for_na(
    inj: &mut netns::inject::Injector,
    from: MacAddr,
    timeout: Duration,
    pred: impl Fn(&Na) -> bool,
) -> Option<Na> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(f) = inj.recv() {
            if let Some(na) = na_of(&f) {
                if na.eth_src == from && pred(&na) {
                    return Some(na);
                }
            }
        }
    }
    None
}

#[test]
fn ndisc6_resolves_the_vip_only_while_announced_and_the_group_follows() {
    let Some(rig) = Rig::start() else { return };
    let client = rig.lan.client();
    let node = rig.lan.node(1);
    assert_eq!(
        client.ndisc6_mac(VIP, 1),
        None,
        "nobody answers before announce"
    );
    assert!(!node.ipv6_groups().contains(&VIP_GROUP));

    rig.with(|io, idx| io.announce(VIP, idx));
    assert!(
        node.ipv6_groups().contains(&VIP_GROUP),
        "ip -6 maddr lists {VIP_GROUP}: {:?}",
        node.ipv6_groups()
    );
    assert_eq!(client.ndisc6_mac(VIP, 3), Some(rig.node_mac()));
    assert!(rig.count(&rig.metrics.solicitations, VIP) >= 1);
    assert!(rig.count(&rig.metrics.advertisements, VIP) >= 1);

    // A second IP in the same group: the group stays until the last of them is withdrawn.
    rig.with(|io, idx| io.announce(VIP_SAME_GROUP, idx));
    rig.with(|io, _| io.withdraw(VIP));
    assert!(node.ipv6_groups().contains(&VIP_GROUP), "still needed");
    assert_eq!(client.ndisc6_mac(VIP, 1), None, "withdrawn: no answer");
    rig.with(|io, _| io.withdraw(VIP_SAME_GROUP));
    assert!(
        !node.ipv6_groups().contains(&VIP_GROUP),
        "left with the last IP: {:?}",
        node.ipv6_groups()
    );
}

#[test]
fn a_unicast_reachability_probe_without_options_is_answered() {
    let Some(rig) = Rig::start() else { return };
    rig.with(|io, idx| io.announce(VIP, idx));
    let mut inj = rig.lan.client().injector("eth0");
    let client_mac = inj.mac;
    // What a switch or router sends when its entry for the VIP goes STALE: unicast to the MAC
    // it has, to the VIP itself, no source link-layer option (RFC 4861 §7.2.2 allows that).
    let probe = RawNd::solicitation(client_mac, netns::CLIENT_IP6, VIP, VIP, rig.node_mac());
    inj.send(&probe.bytes()).expect("send NS");
    let na = wait_for_na(&mut inj, rig.node_mac(), Duration::from_secs(3), |na| {
        na.target == VIP
    })
    .expect("the unicast probe is answered");
    assert_eq!(
        na,
        Na {
            eth_dst: client_mac,
            eth_src: rig.node_mac(),
            hop_limit: 255,
            src: VIP,
            dst: netns::CLIENT_IP6,
            router: false,
            solicited: true,
            override_flag: true,
            target: VIP,
            tlla: Some(rig.node_mac()),
            checksum_ok: true,
        }
    );
}

#[test]
fn takeover_burst_is_unsolicited_with_override_and_moves_the_clients_cache() {
    let Some(rig) = Rig::start() else { return };
    let client = rig.lan.client();
    // As if the client had learnt the VIP from a previous owner.
    client.set_stale_neighbour6(VIP, STRANGER);
    assert_eq!(client.neighbour6(VIP), Some(STRANGER));
    let capture = client.capture("icmp6 and ip6[40] == 136");
    rig.with(|io, idx| io.announce(VIP, idx));
    let sender = rig.io.na_sender();
    // The l2.garp schedule the speaker will drive: 3 sends, 300 ms apart.
    let params = GarpParams {
        burst: 3,
        interval: Duration::from_millis(300),
        refresh: Duration::ZERO,
    };
    let t0 = Instant::now();
    for at in params.schedule() {
        if let Some(wait) = at.checked_sub(t0.elapsed()) {
            thread::sleep(wait);
        }
        assert!(sender.send(VIP), "sent while announced");
    }
    let from_node = |fs: &[netns::Frame]| {
        fs.iter()
            .filter_map(|f| na_of(&f.bytes))
            .filter(|na| na.eth_src == rig.node_mac())
            .count()
    };
    assert!(
        capture.wait_until(Duration::from_secs(5), |fs| from_node(fs) >= 3),
        "three advertisements captured"
    );
    assert!(
        poll(Duration::from_secs(3), || client.neighbour6(VIP)
            == Some(rig.node_mac())),
        "the override flag replaced the client's entry: {:?}",
        client.neighbour6(VIP)
    );
    rig.with(|io, _| io.withdraw(VIP));
    assert!(!sender.send(VIP), "nothing is sent for a withdrawn IP");
    // tcpdump's own reading of the burst.
    let text = capture.decoded();
    let node_to_all = format!("{} > 33:33:00:00:00:01", rig.node_mac());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&node_to_all) && l.contains("neighbor advertisement"))
        .collect();
    assert_eq!(lines.len(), 3, "tcpdump:\n{text}");
    for l in &lines {
        assert!(l.contains("hlim 255"), "{l}");
        assert!(l.contains("icmp6 sum ok"), "{l}");
        assert!(l.contains("2001:db8::100 > ff02::1"), "{l}");
        assert!(
            l.contains("tgt is 2001:db8::100, Flags [override]"),
            "override, not solicited: {l}"
        );
    }
    let frames = capture.stop();
    let nas: Vec<Na> = frames.iter().filter_map(|f| na_of(&f.bytes)).collect();
    assert!(nas.iter().all(|na| na.tlla == Some(rig.node_mac())
        && na.checksum_ok
        && !na.solicited
        && na.override_flag));
    assert_eq!(rig.count(&rig.metrics.unsolicited, VIP), 3);
}

#[test]
fn foreign_dad_probes_and_advertisements_are_reported_and_the_owner_defends() {
    let Some(mut rig) = Rig::start() else { return };
    rig.with(|io, idx| io.announce(VIP, idx));
    let mut inj = rig.lan.client().injector("eth0");
    let client_mac = inj.mac;
    // Another host wants to configure the VIP: a DAD probe from ::, with a nonce.
    let mut dad = RawNd::solicitation(
        client_mac,
        Ipv6Addr::UNSPECIFIED,
        VIP,
        VIP_GROUP,
        multicast_mac(VIP_GROUP),
    );
    dad.options = vec![14, 1, 1, 2, 3, 4, 5, 6];
    inj.send(&dad.bytes()).expect("send DAD probe");
    assert_eq!(
        rig.next_claim(Duration::from_secs(3)),
        Some(NdpClaim {
            ip: VIP,
            mac: CoreMac(client_mac.0),
            kind: ClaimKind::DadProbe
        })
    );
    // RFC 4861 §7.2.4: the defence goes to all-nodes, Solicited clear.
    let na = wait_for_na(&mut inj, rig.node_mac(), Duration::from_secs(3), |na| {
        na.target == VIP
    })
    .expect("the owner defends the VIP");
    assert_eq!((na.dst, na.eth_dst), (ALL_NODES, multicast_mac(ALL_NODES)));
    assert!(!na.solicited && na.override_flag && na.checksum_ok);

    // Another MAC advertises the VIP (a second owner, or a host that configured it).
    let mut na = RawNd::solicitation(STRANGER, VIP, VIP, ALL_NODES, multicast_mac(ALL_NODES));
    na.icmp_type = 136;
    na.flags = 0x20;
    na.options = vec![2, 1];
    na.options.extend(STRANGER.0);
    inj.send(&na.bytes()).expect("send NA");
    assert_eq!(
        rig.next_claim(Duration::from_secs(3)),
        Some(NdpClaim {
            ip: VIP,
            mac: CoreMac(STRANGER.0),
            kind: ClaimKind::Advertisement
        })
    );

    // An IP being probed before takeover: our DAD probe goes out, claims on it are reported,
    // solicitations for it are not answered (not ours yet).
    let probed = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x1aa);
    assert!(rig.with(move |io, idx| io.probe(probed, idx)));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut saw_probe = false;
    while Instant::now() < deadline && !saw_probe {
        if let Ok(f) = inj.recv() {
            saw_probe = f.len() >= 78
                && mac(&f[6..]) == rig.node_mac()
                && f[54] == 135
                && ip6(&f[22..]).is_unspecified()
                && ip6(&f[62..]) == probed;
        }
    }
    assert!(saw_probe, "our DAD probe for {probed} was seen on the wire");
    let ask = {
        let mut r = RawNd::solicitation(client_mac, netns::CLIENT_IP6, VIP, probed, rig.node_mac());
        r.target = probed;
        r
    };
    inj.send(&ask.bytes()).expect("send NS");
    assert!(
        wait_for_na(
            &mut inj,
            rig.node_mac(),
            Duration::from_millis(800),
            |na| na.target == probed
        )
        .is_none(),
        "a watched IP is not answered"
    );
    let mut claim = RawNd::solicitation(STRANGER, probed, VIP, ALL_NODES, multicast_mac(ALL_NODES));
    claim.icmp_type = 136;
    claim.flags = 0x20;
    claim.target = probed;
    inj.send(&claim.bytes()).expect("send NA");
    assert_eq!(
        rig.next_claim(Duration::from_secs(3)),
        Some(NdpClaim {
            ip: probed,
            mac: CoreMac(STRANGER.0),
            kind: ClaimKind::Advertisement
        })
    );
}

#[test]
fn malformed_and_hostile_floods_get_no_reply_and_the_responder_survives() {
    let Some(rig) = Rig::start() else { return };
    rig.with(|io, idx| io.announce(VIP, idx));
    let inj = rig.lan.client().injector("eth0");
    let client_mac = inj.mac;
    let node_mac = rig.node_mac();
    let valid = RawNd::solicitation(client_mac, netns::CLIENT_IP6, VIP, VIP, node_mac);
    // Each differs from a solicitation that is answered in one thing that makes it invalid.
    let mut bad = Vec::new();
    let mut f = valid.clone();
    f.checksum_delta = 1;
    bad.push(("bad checksum", f));
    let mut f = valid.clone();
    f.hop_limit = 254;
    bad.push(("hop limit 254 (from off-link)", f));
    let mut f = valid.clone();
    f.options = vec![1, 0, 0, 0, 0, 0, 0, 0];
    bad.push(("zero-length option", f));
    let mut f = valid.clone();
    f.options = vec![1, 2, 2, 0, 0, 0, 0, 1];
    bad.push(("option longer than the message", f));
    let mut f = valid.clone();
    f.code = 1;
    bad.push(("ICMPv6 code 1", f));
    let mut f = valid.clone();
    f.vlan = Some(100);
    bad.push(("tagged with VLAN 100 (another segment)", f));
    let mut f = RawNd::solicitation(
        client_mac,
        Ipv6Addr::UNSPECIFIED,
        VIP,
        VIP_GROUP,
        multicast_mac(VIP_GROUP),
    );
    f.options = vec![1, 1];
    f.options.extend(client_mac.0);
    bad.push(("DAD probe with a source link-layer option", f));
    let mut f = valid.clone();
    f.cut = 10;
    bad.push(("truncated", f));
    let frames: Vec<Vec<u8>> = bad.iter().map(|(_, f)| f.bytes()).collect();

    let (mut tx, mut rx) = inj.split();
    let (seen_tx, seen_rx) = std_mpsc::channel::<Na>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_r = stop.clone();
    let reader = thread::spawn(move || {
        while !stop_r.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(f) = rx.next() {
                if let Some(na) = na_of(f) {
                    if na.eth_src == node_mac {
                        let _ = seen_tx.send(na);
                    }
                }
            }
        }
        rx
    });
    const ROUNDS: usize = 500;
    for _ in 0..ROUNDS {
        for f in &frames {
            let _ = tx.send_to(f, None);
        }
    }
    // Replies, if any, follow their trigger within microseconds; a second of quiet after the
    // last frame is ample on a loaded machine, and the valid probe below proves replies flow.
    thread::sleep(Duration::from_secs(1));
    let answered: Vec<Na> = seen_rx.try_iter().collect();
    assert!(
        answered.is_empty(),
        "{} advertisements answered {} invalid solicitations ({:?})",
        answered.len(),
        ROUNDS * frames.len(),
        bad.iter().map(|(what, _)| *what).collect::<Vec<_>>()
    );
    assert_eq!(rig.count(&rig.metrics.solicitations, VIP), 0);

    // Still alive and answering.
    let _ = tx.send_to(&valid.bytes(), None);
    let got = seen_rx.recv_timeout(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
    let na = got.expect("a valid solicitation after the flood is answered");
    assert_eq!((na.target, na.dst), (VIP, netns::CLIENT_IP6));
    assert_eq!(rig.count(&rig.metrics.solicitations, VIP), 1);
}

/// Runs only as the child of `the_responder_needs_only_cap_net_raw` (which sets the variable):
/// starts the responder for VIP on eth0 of the namespace it was started in, reports, and waits
/// for the parent's files to withdraw and to exit.
#[test]
#[ignore = "child process of the_responder_needs_only_cap_net_raw"]
fn ndp_cap_child() {
    let Some(dir) = std::env::var_os("FERROLB_NDP_CAP_CHILD") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for l in status.lines().filter(|l| l.starts_with("Cap")) {
        println!("{l}");
    }
    if let Err(e) = ferrolb::speaker::ndp_socket::untagged_ndp_socket() {
        println!("packet socket: {e}");
        return;
    }
    // SAFETY: if_nametoindex with a NUL-terminated constant.
    let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    let mac: CoreMac = std::fs::read_to_string("/sys/class/net/eth0/address")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_default();
    let (tx, _rx) = mpsc::unbounded_channel();
    let metrics = NdpMetrics::default();
    let io = NdpIo::new(tx, metrics.clone());
    io.sync_ports(&[(idx, "eth0".to_string(), mac)]);
    io.announce(VIP, idx);
    println!(
        "ready ports={} join_failures={}",
        io.port_macs().len(),
        metrics.group_join_failures.get()
    );
    let wait_file = |name: &str| poll(Duration::from_secs(60), || dir.join(name).exists());
    if wait_file("withdraw") {
        io.withdraw(VIP);
        println!("withdrawn");
        wait_file("exit");
    }
}

fn spawn_cap_child(rig: &Rig, bounding: &str) -> netns::NsChild {
    let exe = std::env::current_exe().expect("test binary path");
    let exe = exe.to_string_lossy().into_owned();
    let dir = rig.lan.log_dir().to_string_lossy().into_owned();
    let env = format!("FERROLB_NDP_CAP_CHILD={dir}");
    // Root with a bounding set of only CAP_NET_RAW and nothing inheritable: after exec its
    // permitted and effective sets are exactly {CAP_NET_RAW} (capabilities(7), "Capabilities
    // and execution of programs by root").
    let bset = format!("--bounding-set=-all{bounding}");
    rig.lan.node(1).spawn(
        "setpriv",
        &[
            &bset,
            "--inh-caps=-all",
            "--",
            "env",
            &env,
            &exe,
            "--exact",
            "ndp_cap_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ],
    )
}

#[test]
fn the_responder_needs_only_cap_net_raw() {
    let Some(rig) = Rig::start() else { return };
    // Node 1 already runs an in-process responder (without any IP); the child is another one.
    if !std::path::Path::new("/usr/bin/setpriv").exists()
        && !std::path::Path::new("/bin/setpriv").exists()
    {
        assert!(
            !ferrolb_testkit::strict(),
            "setpriv (util-linux) is missing"
        );
        eprintln!("\n*** SKIPPED: setpriv (util-linux) is missing ***\n");
        return;
    }
    // Control: with no capability at all the packet socket is refused, so the restriction is
    // real and the socket really is the part that needs one.
    let mut none = spawn_cap_child(&rig, "");
    assert!(
        none.wait_for_output("packet socket:", Duration::from_secs(20)),
        "child without capabilities: {}",
        none.stdout()
    );
    assert!(
        none.stdout().contains("CapEff:\t0000000000000000"),
        "{}",
        none.stdout()
    );
    assert!(
        none.stdout().contains("Operation not permitted"),
        "{}",
        none.stdout()
    );
    none.wait_exit(Duration::from_secs(10));

    let child = spawn_cap_child(&rig, ",+net_raw");
    assert!(
        child.wait_for_output("ready", Duration::from_secs(20)),
        "child with CAP_NET_RAW: {}\n{}",
        child.stdout(),
        child.stderr()
    );
    let out = child.stdout();
    // CAP_NET_RAW is bit 13.
    assert!(out.contains("CapEff:\t0000000000002000"), "{out}");
    assert!(out.contains("ready ports=1 join_failures=0"), "{out}");
    let node = rig.lan.node(1);
    assert!(
        node.ipv6_groups().contains(&VIP_GROUP),
        "joined without NET_ADMIN: {:?}",
        node.ipv6_groups()
    );
    assert_eq!(rig.lan.client().ndisc6_mac(VIP, 3), Some(rig.node_mac()));
    std::fs::write(rig.lan.log_dir().join("withdraw"), b"").expect("signal file");
    assert!(child.wait_for_output("withdrawn", Duration::from_secs(20)));
    assert!(
        !node.ipv6_groups().contains(&VIP_GROUP),
        "left without NET_ADMIN: {:?}",
        node.ipv6_groups()
    );
    std::fs::write(rig.lan.log_dir().join("exit"), b"").expect("signal file");
    let mut child = child;
    assert!(child
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
}
