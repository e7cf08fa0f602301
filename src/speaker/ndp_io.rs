//! IPv6 Neighbor Discovery on the wire, shaped like `arp_io`: one raw-socket port per eligible
//! interface (pnet's datalink channel over a socket the kernel filters to untagged NDP, see
//! `ndp_socket`; needs only CAP_NET_RAW), a reader thread per port that answers solicitations
//! for the IPv6 IPs this node announces on that port, defends them against other hosts'
//! duplicate-address-detection probes, and reports other MACs claiming them; plus the
//! solicited-node group memberships that make the solicitations arrive.
//!
//! Replies are sent from the reader thread itself, so NDP keeps being answered whatever the API
//! server or the main loop is doing.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex, RwLock};

use ferrolb_core::arp::MacAddr;
use ferrolb_core::ndp::{
    build_advertisement_reply, build_dad_probe, build_unsolicited_advertisement, classify,
    parse_frame, NdpBuf, Observation, NDP_FRAME_LEN,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::metrics::{InterfaceLabels, IpLabels};
use super::ndp_socket::SolicitedNodeGroups;
use super::raw_port::{self, port_at, send_on, Port, PortError, Ports, ReaderSpec};

/// How another host showed that it uses one of our IPv6 IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// It advertised the IP with its MAC (or used the IP as its source address): neighbours
    /// that heard it now send the IP's traffic there.
    Advertisement,
    /// It ran duplicate address detection for the IP: it is about to configure it. An owner
    /// has already defended the IP with an advertisement to all-nodes when this is reported.
    DadProbe,
}

/// Another MAC claims (or probes for) one of our IPv6 IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpClaim {
    /// Our IP.
    pub ip: Ipv6Addr,
    /// The other MAC.
    pub mac: MacAddr,
    /// What it did.
    pub kind: ClaimKind,
}

/// Which interface (by index) answers for each announced IPv6 IP. Read by every reader thread
/// on every frame, written only when announcements change.
pub type AnnounceTable6 = Arc<RwLock<HashMap<Ipv6Addr, u32>>>;

/// IPv6 IPs not (yet) announced whose claims must still be reported (being probed before a
/// takeover, or held back because another host uses them), each with the interface whose
/// segment matters, as in `arp_io::WatchList`.
pub type WatchList6 = Arc<RwLock<HashMap<Ipv6Addr, u32>>>;

/// The NDP side's metrics, prefixed `ferrolb_speaker_` like the ARP ones.
#[derive(Clone, Default)]
pub struct NdpMetrics {
    /// Neighbor Solicitations seen for IPs this node announces.
    pub solicitations: Family<IpLabels, Counter>,
    /// Solicited Neighbor Advertisements sent (answers and DAD defences).
    pub advertisements: Family<IpLabels, Counter>,
    /// Unsolicited Neighbor Advertisements sent (takeover bursts and refreshes).
    pub unsolicited: Family<IpLabels, Counter>,
    /// Other hosts' duplicate-address-detection probes for IPs this node announces (each
    /// defended with an advertisement, so the prober gives the address up).
    pub dad_probes: Family<IpLabels, Counter>,
    /// NDP frames the kernel dropped before the speaker read them.
    pub receive_dropped: Family<InterfaceLabels, Counter>,
    /// Failed joins of solicited-node groups (solicitations may then not arrive).
    pub group_join_failures: Counter,
}

impl NdpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        r.register(
            "ndp_solicitations",
            "IPv6 Neighbor Solicitations seen for IPs this node announces",
            m.solicitations.clone(),
        );
        r.register(
            "ndp_advertisements",
            "Solicited IPv6 Neighbor Advertisements sent for IPs this node announces",
            m.advertisements.clone(),
        );
        r.register(
            "unsolicited_na",
            "Unsolicited IPv6 Neighbor Advertisements sent (takeover bursts and refreshes)",
            m.unsolicited.clone(),
        );
        r.register(
            "ndp_dad_probes",
            "Duplicate address detection probes by other hosts for IPs this node announces (defended)",
            m.dad_probes.clone(),
        );
        r.register(
            "ndp_receive_dropped",
            "NDP frames dropped by the kernel because the speaker read them too slowly",
            m.receive_dropped.clone(),
        );
        r.register(
            "ndp_group_join_failures",
            "Failed joins of a Service IP's solicited-node multicast group",
            m.group_join_failures.clone(),
        );
        m
    }

    fn ip(ip: Ipv6Addr) -> IpLabels {
        IpLabels { ip: ip.to_string() }
    }
}

/// The open NDP ports, the shared announce table and the group memberships.
pub struct NdpIo {
    table: AnnounceTable6,
    watched: WatchList6,
    ports: Ports,
    groups: Mutex<SolicitedNodeGroups>,
    claims: mpsc::UnboundedSender<NdpClaim>,
    metrics: NdpMetrics,
}

impl NdpIo {
    /// No ports yet; claims heard later are sent to `claims`. Every socket (packet sockets in
    /// `sync_ports`, membership sockets in `announce`/`probe`) is created in the network
    /// namespace of the calling thread.
    pub fn new(claims: mpsc::UnboundedSender<NdpClaim>, metrics: NdpMetrics) -> Self {
        Self {
            table: Arc::default(),
            watched: Arc::default(),
            ports: Arc::default(),
            groups: Mutex::default(),
            claims,
            metrics,
        }
    }

    /// Opens ports for `wanted` (index, name, MAC) and closes the others, leaving their groups.
    pub fn sync_ports(&self, wanted: &[(u32, String, MacAddr)]) {
        let mut ports = self.ports.write().unwrap_or_else(|p| p.into_inner());
        let closed = raw_port::close_unwanted(&mut ports, wanted, "NDP");
        if !closed.is_empty() {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            for idx in closed {
                groups.leave_interface(idx);
            }
        }
        for (idx, name, mac) in wanted {
            if ports.contains_key(idx) {
                continue;
            }
            match self.open(*idx, name, *mac) {
                Ok(port) => {
                    tracing::info!(interface = %name, %mac, "listening for IPv6 neighbor discovery");
                    ports.insert(*idx, Arc::new(port));
                }
                Err(e) => tracing::error!(error = %e, "cannot answer NDP on this interface"),
            }
        }
        drop(ports);
        // IPs announced on a port that just (re)opened need their groups there again.
        let wanted_ips: Vec<(Ipv6Addr, u32)> = {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            let w = self.watched.read().unwrap_or_else(|p| p.into_inner());
            t.iter().chain(w.iter()).map(|(ip, i)| (*ip, *i)).collect()
        };
        for (ip, _) in wanted_ips {
            self.refresh_group(ip);
        }
    }

    fn open(&self, index: u32, name: &str, mac: MacAddr) -> Result<Port, PortError> {
        let (table, watched, claims, metrics) = (
            self.table.clone(),
            self.watched.clone(),
            self.claims.clone(),
            self.metrics.clone(),
        );
        let dropped = self.metrics.receive_dropped.clone();
        let spec = ReaderSpec {
            thread_prefix: "ndp",
            protocol: "NDP",
            unanswered: "solicitations",
            count_drops: Box::new(move |interface, n| {
                dropped
                    .get_or_create(&InterfaceLabels {
                        interface: interface.to_string(),
                    })
                    .inc_by(u64::from(n));
            }),
        };
        let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
        raw_port::open(
            index,
            name,
            mac,
            super::ndp_socket::untagged_ndp_socket(),
            spec,
            move |frame, reply_tx| {
                let Ok(ndp) = parse_frame(frame) else { return };
                let (obs, owned) = {
                    let t = table.read().unwrap_or_else(|p| p.into_inner());
                    let w = watched.read().unwrap_or_else(|p| p.into_inner());
                    let obs = classify(&ndp, mac, |ip| {
                        t.get(&ip) == Some(&index) || w.get(&ip) == Some(&index)
                    });
                    let owned = match obs {
                        Observation::Solicitation { ip, .. } | Observation::DadProbe { ip, .. } => {
                            t.get(&ip) == Some(&index)
                        }
                        _ => false,
                    };
                    (obs, owned)
                };
                match obs {
                    // Solicitations for IPs only being watched get no answer: not ours yet.
                    Observation::Solicitation { .. } if !owned => {}
                    Observation::Solicitation {
                        ip,
                        from_mac,
                        from_ip,
                    } => {
                        metrics
                            .solicitations
                            .get_or_create(&NdpMetrics::ip(ip))
                            .inc();
                        let reply = build_advertisement_reply(&mut buf, mac, ip, from_mac, from_ip);
                        if send_on(reply_tx, reply) {
                            metrics
                                .advertisements
                                .get_or_create(&NdpMetrics::ip(ip))
                                .inc();
                        }
                    }
                    Observation::DadProbe { ip, mac: other } => {
                        if owned {
                            // RFC 4862 §5.4.3: defend the address, so the prober does not
                            // configure it; the answer goes to all-nodes.
                            metrics.dad_probes.get_or_create(&NdpMetrics::ip(ip)).inc();
                            metrics
                                .solicitations
                                .get_or_create(&NdpMetrics::ip(ip))
                                .inc();
                            let reply = build_advertisement_reply(
                                &mut buf,
                                mac,
                                ip,
                                other,
                                Ipv6Addr::UNSPECIFIED,
                            );
                            if send_on(reply_tx, reply) {
                                metrics
                                    .advertisements
                                    .get_or_create(&NdpMetrics::ip(ip))
                                    .inc();
                            }
                        }
                        let _ = claims.send(NdpClaim {
                            ip,
                            mac: other,
                            kind: ClaimKind::DadProbe,
                        });
                    }
                    Observation::Claim { ip, mac: other } => {
                        let _ = claims.send(NdpClaim {
                            ip,
                            mac: other,
                            kind: ClaimKind::Advertisement,
                        });
                    }
                    Observation::Unrelated => {}
                }
            },
        )
    }

    /// Joins or leaves `ip`'s solicited-node group so that it is held exactly on the
    /// interfaces where `ip` is announced or watched.
    fn refresh_group(&self, ip: Ipv6Addr) {
        let mut wanted = std::collections::BTreeSet::new();
        if let Some(i) = self
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
        {
            wanted.insert(*i);
        }
        if let Some(i) = self
            .watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
        {
            wanted.insert(*i);
        }
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let held = groups.interfaces_of(ip);
        for i in held.difference(&wanted) {
            if let Err(e) = groups.leave(*i, ip) {
                tracing::warn!(error = %e, "cannot leave a solicited-node group");
            }
        }
        for i in wanted.difference(&held) {
            if let Err(e) = groups.join(*i, ip) {
                self.metrics.group_join_failures.inc();
                tracing::warn!(error = %e, "solicitations for this IP may not reach the speaker");
            }
        }
    }

    /// Starts answering for `ip` on interface `index`, and joins its solicited-node group there.
    pub fn announce(&self, ip: Ipv6Addr, index: u32) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, index);
        self.refresh_group(ip);
    }

    /// Stops answering for `ip`; leaves its group unless it is still watched.
    pub fn withdraw(&self, ip: Ipv6Addr) {
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
        self.refresh_group(ip);
    }

    /// Reports claims on `ip` heard on interface `index` from now on (joining its group, so
    /// other hosts' DAD probes are heard too), and sends a DAD probe for it there (a
    /// solicitation from `::`), which its current user, if any, answers with an advertisement
    /// to all-nodes. Returns whether the probe was sent.
    pub fn probe(&self, ip: Ipv6Addr, index: u32) -> bool {
        self.watched
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, index);
        self.refresh_group(ip);
        let Some(port) = port_at(&self.ports, index) else {
            return false;
        };
        let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
        port.send(build_dad_probe(&mut buf, port.mac, ip, rand::random()))
    }

    /// Stops reporting claims on an IP that is not announced (leaving its group unless it is
    /// announced).
    pub fn unwatch(&self, ip: Ipv6Addr) {
        self.watched
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
        self.refresh_group(ip);
    }

    /// The MACs of the open ports.
    pub fn port_macs(&self) -> Vec<MacAddr> {
        raw_port::port_macs(&self.ports)
    }

    /// Stops answering for every IP at once (graceful shutdown). Groups are left too, so an
    /// MLD-snooping switch stops sending this node the solicitations.
    pub fn withdraw_all(&self) {
        let ips: Vec<Ipv6Addr> = self
            .table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(ip, _)| ip)
            .collect();
        for ip in ips {
            self.refresh_group(ip);
        }
    }

    /// A handle that sends unsolicited advertisements for announced IPs from their ports.
    pub fn na_sender(&self) -> UnsolicitedSender {
        UnsolicitedSender {
            table: self.table.clone(),
            ports: self.ports.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl Drop for NdpIo {
    fn drop(&mut self) {
        // Stop the readers before the membership sockets close.
        self.ports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Sends unsolicited Neighbor Advertisements; cheap to clone into per-IP schedule tasks, which
/// follow the `l2.garp` schedule (`ferrolb_core::arp::GarpParams`) as gratuitous ARP does.
#[derive(Clone)]
pub struct UnsolicitedSender {
    table: AnnounceTable6,
    ports: Ports,
    metrics: NdpMetrics,
}

impl UnsolicitedSender {
    /// Sends one unsolicited advertisement (override set) for `ip` to all-nodes, if the IP is
    /// still announced; returns whether it was sent.
    pub fn send(&self, ip: Ipv6Addr) -> bool {
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
        let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
        let ok = port.send(build_unsolicited_advertisement(&mut buf, port.mac, ip));
        if ok {
            self.metrics
                .unsolicited
                .get_or_create(&NdpMetrics::ip(ip))
                .inc();
        }
        ok
    }
}
