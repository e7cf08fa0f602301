//! A misbehaving BGP peer for fault tests: a TCP listener on port 179 inside a namespace that
//! speaks just enough BGP-4 to bring a session up (it answers the speaker's OPEN with its own
//! OPEN and a KEEPALIVE, and waits for the speaker's first UPDATE, its End-of-RIB), then
//! misbehaves ([`Misbehave`]). Every accepted connection is recorded with its time and what the
//! speaker answered, so a test can judge the reset and the reconnect pace.
//!
//! The bytes are encoded and decoded here by hand from RFC 4271 §4, on purpose: the product's
//! codec must not be its own judge.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// BGP message types (RFC 4271 §4.1).
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;

/// What the fake peer does once the session is Established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    /// Sends a message whose marker is not all ones (RFC 4271 §6.1: Connection Not
    /// Synchronized).
    Garbage,
    /// Sends a NOTIFICATION: Cease (6) / Administrative Reset (4).
    Notification,
}

/// One connection the fake peer accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// When `accept` returned.
    pub at: Instant,
    /// The speaker's address.
    pub from: SocketAddr,
    /// The session got as far as the speaker's End-of-RIB before the fake peer misbehaved.
    pub established: bool,
    /// The (error code, subcode) of a NOTIFICATION the speaker sent back, if any.
    pub notification: Option<(u8, u8)>,
    /// The speaker closed the connection afterwards (read returned end of stream).
    pub closed: bool,
}

/// A running fake peer; stops and joins its thread on drop.
pub struct FakePeer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Accepted>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    /// Listens on `addr`:179 inside namespace `ns` as AS `asn` (2-octet, no capabilities) and
    /// misbehaves as `how` on every session.
    pub fn start(ns: &str, addr: Ipv4Addr, asn: u16, how: Misbehave) -> FakePeer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let path = format!("/run/netns/{ns}");
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = thread::Builder::new()
            .name(format!("fake-bgp-{addr}"))
            .spawn(move || {
                let listener = match enter_and_listen(&path, addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, from)) => {
                            let at = Instant::now();
                            let (established, notification, closed) =
                                serve(stream, addr, asn, how, &stop2);
                            if let Ok(mut l) = log2.lock() {
                                l.push(Accepted {
                                    at,
                                    from,
                                    established,
                                    notification,
                                    closed,
                                });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .expect("spawn the fake BGP peer");
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fake BGP peer on {addr}: {e}"),
            Err(_) => panic!("fake BGP peer on {addr}: thread died"),
        }
        FakePeer {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The connections accepted so far (a connection is listed once the fake peer is done
    /// with it).
    pub fn accepted(&self) -> Vec<Accepted> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn enter_and_listen(path: &str, addr: Ipv4Addr) -> Result<TcpListener, String> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: setns(2) with a valid namespace fd affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns({path}): {}", io::Error::last_os_error()));
    }
    let listener = TcpListener::bind((addr, 179)).map_err(|e| format!("bind {addr}:179: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    Ok(listener)
}

/// Plays one session; returns (established, the speaker's NOTIFICATION, closed).
fn serve(
    mut s: TcpStream,
    addr: Ipv4Addr,
    asn: u16,
    how: Misbehave,
    stop: &AtomicBool,
) -> (bool, Option<(u8, u8)>, bool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = |s: &mut TcpStream| read_message(s, deadline, stop);
    // The speaker opens.
    match next(&mut s) {
        Ok(Some((OPEN, _))) => {}
        _ => return (false, None, false),
    }
    let mut hello = open_message(asn, 9, addr);
    hello.extend(header(KEEPALIVE, 0));
    if s.write_all(&hello).is_err() {
        return (false, None, false);
    }
    // Its KEEPALIVE, then (Established) its UPDATEs ending with End-of-RIB.
    let mut established = false;
    while !established {
        match next(&mut s) {
            Ok(Some((UPDATE, _))) => established = true,
            Ok(Some((KEEPALIVE, _))) => {}
            _ => return (false, None, false),
        }
    }
    let bad = match how {
        Misbehave::Garbage => {
            // A KEEPALIVE-sized header whose marker is zeros: nothing a BGP speaker may accept.
            let mut m = vec![0u8; 16];
            m.extend([0, 19, KEEPALIVE]);
            m
        }
        Misbehave::Notification => {
            let mut m = header(NOTIFICATION, 2);
            m.extend([6, 4]);
            m
        }
    };
    if s.write_all(&bad).is_err() {
        return (true, None, false);
    }
    let mut notification = None;
    loop {
        match next(&mut s) {
            Ok(Some((NOTIFICATION, body))) if body.len() >= 2 => {
                notification = Some((body[0], body[1]));
            }
            Ok(Some(_)) => {}
            Ok(None) => return (true, notification, true),
            Err(_) => return (true, notification, false),
        }
    }
}

/// A BGP header: 16 marker bytes of ones, total length, type.
fn header(kind: u8, body_len: usize) -> Vec<u8> {
    let mut m = vec![0xFF; 16];
    let len = u16::try_from(19 + body_len).expect("short message");
    m.extend(len.to_be_bytes());
    m.push(kind);
    m
}

/// OPEN: version 4, `asn`, hold time, BGP identifier, no optional parameters.
fn open_message(asn: u16, hold: u16, id: Ipv4Addr) -> Vec<u8> {
    let mut m = header(OPEN, 10);
    m.push(4);
    m.extend(asn.to_be_bytes());
    m.extend(hold.to_be_bytes());
    m.extend(id.octets());
    m.push(0);
    m
}

/// Reads one whole message: `Ok(Some((type, body)))`, `Ok(None)` at end of stream, `Err` on
/// a broken marker, an error, the deadline or a stop.
fn read_message(
    s: &mut TcpStream,
    deadline: Instant,
    stop: &AtomicBool,
) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 19];
    if !read_full(s, &mut head, deadline, stop)? {
        return Ok(None);
    }
    if head[..16].iter().any(|b| *b != 0xFF) {
        return Err(io::Error::other("bad marker from the speaker"));
    }
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    if !(19..=4096).contains(&len) {
        return Err(io::Error::other(format!("bad length {len}")));
    }
    let mut body = vec![0u8; len - 19];
    if !read_full(s, &mut body, deadline, stop)? {
        return Err(io::Error::other("end of stream inside a message"));
    }
    Ok(Some((head[18], body)))
}

/// Fills `buf`; `Ok(false)` when the stream ended before the first byte.
fn read_full(
    s: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    stop: &AtomicBool,
) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("timed out"));
        }
        match s.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::other("end of stream inside a message")),
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
