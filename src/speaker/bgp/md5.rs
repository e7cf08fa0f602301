//! TCP MD5 signatures (RFC 2385) on a socket, by `setsockopt(IPPROTO_TCP, TCP_MD5SIG)`.
//!
//! No crate wraps this (libc exports only the constants), so the kernel's `struct tcp_md5sig`
//! is declared here. The key must be set before `connect(2)`: the SYN is already signed. A peer
//! expecting a signature silently drops unsigned (or wrongly signed) segments, so a mismatch
//! shows up only as a connect that never completes. Needs no capability beyond an ordinary
//! socket (checked: it works for the unprivileged owner of the socket; CAP_NET_RAW or
//! CAP_NET_ADMIN are not involved). Kernels built without `CONFIG_TCP_MD5SIG` answer
//! `ENOPROTOOPT`, reported as such.

// setsockopt(TCP_MD5SIG) and the kernel's sockaddr layout are FFI; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// The kernel's key length limit (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from `linux/tcp.h`: 216 bytes on every Linux architecture.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

/// Signs every segment exchanged with `peer` on socket `fd` with `key`.
pub fn set_md5sig(fd: RawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key of {} bytes exceeds {MAX_KEY_LEN}", key.len()),
        ));
    }
    // SAFETY: an all-zero `tcp_md5sig` is a valid value of the plain-data struct.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        }
        IpAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a valid `tcp_md5sig` that outlives the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
            " (this kernel was built without CONFIG_TCP_MD5SIG)"
        } else {
            ""
        };
        Err(io::Error::new(
            e.kind(),
            format!("setsockopt(TCP_MD5SIG) for {peer}: {e}{hint}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_matches_the_kernel_layout() {
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn the_kernel_accepts_the_option_before_connect() {
        let fd = tcp_socket().expect("socket(2)");
        // A literal address in a unit test: parsing it cannot fail.
        let r = set_md5sig(fd, "127.0.0.1".parse().unwrap(), b"s3cret");
        // SAFETY: closing the fd this test opened.
        unsafe { libc::close(fd) };
        match r {
            Ok(()) => {}
            Err(e) if e.to_string().contains("CONFIG_TCP_MD5SIG") => {
                eprintln!("SKIPPED: kernel without TCP MD5: {e}")
            }
            Err(e) => panic!("{e}"),
        }
        // A literal address in a unit test: parsing it cannot fail.
        assert!(set_md5sig(-1, "127.0.0.1".parse().unwrap(), &[0; 81]).is_err());
    }

    fn tcp_socket() -> io::Result<RawFd> {
        // SAFETY: socket(2) with constant arguments; the fd is closed by the caller.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    }
}
