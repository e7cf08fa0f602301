//! BGP-4 for the speaker's BGP mode: a small message codec, a clock-free session state machine
//! and the pure decision of which prefixes each peer is told about.
//!
//! FerroLB only *originates* routes, so the codec encodes what an originator sends (OPEN with
//! capabilities, packed UPDATEs, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH, End-of-RIB) and
//! validates everything it receives, turning every malformed byte into a typed error that maps
//! to the NOTIFICATION RFC 4271 §6 prescribes. Nothing here does I/O or reads a clock: the
//! socket driver in the `ferrolb` crate feeds bytes and times in and carries the outputs out.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attrs;
mod backoff;
mod error;
mod message;
mod notification;
mod open;
mod pack;
mod peer_params;
mod plan;
mod prefix;
mod rib;
mod session;
mod update;

#[cfg(test)]
mod tests;

pub use attrs::{AsPathSegment, Community, LargeCommunity, Origin, PathAttributes, RouteAttrs};
pub use backoff::Backoff;
pub use error::DecodeError;
pub use message::{
    decode, encode_keepalive, encode_route_refresh, frame_len, Context, Message, MessageType,
    HEADER_LEN, MAX_LEN,
};
pub use notification::{
    encode_notification, encode_shutdown, CeaseSubcode, ErrorCode, HeaderSubcode, Notification,
    OpenSubcode, UpdateSubcode, MAX_SHUTDOWN_MESSAGE,
};
pub use open::{Afi, Capability, Open, AS_TRANS, SAFI_UNICAST};
pub use pack::{encode_end_of_rib, encode_updates, Outbound, PackStats};
pub use peer_params::{router_id, session_params};
pub use plan::{
    degraded_table, peers_advertising, plan, NodeInfo, PeerRoutes, ServiceInfo, TrafficPolicy,
    EXCLUDE_LABEL,
};
pub use prefix::{Prefix, PrefixError};
pub use rib::{AdjRibOut, RibDiff};
pub use session::{
    Output, ResetReason, Session, SessionCounters, SessionParams, State, DEFAULT_CONNECT_TIMEOUT,
};
pub use update::{MpReach, MpUnreach, Update};
