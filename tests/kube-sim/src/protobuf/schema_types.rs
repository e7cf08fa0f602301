//! The shape of the generated protobuf schema (`schema.rs`): for each message, its fields'
//! numbers, Go names (which the real server's decoding errors quote), JSON names, types, and
//! the Go JSON rule that decides whether an absent or empty field is written.

/// A kind a protobuf body may carry at the top level.
#[derive(Debug)]
pub struct Root {
    /// `apiVersion` in the body's type meta.
    pub api_version: &'static str,
    /// `kind` in the body's type meta.
    pub kind: &'static str,
    /// Index of its message in `MESSAGES`.
    pub message: u16,
}

/// One protobuf message (one Go struct).
#[derive(Debug)]
pub struct Message {
    /// Go type name, as the real server's errors name it.
    pub name: &'static str,
    /// Fields in field-number order.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// Protobuf field number.
    pub number: u32,
    /// Go field name (`proto: wrong wireType = 0 for field Name`).
    pub go_name: &'static str,
    /// JSON key; empty for embedded structs whose fields are inlined.
    pub json_name: &'static str,
    /// Value type (of the elements, for repeated fields and map values).
    pub ty: Ty,
    /// Cardinality and JSON emptiness rule.
    pub rule: Rule,
}

/// Value types, by how they travel and how their JSON looks. (Only those the served kinds
/// use; the generator's output stops compiling if a new kind needs another.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `string` (JSON string).
    String,
    /// `bytes` (JSON standard base64).
    Bytes,
    /// `bool`.
    Bool,
    /// `int32` (varint, truncated to 32 bits as Go does).
    Int32,
    /// `int64`.
    Int64,
    /// A nested message, by index in `MESSAGES`.
    Message(u16),
    /// `metav1.Time`: `{seconds=1, nanos=2}`, JSON RFC 3339 to the second.
    Time,
    /// `metav1.MicroTime`: like Time, JSON to the microsecond.
    MicroTime,
    /// `intstr.IntOrString`: `{type=1, intVal=2, strVal=3}`, JSON number or string.
    IntOrString,
    /// `resource.Quantity`: `{string=1}`, JSON string.
    Quantity,
    /// `runtime.RawExtension`/`FieldsV1`: `{raw=1}` holding JSON, embedded as is.
    RawJson,
}

/// How a field is held in Go, which decides its JSON when absent or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A value field without `omitempty`: always written (zero when absent).
    Always,
    /// A value field with `omitempty`: written unless zero (structs are always written).
    OmitEmpty,
    /// A pointer: written exactly when present on the wire, even if zero.
    Pointer,
    /// A slice: written when non-empty.
    Repeated,
    /// A `map[string]V` (entries `key=1`, `value=2`): written when non-empty.
    Map,
    /// An embedded struct whose fields JSON writes into the parent object.
    Inline,
}
