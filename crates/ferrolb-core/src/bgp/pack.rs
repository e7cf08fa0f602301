//! Encoding outbound UPDATEs, packed: prefixes that share attributes share a message, and each
//! message is filled up to the 4096-byte limit, so 10,000 prefixes take a few dozen messages
//! instead of 10,000 (the routers' CPU and the time to full table both depend on it).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::attrs::RouteAttrs;
use super::message::{begin, finish, MessageType, HEADER_LEN, MAX_LEN};
use super::open::{Afi, AS_TRANS, SAFI_UNICAST};
use super::prefix::Prefix;
use super::update::{code, flag};

/// What the session decided that every outbound UPDATE depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// Our ASN.
    pub local_asn: u32,
    /// The peer's ASN; equal to ours means iBGP (empty AS_PATH, LOCAL_PREF allowed).
    pub peer_asn: u32,
    /// Both sides support 4-octet ASNs.
    pub four_octet_as: bool,
    /// NEXT_HOP for IPv4 prefixes: the session's local IPv4 address.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// MP_REACH next hop for IPv6 prefixes: the session's local IPv6 address.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl Outbound {
    fn ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }
}

/// What an encode produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackStats {
    /// UPDATE messages appended.
    pub messages: usize,
    /// Prefixes announced.
    pub announced: usize,
    /// Prefixes withdrawn.
    pub withdrawn: usize,
    /// Prefixes that could not be sent: no next hop of their family on this session.
    pub skipped: usize,
}

/// Fixed part of every UPDATE: header plus the two length fields.
const UPDATE_FIXED: usize = HEADER_LEN + 4;
/// Extended-length attribute header.
const EXT_ATTR_HDR: usize = 4;

/// Appends UPDATEs withdrawing `withdraw` and announcing `announce`, packed.
pub fn encode_updates(
    o: &Outbound,
    withdraw: &[Prefix],
    announce: &[(Prefix, RouteAttrs)],
    out: &mut Vec<u8>,
) -> PackStats {
    let mut stats = PackStats::default();
    let (w4, w6): (Vec<Prefix>, Vec<Prefix>) = withdraw.iter().partition(|p| p.is_ipv4());
    withdraw_v4(&w4, out, &mut stats);
    withdraw_v6(&w6, out, &mut stats);
    let mut groups: BTreeMap<&RouteAttrs, (Vec<Prefix>, Vec<Prefix>)> = BTreeMap::new();
    for (p, a) in announce {
        let g = groups.entry(a).or_default();
        if p.is_ipv4() {
            g.0.push(*p);
        } else {
            g.1.push(*p);
        }
    }
    for (attrs, (v4, v6)) in groups {
        match o.next_hop_v4 {
            Some(nh) => announce_v4(o, attrs, nh, &v4, out, &mut stats),
            None => stats.skipped += v4.len(),
        }
        match o.next_hop_v6 {
            Some(nh) => announce_v6(o, attrs, nh, &v6, out, &mut stats),
            None => stats.skipped += v6.len(),
        }
    }
    stats
}

/// Appends the End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for IPv4
/// unicast, an empty MP_UNREACH otherwise.
pub fn encode_end_of_rib(afi: Afi, safi: u8, out: &mut Vec<u8>) {
    let at = begin(MessageType::Update, out);
    out.extend_from_slice(&[0, 0]);
    if afi == Afi::Ipv4 && safi == SAFI_UNICAST {
        out.extend_from_slice(&[0, 0]);
    } else {
        out.extend_from_slice(&[0, 6, flag::OPTIONAL, code::MP_UNREACH, 3]);
        out.extend_from_slice(&afi.value().to_be_bytes());
        out.push(safi);
    }
    finish(at, out);
}

/// Splits `prefixes` into runs whose encodings fit `room` bytes each.
fn chunks(prefixes: &[Prefix], room: usize) -> Vec<&[Prefix]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        if used + p.wire_len() > room && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += p.wire_len();
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

fn withdraw_v4(prefixes: &[Prefix], out: &mut Vec<u8>, stats: &mut PackStats) {
    for run in chunks(prefixes, MAX_LEN - UPDATE_FIXED) {
        let at = begin(MessageType::Update, out);
        let len: usize = run.iter().map(Prefix::wire_len).sum();
        out.extend_from_slice(&(len as u16).to_be_bytes());
        for p in run {
            p.write(out);
        }
        out.extend_from_slice(&[0, 0]);
        finish(at, out);
        stats.messages += 1;
        stats.withdrawn += run.len();
    }
}

fn withdraw_v6(prefixes: &[Prefix], out: &mut Vec<u8>, stats: &mut PackStats) {
    for run in chunks(prefixes, MAX_LEN - UPDATE_FIXED - EXT_ATTR_HDR - 3) {
        let mut value = Vec::with_capacity(MAX_LEN);
        value.extend_from_slice(&Afi::Ipv6.value().to_be_bytes());
        value.push(SAFI_UNICAST);
        for p in run {
            p.write(&mut value);
        }
        let mut attrs = Vec::with_capacity(value.len() + EXT_ATTR_HDR);
        put_attr(flag::OPTIONAL, code::MP_UNREACH, &value, &mut attrs);
        let at = begin(MessageType::Update, out);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&attrs);
        finish(at, out);
        stats.messages += 1;
        stats.withdrawn += run.len();
    }
}

fn announce_v4(
    o: &Outbound,
    a: &RouteAttrs,
    nh: Ipv4Addr,
    prefixes: &[Prefix],
    out: &mut Vec<u8>,
    stats: &mut PackStats,
) {
    if prefixes.is_empty() {
        return;
    }
    let (head, mid, post) = common_attrs(o, a);
    let mut attrs = Vec::with_capacity(head.len() + mid.len() + post.len() + 7);
    attrs.extend_from_slice(&head);
    put_attr(flag::TRANSITIVE, code::NEXT_HOP, &nh.octets(), &mut attrs);
    attrs.extend_from_slice(&mid);
    attrs.extend_from_slice(&post);
    let room = MAX_LEN.saturating_sub(UPDATE_FIXED + attrs.len());
    if room < 5 {
        stats.skipped += prefixes.len();
        return;
    }
    for run in chunks(prefixes, room) {
        let at = begin(MessageType::Update, out);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&attrs);
        for p in run {
            p.write(out);
        }
        finish(at, out);
        stats.messages += 1;
        stats.announced += run.len();
    }
}

fn announce_v6(
    o: &Outbound,
    a: &RouteAttrs,
    nh: Ipv6Addr,
    prefixes: &[Prefix],
    out: &mut Vec<u8>,
    stats: &mut PackStats,
) {
    if prefixes.is_empty() {
        return;
    }
    let (head, mid, post) = common_attrs(o, a);
    let mut pre = head;
    pre.extend_from_slice(&mid);
    // MP_REACH header: AFI, SAFI, next hop length, next hop, reserved.
    let mp_fixed = 2 + 1 + 1 + 16 + 1;
    let room =
        MAX_LEN.saturating_sub(UPDATE_FIXED + pre.len() + post.len() + EXT_ATTR_HDR + mp_fixed);
    if room < 17 {
        stats.skipped += prefixes.len();
        return;
    }
    for run in chunks(prefixes, room) {
        let mut value = Vec::with_capacity(MAX_LEN);
        value.extend_from_slice(&Afi::Ipv6.value().to_be_bytes());
        value.push(SAFI_UNICAST);
        value.push(16);
        value.extend_from_slice(&nh.octets());
        value.push(0);
        for p in run {
            p.write(&mut value);
        }
        let mut mp = Vec::with_capacity(value.len() + EXT_ATTR_HDR);
        put_attr(flag::OPTIONAL, code::MP_REACH, &value, &mut mp);
        let total = pre.len() + mp.len() + post.len();
        let at = begin(MessageType::Update, out);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(total as u16).to_be_bytes());
        out.extend_from_slice(&pre);
        out.extend_from_slice(&mp);
        out.extend_from_slice(&post);
        finish(at, out);
        stats.messages += 1;
        stats.announced += run.len();
    }
}

/// The attributes every prefix of a group carries, split around MP_REACH (type 14) so the
/// message lists attributes in ascending type order (RFC 4271 §5 SHOULD): `head` holds ORIGIN
/// and AS_PATH (NEXT_HOP, type 3, goes right after), `mid` MED, LOCAL_PREF and COMMUNITIES,
/// `post` the types above 14.
fn common_attrs(o: &Outbound, a: &RouteAttrs) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut pre = Vec::with_capacity(64);
    let mut mid = Vec::with_capacity(64);
    let mut post = Vec::new();
    put_attr(flag::TRANSITIVE, code::ORIGIN, &[0], &mut pre);
    let mut path = Vec::new();
    let mut as4 = None;
    if !o.ibgp() {
        path.extend_from_slice(&[2, 1]); // one AS_SEQUENCE of one ASN
        if o.four_octet_as {
            path.extend_from_slice(&o.local_asn.to_be_bytes());
        } else {
            let two = u16::try_from(o.local_asn).unwrap_or(AS_TRANS);
            path.extend_from_slice(&two.to_be_bytes());
            if u32::from(two) != o.local_asn {
                // RFC 6793 §4.2.2: the real path rides in AS4_PATH to a 2-octet peer.
                let mut p4 = vec![2, 1];
                p4.extend_from_slice(&o.local_asn.to_be_bytes());
                as4 = Some(p4);
            }
        }
    }
    put_attr(flag::TRANSITIVE, code::AS_PATH, &path, &mut pre);
    if let Some(med) = a.med {
        put_attr(flag::OPTIONAL, code::MED, &med.to_be_bytes(), &mut mid);
    }
    if let (Some(lp), true) = (a.local_pref, o.ibgp()) {
        put_attr(
            flag::TRANSITIVE,
            code::LOCAL_PREF,
            &lp.to_be_bytes(),
            &mut mid,
        );
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a
            .communities
            .iter()
            .flat_map(|c| c.0.to_be_bytes())
            .collect();
        put_attr(
            flag::OPTIONAL | flag::TRANSITIVE,
            code::COMMUNITIES,
            &v,
            &mut mid,
        );
    }
    if let Some(p4) = as4 {
        put_attr(
            flag::OPTIONAL | flag::TRANSITIVE,
            code::AS4_PATH,
            &p4,
            &mut post,
        );
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|c| [c.0, c.1, c.2])
            .flat_map(u32::to_be_bytes)
            .collect();
        put_attr(
            flag::OPTIONAL | flag::TRANSITIVE,
            code::LARGE_COMMUNITIES,
            &v,
            &mut post,
        );
    }
    (pre, mid, post)
}

/// Appends one attribute, with the extended-length flag when the value needs two octets
/// (MP_REACH and MP_UNREACH always use it, so their room is computed once).
fn put_attr(flags: u8, tcode: u8, value: &[u8], out: &mut Vec<u8>) {
    let extended = value.len() > 255 || tcode == code::MP_REACH || tcode == code::MP_UNREACH;
    if extended {
        out.extend_from_slice(&[flags | flag::EXTENDED, tcode]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, tcode, value.len() as u8]);
    }
    out.extend_from_slice(value);
}
