//! FerroLB: LoadBalancer Services for bare-metal and kind clusters.
//!
//! The `ferrolb` binary has three subcommands: the `controller` (allocates IPs and writes
//! Service status), the `speaker` (per-node agent that wins per-IP elections and answers ARP),
//! and `check-config` (validates a pool config offline). Pure decisions live in `ferrolb-core`;
//! this crate is the Kubernetes and network glue around it.

// Every public item of the glue says why it exists.
#![warn(missing_docs)]

pub mod cli;
pub mod controller;
pub mod events;
pub mod http_server;
pub mod kube_client;
pub mod leader;
pub mod signals;
pub mod speaker;
pub mod status;
pub mod watch_backoff;
