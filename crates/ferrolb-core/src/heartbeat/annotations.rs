//! What a speaker publishes about heartbeats in its Lease, next to `ferrolb.io/subnets` and
//! `ferrolb.io/macs`:
//!
//! * `ferrolb.io/heartbeat: v1;epoch=<u64>;interval=<ms>ms;port=<u16>`: it sends heartbeats
//!   (format version 1) from boot epoch `epoch`, one every `interval`, to UDP `port`. Absent: it
//!   sends none (no key, or heartbeats switched off). Receivers accept heartbeats from it only
//!   with this epoch ([`super::ReplayGuard::set_lease_epoch`]).
//! * `ferrolb.io/hears: <node>,<node>,...`: the peers whose heartbeats it currently hears
//!   (sorted, comma-separated; empty when none). The cadence rule reads it.
//!
//! Unknown `key=value` parts are ignored, so later versions can add fields.

use std::collections::BTreeSet;
use std::time::Duration;

/// The Lease annotation saying that (and how) a speaker sends heartbeats.
pub const HEARTBEAT_ANNOTATION: &str = "ferrolb.io/heartbeat";
/// The Lease annotation listing the peers a speaker hears.
pub const HEARS_ANNOTATION: &str = "ferrolb.io/hears";

/// The contents of [`HEARTBEAT_ANNOTATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAdvert {
    /// Boot epoch of the sender's current process.
    pub epoch: u64,
    /// Promised interval between heartbeats.
    pub interval: Duration,
    /// UDP port the sender listens on.
    pub port: u16,
}

impl std::fmt::Display for HeartbeatAdvert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v1;epoch={};interval={}ms;port={}",
            self.epoch,
            self.interval.as_millis(),
            self.port
        )
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
                _ => {}
            }
        }
        Some(HeartbeatAdvert {
            epoch: epoch?,
            interval: interval?,
            port: port?,
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
        };
        assert_eq!(
            a.to_string(),
            "v1;epoch=1764000000123456789;interval=200ms;port=7474"
        );
        assert_eq!(HeartbeatAdvert::parse(&a.to_string()), Some(a));
        // Unknown fields are ignored; order does not matter.
        assert_eq!(
            HeartbeatAdvert::parse(
                "v1;port=7474;future=x;interval=200ms;epoch=1764000000123456789"
            ),
            Some(a)
        );
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
