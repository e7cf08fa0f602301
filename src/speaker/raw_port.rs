//! What the ARP and NDP responders share about their ports: a port is one interface's
//! filtered packet socket (pnet's datalink channel over a socket from `bpf`), the reader
//! thread that answers on it, and the bookkeeping around them (opening and closing ports as
//! interfaces come and go, finding the port for an interface, the kernel's drop counter).
//! What a frame means and what to answer stays with each protocol's `*_io` module, which hands
//! the reader a closure.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_core::arp::MacAddr;
use pnet_datalink::{Channel, DataLinkSender};
use thiserror::Error;

/// A port could not be opened.
#[derive(Debug, Error)]
pub enum PortError {
    /// No such interface any more.
    #[error("interface {0} (index {1}) disappeared")]
    Gone(String, u32),
    /// The raw socket could not be opened (usually: CAP_NET_RAW missing).
    #[error(
        "cannot open a raw socket on interface {name}: {source} (the speaker needs CAP_NET_RAW)"
    )]
    Open {
        /// Interface name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// pnet returned a channel type it should not for an Ethernet interface.
    #[error("interface {0} is not an Ethernet interface")]
    NotEthernet(String),
}

/// A port's sending half, shared by the reader thread (replies) and the async side (probes,
/// unsolicited announcements).
pub type Sender = Arc<Mutex<Box<dyn DataLinkSender>>>;

/// Sends one frame on `tx`; returns whether the kernel took it.
pub fn send_on(tx: &Sender, frame: &[u8]) -> bool {
    let mut tx = tx.lock().unwrap_or_else(|p| p.into_inner());
    matches!(tx.send_to(frame, None), Some(Ok(())))
}

/// One interface's open socket and reader thread; dropping it stops the thread.
pub struct Port {
    /// Interface name.
    pub name: String,
    /// Interface MAC, the one every answer carries.
    pub mac: MacAddr,
    /// Shared with the reader thread, which sends replies itself.
    tx: Sender,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Port {
    /// Sends one frame; returns whether the kernel took it.
    pub fn send(&self, frame: &[u8]) -> bool {
        send_on(&self.tx, frame)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// Open ports by interface index; shared with the senders of unsolicited announcements so
/// they always use current ports.
pub type Ports = Arc<RwLock<BTreeMap<u32, Arc<Port>>>>;

/// The open port on interface `index`, if any.
pub fn port_at(ports: &Ports, index: u32) -> Option<Arc<Port>> {
    ports
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&index)
        .cloned()
}

/// The MACs of the open ports.
pub fn port_macs(ports: &Ports) -> Vec<MacAddr> {
    ports
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|p| p.mac)
        .collect()
}

/// Closes the ports not in `wanted` (index, name, MAC; a port whose name or MAC changed is
/// closed too, to be reopened); returns the indices closed.
pub fn close_unwanted(
    ports: &mut BTreeMap<u32, Arc<Port>>,
    wanted: &[(u32, String, MacAddr)],
    protocol: &str,
) -> Vec<u32> {
    let mut closed = Vec::new();
    ports.retain(|idx, port| {
        let keep = wanted
            .iter()
            .any(|(i, n, m)| i == idx && *n == port.name && *m == port.mac);
        if !keep {
            tracing::info!(interface = %port.name, "closing {protocol} port");
            closed.push(*idx);
        }
        keep
    });
    closed
}

/// Counts `n` frames the kernel dropped on an interface (by name) in a protocol's metric.
pub type DropCounter = Box<dyn Fn(&str, u32) + Send>;

/// How one protocol's reader names itself and reports frames the kernel dropped.
pub struct ReaderSpec {
    /// Thread name prefix (`arp`, `ndp`): the thread is `<prefix>-<interface>`.
    pub thread_prefix: &'static str,
    /// The protocol in log messages (`ARP`, `NDP`).
    pub protocol: &'static str,
    /// What a dropped frame fails to get answered (`requests`, `solicitations`).
    pub unanswered: &'static str,
    /// Counts frames dropped on the port in the protocol's metric.
    pub count_drops: DropCounter,
}

/// Opens a port on interface `index` over `socket` (a filtered packet socket, which pnet binds
/// to the interface and owns from here on) and starts its reader thread, which hands every
/// frame to `on_frame` with the port's sender for replies.
pub fn open(
    index: u32,
    name: &str,
    mac: MacAddr,
    socket: std::io::Result<RawFd>,
    spec: ReaderSpec,
    mut on_frame: impl FnMut(&[u8], &Sender) + Send + 'static,
) -> Result<Port, PortError> {
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.index == index)
        .ok_or_else(|| PortError::Gone(name.to_string(), index))?;
    let socket = socket.map_err(|source| PortError::Open {
        name: name.to_string(),
        source,
    })?;
    let config = pnet_datalink::Config {
        read_timeout: Some(Duration::from_millis(200)),
        promiscuous: false,
        // pnet binds this socket to the interface and owns (closes) it from here on.
        socket_fd: Some(socket),
        ..pnet_datalink::Config::default()
    };
    let (tx, mut rx) = match pnet_datalink::channel(&iface, config) {
        Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
        Ok(_) => return Err(PortError::NotEthernet(name.to_string())),
        Err(source) => {
            return Err(PortError::Open {
                name: name.to_string(),
                source,
            })
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let port_tx: Sender = Arc::new(Mutex::new(tx));
    let (stop_r, reply_tx, port_name) = (stop.clone(), port_tx.clone(), name.to_string());
    let reader = std::thread::Builder::new()
        .name(format!("{}-{name}", spec.thread_prefix))
        .spawn(move || {
            // pnet owns the socket now; its number stays valid while this thread holds `rx`.
            let mut drops = DropWatch::new(socket, port_name.clone(), spec);
            while !stop_r.load(Ordering::Relaxed) {
                drops.poll();
                match rx.next() {
                    Ok(frame) => on_frame(frame, &reply_tx),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => {
                        tracing::warn!(interface = %port_name, error = %e, "{} receive failed", drops.spec.protocol);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .map_err(|source| PortError::Open {
            name: name.to_string(),
            source,
        })?;
    Ok(Port {
        name: name.to_string(),
        mac,
        tx: port_tx,
        stop,
        reader: Some(reader),
    })
}

/// Moves the kernel's count of frames dropped on a port's socket into the metrics about once a
/// second, and warns at most once a minute while frames are being lost.
struct DropWatch {
    fd: RawFd,
    interface: String,
    spec: ReaderSpec,
    last_read: Instant,
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl DropWatch {
    const READ_EVERY: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(60);

    fn new(fd: RawFd, interface: String, spec: ReaderSpec) -> Self {
        Self {
            fd,
            interface,
            spec,
            last_read: Instant::now(),
            last_warning: None,
            since_warning: 0,
        }
    }

    fn poll(&mut self) {
        if self.last_read.elapsed() < Self::READ_EVERY {
            return;
        }
        self.last_read = Instant::now();
        let protocol = self.spec.protocol;
        let n = match super::bpf::take_receive_drops(self.fd) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(interface = %self.interface, error = %e, "cannot read the {protocol} socket's drop counter");
                return;
            }
        };
        if n == 0 {
            return;
        }
        (self.spec.count_drops)(&self.interface, n);
        self.since_warning += u64::from(n);
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= Self::WARN_EVERY)
        {
            tracing::warn!(
                interface = %self.interface,
                dropped = self.since_warning,
                "{protocol} frames arrive faster than the speaker reads them; the kernel dropped some ({} among them go unanswered)",
                self.spec.unanswered
            );
            self.last_warning = Some(Instant::now());
            self.since_warning = 0;
        }
    }
}
