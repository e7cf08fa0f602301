//! Classic BPF on packet sockets, shared by the ARP and NDP responders: the instruction
//! layout the kernel expects, the few opcodes the filters use, opening a packet socket with
//! a filter attached before it is bound, and the socket's drop counter. Each responder keeps
//! its own program (`arp_socket`, `ndp_socket`); this module knows nothing about protocols.

use std::io;
use std::os::fd::RawFd;

/// A classic BPF instruction, as `struct sock_filter` in `<linux/filter.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Instructions to skip when a jump's test holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// `BPF_LD | BPF_B | BPF_ABS`: load the byte at offset `k`.
pub const LD_B_ABS: u16 = 0x30;
/// `BPF_LD | BPF_H | BPF_ABS`: load the big-endian 16-bit word at offset `k`.
pub const LD_H_ABS: u16 = 0x28;
/// `BPF_LD | BPF_W | BPF_ABS`: load a 32-bit word (here: only ancillary data).
pub const LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub const AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub const JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`: accept `k` bytes (0 drops).
pub const RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: loads 1 if the frame carried an 802.1Q tag (the
/// kernel moves the outer tag into skb metadata before any packet socket sees the frame).
pub const VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG`: loads that tag's TCI.
pub const VLAN_TAG: u32 = 0xffff_f000 + 44;
/// The VLAN ID bits of a TCI.
pub const VLAN_ID_MASK: u32 = 0x0fff;

/// `BPF_STMT` of `<linux/filter.h>`.
pub const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `BPF_JUMP`: on true skip `jt` instructions, on false `jf`.
pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Opens an `AF_PACKET` raw socket that receives nothing until it is bound (protocol 0), with
/// `program` attached, for pnet to bind to one interface and own. Binding after the filter is
/// in place means no unfiltered frame from any interface is ever queued. Needs CAP_NET_RAW.
// libc socket(2)/setsockopt(2)/close(2): no safe wrapper attaches a classic BPF filter before
// bind; each block below says why it is sound.
#[allow(unsafe_code)]
pub fn filtered_packet_socket(program: &'static [SockFilter]) -> io::Result<RawFd> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
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

/// Runs `program` over `frame` the way the kernel does for the instructions the filters use,
/// so their jump offsets are unit-tested without a network (the netns e2e tests check the
/// kernel itself). `vlan_tci` is the tag the kernel moved into metadata, if any.
#[cfg(test)]
pub fn verdict(program: &[SockFilter], frame: &[u8], vlan_tci: Option<u16>) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = program[pc];
        pc += 1;
        match ins.code {
            LD_H_ABS => {
                let at = ins.k as usize;
                let Some(b) = frame.get(at..at + 2) else {
                    return 0;
                };
                acc = u32::from(u16::from_be_bytes([b[0], b[1]]));
            }
            LD_B_ABS => {
                let Some(b) = frame.get(ins.k as usize) else {
                    return 0;
                };
                acc = u32::from(*b);
            }
            LD_W_ABS if ins.k == VLAN_TAG_PRESENT => acc = u32::from(vlan_tci.is_some()),
            LD_W_ABS if ins.k == VLAN_TAG => acc = u32::from(vlan_tci.unwrap_or(0)),
            AND_K => acc &= ins.k,
            JEQ_K => {
                pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf });
            }
            RET_K => return ins.k,
            other => panic!("instruction {other:#x} not modelled"),
        }
    }
}
