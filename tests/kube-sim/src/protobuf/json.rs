//! Schema-driven protobuf-to-JSON: decodes one message of the generated schema into the JSON
//! the real server would write after decoding it into its Go struct (Go's `encoding/json`
//! rules: `omitempty` drops zero scalars, empty slices and maps; structs are always written;
//! pointers are written when set). Repeated occurrences of a singular message merge, as in Go.

use serde_json::{Map, Value};

use super::schema::MESSAGES;
use super::schema_types::{Field, Message, Rule, Ty};
use super::wire::{Cursor, WireError, LEN, VARINT};

/// No Kubernetes type nests this deep; the guard keeps hostile input off the stack.
const MAX_DEPTH: usize = 64;

/// Decodes message `id` from the concatenation of `chunks` (how protobuf merges repeated
/// occurrences of a message field).
pub fn decode_message(id: u16, chunks: &[&[u8]], depth: usize) -> Result<Value, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let msg = message(id);
    let mut slots: Vec<Slot<'_>> = msg.fields.iter().map(|_| Slot::Absent).collect();
    for chunk in chunks {
        let mut cur = Cursor::new(chunk);
        while !cur.at_end() {
            let tag = cur.tag(msg.name)?;
            let Some(i) = msg
                .fields
                .iter()
                .position(|f| i64::from(f.number) == i64::from(tag.field))
            else {
                cur.skip(&tag)?;
                continue;
            };
            let field = &msg.fields[i];
            read_field(field, tag.wire_type, &mut cur, &mut slots[i], depth)?;
        }
    }
    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        emit(field, slot, &mut out, depth)?;
    }
    Ok(Value::Object(out))
}

fn message(id: u16) -> &'static Message {
    // The generator only writes indices of messages it also writes.
    &MESSAGES[usize::from(id)]
}

/// What the wire said about one field so far.
enum Slot<'a> {
    Absent,
    /// A scalar or special value (last occurrence wins).
    Value(Value),
    /// The occurrences of a singular message, merged when emitted.
    Chunks(Vec<&'a [u8]>),
    /// Elements of a repeated field.
    List(Vec<Value>),
    /// Entries of a map field.
    Entries(Map<String, Value>),
}

fn wrong(wire_type: u8, field: &Field) -> WireError {
    WireError::WrongWireType {
        wire_type,
        field: field.go_name,
    }
}

fn expected_wire_type(ty: Ty) -> u8 {
    match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => VARINT,
        _ => LEN,
    }
}

fn read_field<'a>(
    field: &Field,
    wire_type: u8,
    cur: &mut Cursor<'a>,
    slot: &mut Slot<'a>,
    depth: usize,
) -> Result<(), WireError> {
    let expected = expected_wire_type(field.ty);
    match field.rule {
        Rule::Map => {
            if wire_type != LEN {
                return Err(wrong(wire_type, field));
            }
            let entry = cur.len_prefixed()?;
            let (k, v) = map_entry(field, entry, depth)?;
            if !matches!(slot, Slot::Entries(_)) {
                *slot = Slot::Entries(Map::new());
            }
            if let Slot::Entries(m) = slot {
                m.insert(k, v);
            }
        }
        Rule::Repeated => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            let Slot::List(list) = slot else {
                return Ok(());
            };
            if expected == VARINT && wire_type == LEN {
                // Packed repeated varints.
                let mut packed = Cursor::new(cur.len_prefixed()?);
                while !packed.at_end() {
                    list.push(scalar_from_varint(field.ty, packed.varint()?));
                }
            } else if wire_type != expected {
                return Err(wrong(wire_type, field));
            } else {
                list.push(read_value(field.ty, cur, depth)?);
            }
        }
        _ => {
            if wire_type != expected {
                return Err(wrong(wire_type, field));
            }
            if let Ty::Message(_) = field.ty {
                let data = cur.len_prefixed()?;
                match slot {
                    Slot::Chunks(c) => c.push(data),
                    _ => *slot = Slot::Chunks(vec![data]),
                }
            } else {
                *slot = Slot::Value(read_value(field.ty, cur, depth)?);
            }
        }
    }
    Ok(())
}

/// A `map<string, V>` entry. As in Go's generated code, keys and values are read as
/// length-delimited whatever their tag's wire type, and other fields are skipped.
fn map_entry(field: &Field, entry: &[u8], depth: usize) -> Result<(String, Value), WireError> {
    let mut cur = Cursor::new(entry);
    let mut key = String::new();
    let mut value = None;
    while !cur.at_end() {
        let tag = cur.raw_tag()?;
        match tag.raw >> 3 {
            1 => key = go_string(cur.len_prefixed()?),
            2 => value = Some(value_from_bytes(field.ty, cur.len_prefixed()?, depth)?),
            _ => cur.skip(&tag)?,
        }
    }
    let value = match value {
        Some(v) => v,
        None => zero_of(field.ty, depth)?,
    };
    Ok((key, value))
}

fn read_value(ty: Ty, cur: &mut Cursor<'_>, depth: usize) -> Result<Value, WireError> {
    match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => Ok(scalar_from_varint(ty, cur.varint()?)),
        _ => value_from_bytes(ty, cur.len_prefixed()?, depth),
    }
}

fn scalar_from_varint(ty: Ty, v: u64) -> Value {
    match ty {
        Ty::Bool => Value::Bool(v != 0),
        // Go truncates to the field's width.
        Ty::Int32 => Value::from(v as i32),
        _ => Value::from(v as i64),
    }
}

/// Go converts bytes to a string unchecked; its JSON encoder then replaces invalid UTF-8.
fn go_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn value_from_bytes(ty: Ty, data: &[u8], depth: usize) -> Result<Value, WireError> {
    match ty {
        Ty::String => Ok(Value::String(go_string(data))),
        Ty::Bytes => Ok(Value::String(base64(data))),
        Ty::Message(id) => decode_message(id, &[data], depth + 1),
        Ty::Time => Ok(time(data, false)?.map_or(Value::Null, Value::String)),
        Ty::MicroTime => Ok(time(data, true)?.map_or(Value::Null, Value::String)),
        Ty::IntOrString => int_or_string(data),
        Ty::Quantity => quantity(data),
        Ty::RawJson => raw_json(data),
        // Scalars in a map value or a length-delimited slot: read the varint inside.
        other => {
            let mut cur = Cursor::new(data);
            read_value(other, &mut cur, depth)
        }
    }
}

/// The Go zero value's JSON for a field without `omitempty` that was not on the wire.
fn zero_of(ty: Ty, depth: usize) -> Result<Value, WireError> {
    Ok(match ty {
        Ty::String => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 | Ty::IntOrString => Value::from(0),
        Ty::Message(id) => decode_message(id, &[], depth + 1)?,
        Ty::Quantity => Value::String("0".into()),
        Ty::Bytes | Ty::Time | Ty::MicroTime | Ty::RawJson => Value::Null,
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn emit(
    field: &Field,
    slot: Slot<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), WireError> {
    let value = match slot {
        Slot::Absent => match field.rule {
            Rule::Always | Rule::OmitEmpty | Rule::Inline if matches!(field.ty, Ty::Message(_)) => {
                // Go writes struct values even when empty.
                Some(zero_of(field.ty, depth)?)
            }
            Rule::Always => Some(zero_of(field.ty, depth)?),
            _ => None,
        },
        Slot::Value(v) => match field.rule {
            Rule::OmitEmpty if is_zero(&v) => None,
            _ => Some(v),
        },
        Slot::Chunks(chunks) => {
            let Ty::Message(id) = field.ty else {
                return Ok(());
            };
            Some(decode_message(id, &chunks, depth + 1)?)
        }
        Slot::List(list) => (!list.is_empty()).then_some(Value::Array(list)),
        Slot::Entries(m) => (!m.is_empty()).then_some(Value::Object(m)),
    };
    let Some(value) = value else {
        return Ok(());
    };
    if value.is_null() {
        // Zero times and empty raw JSON: the server fills or drops them; JSON `null` adds nothing.
        return Ok(());
    }
    if field.rule == Rule::Inline {
        if let Value::Object(m) = value {
            out.extend(m);
        }
        return Ok(());
    }
    out.insert(field.json_name.to_owned(), value);
    Ok(())
}

/// Seconds since the epoch of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// `metav1.Time`/`MicroTime`: `{seconds=1, nanos=2}`; `None` for the zero time (Go writes
/// `null`). Out-of-range nanos carry into seconds, as Go's `time.Unix` does.
fn time(data: &[u8], micro: bool) -> Result<Option<String>, WireError> {
    const NAME: &str = "Timestamp";
    let mut cur = Cursor::new(data);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !cur.at_end() {
        let tag = cur.tag(NAME)?;
        match tag.field {
            1 | 2 if tag.wire_type != VARINT => {
                return Err(WireError::WrongWireType {
                    wire_type: tag.wire_type,
                    field: if tag.field == 1 { "Seconds" } else { "Nanos" },
                })
            }
            1 => seconds = cur.varint()? as i64,
            2 => nanos = cur.varint()? as i32,
            _ => cur.skip(&tag)?,
        }
    }
    if data.is_empty() || (nanos == 0 && (seconds == 0 || seconds == GO_ZERO_TIME_SECONDS)) {
        return Ok(None);
    }
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let Ok(ts) = jiff::Timestamp::from_nanosecond(total) else {
        // Go could not write this time as JSON either ("year outside of range").
        return Ok(None);
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S.%6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Some(ts.strftime(format).to_string()))
}

fn int_or_string(data: &[u8]) -> Result<Value, WireError> {
    const NAME: &str = "IntOrString";
    let mut cur = Cursor::new(data);
    let (mut ty, mut int_val, mut str_val) = (0i64, 0i32, String::new());
    while !cur.at_end() {
        let tag = cur.tag(NAME)?;
        let check = |want: u8, go: &'static str| {
            if tag.wire_type == want {
                Ok(())
            } else {
                Err(WireError::WrongWireType {
                    wire_type: tag.wire_type,
                    field: go,
                })
            }
        };
        match tag.field {
            1 => {
                check(VARINT, "Type")?;
                ty = cur.varint()? as i64;
            }
            2 => {
                check(VARINT, "IntVal")?;
                int_val = cur.varint()? as i32;
            }
            3 => {
                check(LEN, "StrVal")?;
                str_val = go_string(cur.len_prefixed()?);
            }
            _ => cur.skip(&tag)?,
        }
    }
    Ok(if ty == 1 {
        Value::String(str_val)
    } else {
        Value::from(int_val)
    })
}

fn quantity(data: &[u8]) -> Result<Value, WireError> {
    let mut cur = Cursor::new(data);
    let mut text = String::new();
    while !cur.at_end() {
        let tag = cur.tag("Quantity")?;
        if tag.field == 1 {
            if tag.wire_type != LEN {
                return Err(WireError::WrongWireType {
                    wire_type: tag.wire_type,
                    field: "String_",
                });
            }
            text = go_string(cur.len_prefixed()?);
        } else {
            cur.skip(&tag)?;
        }
    }
    Ok(Value::String(text))
}

/// `RawExtension`/`FieldsV1` carry JSON bytes; anything else is dropped (Go would fail to
/// write the object back).
fn raw_json(data: &[u8]) -> Result<Value, WireError> {
    let mut cur = Cursor::new(data);
    let mut raw: &[u8] = &[];
    while !cur.at_end() {
        let tag = cur.tag("RawExtension")?;
        if tag.field == 1 {
            if tag.wire_type != LEN {
                return Err(WireError::WrongWireType {
                    wire_type: tag.wire_type,
                    field: "Raw",
                });
            }
            raw = cur.len_prefixed()?;
        } else {
            cur.skip(&tag)?;
        }
    }
    Ok(serde_json::from_slice(raw).unwrap_or(Value::Null))
}

/// Standard, padded base64, the JSON encoding Go uses for `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
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
