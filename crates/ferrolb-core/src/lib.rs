//! FerroLB's pure core: everything that decides *what* should happen, with no Kubernetes client
//! and no sockets, so it can be unit-tested, property-tested, fuzzed and benchmarked on its own.
//!
//! The Kubernetes glue and the network code in the `ferrolb` crate sit around this one; nothing
//! here depends on them.

pub mod addr;
pub mod alloc;
pub mod arp;
pub mod bgp;
pub mod config;
pub mod election;
pub mod pool;
pub mod service;
