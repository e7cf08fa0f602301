//! The heartbeat datagram: what one speaker tells the speakers sharing its subnets, several
//! times a second, and the HMAC-SHA256 that proves it came from a holder of the cluster's key.
//!
//! Wire format, version 1 (all integers big-endian):
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | magic `FLHB` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | flags (none defined; receivers ignore unknown bits, senders send 0) |
//! | 6 | 2 | promised interval between two heartbeats, milliseconds, ≥ 1 |
//! | 8 | 1 | misses: how many promised intervals a receiver must hear nothing before it suspects the sender (what the sender needs to tolerate its own jitter), ≥ 1 |
//! | 9 | 8 | boot epoch: fixed for one process, larger after every restart (wall clock at start) |
//! | 17 | 8 | counter: +1 per datagram within the epoch |
//! | 25 | 1 | length `n` of the sender's node name, 1..=253 |
//! | 26 | n | node name, UTF-8 |
//! | 26+n | 32 | HMAC-SHA256 over bytes `0..26+n` with the key |
//!
//! The MAC is checked (in constant time) before any field after the fixed header is trusted;
//! nothing from the wire can panic the decoder.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The first four bytes of every heartbeat, so stray traffic on the port is told apart cheaply.
pub const MAGIC: [u8; 4] = *b"FLHB";
/// The only version this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Bytes before the node name.
pub(super) const HEADER_LEN: usize = 26;
/// The longest node name Kubernetes allows (a DNS subdomain).
pub const MAX_NODE_NAME: usize = 253;
/// The shortest key accepted: 128 bits.
pub const MIN_KEY_LEN: usize = 16;
/// The largest datagram this format produces.
pub const MAX_LEN: usize = HEADER_LEN + MAX_NODE_NAME + TAG_LEN;

/// The shared secret heartbeats are authenticated with (Secret `ferrolb-heartbeat`, key `key`).
/// Holds the HMAC state keyed once, so each datagram costs only the hashing of its own bytes.
#[derive(Clone)]
pub struct HeartbeatKey {
    keyed: HmacSha256,
    len: usize,
}

impl std::fmt::Debug for HeartbeatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself, not even in a debug log.
        write!(f, "HeartbeatKey({} bytes)", self.len)
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Too short to resist guessing.
    #[error("heartbeat key (Secret ferrolb-heartbeat, field key) has {len} bytes; at least {MIN_KEY_LEN} are required")]
    TooShort {
        /// The length given.
        len: usize,
    },
}

impl HeartbeatKey {
    /// A key from the Secret's bytes; at least [`MIN_KEY_LEN`] of them.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: bytes.len() });
        }
        // HMAC takes keys of any length, so this only fails for lengths refused above.
        let keyed = HmacSha256::new_from_slice(bytes)
            .map_err(|_| KeyError::TooShort { len: bytes.len() })?;
        Ok(HeartbeatKey {
            keyed,
            len: bytes.len(),
        })
    }

    pub(super) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// A short value that changes when the key changes and reveals nothing about it (the key's
    /// HMAC of a fixed label, truncated): to notice a rotation, and to compare keys in logs.
    pub fn fingerprint(&self) -> [u8; 8] {
        let mut mac = self.mac();
        mac.update(b"ferrolb heartbeat key fingerprint");
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }
}

/// One heartbeat, decoded and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's node name.
    pub node: String,
    /// The sender's boot epoch.
    pub epoch: u64,
    /// Position within the epoch.
    pub counter: u64,
    /// How often the sender promises to send.
    pub interval: Duration,
    /// How many promised intervals of silence the sender asks receivers to tolerate.
    pub misses: u8,
}

/// Why a datagram was not accepted as a heartbeat. Each variant is one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not a heartbeat: too short, too long, wrong magic, or inconsistent length.
    #[error("datagram is not a heartbeat (length or magic)")]
    Malformed,
    /// A heartbeat of a version this speaker does not read.
    #[error("heartbeat version {0} is not supported (only {VERSION})")]
    Version(u8),
    /// The tag does not match: wrong key, or altered in transit.
    #[error("heartbeat authentication failed (wrong key or altered)")]
    BadMac,
    /// Authenticated, but a field is out of range (zero interval or misses, bad node name).
    #[error("heartbeat field {0} is invalid")]
    BadField(&'static str),
}

impl DecodeError {
    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Malformed => "malformed",
            DecodeError::Version(_) => "version",
            DecodeError::BadMac => "bad_mac",
            DecodeError::BadField(_) => "bad_field",
        }
    }
}

/// Why a heartbeat could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The node name is empty or longer than [`MAX_NODE_NAME`] bytes.
    #[error("node name {0:?} cannot go into a heartbeat (1..=253 bytes)")]
    NodeName(String),
    /// The interval does not fit 1..=65535 ms.
    #[error("heartbeat interval {0:?} must be 1 ms..=65.535 s")]
    Interval(Duration),
    /// Misses must be at least 1.
    #[error("heartbeat misses must be at least 1")]
    Misses,
}

/// The datagram for `hb`, tagged with `key`.
pub fn encode(hb: &Heartbeat, key: &HeartbeatKey) -> Result<Vec<u8>, EncodeError> {
    let name = hb.node.as_bytes();
    if name.is_empty() || name.len() > MAX_NODE_NAME {
        return Err(EncodeError::NodeName(hb.node.clone()));
    }
    let interval = u16::try_from(hb.interval.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or(EncodeError::Interval(hb.interval))?;
    if hb.misses == 0 {
        return Err(EncodeError::Misses);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&interval.to_be_bytes());
    out.push(hb.misses);
    out.extend_from_slice(&hb.epoch.to_be_bytes());
    out.extend_from_slice(&hb.counter.to_be_bytes());
    // Checked above: 1..=253 fits a byte.
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    let mut mac = key.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

pub(super) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Authenticates and decodes one datagram. Never panics, whatever `bytes` hold.
pub fn decode(bytes: &[u8], key: &HeartbeatKey) -> Result<Heartbeat, DecodeError> {
    if bytes.len() < HEADER_LEN + 1 + TAG_LEN || bytes.len() > MAX_LEN || bytes[..4] != MAGIC {
        return Err(DecodeError::Malformed);
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::Version(bytes[4]));
    }
    let name_len = usize::from(bytes[25]);
    if bytes.len() != HEADER_LEN + name_len + TAG_LEN {
        return Err(DecodeError::Malformed);
    }
    let (body, tag) = bytes.split_at(HEADER_LEN + name_len);
    let mut mac = key.mac();
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(tag).map_err(|_| DecodeError::BadMac)?;
    let interval_ms = u16::from_be_bytes([body[6], body[7]]);
    if interval_ms == 0 {
        return Err(DecodeError::BadField("interval"));
    }
    let misses = body[8];
    if misses == 0 {
        return Err(DecodeError::BadField("misses"));
    }
    let node = std::str::from_utf8(&body[HEADER_LEN..])
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or(DecodeError::BadField("node"))?;
    Ok(Heartbeat {
        node: node.to_owned(),
        epoch: be_u64(&body[9..17]),
        counter: be_u64(&body[17..25]),
        interval: Duration::from_millis(u64::from(interval_ms)),
        misses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> HeartbeatKey {
        HeartbeatKey::new(&[b; 32]).unwrap()
    }

    fn hb() -> Heartbeat {
        Heartbeat {
            node: "kind-worker".into(),
            epoch: 1_700_000_000_000_000_000,
            counter: 42,
            interval: Duration::from_millis(200),
            misses: 3,
        }
    }

    #[test]
    fn round_trips_and_has_the_documented_layout() {
        let bytes = encode(&hb(), &key(1)).unwrap();
        assert_eq!(bytes.len(), 26 + "kind-worker".len() + 32);
        assert_eq!(&bytes[..4], b"FLHB");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[6..8], &200u16.to_be_bytes());
        assert_eq!(bytes[8], 3);
        assert_eq!(&bytes[17..25], &42u64.to_be_bytes());
        assert_eq!(bytes[25] as usize, "kind-worker".len());
        assert_eq!(decode(&bytes, &key(1)).unwrap(), hb());
    }

    #[test]
    fn a_known_answer_pins_the_tag() {
        // Computed independently (Python's hmac over the documented layout): speakers of
        // different versions must agree on exactly what is authenticated.
        let bytes = encode(&hb(), &HeartbeatKey::new(b"0123456789abcdef").unwrap()).unwrap();
        let tag: String = bytes[bytes.len() - 32..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            tag,
            "5a0ddd30e10018fc7c4b0c303f7fc1f14bb2c7f7d58242caef36724a196b48da"
        );
    }

    #[test]
    fn a_wrong_key_or_any_altered_byte_is_refused() {
        let bytes = encode(&hb(), &key(1)).unwrap();
        assert_eq!(decode(&bytes, &key(2)), Err(DecodeError::BadMac));
        for i in 5..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode(&b, &key(1)).is_err(), "byte {i} altered");
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert_eq!(decode(&[], &key(1)), Err(DecodeError::Malformed));
        assert_eq!(decode(&[0; 80], &key(1)), Err(DecodeError::Malformed));
        let mut b = encode(&hb(), &key(1)).unwrap();
        b[4] = 2;
        assert_eq!(decode(&b, &key(1)), Err(DecodeError::Version(2)));
        let mut b = encode(&hb(), &key(1)).unwrap();
        b.push(0);
        assert_eq!(decode(&b, &key(1)), Err(DecodeError::Malformed));
    }

    #[test]
    fn out_of_range_fields_are_refused_on_both_sides() {
        let mut h = hb();
        h.node = String::new();
        assert!(matches!(encode(&h, &key(1)), Err(EncodeError::NodeName(_))));
        h.node = "x".repeat(254);
        assert!(matches!(encode(&h, &key(1)), Err(EncodeError::NodeName(_))));
        let mut h = hb();
        h.interval = Duration::ZERO;
        assert!(matches!(encode(&h, &key(1)), Err(EncodeError::Interval(_))));
        h.interval = Duration::from_secs(66);
        assert!(matches!(encode(&h, &key(1)), Err(EncodeError::Interval(_))));
        let mut h = hb();
        h.misses = 0;
        assert_eq!(encode(&h, &key(1)), Err(EncodeError::Misses));
        // A validly tagged datagram with a zero interval (a buggy sender holding the key).
        let mut raw = encode(&hb(), &key(1)).unwrap();
        raw.truncate(raw.len() - 32);
        raw[6] = 0;
        raw[7] = 0;
        let mut mac = key(1).mac();
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        assert_eq!(
            decode(&raw, &key(1)),
            Err(DecodeError::BadField("interval"))
        );
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert_eq!(
            HeartbeatKey::new(b"short").unwrap_err(),
            KeyError::TooShort { len: 5 }
        );
        let k = HeartbeatKey::new(b"super-secret-key-material").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
        let other = HeartbeatKey::new(b"super-secret-key-materiaL").unwrap();
        assert_ne!(k.fingerprint(), other.fingerprint());
        assert_eq!(k.fingerprint(), k.clone().fingerprint());
    }
}
