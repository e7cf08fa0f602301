//! FerroLB's pure core: everything that decides *what* should happen, with no Kubernetes client
//! and no sockets, so it can be unit-tested, property-tested, fuzzed and benchmarked on its own.
//!
//! The Kubernetes glue and the network code in the `ferrolb` crate sit around this one; nothing
//! here depends on them.

// Pure logic has no reason for `unsafe`; forbid (not just deny) so no module can opt back in.
#![forbid(unsafe_code)]
// Every public item says why it exists (benches and tests, whose criterion/harness macros
// generate undocumented items, are exempt, so this is per crate rather than workspace-wide).
#![warn(missing_docs)]

pub mod addr;
pub mod alloc;
pub mod arp;
pub mod bgp;
pub mod config;
pub mod election;
pub mod heartbeat;
pub mod import;
pub mod ndp;
pub mod pool;
pub mod reconcile;
pub mod service;
