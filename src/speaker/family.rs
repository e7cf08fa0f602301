//! The executor's view of one address family's neighbour protocol on the wire: ARP for IPv4
//! (`ArpIo`), NDP for IPv6 (`NdpIo`). The executor decides *what* to do per IP; a
//! [`NeighbourIo`] knows *how* for its family, so adding a family is one `impl` and one field
//! in [`Families`].

use std::net::IpAddr;
use std::sync::Arc;

use super::arp_io::ArpIo;
use super::ndp_io::{ClaimKind, NdpClaim, NdpIo};
use ferrolb_core::arp::MacAddr;

/// Sends one unsolicited announcement (gratuitous ARP, or an unsolicited Neighbor
/// Advertisement) for an IP from the port that answers for it; returns whether it went out.
/// Cheap to clone into per-IP schedule tasks.
pub type UnsolicitedSender = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// What the executor needs from one address family's responder. Every method ignores IPs of
/// the other family.
pub trait NeighbourIo: Send + Sync {
    /// Listens for claims on `ip` on interface `index` from now on, and asks that segment
    /// whether anyone uses it (RFC 5227 probe, or duplicate address detection).
    fn probe(&self, ip: IpAddr, index: u32) -> bool;
    /// Answers for `ip` on interface `index`.
    fn announce(&self, ip: IpAddr, index: u32);
    /// Stops answering for `ip`; claims on it are still reported while it is watched.
    fn withdraw(&self, ip: IpAddr);
    /// Stops reporting claims on `ip`.
    fn unwatch(&self, ip: IpAddr);
    /// Stops answering for every IP at once (graceful shutdown).
    fn withdraw_all(&self);
    /// A sender of unsolicited announcements for the GARP schedule and defence re-sends.
    fn unsolicited(&self) -> UnsolicitedSender;
}

impl NeighbourIo for ArpIo {
    fn probe(&self, ip: IpAddr, index: u32) -> bool {
        match ip {
            IpAddr::V4(v4) => ArpIo::probe(self, v4, index),
            IpAddr::V6(_) => false,
        }
    }

    fn announce(&self, ip: IpAddr, index: u32) {
        if let IpAddr::V4(v4) = ip {
            ArpIo::announce(self, v4, index);
        }
    }

    fn withdraw(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            ArpIo::withdraw(self, v4);
        }
    }

    fn unwatch(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            ArpIo::unwatch(self, v4);
        }
    }

    fn withdraw_all(&self) {
        ArpIo::withdraw_all(self);
    }

    fn unsolicited(&self) -> UnsolicitedSender {
        let garp = self.garp_sender();
        Arc::new(move |ip| match ip {
            IpAddr::V4(v4) => garp.send(v4),
            IpAddr::V6(_) => false,
        })
    }
}

impl NeighbourIo for NdpIo {
    fn probe(&self, ip: IpAddr, index: u32) -> bool {
        match ip {
            IpAddr::V6(v6) => NdpIo::probe(self, v6, index),
            IpAddr::V4(_) => false,
        }
    }

    fn announce(&self, ip: IpAddr, index: u32) {
        if let IpAddr::V6(v6) = ip {
            NdpIo::announce(self, v6, index);
        }
    }

    fn withdraw(&self, ip: IpAddr) {
        if let IpAddr::V6(v6) = ip {
            NdpIo::withdraw(self, v6);
        }
    }

    fn unwatch(&self, ip: IpAddr) {
        if let IpAddr::V6(v6) = ip {
            NdpIo::unwatch(self, v6);
        }
    }

    fn withdraw_all(&self) {
        NdpIo::withdraw_all(self);
    }

    fn unsolicited(&self) -> UnsolicitedSender {
        let na = self.na_sender();
        Arc::new(move |ip| match ip {
            IpAddr::V6(v6) => na.send(v6),
            IpAddr::V4(_) => false,
        })
    }
}

/// The responders per address family. IPv6 is `None` only where no NDP responder was made
/// (unit tests of the executor); the executor then logs that it cannot announce the IP
/// instead of failing.
#[derive(Clone)]
pub struct Families {
    /// ARP.
    pub v4: Arc<dyn NeighbourIo>,
    /// NDP.
    pub v6: Option<Arc<dyn NeighbourIo>>,
}

impl Families {
    /// The responder for `ip`'s family, if this speaker has one.
    pub fn for_ip(&self, ip: IpAddr) -> Option<&dyn NeighbourIo> {
        match ip {
            IpAddr::V4(_) => Some(self.v4.as_ref()),
            IpAddr::V6(_) => self.v6.as_deref(),
        }
    }

    /// Every responder.
    pub fn all(&self) -> impl Iterator<Item = &dyn NeighbourIo> {
        std::iter::once(self.v4.as_ref()).chain(self.v6.as_deref())
    }
}

/// What an NDP claim means to the announcer: `Some((ip, mac))` to feed it as a claim, `None`
/// to leave it out. Another host's duplicate-address-detection probe for an IP this node
/// *announces* is no claim: the reader thread has already defended the IP (RFC 4862 §5.4.3),
/// so the prober gives it up, just as an RFC 5227 ARP probe is answered and not fought.
/// Yielding to it would leave the IP answered by nobody. While the IP is only probed or held,
/// a DAD probe is a claim like an advertisement: someone else is configuring the address.
pub fn ndp_claim_for_announcer(claim: &NdpClaim, announcing: bool) -> Option<(IpAddr, MacAddr)> {
    match claim.kind {
        ClaimKind::DadProbe if announcing => None,
        ClaimKind::DadProbe | ClaimKind::Advertisement => Some((IpAddr::V6(claim.ip), claim.mac)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const OTHER: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn claim(kind: ClaimKind) -> NdpClaim {
        NdpClaim {
            ip: VIP,
            mac: OTHER,
            kind,
        }
    }

    #[test]
    fn a_defended_dad_probe_is_not_yielded_to() {
        assert_eq!(
            ndp_claim_for_announcer(&claim(ClaimKind::DadProbe), true),
            None
        );
    }

    #[test]
    fn a_dad_probe_while_probing_or_held_and_every_advertisement_are_claims() {
        let want = Some((IpAddr::V6(VIP), OTHER));
        assert_eq!(
            ndp_claim_for_announcer(&claim(ClaimKind::DadProbe), false),
            want
        );
        for announcing in [true, false] {
            assert_eq!(
                ndp_claim_for_announcer(&claim(ClaimKind::Advertisement), announcing),
                want
            );
        }
    }
}
