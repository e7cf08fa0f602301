//! The protobuf wire format read exactly as the Go code the real API server runs
//! (gogo-protobuf `generated.pb.go` `Unmarshal` and `skipGenerated`), so a malformed body is
//! rejected with the same words, and every read is bounds-checked: no input panics.

/// A wire-level decoding error, with the text the real server's Go code produces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A value runs past the end of its message (`io.ErrUnexpectedEOF`).
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// A varint has more than ten bytes (`ErrIntOverflowGenerated`).
    #[error("proto: integer overflow")]
    IntegerOverflow,
    /// A length is negative as a Go `int` (`ErrInvalidLengthGenerated`).
    #[error("proto: negative length found during unmarshaling")]
    NegativeLength,
    /// An end-group tag without a start (`ErrUnexpectedEndOfGroupGenerated`).
    #[error("proto: unexpected end of group")]
    UnexpectedEndOfGroup,
    /// An unknown field with wire type 6 or 7.
    #[error("proto: illegal wireType {0}")]
    IllegalWireType(u8),
    /// An end-group tag where a field of `message` should start.
    #[error("proto: {message}: wiretype end group for non-group")]
    EndGroupForNonGroup {
        /// Go type name of the message being decoded.
        message: &'static str,
    },
    /// A tag with field number zero or negative (as a Go `int32`).
    #[error("proto: {message}: illegal tag {field} (wire type {tag})")]
    IllegalTag {
        /// Go type name of the message being decoded.
        message: &'static str,
        /// The field number as Go reads it.
        field: i32,
        /// The whole tag varint (Go prints it where it means the wire type).
        tag: u64,
    },
    /// A known field with the wrong wire type.
    #[error("proto: wrong wireType = {wire_type} for field {field}")]
    WrongWireType {
        /// The wire type found.
        wire_type: u8,
        /// Go name of the field.
        field: &'static str,
    },
    /// Messages nested deeper than any Kubernetes type (kube-sim's own guard).
    #[error("proto: messages nested more than {0} deep")]
    TooDeep(usize),
}

/// Wire types.
pub const VARINT: u8 = 0;
/// 64-bit fixed.
pub const FIXED64: u8 = 1;
/// Length-delimited.
pub const LEN: u8 = 2;
/// Start group (deprecated).
pub const START_GROUP: u8 = 3;
/// End group (deprecated).
pub const END_GROUP: u8 = 4;
/// 32-bit fixed.
pub const FIXED32: u8 = 5;

/// A cursor over one message's bytes.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A field tag as Go splits it.
#[derive(Debug, Clone, Copy)]
pub struct Tag {
    /// `int32(tag >> 3)`.
    pub field: i32,
    /// `tag & 7`.
    pub wire_type: u8,
    /// The raw tag varint.
    pub raw: u64,
    /// Where the tag starts, for skipping.
    pub start: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Whether the whole message has been read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint as Go's generated loop reads it: at most ten bytes, bits past 64 dropped.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            if shift >= 64 {
                return Err(WireError::IntegerOverflow);
            }
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(WireError::UnexpectedEof);
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// The next tag, unchecked (map entries accept any).
    pub fn raw_tag(&mut self) -> Result<Tag, WireError> {
        let start = self.pos;
        let raw = self.varint()?;
        Ok(Tag {
            field: (raw >> 3) as i32,
            wire_type: (raw & 7) as u8,
            raw,
            start,
        })
    }

    /// The next tag; rejects end-group and non-positive field numbers for `message`.
    pub fn tag(&mut self, message: &'static str) -> Result<Tag, WireError> {
        let Tag {
            field,
            wire_type,
            raw,
            start,
        } = self.raw_tag()?;
        if wire_type == END_GROUP {
            return Err(WireError::EndGroupForNonGroup { message });
        }
        if field <= 0 {
            return Err(WireError::IllegalTag {
                message,
                field,
                tag: raw,
            });
        }
        Ok(Tag {
            field,
            wire_type,
            raw,
            start,
        })
    }

    /// A length prefix and the bytes it covers.
    pub fn len_prefixed(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        // Go reads the length into an `int`: anything above i64::MAX is negative.
        let len = i64::try_from(len).map_err(|_| WireError::NegativeLength)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .ok_or(WireError::NegativeLength)?;
        if end > self.buf.len() {
            return Err(WireError::UnexpectedEof);
        }
        let data = &self.buf[self.pos..end];
        self.pos = end;
        Ok(data)
    }

    /// Skips the field whose tag starts at `tag.start`, as `skipGenerated` does (groups
    /// included).
    pub fn skip(&mut self, tag: &Tag) -> Result<(), WireError> {
        self.pos = tag.start;
        let mut depth = 0usize;
        loop {
            if self.at_end() {
                return Err(WireError::UnexpectedEof);
            }
            let raw = self.varint()?;
            match (raw & 7) as u8 {
                VARINT => {
                    self.varint()?;
                }
                FIXED64 => self.advance(8)?,
                LEN => {
                    self.len_prefixed()?;
                }
                START_GROUP => depth += 1,
                END_GROUP => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(WireError::UnexpectedEndOfGroup)?;
                }
                FIXED32 => self.advance(4)?,
                other => return Err(WireError::IllegalWireType(other)),
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::UnexpectedEof)?;
        if end > self.buf.len() {
            return Err(WireError::UnexpectedEof);
        }
        self.pos = end;
        Ok(())
    }
}
