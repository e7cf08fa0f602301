//! ARP on the wire: one raw-socket port per eligible interface (pnet's datalink channel over a
//! socket the kernel filters to untagged ARP, see `arp_socket`; needs only CAP_NET_RAW), a
//! reader thread per port that answers requests for the IPs this node announces on that port,
//! and reports other MACs claiming our IPs.
//!
//! Replies are sent from the reader thread itself, not via the async loop, so ARP keeps being
//! answered whatever the API server or the main loop is doing.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb_core::arp::{
    build_gratuitous, build_probe, build_reply, classify, parse_frame, ArpOp, FrameBuf, MacAddr,
    Observation, FRAME_LEN,
};
use pnet_datalink::{Channel, DataLinkSender};
use thiserror::Error;
use tokio::sync::mpsc;

use super::metrics::SpeakerMetrics;

/// Another MAC used one of our IPs as its sender address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Our IP.
    pub ip: Ipv4Addr,
    /// The other MAC.
    pub mac: MacAddr,
}

/// Which interface (by index) answers for each announced IP. Read by every reader thread on
/// every frame, written only when announcements change.
pub type AnnounceTable = Arc<RwLock<HashMap<Ipv4Addr, u32>>>;

/// IPs not (yet) announced whose claims must still be reported: IPs being probed before a
/// takeover, and IPs held back because another host uses them; each with the interface (by
/// index) whose segment matters. A claim heard on another interface is about another segment,
/// where the IP's neighbours are not, and is ignored like a request there.
pub type WatchList = Arc<RwLock<HashMap<Ipv4Addr, u32>>>;

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

type Sender = Arc<Mutex<Box<dyn DataLinkSender>>>;

struct Port {
    name: String,
    mac: MacAddr,
    /// Shared with the reader thread, which sends replies itself.
    tx: Sender,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Port {
    fn send(&self, frame: &[u8]) -> bool {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        matches!(tx.send_to(frame, None), Some(Ok(())))
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

/// Open ports by interface index; shared with GARP senders so they always use current ports.
type Ports = Arc<RwLock<BTreeMap<u32, Arc<Port>>>>;

/// The set of open ports and the shared announce table.
pub struct ArpIo {
    table: AnnounceTable,
    watched: WatchList,
    ports: Ports,
    claims: mpsc::UnboundedSender<Claim>,
    metrics: SpeakerMetrics,
}

impl ArpIo {
    /// No ports yet; claims heard later are sent to `claims`.
    pub fn new(claims: mpsc::UnboundedSender<Claim>, metrics: SpeakerMetrics) -> Self {
        Self {
            table: Arc::default(),
            watched: Arc::default(),
            ports: Arc::default(),
            claims,
            metrics,
        }
    }

    /// Opens ports for `wanted` (index, name, MAC) and closes the others.
    pub fn sync_ports(&self, wanted: &[(u32, String, MacAddr)]) {
        let mut ports = self.ports.write().unwrap_or_else(|p| p.into_inner());
        ports.retain(|idx, port| {
            let keep = wanted
                .iter()
                .any(|(i, n, m)| i == idx && *n == port.name && *m == port.mac);
            if !keep {
                tracing::info!(interface = %port.name, "closing ARP port");
            }
            keep
        });
        for (idx, name, mac) in wanted {
            if ports.contains_key(idx) {
                continue;
            }
            match self.open(*idx, name, *mac) {
                Ok(port) => {
                    tracing::info!(interface = %name, %mac, "listening for ARP");
                    ports.insert(*idx, Arc::new(port));
                }
                Err(e) => tracing::error!(error = %e, "cannot answer ARP on this interface"),
            }
        }
    }

    fn open(&self, index: u32, name: &str, mac: MacAddr) -> Result<Port, PortError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.index == index)
            .ok_or_else(|| PortError::Gone(name.to_string(), index))?;
        let socket =
            super::arp_socket::untagged_arp_socket().map_err(|source| PortError::Open {
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
        let port_tx = Arc::new(Mutex::new(tx));
        let (table, watched, claims, metrics, stop_r, port_name) = (
            self.table.clone(),
            self.watched.clone(),
            self.claims.clone(),
            self.metrics.clone(),
            stop.clone(),
            name.to_string(),
        );
        let reply_tx = port_tx.clone();
        let reader = std::thread::Builder::new()
            .name(format!("arp-{name}"))
            .spawn(move || {
                let mut buf: FrameBuf = [0; FRAME_LEN];
                // pnet owns the socket now; its number stays valid while this thread holds `rx`.
                let mut drops = DropWatch::new(socket, port_name.clone());
                while !stop_r.load(Ordering::Relaxed) {
                    drops.poll(&metrics);
                    let frame = match rx.next() {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                        Err(e) => {
                            tracing::warn!(interface = %port_name, error = %e, "ARP receive failed");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    let Ok(arp) = parse_frame(frame) else { continue };
                    let (obs, owned) = {
                        let t = table.read().unwrap_or_else(|p| p.into_inner());
                        let w = watched.read().unwrap_or_else(|p| p.into_inner());
                        let obs = classify(&arp, mac, |ip| {
                            t.get(&ip) == Some(&index) || w.get(&ip) == Some(&index)
                        });
                        let owned = match obs {
                            Observation::Request { ip, .. } => t.get(&ip) == Some(&index),
                            _ => false,
                        };
                        (obs, owned)
                    };
                    match obs {
                        // Requests for IPs only being watched get no answer: not ours yet.
                        Observation::Request { .. } if !owned => {}
                        Observation::Request { ip, from_mac, from_ip } => {
                            metrics.arp_request(ip);
                            let reply = build_reply(&mut buf, mac, ip, from_mac, from_ip);
                            let mut tx = reply_tx.lock().unwrap_or_else(|p| p.into_inner());
                            if matches!(tx.send_to(reply, None), Some(Ok(()))) {
                                metrics.arp_reply(ip);
                            }
                        }
                        Observation::Claim { ip, mac: other } => {
                            let _ = claims.send(Claim { ip, mac: other });
                        }
                        Observation::Unrelated => {}
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

    /// Starts answering for `ip` on interface `index`.
    pub fn announce(&self, ip: Ipv4Addr, index: u32) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, index);
    }

    /// Stops answering for `ip`.
    pub fn withdraw(&self, ip: Ipv4Addr) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// Reports claims on `ip` heard on interface `index` from now on, and sends an RFC 5227 probe for it on interface
    /// `index` ("who has `ip`?" from sender 0.0.0.0), which its current user, if any, answers.
    pub fn probe(&self, ip: Ipv4Addr, index: u32) -> bool {
        self.watched
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, index);
        let port = self
            .ports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
            .cloned();
        let Some(port) = port else { return false };
        let mut buf: FrameBuf = [0; FRAME_LEN];
        port.send(build_probe(&mut buf, port.mac, ip))
    }

    /// Stops reporting claims on an IP that is not announced.
    pub fn unwatch(&self, ip: Ipv4Addr) {
        self.watched
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// The MACs of the open ports, published so peers can tell a speaker's claim (split brain,
    /// resolved by the election) from a foreign host's (never fought).
    pub fn port_macs(&self) -> Vec<MacAddr> {
        self.ports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.mac)
            .collect()
    }

    /// Stops answering for every IP at once (graceful shutdown).
    pub fn withdraw_all(&self) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// A handle that sends gratuitous ARP for `ip` from its current port.
    pub fn garp_sender(&self) -> GarpSender {
        GarpSender {
            table: self.table.clone(),
            ports: self.ports.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Moves the kernel's count of frames dropped on a port's socket into the metrics about once a
/// second, and warns at most once a minute while frames are being lost.
struct DropWatch {
    fd: std::os::fd::RawFd,
    interface: String,
    last_read: Instant,
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl DropWatch {
    const READ_EVERY: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(60);

    fn new(fd: std::os::fd::RawFd, interface: String) -> Self {
        Self {
            fd,
            interface,
            last_read: Instant::now(),
            last_warning: None,
            since_warning: 0,
        }
    }

    fn poll(&mut self, metrics: &SpeakerMetrics) {
        if self.last_read.elapsed() < Self::READ_EVERY {
            return;
        }
        self.last_read = Instant::now();
        let n = match super::arp_socket::take_receive_drops(self.fd) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(interface = %self.interface, error = %e, "cannot read the ARP socket's drop counter");
                return;
            }
        };
        if n == 0 {
            return;
        }
        metrics.arp_receive_dropped(&self.interface, n);
        self.since_warning += u64::from(n);
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= Self::WARN_EVERY)
        {
            tracing::warn!(
                interface = %self.interface,
                dropped = self.since_warning,
                "ARP frames arrive faster than the speaker reads them; the kernel dropped some (requests among them go unanswered)"
            );
            self.last_warning = Some(Instant::now());
            self.since_warning = 0;
        }
    }
}

/// Sends gratuitous ARP; cheap to clone into per-IP schedule tasks.
#[derive(Clone)]
pub struct GarpSender {
    table: AnnounceTable,
    ports: Ports,
    metrics: SpeakerMetrics,
}

impl GarpSender {
    /// Sends one gratuitous request and one gratuitous reply for `ip`, to broadcast, if the
    /// IP is still announced; returns whether both were sent.
    pub fn send(&self, ip: Ipv4Addr) -> bool {
        let index = self
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied();
        let port = index.and_then(|i| {
            self.ports
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&i)
                .cloned()
        });
        let Some(port) = port else {
            return false;
        };
        let mut buf: FrameBuf = [0; FRAME_LEN];
        let ok_req = port.send(build_gratuitous(&mut buf, port.mac, ip, ArpOp::Request));
        let ok_rep = port.send(build_gratuitous(&mut buf, port.mac, ip, ArpOp::Reply));
        if ok_req && ok_rep {
            self.metrics.garp_sent(ip);
        }
        ok_req && ok_rep
    }
}
