//! kube-sim: a Kubernetes API server emulator over real HTTP, for FerroLB's tests.
//!
//! No real API server can run on our test machines, so this crate stands in for one. It is
//! faithful where clients notice: kube-rs watchers, reflectors, controllers and Lease
//! elections, and the real `kubectl` (discovery, Tables, apply, describe, protobuf bodies).
//! `../shared/specs/kube-api-emulator.md` lists each behaviour with its evidence;
//! `tests/kube-sim/WIRE.md` adds what kubectl's typed commands (protobuf bodies) and Helm 3
//! send, and how the real server rejects a malformed protobuf body.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = kube_sim::KubeSim::start().await?;
//! let client = sim.client()?;
//! println!("kubectl --kubeconfig {} get svc", sim.kubeconfig_path().display());
//! # Ok(()) }
//! ```

pub mod api;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod http;
pub mod objects;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod scale;
pub mod secrets;
pub mod selectors;
pub mod server;
pub mod services;
pub mod status;
pub mod store;
pub mod tables;
pub mod watch;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::{Faults, RequestRecord};
pub use store::{Change, ChangeKind, Store};

/// How to start a kube-sim.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// How many changes watches can resume from before they get 410 Gone.
    pub history_limit: usize,
    /// Keep every change forever, for tests that check invariants over the whole history.
    pub keep_full_history: bool,
    /// How often idle watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Where to write the kubeconfig; `None` writes one into a private temporary directory.
    pub kubeconfig_out: Option<PathBuf>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: 100_000,
            keep_full_history: false,
            bookmark_interval: Duration::from_secs(5),
            kubeconfig_out: None,
        }
    }
}

/// A running kube-sim. Dropping it stops the server and removes its temporary files.
pub struct KubeSim {
    addr: SocketAddr,
    store: Arc<Store>,
    faults: Arc<Faults>,
    kubeconfig: PathBuf,
    temp_dir: Option<PathBuf>,
    shutdown: CancellationToken,
}

/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Why kube-sim could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("kube-sim cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error("kube-sim cannot write its kubeconfig to {path}: {source}")]
    Kubeconfig {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl KubeSim {
    /// Starts on a free loopback port with default options.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(SimOptions::default()).await
    }

    /// Starts with `opts`.
    pub async fn start_with(opts: SimOptions) -> Result<Self, StartError> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: opts.listen,
            source,
        })?;
        let store = Arc::new(Store::new(opts.history_limit, opts.keep_full_history));
        seed(&store);
        let faults = Arc::new(Faults::default());
        let (kubeconfig, temp_dir) = match opts.kubeconfig_out {
            Some(p) => (p, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "kube-sim-{}-{}",
                    std::process::id(),
                    addr.port()
                ));
                std::fs::create_dir_all(&dir).map_err(|source| StartError::Kubeconfig {
                    path: dir.clone(),
                    source,
                })?;
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        std::fs::write(&kubeconfig, kubeconfig_yaml(&format!("http://{addr}"))).map_err(
            |source| StartError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            },
        )?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(server::Shared {
            store: store.clone(),
            faults: faults.clone(),
            watch: watch::WatchSettings {
                bookmark_interval: opts.bookmark_interval,
                default_timeout: Duration::from_secs(1800),
            },
            addr,
        });
        tokio::spawn(server::serve(shared, listener, shutdown.clone()));
        Ok(Self {
            addr,
            store,
            faults,
            kubeconfig,
            temp_dir,
            shutdown,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let uri = self
            .url()
            .parse()
            .expect("http://<socket address> is always a valid URI");
        kube::Client::try_from(kube::Config::new(uri))
    }

    /// A kubeconfig file usable with `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The object store, for tests that inspect state or history directly.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The fault switches and request log.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Stops the server now.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn seed(store: &Store) {
    let ns = resources::find("", "v1", "namespaces").unwrap_or(2);
    for name in INITIAL_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        // Creating the fixed initial namespaces in an empty store cannot fail.
        let _ = store.mutate(ns, "", name, |_, ctx| {
            objects::prepare_create(ns, "", name, body, ctx).map(store::Outcome::Put)
        });
    }
}

/// A kubeconfig pointing at `server` with an anonymous user and namespace `default`.
pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {server}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\nusers:\n- name: kube-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}
