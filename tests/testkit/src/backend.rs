//! Which API server a suite runs against. kube-sim is fast and injects faults; the real
//! kube-apiserver is the judge of kube-sim's fidelity. `FERROLB_API=sim|real|both` chooses
//! (default `sim`); with `both`, a test written with [`for_each_backend`] runs its whole body
//! once per backend and a failure names the backend.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use futures::FutureExt as _;
use kube_sim::{KubeSim, RequestRecord};

use crate::real_api::{RealApi, RealApiError};

/// One kind of API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiBackend {
    /// kube-sim, the in-process emulator (`tests/kube-sim`).
    Sim,
    /// kube-apiserver v1.32 with etcd ([`RealApi`]).
    Real,
}

impl fmt::Display for ApiBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiBackend::Sim => "sim",
            ApiBackend::Real => "real",
        })
    }
}

/// The backends `FERROLB_API` selects: `sim` (the default), `real`, or `both` (sim first).
/// Panics on any other value, naming the variable: a typo must not silently run nothing.
pub fn selected_backends() -> Vec<ApiBackend> {
    let raw = std::env::var("FERROLB_API").unwrap_or_default();
    parse_backends(&raw).unwrap_or_else(|| {
        panic!("FERROLB_API must be `sim`, `real` or `both` (or unset for sim), not {raw:?}")
    })
}

fn parse_backends(raw: &str) -> Option<Vec<ApiBackend>> {
    match raw.trim() {
        "" | "sim" => Some(vec![ApiBackend::Sim]),
        "real" => Some(vec![ApiBackend::Real]),
        "both" => Some(vec![ApiBackend::Sim, ApiBackend::Real]),
        _ => None,
    }
}

/// Runs `body` once for each backend [`selected_backends`] returns, in turn. Every selected
/// backend runs even when an earlier one failed; then, if any failed, this panics with one line
/// per failed backend (`[FERROLB_API backend real] <panic message>`).
pub async fn for_each_backend<F, Fut>(body: F)
where
    F: Fn(ApiBackend) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failures = Vec::new();
    for backend in selected_backends() {
        eprintln!("=== FERROLB_API backend: {backend} ===");
        if let Err(panic) = AssertUnwindSafe(body(backend)).catch_unwind().await {
            failures.push(format!(
                "[FERROLB_API backend {backend}] {}",
                panic_text(&*panic)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// [`for_each_backend`] for synchronous tests (the netns end-to-end tests block in their
/// helpers and run their own runtime).
pub fn for_each_backend_blocking(body: impl Fn(ApiBackend)) {
    let mut failures = Vec::new();
    for backend in selected_backends() {
        eprintln!("=== FERROLB_API backend: {backend} ===");
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| body(backend))) {
            failures.push(format!(
                "[FERROLB_API backend {backend}] {}",
                panic_text(&*panic)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-text panic)".into())
}

/// Like [`for_each_backend`], but never runs `body` against `excluded`: for a test that is
/// known not to hold there yet. Prints a loud `NOT RUN` line with `why` when `excluded` was
/// selected, so the gap is visible in every run instead of silently passing.
pub async fn for_each_backend_except<F, Fut>(excluded: ApiBackend, why: &str, body: F)
where
    F: Fn(ApiBackend) -> Fut,
    Fut: Future<Output = ()>,
{
    for_each_backend(|backend| {
        let skip = backend == excluded;
        if skip {
            eprintln!("\n*** NOT RUN against the {backend} API server: {why} ***\n");
        }
        let run = (!skip).then(|| body(backend));
        async move {
            if let Some(run) = run {
                run.await;
            }
        }
    })
    .await;
}

/// A running API server of either kind, with what tests need from both.
pub enum TestApi {
    /// kube-sim.
    Sim(KubeSim),
    /// A real kube-apiserver (boxed: it is much larger than a kube-sim handle).
    Real(Box<RealApi>),
}

impl TestApi {
    /// Starts a server of kind `backend` with default options.
    pub async fn start(backend: ApiBackend) -> Result<Self, RealApiError> {
        match backend {
            // kube-sim binds port 0 on loopback; a failure there is a broken machine.
            ApiBackend::Sim => Ok(TestApi::Sim(KubeSim::start().await.map_err(|e| {
                RealApiError::Io {
                    what: "start kube-sim".into(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?)),
            ApiBackend::Real => Ok(TestApi::Real(Box::new(RealApi::start().await?))),
        }
    }

    /// Which kind this is.
    pub fn backend(&self) -> ApiBackend {
        match self {
            TestApi::Sim(_) => ApiBackend::Sim,
            TestApi::Real(_) => ApiBackend::Real,
        }
    }

    /// A client with full rights. Needs a tokio runtime.
    pub fn client(&self) -> Result<kube::Client, RealApiError> {
        match self {
            TestApi::Sim(s) => s.client().map_err(|e| RealApiError::Client {
                path: s.kubeconfig_path().to_path_buf(),
                source: Box::new(e),
            }),
            TestApi::Real(r) => r.client(),
        }
    }

    /// The server's root URL on loopback (`http://` for kube-sim, `https://` for the real one).
    pub fn url(&self) -> String {
        match self {
            TestApi::Sim(s) => s.url(),
            TestApi::Real(r) => r.url(),
        }
    }

    /// A kubeconfig with full rights, for `kubectl` and for FerroLB's binaries.
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            TestApi::Sim(s) => s.kubeconfig_path(),
            TestApi::Real(r) => r.kubeconfig_path(),
        }
    }

    /// The loopback address the server listens on (what a relay forwards to).
    pub fn addr(&self) -> SocketAddr {
        match self {
            TestApi::Sim(s) => s.addr(),
            TestApi::Real(r) => r.addr(),
        }
    }

    /// A full-rights kubeconfig for reaching the server through a relay at `relay` (plain
    /// HTTP for kube-sim, HTTPS with the server's CA for the real one).
    pub fn kubeconfig_via(&self, relay: SocketAddr) -> String {
        match self {
            TestApi::Sim(_) => kube_sim::kubeconfig_yaml(&format!("http://{relay}")),
            TestApi::Real(r) => r.kubeconfig_for(&format!("https://{relay}")),
        }
    }

    /// Every request answered so far (kube-sim's request log, or the real server's audit log).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        match self {
            TestApi::Sim(s) => s.faults().request_log(),
            TestApi::Real(r) => r.request_log(),
        }
    }

    /// kube-sim, for tests that inject faults or inspect its store: those are sim-only by
    /// nature. Panics on the real backend, saying so.
    pub fn sim(&self) -> &KubeSim {
        match self {
            TestApi::Sim(s) => s,
            TestApi::Real(_) => panic!(
                "this test needs kube-sim (fault injection or its store) and cannot run against \
                 the real API server"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferrolb_api_values() {
        assert_eq!(parse_backends(""), Some(vec![ApiBackend::Sim]));
        assert_eq!(parse_backends("sim"), Some(vec![ApiBackend::Sim]));
        assert_eq!(parse_backends("real"), Some(vec![ApiBackend::Real]));
        assert_eq!(
            parse_backends("both"),
            Some(vec![ApiBackend::Sim, ApiBackend::Real])
        );
        assert_eq!(parse_backends("kind"), None);
    }
}
