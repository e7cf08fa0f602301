//! `Status` error bodies shaped exactly as the real API server writes them, because kube-rs
//! decides what happened from `reason` alone and some crates check `code`.

use serde_json::{json, Value};

use crate::resources::ResourceDef;

/// The largest request body the real kube-apiserver reads (3 MiB, its
/// `MaxRequestBodyBytes`); anything larger is a 413 before any decoding or validation.
pub const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;

/// An API error: the HTTP status, the `reason` string and the rest of the `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code, equal to the body's `code`.
    pub code: u16,
    /// The machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// The human message.
    pub message: String,
    /// `details`, if the real server sends them for this error.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429/503 faults).
    pub retry_after: Option<u64>,
}

/// One validation failure inside a 422 `Invalid` error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, ...
    pub reason: &'static str,
    /// The field path, e.g. `spec.ports[0].port`.
    pub field: String,
    /// The message without the field prefix, e.g. `Invalid value: 0: must be ...`.
    pub message: String,
}

impl FieldError {
    /// An `Invalid value` error for `field`.
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, why: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        }
    }

    /// A `Required value` error for `field`.
    pub fn required(field: impl Into<String>, why: &str) -> Self {
        let message = if why.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {why}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// A `Duplicate value` error for `field`.
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        }
    }

    /// An `Unsupported value` error for `field`.
    pub fn unsupported(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        allowed: &[&str],
    ) -> Self {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                allowed.join(", ")
            ),
        }
    }

    /// A `Too long` error for `field` (`[]` when the limit is on the object as a whole).
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    /// A `Forbidden` error for `field`.
    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }
}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        Self {
            code,
            reason,
            message,
            details,
            retry_after: None,
        }
    }

    /// 404 for a missing object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
            Some(details(def, name)),
        )
    }

    /// 404 for a URL that names no resource we serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    /// 409 for creating an object that exists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
            Some(details(def, name)),
        )
    }

    /// 409 for a write with a stale `metadata.resourceVersion`.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                def.qualified()
            ),
            Some(details(def, name)),
        )
    }

    /// 422 for an object that fails validation. The real server names the *kind* here
    /// (`NewInvalid(api.Kind("Service"), ...)`): `Service "x" is invalid: ...` with
    /// `details.kind: "Service"`, and `Kind.group` for grouped kinds.
    pub fn invalid(def: &ResourceDef, name: &str, errors: &[FieldError]) -> Self {
        Self::invalid_group_kind(def.group, def.kind, name, errors)
    }

    /// 422 for an update without `metadata.resourceVersion` on a resource that does not allow
    /// unconditional updates. The generic registry builds this one from the *resource*
    /// (`GroupKind{Group, Kind: resource}`), hence `leases.coordination.k8s.io "x" is invalid`.
    pub fn resource_version_required(def: &ResourceDef, name: &str) -> Self {
        Self::invalid_group_kind(
            def.group,
            def.plural,
            name,
            &[FieldError::invalid(
                "metadata.resourceVersion",
                0,
                "must be specified for an update",
            )],
        )
    }

    /// 422 as `apierrors.NewInvalid(GroupKind{group, kind}, name, errors)` writes it: the
    /// message is `<kind>[.<group>] "<name>" is invalid: <errors>` and the field errors are
    /// listed as `causes`.
    pub fn invalid_group_kind(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        // Go omits an empty `details.name` (omitempty).
        let mut d = json!({"kind": kind});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            d["group"] = json!(group);
            format!("{kind}.{group}")
        };
        d["causes"] = Value::Array(
            errors
                .iter()
                .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
                .collect(),
        );
        Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {joined}"),
            Some(d),
        )
    }

    /// 400 for a request the server cannot make sense of.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), None)
    }

    /// 413 for a request body over [`MAX_REQUEST_BODY`], worded as the real server words it.
    pub fn entity_too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_REQUEST_BODY}"),
            None,
        )
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message.into(), Some(json!({})))
    }

    /// 415 for a body encoding we cannot read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"),
            None,
        )
    }

    /// 422 from a failed JSON patch operation (the real server uses a generic 422 here).
    pub fn patch_failed(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message.into(), None)
    }

    /// An injected fault: a plausible body for an arbitrary status code.
    pub fn injected(code: u16) -> Self {
        let (reason, message) = match code {
            409 => ("Conflict", "injected conflict"),
            429 => (
                "TooManyRequests",
                "injected: too many requests, please try again later",
            ),
            500 => ("InternalError", "injected: Internal error occurred"),
            503 => (
                "ServiceUnavailable",
                "injected: the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "injected: the server was unable to return a response in the time allotted",
            ),
            _ => ("InternalError", "injected failure"),
        };
        let mut e = Self::new(code, reason, message.to_string(), Some(json!({})));
        if code == 429 || code == 503 {
            e.retry_after = Some(1);
        }
        e
    }

    /// The `Status` body.
    pub fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// The `Status` a DELETE returns when the object is gone (kube accepts it as `Either::Right`).
pub fn success_status(def: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut d = details(def, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
