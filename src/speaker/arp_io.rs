//! ARP on the wire: one raw-socket port per eligible interface (pnet's datalink channel over a
//! socket the kernel filters to untagged ARP, see `arp_socket`; needs only CAP_NET_RAW), a
//! reader thread per port that answers requests for the IPs this node announces on that port,
//! and reports other MACs claiming our IPs.
//!
//! Replies are sent from the reader thread itself, not via the async loop, so ARP keeps being
//! answered whatever the API server or the main loop is doing.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use ferrolb_core::arp::{
    build_gratuitous, build_probe, build_reply, classify, parse_frame, ArpOp, FrameBuf, MacAddr,
    Observation, FRAME_LEN,
};
use tokio::sync::mpsc;

use super::metrics::SpeakerMetrics;
pub use super::raw_port::PortError;
use super::raw_port::{self, port_at, send_on, Port, Ports, ReaderSpec};

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
        raw_port::close_unwanted(&mut ports, wanted, "ARP");
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
        let (table, watched, claims, metrics) = (
            self.table.clone(),
            self.watched.clone(),
            self.claims.clone(),
            self.metrics.clone(),
        );
        let drop_metrics = self.metrics.clone();
        let spec = ReaderSpec {
            thread_prefix: "arp",
            protocol: "ARP",
            unanswered: "requests",
            count_drops: Box::new(move |interface, n| {
                drop_metrics.arp_receive_dropped(interface, n)
            }),
        };
        let mut buf: FrameBuf = [0; FRAME_LEN];
        raw_port::open(
            index,
            name,
            mac,
            super::arp_socket::untagged_arp_socket(),
            spec,
            move |frame, reply_tx| {
                let Ok(arp) = parse_frame(frame) else { return };
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
                    Observation::Request {
                        ip,
                        from_mac,
                        from_ip,
                    } => {
                        metrics.arp_request(ip);
                        let reply = build_reply(&mut buf, mac, ip, from_mac, from_ip);
                        if send_on(reply_tx, reply) {
                            metrics.arp_reply(ip);
                        }
                    }
                    Observation::Claim { ip, mac: other } => {
                        let _ = claims.send(Claim { ip, mac: other });
                    }
                    Observation::Unrelated => {}
                }
            },
        )
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
        let Some(port) = port_at(&self.ports, index) else {
            return false;
        };
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
        raw_port::port_macs(&self.ports)
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
        let port = index.and_then(|i| port_at(&self.ports, i));
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
