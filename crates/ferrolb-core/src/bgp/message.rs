//! The 19-byte message header (RFC 4271 §4.1), framing a TCP byte stream into messages, and
//! dispatch to the per-type decoders. Decoding borrows from the input: nothing is copied.

use std::fmt;

use super::error::DecodeError;
use super::notification::{ErrorCode, HeaderSubcode, Notification};
use super::open::{Afi, Open};
use super::update::Update;

/// Header size: 16-byte marker, 2-byte length, 1-byte type.
pub const HEADER_LEN: usize = 19;
/// Largest message without the RFC 8654 extended-message capability, which FerroLB never
/// advertises: every message it sends or accepts fits 4096 bytes.
pub const MAX_LEN: usize = 4096;

/// The message types FerroLB speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 1.
    Open,
    /// 2.
    Update,
    /// 3.
    Notification,
    /// 4.
    Keepalive,
    /// 5 (RFC 2918).
    RouteRefresh,
}

impl MessageType {
    fn from_value(v: u8) -> Option<Self> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    fn value(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The smallest legal total length for the type (RFC 4271 §4, RFC 2918 §3).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageType::Open => "OPEN",
            MessageType::Update => "UPDATE",
            MessageType::Notification => "NOTIFICATION",
            MessageType::Keepalive => "KEEPALIVE",
            MessageType::RouteRefresh => "ROUTE-REFRESH",
        })
    }
}

/// What was negotiated on the session and changes how bodies are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// Both sides sent the 4-octet ASN capability: AS_PATH carries 4-byte ASNs.
    pub four_octet_as: bool,
}

/// One decoded message, borrowing from the receive buffer.
// An UPDATE's decoded attributes make that variant large; messages are consumed as soon as
// they are decoded and never stored, so boxing would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// OPEN.
    Open(Open<'a>),
    /// UPDATE, validated completely.
    Update(Update<'a>),
    /// NOTIFICATION.
    Notification(Notification<'a>),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH for one address family (the reserved/subtype octet is ignored).
    RouteRefresh {
        /// The address family the peer wants resent.
        afi: Afi,
        /// Its SAFI.
        safi: u8,
    },
}

/// How long the message at the front of `buf` is, once its header is there: `Ok(None)` while
/// fewer than 19 bytes have arrived, an error as soon as the header is bad (so a stream of
/// garbage is refused at once instead of waiting for 4096 bytes that never make sense).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        // Reject a bad marker early even in a partial header.
        if buf.iter().take(16).any(|&b| b != 0xFF) {
            return Err(not_synchronized());
        }
        return Ok(None);
    };
    if header[..16].iter().any(|&b| b != 0xFF) {
        return Err(not_synchronized());
    }
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let Some(kind) = MessageType::from_value(header[18]) else {
        return Err(DecodeError::new(
            ErrorCode::MessageHeader(HeaderSubcode::BadMessageType),
            vec![header[18]],
            format!("message type {} is not one BGP-4 defines", header[18]),
        ));
    };
    let bad = len < kind.min_len()
        || len > MAX_LEN
        || (kind == MessageType::Keepalive && len != HEADER_LEN)
        || (kind == MessageType::RouteRefresh && len != 23);
    if bad {
        return Err(DecodeError::bad_length(kind, len));
    }
    Ok(Some(len))
}

fn not_synchronized() -> DecodeError {
    DecodeError::new(
        ErrorCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized),
        Vec::new(),
        "message header: the marker is not all ones (the stream is not BGP or lost sync)",
    )
}

/// Decodes the message at the front of `buf`, returning it and its length. `Ok(None)` means
/// more bytes are needed.
pub fn decode<'a>(
    buf: &'a [u8],
    ctx: &Context,
) -> Result<Option<(Message<'a>, usize)>, DecodeError> {
    let Some(len) = frame_len(buf)? else {
        return Ok(None);
    };
    let Some(msg) = buf.get(..len) else {
        return Ok(None);
    };
    let body = &msg[HEADER_LEN..];
    // frame_len accepted the type byte.
    let kind = MessageType::from_value(msg[18]).unwrap_or(MessageType::Keepalive);
    let m = match kind {
        MessageType::Open => Message::Open(Open::decode(body)?),
        MessageType::Update => Message::Update(Update::decode(body, ctx)?),
        MessageType::Notification => Message::Notification(Notification::decode(body)?),
        MessageType::Keepalive => Message::Keepalive,
        MessageType::RouteRefresh => Message::RouteRefresh {
            afi: Afi::from_value(u16::from_be_bytes([body[0], body[1]])),
            safi: body[3],
        },
    };
    Ok(Some((m, len)))
}

/// Starts a message of `kind` at the end of `out`, returning where it begins; the length is
/// filled in by [`finish`].
pub(crate) fn begin(kind: MessageType, out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0xFF; 16]);
    out.extend_from_slice(&[0, 0, kind.value()]);
    at
}

/// Writes the length of the message that began at `at`.
pub(crate) fn finish(at: usize, out: &mut [u8]) {
    let len = out.len() - at;
    debug_assert!(len <= MAX_LEN, "message of {len} bytes built");
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    out[at + 16..at + 18].copy_from_slice(&len.to_be_bytes());
}

/// Appends a KEEPALIVE.
pub fn encode_keepalive(out: &mut Vec<u8>) {
    let at = begin(MessageType::Keepalive, out);
    finish(at, out);
}

/// Appends a ROUTE-REFRESH request for an address family.
pub fn encode_route_refresh(afi: Afi, safi: u8, out: &mut Vec<u8>) {
    let at = begin(MessageType::RouteRefresh, out);
    out.extend_from_slice(&afi.value().to_be_bytes());
    out.push(0);
    out.push(safi);
    finish(at, out);
}
