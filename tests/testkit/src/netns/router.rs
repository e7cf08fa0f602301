//! A router namespace running real BGP daemons nobody here wrote (BIRD 2, FRR), the judges of
//! the BGP tests: their `show` commands and the kernel routes they install say what the speaker
//! advertised. Shared by `tests/bgp_interop.rs` (driver against the routers) and
//! `tests/bgp_e2e.rs` (whole speakers on the LAN against the routers).
//!
//! The namespace is created here and deleted on drop, after the daemons are killed (also when
//! a test panics; then the logs are kept in [`Router::dir`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{cmd, Lan, IFNAME};

/// The router's address on the LAN when attached with [`Router::on_lan`].
pub const LAN_ROUTER_IP: &str = "198.51.100.254";
/// The router's address toward the client behind it ([`Router::add_far_client`]).
pub const FAR_ROUTER_IP: &str = "192.0.2.1";
/// The client behind the router.
pub const FAR_CLIENT_IP: &str = "192.0.2.2";
/// The subnet behind the router.
pub const FAR_SUBNET: &str = "192.0.2.0/24";

/// Runs a command, returning its stdout and stderr together; `Err` names the command.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = cmd::output_within(
        Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()),
        Duration::from_secs(20),
    )
    .map_err(|e| format!("{args:?}: {e}"))?;
    let text = out.stdout.clone() + &out.stderr;
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{args:?} failed: {text}"))
    }
}

fn must(args: &[&str]) -> String {
    sh(args).unwrap_or_else(|e| panic!("router harness: {e}"))
}

/// A network namespace with BGP daemons in it.
pub struct Router {
    ns: String,
    /// Namespaces hanging off the router (the far client), deleted with it.
    extra: Vec<String>,
    dir: PathBuf,
    children: Vec<Child>,
    pidfiles: Vec<PathBuf>,
    /// BIRD's arguments, for [`Router::restart_bird`].
    bird: Option<(String, String)>,
}

impl Router {
    /// Creates namespace `ns` (loopback up) with its logs and sockets under `dir`.
    pub fn new(ns: &str, dir: &Path) -> Router {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("router harness: create {}: {e}", dir.display()));
        must(&["ip", "netns", "add", ns]);
        let r = Router {
            ns: ns.to_string(),
            extra: Vec::new(),
            dir: dir.to_path_buf(),
            children: Vec::new(),
            pidfiles: Vec::new(),
            bird: None,
        };
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        r
    }

    /// A router namespace `<lan id>-rt` plugged into the LAN's bridge (port `prt`) as
    /// [`LAN_ROUTER_IP`], forwarding IPv4 and hashing ECMP flows on L4 ports (so one client's
    /// connections spread over the next hops, as on a real ToR).
    pub fn on_lan(lan: &Lan) -> Router {
        let ns = format!("{}-rt", lan.id());
        let r = Router::new(&ns, &lan.log_dir().join("router"));
        must(&[
            "ip",
            "-n",
            lan.lan_ns(),
            "link",
            "add",
            "prt",
            "type",
            "veth",
            "peer",
            "name",
            IFNAME,
            "netns",
            &ns,
        ]);
        must(&[
            "ip",
            "-n",
            lan.lan_ns(),
            "link",
            "set",
            "prt",
            "master",
            "br0",
            "up",
        ]);
        r.ip(&["addr", "add", &format!("{LAN_ROUTER_IP}/24"), "dev", IFNAME]);
        r.ip(&["link", "set", IFNAME, "up"]);
        for sysctl in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
        ] {
            must(&["ip", "netns", "exec", &ns, "sysctl", "-qw", sysctl]);
        }
        r
    }

    /// A client namespace `<router ns>-fc` behind the router ([`FAR_CLIENT_IP`], default route
    /// via the router), so its traffic to a Service IP follows the routes BGP installed.
    /// Returns the namespace name.
    pub fn add_far_client(&mut self) -> String {
        let client = format!("{}-fc", self.ns);
        must(&["ip", "netns", "add", &client]);
        self.extra.push(client.clone());
        must(&[
            "ip", "-n", &self.ns, "link", "add", "eth1", "type", "veth", "peer", "name", IFNAME,
            "netns", &client,
        ]);
        self.ip(&["addr", "add", &format!("{FAR_ROUTER_IP}/24"), "dev", "eth1"]);
        self.ip(&["link", "set", "eth1", "up"]);
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", "192.0.2.2/24", "dev", IFNAME],
            vec!["link", "set", IFNAME, "up"],
            vec!["route", "add", "default", "via", FAR_ROUTER_IP],
        ] {
            let mut full = vec!["ip", "-n", &client];
            full.extend(args);
            must(&full);
        }
        client
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Where the daemons' configs, sockets and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file under [`Router::dir`].
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Runs `ip <args>` inside the namespace, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.ns];
        full.extend_from_slice(args);
        must(&full)
    }

    /// The router's kernel route for `dst`, as `ip route` prints it (empty when none).
    pub fn kernel_route(&self, dst: &str) -> String {
        let fam = if dst.contains(':') { "-6" } else { "-4" };
        sh(&["ip", fam, "-n", &self.ns, "route", "show", dst]).unwrap_or_default()
    }

    /// The next hops of the kernel route for `dst`, sorted (one for a single path, several for
    /// an ECMP route).
    pub fn next_hops(&self, dst: &str) -> Vec<String> {
        let route = self.kernel_route(dst);
        let mut hops: Vec<String> = route
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// Starts BIRD with identifier `router_id`, exporting every route to the kernel (with
    /// ECMP merging), plus `protocols`; waits until it answers `birdc`.
    pub fn start_bird(&mut self, router_id: &str, protocols: &str) {
        self.bird = Some((router_id.to_string(), protocols.to_string()));
        let conf = format!(
            "log \"{}\" all;\nrouter id {router_id};\nprotocol device {{ }}\n\
             protocol kernel kernel4 {{ ipv4 {{ export all; import none; }}; merge paths on; }}\n\
             protocol kernel kernel6 {{ ipv6 {{ export all; import none; }}; merge paths on; }}\n{protocols}\n",
            self.path("bird.log")
        );
        std::fs::write(self.path("bird.conf"), conf).expect("write bird.conf");
        must(&["bird", "-p", "-c", &self.path("bird.conf")]);
        let stderr = File::create(self.path("bird.stderr")).expect("bird.stderr");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "bird",
                "-f",
                "-c",
                &self.path("bird.conf"),
                "-s",
                &self.path("bird.ctl"),
                "-P",
                &self.path("bird.pid"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start bird");
        self.children.push(child);
        assert!(
            wait_until(Duration::from_secs(10), || self
                .birdc("show status")
                .contains("Daemon is up")),
            "BIRD did not start: {}",
            std::fs::read_to_string(self.path("bird.stderr")).unwrap_or_default()
        );
    }

    /// Shuts BIRD down the way an operator would (`birdc down`: Cease to every peer, its
    /// kernel routes removed) and waits for it to exit.
    pub fn stop_bird(&mut self) {
        let _ = self.birdc("down");
        let mut bird = self.children.pop().expect("the BIRD child");
        let gone = wait_until(Duration::from_secs(10), || {
            matches!(bird.try_wait(), Ok(Some(_)))
        });
        if !gone {
            let _ = bird.kill();
            let _ = bird.wait();
        }
    }

    /// Starts BIRD again with the config of the last [`Router::start_bird`].
    pub fn restart_bird(&mut self) {
        let (router_id, protocols) = self.bird.clone().expect("BIRD was started");
        self.start_bird(&router_id, &protocols);
    }

    /// A `birdc` command's output (or the error text).
    pub fn birdc(&self, command: &str) -> String {
        let sock = self.path("bird.ctl");
        let mut args = vec!["birdc", "-s", &sock];
        args.extend(command.split(' '));
        sh(&args).unwrap_or_else(|e| e)
    }

    /// Starts FRR's zebra and bgpd with `conf` (an integrated frr.conf); waits until bgpd
    /// answers `vtysh`.
    pub fn start_frr(&mut self, conf: &str) {
        let d = self.dir.join("frr");
        std::fs::create_dir_all(&d).expect("frr dir");
        std::fs::write(d.join("frr.conf"), conf).expect("write frr.conf");
        let ds = d.display().to_string();
        must(&["chown", "-R", "frr:frr", &ds]);
        let conf = format!("{ds}/frr.conf");
        for daemon in ["zebra", "bgpd"] {
            let pid = format!("{ds}/{daemon}.pid");
            must(&[
                "ip",
                "netns",
                "exec",
                &self.ns,
                &format!("/usr/lib/frr/{daemon}"),
                "-d",
                "-f",
                &conf,
                "-i",
                &pid,
                "-z",
                &format!("{ds}/zserv.api"),
                "--vty_socket",
                &ds,
                "--log",
                &format!("file:{ds}/{daemon}.log"),
            ]);
            self.pidfiles.push(PathBuf::from(pid));
        }
        assert!(
            wait_until(Duration::from_secs(15), || self
                .vtysh("show bgp summary")
                .contains("BGP router identifier")),
            "FRR did not start: {}",
            self.vtysh("show bgp summary")
        );
    }

    /// The FRR directory (config, sockets, logs).
    pub fn frr_dir(&self) -> String {
        self.dir.join("frr").display().to_string()
    }

    /// A `vtysh -c` command's output (or the error text).
    pub fn vtysh(&self, command: &str) -> String {
        let ds = self.frr_dir();
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "vtysh",
            "--vty_socket",
            &ds,
            "-c",
            command,
        ])
        .unwrap_or_else(|e| e)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.pidfiles {
            if let Some(pid) = std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on the pid a daemon we started wrote into its pidfile.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for ns in self.extra.iter().chain([&self.ns]) {
            super::kill_all_in(ns);
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        if thread::panicking() {
            eprintln!("router logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
