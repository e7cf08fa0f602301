//! A real kube-apiserver for tests: etcd and kube-apiserver (v1.32, built from Go modules by
//! `tests/real-api/build.sh`) on loopback, with certificates generated at start, RBAC enforced,
//! an admin kubeconfig, and an audit log the tests read as the server's request log. No
//! controller-manager or scheduler runs: tests create Nodes and EndpointSlices themselves,
//! exactly as they do against kube-sim.
//!
//! Both processes run in their own process group and get SIGKILL when the test thread that
//! started them dies; [`RealApi`]'s `Drop` kills both groups and removes the temporary
//! directory, also when a test panics (then the logs' tails are printed and the directory kept).

use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube_sim::RequestRecord;
use serde_json::{json, Value};

use crate::pki::{Pki, PkiError};

/// The ClusterIP ranges the server allocates from (documentation ranges; ClusterIPs are only
/// data here, nothing routes them). Dual-stack, so `RequireDualStack` Services are accepted.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "192.0.2.0/24,2001:db8:c1::/112";

/// The issuer and audience of ServiceAccount tokens, as in a kubeadm cluster.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long etcd plus kube-apiserver may take to become ready. Far above the few seconds they
/// take, because the machine is shared and a cold page cache is slow.
pub const READY_DEADLINE: Duration = Duration::from_secs(120);

/// How to start a [`RealApi`].
#[derive(Debug, Clone)]
pub struct RealApiOptions {
    /// Addresses besides 127.0.0.1/::1/localhost the serving certificate is valid for: where
    /// relays make the server reachable from network namespaces (the netns LAN's gateway).
    pub extra_server_ips: Vec<IpAddr>,
    /// The directory holding `kube-apiserver` and `etcd`; `None` asks [`binaries_dir`].
    pub binaries: Option<PathBuf>,
}

impl Default for RealApiOptions {
    fn default() -> Self {
        Self {
            // The netns LAN's gateway (netns::GATEWAY_IP), where `Lan::expose_api` relays
            // the API server to the node namespaces.
            extra_server_ips: vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))],
            binaries: None,
        }
    }
}

/// Why the real API server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum RealApiError {
    /// `tests/real-api/build.sh` failed or printed no directory.
    #[error("building the real API server (tests/real-api/build.sh): {0}")]
    Build(String),
    /// A binary is missing from the directory.
    #[error("{path} is missing: run tests/real-api/build.sh or set FERROLB_REAL_API_DIR")]
    MissingBinary {
        /// The path looked at.
        path: PathBuf,
    },
    /// Certificates could not be generated.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file or process operation failed.
    #[error("real API server: {what}: {source}")]
    Io {
        /// What was being done, naming the file or program.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A process exited or the server did not become ready in time.
    #[error("real API server did not start: {why}\n--- etcd log tail ---\n{etcd_log}\n--- kube-apiserver log tail ---\n{apiserver_log}")]
    NotReady {
        /// What was seen.
        why: String,
        /// The end of etcd's log.
        etcd_log: String,
        /// The end of kube-apiserver's log.
        apiserver_log: String,
    },
    /// The admin kubeconfig could not be turned into a client.
    #[error("real API server: client from {path}: {source}")]
    Client {
        /// The kubeconfig.
        path: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RealApiError {
    let what = what.into();
    move |source| RealApiError::Io { what, source }
}

/// The directory holding `kube-apiserver` and `etcd`: `$FERROLB_REAL_API_DIR` if set (CI
/// exports it after running the build script), otherwise the last line printed by
/// `tests/real-api/build.sh`, which returns at once when its cache is warm and builds (many
/// minutes) when it is not. Asked once per test process.
pub fn binaries_dir() -> Result<PathBuf, RealApiError> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("FERROLB_REAL_API_DIR") {
            return Ok(PathBuf::from(dir));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../real-api/build.sh");
        eprintln!(
            "real-api: FERROLB_REAL_API_DIR is unset; running {} (slow only the first time)",
            script.display()
        );
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", script.display(), out.status));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .ok_or_else(|| format!("{} printed no directory", script.display()))
    })
    .clone()
    .map_err(RealApiError::Build)
}

/// A running etcd + kube-apiserver pair. Dropping it kills both and removes its files.
pub struct RealApi {
    dir: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    pki: Pki,
    audit_log: PathBuf,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// How many times a start is retried when another process took one of the free ports between
/// choosing it and binding it (other test processes on this machine choose ports too).
const PORT_RACE_RETRIES: usize = 3;

impl RealApi {
    /// Starts etcd and kube-apiserver with default options and waits until the server is
    /// ready and the `default` namespace exists.
    pub async fn start() -> Result<Self, RealApiError> {
        Self::start_with(RealApiOptions::default()).await
    }

    /// Starts with `opts`.
    pub async fn start_with(opts: RealApiOptions) -> Result<Self, RealApiError> {
        let bin = match &opts.binaries {
            Some(d) => d.clone(),
            None => binaries_dir()?,
        };
        for name in ["etcd", "kube-apiserver"] {
            let path = bin.join(name);
            if !path.is_file() {
                return Err(RealApiError::MissingBinary { path });
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let api = Self::spawn(&bin, &opts)?;
            match api.wait_ready().await {
                Ok(()) => return Ok(api),
                Err(e) if attempt < PORT_RACE_RETRIES && api.lost_a_port_race() => {
                    eprintln!("real-api: a chosen port was taken meanwhile, starting again: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(bin: &Path, opts: &RealApiOptions) -> Result<Self, RealApiError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ferrolb-real-api-{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etcd-data"))
            .map_err(io_err(format!("create {}", dir.display())))?;
        let mut server_ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        server_ips.extend(&opts.extra_server_ips);
        let pki = Pki::generate(&server_ips)?;
        let write = |name: &str, text: &str| -> Result<PathBuf, RealApiError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))?;
            Ok(path)
        };
        let ca = write("ca.crt", &pki.ca.cert_pem)?;
        let serving_cert = write("serving.crt", &pki.serving.cert_pem)?;
        let serving_key = write("serving.key", &pki.serving.key_pem)?;
        let sa_key = write("sa.key", &pki.service_account_key_pem)?;
        let sa_pub = write("sa.pub", &pki.service_account_pub_pem)?;
        // Metadata of every request: who (user agent, user), what (verb, resource, name), and
        // the answer's code. Tests read it as kube-sim's request log.
        let audit_policy = write(
            "audit-policy.yaml",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )?;
        let audit_log = dir.join("audit.log");

        let [etcd_client, etcd_peer, secure] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd = spawn_logged(
            Command::new(bin.join("etcd")).args([
                "--name=test",
                &format!("--data-dir={}", dir.join("etcd-data").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=test={peer_url}"),
                // A test cluster's data is thrown away: durability only costs time.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]),
            &dir.join("etcd.log"),
        )?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, secure));
        let apiserver = spawn_logged(
            Command::new(bin.join("kube-apiserver")).args([
                &format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1",
                &format!("--secure-port={secure}"),
                "--advertise-address=127.0.0.1",
                // No one may route to the advertised loopback address, so the `kubernetes`
                // Service gets no Endpoints (they would fail validation anyway).
                "--endpoint-reconciler-type=none",
                &format!("--cert-dir={}", dir.display()),
                &format!("--tls-cert-file={}", serving_cert.display()),
                &format!("--tls-private-key-file={}", serving_key.display()),
                &format!("--client-ca-file={}", ca.display()),
                &format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                &format!("--service-account-key-file={}", sa_pub.display()),
                &format!("--service-account-signing-key-file={}", sa_key.display()),
                "--authorization-mode=RBAC",
                &format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                &format!("--audit-policy-file={}", audit_policy.display()),
                &format!("--audit-log-path={}", audit_log.display()),
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ]),
            &dir.join("kube-apiserver.log"),
        );
        let apiserver = match apiserver {
            Ok(c) => c,
            Err(e) => {
                kill_group(etcd);
                return Err(e);
            }
        };
        let kubeconfig = dir.join("kubeconfig");
        let api = Self {
            dir,
            etcd: Some(etcd),
            apiserver: Some(apiserver),
            addr,
            kubeconfig,
            pki,
            audit_log,
        };
        std::fs::write(&api.kubeconfig, api.kubeconfig_for(&api.url()))
            .map_err(io_err(format!("write {}", api.kubeconfig.display())))?;
        Ok(api)
    }

    /// Polls `/readyz` (as the admin) until it answers `ok`, then waits for the `default`
    /// namespace, which the server creates itself shortly after it starts.
    async fn wait_ready(&self) -> Result<(), RealApiError> {
        let client = self.client()?;
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        loop {
            if let Some(why) = self.exited() {
                return Err(self.not_ready(why));
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(self.not_ready(format!(
                    "not ready after {READY_DEADLINE:?}; last /readyz answer: {last}"
                )));
            }
            let readyz = http::Request::get("/readyz").body(Vec::new());
            let answer = match readyz {
                Ok(req) => client.request_text(req).await,
                Err(e) => return Err(self.not_ready(format!("building GET /readyz: {e}"))),
            };
            match answer {
                Ok(body) if body.trim() == "ok" => {
                    let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                        kube::Api::all(client.clone());
                    if let Ok(Some(_)) = ns.get_opt("default").await {
                        return Ok(());
                    }
                    last = "ready, namespace default not created yet".into();
                }
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a start failed because a port chosen as free was bound by someone else first.
    fn lost_a_port_race(&self) -> bool {
        ["etcd.log", "kube-apiserver.log"].iter().any(|f| {
            std::fs::read_to_string(self.dir.join(f))
                .is_ok_and(|l| l.contains("address already in use"))
        })
    }

    /// `Some(description)` once either process has exited.
    fn exited(&self) -> Option<String> {
        // try_wait needs `&mut`; the pid is enough to ask without reaping.
        for (name, child) in [("etcd", &self.etcd), ("kube-apiserver", &self.apiserver)] {
            if let Some(c) = child {
                if !process_alive(c.id()) {
                    return Some(format!("{name} exited"));
                }
            }
        }
        None
    }

    fn not_ready(&self, why: String) -> RealApiError {
        RealApiError::NotReady {
            why,
            etcd_log: self.log_tail("etcd.log", 20),
            apiserver_log: self.log_tail("kube-apiserver.log", 40),
        }
    }

    /// The last `lines` lines of one of the server's logs.
    pub fn log_tail(&self, file: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The loopback address the server listens on (what a relay forwards to).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin kubeconfig (group `system:masters`), usable with `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca.cert_pem
    }

    /// An admin kubeconfig (JSON, which is YAML) for reaching this server at `server_url`,
    /// e.g. through a relay; the serving certificate covers the addresses in
    /// [`RealApiOptions::extra_server_ips`].
    pub fn kubeconfig_for(&self, server_url: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        kubeconfig_json(
            server_url,
            &self.pki.ca.cert_pem,
            json!({
                "client-certificate-data": b64(&self.pki.admin.cert_pem),
                "client-key-data": b64(&self.pki.admin.key_pem),
            }),
        )
    }

    /// A kubeconfig for `server_url` that authenticates with a bearer `token` (a
    /// ServiceAccount token from the TokenRequest API), so RBAC judges that account.
    pub fn token_kubeconfig(&self, server_url: &str, token: &str) -> String {
        kubeconfig_json(server_url, &self.pki.ca.cert_pem, json!({"token": token}))
    }

    /// An admin client. Needs a tokio runtime (the client spawns its worker on it).
    pub fn client(&self) -> Result<kube::Client, RealApiError> {
        let err = |source: Box<dyn std::error::Error + Send + Sync>| RealApiError::Client {
            path: self.kubeconfig.clone(),
            source,
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let uri = self.url().parse().map_err(|e| err(Box::new(e)))?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(vec![self.pki.ca_der.clone()]);
        // The same credentials as the kubeconfig, through kube's own kubeconfig types.
        config.auth_info = serde_json::from_value(json!({
            "client-certificate-data": b64(&self.pki.admin.cert_pem),
            "client-key-data": b64(&self.pki.admin.key_pem),
        }))
        .map_err(|e| err(Box::new(e)))?;
        kube::Client::try_from(config).map_err(|e| err(Box::new(e)))
    }

    /// Every request the server has answered so far, from its audit log, in the shape of
    /// kube-sim's request log (so one assertion about who wrote what serves both backends).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        read_audit_log(&self.audit_log)
    }

    /// The directory holding the logs, certificates and etcd's data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn kubeconfig_json(server_url: &str, ca_pem: &str, user: Value) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real-api", "cluster": {"server": server_url, "certificate-authority-data": ca}}],
        "users": [{"name": "real-api", "user": user}],
        "contexts": [{"name": "real-api", "context": {"cluster": "real-api", "user": "real-api", "namespace": "default"}}],
        "current-context": "real-api",
        "preferences": {},
    });
    // Serializing a `Value` cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Parses kube-apiserver's JSON audit log into request records. Lines that are not audit
/// events (a partly written last line) are skipped.
fn read_audit_log(path: &Path) -> Vec<RequestRecord> {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut text);
    }
    text.lines().filter_map(audit_record).collect()
}

fn audit_record(line: &str) -> Option<RequestRecord> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let at_ms = s("/requestReceivedTimestamp")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
        .unwrap_or(0);
    Some(RequestRecord {
        at_ms,
        user_agent: s("/userAgent").unwrap_or_default(),
        verb: s("/verb")?,
        group: s("/objectRef/apiGroup").unwrap_or_default(),
        resource: s("/objectRef/resource")
            .or_else(|| s("/requestURI"))
            .unwrap_or_default(),
        subresource: s("/objectRef/subresource"),
        namespace: s("/objectRef/namespace"),
        name: s("/objectRef/name"),
        status: v
            .pointer("/responseStatus/code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0),
    })
}

impl Drop for RealApi {
    fn drop(&mut self) {
        if let Some(c) = self.apiserver.take() {
            kill_group(c);
        }
        if let Some(c) = self.etcd.take() {
            kill_group(c);
        }
        if std::thread::panicking() {
            eprintln!(
                "---- real kube-apiserver log tail ({}) ----\n{}",
                self.dir.display(),
                self.log_tail("kube-apiserver.log", 30)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Three distinct free loopback ports. They are free when chosen; another process may take one
/// before the server binds it, which [`RealApi::start_with`] notices and retries.
fn free_ports() -> Result<[u16; 3], RealApiError> {
    let bind =
        || TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind a free loopback port"));
    // All three stay bound until all are chosen, so they differ.
    let (a, b, c) = (bind()?, bind()?, bind()?);
    let port = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(io_err("read a bound port"))
    };
    Ok([port(&a)?, port(&b)?, port(&c)?])
}

/// Spawns `cmd` in a new process group with stdout and stderr appended to `log`, and with
/// SIGKILL as its parent-death signal, so it dies with the test even when no `Drop` runs.
#[allow(unsafe_code)] // libc process control; SAFETY comment inside
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, RealApiError> {
    let out = std::fs::File::create(log).map_err(io_err(format!("create {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_err(format!("reopen {}", log.display())))?;
    let program = cmd.get_program().to_string_lossy().to_string();
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only the child's own
    // state; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(io_err(format!("spawn {program}")))
}

/// SIGKILLs `child`'s whole process group and reaps the child.
#[allow(unsafe_code)] // libc process control; SAFETY comment inside
fn kill_group(mut child: Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; the group was
        // created for this child (process_group(0)), so nothing else is in it.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether `pid` is running (not exited and not a zombie awaiting its reaper).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // The state follows the parenthesised command name.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_events_become_request_records() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/services/web/status","verb":"patch","user":{"username":"a"},"userAgent":"ferrolb-controller/0.1.0","objectRef":{"resource":"services","namespace":"default","name":"web","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"1970-01-02T00:00:01.250000Z"}"#;
        let r = audit_record(line).expect("parses");
        assert_eq!(r.verb, "patch");
        assert_eq!(r.user_agent, "ferrolb-controller/0.1.0");
        assert_eq!(r.resource, "services");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.group, "");
        assert_eq!(r.status, 200);
        assert_eq!(r.at_ms, 86_401_250);
    }

    #[test]
    fn a_torn_last_line_is_not_a_record() {
        assert!(audit_record(r#"{"kind":"Event","verb":"ge"#).is_none());
    }

    #[test]
    fn kubeconfigs_are_json_with_the_ca_and_the_credentials() {
        let doc: Value = serde_json::from_str(&kubeconfig_json(
            "https://198.51.100.1:1",
            "CA",
            json!({"token": "t"}),
        ))
        .expect("json");
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://198.51.100.1:1"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(doc["users"][0]["user"]["token"], "t");
    }
}
