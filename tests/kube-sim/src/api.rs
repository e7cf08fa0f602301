//! The resource verbs: get, list, create, update, patch, delete, deletecollection. Every write
//! goes through [`Store::mutate`], so precondition checks and the write are one atomic step.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::events;
use crate::http::{decode_json_or_yaml, decode_object, Query, PROTOBUF};
use crate::objects::{self, now_time, prepare_create, prepare_update, same_content};
use crate::patch;
use crate::protobuf;
use crate::resources::{self, storage_of, ResourceDef, CORE_EVENTS, RESOURCES};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::services;
use crate::status::{success_status, ApiError, FieldError};
use crate::store::{ChangeKind, MutationCtx, Outcome, Store};
use crate::tables::{self, IncludeObject};

/// A request for one resource, parsed from the URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// Index into [`RESOURCES`] of the resource as addressed (not its storage).
    pub resource: usize,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Object name from the URL.
    pub name: Option<String>,
    /// Subresource from the URL (`status`).
    pub subresource: Option<String>,
}

impl Target {
    /// The resource definition.
    pub fn def(&self) -> &'static ResourceDef {
        &RESOURCES[self.resource]
    }

    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// Whether objects of `resource` are presented in events.k8s.io form.
fn is_events_v1(resource: usize) -> bool {
    RESOURCES[resource].stored_as == Some(CORE_EVENTS)
}

/// The stored object as the addressed API version presents it.
pub fn present(resource: usize, obj: &Value) -> Value {
    if is_events_v1(resource) {
        events::from_core(obj)
    } else {
        obj.clone()
    }
}

/// A body sent to the addressed API version, in storage form.
fn to_storage(resource: usize, obj: Value) -> Value {
    if is_events_v1(resource) {
        events::to_core(&obj)
    } else {
        obj
    }
}

/// Parsed `labelSelector` and `fieldSelector`.
pub struct Selectors {
    /// Label requirements.
    pub labels: LabelSelector,
    /// Field requirements.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses both selectors from the query (400 on bad syntax or unsupported fields).
    pub fn from_query(q: &Query, def: &ResourceDef) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def.kind)
            .map_err(ApiError::bad_request)?;
        Ok(Self { labels, fields })
    }

    /// Whether a stored object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// GET of one object (or its status).
pub fn get(store: &Store, t: &Target) -> Result<Value, ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    store
        .get(t.resource, t.ns(), name)
        .map(|o| present(t.resource, &o))
        .ok_or_else(|| ApiError::not_found(t.def(), name))
}

/// LIST as JSON bytes (serialised item by item, so 10,000 objects do not need one big tree).
pub fn list_json(store: &Store, t: &Target, q: &Query) -> Result<Vec<u8>, ApiError> {
    let sel = Selectors::from_query(q, t.def())?;
    let (objs, rv) = store.list(t.resource, t.namespace.as_deref());
    let def = t.def();
    let mut out = Vec::with_capacity(256 + objs.len() * 512);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[",
            def.list_kind(),
            def.api_version()
        )
        .as_bytes(),
    );
    let mut first = true;
    for o in objs.iter().filter(|o| sel.matches(o)) {
        if !first {
            out.push(b',');
        }
        first = false;
        let presented;
        let item: &Value = if is_events_v1(t.resource) {
            presented = present(t.resource, o);
            &presented
        } else {
            o
        };
        serde_json::to_writer(&mut out, item).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// LIST (or GET of one object) as a Table.
pub fn table(store: &Store, t: &Target, q: &Query) -> Result<Value, ApiError> {
    let include = IncludeObject::parse(q.get("includeObject"));
    if t.name.is_some() {
        let obj = get(store, t)?;
        return Ok(tables::table(
            t.def().kind,
            [&obj],
            store.current_rv(),
            include,
        ));
    }
    let sel = Selectors::from_query(q, t.def())?;
    let (objs, rv) = store.list(t.resource, t.namespace.as_deref());
    let presented: Vec<Value> = objs
        .iter()
        .filter(|o| sel.matches(o))
        .map(|o| present(t.resource, o))
        .collect();
    Ok(tables::table(t.def().kind, presented.iter(), rv, include))
}

fn namespace_must_exist(store: &Store, t: &Target) -> Result<(), ApiError> {
    if !t.def().namespaced {
        return Ok(());
    }
    let ns_idx = resources::find("", "v1", "namespaces").unwrap_or(2);
    match store.get(ns_idx, "", t.ns()) {
        Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_none() => Ok(()),
        Some(_) => Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                t.def().qualified(),
                t.name.as_deref().unwrap_or(""),
                t.ns()
            ),
            details: None,
            retry_after: None,
        }),
        None => Err(ApiError::not_found(&RESOURCES[ns_idx], t.ns())),
    }
}

pub(crate) fn reject_dry_run(q: &Query) -> Result<(), ApiError> {
    if q.get("dryRun").is_some() {
        return Err(ApiError::bad_request("kube-sim does not implement dryRun"));
    }
    Ok(())
}

/// POST to a collection.
pub fn create(
    store: &Store,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    reject_dry_run(q)?;
    let mut obj = decode_object(content_type, body, t.def())?;
    objects::check_type(t.def(), &obj)?;
    let name = objects::name_for_create(&mut obj)?;
    let obj = to_storage(t.resource, obj);
    if is_events_v1(t.resource) {
        events::validate_v1_create(&obj, &name)?;
    }
    namespace_must_exist(store, t)?;
    let target = Target {
        name: Some(name.clone()),
        ..t.clone()
    };
    let (stored, _) = store.mutate(t.resource, t.ns(), &name, |cur, ctx| {
        if cur.is_some() {
            return Err(ApiError::already_exists(t.def(), &name));
        }
        Ok(Outcome::Put(prepare_create(
            storage_of(t.resource),
            target.ns(),
            &name,
            obj,
            ctx,
        )?))
    })?;
    Ok(present(t.resource, &stored))
}

pub(crate) fn rv_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Commits `new` as the replacement of `cur`: finishes a deletion whose last finalizer is
/// gone, skips writes that change nothing, and otherwise stores it.
fn finish_update(cur: &Arc<Value>, new: Value, ctx: &mut MutationCtx<'_>) -> Outcome {
    let deleting = cur.pointer("/metadata/deletionTimestamp").is_some();
    let no_finalizers = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if deleting && no_finalizers {
        services::release(cur, ctx.services);
        return Outcome::Delete;
    }
    if same_content(cur, &new) {
        return Outcome::Unchanged(cur.clone());
    }
    Outcome::Put(new)
}

/// PUT of an object or its status.
pub fn update(
    store: &Store,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    reject_dry_run(q)?;
    let name = t.name.clone().unwrap_or_default();
    let obj = to_storage(t.resource, decode_object(content_type, body, t.def())?);
    let def = t.def();
    let (stored, _) = store.mutate(t.resource, t.ns(), &name, |cur, ctx| {
        let cur = cur.ok_or_else(|| ApiError::not_found(def, &name))?;
        // A PUT body's uid is a storage precondition, checked before the resourceVersion
        // (`DefaultUpdatedObjectInfo.Preconditions`, then etcd3 `GuaranteedUpdate`).
        if let Some(e) = uid_precondition_failed(def, &name, t.ns(), &obj, cur) {
            return Err(e);
        }
        match rv_of(&obj) {
            Some(rv) if Some(rv) != rv_of(cur) => return Err(ApiError::conflict(def, &name)),
            None if !def.unconditional_update => {
                return Err(ApiError::resource_version_required(def, &name))
            }
            _ => {}
        }
        let new = prepare_update(
            storage_of(t.resource),
            cur,
            obj,
            t.subresource.as_deref(),
            ctx,
        )?;
        Ok(finish_update(cur, new, ctx))
    })?;
    Ok(present(t.resource, &stored))
}

/// The 409 the real server answers when an update's `metadata.uid` names another object
/// than the stored one (e.g. the object was deleted and re-created under the same name).
fn uid_precondition_failed(
    def: &crate::resources::ResourceDef,
    name: &str,
    ns: &str,
    body: &Value,
    cur: &Value,
) -> Option<ApiError> {
    let uid = body
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())?;
    let actual = cur
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if uid == actual {
        return None;
    }
    let mut e = ApiError::conflict(def, name);
    e.message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": StorageError: invalid object, Code: 4, \
         Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in \
         precondition: {uid}, UID in object meta: {actual}",
        def.qualified(),
        etcd_key(def, ns, name)
    );
    Some(e)
}

/// Where kube-apiserver keeps an object in etcd (default `/registry` prefix); it appears in
/// storage error messages. Services and nodes use historical paths.
fn etcd_key(def: &crate::resources::ResourceDef, ns: &str, name: &str) -> String {
    let resource = match def.plural {
        "services" => "services/specs",
        "nodes" => "minions",
        other => other,
    };
    if ns.is_empty() {
        format!("/registry/{resource}/{name}")
    } else {
        format!("/registry/{resource}/{ns}/{name}")
    }
}

fn patch_error(e: patch::PatchError) -> ApiError {
    if e.status_code() == 422 {
        ApiError::patch_failed(e.to_string())
    } else {
        ApiError::bad_request(e.to_string())
    }
}

/// The kinds of PATCH bodies.
pub(crate) fn patched(
    kind: &str,
    content_type: &str,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let parse = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))
    };
    match content_type {
        "application/merge-patch+json" => Ok(patch::merge_patch(current, &parse()?)),
        "application/strategic-merge-patch+json" => {
            patch::strategic_merge(current, &parse()?, kind).map_err(patch_error)
        }
        "application/json-patch+json" => patch::json_patch(current, &parse()?).map_err(patch_error),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// PATCH of an object or its status, including server-side apply (an upsert).
pub fn patch(
    store: &Store,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<(Value, bool), ApiError> {
    reject_dry_run(q)?;
    let name = t.name.clone().unwrap_or_default();
    let def = t.def();
    let apply = content_type == "application/apply-patch+yaml";
    if apply {
        if q.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError {
                code: 422,
                reason: "Invalid",
                message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                details: Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})),
                retry_after: None,
            });
        }
    } else if q.flag("force") {
        // The real server validates PatchOptions here, not the object.
        return Err(ApiError::invalid_group_kind(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    let applied = if apply {
        Some(decode_json_or_yaml(body)?)
    } else {
        None
    };
    if let Some(a) = &applied {
        objects::check_type(def, a)?;
        if let Some(n) = a.pointer("/metadata/name").and_then(Value::as_str) {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if store.get(t.resource, t.ns(), &name).is_none() {
            namespace_must_exist(store, t)?;
        }
    }
    let (stored, change) = store.mutate(t.resource, t.ns(), &name, |cur, ctx| {
        let Some(cur) = cur else {
            let Some(a) = applied else {
                return Err(ApiError::not_found(def, &name));
            };
            // An apply that names a uid asks for that object; there is none (`applyPatch` in
            // the real server's patch handler).
            if let Some(uid) = a
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                let mut e = ApiError::conflict(def, &name);
                e.message = format!(
                    "Operation cannot be fulfilled on {} \"{name}\": uid mismatch: the provided \
                     object specified uid {uid}, and no existing object was found",
                    def.qualified()
                );
                return Err(e);
            }
            let mut obj = a;
            obj["metadata"]["name"] = json!(name);
            let obj = to_storage(t.resource, obj);
            return Ok(Outcome::Put(prepare_create(
                storage_of(t.resource),
                t.ns(),
                &name,
                obj,
                ctx,
            )?));
        };
        let view = present(t.resource, cur);
        let merged = match &applied {
            Some(a) => patch::apply_patch(Some(&view), a),
            None => patched(def.kind, content_type, &view, body)?,
        };
        if let Some(rv) = rv_of(&merged) {
            if Some(rv) != rv_of(&view) {
                return Err(ApiError::conflict(def, &name));
            }
        }
        let new = prepare_update(
            storage_of(t.resource),
            cur,
            to_storage(t.resource, merged),
            t.subresource.as_deref(),
            ctx,
        )?;
        Ok(finish_update(cur, new, ctx))
    })?;
    Ok((
        present(t.resource, &stored),
        change == Some(ChangeKind::Added),
    ))
}

/// DELETE of one object: marks it deleting if it has finalizers, removes it otherwise.
pub fn delete(
    store: &Store,
    t: &Target,
    q: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    reject_dry_run(q)?;
    let name = t.name.clone().unwrap_or_default();
    let def = t.def();
    let opts: Value = if body.is_empty() {
        json!({})
    } else if content_type == PROTOBUF {
        // Typed clients (Helm deleting its release Secrets) send DeleteOptions as protobuf.
        protobuf::decode_k8s_protobuf(body, "meta.k8s.io/v1", "DeleteOptions")
            .map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        serde_json::from_slice(body).unwrap_or(json!({}))
    };
    if opts
        .get("dryRun")
        .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(ApiError::bad_request("kube-sim does not implement dryRun"));
    }
    let (stored, change) = store.mutate(t.resource, t.ns(), &name, |cur, ctx| {
        let cur = cur.ok_or_else(|| ApiError::not_found(def, &name))?;
        if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
            let actual = cur.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            if uid != actual {
                let mut e = ApiError::conflict(def, &name);
                e.message = format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}");
                return Err(e);
            }
        }
        if let Some(rv) = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            if Some(rv) != rv_of(cur) {
                let mut e = ApiError::conflict(def, &name);
                e.message = format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    rv_of(cur).unwrap_or("")
                );
                return Err(e);
            }
        }
        let has_finalizers = cur.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Outcome::Unchanged(cur.clone()));
            }
            let mut marked = (**cur).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now_time());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Ok(Outcome::Put(marked));
        }
        services::release(cur, ctx.services);
        Ok(Outcome::Delete)
    })?;
    if def.kind == "Namespace" && change == Some(ChangeKind::Deleted) {
        store.purge_namespace(&name, |allocs, obj| services::release(obj, allocs));
    }
    if change == Some(ChangeKind::Deleted) && def.kind != "Service" && def.kind != "Namespace" {
        // Most real resources answer a completed delete with a Success Status.
        let uid = stored
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Ok(success_status(def, &name, uid));
    }
    Ok(present(t.resource, &stored))
}

/// DELETE of a collection: deletes every selected object and returns them as a list.
pub fn delete_collection(store: &Store, t: &Target, q: &Query) -> Result<Value, ApiError> {
    reject_dry_run(q)?;
    let sel = Selectors::from_query(q, t.def())?;
    let (objs, _) = store.list(t.resource, t.namespace.as_deref());
    let mut items = Vec::new();
    for o in objs.iter().filter(|o| sel.matches(o)) {
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(String::from);
        let one = Target {
            name: Some(name),
            namespace: ns,
            ..t.clone()
        };
        match delete(store, &one, &Query::default(), "", b"") {
            Ok(v) => items.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let def = t.def();
    Ok(
        json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": items}),
    )
}
