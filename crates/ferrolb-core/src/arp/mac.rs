//! The Ethernet MAC address type shared by the ARP codec and the announcer.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A 48-bit Ethernet hardware address. A newtype rather than `[u8; 6]` so it prints the way
/// operators read it (`aa:bb:cc:dd:ee:ff`) in Events, logs and metrics labels.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`, the destination of gratuitous ARP and probes.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, the "unknown" target hardware address of ARP requests.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets, in wire order.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':' or '-'")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff` (either case), the two forms `ip link`
    /// and other tools print, so interface MACs can come from anywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for slot in &mut out {
            let part = parts.next().ok_or_else(err)?;
            // from_str_radix alone would accept a sign ("+a").
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_lowercase_colon_separated_hex() {
        let mac = MacAddr([0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0x01]);
        assert_eq!(mac.to_string(), "aa:bb:0c:0d:ee:01");
        assert_eq!(format!("{mac:?}"), "aa:bb:0c:0d:ee:01");
    }

    #[test]
    fn parses_both_separators_and_round_trips() {
        let mac: MacAddr = "AA-bb-0c-0d-ee-01".parse().expect("valid");
        assert_eq!(mac, MacAddr([0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0x01]));
        assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "gg:bb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
