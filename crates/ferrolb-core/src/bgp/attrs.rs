//! Path attributes (RFC 4271 §5, RFC 1997, RFC 8092): the owned values an UPDATE carries for
//! a set of prefixes, and what a route originated by FerroLB is made of.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// ORIGIN: where the route came from. FerroLB originates `Igp`, as MetalLB and kube-vip do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: interior to the originating AS.
    Igp,
    /// 1: learned by EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

/// One AS_PATH segment (RFC 4271 §4.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsPathSegment {
    /// AS_SET (type 1).
    Set(Vec<u32>),
    /// AS_SEQUENCE (type 2).
    Sequence(Vec<u32>),
    /// Any other segment type (confederations), kept as type and ASNs.
    Other(u8, Vec<u32>),
}

/// A standard community (RFC 1997), the 32-bit value `AA:NN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE.
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (also called local-AS).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NO_PEER: Community = Community(0xFFFF_FF04);
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    /// The well-known names operators write, as MetalLB and the routers spell them.
    pub const WELL_KNOWN: &'static [(&'static str, Community)] = &[
        ("no-export", Community::NO_EXPORT),
        ("no-advertise", Community::NO_ADVERTISE),
        ("no-export-subconfed", Community::NO_EXPORT_SUBCONFED),
        ("local-as", Community::NO_EXPORT_SUBCONFED),
        ("no-peer", Community::NO_PEER),
        ("graceful-shutdown", Community::GRACEFUL_SHUTDOWN),
        ("accept-own", Community::ACCEPT_OWN),
        ("blackhole", Community::BLACKHOLE),
    ];
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xFFFF)
    }
}

impl FromStr for Community {
    type Err = String;

    /// `AA:NN` with two 16-bit numbers, or a well-known name.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((_, c)) = Community::WELL_KNOWN.iter().find(|(n, _)| *n == s) {
            return Ok(*c);
        }
        let (a, n) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not a community: expected \"AA:NN\", \"large:A:B:C\" or a well-known name such as no-export"))?;
        let part = |t: &str| {
            t.parse::<u16>()
                .map_err(|_| format!("{s:?}: {t:?} must be a number from 0 to 65535"))
        };
        Ok(Community((u32::from(part(a)?) << 16) | u32::from(part(n)?)))
    }
}

/// A large community (RFC 8092): global administrator and two local data parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "large:{}:{}:{}", self.0, self.1, self.2)
    }
}

impl FromStr for LargeCommunity {
    type Err = String;

    /// `large:A:B:C` with three 32-bit numbers.
    fn from_str(s: &str) -> Result<Self, String> {
        let body = s
            .strip_prefix("large:")
            .ok_or_else(|| format!("{s:?} is not a large community (expected \"large:A:B:C\")"))?;
        let parts: Vec<&str> = body.split(':').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(format!(
                "{s:?}: a large community has three parts, large:A:B:C"
            ));
        };
        let part = |t: &str| {
            t.parse::<u32>()
                .map_err(|_| format!("{s:?}: {t:?} must be a number from 0 to 4294967295"))
        };
        Ok(LargeCommunity(part(a)?, part(b)?, part(c)?))
    }
}

/// What FerroLB attaches to a prefix it originates, apart from what the session decides
/// (AS_PATH from the ASNs, next hop from the TCP connection's local address). Equal values
/// share an UPDATE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttrs {
    /// LOCAL_PREF; sent to iBGP peers only.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// Standard communities, sorted and without duplicates.
    pub communities: Vec<Community>,
    /// Large communities, sorted and without duplicates.
    pub large_communities: Vec<LargeCommunity>,
}

/// The path attributes of a received (or re-decoded) UPDATE, as values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH segments, ASNs widened to 32 bits.
    pub as_path: Option<Vec<AsPathSegment>>,
    /// AS4_PATH (RFC 6793) when a 2-octet speaker relays a 4-octet path.
    pub as4_path: Option<Vec<AsPathSegment>>,
    /// NEXT_HOP (IPv4 NLRI only).
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// Attributes this codec does not interpret: (flags, type code), value skipped.
    pub unknown: Vec<(u8, u8)>,
}
