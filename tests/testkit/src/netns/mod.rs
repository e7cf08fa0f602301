//! End-to-end test harness: a small real Ethernet LAN built from Linux network namespaces.
//!
//! ```text
//!  namespace flbh-<pid>-<seq>-lan                 node namespaces flbh-<pid>-<seq>-n<i>
//!  ┌──────────────────────────────────┐          ┌──────────────────────────────────────┐
//!  │ br0 198.51.100.1/24              │  veth    │ eth0 02:fe:00:00:01:<i>               │
//!  │     02:fe:00:00:00:01            ├─p<i>─────┤      198.51.100.(10+i)/24             │
//!  │     kube-sim relay :<port>       │          │      203.0.113.(200+i)/24 (VIP subnet)│
//!  │ nft bridge table (cut_node)      │          │ HTTP :8080 → "node-<i>"; nft DNAT     │
//!  │                                  │  veth    ├──────────────────────────────────────┤
//!  │                                  ├─pc───────┤ client flbh-<pid>-<seq>-cl: eth0      │
//!  └──────────────────────────────────┘          │ 02:fe:00:00:02:00 198.51.100.200/24   │
//!                                                │ route 203.0.113.0/24 dev eth0 (on-link)│
//!                                                └──────────────────────────────────────┘
//! ```
//!
//! Nothing is added to the root namespace: kube-sim keeps listening on the root namespace's
//! loopback, and a TCP relay owned by the test process listens on 198.51.100.1 inside the LAN
//! and forwards there (see [`Lan::expose_api`]). That is what lets several LANs, each using the
//! same 198.51.100.0/24, run at once in one or several test processes without route clashes.
//!
//! Nodes are numbered from 1: node `i` is named `node-i`, has address `198.51.100.(10+i)` and
//! MAC `02:fe:00:00:01:<i>`. Nodes also carry `203.0.113.(200+i)/24`, so a speaker sees VIPs in
//! `203.0.113.0/24` (use `203.0.113.1`–`.199`) as belonging to its interface's subnet; the
//! client routes that /24 on-link, so it ARPs for a VIP exactly as a host on a real LAN does.
//!
//! All helpers block (they run `ip`, `arping`, `curl`...). From async tests use a multi-thread
//! runtime (`#[tokio::test(flavor = "multi_thread")]`) or `spawn_blocking`, or kube-sim, which
//! runs on the test's runtime, stalls while a helper waits.
//!
//! Usage from a test file `tests/<name>.rs`:
//! ```ignore
//! use ferrolb_testkit::netns;
//! #[test]
//! fn something() {
//!     let Ok(()) = netns::require() else { return };
//!     let lan = netns::Lan::builder().nodes(3).build();
//!     assert_eq!(lan.client().arping_mac(lan.node(1).ip()), Some(lan.node(1).mac()));
//! }
//! ```

// The harness needs libc (setns, kill, geteuid) where std has no safe equivalent; every
// unsafe block says why it is sound.
#![allow(unsafe_code)]

pub mod child;
pub mod cmd;
pub mod dual_stack;
pub mod fake_peer;
pub mod frames;
pub mod inject;
pub mod ndp;
pub mod nsthread;
pub mod pcap;
pub mod router;
pub mod serve;
pub mod tools;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use child::NsChild;
pub use cmd::{CmdError, CmdOutput};
pub use frames::{Frame, FrameCapture};
pub use nsthread::NsThread;
pub use pcap::{ArpCapture, ArpOp, ArpPacket};
pub use tools::{
    body_changes, longest_outage, outages, ArpSample, ArpSampler, CurlSample, CurlSampler, MacAddr,
    Outage,
};

use serve::Server;
use tools::Prober;

/// Prefix of every namespace this harness creates; the stale-resource sweeper only ever
/// touches names that start with it.
pub const PREFIX: &str = "flbh-";

/// The LAN's subnet.
pub const LAN_PREFIX_LEN: u8 = 24;

/// The bridge's own address, where [`Lan::expose_api`] relays kube-sim.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// The client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);

/// The client's MAC.
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x02, 0x00]);

/// The bridge's MAC.
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0x00, 0x01]);

/// The port each node's stand-in pod listens on.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Name of the LAN interface in every node and in the client.
pub const IFNAME: &str = "eth0";

/// The address of node `i` (1-based).
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, (10 + i) as u8)
}

/// The VIP-subnet address of node `i` (1-based), so VIPs in 203.0.113.0/24 are on its link.
pub fn node_vip_subnet_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, (200 + i) as u8)
}

/// The MAC of node `i` (1-based).
pub fn node_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0xfe, 0, 0, 0x01, i as u8])
}

/// The IPv6 prefix [`Lan::add_ipv6`] puts on the LAN (documentation space, RFC 3849).
pub const LAN6_PREFIX_LEN: u8 = 64;

/// The client's IPv6 address after [`Lan::add_ipv6`].
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

/// The IPv6 address of node `i` (1-based) after [`Lan::add_ipv6`]: `2001:db8::1:<i>`. IPv6
/// VIPs for tests are `2001:db8::100`–`2001:db8::1ff`, on-link for every host.
pub fn node_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i as u16)
}

/// [`require`], plus `ndisc6` (Debian package `ndisc6`) for the IPv6 Neighbor Discovery tests;
/// same skip-or-fail rules.
pub fn require_ipv6() -> Result<(), Skipped> {
    require()?;
    crate::require("netns IPv6 end-to-end test", &[("ndisc6", "ndisc6")])
}

/// Why the end-to-end prerequisites are not met (the test should return early).
pub use crate::Skipped;

/// Checks that this machine can run netns tests: root, `ip`, `nft`, Thomas Habets' `arping`,
/// `curl`, `tcpdump`, and that a network namespace can really be created.
///
/// On failure: panics listing what is missing when `CI=true` or `FERROLB_E2E=1`, otherwise
/// prints `SKIPPED: <reason>` to stderr and returns `Err`, so the test returns early.
pub fn require() -> Result<(), Skipped> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let verdict = CHECK.get_or_init(|| check_prerequisites(&[("tcpdump", "tcpdump")]));
    match verdict {
        Ok(()) => Ok(()),
        Err(why) => Err(crate::skip_or_fail("netns end-to-end test", why)),
    }
}

/// What a LAN with speakers on it needs: root, `ip`, `nft`, Thomas Habets' `arping`, `curl`,
/// every `(tool, Debian package)` in `extra_tools`, and a network namespace that can really be
/// created. Everything missing is listed at once, so one run tells a person all they must fix.
/// The tests add `tcpdump` (through [`require`]); the sandbox needs nothing more.
pub fn check_prerequisites(extra_tools: &[(&str, &str)]) -> Result<(), String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) cannot fail and has no side effects.
    if unsafe { libc::geteuid() } != 0 {
        missing.push(
            "not running as root (network namespaces, nftables and raw sockets need it)"
                .to_string(),
        );
    }
    let base = [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("arping", "arping"),
        ("curl", "curl"),
    ];
    for (tool, pkg) in base.iter().chain(extra_tools) {
        if !crate::on_path(tool) {
            missing.push(format!("`{tool}` is not installed (apt-get install {pkg})"));
        }
    }
    if crate::on_path("arping") {
        // iputils' arping has other flags (-C and fractional -w do not exist there).
        let help = cmd::output_within(Command::new("arping").arg("--help"), Duration::from_secs(5))
            .map(|o| o.stdout + &o.stderr)
            .unwrap_or_default();
        if !help.contains("Habets") {
            missing.push(
                "`arping` is iputils' arping, not Thomas Habets' (Debian package `arping`)"
                    .to_string(),
            );
        }
    }
    if missing.is_empty() {
        // Root inside a container may still lack CAP_SYS_ADMIN: try it for real.
        let probe = format!("{PREFIX}{}-probe", std::process::id());
        match cmd::run("ip", &["netns", "add", &probe]) {
            Ok(_) => {
                let _ = cmd::run("ip", &["netns", "del", &probe]);
            }
            Err(e) => missing.push(format!("cannot create network namespaces ({e})")),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

/// The `lladdr` of the one entry `ip <args>` (an `ip neigh show to ...`) prints in `ns`, if any.
fn neighbour_mac(ns: &str, args: &[&str]) -> Option<MacAddr> {
    let out = ip_n(ns, args).unwrap_or_else(|e| panic!("netns harness: {e}"));
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().and_then(|m| m.parse().ok());
        }
    }
    None
}

/// Deletes namespaces left by earlier runs of this harness that crashed: only names with
/// [`PREFIX`] whose creating process (the pid in the name) is gone. Processes still running
/// inside them are killed first.
pub fn sweep_stale() {
    let Ok(list) = cmd::run("ip", &["netns", "list"]) else {
        return;
    };
    let me = std::process::id();
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("netns harness: removing stale namespace {name} (pid {pid} is gone)");
        kill_all_in(name);
        let _ = cmd::run("ip", &["netns", "del", name]);
    }
}

fn kill_all_in(ns: &str) {
    if let Ok(pids) = cmd::run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a pid that `ip netns pids` just listed in our own namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// One machine on the LAN: a node or the client.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    ns: String,
    port: String,
    ip: Ipv4Addr,
    mac: MacAddr,
    log_dir: PathBuf,
    labels: Arc<AtomicUsize>,
}

impl Host {
    /// `node-<i>` or `client`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `ip netns` name of its namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Its LAN interface (`eth0`).
    pub fn ifname(&self) -> &str {
        IFNAME
    }

    /// Its LAN address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its interface MAC.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    fn label(&self, what: &str) -> String {
        let n = self.labels.fetch_add(1, Ordering::Relaxed);
        format!("{}-{what}-{n}", self.name)
    }

    fn prober(&self) -> Prober {
        Prober {
            ns: self.ns.clone(),
            ifname: IFNAME.to_string(),
            ip: self.ip,
        }
    }

    /// Starts `program args...` inside this host's namespace (`ip netns exec`), with output
    /// captured to files in the LAN's log directory; killed when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> NsChild {
        let base = Path::new(program)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "proc".to_string());
        NsChild::spawn(&self.ns, &self.label(&base), &self.log_dir, program, args)
            .unwrap_or_else(|e| panic!("netns harness: spawn in {}: {e}", self.ns))
    }

    /// Runs `program args...` inside this namespace to completion (killed at `timeout`).
    pub fn exec(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<CmdOutput, CmdError> {
        cmd::output_within(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, program])
                .args(args),
            timeout,
        )
    }

    /// Who answers ARP for `ip` right now: the first MAC replying to one request within
    /// [`tools::ARPING_WINDOW`], or `None`.
    pub fn arping_mac(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.prober()
            .arping_first(ip, tools::ARPING_WINDOW)
            .unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// Every MAC answering one ARP request for `ip` within `window` (two = two owners).
    pub fn arping_macs(&self, ip: Ipv4Addr, window: Duration) -> Vec<MacAddr> {
        self.prober()
            .arping_all(ip, window)
            .unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// `GET url` with curl from this namespace, [`tools::CURL_TIMEOUT`] overall: the body on
    /// HTTP 2xx, otherwise why not.
    pub fn curl(&self, url: &str) -> Result<String, String> {
        self.prober().curl(url, tools::CURL_TIMEOUT)
    }

    /// Like [`Host::curl`] with an explicit timeout.
    pub fn curl_within(&self, url: &str, timeout: Duration) -> Result<String, String> {
        self.prober().curl(url, timeout)
    }

    /// Starts tcpdump capturing ARP on this host's interface; returns once it is listening.
    pub fn capture_arp(&self) -> ArpCapture {
        ArpCapture::start(&self.ns, IFNAME, &self.log_dir, &self.label("tcpdump"))
            .unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// Starts tcpdump capturing ARP on interface `ifname` of this host (e.g. a side link made
    /// by [`Lan::add_side_link`]); returns once it is listening.
    pub fn capture_arp_on(&self, ifname: &str) -> ArpCapture {
        ArpCapture::start(&self.ns, ifname, &self.log_dir, &self.label("tcpdump"))
            .unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// A raw socket on this host's interface `ifname`, to put hand-made frames on the wire.
    pub fn injector(&self, ifname: &str) -> inject::Injector {
        inject::Injector::open(&self.ns, ifname, Duration::from_millis(100))
            .unwrap_or_else(|e| panic!("netns harness: raw socket on {ifname} in {}: {e}", self.ns))
    }

    /// Curls `url` every `every` in the background (each probe with `timeout`), recording
    /// (time, body or error) for measuring failover gaps.
    pub fn curl_sampler(&self, url: &str, every: Duration, timeout: Duration) -> CurlSampler {
        let p = self.prober();
        let url = url.to_string();
        tools::Sampler::start(every, move |at| {
            let t = Instant::now();
            let result = p.curl(&url, timeout);
            CurlSample {
                at,
                took: t.elapsed(),
                result,
            }
        })
    }

    /// ARP-pings `ip` every `every` in the background, each request listening `window` for
    /// every answer, recording which MACs answered (to catch two owners at once).
    pub fn arp_sampler(&self, ip: Ipv4Addr, every: Duration, window: Duration) -> ArpSampler {
        let p = self.prober();
        tools::Sampler::start(every, move |at| {
            // A failed arping run counts as "nobody answered"; the sample stays honest because
            // a broken tool would show up as no answers at all, failing the caller's checks.
            let macs = p.arping_all(ip, window).unwrap_or_default();
            ArpSample { at, macs }
        })
    }
}

impl Host {
    /// Starts tcpdump on this host's LAN interface with BPF filter `filter` (e.g.
    /// `"icmp6 and ip6[40] == 136"`); returns once it is listening.
    pub fn capture(&self, filter: &str) -> FrameCapture {
        FrameCapture::start(
            &self.ns,
            IFNAME,
            &self.log_dir,
            &self.label("tcpdump"),
            filter,
        )
        .unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// A thread inside this host's namespace, for code under test that opens sockets there.
    pub fn ns_thread(&self) -> NsThread {
        NsThread::enter(&self.ns).unwrap_or_else(|e| panic!("netns harness: {e}"))
    }

    /// The IPv6 multicast groups joined on this host's LAN interface (`ip -6 maddr show`).
    pub fn ipv6_groups(&self) -> Vec<Ipv6Addr> {
        let out = ip_n(&self.ns, &["-6", "maddr", "show", "dev", IFNAME])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("inet6")).then(|| w.next()?.parse().ok())?
            })
            .collect()
    }

    /// Who answers Neighbor Discovery for `ip` right now, asked with `ndisc6 -q` (one
    /// solicitation to the solicited-node group, up to `retries` tries, 500 ms each): the MAC
    /// of the first advertisement, or `None`.
    pub fn ndisc6_mac(&self, ip: Ipv6Addr, retries: u32) -> Option<MacAddr> {
        let ip_s = ip.to_string();
        let r = retries.to_string();
        let out = self
            .exec(
                "ndisc6",
                &["-q", "-n", "-r", &r, "-w", "500", &ip_s, IFNAME],
                Duration::from_secs(u64::from(retries) + 5),
            )
            .unwrap_or_else(|e| panic!("netns harness: ndisc6 in {}: {e}", self.ns));
        out.stdout.trim().to_ascii_lowercase().parse().ok()
    }

    /// The MAC this host's kernel has for IPv6 neighbour `ip`, if any.
    pub fn neighbour6(&self, ip: Ipv6Addr) -> Option<MacAddr> {
        neighbour_mac(
            &self.ns,
            &["-6", "neigh", "show", "to", &ip.to_string(), "dev", IFNAME],
        )
    }

    /// Sets this host's neighbour entry for IPv6 `ip` to `mac` in state STALE, as if learned
    /// long ago: an advertisement with the override flag must replace it, one without may not.
    pub fn set_stale_neighbour6(&self, ip: Ipv6Addr, mac: MacAddr) {
        ip_n(
            &self.ns,
            &[
                "-6",
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &mac.to_string(),
                "dev",
                IFNAME,
                "nud",
                "stale",
            ],
        )
        .unwrap_or_else(|e| panic!("netns harness: {e}"));
    }
}

/// How kube-sim is reached from the LAN, made by [`Lan::expose_api`].
#[derive(Debug, Clone)]
pub struct ApiEndpoint {
    /// The relay's address on the LAN (198.51.100.1:<port>).
    pub addr: SocketAddr,
    /// `http://198.51.100.1:<port>` (`https` for a real API server).
    pub url: String,
    /// A kubeconfig pointing at `url`, for `ferrolb speaker --kubeconfig`.
    pub kubeconfig: PathBuf,
}

/// Builds a [`Lan`].
#[derive(Debug, Clone)]
pub struct LanBuilder {
    nodes: usize,
    vip_subnet: bool,
    http_port: u16,
}

impl LanBuilder {
    /// How many node namespaces (1..=50).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Whether nodes also get `203.0.113.(200+i)/24` (default true), so speakers see VIPs as
    /// on-link.
    pub fn vip_subnet(mut self, on: bool) -> Self {
        self.vip_subnet = on;
        self
    }

    /// The stand-in pod's port on every node (default 8080).
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = port;
        self
    }

    /// Creates the namespaces, links, addresses, nftables tables and HTTP servers. Panics
    /// naming the failed command; whatever was already created is removed by the unwinding.
    pub fn build(self) -> Lan {
        assert!(
            (1..=50).contains(&self.nodes),
            "netns harness: 1..=50 nodes, not {}",
            self.nodes
        );
        static SWEEP: OnceLock<()> = OnceLock::new();
        SWEEP.get_or_init(sweep_stale);
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{PREFIX}{}-{seq}", std::process::id());
        let log_dir = std::env::temp_dir().join(&id);
        // A leftover directory from a pid reused by an earlier run is just replaced.
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir)
            .unwrap_or_else(|e| panic!("netns harness: create {}: {e}", log_dir.display()));
        let labels = Arc::new(AtomicUsize::new(0));
        let host = |name: String, ns: String, port: String, ip, mac| Host {
            name,
            ns,
            port,
            ip,
            mac,
            log_dir: log_dir.clone(),
            labels: labels.clone(),
        };
        let nodes = (1..=self.nodes)
            .map(|i| {
                host(
                    format!("node-{i}"),
                    format!("{id}-n{i}"),
                    format!("p{i}"),
                    node_ip(i),
                    node_mac(i),
                )
            })
            .collect();
        let client = host(
            "client".to_string(),
            format!("{id}-cl"),
            "pc".to_string(),
            CLIENT_IP,
            CLIENT_MAC,
        );
        let mut lan = Lan {
            lan_ns: format!("{id}-lan"),
            id,
            nodes,
            client,
            log_dir,
            http_port: self.http_port,
            created: Mutex::new(Vec::new()),
            servers: Mutex::new(Vec::new()),
        };
        let t0 = Instant::now();
        lan.setup(self.vip_subnet)
            .unwrap_or_else(|e| panic!("netns harness: building {}: {e}", lan.id));
        lan.wait_ports_up(Duration::from_secs(5));
        if std::env::var_os("FERROLB_E2E_VERBOSE").is_some() {
            eprintln!("netns harness: {} built in {:?}", lan.id, t0.elapsed());
        }
        lan
    }
}

/// A LAN of node namespaces and a client around a bridge; everything is removed on drop.
pub struct Lan {
    id: String,
    lan_ns: String,
    nodes: Vec<Host>,
    client: Host,
    log_dir: PathBuf,
    http_port: u16,
    created: Mutex<Vec<String>>,
    servers: Mutex<Vec<Server>>,
}

fn ip_n(ns: &str, args: &[&str]) -> Result<String, CmdError> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    cmd::run("ip", &full)
}

impl Lan {
    /// A builder with 3 nodes, the VIP subnet on, and HTTP on 8080.
    pub fn builder() -> LanBuilder {
        LanBuilder {
            nodes: 3,
            vip_subnet: true,
            http_port: DEFAULT_HTTP_PORT,
        }
    }

    /// The unique name stem of this LAN (`flbh-<pid>-<seq>`); every namespace starts with it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace holding the bridge.
    pub fn lan_ns(&self) -> &str {
        &self.lan_ns
    }

    /// Where process logs, pcaps and kubeconfigs go (kept when a test panics).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Node `i`, counting from 1. Panics when out of range.
    pub fn node(&self, i: usize) -> &Host {
        assert!(
            (1..=self.nodes.len()).contains(&i),
            "netns harness: node {i} does not exist; nodes are 1..={}",
            self.nodes.len()
        );
        &self.nodes[i - 1]
    }

    /// All nodes, node 1 first.
    pub fn nodes(&self) -> &[Host] {
        &self.nodes
    }

    /// The client.
    pub fn client(&self) -> &Host {
        &self.client
    }

    fn add_ns(&self, name: &str) -> Result<(), CmdError> {
        cmd::run("ip", &["netns", "add", name])?;
        if let Ok(mut c) = self.created.lock() {
            c.push(name.to_string());
        }
        Ok(())
    }

    fn setup(&mut self, vip_subnet: bool) -> Result<(), Box<dyn std::error::Error>> {
        let lan = self.lan_ns.clone();
        self.add_ns(&lan)?;
        ip_n(&lan, &["link", "set", "lo", "up"])?;
        ip_n(
            &lan,
            &[
                "link",
                "add",
                "br0",
                "address",
                &GATEWAY_MAC.to_string(),
                "type",
                "bridge",
                "stp_state",
                "0",
            ],
        )?;
        let gw = format!("{GATEWAY_IP}/{LAN_PREFIX_LEN}");
        ip_n(&lan, &["addr", "add", &gw, "dev", "br0"])?;
        ip_n(&lan, &["link", "set", "br0", "up"])?;
        // cut_node() puts a port's name in this set: frames from and to it are dropped on the
        // bridge while the node's own link stays up, i.e. a silent partition.
        cmd::nft_script(
            &lan,
            "table bridge flbh {\n\
               set cut { type ifname; }\n\
               chain pre { type filter hook prerouting priority 0; policy accept; iifname @cut drop; }\n\
               chain post { type filter hook postrouting priority 0; policy accept; oifname @cut drop; }\n\
             }\n",
        )?;
        let hosts: Vec<(Host, bool)> = self
            .nodes
            .iter()
            .map(|h| (h.clone(), true))
            .chain([(self.client.clone(), false)])
            .collect();
        for (h, is_node) in &hosts {
            self.add_ns(&h.ns)?;
            // Create the pair inside the LAN namespace with the peer born in the host's
            // namespace, so no interface ever appears in the root namespace.
            ip_n(
                &lan,
                &[
                    "link", "add", &h.port, "type", "veth", "peer", "name", IFNAME, "netns", &h.ns,
                ],
            )?;
            ip_n(
                &h.ns,
                &["link", "set", IFNAME, "address", &h.mac.to_string()],
            )?;
            let addr = format!("{}/{LAN_PREFIX_LEN}", h.ip);
            ip_n(&h.ns, &["addr", "add", &addr, "dev", IFNAME])?;
            if *is_node && vip_subnet {
                let i = usize::from(h.ip.octets()[3]) - 10;
                let extra = format!("{}/24", node_vip_subnet_ip(i));
                ip_n(&h.ns, &["addr", "add", &extra, "dev", IFNAME])?;
            }
            ip_n(&h.ns, &["link", "set", "lo", "up"])?;
            ip_n(&h.ns, &["link", "set", IFNAME, "up"])?;
            ip_n(&lan, &["link", "set", &h.port, "master", "br0", "up"])?;
            if *is_node {
                // `nat` stands in for kube-proxy (add_vip_dnat); `flbh` filter chains are where
                // block_api() drops traffic to and from the API address.
                cmd::nft_script(
                    &h.ns,
                    "table ip nat {\n\
                       chain prerouting { type nat hook prerouting priority -100; policy accept; }\n\
                       chain output { type nat hook output priority -100; policy accept; }\n\
                     }\n\
                     table inet flbh {\n\
                       chain in { type filter hook input priority 0; policy accept; }\n\
                       chain out { type filter hook output priority 0; policy accept; }\n\
                     }\n",
                )?;
                let server = serve::http_name_server(&h.ns, self.http_port, &h.name)?;
                if let Ok(mut s) = self.servers.lock() {
                    s.push(server);
                }
            } else {
                // VIPs are on-link for the client: it ARPs for them like a host on the LAN.
                ip_n(&h.ns, &["route", "add", "203.0.113.0/24", "dev", IFNAME])?;
            }
        }
        Ok(())
    }

    fn wait_ports_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let ports: Vec<&str> = self
            .nodes
            .iter()
            .chain([&self.client])
            .map(|h| h.port.as_str())
            .collect();
        loop {
            let out = ip_n(&self.lan_ns, &["-o", "link", "show"]).unwrap_or_default();
            let up = ports.iter().all(|p| {
                out.lines()
                    .any(|l| l.contains(&format!(" {p}@")) && l.contains("state UP"))
            });
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "netns harness: bridge ports of {} not up within {timeout:?}:\n{out}",
                self.id
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes kube-sim listening at `target` (root namespace, usually `127.0.0.1:<port>`)
    /// reachable from every node at `198.51.100.1:<port>`, and writes a kubeconfig for it.
    pub fn expose_api(&self, target: SocketAddr) -> ApiEndpoint {
        self.expose_api_with(target, "http", |relay| {
            kube_sim::kubeconfig_yaml(&format!("http://{relay}"))
        })
    }

    /// Like [`Lan::expose_api`] for any API server: `scheme` is the server's (`https` for a
    /// real kube-apiserver, whose certificate covers [`GATEWAY_IP`]), and `kubeconfig` writes
    /// the kubeconfig text for the relay's address.
    pub fn expose_api_with(
        &self,
        target: SocketAddr,
        scheme: &str,
        kubeconfig: impl FnOnce(SocketAddr) -> String,
    ) -> ApiEndpoint {
        let relay = serve::tcp_relay(&self.lan_ns, SocketAddr::from((GATEWAY_IP, 0)), target)
            .unwrap_or_else(|e| panic!("netns harness: API relay in {}: {e}", self.lan_ns));
        let addr = relay.addr();
        if let Ok(mut s) = self.servers.lock() {
            s.push(relay);
        }
        let url = format!("{scheme}://{addr}");
        let path = self.log_dir.join(format!("kubeconfig-{}", addr.port()));
        std::fs::write(&path, kubeconfig(addr))
            .unwrap_or_else(|e| panic!("netns harness: write {}: {e}", path.display()));
        ApiEndpoint {
            addr,
            url,
            kubeconfig: path,
        }
    }

    /// Programs every node like kube-proxy would for a LoadBalancer IP: TCP to `vip:port`
    /// (from the LAN, and from the node itself) is DNATed to the node's own stand-in pod.
    pub fn add_vip_dnat(&self, vip: Ipv4Addr, port: u16) {
        for h in &self.nodes {
            let to = format!("{}:{}", h.ip, self.http_port);
            let script = format!(
                "add rule ip nat prerouting ip daddr {vip} tcp dport {port} dnat to {to}\n\
                 add rule ip nat output ip daddr {vip} tcp dport {port} dnat to {to}\n"
            );
            cmd::nft_script(&h.ns, &script).unwrap_or_else(|e| panic!("netns harness: {e}"));
        }
    }

    /// Silently partitions node `i`: the bridge drops every frame from and to it, while the
    /// node's own interface stays up (it cannot tell).
    pub fn cut_node(&self, i: usize) {
        let port = self.node(i).port.clone();
        let script = format!("add element bridge flbh cut {{ \"{port}\" }}\n");
        cmd::nft_script(&self.lan_ns, &script).unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Undoes [`Lan::cut_node`].
    pub fn restore_node(&self, i: usize) {
        let port = self.node(i).port.clone();
        let script = format!("delete element bridge flbh cut {{ \"{port}\" }}\n");
        cmd::nft_script(&self.lan_ns, &script).unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Drops, inside node `i`, every packet to and from the API address (198.51.100.1),
    /// existing connections included; other nodes and the rest of the LAN are unaffected.
    pub fn block_api(&self, i: usize) {
        let script = format!(
            "add rule inet flbh out ip daddr {GATEWAY_IP} drop\n\
             add rule inet flbh in ip saddr {GATEWAY_IP} drop\n"
        );
        cmd::nft_script(&self.node(i).ns, &script).unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Undoes [`Lan::block_api`].
    pub fn unblock_api(&self, i: usize) {
        let script = "flush chain inet flbh out\nflush chain inet flbh in\n";
        cmd::nft_script(&self.node(i).ns, script).unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Sets node `i`'s own interface (`eth0` in its namespace) administratively up or down.
    pub fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip_n(&self.node(i).ns, &["link", "set", IFNAME, state])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Sets node `i`'s bridge-side port up or down: the node sees its carrier go away.
    pub fn set_port(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip_n(&self.lan_ns, &["link", "set", &self.node(i).port, state])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Connects node `i` straight to the client with a second link outside the LAN: `eth1` in
    /// the node (MAC 02:fe:00:00:03:<i>), `side<i>` in the client, both up and without IPv4
    /// addresses, so nothing on it is in any VIP's subnet. Returns the client-side name.
    /// Removed with the namespaces.
    pub fn add_side_link(&self, i: usize) -> String {
        let side = format!("side{i}");
        let node = self.node(i);
        let mac = MacAddr([0x02, 0xfe, 0, 0, 0x03, i as u8]).to_string();
        ip_n(
            &self.client.ns,
            &[
                "link", "add", &side, "type", "veth", "peer", "name", "eth1", "netns", &node.ns,
            ],
        )
        .unwrap_or_else(|e| panic!("netns harness: {e}"));
        ip_n(&node.ns, &["link", "set", "eth1", "address", &mac])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
        ip_n(&node.ns, &["link", "set", "eth1", "up"])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
        ip_n(&self.client.ns, &["link", "set", &side, "up"])
            .unwrap_or_else(|e| panic!("netns harness: {e}"));
        side
    }

    /// Pins the client's neighbour entry for `ip` to `mac` (permanent, ARP no longer asked).
    pub fn pin_neighbour(&self, ip: Ipv4Addr, mac: MacAddr) {
        ip_n(
            &self.client.ns,
            &[
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &mac.to_string(),
                "dev",
                IFNAME,
                "nud",
                "permanent",
            ],
        )
        .unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// Removes the client's neighbour entry for `ip` (pinned or learned), so the next packet
    /// asks ARP afresh.
    pub fn forget_neighbour(&self, ip: Ipv4Addr) {
        // "flush" rather than "del": it succeeds when there is no entry; `nud all` because
        // flush skips permanent (pinned) entries otherwise.
        ip_n(
            &self.client.ns,
            &[
                "neigh",
                "flush",
                "to",
                &ip.to_string(),
                "dev",
                IFNAME,
                "nud",
                "all",
            ],
        )
        .unwrap_or_else(|e| panic!("netns harness: {e}"));
    }

    /// The MAC the client's kernel currently has for `ip`, if any (what its traffic uses).
    pub fn client_neighbour(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        neighbour_mac(
            &self.client.ns,
            &["neigh", "show", "to", &ip.to_string(), "dev", IFNAME],
        )
    }
}

impl Lan {
    /// Gives every node `2001:db8::1:<i>/64` and the client `2001:db8::200/64` (all `nodad`,
    /// so they are usable at once), and waits until no address on the LAN is tentative (the
    /// kernel's link-local addresses still run DAD), so Neighbor Discovery tools have a source
    /// address. Additive: IPv4 is untouched.
    pub fn add_ipv6(&self) {
        let hosts: Vec<(&Host, Ipv6Addr)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(k, h)| (h, node_ip6(k + 1)))
            .chain([(&self.client, CLIENT_IP6)])
            .collect();
        for (h, ip) in &hosts {
            let addr = format!("{ip}/{LAN6_PREFIX_LEN}");
            ip_n(&h.ns, &["-6", "addr", "add", &addr, "dev", IFNAME, "nodad"])
                .unwrap_or_else(|e| panic!("netns harness: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (h, _) in &hosts {
            loop {
                let out = ip_n(&h.ns, &["-6", "addr", "show", "dev", IFNAME, "tentative"])
                    .unwrap_or_else(|e| panic!("netns harness: {e}"));
                if out.trim().is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "netns harness: IPv6 addresses of {} still tentative after 10s:\n{out}",
                    h.name
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Close our sockets first: a socket keeps its namespace alive after `ip netns del`.
        if let Ok(mut servers) = self.servers.lock() {
            for s in servers.iter_mut() {
                s.stop();
            }
            servers.clear();
        }
        let created = self.created.lock().map(|c| c.clone()).unwrap_or_default();
        for ns in created.iter().rev() {
            kill_all_in(ns);
            if let Err(e) = cmd::run("ip", &["netns", "del", ns]) {
                eprintln!("netns harness: cleanup: {e}");
            }
        }
        if thread::panicking() {
            eprintln!(
                "netns harness: test failed; logs of {} kept in {}",
                self.id,
                self.log_dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
