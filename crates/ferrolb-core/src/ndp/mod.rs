//! IPv6 Neighbor Discovery (RFC 4861) for Service IPs: the frames a speaker receives and sends,
//! and what they mean. The IPv6 counterpart of [`crate::arp`]; unsolicited advertisements
//! follow the same `l2.garp` schedule ([`crate::arp::GarpParams`]). Pure: the sockets and the
//! multicast group membership live in the `ferrolb` crate.

mod classify;
mod codec;

pub use classify::{classify, Observation};
pub use codec::{
    build_advertisement_reply, build_dad_probe, build_unsolicited_advertisement, icmpv6_checksum,
    is_solicited_node, multicast_mac, parse_frame, solicited_node, NdpBuf, NdpError, NdpFrame,
    NdpMessage, ALL_NODES, ETHERTYPE_IPV6, NDP_FRAME_LEN, ND_HOP_LIMIT, NEXT_HEADER_ICMPV6,
    TYPE_NEIGHBOR_ADVERTISEMENT, TYPE_NEIGHBOR_SOLICITATION,
};
