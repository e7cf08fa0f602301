//! The session's Adj-RIB-Out side: which prefixes this session may carry, and turning the
//! difference between what is wanted and what was sent into UPDATE messages.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{push_send, Output, Session};
use crate::bgp::attrs::RouteAttrs;
use crate::bgp::open::{Afi, SAFI_UNICAST};
use crate::bgp::pack::{encode_updates, Outbound};
use crate::bgp::prefix::Prefix;

impl Session {
    /// The families both sides can carry on this session: ours is the session's own family.
    pub(super) fn session_families(&self) -> Vec<(Afi, u8)> {
        let ours = match self.local {
            Some(IpAddr::V4(_)) => (Afi::Ipv4, SAFI_UNICAST),
            Some(IpAddr::V6(_)) => (Afi::Ipv6, SAFI_UNICAST),
            None => return Vec::new(),
        };
        if self.families.contains(&ours) {
            vec![ours]
        } else {
            Vec::new()
        }
    }

    fn outbound(&self) -> Outbound {
        Outbound {
            local_asn: self.params.local_asn,
            peer_asn: self.params.peer_asn,
            four_octet_as: self.ctx.four_octet_as,
            next_hop_v4: match self.local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            next_hop_v6: match self.local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
        }
    }

    fn wanted_here(&self) -> BTreeMap<Prefix, RouteAttrs> {
        let fams = self.session_families();
        self.desired
            .iter()
            .filter(|(p, _)| {
                let afi = if p.is_ipv4() { Afi::Ipv4 } else { Afi::Ipv6 };
                fams.contains(&(afi, SAFI_UNICAST))
            })
            .map(|(p, a)| (*p, a.clone()))
            .collect()
    }

    pub(super) fn sync(&mut self, out: &mut Vec<Output>) {
        let wanted = self.wanted_here();
        let diff = self.rib.sync(&wanted);
        if diff.is_empty() {
            return;
        }
        let mut bytes = Vec::new();
        let stats = encode_updates(&self.outbound(), &diff.withdraw, &diff.announce, &mut bytes);
        self.counters.updates_sent += stats.messages as u64;
        self.counters.prefixes_advertised = self.rib.sent().len();
        push_send(out, bytes);
    }

    pub(super) fn resend(&mut self, out: &mut Vec<Output>) {
        let all: Vec<(Prefix, RouteAttrs)> = self
            .rib
            .sent()
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        let mut bytes = Vec::new();
        let stats = encode_updates(&self.outbound(), &[], &all, &mut bytes);
        self.counters.updates_sent += stats.messages as u64;
        push_send(out, bytes);
    }
}
