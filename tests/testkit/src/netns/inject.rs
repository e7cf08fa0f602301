//! Hand-made Ethernet frames put on the wire from inside a namespace: hostile, malformed or
//! just very many ARP frames, for testing what a speaker does with them.
//!
//! The frames are built byte by byte here, on purpose without the product's ARP codec, so a
//! bug shared by codec and test cannot hide itself. The raw socket is a pnet datalink channel
//! opened by a thread that entered the namespace ([`super::serve::in_netns`]); a socket stays in
//! the namespace it was created in, so the test thread can use it from anywhere.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};

use super::serve::in_netns;
use super::tools::MacAddr;

/// The ARP ethertype.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Every field of an Ethernet + ARP frame, freely settable (including to wrong values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawArp {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// Ethertype (0x0806 for ARP).
    pub ethertype: u16,
    /// Hardware type (1 = Ethernet).
    pub htype: u16,
    /// Protocol type (0x0800 = IPv4).
    pub ptype: u16,
    /// Hardware address length (6).
    pub hlen: u8,
    /// Protocol address length (4).
    pub plen: u8,
    /// Opcode (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl RawArp {
    /// A well-formed broadcast "who has `target`? tell `from_ip`" from `from_mac`.
    pub fn request(from_mac: MacAddr, from_ip: Ipv4Addr, target: Ipv4Addr) -> Self {
        Self {
            eth_dst: MacAddr::BROADCAST,
            eth_src: from_mac,
            ethertype: ETHERTYPE_ARP,
            htype: 1,
            ptype: 0x0800,
            hlen: 6,
            plen: 4,
            op: 1,
            sha: from_mac,
            spa: from_ip,
            tha: MacAddr([0; 6]),
            tpa: target,
        }
    }

    /// A well-formed gratuitous ARP request (sender IP = target IP = `ip`) from `mac`.
    pub fn gratuitous(mac: MacAddr, ip: Ipv4Addr) -> Self {
        Self::request(mac, ip, ip)
    }

    /// The frame's bytes: 14 bytes of Ethernet header and 28 of ARP body (42, unpadded). The
    /// body always uses 6-byte and 4-byte address fields, whatever `hlen`/`plen` claim.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(42);
        b.extend_from_slice(&self.eth_dst.0);
        b.extend_from_slice(&self.eth_src.0);
        b.extend_from_slice(&self.ethertype.to_be_bytes());
        b.extend_from_slice(&self.htype.to_be_bytes());
        b.extend_from_slice(&self.ptype.to_be_bytes());
        b.push(self.hlen);
        b.push(self.plen);
        b.extend_from_slice(&self.op.to_be_bytes());
        b.extend_from_slice(&self.sha.0);
        b.extend_from_slice(&self.spa.octets());
        b.extend_from_slice(&self.tha.0);
        b.extend_from_slice(&self.tpa.octets());
        b
    }

    /// The bytes zero-padded to the 60-byte Ethernet minimum, as a real NIC would send them.
    pub fn padded(&self) -> Vec<u8> {
        let mut b = self.bytes();
        b.resize(60, 0);
        b
    }
}

/// A raw socket on one interface of one namespace.
pub struct Injector {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    /// The interface's own MAC.
    pub mac: MacAddr,
}

impl Injector {
    /// Opens `ifname` in namespace `ns`. Reads time out after `read_timeout`.
    pub fn open(ns: &str, ifname: &str, read_timeout: Duration) -> io::Result<Self> {
        let ifname = ifname.to_string();
        in_netns(ns, move || {
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .ok_or_else(|| io::Error::other(format!("no interface {ifname}")))?;
            let mac = iface
                .mac
                .map(|m| MacAddr(m.octets()))
                .ok_or_else(|| io::Error::other(format!("{ifname} has no MAC")))?;
            let config = pnet_datalink::Config {
                read_timeout: Some(read_timeout),
                // Replies to made-up source MACs are unicast to those MACs: see them too.
                promiscuous: true,
                ..pnet_datalink::Config::default()
            };
            match pnet_datalink::channel(&iface, config)? {
                Channel::Ethernet(tx, rx) => Ok(Injector { tx, rx, mac }),
                _ => Err(io::Error::other("not an Ethernet channel")),
            }
        })
    }

    /// Sends one frame as is.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send_to(frame, None)
            .unwrap_or_else(|| Err(io::Error::other("no send result")))
    }

    /// The next received frame (anything on the interface, our own sends included), or an
    /// error on timeout.
    pub fn recv(&mut self) -> io::Result<Vec<u8>> {
        self.rx.next().map(<[u8]>::to_vec)
    }

    /// Splits off the receiving half, to read on another thread while this one sends.
    pub fn split(self) -> (Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>) {
        (self.tx, self.rx)
    }
}

/// Reads an ARP reply out of raw `frame` bytes: (sender MAC, sender IP, Ethernet destination),
/// or `None` for anything else.
pub fn arp_reply_of(frame: &[u8]) -> Option<(MacAddr, Ipv4Addr, MacAddr)> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 2] {
        return None;
    }
    let mac = |at: usize| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&frame[at..at + 6]);
        MacAddr(m)
    };
    let ip = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
    Some((mac(22), ip, mac(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = MacAddr([2, 0, 0, 0, 0, 9]);
        let f = RawArp::request(
            m,
            Ipv4Addr::new(198, 51, 100, 9),
            Ipv4Addr::new(203, 0, 113, 10),
        )
        .bytes();
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[38..42], &[203, 0, 113, 10]);
        let mut reply = f.clone();
        reply[20..22].copy_from_slice(&[0, 2]);
        assert_eq!(
            arp_reply_of(&reply),
            Some((m, Ipv4Addr::new(198, 51, 100, 9), MacAddr::BROADCAST))
        );
        assert_eq!(arp_reply_of(&f), None);
    }
}
