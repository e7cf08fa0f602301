//! Decoding UPDATE (RFC 4271 §4.3, RFC 4760 for MP_REACH/MP_UNREACH). The whole message is
//! validated on decode, so every malformation is reported with the subcode §6.3 names; the
//! prefix fields stay borrowed and are iterated on demand.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::attrs::{AsPathSegment, Community, LargeCommunity, Origin, PathAttributes};
use super::error::DecodeError;
use super::message::{Context, MessageType};
use super::notification::UpdateSubcode as Sub;
use super::open::{Afi, SAFI_UNICAST};
use super::prefix::{validate_nlri, Prefix, PrefixIter};

/// Attribute type codes used by this codec.
pub(crate) mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH: u8 = 14;
    pub const MP_UNREACH: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Attribute flag bits.
pub(crate) mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const EXTENDED: u8 = 0x10;
}

/// MP_REACH_NLRI: prefixes of another address family and their next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach<'a> {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: u8,
    /// The (global) next hop, when the family is one this codec reads.
    pub next_hop: Option<IpAddr>,
    /// An IPv6 link-local next hop sent after the global one.
    pub link_local: Option<Ipv6Addr>,
    nlri: &'a [u8],
}

impl MpReach<'_> {
    /// The announced prefixes (none for a family this codec does not read).
    pub fn prefixes(&self) -> impl Iterator<Item = Prefix> + '_ {
        family_prefixes(self.afi, self.safi, self.nlri)
    }
}

/// MP_UNREACH_NLRI: withdrawn prefixes of another address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach<'a> {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: u8,
    withdrawn: &'a [u8],
}

impl MpUnreach<'_> {
    /// The withdrawn prefixes (none for a family this codec does not read).
    pub fn prefixes(&self) -> impl Iterator<Item = Prefix> + '_ {
        family_prefixes(self.afi, self.safi, self.withdrawn)
    }
}

fn family_prefixes(afi: Afi, safi: u8, buf: &[u8]) -> PrefixIter<'_> {
    match (afi, safi) {
        (Afi::Ipv4, SAFI_UNICAST) => PrefixIter::new(buf, false),
        (Afi::Ipv6, SAFI_UNICAST) => PrefixIter::new(buf, true),
        _ => PrefixIter::new(&[], false),
    }
}

/// A validated UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    withdrawn: &'a [u8],
    /// The path attributes other than MP_REACH/MP_UNREACH.
    pub attributes: PathAttributes,
    /// MP_REACH_NLRI, if present.
    pub mp_reach: Option<MpReach<'a>>,
    /// MP_UNREACH_NLRI, if present.
    pub mp_unreach: Option<MpUnreach<'a>>,
    nlri: &'a [u8],
}

impl<'a> Update<'a> {
    /// IPv4 prefixes withdrawn in the classic field.
    pub fn withdrawn(&self) -> impl Iterator<Item = Prefix> + 'a {
        PrefixIter::new(self.withdrawn, false)
    }

    /// IPv4 prefixes announced in the classic field.
    pub fn nlri(&self) -> impl Iterator<Item = Prefix> + 'a {
        PrefixIter::new(self.nlri, false)
    }

    /// The End-of-RIB marker's family (RFC 4724 §2), if this UPDATE is one.
    pub fn end_of_rib(&self) -> Option<(Afi, u8)> {
        let no_attrs = self.attributes == PathAttributes::default() && self.mp_reach.is_none();
        if !no_attrs || !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match &self.mp_unreach {
            None => Some((Afi::Ipv4, SAFI_UNICAST)),
            Some(u) if u.withdrawn.is_empty() => Some((u.afi, u.safi)),
            Some(_) => None,
        }
    }

    /// Parses and validates an UPDATE body.
    pub(crate) fn decode(body: &'a [u8], ctx: &Context) -> Result<Self, DecodeError> {
        let list_err = |why: &str| DecodeError::update(Sub::MalformedAttributeList, &[], why);
        let wl = body
            .get(..2)
            .ok_or_else(|| DecodeError::bad_length(MessageType::Update, body.len() + 19))?;
        let wl = usize::from(u16::from_be_bytes([wl[0], wl[1]]));
        let withdrawn = body
            .get(2..2 + wl)
            .ok_or_else(|| list_err("withdrawn routes length runs past the message"))?;
        let rest = &body[2 + wl..];
        let al = rest
            .get(..2)
            .ok_or_else(|| list_err("no room for the path attribute length"))?;
        let al = usize::from(u16::from_be_bytes([al[0], al[1]]));
        let attrs = rest
            .get(2..2 + al)
            .ok_or_else(|| list_err("total path attribute length runs past the message"))?;
        let nlri = &rest[2 + al..];
        if validate_nlri(withdrawn, false).is_none() {
            return Err(DecodeError::update(
                Sub::InvalidNetworkField,
                &[],
                "malformed prefix in withdrawn routes",
            ));
        }
        if validate_nlri(nlri, false).is_none() {
            return Err(DecodeError::update(
                Sub::InvalidNetworkField,
                &[],
                "malformed prefix in NLRI",
            ));
        }
        let mut u = Update {
            withdrawn,
            attributes: PathAttributes::default(),
            mp_reach: None,
            mp_unreach: None,
            nlri,
        };
        let mut seen = BTreeSet::new();
        let mut a = attrs;
        while !a.is_empty() {
            let h = a
                .get(..2)
                .ok_or_else(|| list_err("truncated attribute header"))?;
            let (flags, tcode) = (h[0], h[1]);
            let (hl, len) = if flags & flag::EXTENDED != 0 {
                let l = a
                    .get(2..4)
                    .ok_or_else(|| list_err("truncated attribute length"))?;
                (4, usize::from(u16::from_be_bytes([l[0], l[1]])))
            } else {
                let l = a
                    .get(2)
                    .ok_or_else(|| list_err("truncated attribute length"))?;
                (3, usize::from(*l))
            };
            let value = a.get(hl..hl + len).ok_or_else(|| {
                DecodeError::update(
                    Sub::AttributeLengthError,
                    &a[..a.len().min(hl)],
                    format!("attribute {tcode} length {len} runs past the attribute list"),
                )
            })?;
            let whole = &a[..hl + len];
            a = &a[hl + len..];
            if !seen.insert(tcode) {
                return Err(DecodeError::update(
                    Sub::MalformedAttributeList,
                    &[],
                    format!("attribute {tcode} appears twice"),
                ));
            }
            u.attribute(flags, tcode, value, whole, ctx)?;
        }
        let needs_v4 = !nlri.is_empty();
        let needs_any = needs_v4 || u.mp_reach.is_some();
        let at = &u.attributes;
        let missing = if needs_any && at.origin.is_none() {
            Some(code::ORIGIN)
        } else if needs_any && at.as_path.is_none() {
            Some(code::AS_PATH)
        } else if needs_v4 && at.next_hop.is_none() {
            Some(code::NEXT_HOP)
        } else {
            None
        };
        if let Some(m) = missing {
            return Err(DecodeError::update(
                Sub::MissingWellKnownAttribute,
                &[m],
                format!("well-known attribute {m} is missing"),
            ));
        }
        Ok(u)
    }

    fn attribute(
        &mut self,
        flags: u8,
        tcode: u8,
        v: &'a [u8],
        whole: &[u8],
        ctx: &Context,
    ) -> Result<(), DecodeError> {
        let class = flags & (flag::OPTIONAL | flag::TRANSITIVE);
        let expect = |want: u8| {
            if class == want {
                Ok(())
            } else {
                Err(DecodeError::update(
                    Sub::AttributeFlagsError,
                    whole,
                    format!("attribute {tcode} has flags {flags:#04x}"),
                ))
            }
        };
        let length = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(DecodeError::update(
                    Sub::AttributeLengthError,
                    whole,
                    format!("attribute {tcode} has length {}", v.len()),
                ))
            }
        };
        let wk = flag::TRANSITIVE;
        let opt_t = flag::OPTIONAL | flag::TRANSITIVE;
        let at = &mut self.attributes;
        match tcode {
            code::ORIGIN => {
                expect(wk)?;
                length(v.len() == 1)?;
                at.origin = Some(match v[0] {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    2 => Origin::Incomplete,
                    o => {
                        return Err(DecodeError::update(
                            Sub::InvalidOriginAttribute,
                            whole,
                            format!("ORIGIN value {o} is undefined"),
                        ))
                    }
                });
            }
            code::AS_PATH => {
                expect(wk)?;
                let width = if ctx.four_octet_as { 4 } else { 2 };
                at.as_path = Some(as_path(v, width).ok_or_else(|| {
                    DecodeError::update(Sub::MalformedAsPath, &[], "AS_PATH segments do not add up")
                })?);
            }
            code::NEXT_HOP => {
                expect(wk)?;
                length(v.len() == 4)?;
                let nh = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
                if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                    return Err(DecodeError::update(
                        Sub::InvalidNextHopAttribute,
                        whole,
                        format!("NEXT_HOP {nh} cannot be a next hop"),
                    ));
                }
                at.next_hop = Some(IpAddr::V4(nh));
            }
            code::MED => {
                expect(flag::OPTIONAL)?;
                length(v.len() == 4)?;
                at.med = Some(be32(v));
            }
            code::LOCAL_PREF => {
                expect(wk)?;
                length(v.len() == 4)?;
                at.local_pref = Some(be32(v));
            }
            code::ATOMIC_AGGREGATE => {
                expect(wk)?;
                length(v.is_empty())?;
                at.unknown.push((flags, tcode));
            }
            code::AGGREGATOR => {
                expect(opt_t)?;
                length(v.len() == 6 || v.len() == 8)?;
                at.unknown.push((flags, tcode));
            }
            code::COMMUNITIES => {
                expect(opt_t)?;
                length(v.len() % 4 == 0)?;
                at.communities = v.chunks_exact(4).map(|c| Community(be32(c))).collect();
            }
            code::LARGE_COMMUNITIES => {
                expect(opt_t)?;
                length(v.len() % 12 == 0 && !v.is_empty())?;
                at.large_communities = v
                    .chunks_exact(12)
                    .map(|c| LargeCommunity(be32(&c[..4]), be32(&c[4..8]), be32(&c[8..])))
                    .collect();
            }
            code::AS4_PATH => {
                expect(opt_t)?;
                at.as4_path = Some(as_path(v, 4).ok_or_else(|| {
                    DecodeError::update(
                        Sub::OptionalAttributeError,
                        whole,
                        "AS4_PATH segments do not add up",
                    )
                })?);
            }
            code::MP_REACH => {
                expect(flag::OPTIONAL)?;
                self.mp_reach = Some(mp_reach(v, whole)?);
            }
            code::MP_UNREACH => {
                expect(flag::OPTIONAL)?;
                self.mp_unreach = Some(mp_unreach(v, whole)?);
            }
            _ if flags & flag::OPTIONAL == 0 => {
                return Err(DecodeError::update(
                    Sub::UnrecognizedWellKnownAttribute,
                    whole,
                    format!("well-known attribute {tcode} is not recognised"),
                ))
            }
            _ => at.unknown.push((flags, tcode)),
        }
        Ok(())
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn as_path(mut v: &[u8], width: usize) -> Option<Vec<AsPathSegment>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let h = v.get(..2)?;
        let (t, n) = (h[0], usize::from(h[1]));
        let body = v.get(2..2 + n * width)?;
        v = &v[2 + n * width..];
        let asns: Vec<u32> = body
            .chunks_exact(width)
            .map(|c| {
                if width == 4 {
                    be32(c)
                } else {
                    u32::from(u16::from_be_bytes([c[0], c[1]]))
                }
            })
            .collect();
        out.push(match t {
            1 => AsPathSegment::Set(asns),
            2 => AsPathSegment::Sequence(asns),
            3 | 4 => AsPathSegment::Other(t, asns),
            _ => return None,
        });
    }
    Some(out)
}

fn mp_reach<'a>(v: &'a [u8], whole: &[u8]) -> Result<MpReach<'a>, DecodeError> {
    let err = |why: &str| {
        DecodeError::update(
            Sub::OptionalAttributeError,
            whole,
            format!("MP_REACH_NLRI: {why}"),
        )
    };
    let h = v.get(..4).ok_or_else(|| err("truncated"))?;
    let afi = Afi::from_value(u16::from_be_bytes([h[0], h[1]]));
    let safi = h[2];
    let nhl = usize::from(h[3]);
    let nh = v
        .get(4..4 + nhl)
        .ok_or_else(|| err("next hop runs past the attribute"))?;
    // One reserved octet (RFC 4760 §3) follows the next hop.
    let nlri = v.get(5 + nhl..).ok_or_else(|| err("no reserved octet"))?;
    let (next_hop, link_local) = match (afi, nh.len()) {
        (Afi::Ipv6, 16) => (Some(IpAddr::V6(v6(nh))), None),
        (Afi::Ipv6, 32) => (Some(IpAddr::V6(v6(&nh[..16]))), Some(v6(&nh[16..]))),
        (Afi::Ipv4, 4) => (
            Some(IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))),
            None,
        ),
        (Afi::Ipv6 | Afi::Ipv4, n) => {
            return Err(err(&format!(
                "next hop length {n} is invalid for the family"
            )))
        }
        _ => (None, None),
    };
    check_family_nlri(afi, safi, nlri, whole)?;
    Ok(MpReach {
        afi,
        safi,
        next_hop,
        link_local,
        nlri,
    })
}

fn mp_unreach<'a>(v: &'a [u8], whole: &[u8]) -> Result<MpUnreach<'a>, DecodeError> {
    let h = v.get(..3).ok_or_else(|| {
        DecodeError::update(
            Sub::OptionalAttributeError,
            whole,
            "MP_UNREACH_NLRI: truncated",
        )
    })?;
    let afi = Afi::from_value(u16::from_be_bytes([h[0], h[1]]));
    let safi = h[2];
    check_family_nlri(afi, safi, &v[3..], whole)?;
    Ok(MpUnreach {
        afi,
        safi,
        withdrawn: &v[3..],
    })
}

fn check_family_nlri(afi: Afi, safi: u8, nlri: &[u8], whole: &[u8]) -> Result<(), DecodeError> {
    let v6 = match (afi, safi) {
        (Afi::Ipv4, SAFI_UNICAST) => false,
        (Afi::Ipv6, SAFI_UNICAST) => true,
        _ => return Ok(()),
    };
    match validate_nlri(nlri, v6) {
        Some(_) => Ok(()),
        None => Err(DecodeError::update(
            Sub::OptionalAttributeError,
            whole,
            "malformed prefix in multiprotocol NLRI",
        )),
    }
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}
