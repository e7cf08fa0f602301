//! The packet socket an ARP port reads from, with a kernel filter that passes only untagged
//! (or priority-tagged) ARP frames.
//!
//! Two reasons. A VLAN-tagged ARP request arriving on the parent interface belongs to another
//! segment, but the kernel (or the NIC, with VLAN offload) moves the 802.1Q tag out of the frame
//! before a packet socket sees it, so without the filter the speaker answered it as if it came
//! from the untagged LAN. The tag survives as skb metadata, which a classic BPF filter can
//! read (`SKF_AD_VLAN_TAG_PRESENT`, `SKF_AD_VLAN_TAG`) and nothing in user space can through
//! pnet. And a socket without a filter copies every frame of the node (all its IP traffic) to
//! user space only to be dropped there; with the filter the kernel drops them.

use std::io;
use std::os::fd::RawFd;

use super::bpf::{
    filtered_packet_socket, jump, stmt, SockFilter, AND_K, JEQ_K, LD_H_ABS, LD_W_ABS, RET_K,
    VLAN_ID_MASK, VLAN_TAG, VLAN_TAG_PRESENT,
};

const ETHERTYPE_ARP: u32 = 0x0806;

/// Accept a frame whose EtherType is ARP and that carried no VLAN tag, or only a priority tag
/// (VLAN ID 0, which the kernel's own stack treats as untagged); drop everything else. A
/// second tag (QinQ) stays in the frame and fails the EtherType test.
static UNTAGGED_ARP_ONLY: [SockFilter; 9] = [
    stmt(LD_H_ABS, 12),               // 0: A = EtherType
    jump(JEQ_K, ETHERTYPE_ARP, 0, 6), // 1: not ARP -> 8
    stmt(LD_W_ABS, VLAN_TAG_PRESENT), // 2: A = tag present?
    jump(JEQ_K, 0, 3, 0),             // 3: no tag -> 7
    stmt(LD_W_ABS, VLAN_TAG),         // 4: A = TCI
    stmt(AND_K, VLAN_ID_MASK),        // 5: A = VLAN ID
    jump(JEQ_K, 0, 0, 1),             // 6: VLAN 0 -> 7, else -> 8
    stmt(RET_K, 0xffff),              // 7: accept
    stmt(RET_K, 0),                   // 8: drop
];

/// Opens an `AF_PACKET` raw socket that receives nothing until it is bound, with the
/// untagged-ARP filter attached, for pnet to bind to one interface and own.
pub fn untagged_arp_socket() -> io::Result<RawFd> {
    filtered_packet_socket(&UNTAGGED_ARP_ONLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(frame: &[u8], vlan_tci: Option<u16>) -> u32 {
        crate::speaker::bpf::verdict(&UNTAGGED_ARP_ONLY, frame, vlan_tci)
    }

    fn frame(ethertype: u16) -> Vec<u8> {
        let mut f = vec![0xff; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0; 28]);
        f
    }

    #[test]
    fn only_untagged_or_priority_tagged_arp_passes() {
        assert_eq!(verdict(&frame(0x0806), None), 0xffff);
        assert_eq!(verdict(&frame(0x0806), Some(100)), 0, "VLAN 100");
        assert_eq!(
            verdict(&frame(0x0806), Some(0xa064)),
            0,
            "VLAN 100 with priority bits"
        );
        assert_eq!(
            verdict(&frame(0x0806), Some(0xa000)),
            0xffff,
            "priority tag only (VLAN 0)"
        );
        assert_eq!(verdict(&frame(0x8100), Some(0)), 0, "a second tag (QinQ)");
        assert_eq!(verdict(&frame(0x0800), None), 0, "IPv4");
        assert_eq!(verdict(&frame(0x86dd), None), 0, "IPv6");
        assert_eq!(verdict(&[0xff; 10], None), 0, "runt");
    }
}
