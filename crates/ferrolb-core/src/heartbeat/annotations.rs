//! What a speaker publishes about heartbeats in its Lease, next to `ferrolb.io/subnets` and
//! `ferrolb.io/macs`:
//!
//! * `ferrolb.io/heartbeat: v1;epoch=<u64>;interval=<ms>ms;port=<u16>;addrs=<ip/prefix>,...`:
//!   it sends heartbeats (format version 1) from boot epoch `epoch`, one every `interval`, to
//!   UDP `port`, and receives them at `addrs` (one address with its prefix per subnet it
//!   serves, IPv4 or global IPv6, never link-local), where its watchers' heartbeats reach it
//!   ([`super::watchers`]). Absent: it sends none (no key, or heartbeats switched off).
//!   Without `addrs` (speakers before unicast heartbeats) it is on no watcher ring and judged
//!   by its Lease alone. Receivers accept heartbeats from it only with this epoch
//!   ([`super::ReplayGuard::set_lease_epoch`]).
//! * `ferrolb.io/hears: <node>,<node>,...`: the peers whose heartbeats it currently hears
//!   (sorted, comma-separated; empty when none). The cadence rule reads it.
//!
//! Unknown `key=value` parts are ignored, so later versions can add fields.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnetwork::IpNetwork;

/// The Lease annotation saying that (and how) a speaker sends heartbeats.
pub const HEARTBEAT_ANNOTATION: &str = "ferrolb.io/heartbeat";
/// The Lease annotation listing the peers a speaker hears.
pub const HEARS_ANNOTATION: &str = "ferrolb.io/hears";

/// The contents of [`HEARTBEAT_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAdvert {
    /// Boot epoch of the sender's current process.
    pub epoch: u64,
    /// Promised interval between heartbeats.
    pub interval: Duration,
    /// UDP port the sender listens on.
    pub port: u16,
    /// Where it receives heartbeats: an address with its prefix per subnet (empty: an older
    /// speaker that multicasts; judged by its Lease alone).
    pub addrs: Vec<IpNetwork>,
}

/// Whether `a` can receive unicast heartbeats from a peer on its subnet: not link-local (every
/// interface has one, and it is ambiguous without a zone), multicast, loopback or unspecified.
pub fn usable_heartbeat_addr(a: &IpNetwork) -> bool {
    match a {
        IpNetwork::V4(n) => {
            let ip = n.ip();
            !(ip.is_link_local() || ip.is_multicast() || ip.is_loopback() || ip.is_unspecified())
        }
        IpNetwork::V6(n) => {
            let ip = n.ip();
            !(ip.is_unicast_link_local()
                || ip.is_multicast()
                || ip.is_loopback()
                || ip.is_unspecified())
        }
    }
}

impl std::fmt::Display for HeartbeatAdvert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v1;epoch={};interval={}ms;port={}",
            self.epoch,
            self.interval.as_millis(),
            self.port
        )?;
        if !self.addrs.is_empty() {
            let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
            write!(f, ";addrs={}", addrs.join(","))?;
        }
        Ok(())
    }
}

impl HeartbeatAdvert {
    /// Parses the annotation; `None` for another version or a missing or malformed field
    /// (such a peer is treated as sending no heartbeats: judged by its Lease alone).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';').map(str::trim);
        if parts.next()? != "v1" {
            return None;
        }
        let (mut epoch, mut interval, mut port) = (None, None, None);
        let mut addrs = Vec::new();
        for part in parts {
            match part.split_once('=') {
                Some(("epoch", v)) => epoch = v.parse().ok(),
                Some(("interval", v)) => {
                    interval = v
                        .strip_suffix("ms")?
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis)
                }
                Some(("port", v)) => port = v.parse().ok().filter(|p| *p != 0),
                // Entries that do not parse or cannot be reached are skipped, not fatal: the
                // rest still work, and a peer with none left is judged by its Lease alone.
                Some(("addrs", v)) => {
                    addrs = v
                        .split(',')
                        .filter_map(|a| a.trim().parse::<IpNetwork>().ok())
                        .filter(usable_heartbeat_addr)
                        .collect()
                }
                _ => {}
            }
        }
        Some(HeartbeatAdvert {
            epoch: epoch?,
            interval: interval?,
            port: port?,
            addrs,
        })
    }
}

/// The [`HEARS_ANNOTATION`] value for `nodes`.
pub fn format_hears<'a>(nodes: impl IntoIterator<Item = &'a str>) -> String {
    let sorted: BTreeSet<&str> = nodes.into_iter().collect();
    sorted.into_iter().collect::<Vec<_>>().join(",")
}

/// The nodes listed in a [`HEARS_ANNOTATION`] value; blanks are skipped.
pub fn parse_hears(text: &str) -> BTreeSet<String> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advert_round_trips_and_has_the_documented_form() {
        let a = HeartbeatAdvert {
            epoch: 1_764_000_000_123_456_789,
            interval: Duration::from_millis(200),
            port: 7474,
            addrs: Vec::new(),
        };
        assert_eq!(
            a.to_string(),
            "v1;epoch=1764000000123456789;interval=200ms;port=7474"
        );
        assert_eq!(HeartbeatAdvert::parse(&a.to_string()), Some(a.clone()));
        // Unknown fields are ignored; order does not matter.
        assert_eq!(
            HeartbeatAdvert::parse(
                "v1;port=7474;future=x;interval=200ms;epoch=1764000000123456789"
            ),
            Some(a.clone())
        );
    }

    #[test]
    fn addresses_round_trip_and_unreachable_ones_are_skipped() {
        let a = HeartbeatAdvert {
            epoch: 5,
            interval: Duration::from_millis(200),
            port: 7474,
            addrs: vec![
                "198.51.100.11/24".parse().unwrap(),
                "2001:db8::11/64".parse().unwrap(),
            ],
        };
        let text = a.to_string();
        assert_eq!(
            text,
            "v1;epoch=5;interval=200ms;port=7474;addrs=198.51.100.11/24,2001:db8::11/64"
        );
        assert_eq!(HeartbeatAdvert::parse(&text), Some(a.clone()));
        let messy = "v1;epoch=5;interval=200ms;port=7474;addrs=fe80::1/64, 198.51.100.11/24,bogus,2001:db8::11/64,224.0.0.1/4";
        assert_eq!(HeartbeatAdvert::parse(messy), Some(a));
    }

    #[test]
    fn malformed_adverts_mean_no_heartbeats() {
        for bad in [
            "",
            "v2;epoch=1;interval=200ms;port=7474",
            "v1;epoch=1;interval=200;port=7474",
            "v1;epoch=1;interval=0ms;port=7474",
            "v1;epoch=x;interval=200ms;port=7474",
            "v1;epoch=1;interval=200ms",
            "v1;epoch=1;interval=200ms;port=0",
            "v1;epoch=1;interval=200ms;port=70000",
        ] {
            assert_eq!(HeartbeatAdvert::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hears_is_sorted_and_blank_tolerant() {
        assert_eq!(format_hears(["n3", "n1", "n2", "n1"]), "n1,n2,n3");
        assert_eq!(format_hears([]), "");
        let parsed = parse_hears(" n1, ,n2,");
        assert_eq!(parsed.into_iter().collect::<Vec<_>>(), ["n1", "n2"]);
        assert!(parse_hears("").is_empty());
    }
}
