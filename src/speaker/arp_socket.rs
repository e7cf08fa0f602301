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

/// A classic BPF instruction, as `struct sock_filter` in `<linux/filter.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const BPF_LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: loads 1 if the frame carried an 802.1Q tag (the
/// kernel moves the outer tag into skb metadata before any packet socket sees the frame).
const VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG`: loads that tag's TCI.
const VLAN_TAG: u32 = 0xffff_f000 + 44;
const VLAN_ID_MASK: u32 = 0x0fff;
const ETHERTYPE_ARP: u32 = 0x0806;

/// Accept a frame whose EtherType is ARP and that carried no VLAN tag, or only a priority tag
/// (VLAN ID 0, which the kernel's own stack treats as untagged); drop everything else. A
/// second tag (QinQ) stays in the frame and fails the EtherType test.
static UNTAGGED_ARP_ONLY: [SockFilter; 9] = [
    stmt(BPF_LD_H_ABS, 12),               // 0: A = EtherType
    jump(BPF_JEQ_K, ETHERTYPE_ARP, 0, 6), // 1: not ARP -> 8
    stmt(BPF_LD_W_ABS, VLAN_TAG_PRESENT), // 2: A = tag present?
    jump(BPF_JEQ_K, 0, 3, 0),             // 3: no tag -> 7
    stmt(BPF_LD_W_ABS, VLAN_TAG),         // 4: A = TCI
    stmt(BPF_AND_K, VLAN_ID_MASK),        // 5: A = VLAN ID
    jump(BPF_JEQ_K, 0, 0, 1),             // 6: VLAN 0 -> 7, else -> 8
    stmt(BPF_RET_K, 0xffff),              // 7: accept
    stmt(BPF_RET_K, 0),                   // 8: drop
];

/// `BPF_STMT` of `<linux/filter.h>`.
const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `BPF_JUMP`: on true skip `jt` instructions, on false `jf`.
const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Opens an `AF_PACKET` raw socket that receives nothing until it is bound (protocol 0), with
/// the untagged-ARP filter attached, for pnet to bind to one interface and own. Binding
/// after the filter is in place means no unfiltered frame from any interface is ever queued.
// libc socket(2)/setsockopt(2)/close(2): no safe wrapper attaches a classic BPF filter before
// bind; each block below says why it is sound.
#[allow(unsafe_code)]
pub fn untagged_arp_socket() -> io::Result<RawFd> {
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let prog = SockFprog {
        len: UNTAGGED_ARP_ONLY.len() as u16,
        filter: UNTAGGED_ARP_ONLY.as_ptr(),
    };
    // SAFETY: `prog` points at a static array of `len` instructions laid out as the kernel's
    // `struct sock_filter`; the kernel copies the program during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: `fd` is ours and not shared yet.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}

/// Frames the kernel dropped on packet socket `fd` since the previous call (the kernel resets
/// its counters on every read), because the socket's receive queue was full: the reader fell
/// behind a burst or a flood. A request dropped here gets no reply, so operators need to see it.
// libc getsockopt(2) for PACKET_STATISTICS, which pnet does not expose.
#[allow(unsafe_code)]
pub fn take_receive_drops(fd: RawFd) -> io::Result<u32> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` is a `struct tpacket_stats` of `len` bytes that the kernel fills in;
    // `fd` is an open packet socket (the caller holds the channel that owns it).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stats.tp_drops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF program the way the kernel does for the instructions it uses, so
    /// the jump offsets are checked without a network; the netns e2e test checks the kernel.
    fn verdict(frame: &[u8], vlan_tci: Option<u16>) -> u32 {
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = UNTAGGED_ARP_ONLY[pc];
            pc += 1;
            match ins.code {
                BPF_LD_H_ABS => {
                    let at = ins.k as usize;
                    let Some(b) = frame.get(at..at + 2) else {
                        return 0;
                    };
                    acc = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                BPF_LD_W_ABS if ins.k == VLAN_TAG_PRESENT => acc = u32::from(vlan_tci.is_some()),
                BPF_LD_W_ABS if ins.k == VLAN_TAG => acc = u32::from(vlan_tci.unwrap_or(0)),
                BPF_AND_K => acc &= ins.k,
                BPF_JEQ_K => {
                    pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf });
                }
                BPF_RET_K => return ins.k,
                other => panic!("instruction {other:#x} not modelled"),
            }
        }
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
