//! Ethernet II + IPv6 + ICMPv6 Neighbor Solicitation / Neighbor Advertisement frames (RFC 4861):
//! parsing, validation and building.
//!
//! Everything received comes straight off a raw socket from any host on the LAN, so parsing
//! applies every validity check RFC 4861 §7.1.1 / §7.1.2 asks of a receiver (hop limit 255,
//! ICMPv6 checksum, code 0, length, no multicast target, no zero-length option, the rules for
//! DAD probes and multicast advertisements), rejects anything else with an error, and never
//! panics. Parsing borrows: options stay in the received buffer. Building writes into a
//! caller-owned buffer so answering a solicitation allocates nothing.

use std::net::Ipv6Addr;

use thiserror::Error;

use crate::arp::MacAddr;

mod build;
mod checksum;

pub use build::{build_advertisement_reply, build_dad_probe, build_unsolicited_advertisement};
pub use checksum::icmpv6_checksum;

/// Ethernet II ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The only hop limit a Neighbor Discovery message may carry (RFC 4861 §7.1): a router would
/// have decremented it, so 255 proves the sender is on our link.
pub const ND_HOP_LIMIT: u8 = 255;
/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Option type: Source Link-Layer Address.
pub const OPTION_SOURCE_LL: u8 = 1;
/// Option type: Target Link-Layer Address.
pub const OPTION_TARGET_LL: u8 = 2;
/// Option type: Nonce (RFC 3971 §5.3.2), carried by DAD probes (RFC 7527).
pub const OPTION_NONCE: u8 = 14;

const ETH_HEADER_LEN: usize = 14;
const IPV6_HEADER_LEN: usize = 40;
/// ICMPv6 type, code, checksum, the flags/reserved word and the 16-byte target.
const ND_MESSAGE_LEN: usize = 24;
/// Where the ICMPv6 message starts in a frame.
const ICMP_AT: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN;
/// Bytes a frame needs before its options start.
pub const ND_HEADERS_LEN: usize = ICMP_AT + ND_MESSAGE_LEN;

/// Bytes of every frame this module builds: headers plus one 8-byte option (a target
/// link-layer address, or a nonce). Above the 60-byte Ethernet minimum, so no padding.
pub const NDP_FRAME_LEN: usize = ND_HEADERS_LEN + 8;

/// A buffer one built frame is written into.
pub type NdpBuf = [u8; NDP_FRAME_LEN];

/// `ff02::1`, the all-nodes group: where unsolicited advertisements and answers to DAD probes go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// The Ethernet group address an IPv6 multicast address maps to (RFC 2464 §7): `33:33` and
/// the address's last 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1), `ff02::1:ffXX:XXXX` with the
/// address's last 24 bits: where neighbours send their solicitations for `ip`, so the group a
/// speaker must join for every IP it answers.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x02;
    g[11] = 0x01;
    g[12] = 0xff;
    g[13..].copy_from_slice(&o[13..]);
    Ipv6Addr::from(g)
}

/// Whether `ip` is some address's solicited-node multicast group (`ff02::1:ff00:0/104`).
pub fn is_solicited_node(ip: Ipv6Addr) -> bool {
    let o = ip.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// Which Neighbor Discovery message a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpMessage {
    /// Type 135: "who has the target?" (or, from `::`, a duplicate-address-detection probe).
    Solicitation,
    /// Type 136: "the target is at this link-layer address".
    Advertisement {
        /// R: the sender is a router.
        router: bool,
        /// S: an answer to a solicitation (never set on a multicast advertisement).
        solicited: bool,
        /// O: receivers must replace an existing cache entry with this link-layer address.
        override_flag: bool,
    },
}

/// A parsed, validated Ethernet + IPv6 + ICMPv6 Neighbor Solicitation or Advertisement.
/// Borrows the nonce from the received buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdpFrame<'a> {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// IPv6 source; `::` in a DAD probe.
    pub ip_src: Ipv6Addr,
    /// IPv6 destination: a solicited-node group, all-nodes, or a unicast address.
    pub ip_dst: Ipv6Addr,
    /// Solicitation or advertisement (with its flags).
    pub message: NdpMessage,
    /// The address asked about or advertised; never multicast.
    pub target: Ipv6Addr,
    /// The first Source Link-Layer Address option: the solicitor's MAC.
    pub source_ll: Option<MacAddr>,
    /// The first Target Link-Layer Address option: the MAC an advertisement maps `target` to.
    pub target_ll: Option<MacAddr>,
    /// The first Nonce option's bytes (length a multiple of 8, minus 2).
    pub nonce: Option<&'a [u8]>,
}

/// Why bytes off the wire are not a Neighbor Discovery frame we accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NdpError {
    /// Fewer bytes than the headers need.
    #[error("NDP frame too short: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// Not IPv6 (VLAN-tagged frames land here too when the tag is still in the frame).
    #[error("not an IPv6 frame: ethertype {0:#06x}")]
    NotIpv6(u16),
    /// The IPv6 header's version field is not 6.
    #[error("IPv6 header version field is {0}, not 6")]
    Version(u8),
    /// The IPv6 next header is not ICMPv6 (extension headers are not accepted, like the
    /// socket filter).
    #[error("IPv6 next header is {0}, not ICMPv6 (58)")]
    NextHeader(u8),
    /// The IPv6 payload length claims more bytes than the frame has.
    #[error("IPv6 payload length field is {declared}, but only {available} bytes follow")]
    PayloadLength {
        /// The header's payload length.
        declared: usize,
        /// Bytes after the IPv6 header.
        available: usize,
    },
    /// Hop limit other than 255: the sender is not on this link (RFC 4861 §7.1).
    #[error("IPv6 hop limit field is {0}, Neighbor Discovery requires 255")]
    HopLimit(u8),
    /// An ICMPv6 type other than 135/136.
    #[error("ICMPv6 type field is {0}, not a neighbor solicitation (135) or advertisement (136)")]
    NotNeighborDiscovery(u8),
    /// ICMPv6 code other than 0.
    #[error("ICMPv6 code field is {0}, Neighbor Discovery requires 0")]
    Code(u8),
    /// The ICMPv6 checksum does not match the message.
    #[error("ICMPv6 checksum field is {found:#06x}, the message sums to {expected:#06x}")]
    Checksum {
        /// The checksum in the frame.
        found: u16,
        /// The checksum the message should carry.
        expected: u16,
    },
    /// The target address is multicast (RFC 4861 §7.1.1/§7.1.2).
    #[error("NDP target address field {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    /// The IPv6 source is multicast, which no sender may use.
    #[error("IPv6 source address field {0} is multicast")]
    MulticastSource(Ipv6Addr),
    /// An option with length 0, which RFC 4861 §4.6 says must make the receiver drop the
    /// message (walking it would never end).
    #[error("NDP option of type {kind} at offset {offset} has length field 0")]
    ZeroLengthOption {
        /// The option's type.
        kind: u8,
        /// Where it starts, from the start of the options.
        offset: usize,
    },
    /// An option runs past the end of the message.
    #[error("NDP option at offset {offset} needs {need} bytes, only {available} remain")]
    OptionOverrun {
        /// Where it starts, from the start of the options.
        offset: usize,
        /// Bytes it claims.
        need: usize,
        /// Bytes left in the message.
        available: usize,
    },
    /// A link-layer address option whose length is not the one Ethernet defines (1, i.e. 8
    /// bytes, RFC 2464 §8).
    #[error("NDP link-layer address option of type {kind} has length field {units}, Ethernet requires 1")]
    LinkAddressLength {
        /// Option type (1 or 2).
        kind: u8,
        /// The length field.
        units: u8,
    },
    /// A DAD probe (source `::`) not sent to a solicited-node group (RFC 4861 §7.1.1).
    #[error("NDP solicitation from :: has IPv6 destination {0}, not a solicited-node group")]
    DadDestination(Ipv6Addr),
    /// A DAD probe carrying a source link-layer address option (RFC 4861 §7.1.1).
    #[error("NDP solicitation from :: carries a source link-layer address option")]
    DadWithSourceAddress,
    /// A multicast advertisement with the Solicited flag set (RFC 4861 §7.1.2).
    #[error("NDP advertisement to multicast destination {0} has the solicited flag set")]
    SolicitedMulticast(Ipv6Addr),
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Parses and validates one received Ethernet frame. Bytes after the IPv6 payload (Ethernet
/// padding) are ignored.
pub fn parse_frame(bytes: &[u8]) -> Result<NdpFrame<'_>, NdpError> {
    let truncated = |need| NdpError::Truncated {
        len: bytes.len(),
        need,
    };
    if bytes.len() < ETH_HEADER_LEN {
        return Err(truncated(ETH_HEADER_LEN));
    }
    let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
    if ethertype != ETHERTYPE_IPV6 {
        return Err(NdpError::NotIpv6(ethertype));
    }
    if bytes.len() < ICMP_AT {
        return Err(truncated(ICMP_AT));
    }
    let ip = &bytes[ETH_HEADER_LEN..ICMP_AT];
    let version = ip[0] >> 4;
    if version != 6 {
        return Err(NdpError::Version(version));
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[6] != NEXT_HEADER_ICMPV6 {
        return Err(NdpError::NextHeader(ip[6]));
    }
    if ip[7] != ND_HOP_LIMIT {
        return Err(NdpError::HopLimit(ip[7]));
    }
    let available = bytes.len() - ICMP_AT;
    if payload_len > available {
        return Err(NdpError::PayloadLength {
            declared: payload_len,
            available,
        });
    }
    let icmp = &bytes[ICMP_AT..ICMP_AT + payload_len];
    if icmp.len() < ND_MESSAGE_LEN {
        return Err(truncated(ND_HEADERS_LEN));
    }
    let ip_src = ipv6_at(ip, 8);
    let ip_dst = ipv6_at(ip, 24);
    let kind = icmp[0];
    if kind != TYPE_NEIGHBOR_SOLICITATION && kind != TYPE_NEIGHBOR_ADVERTISEMENT {
        return Err(NdpError::NotNeighborDiscovery(kind));
    }
    if icmp[1] != 0 {
        return Err(NdpError::Code(icmp[1]));
    }
    let found = u16::from_be_bytes([icmp[2], icmp[3]]);
    let expected = icmpv6_checksum(ip_src, ip_dst, icmp);
    if found != expected {
        return Err(NdpError::Checksum { found, expected });
    }
    if ip_src.is_multicast() {
        return Err(NdpError::MulticastSource(ip_src));
    }
    let target = ipv6_at(icmp, 8);
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget(target));
    }
    let message = if kind == TYPE_NEIGHBOR_SOLICITATION {
        NdpMessage::Solicitation
    } else {
        NdpMessage::Advertisement {
            router: icmp[4] & NA_FLAG_ROUTER != 0,
            solicited: icmp[4] & NA_FLAG_SOLICITED != 0,
            override_flag: icmp[4] & NA_FLAG_OVERRIDE != 0,
        }
    };
    let mut frame = NdpFrame {
        eth_dst: mac_at(bytes, 0),
        eth_src: mac_at(bytes, 6),
        ip_src,
        ip_dst,
        message,
        target,
        source_ll: None,
        target_ll: None,
        nonce: None,
    };
    read_options(&icmp[ND_MESSAGE_LEN..], &mut frame)?;
    match message {
        NdpMessage::Solicitation if ip_src.is_unspecified() => {
            if !is_solicited_node(ip_dst) {
                return Err(NdpError::DadDestination(ip_dst));
            }
            if frame.source_ll.is_some() {
                return Err(NdpError::DadWithSourceAddress);
            }
        }
        NdpMessage::Advertisement { solicited, .. } if solicited && ip_dst.is_multicast() => {
            return Err(NdpError::SolicitedMulticast(ip_dst));
        }
        _ => {}
    }
    Ok(frame)
}

/// Walks the options, keeping the first of each kind we use and skipping unknown ones (RFC
/// 4861 §4.6: receivers ignore options they do not recognise), and rejects the message if any
/// option is malformed.
fn read_options<'a>(mut opts: &'a [u8], frame: &mut NdpFrame<'a>) -> Result<(), NdpError> {
    let total = opts.len();
    while !opts.is_empty() {
        let offset = total - opts.len();
        let [kind, units, ..] = *opts else {
            return Err(NdpError::OptionOverrun {
                offset,
                need: 2,
                available: opts.len(),
            });
        };
        if units == 0 {
            return Err(NdpError::ZeroLengthOption { kind, offset });
        }
        let need = usize::from(units) * 8;
        let Some((option, rest)) = opts.split_at_checked(need) else {
            return Err(NdpError::OptionOverrun {
                offset,
                need,
                available: opts.len(),
            });
        };
        opts = rest;
        let body = &option[2..];
        match kind {
            OPTION_SOURCE_LL | OPTION_TARGET_LL => {
                if units != 1 {
                    return Err(NdpError::LinkAddressLength { kind, units });
                }
                let slot = if kind == OPTION_SOURCE_LL {
                    &mut frame.source_ll
                } else {
                    &mut frame.target_ll
                };
                slot.get_or_insert(mac_at(body, 0));
            }
            OPTION_NONCE => {
                frame.nonce.get_or_insert(body);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
