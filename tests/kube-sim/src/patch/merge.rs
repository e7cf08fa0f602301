//! JSON merge patch (RFC 7386) and the server-side-apply approximation built
//! on it.

use serde_json::{Map, Value};

/// Applies a JSON merge patch (RFC 7386, `application/merge-patch+json`).
///
/// This is what `kubectl label`, `kubectl annotate`, `kubectl patch
/// --type=merge`, kube's `Patch::Merge` and the events Recorder send. Objects
/// merge recursively, `null` deletes a key, arrays and scalars replace, and a
/// patch that is not an object replaces the whole target. Nulls nested inside
/// values that are added (rather than merged) are dropped too, as the RFC's
/// pseudo-code does, so a merge patch can never store a `null`.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, patch_value) in patch_map {
        if patch_value.is_null() {
            result.remove(key);
            continue;
        }
        let merged = match result.get(key) {
            Some(existing) => merge_patch(existing, patch_value),
            None => merge_patch(&Value::Null, patch_value),
        };
        result.insert(key.clone(), merged);
    }
    Value::Object(result)
}

/// Approximates server-side apply (`application/apply-patch+yaml`).
///
/// The emulator needs SSA mainly as an upsert for kube controllers that apply
/// with `.force()` and for `kubectl apply --server-side`. Without a live
/// object the applied object is the result (minus any `null`s); otherwise the
/// applied object is merged into the live one: maps merge recursively, lists
/// and scalars replace whole, `null` removes a field.
///
/// What this deliberately does not model (see the emulator spec, §2):
/// - no field ownership or `managedFields`, so no 409 `FieldManagerConflict`
///   when another manager owns a field;
/// - a field that a manager applied before and has now dropped from its
///   applied configuration is *kept*, where the real server would remove it;
/// - lists are never merged by key (`listType=map`), they are replaced.
///
/// Name, namespace, `fieldManager` and the 201-on-create decision are the
/// server's job; body parsing (YAML or JSON) too.
pub fn apply_patch(live: Option<&Value>, applied: &Value) -> Value {
    match live {
        Some(live) => merge_patch(live, applied),
        None => merge_patch(&Value::Null, applied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mp(target: Value, patch: Value) -> Value {
        merge_patch(&target, &patch)
    }

    #[test]
    fn scalar_keys_are_overwritten_and_others_kept() {
        assert_eq!(
            mp(json!({"a": "b", "c": 1}), json!({"a": "z"})),
            json!({"a": "z", "c": 1})
        );
    }

    #[test]
    fn null_deletes_and_missing_key_null_is_a_noop() {
        assert_eq!(
            mp(json!({"a": "b", "c": 1}), json!({"c": null, "x": null})),
            json!({"a": "b"})
        );
    }

    #[test]
    fn nested_objects_merge_recursively() {
        assert_eq!(
            mp(
                json!({"metadata": {"labels": {"app": "web", "tier": "fe"}, "name": "n"}}),
                json!({"metadata": {"labels": {"app": "web2", "tier": null, "new": "x"}}})
            ),
            json!({"metadata": {"labels": {"app": "web2", "new": "x"}, "name": "n"}})
        );
    }

    #[test]
    fn arrays_replace_whole() {
        assert_eq!(
            mp(json!({"a": [1, 2, 3]}), json!({"a": [4]})),
            json!({"a": [4]})
        );
        assert_eq!(
            mp(json!({"a": [{"x": 1}]}), json!({"a": [{"y": 2}]})),
            json!({"a": [{"y": 2}]})
        );
    }

    #[test]
    fn non_object_patch_replaces_target() {
        assert_eq!(mp(json!({"a": 1}), json!(["x"])), json!(["x"]));
        assert_eq!(mp(json!({"a": 1}), json!("s")), json!("s"));
        assert_eq!(mp(json!({"a": 1}), json!(null)), json!(null));
    }

    #[test]
    fn object_patch_over_non_object_target_starts_from_empty() {
        assert_eq!(mp(json!(["x"]), json!({"a": 1})), json!({"a": 1}));
        assert_eq!(
            mp(json!({"a": "scalar"}), json!({"a": {"b": 1}})),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn nulls_inside_added_objects_are_not_stored() {
        assert_eq!(
            mp(json!({}), json!({"a": {"b": null, "c": 1}})),
            json!({"a": {"c": 1}})
        );
    }

    #[test]
    fn nulls_inside_arrays_are_kept() {
        // Arrays are opaque values to RFC 7386.
        assert_eq!(mp(json!({}), json!({"a": [null]})), json!({"a": [null]}));
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let target = json!({"a": {"b": [1]}});
        assert_eq!(mp(target.clone(), json!({})), target);
    }

    #[test]
    fn recorder_series_patch_adds_a_nested_object() {
        let live = json!({"metadata": {"name": "e1"}, "note": "n"});
        let patch =
            json!({"series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:00.000000Z"}});
        assert_eq!(
            mp(live, patch),
            json!({"metadata": {"name": "e1"}, "note": "n",
                   "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:00.000000Z"}})
        );
    }

    #[test]
    fn apply_without_live_object_is_the_applied_object() {
        let applied = json!({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "k2"}, "spec": {"ports": [{"port": 80}]}});
        assert_eq!(apply_patch(None, &applied), applied);
    }

    #[test]
    fn apply_merges_maps_and_replaces_lists() {
        let live = json!({"metadata": {"name": "k1", "labels": {"a": "1"}, "resourceVersion": "7"},
                          "spec": {"ports": [{"port": 80}, {"port": 443}], "type": "ClusterIP"}});
        let applied = json!({"metadata": {"labels": {"b": "2"}},
                             "spec": {"ports": [{"port": 8080}]}});
        assert_eq!(
            apply_patch(Some(&live), &applied),
            json!({"metadata": {"name": "k1", "labels": {"a": "1", "b": "2"}, "resourceVersion": "7"},
                   "spec": {"ports": [{"port": 8080}], "type": "ClusterIP"}})
        );
    }

    #[test]
    fn apply_keeps_fields_the_manager_dropped() {
        // Documented approximation: no ownership tracking, so nothing is
        // removed just because the new applied configuration omits it.
        let live = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
        let applied = json!({"spec": {"holderIdentity": "b"}});
        assert_eq!(
            apply_patch(Some(&live), &applied),
            json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": 15}})
        );
    }
}
