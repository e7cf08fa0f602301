//! Building Neighbor Advertisements and DAD probes into a caller-owned buffer: no allocation
//! on the answer path.

use std::net::Ipv6Addr;

use super::{
    icmpv6_checksum, multicast_mac, solicited_node, NdpBuf, NdpFrame, NdpMessage, ALL_NODES,
    ETHERTYPE_IPV6, ICMP_AT, NA_FLAG_OVERRIDE, NA_FLAG_ROUTER, NA_FLAG_SOLICITED, ND_HEADERS_LEN,
    ND_HOP_LIMIT, NEXT_HEADER_ICMPV6, OPTION_NONCE, OPTION_SOURCE_LL, OPTION_TARGET_LL,
    TYPE_NEIGHBOR_ADVERTISEMENT, TYPE_NEIGHBOR_SOLICITATION,
};
use crate::arp::MacAddr;

/// Writes bytes front to back into a slice; every write is bounds-checked by the caller's
/// size computation, and a write that would not fit is refused as a whole.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }
}

impl NdpFrame<'_> {
    /// Bytes [`NdpFrame::write`] produces for this frame.
    pub fn encoded_len(&self) -> usize {
        let nonce = self.nonce.map_or(0, |n| (n.len() + 2).div_ceil(8) * 8);
        ND_HEADERS_LEN
            + usize::from(self.source_ll.is_some()) * 8
            + usize::from(self.target_ll.is_some()) * 8
            + nonce
    }

    /// Writes this frame (hop limit 255, correct checksum; options in the order source
    /// address, target address, nonce; a nonce is zero-padded to whole 8-byte units) into the
    /// start of `out` and returns the bytes written, or `None` if `out` is too small or the
    /// nonce too long for an option. Parsing the result gives back `self` for every frame that
    /// [`parse_frame`] returned.
    pub fn write<'b>(&self, out: &'b mut [u8]) -> Option<&'b [u8]> {
        let len = self.encoded_len();
        let icmp_len = u16::try_from(len - ICMP_AT).ok()?;
        let buf = out.get_mut(..len)?;
        let mut w = Writer { buf, at: 0 };
        w.put(&self.eth_dst.octets())?;
        w.put(&self.eth_src.octets())?;
        w.put(&ETHERTYPE_IPV6.to_be_bytes())?;
        // Version 6, traffic class 0, flow label 0.
        w.put(&[0x60, 0, 0, 0])?;
        w.put(&icmp_len.to_be_bytes())?;
        w.put(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT])?;
        w.put(&self.ip_src.octets())?;
        w.put(&self.ip_dst.octets())?;
        let (kind, flags) = match self.message {
            NdpMessage::Solicitation => (TYPE_NEIGHBOR_SOLICITATION, 0),
            NdpMessage::Advertisement {
                router,
                solicited,
                override_flag,
            } => (
                TYPE_NEIGHBOR_ADVERTISEMENT,
                (u8::from(router) * NA_FLAG_ROUTER)
                    | (u8::from(solicited) * NA_FLAG_SOLICITED)
                    | (u8::from(override_flag) * NA_FLAG_OVERRIDE),
            ),
        };
        w.put(&[kind, 0, 0, 0, flags, 0, 0, 0])?;
        w.put(&self.target.octets())?;
        if let Some(mac) = self.source_ll {
            w.put(&[OPTION_SOURCE_LL, 1])?;
            w.put(&mac.octets())?;
        }
        if let Some(mac) = self.target_ll {
            w.put(&[OPTION_TARGET_LL, 1])?;
            w.put(&mac.octets())?;
        }
        if let Some(nonce) = self.nonce {
            let units = (nonce.len() + 2).div_ceil(8);
            w.put(&[OPTION_NONCE, u8::try_from(units).ok()?])?;
            w.put(nonce)?;
            let pad = units * 8 - 2 - nonce.len();
            w.put(&[0u8; 7][..pad])?;
        }
        let buf = w.buf;
        let sum = icmpv6_checksum(self.ip_src, self.ip_dst, &buf[ICMP_AT..]);
        buf[ICMP_AT + 2..ICMP_AT + 4].copy_from_slice(&sum.to_be_bytes());
        Some(buf)
    }
}

/// Writes a frame known to fit [`NDP_FRAME_LEN`] (headers plus one 8-byte option).
fn write_fixed<'b>(frame: &NdpFrame<'_>, buf: &'b mut NdpBuf) -> &'b [u8] {
    let len = frame.encoded_len();
    // Every builder below sets exactly one 8-byte option, so `write` cannot fail; if it ever
    // did, an empty frame is sent nowhere rather than a panic on the hot path.
    match frame.write(&mut buf[..]) {
        Some(_) => &buf[..len],
        None => &[],
    }
}

/// Builds the answer to a Neighbor Solicitation for `target`, an IP this node announces, from
/// the solicitor `from_ip` at `from_mac` (its Source Link-Layer Address option, or its Ethernet
/// source when it sent none, as unicast reachability probes may).
///
/// RFC 4861 §7.2.4: to the solicitor's unicast address with Solicited set, unless the
/// solicitation came from `::` (a DAD probe), in which case the answer goes to all-nodes
/// (`ff02::1`, `33:33:00:00:00:01`) with Solicited clear — the prober has no address to be
/// answered at, and a multicast advertisement with S=1 is invalid (§7.1.2).
///
/// Override is always set. §7.2.4 says O=0 only for anycast addresses and proxied targets;
/// a Service IP is neither: one speaker owns it and answers with its own MAC. With O=0 a
/// neighbour that still holds the previous owner's MAC in a REACHABLE entry would keep it
/// (§7.2.5: a non-override advertisement with a different address only marks the entry
/// STALE), and traffic would keep going to the old node after a failover until the entry
/// ages out; MetalLB answers with O=0 and has exactly that window. Router is clear: the
/// speaker does not route for the IP. The IPv6 source is `target` itself (an address the
/// advertisement is about, as the node's kernel would use for its own addresses), so no
/// link-local address is needed; hop limit 255; Target Link-Layer Address = `our_mac`.
pub fn build_advertisement_reply(
    buf: &mut NdpBuf,
    our_mac: MacAddr,
    target: Ipv6Addr,
    from_mac: MacAddr,
    from_ip: Ipv6Addr,
) -> &[u8] {
    let dad = from_ip.is_unspecified();
    let (eth_dst, ip_dst) = if dad {
        (multicast_mac(ALL_NODES), ALL_NODES)
    } else {
        (from_mac, from_ip)
    };
    write_fixed(
        &our_advertisement(our_mac, target, (eth_dst, ip_dst), !dad),
        buf,
    )
}

/// An advertisement of `target` at `our_mac` (Override set, Router clear, from `target`
/// itself), to `to`; the one shape every advertisement the speaker sends has.
fn our_advertisement(
    our_mac: MacAddr,
    target: Ipv6Addr,
    to: (MacAddr, Ipv6Addr),
    solicited: bool,
) -> NdpFrame<'static> {
    NdpFrame {
        eth_dst: to.0,
        eth_src: our_mac,
        ip_src: target,
        ip_dst: to.1,
        message: NdpMessage::Advertisement {
            router: false,
            solicited,
            override_flag: true,
        },
        target,
        source_ll: None,
        target_ll: Some(our_mac),
        nonce: None,
    }
}

/// Builds an unsolicited Neighbor Advertisement for `target` from `our_mac`, to all-nodes
/// (`ff02::1`, `33:33:00:00:00:01`), with Override set and Solicited clear (RFC 4861 §7.2.6):
/// every neighbour with an entry for `target` replaces its MAC with ours on takeover. The IPv6
/// counterpart of gratuitous ARP.
pub fn build_unsolicited_advertisement(
    buf: &mut NdpBuf,
    our_mac: MacAddr,
    target: Ipv6Addr,
) -> &[u8] {
    let all_nodes = (multicast_mac(ALL_NODES), ALL_NODES);
    write_fixed(&our_advertisement(our_mac, target, all_nodes, false), buf)
}

/// Builds a duplicate-address-detection probe for `target` (RFC 4862 §5.4.2): a solicitation
/// from `::` to the target's solicited-node group, without a source link-layer address (so it
/// poisons no cache), with a Nonce option (RFC 7527) so a looped-back copy can be told from
/// another host's probe. The IPv6 counterpart of an RFC 5227 ARP probe: whoever uses `target`
/// defends it with an advertisement to all-nodes.
pub fn build_dad_probe(
    buf: &mut NdpBuf,
    our_mac: MacAddr,
    target: Ipv6Addr,
    nonce: [u8; 6],
) -> &[u8] {
    let group = solicited_node(target);
    let frame = NdpFrame {
        eth_dst: multicast_mac(group),
        eth_src: our_mac,
        ip_src: Ipv6Addr::UNSPECIFIED,
        ip_dst: group,
        message: NdpMessage::Solicitation,
        target,
        source_ll: None,
        target_ll: None,
        nonce: Some(&nonce),
    };
    write_fixed(&frame, buf)
}
