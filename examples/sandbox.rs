//! The whole FerroLB system on one machine, with one command and no cluster:
//!
//! ```sh
//! cargo run --release --example sandbox            # interactive: keeps running until Ctrl-C
//! cargo run --release --example sandbox -- --once  # do everything, print, exit (also FERROLB_SANDBOX_ONCE=1)
//! cargo run --release --example sandbox -- --api real  # against a real kube-apiserver + etcd
//! ```
//!
//! `--api real` runs the same steps against a real kube-apiserver v1.32 and etcd instead of
//! kube-sim (built by `tests/real-api/build.sh`, or taken from `$FERROLB_REAL_API_DIR`; the
//! first build takes many minutes, later runs start in seconds).
//!
//! It starts kube-sim (the API server emulator in `tests/kube-sim`), the real controller and,
//! when it can, three real speakers on a LAN built from network namespaces (the end-to-end test
//! fixture, `ferrolb_testkit::cluster` on `ferrolb_testkit::netns`). Then it creates a
//! LoadBalancer Service and shows what a user sees: the EXTERNAL-IP in `kubectl get svc`, the
//! node answering ARP for it, `curl` reaching that node, and the failover when that node's
//! speaker stops. When BIRD (`bird2`) is installed, a router namespace then peers with every
//! speaker over BGP: the pool switches to `announce: [l2, bgp]` and the router shows the
//! Service IP as a kernel ECMP route via all three nodes, reached by a client behind it.
//!
//! The data plane needs root (namespaces, nftables, raw sockets) and `ip`, `nft`, `arping`
//! (Thomas Habets') and `curl`. Without them the sandbox says exactly what is missing and still
//! shows allocation: kube-sim and the controller, and a Service getting its EXTERNAL-IP. Under
//! `CI=true` or `FERROLB_E2E=1` a missing prerequisite is a failure instead.
//!
//! The `ferrolb` binary: Cargo does not build a package's binaries for `cargo run --example`,
//! so the sandbox finds or builds it itself (`ferrolb_testkit::binary::locate_or_build`).
//!
//! Everything it creates (processes, namespaces, temporary files) is removed on exit, on an
//! error and on Ctrl-C; a second Ctrl-C exits at once, and the next run then removes the
//! leftover namespaces (the harness sweeps `flbh-<pid>-*` namespaces whose process is gone).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use ferrolb_testkit::cluster::{self, Cluster, ClusterSpec};
use ferrolb_testkit::netns::{
    self,
    router::{self, Router, LAN_ROUTER_IP},
};
use ferrolb_testkit::{binary, kubectl, on_path, signals, strict, ApiBackend, TempDir, TestApi};

/// The demo Service (the same name as `examples/basic.yaml`).
const SERVICE: &str = "web";

/// Number of nodes (speakers).
const NODES: usize = 3;

const USAGE: &str = "\
FerroLB sandbox: kube-sim, the controller and three speakers on one machine.

Usage: cargo run --release --example sandbox [-- [--once] [--api sim|real]]

  --once       do everything, print it, clean up and exit (0 = every step worked);
               the same as FERROLB_SANDBOX_ONCE=1. Without it the sandbox keeps running
               until Ctrl-C so you can use kubectl against it.
  --api real   use a real kube-apiserver v1.32 and etcd instead of kube-sim (default: sim);
               built by tests/real-api/build.sh (needs Go; slow the first time only)

Environment:
  FERROLB_BIN        the ferrolb binary to run (default: found or built next to this example)
  FERROLB_REAL_API_DIR   where kube-apiserver and etcd are (default: tests/real-api/build.sh)
  CI=true / FERROLB_E2E=1   the data plane (root, ip, nft, arping, curl) is required";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let backend = match parse_args(&args) {
        Ok(b) => b,
        Err(bad) => {
            eprintln!("sandbox: {bad}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let once = args.iter().any(|a| a == "--once")
        || std::env::var("FERROLB_SANDBOX_ONCE").is_ok_and(|v| v == "1");

    signals::install();
    // The fixture reports failures by panicking (it was written for tests). Turn those into one
    // clear message; the unwinding that follows runs the drop guards, which remove everything.
    panic::set_hook(Box::new(|info| {
        if signals::stopped() {
            return; // a step that broke because Ctrl-C also hit our children: not news
        }
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!(" [{}:{}]", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("\nsandbox: step failed: {msg}{at}");
    }));

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(once, backend)));
    // Everything run() created has been dropped (and so removed) by now.
    match outcome {
        _ if signals::stopped() => {
            println!("\nInterrupted: everything the sandbox started has been stopped and removed.");
            ExitCode::from(130)
        }
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("\nsandbox FAILED: {e:#}");
            eprintln!("Everything the sandbox started has been stopped and removed.");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("\nsandbox FAILED (see the step above).");
            eprintln!("Everything the sandbox started has been stopped and removed.");
            ExitCode::FAILURE
        }
    }
}

/// The API backend `--api` names (default kube-sim); any other argument but `--once` is an
/// error naming it.
fn parse_args(args: &[String]) -> Result<ApiBackend, String> {
    let mut backend = ApiBackend::Sim;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "--once" => continue,
            "--api" => it.next().map(String::as_str),
            other => match other.strip_prefix("--api=") {
                Some(v) => Some(v),
                None => return Err(format!("unknown argument `{other}`")),
            },
        };
        backend = match value {
            Some("sim") => ApiBackend::Sim,
            Some("real") => ApiBackend::Real,
            Some(v) => return Err(format!("--api takes `sim` or `real`, not `{v}`")),
            None => return Err("--api needs a value: `sim` or `real`".into()),
        };
    }
    Ok(backend)
}

/// What the API server is called in the sandbox's output.
fn server_name(backend: ApiBackend) -> &'static str {
    match backend {
        ApiBackend::Sim => "kube-sim",
        ApiBackend::Real => "kube-apiserver",
    }
}

fn run(once: bool, backend: ApiBackend) -> Result<()> {
    println!("FerroLB sandbox: the whole system on one machine, no cluster needed.\n");
    let ferrolb = binary::locate_or_build()?;
    println!("ferrolb binary: {}", ferrolb.display());
    signals::check()?;
    // tcpdump, which the e2e tests also need, is not used here.
    match netns::check_prerequisites(&[]) {
        Ok(()) => data_plane(ferrolb, once, backend),
        Err(why) => {
            if strict() {
                bail!(
                    "the data plane must run under CI=true or FERROLB_E2E=1, but it cannot: {why}"
                );
            }
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "target/release/examples/sandbox".into());
            println!(
                "\nRunning WITHOUT THE DATA PLANE because: {why}.\n\
                 Without it there is no LAN to announce on, so this run shows allocation only:\n\
                 kube-sim and the controller, and a Service getting its EXTERNAL-IP.\n\
                 To also see ARP announcement, curl and failover, run it as root: sudo {exe}\n"
            );
            allocation_only(ferrolb, once, backend)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Full mode: the data plane on a namespace LAN
// ---------------------------------------------------------------------------------------------

fn data_plane(ferrolb: PathBuf, once: bool, backend: ApiBackend) -> Result<()> {
    let server = server_name(backend);
    step(
        1,
        &format!(
            "Starting {server}, a LAN of network namespaces, the controller and three speakers"
        ),
    );
    let t = Instant::now();
    let mut c = Cluster::start(ClusterSpec {
        nodes: NODES,
        ferrolb: ferrolb.clone(),
        backend,
        ..ClusterSpec::default()
    });
    signals::check()?;
    detail(&format!(
        "ready in {:.1} s: every speaker holds its Lease",
        secs(t)
    ));
    detail(&format!(
        "{server:<14} {} (root namespace; nodes reach it at {})",
        c.server.url(),
        c.api.url
    ));
    detail(&format!(
        "LAN            bridge {} in namespace {}",
        netns::GATEWAY_IP,
        c.lan.lan_ns()
    ));
    for h in c.lan.nodes() {
        detail(&format!(
            "{:<14} {} {}  namespace {}  (ferrolb speaker + an HTTP server answering its name)",
            h.name(),
            h.ip(),
            h.mac(),
            h.ns()
        ));
    }
    let client = c.lan.client();
    detail(&format!(
        "{:<14} {} {}  namespace {}  (curl and arping run here)",
        "client",
        client.ip(),
        client.mac(),
        client.ns()
    ));
    detail(&format!(
        "pool           {} (ConfigMap ferrolb-system/ferrolb-config)",
        cluster::POOL
    ));

    step(
        2,
        &format!("Creating Service default/{SERVICE} (type: LoadBalancer, port 80)"),
    );
    let t = Instant::now();
    let vip = c.create_service(SERVICE, json!({}));
    detail(&format!(
        "EXTERNAL-IP: {SERVICE} {vip} (written by the controller {} ms after the create)",
        t.elapsed().as_millis()
    ));
    // What kube-proxy would do on a real node: send VIP:80 to the Service's pods; here each
    // node's own HTTP server, which answers with the node's name.
    c.lan.add_vip_dnat(vip, 80);
    show_services(&c.rt, &c.client, c.server.kubeconfig_path());
    signals::check()?;

    step(3, &format!("Who announces {vip}? (arping from the client)"));
    let names: Vec<String> = (1..=NODES).map(|i| format!("node-{i}")).collect();
    let expected = ferrolb_core::election::winner(vip.into(), names.iter().map(String::as_str))
        .unwrap_or("?")
        .to_string();
    let owner = c
        .wait_announcer(vip, Duration::from_secs(15), |_| true)
        .ok_or_else(|| anyhow!("no node answers ARP for {vip}\n{}", c.speaker_logs()))?;
    detail(&format!(
        "{vip} is at {} = node-{owner} (the rendezvous-hash winner every speaker computes: {expected})",
        c.lan.node(owner).mac()
    ));
    signals::check()?;

    step(4, &format!("curl http://{vip}/ from the client"));
    let body = curl_until(&c, vip, Duration::from_secs(10), |_| true)
        .map_err(|e| anyhow!("curl http://{vip}/ never answered: {e}"))?;
    detail(&format!("curl http://{vip}/ -> {body}"));
    if body != format!("node-{owner}") {
        bail!("curl was answered by {body}, but node-{owner} answers ARP for {vip}");
    }
    signals::check()?;

    step(
        5,
        &format!("Failover: stopping node-{owner}'s speaker (SIGTERM)"),
    );
    let t = Instant::now();
    c.speaker(owner).term();
    let old = format!("node-{owner}");
    let new_body = curl_until(&c, vip, Duration::from_secs(20), |b| b != old)
        .map_err(|e| anyhow!("no other node took over {vip}: {e}\n{}", c.speaker_logs()))?;
    let switch = t.elapsed();
    println!(
        "  failover: curl http://{vip}/ -> {new_body}, {} ms after node-{owner}'s speaker got SIGTERM",
        switch.as_millis()
    );
    let new_owner = c
        .wait_announcer(vip, Duration::from_secs(5), |n| n != owner)
        .ok_or_else(|| anyhow!("after the failover no other node answers ARP for {vip}"))?;
    detail(&format!(
        "{vip} is now at {} = node-{new_owner}",
        c.lan.node(new_owner).mac()
    ));
    signals::check()?;

    step(6, &format!("Restarting node-{owner}'s speaker"));
    let t = Instant::now();
    c.restart_speaker(owner);
    let back = c.wait_announcer(vip, Duration::from_secs(20), |n| n == owner);
    match back {
        Some(_) => detail(&format!(
            "{vip} moved back to node-{owner} {:.1} s after the restart: the winner depends only \
             on which nodes are live, so a returning node gets exactly its own IPs back",
            secs(t)
        )),
        None => bail!(
            "{vip} did not move back to node-{owner} within 20 s of its speaker restarting\n{}",
            c.speaker_logs()
        ),
    }
    signals::check()?;

    // Kept until the end: dropping it stops BIRD and removes the router namespaces.
    let router = if on_path("bird") && on_path("birdc") {
        step(
            7,
            &format!("BGP: a router (BIRD) learns {vip} from the speakers"),
        );
        Some(bgp_step(&c, vip)?)
    } else {
        step(
            7,
            "BGP: skipped (install bird2 to see a router learn the route)",
        );
        None
    };
    signals::check()?;

    step(8, "What the cluster shows now");
    show_services(&c.rt, &c.client, c.server.kubeconfig_path());
    show_announcers(&c);
    show_events(&c.rt, &c.client);
    show_leases(c.server.kubeconfig_path());
    show_status(&ferrolb, c.server.kubeconfig_path());
    show_how_to_poke(c.server.kubeconfig_path(), Some((&c, vip)));
    if let Some(r) = &router {
        println!(
            "  birdc -s {} show route all   # the router's view",
            r.path("bird.ctl")
        );
    }

    if once {
        println!("\nDone (--once): cleaning up.");
        return Ok(());
    }
    println!(
        "\nThe sandbox keeps running; Services you create get an EXTERNAL-IP, and their ports\n\
         are forwarded on every node as kube-proxy would. Press Ctrl-C to stop and remove everything."
    );
    let mut programmed: BTreeSet<(Ipv4Addr, u16)> = BTreeSet::from([(vip, 80)]);
    while !signals::stopped() {
        forward_new_services(&c, &mut programmed);
        signals::sleep_unless_stopped(Duration::from_secs(1));
    }
    Ok(())
}

/// The router's AS and ours in the BGP step.
const ROUTER_ASN: u32 = 64513;
const OUR_ASN: u32 = 64512;

/// Puts a router namespace running BIRD on the LAN (and a client behind it), switches the pool
/// to `announce: [l2, bgp]` and shows the demo Service's IP becoming a kernel ECMP route via
/// every node. Returns the router so it lives as long as the sandbox.
fn bgp_step(c: &Cluster, vip: Ipv4Addr) -> Result<Router> {
    let t = Instant::now();
    let mut router = Router::on_lan(&c.lan);
    let far = router.add_far_client();
    let mut protocols = format!(
        "template bgp node {{ local {LAN_ROUTER_IP} as {ROUTER_ASN}; error wait time 1, 5; ipv4 {{ import all; export none; }}; }}\n"
    );
    for h in c.lan.nodes() {
        protocols.push_str(&format!(
            "protocol bgp {} from node {{ neighbor {} as {OUR_ASN}; }}\n",
            h.name().replace('-', "_"),
            h.ip()
        ));
        // The way back to the client behind the router.
        h.exec(
            "ip",
            &["route", "add", router::FAR_SUBNET, "via", LAN_ROUTER_IP],
            Duration::from_secs(5),
        )
        .map_err(|e| anyhow!("return route on {}: {e}", h.name()))?;
    }
    router.start_bird(LAN_ROUTER_IP, &protocols);
    detail(&format!(
        "router         {LAN_ROUTER_IP} (AS {ROUTER_ASN})  namespace {}  (BIRD 2, peering with every node)",
        router.ns()
    ));
    detail(&format!(
        "far client     {}  namespace {far}  (behind the router)",
        router::FAR_CLIENT_IP
    ));
    let config = format!(
        "pools:\n  - name: lan\n    addresses: [\"{}\"]\n    announce: [l2, bgp]\n\
         bgp:\n  myASN: {OUR_ASN}\n  peers:\n    - name: router\n      address: {LAN_ROUTER_IP}\n      asn: {ROUTER_ASN}\n      holdTime: 9s\n",
        cluster::POOL
    );
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "ferrolb-system");
    c.rt.block_on(api.patch(
        "ferrolb-config",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"config.yaml": config}})),
    ))
    .context("patch ConfigMap ferrolb-system/ferrolb-config")?;
    detail("pool lan now has announce: [l2, bgp]; bgp peer: the router");
    // BGP advertises a Cluster-policy Service only while it has a ready endpoint.
    let all: Vec<usize> = (1..=NODES).collect();
    c.set_endpoints(SERVICE, &all);
    let want: Vec<String> = c.lan.nodes().iter().map(|h| h.ip().to_string()).collect();
    let mut hops = Vec::new();
    let learned = cluster::poll(Duration::from_secs(20), || {
        hops = router.next_hops(&vip.to_string());
        hops == want
    });
    if !learned {
        bail!(
            "the router did not learn {vip} via every node (next hops {hops:?})\n{}\n{}",
            router.birdc("show protocols"),
            c.speaker_logs()
        );
    }
    let names: Vec<String> = hops
        .iter()
        .filter_map(|h| c.lan.nodes().iter().find(|n| n.ip().to_string() == *h))
        .map(|n| n.name().to_string())
        .collect();
    println!(
        "  BGP: the router's kernel route for {vip}: ECMP via {} ({:.1} s after the router started)",
        names.join(", "),
        secs(t)
    );
    println!(
        "  ip route show {vip}   (in the router's namespace)\n{}",
        indent(&router.kernel_route(&vip.to_string()))
    );
    println!(
        "  birdc show route {vip}/32\n{}",
        indent(&router.birdc(&format!("show route {vip}/32")))
    );
    // Many connections from one client spread over the nodes (the router hashes L4 ports).
    let mut answered = BTreeSet::new();
    for _ in 0..30 {
        if let Ok(body) = router::sh(&[
            "ip",
            "netns",
            "exec",
            &far,
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{vip}/"),
        ]) {
            answered.insert(body);
        }
        if answered.len() == NODES {
            break;
        }
    }
    if answered.is_empty() {
        bail!("curl http://{vip}/ from behind the router never answered");
    }
    let answered: Vec<String> = answered.into_iter().collect();
    println!(
        "  curl http://{vip}/ from behind the router, many connections -> {}",
        answered.join(", ")
    );
    Ok(router)
}

/// Curls the VIP from the client until a 2xx body satisfies `want` (last error on timeout).
fn curl_until(
    c: &Cluster,
    vip: Ipv4Addr,
    timeout: Duration,
    want: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let url = format!("http://{vip}/");
    let mut last = Err("no attempt".to_string());
    while Instant::now() < deadline && !signals::stopped() {
        // A short timeout: during a failover an attempt that went to the old MAC is abandoned
        // quickly, so the measured switch time stays close to the real one.
        last = c.lan.client().curl_within(&url, Duration::from_millis(300));
        if let Ok(body) = &last {
            if want(body) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match last {
        Ok(body) => Err(format!("still answered by {body}")),
        Err(e) => Err(e),
    }
}

/// The kube-proxy stand-in for Services created while the sandbox runs: DNATs each new
/// ingress IP and port to the nodes' HTTP servers, so `curl` from the client works for them.
fn forward_new_services(c: &Cluster, done: &mut BTreeSet<(Ipv4Addr, u16)>) {
    let api: Api<Service> = Api::all(c.client.clone());
    let Ok(list) = c.rt.block_on(api.list(&ListParams::default())) else {
        return;
    };
    for svc in list.items {
        let name = format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or("default"),
            svc.metadata.name.as_deref().unwrap_or("?")
        );
        let ips: Vec<Ipv4Addr> = svc
            .status
            .and_then(|s| s.load_balancer?.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip?.parse().ok())
            .collect();
        let ports: Vec<u16> = svc
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .iter()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        for ip in ips {
            for &port in &ports {
                if done.insert((ip, port)) {
                    c.lan.add_vip_dnat(ip, port);
                    println!(
                        "  {name}: EXTERNAL-IP {ip}; forwarding {ip}:{port} to the nodes' HTTP servers"
                    );
                }
            }
        }
    }
}

fn show_announcers(c: &Cluster) {
    println!("\n  Who answers ARP for each EXTERNAL-IP (arping from the client):");
    let api: Api<Service> = Api::all(c.client.clone());
    let services =
        c.rt.block_on(api.list(&ListParams::default()))
            .map(|l| l.items)
            .unwrap_or_default();
    for svc in services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        for ingress in svc
            .status
            .and_then(|s| s.load_balancer?.ingress)
            .unwrap_or_default()
        {
            let Some(ip) = ingress.ip.and_then(|i| i.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let who = match c.lan.client().arping_mac(ip) {
                Some(mac) => match c.node_of_mac(mac) {
                    Some(n) => format!("{mac} = node-{n}"),
                    None => format!("{mac} (not a node!)"),
                },
                None => "nobody".to_string(),
            };
            println!("    {name:<12} {ip:<15} {who}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation-only mode: kube-sim and the controller
// ---------------------------------------------------------------------------------------------

fn allocation_only(ferrolb: PathBuf, once: bool, backend: ApiBackend) -> Result<()> {
    let server = server_name(backend);
    step(1, &format!("Starting {server} and the controller"));
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // Field order = drop order: the controller stops before the API server, then the files go.
    struct Parts {
        controller: cluster::RootChild,
        client: kube::Client,
        sim: TestApi,
        dir: TempDir,
    }
    let dir = TempDir::new("ferrolb-sandbox").context("create a temporary directory")?;
    let sim = rt
        .block_on(TestApi::start(backend))
        .with_context(|| format!("start {server}"))?;
    let client = {
        let _inside = rt.enter(); // the client spawns its worker on the current runtime
        sim.client().context("kube client")?
    };
    let spec = ClusterSpec {
        nodes: NODES,
        ferrolb: ferrolb.clone(),
        ..ClusterSpec::default()
    };
    rt.block_on(cluster::seed(&client, &spec))
        .context("create the ferrolb-system namespace, pool ConfigMap and Nodes")?;
    let controller = cluster::spawn_controller(
        &ferrolb,
        sim.kubeconfig_path(),
        dir.path().join("controller.log"),
    )?;
    let mut p = Parts {
        controller,
        client,
        sim,
        dir,
    };
    detail(&format!("ready in {:.1} s", secs(t)));
    detail(&format!("{server:<14} {}", p.sim.url()));
    detail(&format!(
        "controller     pid {} (log {})",
        p.controller.pid(),
        p.dir.path().join("controller.log").display()
    ));
    detail(&format!(
        "pool           {} (ConfigMap ferrolb-system/ferrolb-config)",
        cluster::POOL
    ));
    detail(
        "nodes          node-1..node-3 exist as API objects only: no speakers run without the LAN",
    );
    signals::check()?;

    step(
        2,
        &format!("Creating Service default/{SERVICE} (type: LoadBalancer, port 80)"),
    );
    let t = Instant::now();
    let api: Api<Service> = Api::namespaced(p.client.clone(), "default");
    let svc = json!({"metadata": {"name": SERVICE, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": SERVICE},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    let svc: Service = serde_json::from_value(svc).context("service literal")?;
    rt.block_on(api.create(&PostParams::default(), &svc))
        .context("create the Service")?;
    let mut vip = None;
    cluster::poll(Duration::from_secs(15), || {
        vip = rt
            .block_on(api.get(SERVICE))
            .ok()
            .and_then(|s| s.status?.load_balancer?.ingress?.first()?.ip.clone());
        vip.is_some() || signals::stopped() || p.controller.exited()
    });
    signals::check()?;
    let Some(vip) = vip else {
        bail!(
            "the controller wrote no EXTERNAL-IP for {SERVICE} within 15 s; its log:\n{}",
            p.controller.log()
        );
    };
    detail(&format!(
        "EXTERNAL-IP: {SERVICE} {vip} (written by the controller {} ms after the create)",
        t.elapsed().as_millis()
    ));
    show_services(&rt, &p.client, p.sim.kubeconfig_path());

    step(3, "What the cluster shows now");
    show_events(&rt, &p.client);
    show_status(&ferrolb, p.sim.kubeconfig_path());
    show_how_to_poke(p.sim.kubeconfig_path(), None);

    if once {
        println!("\nDone (--once): cleaning up.");
        return Ok(());
    }
    println!(
        "\nThe sandbox keeps running; Services you create get an EXTERNAL-IP (no node announces\n\
         it without the data plane). Press Ctrl-C to stop and remove everything."
    );
    while !signals::stopped() {
        if p.controller.exited() {
            bail!("the controller exited; its log:\n{}", p.controller.log());
        }
        signals::sleep_unless_stopped(Duration::from_secs(1));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Showing what a user sees
// ---------------------------------------------------------------------------------------------

fn step(n: usize, what: &str) {
    println!("\n[{n}] {what}");
}

fn detail(what: &str) {
    println!("  {what}");
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kubectl get svc` for real, or the same table built from the API when kubectl is missing.
fn show_services(rt: &tokio::runtime::Runtime, client: &kube::Client, kubeconfig: &Path) {
    println!("\n  $ kubectl get svc");
    match kubectl::run(kubeconfig, &["get", "svc"]) {
        Ok(out) => println!("{}", indent(out.trim_end())),
        Err(why) => {
            println!("    ({why}; the same table, from the API:)");
            let api: Api<Service> = Api::namespaced(client.clone(), "default");
            let services = rt
                .block_on(api.list(&ListParams::default()))
                .map(|l| l.items)
                .unwrap_or_default();
            let table = kubectl::service_table(services);
            println!("{}", indent(table.trim_end()));
        }
    }
}

/// The Events on the demo Service: IPAllocated from the controller, Announcing from speakers.
fn show_events(rt: &tokio::runtime::Runtime, client: &kube::Client) {
    println!("\n  Events on default/{SERVICE} (kubectl describe svc {SERVICE} shows them too):");
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={SERVICE}"));
    match rt.block_on(api.list(&lp)) {
        Ok(list) if list.items.is_empty() => println!("    (none)"),
        Ok(list) => {
            for e in list.items {
                println!(
                    "    {:<8} {:<14} {}",
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                );
            }
        }
        Err(e) => println!("    (cannot list Events: {e})"),
    }
}

fn show_leases(kubeconfig: &Path) {
    println!("\n  $ kubectl get leases -n ferrolb-system   (one per live speaker)");
    match kubectl::run(kubeconfig, &["get", "leases", "-n", "ferrolb-system"]) {
        Ok(out) => println!("{}", indent(out.trim_end())),
        Err(why) => println!("    ({why})"),
    }
}

/// `ferrolb status -o wide`: pools, who announces what, and what is wrong, in one table.
fn show_status(ferrolb: &Path, kubeconfig: &Path) {
    println!("\n  $ ferrolb status -o wide");
    let out = std::process::Command::new(ferrolb)
        .arg("status")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-o", "wide"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            println!("{}", indent(String::from_utf8_lossy(&o.stdout).trim_end()))
        }
        Ok(o) => println!(
            "    (ferrolb status failed: {})",
            String::from_utf8_lossy(&o.stderr).trim_end()
        ),
        Err(e) => println!("    (cannot run {}: {e})", ferrolb.display()),
    }
}

fn show_how_to_poke(kubeconfig: &Path, lan: Option<(&Cluster, Ipv4Addr)>) {
    let k = kubeconfig.display();
    println!("\nPoke at it from another terminal (kubeconfig: {k}):");
    println!("  kubectl --kubeconfig {k} get svc");
    println!("  kubectl --kubeconfig {k} describe svc {SERVICE}");
    println!("  kubectl --kubeconfig {k} get events");
    println!("  kubectl --kubeconfig {k} get leases -n ferrolb-system");
    println!("  ferrolb status --kubeconfig {k} -o wide   # or: kubectl ferrolb status (symlink kubectl-ferrolb)");
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/basic.yaml");
    println!(
        "  kubectl --kubeconfig {k} apply -f {}   # more samples next to it (rename the Service first: {SERVICE} exists)",
        basic.display()
    );
    if let Some((c, vip)) = lan {
        let cl = c.lan.client().ns();
        println!("  ip netns exec {cl} curl http://{vip}/");
        println!("  ip netns exec {cl} arping -c 3 -i eth0 {vip}");
        println!(
            "  ip netns exec {cl} ip neigh   # the client's ARP cache: which MAC each IP is at"
        );
        println!("  logs: {}", c.lan.log_dir().display());
    }
}
