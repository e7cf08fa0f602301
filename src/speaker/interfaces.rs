//! The node's network interfaces, from rtnetlink: which ones may announce, which subnets they
//! hold (published in the speaker's lease for the election), and which one serves a given IP.
//!
//! Monitoring subscribes to link and address notifications and, on any of them, takes a fresh
//! dump: snapshots cannot drift the way incrementally patched state can, and interface counts
//! are small. An interface that goes down drops out of the snapshot's eligible set at once, so
//! its subnets leave the node's candidacy with the next lease renewal.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_core::arp::MacAddr;
use ferrolb_core::config::L2Config;
use futures::{StreamExt, TryStreamExt};
use ipnetwork::IpNetwork;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, State};
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK};
use rtnetlink::Handle;
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One interface as the speaker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Kernel interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address; `None` for interfaces without an Ethernet address.
    pub mac: Option<MacAddr>,
    /// Administratively up and carrier present.
    pub up: bool,
    /// Loopback, NOARP, or a port of a bridge/bond: never announces itself.
    pub unsuitable: bool,
    /// Addresses with prefix lengths, as networks (host bits cleared).
    pub networks: Vec<IpNetwork>,
    /// The same addresses with their host bits: where peers reach this node (heartbeats).
    pub addresses: Vec<IpNetwork>,
}

/// A snapshot of every interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces(pub Vec<Interface>);

impl Interfaces {
    /// Interfaces that may announce: up, Ethernet, ARP-capable, not enslaved, and allowed by
    /// `l2.interfaces` / `l2.excludeInterfaces`.
    pub fn eligible<'a>(&'a self, l2: &'a L2Config) -> impl Iterator<Item = &'a Interface> + 'a {
        self.0.iter().filter(move |i| {
            i.up && !i.unsuitable && i.mac.is_some() && l2.interface_eligible(&i.name)
        })
    }

    /// The subnets this node can announce in, for its lease's `ferrolb.io/subnets`: IPv4
    /// (answered with ARP) and global or unique-local IPv6 (answered with NDP). Link-local
    /// IPv6 never qualifies: every interface has one, so it would make every node a candidate
    /// for addresses no LAN routes to it.
    pub fn subnets(&self, l2: &L2Config) -> Vec<IpNetwork> {
        let mut nets: Vec<IpNetwork> = self
            .eligible(l2)
            .flat_map(|i| i.networks.iter().copied())
            .filter(announceable)
            .collect();
        nets.sort();
        nets.dedup();
        nets
    }

    /// The eligible interfaces with an announceable IPv6 subnet: where the NDP responder
    /// listens. An interface with only a link-local address gets none, as it can never be
    /// elected for an IPv6 Service IP.
    pub fn ipv6_capable<'a>(
        &'a self,
        l2: &'a L2Config,
    ) -> impl Iterator<Item = &'a Interface> + 'a {
        self.eligible(l2)
            .filter(|i| i.networks.iter().any(|n| n.is_ipv6() && announceable(n)))
    }

    /// The eligible interface whose subnet holds `ip` (the first by index if several do).
    pub fn for_ip<'a>(&'a self, ip: Ipv4Addr, l2: &'a L2Config) -> Option<&'a Interface> {
        self.eligible(l2)
            .filter(|i| i.networks.iter().any(|n| n.contains(IpAddr::V4(ip))))
            .min_by_key(|i| i.index)
    }
}

/// Whether a Service IP can be announced in `net`: IPv4, or IPv6 outside link-local
/// `fe80::/10` (and outside multicast and loopback, which no interface subnet should be).
fn announceable(net: &IpNetwork) -> bool {
    match net {
        IpNetwork::V4(_) => true,
        IpNetwork::V6(n) => {
            let ip = n.network();
            !(ip.is_unicast_link_local() || ip.is_multicast() || ip.is_loopback())
        }
    }
}

/// Formats subnets for the lease annotation: `198.51.100.0/24,203.0.113.0/24`.
pub fn subnets_annotation(nets: &[IpNetwork]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a peer's lease annotation, skipping entries that do not parse (a newer peer may
/// publish something this version does not know; it must not stop the election).
pub fn parse_subnets_annotation(text: &str) -> Vec<IpNetwork> {
    text.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Interface discovery failed.
#[derive(Debug, Error)]
pub enum InterfaceError {
    /// The netlink socket could not be opened or bound.
    #[error("cannot open a netlink socket for interface monitoring: {0}")]
    Socket(#[from] std::io::Error),
    /// A dump failed.
    #[error("cannot list interfaces over netlink: {0}")]
    Dump(#[from] rtnetlink::Error),
}

fn link_up(flags: &LinkFlags, oper: Option<&State>) -> bool {
    if !flags.contains(LinkFlags::Up) {
        return false;
    }
    match oper {
        Some(State::Up) => true,
        // Some virtual links never report an operational state; trust the carrier flag.
        Some(State::Unknown) | None => flags.contains(LinkFlags::LowerUp),
        _ => false,
    }
}

/// Takes a snapshot of links and addresses.
pub async fn dump(handle: &Handle) -> Result<Interfaces, InterfaceError> {
    let mut out = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await? {
        let mut iface = Interface {
            index: link.header.index,
            name: String::new(),
            mac: None,
            up: false,
            unsuitable: false,
            networks: Vec::new(),
            addresses: Vec::new(),
        };
        let mut oper = None;
        let mut enslaved = false;
        for attr in &link.attributes {
            match attr {
                LinkAttribute::IfName(n) => iface.name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 && a.iter().any(|b| *b != 0) => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(a);
                    iface.mac = Some(MacAddr(m));
                }
                LinkAttribute::OperState(s) => oper = Some(*s),
                LinkAttribute::Controller(_) => enslaved = true,
                _ => {}
            }
        }
        let flags = &link.header.flags;
        iface.up = link_up(flags, oper.as_ref());
        iface.unsuitable =
            enslaved || flags.contains(LinkFlags::Loopback) || flags.contains(LinkFlags::Noarp);
        out.push(iface);
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let addr = local.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        let Some(ip) = addr else { continue };
        let Ok(addr) = IpNetwork::new(ip, msg.header.prefix_len) else {
            continue;
        };
        let Ok(net) = IpNetwork::new(addr.network(), addr.prefix()) else {
            continue;
        };
        if let Some(iface) = out.iter_mut().find(|i| i.index == msg.header.index) {
            if !iface.networks.contains(&net) {
                iface.networks.push(net);
            }
            if !iface.addresses.contains(&addr) {
                iface.addresses.push(addr);
            }
        }
    }
    out.sort_by_key(|i| i.index);
    Ok(Interfaces(out))
}

/// Starts monitoring: the receiver always holds the latest snapshot.
pub async fn monitor(
    shutdown: CancellationToken,
) -> Result<watch::Receiver<Interfaces>, InterfaceError> {
    let (mut conn, handle, mut messages) = rtnetlink::new_connection()?;
    conn.socket_mut().socket_mut().bind(&SocketAddr::new(
        0,
        RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
    ))?;
    tokio::spawn(conn);
    let first = dump(&handle).await?;
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = messages.next() => {
                    if msg.is_none() {
                        tracing::error!("netlink notification stream ended; interface changes will no longer be seen");
                        return;
                    }
                }
            }
            // Coalesce the burst of notifications one change produces into one dump.
            tokio::time::sleep(Duration::from_millis(20)).await;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, messages.next()).await {}
            match dump(&handle).await {
                Ok(snapshot) => {
                    tx.send_if_modified(|cur| {
                        let changed = *cur != snapshot;
                        *cur = snapshot;
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "interface dump failed; keeping the previous view")
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    // unwrap() here only parses literal fixtures: it cannot fail unless the test itself is wrong.
    use super::*;

    fn iface(index: u32, name: &str, up: bool, nets: &[&str]) -> Interface {
        Interface {
            index,
            name: name.into(),
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            up,
            unsuitable: false,
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            addresses: Vec::new(),
        }
    }

    #[test]
    fn eligibility_subnets_and_interface_choice() {
        let l2 = L2Config::default();
        let mut lo = iface(1, "lo", true, &["127.0.0.0/8"]);
        lo.unsuitable = true;
        let set = Interfaces(vec![
            lo,
            iface(
                2,
                "eth0",
                true,
                &["198.51.100.0/24", "2001:db8::/64", "fe80::/64"],
            ),
            iface(3, "eth1", false, &["203.0.113.0/24"]),
            iface(4, "veth12", true, &["192.0.2.0/24"]),
        ]);
        let names: Vec<&str> = set.eligible(&l2).map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["eth0"],
            "down, loopback and excluded (^veth) interfaces are not eligible"
        );
        assert_eq!(
            subnets_annotation(&set.subnets(&l2)),
            "198.51.100.0/24,2001:db8::/64",
            "IPv4 and global IPv6 subnets; never link-local"
        );
        assert_eq!(
            set.for_ip("198.51.100.7".parse().unwrap(), &l2)
                .map(|i| i.index),
            Some(2)
        );
        assert!(
            set.for_ip("203.0.113.7".parse().unwrap(), &l2).is_none(),
            "eth1 is down"
        );
    }

    #[test]
    fn link_local_only_interfaces_get_no_ndp_responder() {
        let l2 = L2Config::default();
        let set = Interfaces(vec![
            iface(2, "eth0", true, &["198.51.100.0/24", "fe80::/64"]),
            iface(3, "eth1", true, &["fd00:1::/64", "fe80::/64"]),
            iface(4, "eth2", true, &["2001:db8:1::/64"]),
        ]);
        let names: Vec<&str> = set.ipv6_capable(&l2).map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth1", "eth2"], "ULA and global IPv6 qualify");
        assert_eq!(
            subnets_annotation(&set.subnets(&l2)),
            "198.51.100.0/24,2001:db8:1::/64,fd00:1::/64"
        );
    }

    #[test]
    fn annotation_round_trip_skips_garbage() {
        let nets = parse_subnets_annotation("198.51.100.0/24, bogus,203.0.113.0/24");
        assert_eq!(subnets_annotation(&nets), "198.51.100.0/24,203.0.113.0/24");
        assert!(parse_subnets_annotation("").is_empty());
    }

    #[test]
    fn oper_state_decides_up() {
        assert!(link_up(
            &(LinkFlags::Up | LinkFlags::LowerUp),
            Some(&State::Up)
        ));
        assert!(!link_up(
            &(LinkFlags::Up | LinkFlags::LowerUp),
            Some(&State::LowerLayerDown)
        ));
        assert!(link_up(
            &(LinkFlags::Up | LinkFlags::LowerUp),
            Some(&State::Unknown)
        ));
        assert!(!link_up(&LinkFlags::Up, Some(&State::Unknown)));
        assert!(!link_up(&LinkFlags::LowerUp, Some(&State::Up)));
    }
}
