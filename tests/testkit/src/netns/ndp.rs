//! IPv6 Neighbor Discovery frames built and read byte by byte, independent of the product's
//! codec (`ferrolb_core::ndp`), so a test or bench that sends them judges the speaker rather
//! than agreeing with it. Every field can be set to a wrong value on purpose.

use std::net::Ipv6Addr;

use super::MacAddr;

/// The ICMPv6 checksum of `msg` (checksum field zeroed) between `src` and `dst` (RFC 4443 §2.3).
pub fn icmp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for pair in b.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |&x| u32::from(x));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address an IPv6 multicast `group` is sent to (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Every field of an Ethernet + IPv6 + ICMPv6 ND frame, freely settable (to wrong values too).
#[derive(Clone, Debug)]
pub struct RawNd {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    /// An 802.1Q tag (TCI) inserted after the MACs.
    pub vlan: Option<u16>,
    /// The IPv6 next header (58 for ICMPv6).
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub icmp_type: u8,
    pub code: u8,
    pub flags: u8,
    pub target: Ipv6Addr,
    pub options: Vec<u8>,
    /// Added to the correct checksum (0 = valid).
    pub checksum_delta: u16,
    /// Added to the correct IPv6 payload length (0 = valid).
    pub length_delta: u16,
    /// Bytes cut off the end.
    pub cut: usize,
}

impl RawNd {
    /// A valid solicitation for `target` from `from_mac`/`src` to `dst` (at `eth_dst`), with
    /// no options.
    pub fn solicitation(
        from_mac: MacAddr,
        src: Ipv6Addr,
        target: Ipv6Addr,
        dst: Ipv6Addr,
        eth_dst: MacAddr,
    ) -> Self {
        RawNd {
            eth_dst,
            eth_src: from_mac,
            vlan: None,
            next_header: 58,
            hop_limit: 255,
            src,
            dst,
            icmp_type: 135,
            code: 0,
            flags: 0,
            target,
            options: Vec::new(),
            checksum_delta: 0,
            length_delta: 0,
            cut: 0,
        }
    }

    /// A valid multicast solicitation for `target`, to its solicited-node group, with the
    /// source link-layer address option, as a host resolving `target` sends it.
    pub fn multicast_solicitation(from_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Self {
        let group = solicited_node(target);
        let mut s = Self::solicitation(from_mac, src, target, group, multicast_mac(group));
        s.options = source_lla(from_mac);
        s
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut msg = vec![self.icmp_type, self.code, 0, 0, self.flags, 0, 0, 0];
        msg.extend(self.target.octets());
        msg.extend(&self.options);
        let sum = icmp6_checksum(self.src, self.dst, &msg).wrapping_add(self.checksum_delta);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = Vec::with_capacity(14 + 4 + 40 + msg.len());
        f.extend(self.eth_dst.0);
        f.extend(self.eth_src.0);
        if let Some(tci) = self.vlan {
            f.extend([0x81, 0x00]);
            f.extend(tci.to_be_bytes());
        }
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend(
            (msg.len() as u16)
                .wrapping_add(self.length_delta)
                .to_be_bytes(),
        );
        f.extend([self.next_header, self.hop_limit]);
        f.extend(self.src.octets());
        f.extend(self.dst.octets());
        f.extend(msg);
        f.truncate(f.len().saturating_sub(self.cut));
        f
    }
}

/// A source link-layer address option (type 1, one 8-byte unit) carrying `mac`.
pub fn source_lla(mac: MacAddr) -> Vec<u8> {
    let mut o = vec![1, 1];
    o.extend(mac.0);
    o
}

/// A Neighbor Advertisement read out of raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Na {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// The target link-layer address option, if present.
    pub tlla: Option<MacAddr>,
    pub checksum_ok: bool,
}

/// The IPv6 address in the first 16 bytes of `b` (which must be that long).
pub fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// The MAC in the first 6 bytes of `b` (which must be that long).
pub fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    MacAddr(m)
}

/// `Some` if `f` is an untagged Ethernet frame carrying a Neighbor Advertisement.
pub fn na_of(f: &[u8]) -> Option<Na> {
    if f.len() < 78 || f[12..14] != [0x86, 0xdd] || f[20] != 58 || f[54] != 136 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
    let msg = f.get(54..54 + len)?;
    if msg.len() < 24 {
        return None;
    }
    let (src, dst) = (ip6(&f[22..]), ip6(&f[38..]));
    let mut zeroed = msg.to_vec();
    zeroed[2..4].copy_from_slice(&[0, 0]);
    let checksum_ok = icmp6_checksum(src, dst, &zeroed) == u16::from_be_bytes([msg[2], msg[3]]);
    let mut tlla = None;
    let mut opts = &msg[24..];
    while opts.len() >= 8 && opts[1] > 0 {
        if opts[0] == 2 && opts[1] == 1 {
            tlla = Some(mac(&opts[2..]));
        }
        opts = opts.get(usize::from(opts[1]) * 8..).unwrap_or(&[]);
    }
    Some(Na {
        eth_dst: mac(&f[0..]),
        eth_src: mac(&f[6..]),
        hop_limit: f[21],
        src,
        dst,
        router: msg[4] & 0x80 != 0,
        solicited: msg[4] & 0x40 != 0,
        override_flag: msg[4] & 0x20 != 0,
        target: ip6(&msg[8..]),
        tlla,
        checksum_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one's-complement property every receiver checks: a message summed with its
    /// correct checksum in place gives zero; and the frame goes to the group's MAC.
    #[test]
    fn a_built_solicitation_carries_a_checksum_receivers_accept() {
        let m = MacAddr([0x02, 0xfe, 0, 0, 2, 0]);
        let src: Ipv6Addr = "2001:db8::200".parse().expect("literal");
        let target: Ipv6Addr = "2001:db8::100".parse().expect("literal");
        let f = RawNd::multicast_solicitation(m, src, target).bytes();
        let msg = &f[54..];
        // Summing a message with its checksum in place yields 0 (all ones, complemented).
        assert_eq!(icmp6_checksum(src, solicited_node(target), msg), 0);
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0x01, 0x00]);
    }
}
