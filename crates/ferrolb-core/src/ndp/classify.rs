//! What a received Neighbor Discovery frame means to a speaker: a solicitation it must answer,
//! another host probing for or claiming one of its IPs, or nothing.
//!
//! Split from the codec because this is policy (which frames count as conflicts) and the codec
//! is format; the responder acts on the answer. Mirrors [`crate::arp::classify`].

use std::net::Ipv6Addr;

use super::codec::{NdpFrame, NdpMessage};
use crate::arp::MacAddr;

/// The meaning of one received NDP frame for this speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Someone asks for the link-layer address of `ip`, an IP we announce: answer with
    /// `build_advertisement_reply(our_mac, ip, from_mac, from_ip)`. Multicast solicitations
    /// (address resolution) and unicast ones (reachability probes, which MetalLB ignores so
    /// switches drop their entry every half hour) alike.
    Solicitation {
        /// The announced IP asked about.
        ip: Ipv6Addr,
        /// Where to answer: the Source Link-Layer Address option, or the Ethernet source when
        /// the solicitation carried none (allowed for unicast probes).
        from_mac: MacAddr,
        /// The solicitor's address (never `::`; those are [`Observation::DadProbe`]).
        from_ip: Ipv6Addr,
    },
    /// Another host runs duplicate address detection for `ip` (a solicitation from `::`): it
    /// is about to configure our IP. The owner defends it (RFC 4862 §5.4.3) by answering with
    /// `build_advertisement_reply(our_mac, ip, mac, ::)`, which goes to all-nodes, and it is a
    /// conflict signal for the announcer either way.
    DadProbe {
        /// Our IP being probed.
        ip: Ipv6Addr,
        /// The prober's MAC (Ethernet source; a probe carries no link-layer option).
        mac: MacAddr,
    },
    /// Another MAC advertises `ip`, one of our IPs (an advertisement for it, or a message using
    /// it as source address): neighbours that hear it send `ip`'s traffic to `mac`. Feed it to
    /// the announcer as a claim.
    Claim {
        /// Our IP being claimed.
        ip: Ipv6Addr,
        /// The MAC claiming it.
        mac: MacAddr,
    },
    /// Nothing for us: about other IPs, or our own frame looped back.
    Unrelated,
}

/// Classifies `frame`, received on an interface whose MAC is `our_mac`, given which IPs this
/// speaker announces or watches (`owns`).
///
/// A claim wins over a solicitation, as for ARP: a host that uses our IP as its own source
/// address has already taken it over in its neighbours' caches (RFC 4861 §7.2.3: a
/// solicitation's source address and link-layer option update the receiver's cache), and
/// answering it would only feed the conflict.
pub fn classify(
    frame: &NdpFrame<'_>,
    our_mac: MacAddr,
    owns: impl Fn(Ipv6Addr) -> bool,
) -> Observation {
    // Our own frames, seen again through the packet socket or a bridge hairpin.
    if frame.eth_src == our_mac
        || frame.source_ll == Some(our_mac)
        || frame.target_ll == Some(our_mac)
    {
        return Observation::Unrelated;
    }
    if let NdpMessage::Advertisement { .. } = frame.message {
        if owns(frame.target) {
            return Observation::Claim {
                ip: frame.target,
                mac: frame.target_ll.unwrap_or(frame.eth_src),
            };
        }
    }
    if !frame.ip_src.is_unspecified() && owns(frame.ip_src) {
        return Observation::Claim {
            ip: frame.ip_src,
            mac: frame.source_ll.unwrap_or(frame.eth_src),
        };
    }
    if frame.message == NdpMessage::Solicitation && owns(frame.target) {
        if frame.ip_src.is_unspecified() {
            return Observation::DadProbe {
                ip: frame.target,
                mac: frame.eth_src,
            };
        }
        return Observation::Solicitation {
            ip: frame.target,
            from_mac: frame.source_ll.unwrap_or(frame.eth_src),
            from_ip: frame.ip_src,
        };
    }
    Observation::Unrelated
}

#[cfg(test)]
mod tests {
    use super::super::codec::{multicast_mac, solicited_node, ALL_NODES};
    use super::*;

    const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const OTHER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x03]);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
    const OTHER_VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101);
    const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

    fn owns(ip: Ipv6Addr) -> bool {
        ip == VIP
    }

    fn ns(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        sll: Option<MacAddr>,
    ) -> NdpFrame<'static> {
        NdpFrame {
            eth_dst: multicast_mac(solicited_node(target)),
            eth_src: PEER,
            ip_src: src,
            ip_dst: dst,
            message: NdpMessage::Solicitation,
            target,
            source_ll: sll,
            target_ll: None,
            nonce: None,
        }
    }

    fn na(src: Ipv6Addr, target: Ipv6Addr, tll: Option<MacAddr>) -> NdpFrame<'static> {
        NdpFrame {
            eth_dst: multicast_mac(ALL_NODES),
            eth_src: PEER,
            ip_src: src,
            ip_dst: ALL_NODES,
            message: NdpMessage::Advertisement {
                router: false,
                solicited: false,
                override_flag: true,
            },
            target,
            source_ll: None,
            target_ll: tll,
            nonce: None,
        }
    }

    #[test]
    fn a_multicast_solicitation_for_our_ip_is_answered_at_its_source_address_option() {
        let f = ns(HOST, solicited_node(VIP), VIP, Some(OTHER));
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::Solicitation {
                ip: VIP,
                from_mac: OTHER,
                from_ip: HOST
            }
        );
    }

    #[test]
    fn a_unicast_reachability_probe_without_options_is_answered_at_its_ethernet_source() {
        let mut f = ns(HOST, VIP, VIP, None);
        f.eth_dst = OURS;
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::Solicitation {
                ip: VIP,
                from_mac: PEER,
                from_ip: HOST
            }
        );
    }

    #[test]
    fn a_dad_probe_for_our_ip_is_a_conflict_signal() {
        let f = ns(Ipv6Addr::UNSPECIFIED, solicited_node(VIP), VIP, None);
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::DadProbe { ip: VIP, mac: PEER }
        );
    }

    #[test]
    fn an_advertisement_for_our_ip_from_another_mac_is_a_claim() {
        assert_eq!(
            classify(&na(VIP, VIP, Some(OTHER)), OURS, owns),
            Observation::Claim {
                ip: VIP,
                mac: OTHER
            }
        );
        // Without a target link-layer option the Ethernet source is the claimant.
        assert_eq!(
            classify(&na(HOST, VIP, None), OURS, owns),
            Observation::Claim { ip: VIP, mac: PEER }
        );
    }

    #[test]
    fn a_solicitation_sent_from_our_ip_is_a_claim() {
        let f = ns(VIP, solicited_node(HOST), HOST, Some(PEER));
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::Claim { ip: VIP, mac: PEER }
        );
    }

    #[test]
    fn our_own_frames_are_ignored() {
        let mut f = na(VIP, VIP, Some(OURS));
        assert_eq!(classify(&f, OURS, owns), Observation::Unrelated);
        f.eth_src = OURS;
        f.target_ll = None;
        assert_eq!(classify(&f, OURS, owns), Observation::Unrelated);
        let mut probe = ns(Ipv6Addr::UNSPECIFIED, solicited_node(VIP), VIP, None);
        probe.eth_src = OURS;
        assert_eq!(classify(&probe, OURS, owns), Observation::Unrelated);
    }

    #[test]
    fn traffic_about_other_ips_is_unrelated() {
        let f = ns(HOST, solicited_node(OTHER_VIP), OTHER_VIP, Some(PEER));
        assert_eq!(classify(&f, OURS, owns), Observation::Unrelated);
        assert_eq!(
            classify(&na(OTHER_VIP, OTHER_VIP, Some(PEER)), OURS, owns),
            Observation::Unrelated
        );
        // An advertisement *to* our IP about another address is someone answering us.
        let mut answer = na(HOST, HOST, Some(PEER));
        answer.ip_dst = VIP;
        assert_eq!(classify(&answer, OURS, owns), Observation::Unrelated);
        let dad_other = ns(Ipv6Addr::UNSPECIFIED, solicited_node(HOST), HOST, None);
        assert_eq!(classify(&dad_other, OURS, owns), Observation::Unrelated);
    }
}
