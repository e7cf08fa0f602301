//! The sockets behind IPv6 Neighbor Discovery: a packet socket that passes only untagged (or
//! priority-tagged) ICMPv6 Neighbor Solicitations and Advertisements to user space, and the
//! solicited-node multicast memberships that make the kernel deliver solicitations at all.
//!
//! Why a packet socket and not an ICMPv6 socket (MetalLB's choice): a Service IP is not an
//! address of the node, so a *unicast* solicitation for it (a neighbour's reachability probe)
//! never reaches any ICMPv6 socket; MetalLB misses these, and switches drop the VIP's entry
//! every half hour. At layer 2 we see both kinds, and need no link-local address to bind.
//!
//! Why a kernel filter: as for ARP (see `arp_socket`), a VLAN-tagged frame arrives on the
//! parent interface with its tag moved into skb metadata, so without the filter NDP from
//! another VLAN would look like our own LAN's; and without it every IPv6 packet of the node
//! would be copied to user space only to be dropped there. The filter also drops anything
//! whose hop limit is not 255, which RFC 4861 §7.1 makes invalid, so off-link floods stop in
//! the kernel.
//!
//! Why group memberships: solicitations for an IP go to its solicited-node group
//! (`ff02::1:ffXX:XXXX`). A NIC with multicast filtering drops groups nobody joined, and an
//! MLD-snooping switch forwards a group only to ports that sent an MLD report for it (cilium
//! #41678, ndppd #55). `PACKET_ADD_MEMBERSHIP` would only program the NIC; `IPV6_ADD_MEMBERSHIP`
//! on an ordinary (unbound, so it receives nothing) UDP socket makes the kernel also send MLD
//! reports and answer MLD queries for the group. Joining a multicast group needs no capability
//! (any unprivileged program may), so the speaker still needs only CAP_NET_RAW, for the packet
//! socket; `tests/ndp_e2e.rs` checks this by doing both in a process whose only capability is
//! CAP_NET_RAW.

// Packet sockets, group memberships and setsockopt are FFI; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use ferrolb_core::ndp::solicited_node;

use super::bpf::{
    filtered_packet_socket, jump, stmt, SockFilter, AND_K, JEQ_K, LD_B_ABS, LD_H_ABS, LD_W_ABS,
    RET_K, VLAN_ID_MASK, VLAN_TAG, VLAN_TAG_PRESENT,
};
use thiserror::Error;

const ETHERTYPE_IPV6: u32 = 0x86dd;
/// Offsets in an untagged frame: the IPv6 next header and hop limit, and the ICMPv6 type.
const AT_NEXT_HEADER: u32 = 14 + 6;
const AT_HOP_LIMIT: u32 = 14 + 7;
const AT_ICMP_TYPE: u32 = 14 + 40;

/// Accept a frame that is IPv6, carried no VLAN tag or only a priority tag (VLAN 0), whose
/// next header is ICMPv6 directly (no extension headers; Neighbor Discovery never needs
/// them), whose hop limit is 255, and whose ICMPv6 type is 135 (solicitation) or 136
/// (advertisement). Everything else, runts included (a load past the end drops), is dropped
/// in the kernel.
static UNTAGGED_NDP_ONLY: [SockFilter; 16] = [
    stmt(LD_H_ABS, 12),                 // 0: A = EtherType
    jump(JEQ_K, ETHERTYPE_IPV6, 0, 13), // 1: not IPv6 -> 15
    stmt(LD_W_ABS, VLAN_TAG_PRESENT),   // 2: A = tag present?
    jump(JEQ_K, 0, 3, 0),               // 3: no tag -> 7
    stmt(LD_W_ABS, VLAN_TAG),           // 4: A = TCI
    stmt(AND_K, VLAN_ID_MASK),          // 5: A = VLAN ID
    jump(JEQ_K, 0, 0, 8),               // 6: VLAN != 0 -> 15
    stmt(LD_B_ABS, AT_NEXT_HEADER),     // 7: A = next header
    jump(JEQ_K, 58, 0, 6),              // 8: not ICMPv6 -> 15
    stmt(LD_B_ABS, AT_HOP_LIMIT),       // 9: A = hop limit
    jump(JEQ_K, 255, 0, 4),             // 10: not 255 -> 15
    stmt(LD_B_ABS, AT_ICMP_TYPE),       // 11: A = ICMPv6 type
    jump(JEQ_K, 135, 1, 0),             // 12: solicitation -> 14
    jump(JEQ_K, 136, 0, 1),             // 13: advertisement -> 14, else -> 15
    stmt(RET_K, 0xffff),                // 14: accept
    stmt(RET_K, 0),                     // 15: drop
];

/// Opens an `AF_PACKET` raw socket that receives nothing until it is bound (protocol 0), with
/// the untagged-NDP filter attached, for pnet to bind to one interface and own. Needs
/// CAP_NET_RAW.
pub fn untagged_ndp_socket() -> io::Result<RawFd> {
    filtered_packet_socket(&UNTAGGED_NDP_ONLY)
}

/// A solicited-node group could not be joined or left.
#[derive(Debug, Error)]
pub enum GroupError {
    /// The membership socket could not be opened.
    #[error("cannot open an IPv6 socket for multicast memberships: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused the join (for example: IPv6 disabled on the interface).
    #[error("cannot join group {group} on interface index {ifindex} (for {ip}): {source}")]
    Join {
        /// The solicited-node group.
        group: Ipv6Addr,
        /// The interface.
        ifindex: u32,
        /// The IP whose group it is.
        ip: Ipv6Addr,
        /// Why.
        source: io::Error,
    },
    /// The kernel refused to leave.
    #[error("cannot leave group {group} on interface index {ifindex}: {source}")]
    Leave {
        /// The solicited-node group.
        group: Ipv6Addr,
        /// The interface.
        ifindex: u32,
        /// Why.
        source: io::Error,
    },
}

/// How many groups one membership socket holds. The kernel charges each membership to the
/// socket's option memory (`net.core.optmem_max`), so one socket for thousands of Service IPs
/// would eventually fail with ENOBUFS; a new socket is opened for every this many groups.
const GROUPS_PER_SOCKET: usize = 64;

struct MemberSocket {
    fd: OwnedFd,
    groups: usize,
}

struct Membership {
    /// Index into `SolicitedNodeGroups::sockets`.
    socket: usize,
    /// The IPs that need this group on this interface; the group is left when none is left.
    ips: BTreeSet<Ipv6Addr>,
}

/// The solicited-node multicast groups joined for the IPs a speaker answers or watches,
/// refcounted by IP: IPs whose last 24 bits agree share a group, which is left only when the
/// last of them is withdrawn. Memberships belong to the network namespace this value's
/// sockets were created in (the thread's, at the first join).
#[derive(Default)]
pub struct SolicitedNodeGroups {
    sockets: Vec<MemberSocket>,
    groups: BTreeMap<(u32, Ipv6Addr), Membership>,
}

impl SolicitedNodeGroups {
    /// No groups joined.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes sure `ip`'s solicited-node group is joined on interface `ifindex`; returns whether
    /// the kernel membership was created now (false when another IP already needed it or `ip`
    /// was already counted).
    pub fn join(&mut self, ifindex: u32, ip: Ipv6Addr) -> Result<bool, GroupError> {
        let group = solicited_node(ip);
        if let Some(m) = self.groups.get_mut(&(ifindex, group)) {
            m.ips.insert(ip);
            return Ok(false);
        }
        let socket = self.socket_with_room()?;
        let fd = self.sockets[socket].fd.as_raw_fd();
        membership(fd, libc::IPV6_ADD_MEMBERSHIP, group, ifindex).map_err(|source| {
            GroupError::Join {
                group,
                ifindex,
                ip,
                source,
            }
        })?;
        self.sockets[socket].groups += 1;
        self.groups.insert(
            (ifindex, group),
            Membership {
                socket,
                ips: BTreeSet::from([ip]),
            },
        );
        Ok(true)
    }

    /// Stops counting `ip` for its group on `ifindex`; leaves the group when no IP needs it any
    /// more and returns whether it did.
    pub fn leave(&mut self, ifindex: u32, ip: Ipv6Addr) -> Result<bool, GroupError> {
        let group = solicited_node(ip);
        let Some(m) = self.groups.get_mut(&(ifindex, group)) else {
            return Ok(false);
        };
        m.ips.remove(&ip);
        if !m.ips.is_empty() {
            return Ok(false);
        }
        let socket = m.socket;
        self.groups.remove(&(ifindex, group));
        self.sockets[socket].groups -= 1;
        let fd = self.sockets[socket].fd.as_raw_fd();
        membership(fd, libc::IPV6_DROP_MEMBERSHIP, group, ifindex).map_err(|source| {
            GroupError::Leave {
                group,
                ifindex,
                source,
            }
        })?;
        Ok(true)
    }

    /// Forgets every membership on `ifindex` (its port closed, or the interface is gone, in
    /// which case the kernel already dropped them and the leave errors are expected).
    pub fn leave_interface(&mut self, ifindex: u32) {
        let ips: Vec<Ipv6Addr> = self
            .groups
            .range((ifindex, Ipv6Addr::UNSPECIFIED)..)
            .take_while(|((i, _), _)| *i == ifindex)
            .flat_map(|(_, m)| m.ips.iter().copied())
            .collect();
        for ip in ips {
            if let Err(e) = self.leave(ifindex, ip) {
                tracing::debug!(error = %e, "leaving a group of a closed port");
            }
        }
    }

    /// The interfaces on which `ip` is counted.
    pub fn interfaces_of(&self, ip: Ipv6Addr) -> BTreeSet<u32> {
        let group = solicited_node(ip);
        self.groups
            .iter()
            .filter(|((_, g), m)| *g == group && m.ips.contains(&ip))
            .map(|((i, _), _)| *i)
            .collect()
    }

    /// How many (interface, group) memberships are held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn socket_with_room(&mut self) -> Result<usize, GroupError> {
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| s.groups < GROUPS_PER_SOCKET)
        {
            return Ok(i);
        }
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(GroupError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.sockets.push(MemberSocket { fd, groups: 0 });
        Ok(self.sockets.len() - 1)
    }
}

/// `setsockopt(IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP / IPV6_DROP_MEMBERSHIP)` for `group` on
/// `ifindex`.
fn membership(fd: RawFd, op: libc::c_int, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
    let mreq = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: group.octets(),
        },
        ipv6mr_interface: ifindex,
    };
    // SAFETY: `mreq` is a fully initialised `struct ipv6_mreq` of the size passed; `fd` is an
    // open socket owned by the caller.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            op,
            (&mreq as *const libc::ipv6_mreq).cast(),
            std::mem::size_of::<libc::ipv6_mreq>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(frame: &[u8], vlan_tci: Option<u16>) -> u32 {
        crate::speaker::bpf::verdict(&UNTAGGED_NDP_ONLY, frame, vlan_tci)
    }

    fn frame(ethertype: u16, next_header: u8, hop_limit: u8, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0x33; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, next_header, hop_limit]);
        f.extend_from_slice(&[0; 32]);
        f.extend_from_slice(&[icmp_type, 0, 0, 0]);
        f.extend_from_slice(&[0; 28]);
        f
    }

    const ACCEPT: u32 = 0xffff;

    #[test]
    fn only_untagged_neighbor_discovery_passes() {
        assert_eq!(verdict(&frame(0x86dd, 58, 255, 135), None), ACCEPT, "NS");
        assert_eq!(verdict(&frame(0x86dd, 58, 255, 136), None), ACCEPT, "NA");
        assert_eq!(verdict(&frame(0x86dd, 58, 255, 134), None), 0, "RA");
        assert_eq!(verdict(&frame(0x86dd, 58, 255, 128), None), 0, "echo");
        assert_eq!(verdict(&frame(0x86dd, 58, 255, 143), None), 0, "MLDv2");
        assert_eq!(
            verdict(&frame(0x86dd, 58, 64, 135), None),
            0,
            "hop limit 64"
        );
        assert_eq!(verdict(&frame(0x86dd, 0, 255, 135), None), 0, "hop-by-hop");
        assert_eq!(verdict(&frame(0x86dd, 17, 255, 135), None), 0, "UDP");
        assert_eq!(verdict(&frame(0x0806, 58, 255, 135), None), 0, "ARP");
        assert_eq!(verdict(&frame(0x0800, 58, 255, 135), None), 0, "IPv4");
    }

    #[test]
    fn tagged_frames_and_runts_are_dropped() {
        let ns = frame(0x86dd, 58, 255, 135);
        assert_eq!(verdict(&ns, Some(100)), 0, "VLAN 100");
        assert_eq!(verdict(&ns, Some(0xa064)), 0, "VLAN 100 with priority");
        assert_eq!(verdict(&ns, Some(0xa000)), ACCEPT, "priority tag only");
        assert_eq!(
            verdict(&frame(0x8100, 58, 255, 135), Some(0)),
            0,
            "second tag"
        );
        assert_eq!(verdict(&ns[..54], None), 0, "ends before the ICMPv6 type");
        assert_eq!(verdict(&ns[..20], None), 0, "ends before the next header");
    }

    #[test]
    fn groups_are_refcounted_by_ip() {
        // Joins on the loopback interface of whatever namespace runs the tests: it always
        // exists and needs nothing (no capability either).
        // SAFETY: if_nametoindex with a NUL-terminated constant.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_ne!(lo, 0);
        let a: Ipv6Addr = "2001:db8::1:100".parse().expect("ip");
        let b: Ipv6Addr = "2001:db8:1::1:100".parse().expect("ip"); // same group as `a`
        let c: Ipv6Addr = "2001:db8::2:200".parse().expect("ip");
        let mut g = SolicitedNodeGroups::new();
        let joined = match g.join(lo, a) {
            Ok(j) => j,
            // A build sandbox without IPv6 cannot run this; the netns e2e test covers it.
            Err(GroupError::Join { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV)
                    || source.raw_os_error() == Some(libc::EADDRNOTAVAIL) =>
            {
                eprintln!("SKIPPED: no IPv6 on lo here ({source})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(joined, "first IP joins");
        assert!(!g.join(lo, a).expect("again"), "idempotent per IP");
        assert!(
            !g.join(lo, b).expect("b"),
            "same group: no second membership"
        );
        assert!(g.join(lo, c).expect("c"));
        assert_eq!(g.len(), 2);
        assert!(!g.leave(lo, a).expect("leave a"), "b still needs the group");
        assert!(g.leave(lo, b).expect("leave b"), "last IP leaves");
        assert_eq!(g.interfaces_of(c), BTreeSet::from([lo]));
        g.leave_interface(lo);
        assert!(g.is_empty());
        assert!(!g.leave(lo, c).expect("leaving twice is a no-op"));
    }
}
