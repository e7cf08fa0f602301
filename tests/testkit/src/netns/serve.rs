//! Servers that the test process runs inside namespaces: the per-node HTTP backend standing in
//! for a pod, and the TCP relay that makes kube-sim (on the root namespace's loopback) reachable
//! from the LAN.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life,
//! whichever thread later uses it. So a throwaway thread enters the namespace, binds, and hands
//! the listener back; accept loops then run on ordinary threads, and the test's own threads
//! never leave the root namespace.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Runs `f` on a fresh thread that has entered network namespace `ns` (by its `ip netns` name).
pub fn in_netns<T, F>(ns: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
        // SAFETY: setns(2) with a valid namespace fd affects only this thread, which exits
        // when `f` returns.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("setns({path}): {e}")));
        }
        f()
    })
    .join()
    .map_err(|_| io::Error::other(format!("thread entering {ns} panicked")))?
}

/// A listener with an accept loop on its own thread; [`Server::stop`] ends it.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (inside its namespace).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and cuts every open connection.
    pub fn stop(&mut self) {
        // shutdown(2) on a listening socket wakes a blocked accept(2) with an error, which is
        // the accept loop's signal to end.
        // SAFETY: the fd is owned by `self.listener` and stays open until `self` is dropped.
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Ok(conns) = self.conns.lock() {
            for c in conns.iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn start<H>(listener: TcpListener, handler: H) -> io::Result<Self>
    where
        H: Fn(TcpStream, &Arc<Mutex<Vec<TcpStream>>>) + Send + Sync + 'static,
    {
        let addr = listener.local_addr()?;
        let accept = listener.try_clone()?;
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let conns2 = conns.clone();
        let handler = Arc::new(handler);
        let thread = thread::spawn(move || {
            // Any accept error other than a transient one means stop() shut the listener down.
            loop {
                match accept.accept() {
                    Ok((stream, _)) => {
                        if let Ok(c) = stream.try_clone() {
                            if let Ok(mut list) = conns2.lock() {
                                list.push(c);
                            }
                        }
                        let h = handler.clone();
                        let conns3 = conns2.clone();
                        thread::spawn(move || h(stream, &conns3));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            listener,
            addr,
            conns,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the stand-in pod in namespace `ns`: HTTP on `0.0.0.0:port`, answering `GET /` with
/// `body` (the node's name) and anything else with 404.
pub fn http_name_server(ns: &str, port: u16, body: &str) -> io::Result<Server> {
    let listener = in_netns(ns, move || TcpListener::bind(("0.0.0.0", port)))?;
    let body = body.to_string();
    Server::start(listener, move |mut stream, _| {
        let _ = answer(&mut stream, &body);
    })
}

fn answer(stream: &mut TcpStream, body: &str) -> io::Result<()> {
    // A stalled client must not pin a thread forever.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let first = line.lines().next().unwrap_or_default();
    let (status, text) = if first.starts_with("GET / ") {
        ("200 OK", body)
    } else {
        ("404 Not Found", "not found")
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(resp.as_bytes())?;
    stream.flush()
}

/// Starts a TCP relay listening on `listen` inside namespace `ns` that forwards every
/// connection to `target`, which is reached from the root namespace (e.g. kube-sim on
/// `127.0.0.1:<port>`).
pub fn tcp_relay(ns: &str, listen: SocketAddr, target: SocketAddr) -> io::Result<Server> {
    let listener = in_netns(ns, move || TcpListener::bind(listen))?;
    Server::start(listener, move |inbound, conns| {
        // This handler runs on a thread spawned by the accept loop, which lives in the root
        // namespace, so the outbound connection is made there.
        let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            let _ = inbound.shutdown(Shutdown::Both);
            return;
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        if let Ok(c) = outbound.try_clone() {
            if let Ok(mut list) = conns.lock() {
                list.push(c);
            }
        }
        let (Ok(in2), Ok(out2)) = (inbound.try_clone(), outbound.try_clone()) else {
            return;
        };
        let up = thread::spawn(move || pipe(inbound, outbound));
        pipe(out2, in2);
        let _ = up.join();
    })
}

/// Copies `from` to `to` until EOF or error, then half-closes `to` so the peer sees EOF too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Like [`http_name_server`], on one address (an IPv6 node address, say, next to the IPv4
/// wildcard listener on the same port).
pub fn http_name_server_at(ns: &str, addr: SocketAddr, body: &str) -> io::Result<Server> {
    let listener = in_netns(ns, move || TcpListener::bind(addr))?;
    let body = body.to_string();
    Server::start(listener, move |mut stream, _| {
        let _ = answer(&mut stream, &body);
    })
}
