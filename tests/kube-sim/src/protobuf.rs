//! Decoding of the protobuf request bodies kubectl sends.
//!
//! client-go 1.32 typed clients prefer protobuf, so `kubectl create configmap`
//! and `kubectl create namespace` POST `application/vnd.kubernetes.protobuf`
//! and have no JSON fallback (a 415 makes kubectl fail). The server decodes
//! those bodies here into the JSON a JSON client would have sent and carries
//! on as usual; answering in JSON is fine for kubectl.
//!
//! The wire-format reader is hand-written (a varint, four wire types and
//! length checks) rather than pulling in prost and the generated Kubernetes
//! types for two messages. Every read is bounds-checked: malformed input is a
//! [`ProtobufError`], never a panic.

use serde_json::{Map, Value};

/// The four bytes (`"k8s\0"`) that prefix every Kubernetes protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
///
/// The server answers 415 Unsupported Media Type for
/// [`ProtobufError::UnsupportedKind`], [`ProtobufError::UnsupportedApiVersion`]
/// and [`ProtobufError::UnsupportedEncoding`], and 400 Bad Request for the
/// rest (the body is broken); see [`ProtobufError::is_unsupported`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `"k8s\0"`.
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\0\"")]
    MissingMagic,

    /// The body ends in the middle of a value.
    #[error("protobuf body is truncated: {what} at byte {offset} runs past the end")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset in the body where it started.
        offset: usize,
    },

    /// A varint is longer than 10 bytes or does not fit 64 bits.
    #[error("malformed varint at byte {offset}")]
    MalformedVarint {
        /// Byte offset in the body where it started.
        offset: usize,
    },

    /// A tag carries field number 0 or one above the protobuf maximum.
    #[error("invalid protobuf field number {field} at byte {offset}")]
    InvalidFieldNumber {
        /// The field number decoded from the tag.
        field: u64,
        /// Byte offset of the tag in the body.
        offset: usize,
    },

    /// A tag uses a wire type this reader does not support (the deprecated
    /// groups, 3 and 4) or that does not exist (6, 7).
    #[error("unsupported protobuf wire type {wire_type} for field {field} at byte {offset}")]
    UnsupportedWireType {
        /// The wire type from the tag.
        wire_type: u8,
        /// The field number from the tag.
        field: u32,
        /// Byte offset of the tag in the body.
        offset: usize,
    },

    /// A known field arrives with the wrong wire type for its declared type.
    #[error("field {field} of {message} at byte {offset} has the wrong wire type {wire_type}")]
    WrongWireType {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
        /// Byte offset of the tag in the body.
        offset: usize,
    },

    /// A string field is not valid UTF-8 and so cannot become JSON.
    #[error("field {field} of {message} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
        /// Byte offset of the tag in the body.
        offset: usize,
    },

    /// A timestamp lies outside the range a Kubernetes time can represent.
    #[error("field {field} of {message} at byte {offset} is an out-of-range timestamp")]
    InvalidTimestamp {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
        /// Byte offset of the tag in the body.
        offset: usize,
    },

    /// The body holds a kind this decoder does not know (everything except
    /// v1 ConfigMap and Namespace).
    #[error("decoding protobuf bodies of kind {0:?} is not supported; send JSON")]
    UnsupportedKind(String),

    /// A known kind arrives with an apiVersion other than `v1`.
    #[error("decoding protobuf bodies of {kind} in apiVersion {api_version:?} is not supported; send JSON")]
    UnsupportedApiVersion {
        /// The apiVersion from the body's type meta.
        api_version: String,
        /// The kind from the body's type meta.
        kind: String,
    },

    /// `runtime.Unknown.contentEncoding` is set (e.g. gzip); clients never do.
    #[error("protobuf bodies with content encoding {0:?} are not supported")]
    UnsupportedEncoding(String),
}

impl ProtobufError {
    /// True when the body is well formed but holds something kube-sim does
    /// not decode, so the server should answer 415 rather than 400.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ProtobufError::UnsupportedKind(_)
                | ProtobufError::UnsupportedApiVersion { .. }
                | ProtobufError::UnsupportedEncoding(_)
        )
    }
}

/// Decodes a `application/vnd.kubernetes.protobuf` request body into the JSON
/// object a JSON client would have sent for it.
///
/// Only `v1` `ConfigMap` and `Namespace` are supported, the kinds kubectl's
/// `create configmap` and `create namespace` generators POST. The Go encoder
/// writes every non-pointer field even when empty, so empty strings, zero
/// integers and zero timestamps are dropped here, as Go's `omitempty` JSON
/// would; `metadata` is always present and so is a Namespace's `spec`.
/// `binaryData` values become standard padded base64 like Go's `[]byte`.
/// Unknown fields of every wire type are skipped; `managedFields` and a
/// Namespace's `status` are ignored.
pub fn decode_k8s_protobuf(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let mut unknown = Reader::new(rest, MAGIC.len());
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw = Reader::new(&[], body.len());
    let mut content_encoding = String::new();
    const UNKNOWN: &str = "runtime.Unknown";
    while let Some(field) = unknown.next_field()? {
        match field.number {
            1 => {
                let mut type_meta = field.message(UNKNOWN)?;
                while let Some(inner) = type_meta.next_field()? {
                    match inner.number {
                        1 => api_version = inner.string("runtime.TypeMeta")?,
                        2 => kind = inner.string("runtime.TypeMeta")?,
                        _ => {}
                    }
                }
            }
            2 => raw = field.message(UNKNOWN)?,
            3 => content_encoding = field.string(UNKNOWN)?,
            _ => {}
        }
    }
    if kind != "ConfigMap" && kind != "Namespace" {
        return Err(ProtobufError::UnsupportedKind(kind));
    }
    if api_version != "v1" {
        return Err(ProtobufError::UnsupportedApiVersion { api_version, kind });
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(content_encoding));
    }
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    let is_config_map = kind == "ConfigMap";
    object.insert("kind".to_owned(), Value::String(kind));
    if is_config_map {
        decode_config_map(raw, &mut object)?;
    } else {
        decode_namespace(raw, &mut object)?;
    }
    Ok(Value::Object(object))
}

fn decode_config_map(
    mut raw: Reader<'_>,
    object: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    const MSG: &str = "ConfigMap";
    let mut meta = MetaBuilder::default();
    let mut data = Map::new();
    let mut binary_data = Map::new();
    let mut immutable = None;
    while let Some(field) = raw.next_field()? {
        match field.number {
            1 => meta.decode(field.message(MSG)?)?,
            2 => {
                let (key, value) =
                    decode_map_entry(field.message(MSG)?, "ConfigMap.DataEntry", false)?;
                data.insert(key, value);
            }
            3 => {
                let (key, value) =
                    decode_map_entry(field.message(MSG)?, "ConfigMap.BinaryDataEntry", true)?;
                binary_data.insert(key, value);
            }
            4 => immutable = Some(field.varint(MSG)? != 0),
            _ => {}
        }
    }
    object.insert("metadata".to_owned(), meta.finish());
    if !data.is_empty() {
        object.insert("data".to_owned(), Value::Object(data));
    }
    if !binary_data.is_empty() {
        object.insert("binaryData".to_owned(), Value::Object(binary_data));
    }
    if let Some(immutable) = immutable {
        object.insert("immutable".to_owned(), Value::Bool(immutable));
    }
    Ok(())
}

fn decode_namespace(
    mut raw: Reader<'_>,
    object: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    const MSG: &str = "Namespace";
    let mut meta = MetaBuilder::default();
    let mut finalizers = Vec::new();
    while let Some(field) = raw.next_field()? {
        match field.number {
            1 => meta.decode(field.message(MSG)?)?,
            2 => {
                let mut spec = field.message(MSG)?;
                while let Some(inner) = spec.next_field()? {
                    if inner.number == 1 {
                        finalizers.push(Value::String(inner.string("NamespaceSpec")?));
                    }
                }
            }
            _ => {}
        }
    }
    object.insert("metadata".to_owned(), meta.finish());
    let mut spec = Map::new();
    if !finalizers.is_empty() {
        spec.insert("finalizers".to_owned(), Value::Array(finalizers));
    }
    object.insert("spec".to_owned(), Value::Object(spec));
    Ok(())
}

/// Decodes one `map<string,string>` (or `map<string,bytes>` when `bytes`)
/// entry; absent key or value mean empty, as in protobuf.
fn decode_map_entry(
    mut entry: Reader<'_>,
    message: &'static str,
    bytes: bool,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    while let Some(field) = entry.next_field()? {
        match field.number {
            1 => key = field.string(message)?,
            2 if bytes => value = Value::String(base64(field.bytes(message)?)),
            2 => value = Value::String(field.string(message)?),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Accumulates `ObjectMeta`; protobuf merges repeated occurrences of an
/// embedded message, so `decode` may run more than once.
#[derive(Default)]
struct MetaBuilder {
    fields: Map<String, Value>,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    owner_references: Vec<Value>,
    finalizers: Vec<Value>,
}

impl MetaBuilder {
    fn decode(&mut self, mut meta: Reader<'_>) -> Result<(), ProtobufError> {
        const MSG: &str = "ObjectMeta";
        const STRINGS: [&str; 6] = [
            "name",
            "generateName",
            "namespace",
            "selfLink",
            "uid",
            "resourceVersion",
        ];
        while let Some(field) = meta.next_field()? {
            match field.number {
                n @ 1..=6 => {
                    let name = STRINGS[(n - 1) as usize];
                    set_or_clear(&mut self.fields, name, field.string(MSG)?);
                }
                7 => {
                    let generation = field.varint(MSG)? as i64;
                    if generation == 0 {
                        self.fields.remove("generation");
                    } else {
                        self.fields
                            .insert("generation".to_owned(), generation.into());
                    }
                }
                n @ (8 | 9) => {
                    let name = if n == 8 {
                        "creationTimestamp"
                    } else {
                        "deletionTimestamp"
                    };
                    match decode_time(&field, MSG)? {
                        Some(time) => self.fields.insert(name.to_owned(), Value::String(time)),
                        None => self.fields.remove(name),
                    };
                }
                10 => {
                    let seconds = field.varint(MSG)? as i64;
                    self.fields
                        .insert("deletionGracePeriodSeconds".to_owned(), seconds.into());
                }
                11 => {
                    let (k, v) =
                        decode_map_entry(field.message(MSG)?, "ObjectMeta.LabelsEntry", false)?;
                    self.labels.insert(k, v);
                }
                12 => {
                    let (k, v) = decode_map_entry(
                        field.message(MSG)?,
                        "ObjectMeta.AnnotationsEntry",
                        false,
                    )?;
                    self.annotations.insert(k, v);
                }
                13 => self
                    .owner_references
                    .push(decode_owner_reference(field.message(MSG)?)?),
                14 => self.finalizers.push(Value::String(field.string(MSG)?)),
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self) -> Value {
        let mut fields = self.fields;
        if !self.labels.is_empty() {
            fields.insert("labels".to_owned(), Value::Object(self.labels));
        }
        if !self.annotations.is_empty() {
            fields.insert("annotations".to_owned(), Value::Object(self.annotations));
        }
        if !self.owner_references.is_empty() {
            fields.insert(
                "ownerReferences".to_owned(),
                Value::Array(self.owner_references),
            );
        }
        if !self.finalizers.is_empty() {
            fields.insert("finalizers".to_owned(), Value::Array(self.finalizers));
        }
        Value::Object(fields)
    }
}

fn set_or_clear(map: &mut Map<String, Value>, key: &str, value: String) {
    if value.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), Value::String(value));
    }
}

fn decode_owner_reference(mut reference: Reader<'_>) -> Result<Value, ProtobufError> {
    const MSG: &str = "OwnerReference";
    let mut out = Map::new();
    while let Some(field) = reference.next_field()? {
        match field.number {
            1 => set_or_clear(&mut out, "kind", field.string(MSG)?),
            3 => set_or_clear(&mut out, "name", field.string(MSG)?),
            4 => set_or_clear(&mut out, "uid", field.string(MSG)?),
            5 => set_or_clear(&mut out, "apiVersion", field.string(MSG)?),
            6 => {
                out.insert(
                    "controller".to_owned(),
                    Value::Bool(field.varint(MSG)? != 0),
                );
            }
            7 => {
                out.insert(
                    "blockOwnerDeletion".to_owned(),
                    Value::Bool(field.varint(MSG)? != 0),
                );
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// Seconds since the epoch of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Decodes a `metav1.Time` into the RFC 3339 second-precision string its JSON
/// form uses; `None` for the zero time, which Go's JSON writes as `null` and
/// the server fills in anyway.
fn decode_time(field: &Field<'_>, message: &'static str) -> Result<Option<String>, ProtobufError> {
    let mut time = field.message(message)?;
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while let Some(inner) = time.next_field()? {
        match inner.number {
            1 => seconds = inner.varint("Timestamp")? as i64,
            // int32 travels sign-extended to 64 bits; truncation restores it.
            2 => nanos = inner.varint("Timestamp")? as i32,
            _ => {}
        }
    }
    if nanos == 0 && (seconds == 0 || seconds == GO_ZERO_TIME_SECONDS) {
        return Ok(None);
    }
    let invalid = || ProtobufError::InvalidTimestamp {
        message,
        field: field.number,
        offset: field.offset,
    };
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(invalid());
    }
    // The JSON form has whole seconds only; nanos are validated and dropped.
    let timestamp = jiff::Timestamp::from_second(seconds).map_err(|_| invalid())?;
    Ok(Some(timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// Standard, padded base64, the JSON encoding Go uses for `[]byte`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A bounds-checked cursor over one protobuf message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole body, so errors point at real bytes.
    base: usize,
}

/// One decoded field; its payload has already been consumed from the reader,
/// which is how unknown fields get skipped.
struct Field<'a> {
    number: u32,
    wire_type: u8,
    payload: Payload<'a>,
    offset: usize,
}

enum Payload<'a> {
    Varint(u64),
    Fixed64,
    Bytes { data: &'a [u8], offset: usize },
    Fixed32,
}

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let start = self.offset();
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtobufError::Truncated {
                    what: "varint",
                    offset: start,
                });
            };
            self.pos += 1;
            // The tenth byte may only contribute the 64th bit.
            if i == 9 && byte > 1 {
                return Err(ProtobufError::MalformedVarint { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::MalformedVarint { offset: start })
    }

    fn take(
        &mut self,
        len: usize,
        what: &'static str,
        start: usize,
    ) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or(ProtobufError::Truncated {
                what,
                offset: start,
            })?;
        let data = &self.buf[self.pos..end];
        self.pos = end;
        Ok(data)
    }

    /// Reads the next field, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<Field<'a>>, ProtobufError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let offset = self.offset();
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(ProtobufError::InvalidFieldNumber {
                field: number,
                offset,
            });
        }
        let number = number as u32;
        let wire_type = (tag & 7) as u8;
        let payload = match wire_type {
            WIRE_VARINT => Payload::Varint(self.varint()?),
            WIRE_FIXED64 => {
                self.take(8, "64-bit field", offset)?;
                Payload::Fixed64
            }
            WIRE_LEN => {
                let len = self.varint()?;
                let data_offset = self.offset();
                let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated {
                    what: "length-delimited field",
                    offset,
                })?;
                let data = self.take(len, "length-delimited field", offset)?;
                Payload::Bytes {
                    data,
                    offset: data_offset,
                }
            }
            WIRE_FIXED32 => {
                self.take(4, "32-bit field", offset)?;
                Payload::Fixed32
            }
            _ => {
                return Err(ProtobufError::UnsupportedWireType {
                    wire_type,
                    field: number,
                    offset,
                })
            }
        };
        Ok(Some(Field {
            number,
            wire_type,
            payload,
            offset,
        }))
    }
}

impl<'a> Field<'a> {
    fn wrong_type(&self, message: &'static str) -> ProtobufError {
        ProtobufError::WrongWireType {
            message,
            field: self.number,
            wire_type: self.wire_type,
            offset: self.offset,
        }
    }

    fn varint(&self, message: &'static str) -> Result<u64, ProtobufError> {
        match self.payload {
            Payload::Varint(v) => Ok(v),
            _ => Err(self.wrong_type(message)),
        }
    }

    fn bytes(&self, message: &'static str) -> Result<&'a [u8], ProtobufError> {
        match self.payload {
            Payload::Bytes { data, .. } => Ok(data),
            _ => Err(self.wrong_type(message)),
        }
    }

    fn string(&self, message: &'static str) -> Result<String, ProtobufError> {
        let data = self.bytes(message)?;
        String::from_utf8(data.to_vec()).map_err(|_| ProtobufError::InvalidUtf8 {
            message,
            field: self.number,
            offset: self.offset,
        })
    }

    fn message(&self, message: &'static str) -> Result<Reader<'a>, ProtobufError> {
        match self.payload {
            Payload::Bytes { data, offset } => Ok(Reader::new(data, offset)),
            _ => Err(self.wrong_type(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal protobuf writer, enough to build what client-go sends.
    #[derive(Default, Clone)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(mut self, field: u32, value: u64) -> Self {
            put_varint(&mut self.0, u64::from(field) << 3);
            put_varint(&mut self.0, value);
            self
        }
        fn bytes(mut self, field: u32, data: &[u8]) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 2);
            put_varint(&mut self.0, data.len() as u64);
            self.0.extend_from_slice(data);
            self
        }
        fn string(self, field: u32, s: &str) -> Self {
            self.bytes(field, s.as_bytes())
        }
        fn msg(self, field: u32, m: Msg) -> Self {
            self.bytes(field, &m.0)
        }
        fn fixed64(mut self, field: u32, v: u64) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 1);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn fixed32(mut self, field: u32, v: u32) -> Self {
            put_varint(&mut self.0, (u64::from(field) << 3) | 5);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn entry(self, field: u32, k: &str, v: &[u8]) -> Self {
            self.msg(field, Msg::default().string(1, k).bytes(2, v))
        }
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// ObjectMeta as client-go's generated marshaller writes it: every
    /// non-pointer field, empty ones included.
    fn object_meta(name: &str, namespace: &str) -> Msg {
        Msg::default()
            .string(1, name)
            .string(2, "")
            .string(3, namespace)
            .string(4, "")
            .string(5, "")
            .string(6, "")
            .varint(7, 0)
            .msg(8, Msg::default())
    }

    fn envelope(api_version: &str, kind: &str, raw: Msg) -> Vec<u8> {
        let unknown = Msg::default()
            .msg(1, Msg::default().string(1, api_version).string(2, kind))
            .msg(2, raw)
            .string(3, "")
            .string(4, "");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        body
    }

    /// `kubectl create configmap cm1 --from-literal=a=1 --from-literal=b=two`
    fn kubectl_configmap_body() -> Vec<u8> {
        let raw = Msg::default()
            .msg(1, object_meta("cm1", "default"))
            .entry(2, "a", b"1")
            .entry(2, "b", b"two");
        envelope("v1", "ConfigMap", raw)
    }

    /// `kubectl create namespace ns9`
    fn kubectl_namespace_body() -> Vec<u8> {
        let raw = Msg::default()
            .msg(1, object_meta("ns9", ""))
            .msg(2, Msg::default())
            .msg(3, Msg::default().string(1, ""));
        envelope("v1", "Namespace", raw)
    }

    #[test]
    fn kubectl_create_configmap() {
        let body = kubectl_configmap_body();
        assert_eq!(&body[..4], &[0x6b, 0x38, 0x73, 0x00]);
        assert_eq!(
            decode_k8s_protobuf(&body).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "namespace": "default"},
                   "data": {"a": "1", "b": "two"}})
        );
    }

    #[test]
    fn kubectl_create_namespace() {
        assert_eq!(
            decode_k8s_protobuf(&kubectl_namespace_body()).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "ns9"}, "spec": {}})
        );
    }

    #[test]
    fn namespace_spec_finalizers() {
        let raw = Msg::default().msg(1, object_meta("ns1", "")).msg(
            2,
            Msg::default()
                .string(1, "kubernetes")
                .string(1, "example.io/x"),
        );
        assert_eq!(
            decode_k8s_protobuf(&envelope("v1", "Namespace", raw)).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"},
                   "spec": {"finalizers": ["kubernetes", "example.io/x"]}})
        );
    }

    #[test]
    fn full_object_meta_and_configmap_fields() {
        let owner = Msg::default()
            .string(1, "Service")
            .string(3, "web")
            .string(4, "u-1")
            .string(5, "v1")
            .varint(6, 1)
            .varint(7, 0);
        let meta = Msg::default()
            .string(1, "cm2")
            .string(2, "cm-")
            .string(3, "ns")
            .string(5, "uid-9")
            .string(6, "42")
            .varint(7, 3)
            .msg(8, Msg::default().varint(1, 1_704_067_200).varint(2, 500))
            .msg(9, Msg::default().varint(1, 1_704_067_230))
            .varint(10, 0)
            .entry(11, "app", b"web")
            .entry(11, "tier", b"fe")
            .entry(12, "note", b"x y")
            .msg(13, owner)
            .string(14, "example.io/cleanup")
            .msg(17, Msg::default().string(1, "kubectl").string(3, "Update"));
        let raw = Msg::default()
            .msg(1, meta)
            .entry(3, "blob", &[0, 1, 2, 0xfe, 0xff])
            .entry(3, "e", b"")
            .varint(4, 1);
        assert_eq!(
            decode_k8s_protobuf(&envelope("v1", "ConfigMap", raw)).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {
                       "name": "cm2", "generateName": "cm-", "namespace": "ns",
                       "uid": "uid-9", "resourceVersion": "42", "generation": 3,
                       "creationTimestamp": "2024-01-01T00:00:00Z",
                       "deletionTimestamp": "2024-01-01T00:00:30Z",
                       "deletionGracePeriodSeconds": 0,
                       "labels": {"app": "web", "tier": "fe"},
                       "annotations": {"note": "x y"},
                       "ownerReferences": [{"kind": "Service", "name": "web", "uid": "u-1",
                                            "apiVersion": "v1", "controller": true,
                                            "blockOwnerDeletion": false}],
                       "finalizers": ["example.io/cleanup"]},
                   "binaryData": {"blob": "AAEC/v8=", "e": ""},
                   "immutable": true})
        );
    }

    #[test]
    fn go_zero_time_and_negative_int64() {
        let meta = Msg::default()
            .string(1, "x")
            .msg(8, Msg::default().varint(1, GO_ZERO_TIME_SECONDS as u64))
            .varint(10, (-5i64) as u64);
        let out = decode_k8s_protobuf(&envelope("v1", "ConfigMap", Msg::default().msg(1, meta)))
            .expect("decodes");
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "x", "deletionGracePeriodSeconds": -5}})
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let meta = object_meta("cm1", "default")
            .varint(999, u64::MAX)
            .fixed64(16, 7)
            .fixed32(18, 9)
            .bytes(100_000, b"\xff\xfe not utf8");
        let raw = Msg::default()
            .fixed32(9, 1)
            .msg(1, meta)
            .varint(50, 300)
            .entry(2, "a", b"1")
            .fixed64(51, u64::MAX);
        let unknown = Msg::default()
            .varint(7, 1)
            .msg(
                1,
                Msg::default()
                    .string(1, "v1")
                    .fixed64(3, 0)
                    .string(2, "ConfigMap"),
            )
            .fixed32(8, 0)
            .msg(2, raw)
            .bytes(9, b"junk");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        assert_eq!(
            decode_k8s_protobuf(&body).expect("decodes"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm1", "namespace": "default"},
                   "data": {"a": "1"}})
        );
    }

    #[test]
    fn repeated_metadata_messages_merge() {
        let raw = Msg::default()
            .msg(1, Msg::default().string(1, "first").entry(11, "a", b"1"))
            .msg(1, Msg::default().string(3, "ns").entry(11, "b", b"2"));
        assert_eq!(
            decode_k8s_protobuf(&envelope("v1", "ConfigMap", raw)).expect("decodes")["metadata"],
            json!({"name": "first", "namespace": "ns", "labels": {"a": "1", "b": "2"}})
        );
    }

    #[test]
    fn unsupported_kinds_and_versions() {
        let raw = Msg::default().msg(1, object_meta("s", "default"));
        let err = decode_k8s_protobuf(&envelope("v1", "Secret", raw.clone())).expect_err("Secret");
        assert_eq!(err, ProtobufError::UnsupportedKind("Secret".to_owned()));
        assert!(err.is_unsupported());
        let err = decode_k8s_protobuf(&envelope("v2", "ConfigMap", raw.clone())).expect_err("v2");
        assert!(
            matches!(err, ProtobufError::UnsupportedApiVersion { .. }),
            "{err}"
        );
        let err = decode_k8s_protobuf(&envelope("", "", raw)).expect_err("no type meta");
        assert_eq!(err, ProtobufError::UnsupportedKind(String::new()));
    }

    #[test]
    fn content_encoding_is_rejected() {
        let unknown = Msg::default()
            .msg(1, Msg::default().string(1, "v1").string(2, "ConfigMap"))
            .msg(2, Msg::default())
            .string(3, "gzip");
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown.0);
        assert_eq!(
            decode_k8s_protobuf(&body),
            Err(ProtobufError::UnsupportedEncoding("gzip".to_owned()))
        );
    }

    #[test]
    fn malformed_bodies() {
        assert_eq!(
            decode_k8s_protobuf(b"{\"kind\":1}"),
            Err(ProtobufError::MissingMagic)
        );
        assert_eq!(
            decode_k8s_protobuf(b"k8s"),
            Err(ProtobufError::MissingMagic)
        );

        let with_magic = |rest: &[u8]| {
            let mut body = MAGIC.to_vec();
            body.extend_from_slice(rest);
            decode_k8s_protobuf(&body)
        };
        // Field number 0.
        assert!(matches!(
            with_magic(&[0x00, 0x00]),
            Err(ProtobufError::InvalidFieldNumber { .. })
        ));
        // Group wire types.
        assert!(matches!(
            with_magic(&[0x0b]),
            Err(ProtobufError::UnsupportedWireType { wire_type: 3, .. })
        ));
        assert!(matches!(
            with_magic(&[0x0f]),
            Err(ProtobufError::UnsupportedWireType { wire_type: 7, .. })
        ));
        // 11-byte varint, and a 10th byte carrying more than the 64th bit.
        assert!(matches!(
            with_magic(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(ProtobufError::MalformedVarint { .. })
        ));
        assert!(matches!(
            with_magic(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(ProtobufError::MalformedVarint { .. })
        ));
        // Length past the end, including one that overflows usize arithmetic.
        assert!(matches!(
            with_magic(&[0x12, 0x05, 0x00]),
            Err(ProtobufError::Truncated { .. })
        ));
        assert!(matches!(
            with_magic(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(ProtobufError::Truncated { .. })
        ));
        // typeMeta sent as a varint.
        assert!(matches!(
            with_magic(&[0x08, 0x01]),
            Err(ProtobufError::WrongWireType { field: 1, .. })
        ));
        // Kind that is not UTF-8.
        let bad_kind = Msg::default().msg(1, Msg::default().bytes(2, &[0xff]));
        assert!(matches!(
            with_magic(&bad_kind.0),
            Err(ProtobufError::InvalidUtf8 { field: 2, .. })
        ));
        // Timestamp with out-of-range nanos.
        let meta = Msg::default().msg(8, Msg::default().varint(1, 10).varint(2, 2_000_000_000));
        let body = envelope("v1", "ConfigMap", Msg::default().msg(1, meta));
        assert!(matches!(
            decode_k8s_protobuf(&body),
            Err(ProtobufError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn error_offsets_point_into_the_whole_body() {
        // A truncated data entry inside raw inside the envelope.
        let mut body = kubectl_configmap_body();
        // Layout tail: ... 12 03 't' 'w' 'o' | 1a 00 | 22 00; make the length
        // of "two" run far past the end of its entry.
        let len_byte = body.len() - 8;
        assert_eq!(body[len_byte], 3);
        body[len_byte] = 0x7f;
        match decode_k8s_protobuf(&body) {
            Err(ProtobufError::Truncated { offset, .. }) => {
                assert!(offset > 4 && offset < body.len(), "offset {offset}");
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[test]
    fn base64_matches_go_std_encoding() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xfb\xff", "+/8="),
        ] {
            assert_eq!(base64(input), expected);
        }
    }

    /// A small deterministic generator, so the "fuzz" test is reproducible
    /// without a dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn no_input_panics() {
        for valid in [kubectl_configmap_body(), kubectl_namespace_body()] {
            for end in 0..valid.len() {
                let _ = decode_k8s_protobuf(&valid[..end]);
            }
            let mut state = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..5_000 {
                let mut mutated = valid.clone();
                let i = (xorshift(&mut state) as usize) % mutated.len();
                mutated[i] = xorshift(&mut state) as u8;
                let _ = decode_k8s_protobuf(&mutated);
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            let len = (xorshift(&mut state) % 64) as usize;
            let mut body = MAGIC.to_vec();
            body.extend((0..len).map(|_| xorshift(&mut state) as u8));
            let _ = decode_k8s_protobuf(&body);
            let _ = decode_k8s_protobuf(&body[4..]);
        }
    }

    #[test]
    fn strict_prefixes_of_a_valid_body_never_decode_to_the_full_object() {
        let body = kubectl_configmap_body();
        let full = decode_k8s_protobuf(&body).expect("decodes");
        // The last four bytes are the empty contentEncoding/contentType
        // fields, whose absence legitimately changes nothing.
        for end in 4..body.len() - 4 {
            if let Ok(partial) = decode_k8s_protobuf(&body[..end]) {
                assert_ne!(partial, full, "prefix of {end} bytes");
            }
        }
    }
}
