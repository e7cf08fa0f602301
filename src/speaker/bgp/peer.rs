//! One BGP peer's task: dials the router (from `sourceAddress` if set, TCP MD5 if configured),
//! feeds everything that happens to the pure [`Session`], and carries out what it returns.
//! The socket is created by the thread that runs the task, so it lives in that thread's network
//! namespace (the node's, in production; a test's namespace in the interop tests).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use ferrolb_core::bgp::{
    Output, Prefix, RouteAttrs, Session, SessionCounters, SessionParams, State,
};
use ferrolb_core::election::MonoTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// How to reach one peer.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// The router's address and port.
    pub remote: SocketAddr,
    /// Local address to bind before connecting.
    pub source: Option<IpAddr>,
    /// TCP MD5 key.
    pub md5_key: Option<Vec<u8>>,
    /// Send with TTL 255 (eBGP multihop) instead of the kernel default.
    pub multihop: bool,
    /// The session's settings.
    pub session: SessionParams,
}

/// What the metrics endpoint and the logs see of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// FSM state.
    pub state: State,
    /// Counters (resets by reason, updates sent, prefixes advertised, last error).
    pub counters: SessionCounters,
}

/// Orders for a peer task.
#[derive(Debug)]
pub enum PeerCommand {
    /// Advertise exactly this table from now on (diffed into incremental UPDATEs).
    SetRoutes(BTreeMap<Prefix, RouteAttrs>),
    /// Send Cease / Administrative Shutdown with this message, close, and end the task; the
    /// sender is told once the NOTIFICATION has been written.
    Stop(String, oneshot::Sender<()>),
}

/// The caller's side of a running peer task.
#[derive(Debug)]
pub struct PeerHandle {
    /// Orders to the task.
    pub commands: mpsc::Sender<PeerCommand>,
    /// The latest status, updated after every event.
    pub status: watch::Receiver<PeerStatus>,
    /// The task; it ends after a stop, or when `commands` is dropped (then with a stop too).
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a peer task on the current tokio runtime.
pub fn spawn_peer(settings: PeerSettings) -> PeerHandle {
    let (tx, rx) = mpsc::channel(16);
    let (status_tx, status) = watch::channel(PeerStatus {
        state: State::Idle,
        counters: SessionCounters::default(),
    });
    let task = tokio::spawn(run(settings, rx, status_tx));
    PeerHandle {
        commands: tx,
        status,
        task,
    }
}

/// Like [`spawn_peer`], but the TCP MD5 key comes from `key` first (a Secret read that retries
/// until it succeeds). Until then the peer is Idle with `last_error` saying why, and a stop is
/// obeyed at once.
pub fn spawn_peer_with_key<F>(settings: PeerSettings, key: F) -> PeerHandle
where
    F: std::future::Future<Output = Vec<u8>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(16);
    let (status_tx, status) = watch::channel(PeerStatus {
        state: State::Idle,
        counters: SessionCounters::default(),
    });
    let task = tokio::spawn(async move {
        let mut settings = settings;
        // Orders that arrive while the key is fetched are replayed to the session afterwards.
        let mut early = Vec::new();
        tokio::pin!(key);
        loop {
            tokio::select! {
                k = &mut key => {
                    settings.md5_key = Some(k);
                    break;
                }
                cmd = rx.recv() => match cmd {
                    Some(PeerCommand::Stop(_, done)) => {
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                    Some(other) => early.push(other),
                },
            }
        }
        let (replay_tx, replay_rx) = mpsc::channel(16 + early.len());
        for cmd in early {
            let _ = replay_tx.try_send(cmd);
        }
        // Forward later orders behind the replayed ones.
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if replay_tx.send(cmd).await.is_err() {
                    return;
                }
            }
        });
        run(settings, replay_rx, status_tx).await;
    });
    PeerHandle {
        commands: tx,
        status,
        task,
    }
}

async fn connect(s: &PeerSettings) -> io::Result<TcpStream> {
    let socket = match s.remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(src) = s.source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    if let Some(key) = &s.md5_key {
        // Before connect: the SYN must already be signed.
        super::md5::set_md5sig(socket.as_raw_fd(), s.remote.ip(), key)?;
    }
    socket.set_nodelay(true)?;
    let stream = socket.connect(s.remote).await?;
    if s.multihop {
        stream.set_ttl(255)?;
    }
    Ok(stream)
}

async fn run(
    settings: PeerSettings,
    mut commands: mpsc::Receiver<PeerCommand>,
    status: watch::Sender<PeerStatus>,
) {
    let epoch = Instant::now();
    let now = || MonoTime::from_elapsed(epoch.elapsed());
    let mut session = Session::new(settings.session.clone(), now());
    let mut conn: Option<TcpStream> = None;
    let mut connecting: Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send + '_>>,
    > = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut outputs = session.poll(now());
    let mut stopping: Option<oneshot::Sender<()>> = None;
    loop {
        // Carry out outputs; a write failure is itself an event that may produce more.
        while !outputs.is_empty() {
            let mut next = Vec::new();
            for out in outputs.drain(..) {
                match out {
                    Output::Connect => connecting = Some(Box::pin(connect(&settings))),
                    Output::Send(bytes) => {
                        if let Some(c) = conn.as_mut() {
                            if let Err(e) = c.write_all(&bytes).await {
                                conn = None;
                                next.extend(session.tcp_failed(now(), &format!("write: {e}")));
                            }
                        }
                    }
                    Output::Close => {
                        if let Some(mut c) = conn.take() {
                            let _ = c.shutdown().await;
                        }
                        connecting = None;
                    }
                    Output::StateChanged { from, to } => {
                        tracing::info!(peer = %settings.remote, ?from, ?to, "BGP session state changed");
                    }
                }
            }
            outputs = next;
        }
        let _ = status.send(PeerStatus {
            state: session.state(),
            counters: session.counters().clone(),
        });
        if let Some(done) = stopping.take() {
            let _ = done.send(());
            return;
        }
        let wake = session.next_wakeup().map(|t| epoch + t.elapsed());
        tokio::select! {
            _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                outputs = session.poll(now());
            }
            res = async { match connecting.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                connecting = None;
                match res.and_then(|s| s.local_addr().map(|a| (s, a))) {
                    Ok((stream, local)) => {
                        conn = Some(stream);
                        outputs = session.connected(now(), local.ip());
                    }
                    Err(e) => outputs = session.tcp_failed(now(), &e.to_string()),
                }
            }
            n = async { match conn.as_mut() { Some(c) => c.read(&mut buf).await, None => std::future::pending().await } } => {
                match n {
                    Ok(0) => {
                        conn = None;
                        outputs = session.tcp_failed(now(), "the peer closed the connection");
                    }
                    Ok(n) => outputs = session.received(now(), &buf[..n]),
                    Err(e) => {
                        conn = None;
                        outputs = session.tcp_failed(now(), &e.to_string());
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                Some(PeerCommand::SetRoutes(table)) => outputs = session.set_routes(table),
                Some(PeerCommand::Stop(message, done)) => {
                    outputs = session.stop(&message);
                    stopping = Some(done);
                }
                None => {
                    outputs = session.stop("FerroLB speaker stopping");
                    let (tx, _rx) = oneshot::channel();
                    stopping = Some(tx);
                }
            },
        }
    }
}
