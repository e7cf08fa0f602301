//! What a received ARP frame means to a speaker: a question it must answer, a sign that another
//! host claims one of its IPs, or nothing.
//!
//! Split from the codec because this is policy (which frames count as conflicts) and the codec
//! is format; the announcer acts on the answer.

use std::net::Ipv4Addr;

use super::codec::{ArpFrame, ArpOp};
use super::mac::MacAddr;

/// The meaning of one received ARP frame for this speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Someone asks who has `ip`, an IP we announce: answer with `build_reply(our_mac, ip,
    /// from_mac, from_ip)`. Includes RFC 5227 probes (`from_ip` 0.0.0.0), which the owner must
    /// answer so the prober backs off.
    Request {
        /// The announced IP asked about.
        ip: Ipv4Addr,
        /// The asker's MAC (ARP sender hardware address).
        from_mac: MacAddr,
        /// The asker's IP (0.0.0.0 for a probe).
        from_ip: Ipv4Addr,
    },
    /// Another MAC uses `ip`, one of our IPs, as its sender address (gratuitous ARP, a reply, or
    /// even a request): every neighbour that hears it now sends `ip`'s traffic to `mac`. Feed it
    /// to the announcer's `claim_seen`.
    Claim {
        /// Our IP being claimed.
        ip: Ipv4Addr,
        /// The MAC claiming it.
        mac: MacAddr,
    },
    /// Nothing for us: about other IPs, or our own frame looped back.
    Unrelated,
}

/// Classifies `frame`, received on an interface whose MAC is `our_mac`, given which IPs this
/// speaker announces (`owns`).
///
/// A claim wins over a request: a gratuitous ARP request from another MAC for our IP has our IP
/// as both sender and target, and replying to it would only feed the conflict, while reporting
/// it lets the announcer defend or yield.
pub fn classify(
    frame: &ArpFrame,
    our_mac: MacAddr,
    owns: impl Fn(Ipv4Addr) -> bool,
) -> Observation {
    // Our own gratuitous ARP, seen again through the packet socket or a bridge hairpin.
    if frame.sender_mac == our_mac || frame.eth_src == our_mac {
        return Observation::Unrelated;
    }
    if !frame.sender_ip.is_unspecified() && owns(frame.sender_ip) {
        return Observation::Claim {
            ip: frame.sender_ip,
            mac: frame.sender_mac,
        };
    }
    if frame.op == ArpOp::Request && owns(frame.target_ip) {
        return Observation::Request {
            ip: frame.target_ip,
            from_mac: frame.sender_mac,
            from_ip: frame.sender_ip,
        };
    }
    Observation::Unrelated
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 240);
    const OTHER_VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 241);
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn owns(ip: Ipv4Addr) -> bool {
        ip == VIP
    }

    fn frame(op: ArpOp, sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            eth_dst: MacAddr::BROADCAST,
            eth_src: sender_mac,
            op,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    #[test]
    fn a_request_for_our_ip_must_be_answered() {
        let f = frame(ArpOp::Request, PEER, HOST, VIP);
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::Request {
                ip: VIP,
                from_mac: PEER,
                from_ip: HOST
            }
        );
    }

    #[test]
    fn a_probe_for_our_ip_is_answered_not_treated_as_a_claim() {
        let f = frame(ArpOp::Request, PEER, Ipv4Addr::UNSPECIFIED, VIP);
        assert_eq!(
            classify(&f, OURS, owns),
            Observation::Request {
                ip: VIP,
                from_mac: PEER,
                from_ip: Ipv4Addr::UNSPECIFIED
            }
        );
    }

    #[test]
    fn gratuitous_arp_or_reply_from_another_mac_is_a_claim() {
        for op in [ArpOp::Request, ArpOp::Reply] {
            let f = frame(op, PEER, VIP, VIP);
            assert_eq!(
                classify(&f, OURS, owns),
                Observation::Claim { ip: VIP, mac: PEER }
            );
        }
        let reply_to_host = frame(ArpOp::Reply, PEER, VIP, HOST);
        assert_eq!(
            classify(&reply_to_host, OURS, owns),
            Observation::Claim { ip: VIP, mac: PEER }
        );
    }

    #[test]
    fn our_own_frames_are_ignored() {
        let f = frame(ArpOp::Reply, OURS, VIP, VIP);
        assert_eq!(classify(&f, OURS, owns), Observation::Unrelated);
    }

    #[test]
    fn traffic_about_other_ips_is_unrelated() {
        assert_eq!(
            classify(&frame(ArpOp::Request, PEER, HOST, OTHER_VIP), OURS, owns),
            Observation::Unrelated
        );
        assert_eq!(
            classify(&frame(ArpOp::Reply, PEER, OTHER_VIP, HOST), OURS, owns),
            Observation::Unrelated
        );
        // A reply *to* our IP is someone answering us, not a claim.
        assert_eq!(
            classify(&frame(ArpOp::Reply, PEER, HOST, VIP), OURS, owns),
            Observation::Unrelated
        );
    }
}
