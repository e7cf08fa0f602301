//! One Event storage behind two APIs: events written through `events.k8s.io/v1` (kube-runtime's
//! Recorder) must show up in `kubectl describe`, which reads core/v1. We store the core/v1 form
//! and convert with the field mapping the real server uses.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs that only differ in name.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Fields with the same name in both versions.
const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reason",
    "type",
    "action",
    "related",
    "reportingInstance",
];

fn convert(
    obj: &Value,
    api_version: &str,
    from_to: impl Iterator<Item = (&'static str, &'static str)>,
) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for f in SHARED {
        if let Some(v) = obj.get(*f) {
            out.insert((*f).into(), v.clone());
        }
    }
    for (from, to) in from_to {
        if let Some(v) = obj.get(from) {
            out.insert(to.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The longest `note` an Event created through events.k8s.io/v1 may have, in bytes (the real
/// server's `NoteLengthLimit`; core/v1 creates are exempt for backward compatibility).
pub const NOTE_LENGTH_LIMIT: usize = 1024;

/// The strict checks the real server applies to an Event created through events.k8s.io/v1
/// (`ValidateEventCreate`), on its storage form: a note over [`NOTE_LENGTH_LIMIT`] bytes is a
/// 422 naming the core field, `message`, exactly as the real server words it.
pub fn validate_v1_create(core: &Value, name: &str) -> Result<(), crate::status::ApiError> {
    let len = core
        .get("message")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    if len > NOTE_LENGTH_LIMIT {
        return Err(crate::status::ApiError::invalid_group_kind(
            "",
            "Event",
            name,
            &[crate::status::FieldError::invalid(
                "message",
                "\"\"",
                &format!("can have at most {NOTE_LENGTH_LIMIT} characters"),
            )],
        ));
    }
    Ok(())
}

/// An events.k8s.io/v1 Event in its core/v1 storage form.
pub fn to_core(ev: &Value) -> Value {
    let mut core = convert(ev, "v1", RENAMED.iter().copied());
    // core/v1 readers (kubectl) expect these even when the writer only set the new fields.
    if core.get("source").is_none() {
        if let Some(c) = ev.get("reportingController") {
            core["source"] = serde_json::json!({"component": c});
        }
    }
    if core.get("count").is_none() {
        let count = ev
            .pointer("/series/count")
            .cloned()
            .unwrap_or(Value::from(1));
        core["count"] = count;
    }
    if core.get("firstTimestamp").is_none() {
        core["firstTimestamp"] = Value::Null;
    }
    if core.get("lastTimestamp").is_none() {
        core["lastTimestamp"] = ev
            .pointer("/series/lastObservedTime")
            .cloned()
            .unwrap_or(Value::Null);
    }
    core
}

/// A stored core/v1 Event as events.k8s.io/v1 presents it.
pub fn from_core(core: &Value) -> Value {
    convert(
        core,
        "events.k8s.io/v1",
        RENAMED.iter().map(|(a, b)| (*b, *a)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_v1_note_over_1024_bytes_is_refused_naming_the_core_field() {
        let fits = json!({"message": "x".repeat(NOTE_LENGTH_LIMIT)});
        assert!(validate_v1_create(&fits, "e").is_ok());
        let long = json!({"message": "x".repeat(NOTE_LENGTH_LIMIT + 1)});
        let err = validate_v1_create(&long, "e").unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Event \"e\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
        );
    }

    #[test]
    fn recorder_event_is_visible_in_core_form_and_round_trips() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "eventTime": "2026-11-21T10:00:00.000000Z",
            "regarding": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u1"},
            "note": "assigned 198.51.100.10", "reason": "IPAllocated", "type": "Normal",
            "reportingController": "ferrolb.io/controller", "reportingInstance": "ctl-0", "action": "Allocate"
        });
        let core = to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "assigned 198.51.100.10");
        assert_eq!(core["source"]["component"], "ferrolb.io/controller");
        assert_eq!(core["reportingComponent"], "ferrolb.io/controller");
        assert_eq!(core["count"], 1);
        let back = from_core(&core);
        for f in [
            "regarding",
            "note",
            "reason",
            "type",
            "reportingController",
            "reportingInstance",
            "action",
            "eventTime",
        ] {
            assert_eq!(back[f], ev[f], "{f}");
        }
    }
}
