//! The speaker's BGP sessions: sockets and timers around the pure session state machine in
//! `ferrolb_core::bgp`. Active only: the speaker dials its peers and never listens on port 179.

pub mod manager;
pub mod md5;
pub mod metrics;
pub mod peer;
pub mod view;

pub use manager::{BgpCaches, BgpManager};
pub use metrics::BgpMetrics;
pub use peer::{
    spawn_peer, spawn_peer_with_key, PeerCommand, PeerHandle, PeerSettings, PeerStatus,
};
