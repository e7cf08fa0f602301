//! The netns harness's own tests: prove each part works with real tools, without any speaker.
//! Each test builds its own LAN, so they also prove that LANs run side by side.

use ferrolb_testkit::netns;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use netns::inject::RawArp;
use netns::{ArpOp, Lan, MacAddr, CLIENT_IP, CLIENT_MAC};

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn url(ip: Ipv4Addr, port: u16) -> String {
    format!("http://{ip}:{port}/")
}

#[test]
fn arping_resolves_each_node_to_its_own_mac_and_curl_reaches_its_server() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(3).build();
    for i in 1..=3 {
        let node = lan.node(i);
        assert_eq!(node.mac(), netns::node_mac(i));
        assert_eq!(
            lan.client().arping_mac(node.ip()),
            Some(node.mac()),
            "{} at {} should answer ARP with its MAC",
            node.name(),
            node.ip()
        );
        assert_eq!(
            lan.client().curl(&url(node.ip(), 8080)),
            Ok(format!("node-{i}"))
        );
    }
    // Nobody owns an unused address: arping must be able to say "no answer".
    assert_eq!(
        lan.client().arping_mac(Ipv4Addr::new(198, 51, 100, 99)),
        None
    );
    // The stand-in pod only serves `/`.
    assert!(lan
        .client()
        .curl("http://198.51.100.11:8080/other")
        .is_err());
}

#[test]
fn vip_dnat_stands_in_for_kube_proxy() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(3).build();
    lan.add_vip_dnat(VIP, 80);
    // No speaker: nobody answers ARP for the VIP, so the VIP is unreachable...
    assert_eq!(lan.client().arping_mac(VIP), None);
    assert!(lan
        .client()
        .curl_within(&url(VIP, 80), Duration::from_millis(500))
        .is_err());
    // ...until the client's neighbour entry is pinned to a node, as an ARP answer would.
    for i in [1, 3] {
        lan.pin_neighbour(VIP, lan.node(i).mac());
        assert_eq!(lan.client_neighbour(VIP), Some(lan.node(i).mac()));
        assert_eq!(lan.client().curl(&url(VIP, 80)), Ok(format!("node-{i}")));
    }
    // Only the programmed port is translated.
    assert!(lan
        .client()
        .curl_within(&url(VIP, 81), Duration::from_millis(500))
        .is_err());
    // A node reaching the VIP itself goes to its own pod (output-chain DNAT).
    let out = lan
        .node(2)
        .exec(
            "curl",
            &["-sS", "--noproxy", "*", "--max-time", "2", &url(VIP, 80)],
            Duration::from_secs(5),
        )
        .expect("curl in node 2");
    assert_eq!(out.stdout, "node-2", "stderr: {}", out.stderr);
    lan.forget_neighbour(VIP);
    assert_eq!(lan.client_neighbour(VIP), None);
}

/// The capture is the judge of every "no reply was sent" assertion, so it must not lose
/// frames in the bursts those tests send (it once kept only about 200 of 300).
#[test]
fn tcpdump_capture_misses_nothing_in_a_burst() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(1).build();
    let cap = lan.client().capture_arp();
    let mut inj = lan.client().injector("eth0");
    let burst_mac = MacAddr([0x02, 0xfe, 0, 0, 0x0b, 0x01]);
    const BURST: u32 = 2_000;
    for n in 0..BURST {
        let target = Ipv4Addr::new(203, 0, 113, 100 + (n % 100) as u8);
        inj.send(&RawArp::request(burst_mac, CLIENT_IP, target).padded())
            .expect("send");
    }
    let seen = || {
        cap.packets()
            .iter()
            .filter(|p| p.sender_mac == burst_mac)
            .count()
    };
    // tcpdump may still be writing the tail; the drop counter below is the real check.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen() < BURST as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = cap.stop();
    assert_eq!(
        all.iter().filter(|p| p.sender_mac == burst_mac).count(),
        BURST as usize,
        "frames of the burst missing from the capture"
    );
}

#[test]
fn tcpdump_capture_sees_an_arping_exchange_field_by_field() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(2).build();
    let cap = lan.client().capture_arp();
    let node = lan.node(2);
    assert_eq!(lan.client().arping_mac(node.ip()), Some(node.mac()));
    let reply = cap
        .wait_for(Duration::from_secs(3), |p| p.op == ArpOp::Reply)
        .expect("the reply should be captured");
    let all = cap.stop();
    let request = all
        .iter()
        .find(|p| p.op == ArpOp::Request)
        .expect("the request should be captured");
    assert_eq!(request.eth_src, CLIENT_MAC);
    assert_eq!(request.eth_dst, MacAddr::BROADCAST);
    assert_eq!(request.sender_mac, CLIENT_MAC);
    assert_eq!(request.sender_ip, CLIENT_IP);
    assert_eq!(request.target_ip, node.ip());
    assert!(!request.is_gratuitous());
    assert_eq!(reply.eth_src, node.mac());
    assert_eq!(reply.eth_dst, CLIENT_MAC);
    assert_eq!(reply.sender_mac, node.mac());
    assert_eq!(reply.sender_ip, node.ip());
    assert_eq!(reply.target_mac, CLIENT_MAC);
    assert_eq!(reply.target_ip, CLIENT_IP);
    assert!(request.time <= reply.time);
}

#[test]
fn cut_node_partitions_one_node_and_restore_heals_it() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(2).build();
    let n1 = url(lan.node(1).ip(), 8080);
    let n2 = url(lan.node(2).ip(), 8080);
    let sampler =
        lan.client()
            .curl_sampler(&n1, Duration::from_millis(50), Duration::from_millis(300));
    assert!(
        sampler.wait_until(Duration::from_secs(5), |s| s
            .iter()
            .any(|x| x.result.is_ok())),
        "node 1 should answer before the cut"
    );
    lan.cut_node(1);
    let cut_at = Instant::now();
    assert!(lan
        .client()
        .curl_within(&n1, Duration::from_millis(500))
        .is_err());
    assert_eq!(lan.client().arping_mac(lan.node(1).ip()), None);
    assert_eq!(lan.client().curl(&n2), Ok("node-2".to_string()));
    // The node's own link stays up: the partition is silent.
    let link = lan
        .node(1)
        .exec(
            "ip",
            &["-o", "link", "show", "eth0"],
            Duration::from_secs(5),
        )
        .expect("ip link in node 1");
    assert!(link.stdout.contains("state UP"), "{}", link.stdout);
    lan.restore_node(1);
    let healed = sampler.wait_until(Duration::from_secs(5), |s| {
        netns::outages(s).iter().any(|o| o.recovered)
    });
    let samples = sampler.stop();
    assert!(healed, "curl to node 1 should recover: {samples:?}");
    let outage = netns::longest_outage(&samples).expect("the cut should show as an outage");
    assert!(
        outage.len() >= Duration::from_millis(400)
            && outage.len() < cut_at.elapsed() + Duration::from_millis(400),
        "implausible outage {outage:?}"
    );
    assert_eq!(lan.client().curl(&n1), Ok("node-1".to_string()));
}

#[test]
fn set_link_and_set_port_take_a_node_off_the_lan() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(1).build();
    let ip = lan.node(1).ip();
    lan.set_link(1, false);
    assert_eq!(lan.client().arping_mac(ip), None);
    lan.set_link(1, true);
    assert_eq!(lan.client().arping_mac(ip), Some(lan.node(1).mac()));
    lan.set_port(1, false);
    let link = lan
        .node(1)
        .exec(
            "ip",
            &["-o", "link", "show", "eth0"],
            Duration::from_secs(5),
        )
        .expect("ip link in node 1");
    assert!(link.stdout.contains("NO-CARRIER"), "{}", link.stdout);
    assert_eq!(lan.client().arping_mac(ip), None);
    lan.set_port(1, true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lan.client().arping_mac(ip).is_none() {
        assert!(
            Instant::now() < deadline,
            "node 1 should be back after set_port(up)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_relay_reaches_kube_sim_and_block_api_cuts_only_one_node() {
    let Ok(()) = netns::require() else { return };
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim starts");
    let sim_addr: SocketAddr = sim.addr();
    tokio::task::spawn_blocking(move || {
        let lan = Lan::builder().nodes(2).build();
        let api = lan.expose_api(sim_addr);
        assert_eq!(api.addr.ip(), netns::GATEWAY_IP);
        let kubeconfig = std::fs::read_to_string(&api.kubeconfig).expect("kubeconfig written");
        assert!(kubeconfig.contains(&api.url), "{kubeconfig}");
        let version = format!("{}/version", api.url);
        let get = |i: usize| {
            lan.node(i).exec(
                "curl",
                &[
                    "-sS",
                    "--fail",
                    "--noproxy",
                    "*",
                    "--max-time",
                    "1",
                    &version,
                ],
                Duration::from_secs(5),
            )
        };
        for i in 1..=2 {
            let out = get(i).expect("curl runs");
            assert!(out.stdout.contains("\"minor\""), "node {i}: {out:?}");
        }
        lan.block_api(1);
        let blocked = get(1).expect("curl runs");
        assert!(
            !blocked.status.success(),
            "node 1 should be cut off: {blocked:?}"
        );
        assert!(
            get(2).expect("curl runs").status.success(),
            "node 2 unaffected"
        );
        // The rest of the LAN still reaches node 1.
        assert_eq!(
            lan.client().curl(&url(lan.node(1).ip(), 8080)),
            Ok("node-1".to_string())
        );
        lan.unblock_api(1);
        assert!(get(1).expect("curl runs").status.success(), "node 1 back");
    })
    .await
    .expect("blocking part");
}

#[test]
fn spawn_runs_inside_the_node_namespace_and_signals_work() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(2).build();
    let mut child = lan.node(2).spawn(
        "sh",
        &["-c", "ip -o -4 addr show eth0; echo ready; exec sleep 30"],
    );
    assert!(
        child.wait_for_output("ready", Duration::from_secs(5)),
        "stderr: {}",
        child.stderr()
    );
    assert!(
        child.stdout().contains("198.51.100.12/24"),
        "{}",
        child.stdout()
    );
    assert!(child.is_running());
    child.term();
    let status = child
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(!status.success());
    let mut hard = lan.node(1).spawn("sleep", &["30"]);
    hard.kill();
    assert!(hard.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn arp_sampler_catches_two_owners_at_once() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(2).build();
    let dup = Ipv4Addr::new(198, 51, 100, 99);
    let sampler =
        lan.client()
            .arp_sampler(dup, Duration::from_millis(100), Duration::from_millis(200));
    assert!(sampler.wait_until(Duration::from_secs(3), |s| s.len() >= 2));
    // Give two nodes the same address: both kernels answer, like a split brain.
    for i in 1..=2 {
        lan.node(i)
            .exec(
                "ip",
                &["addr", "add", "198.51.100.99/24", "dev", "eth0"],
                Duration::from_secs(5),
            )
            .expect("ip addr add");
    }
    let seen = sampler.wait_until(Duration::from_secs(3), |s| {
        s.iter().any(|x| x.macs.len() == 2)
    });
    let samples = sampler.stop();
    assert!(seen, "two MACs should answer at once: {samples:?}");
    assert!(samples[0].macs.is_empty(), "nobody owned it at first");
    let both: Vec<MacAddr> = samples
        .iter()
        .find(|s| s.macs.len() == 2)
        .unwrap()
        .macs
        .clone();
    assert!(both.contains(&lan.node(1).mac()) && both.contains(&lan.node(2).mac()));
}

#[test]
fn drop_removes_every_namespace_and_process() {
    let Ok(()) = netns::require() else { return };
    let lan = Lan::builder().nodes(3).build();
    let id = format!("{}-", lan.id());
    let log_dir = lan.log_dir().to_path_buf();
    let api = lan.expose_api("127.0.0.1:9".parse().unwrap());
    // A process left running on purpose (no guard kept) and a live capture.
    let child = lan.node(1).spawn("sleep", &["30"]);
    let pid = child.pid();
    std::mem::forget(child);
    let list = |args: &[&str]| netns::cmd::run("ip", args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list(&["netns", "list"]).matches(&id).count(), 5);
    drop(lan);
    assert!(!list(&["netns", "list"]).contains(&id));
    assert!(!list(&["-o", "link", "show"]).contains("flbh"));
    assert!(!log_dir.exists(), "log dir removed after a passing test");
    // The forgotten child was killed by the namespace sweep (it is a zombie until reaped).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "pid {pid} still alive: {state}"
    );
    // The relay is gone with the LAN.
    assert!(std::net::TcpStream::connect_timeout(&api.addr, Duration::from_millis(200)).is_err());
}

#[test]
fn builds_fast_enough_for_many_tests() {
    let Ok(()) = netns::require() else { return };
    let t = Instant::now();
    let lan = Lan::builder().nodes(5).build();
    let built = t.elapsed();
    drop(lan);
    let total = t.elapsed();
    eprintln!("5-node LAN: built in {built:?}, torn down after {total:?}");
    assert!(total < Duration::from_secs(10), "{total:?}");
}

#[test]
fn sweeper_removes_namespaces_of_dead_runs_only() {
    let Ok(()) = netns::require() else { return };
    // A pid that surely belonged to a process that is gone: a child we started and reaped.
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    gone.wait().expect("reap true");
    let dead = format!("{}{}-0-lan", netns::PREFIX, gone.id());
    let alive = format!("{}{}-999-lan", netns::PREFIX, std::process::id());
    for ns in [&dead, &alive] {
        netns::cmd::run("ip", &["netns", "add", ns]).unwrap_or_else(|e| panic!("{e}"));
    }
    netns::sweep_stale();
    let list = netns::cmd::run("ip", &["netns", "list"]).unwrap_or_else(|e| panic!("{e}"));
    let _ = netns::cmd::run("ip", &["netns", "del", &alive]);
    let _ = netns::cmd::run("ip", &["netns", "del", &dead]);
    assert!(
        !list.contains(&dead),
        "stale namespace {dead} should be swept: {list}"
    );
    assert!(
        list.contains(&alive),
        "a live run's namespace must be left alone: {list}"
    );
}
