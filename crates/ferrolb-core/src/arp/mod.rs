//! ARP for IPv4 over Ethernet: the frames a speaker receives and sends, what they mean, and when
//! to send gratuitous ARP. Pure: the raw sockets live in the `ferrolb` crate.

mod classify;
mod codec;
mod garp;
mod mac;

pub use classify::{classify, Observation};
pub use codec::{
    build_gratuitous, build_probe, build_reply, parse_frame, ArpError, ArpFrame, ArpOp, FrameBuf,
    ARP_FRAME_LEN, ETHERTYPE_ARP, FRAME_LEN,
};
pub use garp::{GarpParams, GarpSchedule};
pub use mac::{MacAddr, MacParseError};
