//! Ethernet II + ARP (IPv4 over Ethernet) frames: parsing and building.
//!
//! Everything received comes straight off a raw socket from any host on the LAN, so parsing
//! must reject malformed frames with an error and never panic. Building writes into a
//! caller-owned buffer so the hot path (answering requests) allocates nothing.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::mac::MacAddr;

/// Ethernet II ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// ARP hardware type of Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// ARP protocol type of IPv4 (the IPv4 ethertype).
const PTYPE_IPV4: u16 = 0x0800;
const ETH_HEADER_LEN: usize = 14;

/// Bytes an Ethernet II header plus an IPv4-over-Ethernet ARP payload occupy; shorter input is
/// truncated.
pub const ARP_FRAME_LEN: usize = 42;

/// Bytes every built frame occupies: the Ethernet minimum (64) without the 4-byte FCS the NIC
/// appends. Builders zero-pad to it because not every driver pads short frames sent on raw
/// sockets (veth does not), and some switches drop runts.
pub const FRAME_LEN: usize = 60;

/// A buffer one built frame is written into.
pub type FrameBuf = [u8; FRAME_LEN];

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    /// 1: "who has target IP?" (also used for gratuitous announcements and RFC 5227 probes).
    Request,
    /// 2: "sender IP is at sender MAC".
    Reply,
}

impl ArpOp {
    /// The on-wire opcode.
    pub const fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

/// A parsed Ethernet II frame carrying IPv4-over-Ethernet ARP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpFrame {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address: the MAC that neighbours will map `sender_ip` to.
    pub sender_mac: MacAddr,
    /// Sender protocol address; 0.0.0.0 in an RFC 5227 probe.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero or ignored in requests).
    pub target_mac: MacAddr,
    /// Target protocol address: the IP a request asks about.
    pub target_ip: Ipv4Addr,
}

/// Why bytes off the wire are not an ARP frame we understand.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArpError {
    /// Fewer bytes than the headers need.
    #[error("frame too short: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes required.
        need: usize,
    },
    /// Not ARP at all; VLAN-tagged frames land here too, since the kernel normally strips tags
    /// before a packet socket sees them.
    #[error("not an ARP frame: ethertype {0:#06x}")]
    NotArp(u16),
    /// ARP for a hardware type other than Ethernet.
    #[error("unsupported ARP hardware type {0}")]
    HardwareType(u16),
    /// ARP for a protocol other than IPv4.
    #[error("unsupported ARP protocol type {0:#06x}")]
    ProtocolType(u16),
    /// Address lengths other than 6 (MAC) and 4 (IPv4).
    #[error("unsupported ARP address lengths: hardware {hlen}, protocol {plen}")]
    AddressLengths {
        /// Declared hardware address length.
        hlen: u8,
        /// Declared protocol address length.
        plen: u8,
    },
    /// An opcode other than request (1) or reply (2), e.g. RARP.
    #[error("unsupported ARP opcode {0}")]
    Opcode(u16),
}

/// Reads fixed-size fields front to back; every read is bounds-checked so no input can panic.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn mac(&mut self) -> Option<MacAddr> {
        self.array().map(MacAddr)
    }

    fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.array::<4>().map(Ipv4Addr::from)
    }
}

/// Parses one received Ethernet frame. Bytes after the ARP payload (Ethernet padding up to 60
/// bytes, or anything else) are ignored.
pub fn parse_frame(bytes: &[u8]) -> Result<ArpFrame, ArpError> {
    let truncated = |need| ArpError::Truncated {
        len: bytes.len(),
        need,
    };
    let mut r = Reader(bytes);
    let (eth_dst, eth_src, ethertype) = match (r.mac(), r.mac(), r.u16()) {
        (Some(d), Some(s), Some(t)) => (d, s, t),
        _ => return Err(truncated(ETH_HEADER_LEN)),
    };
    if ethertype != ETHERTYPE_ARP {
        return Err(ArpError::NotArp(ethertype));
    }
    let body = (|| {
        Some((
            r.u16()?,
            r.u16()?,
            r.u8()?,
            r.u8()?,
            r.u16()?,
            r.mac()?,
            r.ipv4()?,
            r.mac()?,
            r.ipv4()?,
        ))
    })();
    let Some((htype, ptype, hlen, plen, op, sender_mac, sender_ip, target_mac, target_ip)) = body
    else {
        return Err(truncated(ARP_FRAME_LEN));
    };
    if htype != HTYPE_ETHERNET {
        return Err(ArpError::HardwareType(htype));
    }
    if ptype != PTYPE_IPV4 {
        return Err(ArpError::ProtocolType(ptype));
    }
    if hlen != 6 || plen != 4 {
        return Err(ArpError::AddressLengths { hlen, plen });
    }
    let op = match op {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        other => return Err(ArpError::Opcode(other)),
    };
    Ok(ArpFrame {
        eth_dst,
        eth_src,
        op,
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    })
}

impl ArpFrame {
    /// Writes this frame into `buf`, zero-padded to [`FRAME_LEN`], and returns the bytes to send.
    /// Parsing the result gives back `self`.
    pub fn write<'b>(&self, buf: &'b mut FrameBuf) -> &'b [u8] {
        let mut w = Writer(&mut buf[..]);
        w.put(&self.eth_dst.octets());
        w.put(&self.eth_src.octets());
        w.put(&ETHERTYPE_ARP.to_be_bytes());
        w.put(&HTYPE_ETHERNET.to_be_bytes());
        w.put(&PTYPE_IPV4.to_be_bytes());
        w.put(&[6, 4]);
        w.put(&self.op.code().to_be_bytes());
        w.put(&self.sender_mac.octets());
        w.put(&self.sender_ip.octets());
        w.put(&self.target_mac.octets());
        w.put(&self.target_ip.octets());
        w.0.fill(0);
        &buf[..]
    }
}

/// Writes fields front to back into a buffer known to be large enough ([`FRAME_LEN`] >
/// [`ARP_FRAME_LEN`]), so no write can fall off the end.
struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let buf = std::mem::take(&mut self.0);
        let n = bytes.len().min(buf.len());
        let (head, rest) = buf.split_at_mut(n);
        head.copy_from_slice(&bytes[..n]);
        self.0 = rest;
    }
}

/// Builds the unicast reply to an ARP request for a VIP this node announces: "`our_ip` is at
/// `our_mac`", addressed to the asker (`to_mac`, `to_ip`, i.e. the request's sender fields).
/// To answer an RFC 5227 probe, `to_ip` is 0.0.0.0, as Linux does.
pub fn build_reply(
    buf: &mut FrameBuf,
    our_mac: MacAddr,
    our_ip: Ipv4Addr,
    to_mac: MacAddr,
    to_ip: Ipv4Addr,
) -> &[u8] {
    ArpFrame {
        eth_dst: to_mac,
        eth_src: our_mac,
        op: ArpOp::Reply,
        sender_mac: our_mac,
        sender_ip: our_ip,
        target_mac: to_mac,
        target_ip: to_ip,
    }
    .write(buf)
}

/// Builds a gratuitous ARP for `vip` from `mac`, to broadcast, with sender IP = target IP = VIP,
/// so every neighbour updates its cache entry for the VIP on takeover.
///
/// Target hardware address: for a request, 00:00:00:00:00:00, as RFC 5227 §2.3 specifies for an
/// ARP Announcement; for a reply, `mac` itself, as RFC 5944 §4.6 specifies for a gratuitous
/// reply and `arping -A` sends. Receivers update caches from the sender fields only (RFC 826),
/// so this choice matters only for strict validators, and these are the documented forms.
pub fn build_gratuitous(buf: &mut FrameBuf, mac: MacAddr, vip: Ipv4Addr, op: ArpOp) -> &[u8] {
    let target_mac = match op {
        ArpOp::Request => MacAddr::ZERO,
        ArpOp::Reply => mac,
    };
    ArpFrame {
        eth_dst: MacAddr::BROADCAST,
        eth_src: mac,
        op,
        sender_mac: mac,
        sender_ip: vip,
        target_mac,
        target_ip: vip,
    }
    .write(buf)
}

/// Builds an RFC 5227 ARP probe for `ip`: a broadcast request with sender IP 0.0.0.0, so asking
/// "is anyone using this IP?" poisons no neighbour's cache. Any reply (or any ARP with `ip` as
/// its sender IP) means someone else already answers for the IP.
pub fn build_probe(buf: &mut FrameBuf, mac: MacAddr, ip: Ipv4Addr) -> &[u8] {
    ArpFrame {
        eth_dst: MacAddr::BROADCAST,
        eth_src: mac,
        op: ArpOp::Request,
        sender_mac: mac,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_mac: MacAddr::ZERO,
        target_ip: ip,
    }
    .write(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 240);
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// A request from PEER/HOST for VIP, written out by hand byte by byte so the codec is checked
    /// against the wire format, not against itself.
    fn request_bytes() -> Vec<u8> {
        let mut b = vec![0xff; 6]; // dst broadcast
        b.extend([0x02, 0, 0, 0, 0, 0x02]); // src
        b.extend([0x08, 0x06]); // ARP
        b.extend([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
        b.extend([0x02, 0, 0, 0, 0, 0x02, 198, 51, 100, 7]);
        b.extend([0, 0, 0, 0, 0, 0, 198, 51, 100, 240]);
        b
    }

    #[test]
    fn parses_a_hand_written_request() {
        let f = parse_frame(&request_bytes()).expect("valid request");
        assert_eq!(
            f,
            ArpFrame {
                eth_dst: MacAddr::BROADCAST,
                eth_src: PEER,
                op: ArpOp::Request,
                sender_mac: PEER,
                sender_ip: HOST,
                target_mac: MacAddr::ZERO,
                target_ip: VIP,
            }
        );
    }

    #[test]
    fn padding_and_trailing_bytes_are_ignored() {
        let mut b = request_bytes();
        b.resize(60, 0);
        assert!(parse_frame(&b).is_ok());
        b.extend([0xde, 0xad, 0xbe, 0xef]);
        assert!(parse_frame(&b).is_ok());
    }

    #[test]
    fn short_frames_are_truncation_errors() {
        let b = request_bytes();
        assert_eq!(
            parse_frame(&b[..41]),
            Err(ArpError::Truncated { len: 41, need: 42 })
        );
        assert_eq!(
            parse_frame(&b[..13]),
            Err(ArpError::Truncated { len: 13, need: 14 })
        );
        assert_eq!(
            parse_frame(&[]),
            Err(ArpError::Truncated { len: 0, need: 14 })
        );
    }

    #[test]
    fn each_header_field_is_validated() {
        let with = |at: usize, bytes: &[u8]| {
            let mut b = request_bytes();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            parse_frame(&b)
        };
        assert_eq!(with(12, &[0x08, 0x00]), Err(ArpError::NotArp(0x0800)));
        assert_eq!(with(12, &[0x81, 0x00]), Err(ArpError::NotArp(0x8100)));
        assert_eq!(with(14, &[0x00, 0x06]), Err(ArpError::HardwareType(6)));
        assert_eq!(with(16, &[0x86, 0xdd]), Err(ArpError::ProtocolType(0x86dd)));
        assert_eq!(
            with(18, &[8]),
            Err(ArpError::AddressLengths { hlen: 8, plen: 4 })
        );
        assert_eq!(
            with(19, &[16]),
            Err(ArpError::AddressLengths { hlen: 6, plen: 16 })
        );
        assert_eq!(with(20, &[0x00, 0x03]), Err(ArpError::Opcode(3)));
        assert_eq!(with(20, &[0x00, 0x00]), Err(ArpError::Opcode(0)));
        assert_eq!(with(20, &[0x00, 0x02]).map(|f| f.op), Ok(ArpOp::Reply));
    }

    #[test]
    fn reply_is_unicast_from_us_to_the_asker() {
        let mut buf = [0xaa; FRAME_LEN];
        let bytes = build_reply(&mut buf, OURS, VIP, PEER, HOST);
        assert_eq!(bytes.len(), FRAME_LEN);
        assert!(
            bytes[ARP_FRAME_LEN..].iter().all(|&b| b == 0),
            "padding is zeroed"
        );
        let mut expected = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06];
        expected.extend([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02]);
        expected.extend([0x02, 0, 0, 0, 0, 0x01, 198, 51, 100, 240]);
        expected.extend([0x02, 0, 0, 0, 0, 0x02, 198, 51, 100, 7]);
        assert_eq!(&bytes[..ARP_FRAME_LEN], &expected[..]);
    }

    #[test]
    fn gratuitous_request_and_reply_announce_the_vip_to_broadcast() {
        let mut buf = [0; FRAME_LEN];
        let req = parse_frame(build_gratuitous(&mut buf, OURS, VIP, ArpOp::Request))
            .expect("own frame parses");
        assert_eq!(req.eth_dst, MacAddr::BROADCAST);
        assert_eq!(
            (req.op, req.sender_mac, req.sender_ip),
            (ArpOp::Request, OURS, VIP)
        );
        assert_eq!((req.target_mac, req.target_ip), (MacAddr::ZERO, VIP));
        let rep = parse_frame(build_gratuitous(&mut buf, OURS, VIP, ArpOp::Reply))
            .expect("own frame parses");
        assert_eq!(rep.eth_dst, MacAddr::BROADCAST);
        assert_eq!(
            (rep.op, rep.sender_mac, rep.sender_ip),
            (ArpOp::Reply, OURS, VIP)
        );
        assert_eq!((rep.target_mac, rep.target_ip), (OURS, VIP));
    }

    #[test]
    fn probe_uses_the_unspecified_sender_ip() {
        let mut buf = [0; FRAME_LEN];
        let p = parse_frame(build_probe(&mut buf, OURS, VIP)).expect("own frame parses");
        assert_eq!(p.eth_dst, MacAddr::BROADCAST);
        assert_eq!(p.op, ArpOp::Request);
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!((p.target_mac, p.target_ip), (MacAddr::ZERO, VIP));
    }
}
