//! The one error every decode failure is: what was wrong, in words, and the NOTIFICATION
//! (code, subcode, data) RFC 4271 §6 says to answer it with.

use thiserror::Error;

use super::message::MessageType;
use super::notification::{ErrorCode, HeaderSubcode, OpenSubcode, UpdateSubcode};

/// A received message that cannot be accepted. The session sends [`DecodeError::code`] with
/// [`DecodeError::data`] to the peer and closes; `reason` goes to the log and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason} ({code})")]
pub struct DecodeError {
    /// The NOTIFICATION to answer with.
    pub code: ErrorCode,
    /// The NOTIFICATION's data field, as the RFC prescribes for this error.
    pub data: Vec<u8>,
    /// What was wrong, naming the message and field.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(code: ErrorCode, data: Vec<u8>, reason: impl Into<String>) -> Self {
        Self {
            code,
            data,
            reason: reason.into(),
        }
    }

    /// A length field out of range for the type; the data is the offending length (§6.1).
    pub(crate) fn bad_length(kind: MessageType, len: usize) -> Self {
        let l = u16::try_from(len).unwrap_or(u16::MAX);
        Self::new(
            ErrorCode::MessageHeader(HeaderSubcode::BadMessageLength),
            l.to_be_bytes().to_vec(),
            format!("{kind} message: length {len} is invalid for this type"),
        )
    }

    pub(crate) fn open(sub: OpenSubcode, data: Vec<u8>, reason: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::Open(sub),
            data,
            format!("OPEN message: {}", reason.into()),
        )
    }

    pub(crate) fn update(sub: UpdateSubcode, data: &[u8], reason: impl Into<String>) -> Self {
        // Attribute errors echo the attribute; cap it so the NOTIFICATION always fits.
        let data = data[..data.len().min(256)].to_vec();
        Self::new(
            ErrorCode::Update(sub),
            data,
            format!("UPDATE message: {}", reason.into()),
        )
    }
}
