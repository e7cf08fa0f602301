//! IP families and inclusive address ranges: the one shape every pool is built from.
//!
//! A CIDR, a `first-last` range and a single address all become an [`AddressRange`], so the
//! allocator and the overlap checks only ever deal with one kind of thing. Addresses are kept as
//! `u128` (IPv4 in the low 32 bits) because range arithmetic on a /64 must not enumerate it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::IpNetwork;
use thiserror::Error;

/// An IP address family; dual-stack Services get one address per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The address with numeric value `value` in this family. Callers pass values that came
    /// from an address of this family, so an IPv4 value always fits in 32 bits.
    pub fn ip_from_u128(self, value: u128) -> IpAddr {
        match self {
            // Truncation is intended: IPv4 values are stored zero-extended.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    /// The largest numeric address value of this family.
    pub fn max_value(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The numeric value of `ip` (IPv4 zero-extended), the key ranges and allocations are ordered by.
pub fn ip_to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// Why a string is not an address range. Each variant carries the offending text so the caller
/// can put it, together with the pool and field, into a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RangeError {
    /// Not a CIDR, an address, or `first-last`.
    #[error("{0:?} is not an IP address, a CIDR or a first-last range")]
    Syntax(String),
    /// A CIDR whose prefix length or address does not parse.
    #[error("invalid CIDR {0:?}")]
    BadCidr(String),
    /// A CIDR with host bits set, such as `192.168.1.1/24`: almost always a typo.
    #[error("CIDR {0:?} has host bits set (did you mean {1}?)")]
    HostBitsSet(String, String),
    /// A range whose ends are of different families.
    #[error("range {0:?} mixes IPv4 and IPv6")]
    MixedFamilies(String),
    /// A range whose first address is after its last.
    #[error("range {0:?} is reversed: {1} is after {2}")]
    Reversed(String, IpAddr, IpAddr),
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressRange {
    family: Family,
    first: u128,
    last: u128,
}

impl AddressRange {
    /// The range `first..=last`; both ends must be of one family, in order.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, RangeError> {
        let text = format!("{first}-{last}");
        if Family::of(&first) != Family::of(&last) {
            return Err(RangeError::MixedFamilies(text));
        }
        let (a, b) = (ip_to_u128(&first), ip_to_u128(&last));
        if a > b {
            return Err(RangeError::Reversed(text, first, last));
        }
        Ok(Self {
            family: Family::of(&first),
            first: a,
            last: b,
        })
    }

    /// The range covered by `net`.
    pub fn from_network(net: IpNetwork) -> Self {
        let family = Family::of(&net.ip());
        let (first, last) = match net {
            IpNetwork::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            IpNetwork::V6(n) => {
                let host_bits = 128 - u32::from(n.prefix());
                let mask = if host_bits == 128 {
                    u128::MAX
                } else {
                    (1u128 << host_bits) - 1
                };
                let base = u128::from(n.network());
                (base, base | mask)
            }
        };
        Self {
            family,
            first,
            last,
        }
    }

    /// Builds a range from numeric ends; used by code that already holds validated values.
    /// Returns `None` when the ends are out of order or out of the family's range.
    pub fn from_values(family: Family, first: u128, last: u128) -> Option<Self> {
        (first <= last && last <= family.max_value()).then_some(Self {
            family,
            first,
            last,
        })
    }

    /// The range's family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        self.family.ip_from_u128(self.first)
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        self.family.ip_from_u128(self.last)
    }

    /// The first address as a number.
    pub fn first_value(&self) -> u128 {
        self.first
    }

    /// The last address as a number.
    pub fn last_value(&self) -> u128 {
        self.last
    }

    /// How many addresses the range holds, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family && (self.first..=self.last).contains(&ip_to_u128(ip))
    }

    /// Whether the two ranges share at least one address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }
}

impl FromStr for AddressRange {
    type Err = RangeError;

    /// Accepts `192.168.1.0/24`, `fd00::/64`, `192.168.1.240-192.168.1.250` (spaces around the
    /// dash allowed, as MetalLB does), and a bare address meaning a single-address range.
    fn from_str(text: &str) -> Result<Self, RangeError> {
        let s = text.trim();
        if let Some((a, b)) = s.split_once('-') {
            let first =
                IpAddr::from_str(a.trim()).map_err(|_| RangeError::Syntax(text.to_string()))?;
            let last =
                IpAddr::from_str(b.trim()).map_err(|_| RangeError::Syntax(text.to_string()))?;
            return AddressRange::new(first, last).map_err(|e| match e {
                RangeError::MixedFamilies(_) => RangeError::MixedFamilies(text.to_string()),
                RangeError::Reversed(_, f, l) => RangeError::Reversed(text.to_string(), f, l),
                other => other,
            });
        }
        if s.contains('/') {
            let net = IpNetwork::from_str(s).map_err(|_| RangeError::BadCidr(text.to_string()))?;
            if net.ip() != net.network() {
                let fixed = format!("{}/{}", net.network(), net.prefix());
                return Err(RangeError::HostBitsSet(text.to_string(), fixed));
            }
            return Ok(AddressRange::from_network(net));
        }
        let ip = IpAddr::from_str(s).map_err(|_| RangeError::Syntax(text.to_string()))?;
        Ok(AddressRange::new(ip, ip).expect("a single address is a valid range"))
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidr_range_and_single_address() {
        let r: AddressRange = "192.168.2.0/28".parse().unwrap();
        assert_eq!(
            (r.first(), r.last(), r.size()),
            (ip("192.168.2.0"), ip("192.168.2.15"), 16)
        );
        let r: AddressRange = "192.168.1.240 - 192.168.1.250".parse().unwrap();
        assert_eq!(
            (r.first(), r.last(), r.size()),
            (ip("192.168.1.240"), ip("192.168.1.250"), 11)
        );
        let r: AddressRange = "fd00:1::/64".parse().unwrap();
        assert_eq!(r.size(), 1u128 << 64);
        assert_eq!(r.last(), ip("fd00:1::ffff:ffff:ffff:ffff"));
        let r: AddressRange = "2001:db8::5".parse().unwrap();
        assert_eq!(r.size(), 1);
        let r: AddressRange = "::/0".parse().unwrap();
        assert_eq!(r.size(), u128::MAX);
    }

    #[test]
    fn rejects_bad_ranges_with_the_value_in_the_message() {
        let e = "10.0.0.9-10.0.0.1".parse::<AddressRange>().unwrap_err();
        assert!(matches!(e, RangeError::Reversed(..)));
        assert!(e.to_string().contains("10.0.0.9-10.0.0.1"));
        let e = "10.0.0.1-fd00::1".parse::<AddressRange>().unwrap_err();
        assert!(matches!(e, RangeError::MixedFamilies(_)));
        let e = "10.0.0.1/24".parse::<AddressRange>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "CIDR \"10.0.0.1/24\" has host bits set (did you mean 10.0.0.0/24?)"
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<AddressRange>(),
            Err(RangeError::BadCidr(_))
        ));
        assert!(matches!(
            "banana".parse::<AddressRange>(),
            Err(RangeError::Syntax(_))
        ));
    }

    #[test]
    fn overlap_is_per_family_and_inclusive() {
        let a: AddressRange = "10.0.0.0-10.0.0.10".parse().unwrap();
        let b: AddressRange = "10.0.0.10-10.0.0.20".parse().unwrap();
        let c: AddressRange = "10.0.0.11/32".parse().unwrap();
        let v6: AddressRange = "::a/128".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(
            !a.overlaps(&v6),
            "the IPv4 value 10 and ::a must not be confused"
        );
        assert!(a.contains(&ip("10.0.0.10")) && !a.contains(&ip("::a")));
    }
}
