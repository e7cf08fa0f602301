//! NOTIFICATION messages (RFC 4271 §4.5, §6): typed error codes and subcodes, and the RFC 8203
//! shutdown communication that tells the router's operator why a session went down.

use std::fmt;

use super::error::DecodeError;

/// RFC 8203 §2 caps the shutdown communication at 255 octets of UTF-8 (RFC 9003 allows more,
/// but an older peer would then reject the NOTIFICATION itself).
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

macro_rules! subcodes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $var:ident = $val:expr,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $var,)*
            /// A subcode this implementation does not name; kept so it can be logged.
            Other(u8),
        }

        impl $name {
            /// The subcode's wire value.
            pub fn value(self) -> u8 {
                match self {
                    $($name::$var => $val,)*
                    $name::Other(v) => v,
                }
            }

            /// The subcode for a wire value.
            pub fn from_value(v: u8) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Other(other),
                }
            }
        }
    };
}

subcodes!(
    /// Message Header Error subcodes (RFC 4271 §4.5).
    HeaderSubcode {
        /// The marker was not all ones.
        ConnectionNotSynchronized = 1,
        /// The length field is out of range for the type.
        BadMessageLength = 2,
        /// The type is not one we know.
        BadMessageType = 3,
    }
);

subcodes!(
    /// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492).
    OpenSubcode {
        /// Version other than 4.
        UnsupportedVersionNumber = 1,
        /// The peer's ASN is not the configured one.
        BadPeerAs = 2,
        /// BGP Identifier 0, or ours on an iBGP session.
        BadBgpIdentifier = 3,
        /// An optional parameter other than capabilities.
        UnsupportedOptionalParameter = 4,
        /// Hold time 1 or 2 seconds.
        UnacceptableHoldTime = 6,
        /// A capability we require is missing.
        UnsupportedCapability = 7,
    }
);

subcodes!(
    /// UPDATE Message Error subcodes (RFC 4271 §4.5).
    UpdateSubcode {
        /// Lengths that do not add up, or an attribute twice.
        MalformedAttributeList = 1,
        /// A well-known attribute we do not know.
        UnrecognizedWellKnownAttribute = 2,
        /// ORIGIN, AS_PATH or NEXT_HOP missing where required.
        MissingWellKnownAttribute = 3,
        /// Flags that contradict the attribute type.
        AttributeFlagsError = 4,
        /// A length wrong for the attribute type.
        AttributeLengthError = 5,
        /// ORIGIN value above 2.
        InvalidOriginAttribute = 6,
        /// A next hop that cannot be one.
        InvalidNextHopAttribute = 8,
        /// A malformed optional attribute.
        OptionalAttributeError = 9,
        /// A malformed prefix.
        InvalidNetworkField = 10,
        /// A malformed AS_PATH.
        MalformedAsPath = 11,
    }
);

subcodes!(
    /// Cease subcodes (RFC 4486, RFC 8203).
    CeaseSubcode {
        /// Prefix limit reached.
        MaximumPrefixesReached = 1,
        /// Operator shut the session down (carries an RFC 8203 message).
        AdministrativeShutdown = 2,
        /// Peer removed from the configuration.
        PeerDeconfigured = 3,
        /// Operator reset the session (carries an RFC 8203 message).
        AdministrativeReset = 4,
        /// The connection was refused.
        ConnectionRejected = 5,
        /// Another configuration change forced a reset.
        OtherConfigurationChange = 6,
        /// Collision resolution.
        ConnectionCollisionResolution = 7,
        /// Out of resources.
        OutOfResources = 8,
    }
);

/// The error code of a NOTIFICATION, with its typed subcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 1: the 19-byte header was wrong.
    MessageHeader(HeaderSubcode),
    /// 2: the OPEN was unacceptable.
    Open(OpenSubcode),
    /// 3: an UPDATE was malformed.
    Update(UpdateSubcode),
    /// 4: nothing heard for the hold time.
    HoldTimerExpired,
    /// 5: a message arrived in a state that does not allow it (RFC 6608 subcodes).
    FiniteStateMachine(u8),
    /// 6: the session is being closed on purpose.
    Cease(CeaseSubcode),
    /// 7: a malformed ROUTE-REFRESH (RFC 7313).
    RouteRefresh(u8),
    /// Any other code.
    Other {
        /// The code.
        code: u8,
        /// The subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// The (code, subcode) pair on the wire.
    pub fn pair(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.value()),
            ErrorCode::Open(s) => (2, s.value()),
            ErrorCode::Update(s) => (3, s.value()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::FiniteStateMachine(s) => (5, s),
            ErrorCode::Cease(s) => (6, s.value()),
            ErrorCode::RouteRefresh(s) => (7, s),
            ErrorCode::Other { code, subcode } => (code, subcode),
        }
    }

    /// The typed code for a wire pair.
    pub fn from_pair(code: u8, subcode: u8) -> Self {
        match code {
            1 => ErrorCode::MessageHeader(HeaderSubcode::from_value(subcode)),
            2 => ErrorCode::Open(OpenSubcode::from_value(subcode)),
            3 => ErrorCode::Update(UpdateSubcode::from_value(subcode)),
            4 if subcode == 0 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine(subcode),
            6 => ErrorCode::Cease(CeaseSubcode::from_value(subcode)),
            7 => ErrorCode::RouteRefresh(subcode),
            _ => ErrorCode::Other { code, subcode },
        }
    }

    /// A short stable name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::MessageHeader(_) => "message header error",
            ErrorCode::Open(OpenSubcode::BadPeerAs) => "bad peer AS",
            ErrorCode::Open(OpenSubcode::UnacceptableHoldTime) => "unacceptable hold time",
            ErrorCode::Open(OpenSubcode::UnsupportedVersionNumber) => "unsupported version",
            ErrorCode::Open(OpenSubcode::BadBgpIdentifier) => "bad BGP identifier",
            ErrorCode::Open(_) => "OPEN message error",
            ErrorCode::Update(_) => "UPDATE message error",
            ErrorCode::HoldTimerExpired => "hold timer expired",
            ErrorCode::FiniteStateMachine(_) => "finite state machine error",
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown) => "administrative shutdown",
            ErrorCode::Cease(CeaseSubcode::AdministrativeReset) => "administrative reset",
            ErrorCode::Cease(CeaseSubcode::PeerDeconfigured) => "peer de-configured",
            ErrorCode::Cease(_) => "cease",
            ErrorCode::RouteRefresh(_) => "ROUTE-REFRESH message error",
            ErrorCode::Other { .. } => "unknown error code",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, s) = self.pair();
        write!(f, "{} ({c}/{s})", self.name())
    }
}

/// A NOTIFICATION as received (borrowing its data) or about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    /// Code and subcode.
    pub code: ErrorCode,
    /// The data field, whose meaning depends on the code.
    pub data: &'a [u8],
}

impl<'a> Notification<'a> {
    /// Parses a NOTIFICATION body (after the header).
    pub(crate) fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Self {
                code: ErrorCode::from_pair(*code, *subcode),
                data,
            }),
            _ => Err(DecodeError::bad_length(
                super::MessageType::Notification,
                body.len() + 19,
            )),
        }
    }

    /// The RFC 8203 shutdown communication, for Administrative Shutdown/Reset: `None` when
    /// there is none or it is not well-formed UTF-8 of the stated length (logged raw then).
    pub fn shutdown_message(&self) -> Option<&'a str> {
        match self.code {
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown)
            | ErrorCode::Cease(CeaseSubcode::AdministrativeReset) => {}
            _ => return None,
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// A one-line human account for logs and the `last error` metric.
    pub fn describe(&self) -> String {
        match self.shutdown_message() {
            Some(m) if !m.is_empty() => format!("{}: {:?}", self.code, m),
            _ if self.data.is_empty() => self.code.to_string(),
            _ => format!("{} data {}", self.code, hex(self.data)),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().take(32).map(|x| format!("{x:02x}")).collect()
}

/// Appends a NOTIFICATION with raw data.
pub(crate) fn encode(code: ErrorCode, data: &[u8], out: &mut Vec<u8>) {
    let (c, s) = code.pair();
    let at = super::message::begin(super::MessageType::Notification, out);
    out.push(c);
    out.push(s);
    // The data is bounded by the caller (shutdown text ≤ 255, error data is a message excerpt).
    let room = super::MAX_LEN - (out.len() - at);
    out.extend_from_slice(&data[..data.len().min(room)]);
    super::message::finish(at, out);
}

/// The data field of an RFC 8203 Administrative Shutdown: a length octet and UTF-8 text,
/// truncated at a character boundary to fit 255 octets.
pub(crate) fn shutdown_data(message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut data = Vec::with_capacity(end + 1);
    data.push(end as u8);
    data.extend_from_slice(&message.as_bytes()[..end]);
    data
}

/// Appends a NOTIFICATION with `code` and raw `data` (truncated to fit one message).
pub fn encode_notification(code: ErrorCode, data: &[u8], out: &mut Vec<u8>) {
    encode(code, data, out);
}

/// Appends a Cease / Administrative Shutdown carrying `message` (RFC 8203).
pub fn encode_shutdown(message: &str, out: &mut Vec<u8>) {
    encode(
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
        &shutdown_data(message),
        out,
    );
}
