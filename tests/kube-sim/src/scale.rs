//! The `/scale` subresource of Deployments and ReplicaSets (`kubectl scale`): an
//! autoscaling/v1 `Scale` view of `spec.replicas`, readable and writable with GET, PATCH and
//! PUT. No controller acts on the new count, as on an API server without a controller manager.

use serde_json::{json, Value};

use crate::api::{patched, reject_dry_run, rv_of, Target};
use crate::http::{decode_json_or_yaml, Query};
use crate::objects::prepare_update;
use crate::resources::{storage_of, ResourceDef};
use crate::status::{ApiError, FieldError};
use crate::store::{Outcome, Store};

/// Whether objects of `def` have a `/scale` subresource.
pub fn has_scale(def: &ResourceDef) -> bool {
    def.group == "apps" && matches!(def.kind, "Deployment" | "ReplicaSet")
}

fn selector_string(obj: &Value) -> String {
    let mut parts: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts.join(",")
}

/// The `Scale` the real server presents for `obj`.
pub fn view(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"), "namespace": pick("namespace"), "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

/// GET of the Scale.
pub fn get(store: &Store, t: &Target) -> Result<Value, ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    store
        .get(t.resource, t.namespace.as_deref().unwrap_or(""), name)
        .map(|o| view(&o))
        .ok_or_else(|| ApiError::not_found(t.def(), name))
}

/// PATCH (`body` patches the Scale view) or PUT (`body` is a whole Scale) of the Scale.
pub fn write(
    store: &Store,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
    is_put: bool,
) -> Result<Value, ApiError> {
    reject_dry_run(q)?;
    let def = t.def();
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let (stored, _) = store.mutate(t.resource, &ns, &name, |cur, ctx| {
        let cur = cur.ok_or_else(|| ApiError::not_found(def, &name))?;
        let current = view(cur);
        let wanted = if is_put {
            decode_json_or_yaml(body)?
        } else {
            patched("Scale", content_type, &current, body)?
        };
        if let Some(rv) = rv_of(&wanted) {
            if Some(rv) != rv_of(&current) {
                return Err(ApiError::conflict(def, &name));
            }
        }
        let replicas = match wanted.pointer("/spec/replicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
                ApiError::invalid(
                    def,
                    &name,
                    &[FieldError::invalid(
                        "spec.replicas",
                        v,
                        "must be greater than or equal to 0",
                    )],
                )
            })?,
        };
        let mut new = (**cur).clone();
        new["spec"]["replicas"] = json!(replicas);
        let new = prepare_update(storage_of(t.resource), cur, new, None, ctx)?;
        if crate::objects::same_content(cur, &new) {
            return Ok(Outcome::Unchanged(cur.clone()));
        }
        Ok(Outcome::Put(new))
    })?;
    Ok(view(&stored))
}
