//! The ICMPv6 checksum (RFC 1071 sum over the RFC 8200 §8.1 pseudo-header and the message).

use std::net::Ipv6Addr;

use super::NEXT_HEADER_ICMPV6;

/// The one's-complement sum (RFC 1071) of the IPv6 pseudo-header (RFC 8200 §8.1) for an
/// ICMPv6 message of `len` bytes, not yet folded.
fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u64 {
    let mut sum: u64 = 0;
    for addr in [src, dst] {
        for w in addr.segments() {
            sum += u64::from(w);
        }
    }
    // `len` comes from a 16-bit field or a small constant, so it fits in 32 bits.
    sum += (len as u64) & 0xffff_ffff;
    sum + u64::from(NEXT_HEADER_ICMPV6)
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn add_bytes(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The ICMPv6 checksum of `message` sent from `src` to `dst`, computed with the message's own
/// checksum field (bytes 2..4) taken as zero, so it works on a received message too.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let sum = pseudo_header_sum(src, dst, message.len());
    let sum = match (message.get(..2), message.get(4..)) {
        (Some(head), Some(rest)) => add_bytes(add_bytes(sum, head), rest),
        _ => add_bytes(sum, message),
    };
    !fold(sum)
}
