//! FerroLB's shared test support, used by the integration tests, the end-to-end suites and the
//! benches alike, so each rule of the project's test policy lives in one place:
//!
//! - [`prereq`]: a missing tool skips a test loudly, or fails it under `CI=true` /
//!   `FERROLB_E2E=1`;
//! - [`poll`]: waiting for an outcome by polling with a deadline, never by sleeping and hoping;
//! - [`backend`]: which API server a suite runs against (`FERROLB_API=sim|real|both`), and one
//!   handle over either of them;
//! - [`real_api`]: a real kube-apiserver and etcd (built by `tests/real-api/build.sh`) started on
//!   loopback with generated certificates, RBAC enforced, torn down on drop;
//! - [`metrics`]: reading the daemons' Prometheus text;
//! - [`json`]: building test objects from a base plus a test's changes;
//! - [`signals`], [`temp_dir`]: Ctrl-C and temporary files for long-running machinery such as
//!   the sandbox, cleaned up by drop guards;
//! - [`netns`]: a real Ethernet LAN of network namespaces (nodes, client, routers, a fake BGP
//!   peer, frame injection and capture, ARP/NDP/curl samplers);
//! - [`cluster`]: a whole FerroLB cluster on that LAN (API server, the real controller, a real
//!   speaker per node), for the end-to-end tests, the timed benches and the sandbox;
//! - [`api_cluster`]: an API server plus the real controller process without a LAN, for the
//!   controller tests, with the churn generator and history invariants of the reliability
//!   suites;
//! - [`timing`]: runs, parts and median/p99 lines of the timed end-to-end benches;
//! - [`flood`]: frame floods against one speaker, for the ARP and NDP flood benches;
//! - [`binary`]: where the `ferrolb` binary under test is; [`kubectl`]: the real `kubectl` as a
//!   judge of what a user sees.
//!
//! Tests, benches and the sandbox example all use this crate rather than including shared
//! source files as modules, so each module is compiled once and lints see all of its users.

pub mod api_cluster;
pub mod backend;
pub mod binary;
pub mod cluster;
pub mod flood;
pub mod json;
pub mod kubectl;
pub mod metrics;
pub mod netns;
pub mod pki;
pub mod poll;
pub mod prereq;
pub mod rbac;
pub mod real_api;
pub mod signals;
pub mod temp_dir;
pub mod timing;

pub use backend::{
    for_each_backend, for_each_backend_blocking, for_each_backend_except, selected_backends,
    ApiBackend, TestApi,
};
pub use poll::eventually;
pub use prereq::{on_path, require, skip_or_fail, strict, Skipped};
pub use real_api::{RealApi, RealApiError, RealApiOptions};
pub use temp_dir::TempDir;
