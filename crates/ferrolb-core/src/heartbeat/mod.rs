//! Direct heartbeats between speakers: the pure half of fast failure detection.
//!
//! Each speaker sends small authenticated datagrams several times a second to its few
//! watchers on its subnets, so a dead node is noticed in well under a second without any API write, and the
//! Lease, still the record of which speakers exist, can be renewed rarely. Heartbeats only ever
//! speed failover up: a node never heard is judged by its Lease alone, and a speaker that not
//! every live peer hears keeps the fast lease cadence.
//!
//! * [`datagram`]: the versioned wire format and its HMAC-SHA256.
//! * [`replay`]: refuses old or replayed heartbeats (per sender: epoch, strictly rising counter).
//! * [`detector`]: heard → silent → suspected, and the cancel rule (wire evidence of life).
//! * [`cadence`]: when a speaker may renew its Lease rarely.
//! * [`annotations`]: what goes in the Lease (`ferrolb.io/heartbeat`, `ferrolb.io/hears`).
//! * [`watchers`]: which [`WATCHERS`] peers receive (and track) each speaker's heartbeats.
//! * [`message`]: the suspect and alive messages that spread a watcher's suspicion.
//!
//! No I/O, no clock: times are passed in as [`MonoTime`](crate::election::MonoTime).

pub mod annotations;
pub mod cadence;
pub mod datagram;
pub mod detector;
pub mod message;
pub mod replay;
pub mod secret;
pub mod watchers;

use std::time::Duration;

pub use annotations::{
    format_hears, parse_hears, usable_heartbeat_addr, HeartbeatAdvert, HEARS_ANNOTATION,
    HEARTBEAT_ANNOTATION,
};
pub use cadence::{
    choose_cadence, Cadence, CadenceChoice, LeaseTiming, PeerView, RELAXED_DURATION, RELAXED_RENEW,
};
pub use datagram::{decode, encode, DecodeError, EncodeError, Heartbeat, HeartbeatKey, KeyError};
pub use detector::{
    FailureDetector, PeerState, HEARS_GRACE, MIN_SUSPICION_TIMEOUT, RETELL_INTERVAL, TELLINGS,
};
pub use message::{decode_message, encode_message, Body, Message};
pub use replay::{Replay, ReplayGuard};
pub use watchers::{assign, Assignment, Member, SendSet, RELEASE_GRACE, WATCHERS};

/// The default UDP port (`--heartbeat-port`).
pub const DEFAULT_PORT: u16 = 7474;
/// How often a speaker sends a heartbeat.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
/// How many intervals of silence a speaker asks its peers to tolerate before suspecting it.
pub const DEFAULT_MISSES: u8 = 3;
