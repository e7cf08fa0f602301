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
//!   the sandbox, cleaned up by drop guards.

pub mod backend;
pub mod json;
pub mod metrics;
pub mod pki;
pub mod poll;
pub mod prereq;
pub mod rbac;
pub mod real_api;
pub mod signals;
pub mod temp_dir;

pub use backend::{
    for_each_backend, for_each_backend_blocking, for_each_backend_except, selected_backends,
    ApiBackend, TestApi,
};
pub use poll::eventually;
pub use prereq::{on_path, require, skip_or_fail, strict, Skipped};
pub use real_api::{RealApi, RealApiError, RealApiOptions};
pub use temp_dir::TempDir;
