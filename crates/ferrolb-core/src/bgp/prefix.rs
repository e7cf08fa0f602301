//! An IP prefix as BGP carries it: an address with its host bits cleared and a length.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// A route's destination. Ordered by family, then address, then length, so tables of prefixes
/// iterate in a stable order and IPv4 and IPv6 never mix within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PrefixError {
    /// The length exceeds the family's address width.
    #[error("prefix length {len} exceeds {max} bits")]
    TooLong {
        /// The length asked for.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
}

impl Prefix {
    /// The prefix of length `len` that holds `addr` (host bits are cleared, so an IP and an
    /// aggregation length give the covering prefix directly).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = max_len(&addr);
        if len > max {
            return Err(PrefixError::TooLong { len, max });
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Self { addr, len })
    }

    /// A host route: /32 or /128.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: max_len(&addr),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the default route (length 0); clippy asks for this beside `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` lies inside this prefix (an aggregated prefix covers many Service IPs).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && Prefix::new(ip, self.len).is_ok_and(|p| p == *self)
    }

    /// Whether the prefix is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Bytes this prefix takes in NLRI encoding: one length octet plus the significant octets.
    pub fn wire_len(&self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }

    /// Appends the NLRI encoding (RFC 4271 §4.3: length in bits, then only the octets needed).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let n = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
        }
    }

    /// Reads one NLRI-encoded prefix of the given family from the front of `buf`; `None` when
    /// the length is impossible for the family, the bytes run out, or host bits are set
    /// (RFC 4271 leaves trailing bits "irrelevant", but no sane speaker sets them and
    /// accepting them would make two encodings of one route).
    pub(crate) fn read(buf: &[u8], v6: bool) -> Option<(Self, usize)> {
        let (&len, rest) = buf.split_first()?;
        let max = if v6 { 128 } else { 32 };
        if len > max {
            return None;
        }
        let n = usize::from(len).div_ceil(8);
        let bytes = rest.get(..n)?;
        let addr = if v6 {
            let mut o = [0u8; 16];
            o[..n].copy_from_slice(bytes);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let mut o = [0u8; 4];
            o[..n].copy_from_slice(bytes);
            IpAddr::V4(Ipv4Addr::from(o))
        };
        let p = Prefix::new(addr, len).ok()?;
        if p.addr != addr {
            return None;
        }
        Some((p, 1 + n))
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Iterates over prefixes in an NLRI field that was validated when the message was decoded.
#[derive(Debug, Clone)]
pub(crate) struct PrefixIter<'a> {
    buf: &'a [u8],
    v6: bool,
}

impl<'a> PrefixIter<'a> {
    pub(crate) fn new(buf: &'a [u8], v6: bool) -> Self {
        Self { buf, v6 }
    }
}

impl Iterator for PrefixIter<'_> {
    type Item = Prefix;

    fn next(&mut self) -> Option<Prefix> {
        let (p, used) = Prefix::read(self.buf, self.v6)?;
        self.buf = &self.buf[used..];
        Some(p)
    }
}

/// Checks that `buf` is a whole number of well-formed prefixes, returning how many.
pub(crate) fn validate_nlri(buf: &[u8], v6: bool) -> Option<usize> {
    let mut rest = buf;
    let mut count = 0;
    while !rest.is_empty() {
        let (_, used) = Prefix::read(rest, v6)?;
        rest = &rest[used..];
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clears_host_bits_and_encodes_only_needed_octets() {
        let p = Prefix::new("198.51.100.77".parse().unwrap(), 24).unwrap();
        assert_eq!(p.to_string(), "198.51.100.0/24");
        let mut out = Vec::new();
        p.write(&mut out);
        assert_eq!(out, [24, 198, 51, 100]);
        assert_eq!(Prefix::read(&out, false), Some((p, 4)));
        let h = Prefix::host("2001:db8::1".parse().unwrap());
        assert_eq!(h.wire_len(), 17);
        assert!(Prefix::new("2001:db8::".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn rejects_set_host_bits_and_short_input() {
        assert_eq!(
            Prefix::read(&[24, 198, 51, 100, 1], false).map(|p| p.1),
            Some(4)
        );
        assert_eq!(Prefix::read(&[23, 198, 51, 101], false), None);
        assert_eq!(Prefix::read(&[24, 198, 51], false), None);
        assert_eq!(Prefix::read(&[33, 1, 2, 3, 4, 5], false), None);
        assert_eq!(validate_nlri(&[0, 8, 10], false), Some(2));
    }
}
