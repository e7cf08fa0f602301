//! The heartbeat socket: one UDP socket on `--heartbeat-port`, bound to the wildcard address,
//! member of the heartbeat group on every eligible interface. The sender task sends one datagram
//! per interface per interval to the group (link-local multicast, TTL 1, never routed); the
//! receiver task authenticates what arrives, refuses replays, and hands accepted heartbeats to
//! the speaker's loop.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::heartbeat::{decode, encode, Heartbeat, ReplayGuard};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::key::KeyWatch;
use super::metrics::HeartbeatMetrics;

/// What the sender puts in every heartbeat.
#[derive(Debug, Clone)]
pub struct SendParams {
    /// Our node name.
    pub node: String,
    /// Our boot epoch.
    pub epoch: u64,
    /// The group to send to.
    pub group: Ipv4Addr,
    /// The port to send to (and listen on).
    pub port: u16,
    /// Promised interval.
    pub interval: Duration,
    /// Misses peers should tolerate.
    pub misses: u8,
}

/// Opens the socket: wildcard bind on `port` (address reuse, so a restarting speaker need not
/// wait), multicast TTL 1 and no loopback of our own datagrams.
pub fn open(port: u16) -> std::io::Result<Arc<UdpSocket>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(false)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(Arc::new(UdpSocket::from_std(s.into())?))
}

/// Makes `ifindex` the interface multicast datagrams leave from. By index (`ip_mreqn`), since
/// the speaker tracks interfaces by index and an interface's address may change under it.
#[allow(unsafe_code)]
fn set_multicast_if(sock: &UdpSocket, ifindex: u32) -> std::io::Result<()> {
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: i32::try_from(ifindex).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "interface index")
        })?,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::ip_mreqn>())
        .map_err(|_| std::io::Error::other("ip_mreqn size"))?;
    // SAFETY: the fd is a live UDP socket owned by `sock` for the duration of the call; `mreq`
    // is a fully initialised ip_mreqn and `len` is its exact size, as IP_MULTICAST_IF expects.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            std::ptr::addr_of!(mreq).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn sync_groups(sock: &UdpSocket, group: Ipv4Addr, joined: &mut BTreeSet<u32>, want: &[u32]) {
    let sref = socket2::SockRef::from(sock);
    let want: BTreeSet<u32> = want.iter().copied().collect();
    for gone in joined.difference(&want).copied().collect::<Vec<_>>() {
        // The interface may be gone already, which leaves the group by itself.
        let _ = sref.leave_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(gone));
        joined.remove(&gone);
    }
    for new in want
        .difference(&joined.clone())
        .copied()
        .collect::<Vec<_>>()
    {
        match sref.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(new)) {
            Ok(()) => {
                joined.insert(new);
            }
            Err(e) => {
                tracing::warn!(ifindex = new, %group, error = %e, "cannot join the heartbeat group on this interface; peers there are judged by their leases alone")
            }
        }
    }
}

/// Sends a heartbeat every interval on every interface in `ifaces` while a key is loaded.
/// Publishes on `sending` whether the last round went out on at least one interface.
pub fn spawn_sender(
    sock: Arc<UdpSocket>,
    params: SendParams,
    key: KeyWatch,
    mut ifaces: watch::Receiver<Vec<u32>>,
    sending: watch::Sender<bool>,
    metrics: HeartbeatMetrics,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut joined = BTreeSet::new();
        let mut counter: u64 = 0;
        let mut ticker = tokio::time::interval(params.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let dest = SocketAddr::V4(SocketAddrV4::new(params.group, params.port));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if ifaces.has_changed().unwrap_or(false) || joined.is_empty() {
                let want = ifaces.borrow_and_update().clone();
                sync_groups(&sock, params.group, &mut joined, &want);
            }
            let Some(k) = key.borrow().0.clone() else {
                sending.send_if_modified(|s| std::mem::replace(s, false));
                continue;
            };
            counter += 1;
            let hb = Heartbeat {
                node: params.node.clone(),
                epoch: params.epoch,
                counter,
                interval: params.interval,
                misses: params.misses,
            };
            let bytes = match encode(&hb, &k) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(node = %params.node, error = %e, "cannot encode a heartbeat; none are sent");
                    sending.send_if_modified(|s| std::mem::replace(s, false));
                    continue;
                }
            };
            let mut sent_any = false;
            let targets = ifaces.borrow().clone();
            for ifindex in targets {
                let result = match set_multicast_if(&sock, ifindex) {
                    Ok(()) => sock.send_to(&bytes, dest).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        sent_any = true;
                        metrics.sent.inc();
                    }
                    Err(e) => {
                        tracing::debug!(ifindex, error = %e, "heartbeat send failed")
                    }
                }
            }
            sending.send_if_modified(|s| std::mem::replace(s, sent_any) != sent_any);
        }
    });
}

/// Receives, authenticates and replay-checks datagrams; accepted heartbeats from peers go to
/// `accepted`. `epochs` holds each peer's current boot epoch as its Lease names it.
pub fn spawn_receiver(
    sock: Arc<UdpSocket>,
    node: String,
    key: KeyWatch,
    mut epochs: watch::Receiver<BTreeMap<String, u64>>,
    accepted: mpsc::Sender<Heartbeat>,
    metrics: HeartbeatMetrics,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut guard = ReplayGuard::new();
        let mut known: BTreeMap<String, u64> = BTreeMap::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, _)) => n,
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            if epochs.has_changed().unwrap_or(false) {
                let now = epochs.borrow_and_update().clone();
                for gone in known.keys().filter(|k| !now.contains_key(*k)) {
                    guard.set_lease_epoch(gone, None);
                }
                for (peer, epoch) in &now {
                    guard.set_lease_epoch(peer, Some(*epoch));
                }
                known = now;
            }
            let Some(k) = key.borrow().0.clone() else {
                metrics.reject("no_key");
                continue;
            };
            let hb = match decode(&buf[..n], &k) {
                Ok(hb) => hb,
                Err(e) => {
                    metrics.reject(e.label());
                    continue;
                }
            };
            if hb.node == node {
                continue;
            }
            if let Err(e) = guard.check(&hb) {
                metrics.reject(e.label());
                continue;
            }
            metrics.received.inc();
            if accepted.try_send(hb).is_err() {
                metrics.reject("overflow");
            }
        }
    });
}
