//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492): multiprotocol (RFC 4760), route refresh
//! (RFC 2918) and 4-octet ASNs (RFC 6793). Capabilities this codec does not know are kept as
//! bytes, so a peer's enhanced route refresh or graceful restart never breaks the session.

use std::net::Ipv4Addr;

use super::error::DecodeError;
use super::message::{begin, finish, MessageType};
use super::notification::OpenSubcode;

/// The ASN a 2-octet field carries when the real one needs 4 octets (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;
/// SAFI 1: unicast, the only one FerroLB advertises.
pub const SAFI_UNICAST: u8 = 1;

/// Address family identifier (IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    /// 1.
    Ipv4,
    /// 2.
    Ipv6,
    /// Anything else.
    Other(u16),
}

impl Afi {
    /// The wire value.
    pub fn value(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
            Afi::Other(v) => v,
        }
    }

    /// The AFI for a wire value.
    pub fn from_value(v: u16) -> Self {
        match v {
            1 => Afi::Ipv4,
            2 => Afi::Ipv6,
            other => Afi::Other(other),
        }
    }
}

/// One capability of an OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability<'a> {
    /// Code 1: the speaker handles this (AFI, SAFI).
    Multiprotocol {
        /// Address family.
        afi: Afi,
        /// Subsequent address family.
        safi: u8,
    },
    /// Code 2: the speaker answers ROUTE-REFRESH.
    RouteRefresh,
    /// Code 65: the speaker's real (4-octet) ASN.
    FourOctetAs(u32),
    /// Any other code, value kept as it came.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: &'a [u8],
    },
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open<'a> {
    /// The BGP version; only 4 is accepted on decode.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS for a 4-octet ASN).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities in the order they came.
    pub capabilities: Vec<Capability<'a>>,
}

impl<'a> Open<'a> {
    /// The speaker's ASN: the 4-octet capability when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the 4-octet ASN capability is present.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Whether the speaker announced route refresh.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// The (AFI, SAFI) pairs announced; none at all means IPv4 unicast only (RFC 4760 §8).
    pub fn families(&self) -> Vec<(Afi, u8)> {
        let mp: Vec<(Afi, u8)> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol { afi, safi } => Some((*afi, *safi)),
                _ => None,
            })
            .collect();
        if mp.is_empty() {
            vec![(Afi::Ipv4, SAFI_UNICAST)]
        } else {
            mp
        }
    }

    /// Parses an OPEN body. Version, hold time and identifier are checked here because they
    /// do not depend on configuration; the peer ASN is checked by the session.
    pub(crate) fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let short = || DecodeError::bad_length(MessageType::Open, body.len() + 19);
        let fixed = body.get(..10).ok_or_else(short)?;
        let version = fixed[0];
        if version != 4 {
            return Err(DecodeError::open(
                OpenSubcode::UnsupportedVersionNumber,
                vec![0, 4],
                format!("version {version} is not supported (only BGP-4)"),
            ));
        }
        let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
        let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::open(
                OpenSubcode::UnacceptableHoldTime,
                Vec::new(),
                format!("hold time {hold_time}s is not allowed (0 or at least 3)"),
            ));
        }
        let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
        if bgp_id.is_unspecified() {
            return Err(DecodeError::open(
                OpenSubcode::BadBgpIdentifier,
                Vec::new(),
                "BGP identifier 0.0.0.0 is not allowed",
            ));
        }
        let opt_len = usize::from(fixed[9]);
        let rest = &body[10..];
        // RFC 9072: a non-extended length of 255 with type 255 announces 2-byte lengths.
        let ext = opt_len == 255 && rest.first() == Some(&255);
        let (params, used) = if ext {
            let l = rest.get(1..3).ok_or_else(short)?;
            let l = usize::from(u16::from_be_bytes([l[0], l[1]]));
            (rest.get(3..3 + l).ok_or_else(short)?, 3 + l)
        } else {
            (rest.get(..opt_len).ok_or_else(short)?, opt_len)
        };
        if rest.len() != used {
            return Err(short());
        }
        let mut capabilities = Vec::new();
        let mut p = params;
        while !p.is_empty() {
            let (ptype, len, hdr) = if ext {
                let h = p.get(..3).ok_or_else(short)?;
                (h[0], usize::from(u16::from_be_bytes([h[1], h[2]])), 3)
            } else {
                let h = p.get(..2).ok_or_else(short)?;
                (h[0], usize::from(h[1]), 2)
            };
            let value = p.get(hdr..hdr + len).ok_or_else(short)?;
            p = &p[hdr + len..];
            if ptype != 2 {
                return Err(DecodeError::open(
                    OpenSubcode::UnsupportedOptionalParameter,
                    Vec::new(),
                    format!("optional parameter type {ptype} is not supported (only capabilities, type 2)"),
                ));
            }
            parse_capabilities(value, &mut capabilities)?;
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Appends this OPEN. All capabilities go in one optional parameter.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = begin(MessageType::Open, out);
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            match c {
                Capability::Multiprotocol { afi, safi } => {
                    caps.extend_from_slice(&[1, 4]);
                    caps.extend_from_slice(&afi.value().to_be_bytes());
                    caps.extend_from_slice(&[0, *safi]);
                }
                Capability::RouteRefresh => caps.extend_from_slice(&[2, 0]),
                Capability::FourOctetAs(asn) => {
                    caps.extend_from_slice(&[65, 4]);
                    caps.extend_from_slice(&asn.to_be_bytes());
                }
                Capability::Unknown { code, value } => {
                    let v = &value[..value.len().min(255)];
                    caps.push(*code);
                    caps.push(v.len() as u8);
                    caps.extend_from_slice(v);
                }
            }
        }
        let caps = &caps[..caps.len().min(253)];
        if caps.is_empty() {
            out.push(0);
        } else {
            out.push(caps.len() as u8 + 2);
            out.push(2);
            out.push(caps.len() as u8);
            out.extend_from_slice(caps);
        }
        finish(at, out);
    }
}

fn parse_capabilities<'a>(
    mut v: &'a [u8],
    out: &mut Vec<Capability<'a>>,
) -> Result<(), DecodeError> {
    while !v.is_empty() {
        let bad = |what: &str| {
            DecodeError::open(
                OpenSubcode::Other(0),
                Vec::new(),
                format!("malformed capability: {what}"),
            )
        };
        let h = v.get(..2).ok_or_else(|| bad("truncated header"))?;
        let (code, len) = (h[0], usize::from(h[1]));
        let value = v
            .get(2..2 + len)
            .ok_or_else(|| bad("value runs past the parameter"))?;
        v = &v[2 + len..];
        out.push(match (code, value) {
            (1, [a, b, _, safi]) => Capability::Multiprotocol {
                afi: Afi::from_value(u16::from_be_bytes([*a, *b])),
                safi: *safi,
            },
            (1, _) => return Err(bad("multiprotocol capability must be 4 bytes")),
            (2, []) => Capability::RouteRefresh,
            (2, _) => return Err(bad("route refresh capability must be empty")),
            (65, [a, b, c, d]) => Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d])),
            (65, _) => return Err(bad("4-octet AS capability must be 4 bytes")),
            (code, value) => Capability::Unknown { code, value },
        });
    }
    Ok(())
}
