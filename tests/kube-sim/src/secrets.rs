//! What the real server does to a Secret on every write: `type` defaults to `Opaque`,
//! write-only `stringData` is merged into `data` (base64-encoded, winning over `data` keys),
//! and `data` values must be base64, or the body cannot be decoded at all.

use serde_json::{json, Map, Value};

use crate::protobuf::base64;
use crate::status::ApiError;

/// Normalises a Secret about to be stored.
pub fn normalize(obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        map.insert("type".into(), json!("Opaque"));
    }
    let mut data = match map.remove("data") {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    for (key, value) in &data {
        let text = value.as_str().unwrap_or("");
        if let Some(at) = first_invalid_base64(text) {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {at} (data key {key:?})"
            )));
        }
    }
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or("");
            data.insert(key, Value::String(base64(text.as_bytes())));
        }
    }
    if !data.is_empty() {
        map.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

/// Where Go's `base64.StdEncoding` would stop reading `text`, if it is not valid padded
/// standard base64.
fn first_invalid_base64(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let is_alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let body = bytes.iter().take_while(|b| is_alphabet(**b)).count();
    let padding = bytes[body..].iter().take_while(|b| **b == b'=').count();
    if body + padding < bytes.len() {
        return Some(body + padding);
    }
    let valid_padding = match body % 4 {
        0 => padding == 0,
        2 => padding == 2,
        3 => padding == 1,
        _ => false,
    };
    if valid_padding {
        None
    } else {
        Some(
            bytes
                .len()
                .min(body + padding)
                .saturating_sub(usize::from(padding > 0)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_merges_into_data_and_type_defaults() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "z", "c": "héllo"}});
        normalize(&mut s).unwrap();
        assert_eq!(
            s,
            json!({"type": "Opaque", "data": {"a": "eA==", "b": "eg==", "c": "aMOpbGxv"}})
        );
        let mut t = json!({"type": "kubernetes.io/tls"});
        normalize(&mut t).unwrap();
        assert_eq!(t, json!({"type": "kubernetes.io/tls"}));
    }

    #[test]
    fn data_must_be_base64() {
        for ok in ["", "Zg==", "Zm8=", "Zm9v", "+/8="] {
            assert_eq!(first_invalid_base64(ok), None, "{ok}");
        }
        for bad in ["Zg", "Z", "Zm9v!", "a b", "Zg==Zg=="] {
            assert!(first_invalid_base64(bad).is_some(), "{bad}");
        }
        let err = normalize(&mut json!({"data": {"k": "not base64!"}})).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("illegal base64 data at input byte 3"),
            "{}",
            err.message
        );
        assert!(err.message.contains("\"k\""), "{}", err.message);
    }
}
