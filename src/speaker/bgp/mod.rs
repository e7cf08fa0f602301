//! The speaker's BGP sessions: sockets and timers around the pure session state machine in
//! `ferrolb_core::bgp`. Active only: the speaker dials its peers and never listens on port 179.

pub mod md5;
pub mod peer;

pub use peer::{spawn_peer, PeerCommand, PeerHandle, PeerSettings, PeerStatus};
