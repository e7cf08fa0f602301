//! The heartbeat socket: one UDP socket on `--heartbeat-port`, bound to the wildcard address,
//! dual-stack (an IPv6 socket that also carries IPv4 as v4-mapped addresses; an IPv4 socket
//! where the kernel has no IPv6). The sender task sends one heartbeat per interval by unicast
//! to each of our watchers, at the address each publishes on the subnet we share, and spreads
//! suspicions and refutations to our neighbours; the receiver task authenticates what
//! arrives, refuses replays, answers a suspicion of ourselves, and hands the rest to the
//! speaker's loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_core::heartbeat::{
    decode_message, encode_message, Body, Heartbeat, Message, ReplayGuard,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::key::KeyWatch;
use super::metrics::HeartbeatMetrics;

/// What the sender puts in every datagram.
#[derive(Debug, Clone)]
pub struct SendParams {
    /// Our node name.
    pub node: String,
    /// Our boot epoch.
    pub epoch: u64,
    /// The port to send to (and listen on).
    pub port: u16,
    /// Promised interval.
    pub interval: Duration,
    /// Misses peers should tolerate.
    pub misses: u8,
}

/// Where datagrams go, from the watcher assignment (updated by the speaker's loop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Heartbeats: our watchers, and watchers dropped less than the release grace ago.
    pub watchers: Vec<IpAddr>,
    /// Suspicions and refutations: every other speaker sharing a subnet with us.
    pub neighbours: Vec<IpAddr>,
}

/// The least time between two refutations: a burst of suspicions (each watcher sends its own,
/// twice) is answered once.
const REFUTE_GAP: Duration = Duration::from_millis(500);

/// The heartbeat socket and whether it carries IPv6.
#[derive(Debug, Clone)]
pub struct HeartbeatSocket {
    sock: Arc<UdpSocket>,
    v6: bool,
}

impl HeartbeatSocket {
    /// Where to send to reach `ip` on `port` over this socket (`None`: an IPv6 peer while the
    /// kernel has no IPv6).
    fn dest(&self, ip: IpAddr, port: u16) -> Option<SocketAddr> {
        match (ip, self.v6) {
            (IpAddr::V4(v4), true) => Some(SocketAddr::V6(SocketAddrV6::new(
                v4.to_ipv6_mapped(),
                port,
                0,
                0,
            ))),
            (IpAddr::V4(v4), false) => Some(SocketAddr::V4(SocketAddrV4::new(v4, port))),
            (IpAddr::V6(v6), true) => Some(SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0))),
            (IpAddr::V6(_), false) => None,
        }
    }
}

/// Opens the socket: wildcard bind on `port` (address reuse, so a restarting speaker need not
/// wait), dual-stack where the kernel has IPv6.
pub fn open(port: u16) -> std::io::Result<HeartbeatSocket> {
    let dual = || -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(false)?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
        Ok(s)
    };
    let (s, v6) = match dual() {
        Ok(s) => (s, true),
        Err(e) => {
            tracing::info!(error = %e, "no IPv6 heartbeat socket (IPv6 off in this kernel?); heartbeats use IPv4 only");
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
            (s, false)
        }
    };
    s.set_nonblocking(true)?;
    Ok(HeartbeatSocket {
        sock: Arc::new(UdpSocket::from_std(s.into())?),
        v6,
    })
}

/// The sender task's state: one counter for every kind of datagram, so receivers' replay
/// guards see one rising sequence from us.
struct Sender {
    sock: HeartbeatSocket,
    params: SendParams,
    counter: u64,
    metrics: HeartbeatMetrics,
}

impl Sender {
    /// Encodes `body` with the next counter and sends it to each of `to`; returns how many
    /// datagrams went out and whether some failed.
    async fn send(
        &mut self,
        k: &ferrolb_core::heartbeat::HeartbeatKey,
        body: Body,
        to: &[IpAddr],
    ) -> (usize, bool) {
        self.counter += 1;
        let msg = Message {
            from: Heartbeat {
                node: self.params.node.clone(),
                epoch: self.params.epoch,
                counter: self.counter,
                interval: self.params.interval,
                misses: self.params.misses,
            },
            body,
        };
        let bytes = match encode_message(&msg, k) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(node = %self.params.node, error = %e, "cannot encode a heartbeat message; none are sent");
                return (0, true);
            }
        };
        let (mut sent, mut failed) = (0, false);
        for ip in to {
            let Some(dest) = self.sock.dest(*ip, self.params.port) else {
                failed = true;
                continue;
            };
            match self.sock.sock.send_to(&bytes, dest).await {
                Ok(_) => sent += 1,
                Err(e) => {
                    failed = true;
                    tracing::debug!(%dest, error = %e, "heartbeat send failed");
                }
            }
        }
        let sent_u64 = u64::try_from(sent).unwrap_or(u64::MAX);
        match &msg.body {
            Body::Heartbeat => {
                self.metrics.sent.inc_by(sent_u64);
            }
            Body::Suspect { .. } => self.metrics.messages_by("suspect", "sent", sent_u64),
            Body::Alive => self.metrics.messages_by("alive", "sent", sent_u64),
        }
        (sent, failed)
    }
}

/// Sends a heartbeat every interval to each watcher in `targets` while a key is loaded, and
/// each suspicion or refutation on `outgoing` to every neighbour at once and again one interval
/// later (a single lost datagram must not lose it). Publishes on `sending` whether the last
/// round went out (no watcher to send to counts as working: nothing failed).
#[allow(clippy::too_many_arguments)]
pub fn spawn_sender(
    sock: HeartbeatSocket,
    params: SendParams,
    key: KeyWatch,
    targets: watch::Receiver<Targets>,
    mut outgoing: mpsc::Receiver<Body>,
    sending: watch::Sender<bool>,
    metrics: HeartbeatMetrics,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(params.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sender = Sender {
            sock,
            params,
            counter: 0,
            metrics,
        };
        let mut repeat: Vec<Body> = Vec::new();
        let mut last_refute: Option<Instant> = None;
        loop {
            let extra = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => None,
                Some(body) = outgoing.recv() => Some(body),
            };
            let Some(k) = key.borrow().0.clone() else {
                sending.send_if_modified(|s| std::mem::replace(s, false));
                continue;
            };
            let neighbours = targets.borrow().neighbours.clone();
            if let Some(body) = extra {
                if body == Body::Alive {
                    if last_refute.is_some_and(|t| t.elapsed() < REFUTE_GAP) {
                        continue;
                    }
                    last_refute = Some(Instant::now());
                }
                sender.send(&k, body.clone(), &neighbours).await;
                repeat.push(body);
                continue;
            }
            for body in std::mem::take(&mut repeat) {
                sender.send(&k, body, &neighbours).await;
            }
            let watchers = targets.borrow().watchers.clone();
            let ok = if watchers.is_empty() {
                true
            } else {
                let (sent, _) = sender.send(&k, Body::Heartbeat, &watchers).await;
                sent > 0
            };
            sending.send_if_modified(|s| std::mem::replace(s, ok) != ok);
        }
    });
}

/// Receives, authenticates and replay-checks datagrams. A suspicion of ourselves (this boot)
/// is answered with an "alive" on `outgoing`; every other accepted message from a peer goes to
/// `accepted`. `epochs` holds each peer's current boot epoch as its Lease names it.
#[allow(clippy::too_many_arguments)]
pub fn spawn_receiver(
    sock: HeartbeatSocket,
    node: String,
    epoch: u64,
    key: KeyWatch,
    mut epochs: watch::Receiver<BTreeMap<String, u64>>,
    accepted: mpsc::Sender<Message>,
    outgoing: mpsc::Sender<Body>,
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
                r = sock.sock.recv_from(&mut buf) => match r {
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
            let msg = match decode_message(&buf[..n], &k) {
                Ok(m) => m,
                Err(e) => {
                    metrics.reject(e.label());
                    continue;
                }
            };
            if msg.from.node == node {
                continue;
            }
            if let Err(e) = guard.check(&msg.from) {
                metrics.reject(e.label());
                continue;
            }
            match &msg.body {
                Body::Heartbeat => {
                    metrics.received.inc();
                }
                Body::Suspect { node: subject, .. } => {
                    metrics.messages_by("suspect", "received", 1);
                    if *subject == node {
                        if matches!(msg.body, Body::Suspect { epoch: e, .. } if e == epoch) {
                            tracing::info!(by = %msg.from.node, "a peer suspects this speaker dead; telling every peer it is alive");
                            let _ = outgoing.try_send(Body::Alive);
                        }
                        continue;
                    }
                }
                Body::Alive => metrics.messages_by("alive", "received", 1),
            }
            if accepted.try_send(msg).is_err() {
                metrics.reject("overflow");
            }
        }
    });
}
