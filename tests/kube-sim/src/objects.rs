//! What the real server does to every object on create and update, whatever its kind: system
//! metadata (uid, creationTimestamp, generation), name rules, namespace from the URL, status
//! subresource separation, and the per-kind strategies (Service defaulting, status resets).

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::resources::{ResourceDef, RESOURCES};
use crate::status::{ApiError, FieldError};
use crate::store::MutationCtx;
use crate::{secrets, services, workloads};

/// The current time as the API server writes `metav1.Time` (second precision, UTC).
pub fn now_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_suffix() -> String {
    // The real server's alphabet: no vowels, no look-alike digits.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The name rule of each kind: Services and Namespaces need DNS labels (Services must also
/// start with a letter), everything else a DNS subdomain.
fn name_error(def: &ResourceDef, name: &str) -> Option<FieldError> {
    if def.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments (`ValidateRBACName`): `ferrolb:controller` is fine.
        let why = match name {
            "." => Some("may not be '.'".to_owned()),
            ".." => Some("may not be '..'".to_owned()),
            _ => ["/", "%"]
                .into_iter()
                .find(|bad| name.contains(bad))
                .map(|bad| format!("may not contain '{bad}'")),
        };
        return why.map(|w| FieldError::invalid("metadata.name", format!("\"{name}\""), &w));
    }
    let ok = match def.kind {
        "Service" => is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
        "Namespace" => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    (!ok).then(|| {
        let why = match def.kind {
            "Service" => "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            "Namespace" => "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            _ => "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        };
        FieldError::invalid("metadata.name", format!("\"{name}\""), why)
    })
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Checks `apiVersion`/`kind` in a body against the resource it was sent to (both optional).
pub fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != def.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    Ok(())
}

/// The name a create request will use: `metadata.name`, or `generateName` plus a suffix.
pub fn name_for_create(obj: &mut Value) -> Result<String, ApiError> {
    let meta = meta_mut(obj)?;
    if let Some(n) = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Ok(n.to_string());
    }
    if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
        let name = format!("{prefix}{}", random_suffix());
        meta.insert("name".into(), json!(name));
        return Ok(name);
    }
    Err(ApiError {
        code: 422,
        reason: "Invalid",
        message: "metadata.name: Required value: name or generateName is required".into(),
        details: None,
        retry_after: None,
    })
}

fn tidy_metadata(meta: &mut Map<String, Value>) {
    // Go's omitempty never sends an empty finalizer list, and kube's `test null` relies on it.
    if meta
        .get("finalizers")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        meta.remove("finalizers");
    }
    meta.remove("managedFields");
    for k in ["labels", "annotations"] {
        if meta.get(k).is_some_and(Value::is_null) {
            meta.remove(k);
        }
    }
}

/// Turns a create request body into the object to store (everything but the RV).
pub fn prepare_create(
    resource: usize,
    namespace: &str,
    name: &str,
    mut obj: Value,
    ctx: &mut MutationCtx<'_>,
) -> Result<Value, ApiError> {
    let def = &RESOURCES[resource];
    check_type(def, &obj)?;
    if let Some(e) = name_error(def, name) {
        return Err(ApiError::invalid(def, name, &[e]));
    }
    {
        let meta = meta_mut(&mut obj)?;
        if def.namespaced {
            if let Some(ns) = meta.get("namespace").and_then(Value::as_str) {
                if ns != namespace {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
            }
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_time()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("resourceVersion");
        // The kinds whose strategies track generation (those with a spec).
        if !matches!(
            def.kind,
            "ConfigMap"
                | "Event"
                | "Lease"
                | "Secret"
                | "Endpoints"
                | "ServiceAccount"
                | "Role"
                | "RoleBinding"
                | "ClusterRole"
                | "ClusterRoleBinding"
        ) {
            meta.insert("generation".into(), json!(1));
        }
        tidy_metadata(meta);
    }
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    match def.kind {
        "Service" => {
            obj["status"] = json!({"loadBalancer": {}});
            services::prepare(&mut obj, None, ctx.services)
                .map_err(|e| ApiError::invalid(def, name, &e))?;
        }
        "Pod" => obj["status"] = json!({"phase": "Pending"}),
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "Secret" => secrets::normalize(&mut obj)?,
        "ConfigMap" => check_config_map_size(def, name, &obj)?,
        "Deployment" | "ReplicaSet" | "DaemonSet" => workloads::prepare_create(def.kind, &mut obj),
        _ => {}
    }
    Ok(obj)
}

/// The most a ConfigMap's values may hold together, in bytes (the real server's
/// `MaxSecretSize`, which `ValidateConfigMap` also applies; keys do not count).
pub const MAX_CONFIG_MAP_DATA: usize = 1024 * 1024;

/// 422 for a ConfigMap whose `data` and `binaryData` values add up to more than
/// [`MAX_CONFIG_MAP_DATA`] bytes, worded as the real server words it.
fn check_config_map_size(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    let strings = |field: &str| -> usize {
        obj.get(field).and_then(Value::as_object).map_or(0, |m| {
            m.values().filter_map(Value::as_str).map(str::len).sum()
        })
    };
    // binaryData travels as base64; its limit is on the decoded bytes (4 chars -> 3 bytes).
    let total = strings("data") + strings("binaryData") / 4 * 3;
    if total > MAX_CONFIG_MAP_DATA {
        return Err(ApiError::invalid(
            def,
            name,
            &[FieldError::too_long("[]", MAX_CONFIG_MAP_DATA)],
        ));
    }
    Ok(())
}

/// Turns an update (PUT body, or the result of a patch) into the object to store, keeping
/// what the client may not change and separating the status subresource.
pub fn prepare_update(
    resource: usize,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
    ctx: &mut MutationCtx<'_>,
) -> Result<Value, ApiError> {
    let def = &RESOURCES[resource];
    check_type(def, &new)?;
    let name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // metadata.uid is immutable (`ValidateObjectMetaUpdate`, run by `rest.BeforeUpdate` for
    // the main resource and /status alike): a patch naming another uid is a 422, which is
    // what makes `{"metadata":{"uid":...}}` in a patch work as an identity precondition.
    let old_uid = old.pointer("/metadata/uid").and_then(Value::as_str);
    if let Some(uid) = new.pointer("/metadata/uid").and_then(Value::as_str) {
        if !uid.is_empty() && Some(uid) != old_uid {
            return Err(ApiError::invalid(
                def,
                &name,
                &[FieldError::invalid(
                    "metadata.uid",
                    format!("\"{uid}\""),
                    "field is immutable",
                )],
            ));
        }
    }
    if subresource == Some("status") {
        // Only .status changes through /status; everything else is the stored object's.
        let mut out = old.clone();
        out["status"] = new.get("status").cloned().unwrap_or(json!({}));
        if def.kind == "Service" {
            services::validate_status(&out).map_err(|e| ApiError::invalid(def, &name, &e))?;
        }
        return Ok(out);
    }
    {
        let meta = meta_mut(&mut new)?;
        if let Some(n) = meta.get("name").and_then(Value::as_str) {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        tidy_metadata(meta);
    }
    new["apiVersion"] = json!(def.api_version());
    new["kind"] = json!(def.kind);
    if def.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if def.kind == "Service" {
        services::prepare(&mut new, Some(old), ctx.services)
            .map_err(|e| ApiError::invalid(def, &name, &e))?;
        services::clear_status_on_type_change(&mut new, old);
    }
    if def.kind == "Secret" {
        secrets::normalize(&mut new)?;
    }
    if def.kind == "ConfigMap" {
        check_config_map_size(def, &name, &new)?;
    }
    if new.get("spec") != old.get("spec") {
        if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
            new["metadata"]["generation"] = json!(g + 1);
        }
    }
    Ok(new)
}

/// Whether two stored forms differ in anything but the resourceVersion; unchanged writes must
/// not bump the RV or wake watchers, as on the real server.
pub fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_v4_and_names_are_checked() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let svc = &RESOURCES[0];
        assert!(name_error(svc, "web").is_none());
        assert!(name_error(svc, "1web").is_some());
        assert!(name_error(svc, "Web").is_some());
        assert!(name_error(&RESOURCES[1], "a.b-c").is_none());
        let cluster_role = &RESOURCES
            [crate::resources::find("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap()];
        assert!(name_error(cluster_role, "ferrolb:controller").is_none());
        assert!(name_error(cluster_role, "a/b").is_some());
        assert!(name_error(cluster_role, "..").is_some());
    }
}
