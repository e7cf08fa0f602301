//! The messages speakers exchange besides heartbeats: a watcher's **suspect** (it stopped
//! hearing a peer; every receiver adopts the suspicion, so all speakers agree who is out) and a
//! suspected speaker's **alive** (it is not dead; every receiver takes the suspicion back).
//!
//! Heartbeats keep the version-1 layout of [`super::datagram`] byte for byte, so older speakers
//! still read them. The two new kinds are version 2: the same 26-byte header with byte 4 = 2
//! and byte 5 = the kind, then the sender's name, then the kind's fields, then the
//! HMAC-SHA256 over everything before it:
//!
//! | Kind | Byte 5 | Fields after the sender's name |
//! |---|---|---|
//! | suspect | 1 | length `m` of the suspected node's name (1..=253), the name, its boot epoch (u64 BE) |
//! | alive | 2 | none |
//!
//! The header's epoch and counter are the sender's, from the same sequence as its heartbeats,
//! so the replay guard refuses a replayed suspect or alive like a replayed heartbeat. Older
//! speakers refuse version 2 (metric label `version`) and change nothing.

use super::datagram::{
    be_u64, decode, encode, DecodeError, EncodeError, Heartbeat, HeartbeatKey, HEADER_LEN, MAGIC,
    MAX_NODE_NAME, TAG_LEN,
};
use hmac::Mac;

/// The version of the suspect and alive layouts.
pub const VERSION_2: u8 = 2;
const KIND_SUSPECT: u8 = 1;
const KIND_ALIVE: u8 = 2;

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The sender is alive (a heartbeat, version 1).
    Heartbeat,
    /// The sender, a watcher of `node`, stopped hearing `node` in its boot epoch `epoch`.
    Suspect {
        /// The suspected node.
        node: String,
        /// Its boot epoch as the sender knew it (a suspicion of an earlier boot is void).
        epoch: u64,
    },
    /// The sender heard it is suspected and is not dead.
    Alive,
}

/// One authenticated message: who sent it (its header) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's header: name, epoch, counter, interval, misses.
    pub from: Heartbeat,
    /// The message itself.
    pub body: Body,
}

/// The datagram for `m`, tagged with `key`.
pub fn encode_message(m: &Message, key: &HeartbeatKey) -> Result<Vec<u8>, EncodeError> {
    let mut out = encode(&m.from, key)?;
    let (kind, extra) = match &m.body {
        Body::Heartbeat => return Ok(out),
        Body::Suspect { node, epoch } => {
            let name = node.as_bytes();
            if name.is_empty() || name.len() > MAX_NODE_NAME {
                return Err(EncodeError::NodeName(node.clone()));
            }
            let mut extra = Vec::with_capacity(1 + name.len() + 8);
            // Checked above: 1..=253 fits a byte.
            extra.push(name.len() as u8);
            extra.extend_from_slice(name);
            extra.extend_from_slice(&epoch.to_be_bytes());
            (KIND_SUSPECT, extra)
        }
        Body::Alive => (KIND_ALIVE, Vec::new()),
    };
    out.truncate(out.len() - TAG_LEN);
    out[4] = VERSION_2;
    out[5] = kind;
    out.extend_from_slice(&extra);
    let mut mac = key.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// Authenticates and decodes one datagram of either version. Never panics, whatever `bytes`
/// hold.
pub fn decode_message(bytes: &[u8], key: &HeartbeatKey) -> Result<Message, DecodeError> {
    if bytes.len() < 5 || bytes[..4] != MAGIC {
        return Err(DecodeError::Malformed);
    }
    if bytes[4] != VERSION_2 {
        return decode(bytes, key).map(|from| Message {
            from,
            body: Body::Heartbeat,
        });
    }
    let max = HEADER_LEN + MAX_NODE_NAME + 1 + MAX_NODE_NAME + 8 + TAG_LEN;
    if bytes.len() < HEADER_LEN + 1 + TAG_LEN || bytes.len() > max {
        return Err(DecodeError::Malformed);
    }
    let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| DecodeError::BadMac)?;
    // Authenticated from here on; still nothing may panic (a buggy sender holding the key).
    let name_end = HEADER_LEN + usize::from(body[25]);
    if name_end > body.len() {
        return Err(DecodeError::BadField("node"));
    }
    let interval_ms = u16::from_be_bytes([body[6], body[7]]);
    if interval_ms == 0 {
        return Err(DecodeError::BadField("interval"));
    }
    if body[8] == 0 {
        return Err(DecodeError::BadField("misses"));
    }
    let name = std::str::from_utf8(&body[HEADER_LEN..name_end])
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or(DecodeError::BadField("node"))?;
    let from = Heartbeat {
        node: name.to_owned(),
        epoch: be_u64(&body[9..17]),
        counter: be_u64(&body[17..25]),
        interval: std::time::Duration::from_millis(u64::from(interval_ms)),
        misses: body[8],
    };
    let rest = &body[name_end..];
    let body = match body[5] {
        KIND_SUSPECT => {
            let (&len, rest) = rest.split_first().ok_or(DecodeError::BadField("suspect"))?;
            let len = usize::from(len);
            if len == 0 || rest.len() != len + 8 {
                return Err(DecodeError::BadField("suspect"));
            }
            let node = std::str::from_utf8(&rest[..len])
                .map_err(|_| DecodeError::BadField("suspect"))?
                .to_owned();
            Body::Suspect {
                node,
                epoch: be_u64(&rest[len..]),
            }
        }
        KIND_ALIVE if rest.is_empty() => Body::Alive,
        KIND_ALIVE => return Err(DecodeError::BadField("alive")),
        _ => return Err(DecodeError::BadField("kind")),
    };
    Ok(Message { from, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(b: u8) -> HeartbeatKey {
        HeartbeatKey::new(&[b; 32]).unwrap()
    }

    fn from() -> Heartbeat {
        Heartbeat {
            node: "node-a".into(),
            epoch: 7,
            counter: 9,
            interval: Duration::from_millis(200),
            misses: 3,
        }
    }

    fn suspect() -> Message {
        Message {
            from: from(),
            body: Body::Suspect {
                node: "node-b".into(),
                epoch: 1_764_000_000_000_000_000,
            },
        }
    }

    #[test]
    fn each_kind_round_trips_and_heartbeats_stay_version_1() {
        for m in [
            suspect(),
            Message {
                from: from(),
                body: Body::Alive,
            },
            Message {
                from: from(),
                body: Body::Heartbeat,
            },
        ] {
            let bytes = encode_message(&m, &key(1)).unwrap();
            assert_eq!(decode_message(&bytes, &key(1)), Ok(m.clone()));
            assert_eq!(decode_message(&bytes, &key(2)), Err(DecodeError::BadMac));
        }
        let hb = encode_message(
            &Message {
                from: from(),
                body: Body::Heartbeat,
            },
            &key(1),
        )
        .unwrap();
        assert_eq!(hb, encode(&from(), &key(1)).unwrap(), "byte for byte v1");
        let s = encode_message(&suspect(), &key(1)).unwrap();
        assert_eq!((s[4], s[5]), (2, 1));
        assert_eq!(s.len(), 26 + 6 + 1 + 6 + 8 + 32);
        // An older speaker's decoder refuses version 2 instead of misreading it.
        assert_eq!(decode(&s, &key(1)), Err(DecodeError::Version(2)));
    }

    #[test]
    fn altered_or_truncated_messages_are_refused() {
        let bytes = encode_message(&suspect(), &key(1)).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode_message(&b, &key(1)).is_err(), "byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(decode_message(&bytes[..n], &key(1)).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn a_signed_message_with_bad_fields_is_refused_not_a_panic() {
        let sign = |mut raw: Vec<u8>| {
            let mut mac = key(1).mac();
            mac.update(&raw);
            raw.extend_from_slice(&mac.finalize().into_bytes());
            raw
        };
        let mut base = encode_message(&suspect(), &key(1)).unwrap();
        base.truncate(base.len() - TAG_LEN);
        let mut wrong_kind = base.clone();
        wrong_kind[5] = 9;
        assert_eq!(
            decode_message(&sign(wrong_kind), &key(1)),
            Err(DecodeError::BadField("kind"))
        );
        let mut long_name = base.clone();
        long_name[25] = 250;
        assert_eq!(
            decode_message(&sign(long_name), &key(1)),
            Err(DecodeError::BadField("node"))
        );
        let mut short = base.clone();
        short.pop();
        assert_eq!(
            decode_message(&sign(short), &key(1)),
            Err(DecodeError::BadField("suspect"))
        );
    }
}
