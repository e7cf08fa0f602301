//! Strategic merge patch, the default PATCH type of `kubectl patch` and what
//! client-side `kubectl apply` sends for built-in kinds.

use serde_json::{Map, Value};

use super::schema::{list_strategy, ListStrategy};
use super::{display_path, type_name, PatchError};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch (`application/strategic-merge-patch+json`)
/// to an object of `kind`.
///
/// Maps merge recursively and `null` deletes a key, as in a merge patch, but
/// lists are combined according to the merge-key table in
/// [`super::schema`]: keyed lists are merged element by element, primitive
/// merge lists are unions, every other list is replaced whole. The directives
/// kubectl emits are honoured and never stored:
/// - `$patch: replace | delete | merge` in a map or as a list element;
/// - `$setElementOrder/<field>`: the merged list follows the given key order,
///   elements not named keep their relative order after the named ones;
/// - `$retainKeys`: after merging, keys of the map not listed are dropped;
/// - `$deleteFromPrimitiveList/<field>`: those values leave the list.
///
/// Where kube-sim's table has no entry for a list but the patch itself shows
/// the client treats it as keyed (all `$setElementOrder` entries name the same
/// single key, or a `{"$patch":"delete", key: …}` element), that key is used,
/// so a gap in the table degrades to correct merging rather than to storing
/// directive garbage.
///
/// `$patch: merge` is accepted everywhere as the explicit default (upstream
/// rejects it in maps). Unknown `$`-prefixed keys are errors: no Kubernetes
/// field name starts with `$`. A `$patch: delete` of the whole object is
/// rejected. A patch that is not a JSON object is a [`PatchError`] too.
pub fn strategic_merge(target: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadStrategicPatch {
            path: display_path(&[]),
            reason: format!("the patch must be a JSON object, got {}", type_name(patch)),
        });
    };
    let original = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut merger = Merger {
        kind,
        path: Vec::new(),
    };
    match merger.merge_map(original, patch)? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(PatchError::BadDirective {
            path: display_path(&[]),
            directive: PATCH.to_owned(),
            reason: "cannot delete the whole object with a patch".to_owned(),
        }),
    }
}

/// How one list is combined; like [`ListStrategy`], but the merge key may
/// also be borrowed from the patch when it was inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy<'a> {
    ByKey(&'a str),
    Set,
    Replace,
}

struct Merger<'k> {
    kind: &'k str,
    /// Field names from the object root to the value being merged; list
    /// indices are not recorded because the table does not use them.
    path: Vec<String>,
}

/// The directives found in one patch map, split out before merging.
#[derive(Default)]
struct Directives<'p> {
    retain_keys: Option<Vec<&'p str>>,
    orders: Vec<(&'p str, &'p [Value])>,
    primitive_deletes: Vec<(&'p str, &'p [Value])>,
}

impl Merger<'_> {
    fn path_string(&self) -> String {
        display_path(&self.path)
    }

    fn bad_directive(&self, directive: &str, reason: impl Into<String>) -> PatchError {
        PatchError::BadDirective {
            path: self.path_string(),
            directive: directive.to_owned(),
            reason: reason.into(),
        }
    }

    fn bad_patch(&self, reason: impl Into<String>) -> PatchError {
        PatchError::BadStrategicPatch {
            path: self.path_string(),
            reason: reason.into(),
        }
    }

    /// Merges `patch` into `original`; `None` means the map is deleted
    /// (`$patch: delete`).
    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        if let Some(directive) = patch.get(PATCH) {
            match directive.as_str() {
                Some("delete") => return Ok(None),
                Some("replace") => {
                    let mut rest = patch.clone();
                    rest.remove(PATCH);
                    // Merging into nothing still processes nested directives
                    // and nulls, so they cannot leak into storage.
                    return self.merge_map(Map::new(), &rest);
                }
                Some("merge") => {}
                _ => {
                    return Err(self.bad_directive(
                        PATCH,
                        format!("must be \"replace\", \"delete\" or \"merge\", got {directive}"),
                    ))
                }
            }
        }

        let directives = self.collect_directives(patch)?;

        for (field, values) in &directives.primitive_deletes {
            if let Some(Value::Array(items)) = original.get_mut(*field) {
                items.retain(|item| !values.contains(item));
            }
        }

        for (key, patch_value) in patch {
            if key.starts_with('$') {
                continue;
            }
            self.path.push(key.clone());
            let result = self.merge_field(&mut original, key, patch_value, patch);
            self.path.pop();
            result?;
        }

        for (field, order) in &directives.orders {
            self.path.push((*field).to_owned());
            let result = self.apply_order(&mut original, field, order, patch);
            self.path.pop();
            result?;
        }

        if let Some(retain) = &directives.retain_keys {
            if let Some(key) = patch
                .iter()
                .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !retain.contains(&k.as_str()))
                .map(|(k, _)| k)
            {
                return Err(PatchError::RetainKeysMismatch {
                    path: self.path_string(),
                    key: key.clone(),
                });
            }
            original.retain(|k, _| retain.contains(&k.as_str()));
        }

        Ok(Some(original))
    }

    /// Validates and sorts out the `$` keys of one patch map.
    fn collect_directives<'p>(
        &self,
        patch: &'p Map<String, Value>,
    ) -> Result<Directives<'p>, PatchError> {
        let mut found = Directives::default();
        for (key, value) in patch {
            if !key.starts_with('$') || key == PATCH {
                continue;
            }
            if key == RETAIN_KEYS {
                let names = value
                    .as_array()
                    .and_then(|items| items.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| self.bad_directive(key, "must be a list of field names"))?;
                found.retain_keys = Some(names);
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                let order = self.directive_list(key, field, value)?;
                found.orders.push((field, order));
            } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let values = self.directive_list(key, field, value)?;
                if let Some(bad) = values.iter().find(|v| v.is_object() || v.is_array()) {
                    return Err(self.bad_directive(
                        key,
                        format!("may only list primitive values, got {}", type_name(bad)),
                    ));
                }
                found.primitive_deletes.push((field, values));
            } else {
                return Err(self.bad_directive(key, "unknown directive"));
            }
        }
        Ok(found)
    }

    fn directive_list<'p>(
        &self,
        key: &str,
        field: &str,
        value: &'p Value,
    ) -> Result<&'p [Value], PatchError> {
        if field.is_empty() {
            return Err(self.bad_directive(key, "names no field"));
        }
        match value {
            Value::Array(items) => Ok(items),
            other => {
                Err(self.bad_directive(key, format!("must be a list, got {}", type_name(other))))
            }
        }
    }

    /// Merges one non-directive key of `patch` into `original`; `self.path`
    /// already ends with `key`.
    fn merge_field(
        &mut self,
        original: &mut Map<String, Value>,
        key: &str,
        patch_value: &Value,
        patch: &Map<String, Value>,
    ) -> Result<(), PatchError> {
        match patch_value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(patch_map) => {
                let base = match original.remove(key) {
                    Some(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                if let Some(merged) = self.merge_map(base, patch_map)? {
                    original.insert(key.to_owned(), Value::Object(merged));
                }
            }
            Value::Array(patch_items) => {
                let strategy = self.strategy_for(key, patch, Some(patch_items.as_slice()));
                let base = match original.remove(key) {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                let merged = self.merge_list(base, patch_items, strategy)?;
                original.insert(key.to_owned(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.to_owned(), scalar.clone());
            }
        }
        Ok(())
    }

    /// The strategy of list `field` of the current map, from the table or,
    /// for a table gap, inferred from the patch (see [`strategic_merge`]).
    fn strategy_for<'p>(
        &self,
        field: &str,
        patch: &'p Map<String, Value>,
        patch_items: Option<&'p [Value]>,
    ) -> Strategy<'p> {
        match list_strategy(self.kind, &self.path) {
            ListStrategy::MergeByKey(key) => return Strategy::ByKey(key),
            ListStrategy::MergeSet => return Strategy::Set,
            ListStrategy::Replace => {}
        }
        let single_key = |v: &'p Value| -> Option<&'p str> {
            let map = v.as_object()?;
            let mut keys = map.keys().filter(|k| k.as_str() != PATCH);
            match (keys.next(), keys.next()) {
                (Some(k), None) => Some(k.as_str()),
                _ => None,
            }
        };
        let order_key = patch
            .get(&format!("{SET_ELEMENT_ORDER}{field}"))
            .and_then(Value::as_array)
            .filter(|order| !order.is_empty())
            .and_then(|order| {
                let first = single_key(&order[0])?;
                order
                    .iter()
                    .all(|entry| single_key(entry) == Some(first))
                    .then_some(first)
            });
        let delete_key = || {
            patch_items?
                .iter()
                .find(|item| item.get(PATCH).and_then(Value::as_str) == Some("delete"))
                .and_then(single_key)
        };
        order_key
            .or_else(delete_key)
            .map_or(Strategy::Replace, Strategy::ByKey)
    }

    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: &[Value],
        strategy: Strategy<'_>,
    ) -> Result<Vec<Value>, PatchError> {
        let is_replace_marker = |item: &Value| {
            item.as_object()
                .and_then(|m| m.get(PATCH))
                .and_then(Value::as_str)
                == Some("replace")
        };
        if patch.iter().any(is_replace_marker) {
            let rest: Vec<Value> = patch
                .iter()
                .filter(|i| !is_replace_marker(i))
                .cloned()
                .collect();
            return self.clean_list(&rest);
        }
        match strategy {
            Strategy::Replace => self.clean_list(patch),
            Strategy::Set => {
                let mut merged = original;
                for item in patch {
                    if item.is_object() || item.is_array() {
                        return Err(self.bad_patch(format!(
                            "a merge list of primitives cannot hold a {}",
                            type_name(item)
                        )));
                    }
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                Ok(merged)
            }
            Strategy::ByKey(key) => self.merge_keyed_list(original, patch, key),
        }
    }

    fn merge_keyed_list(
        &mut self,
        mut merged: Vec<Value>,
        patch: &[Value],
        key: &str,
    ) -> Result<Vec<Value>, PatchError> {
        let mut updates = Vec::with_capacity(patch.len());
        // Deletions first, as upstream does, so that the outcome does not
        // depend on where the delete element sits in the patch list.
        for item in patch {
            let Value::Object(element) = item else {
                return Err(self.bad_patch(format!(
                    "elements of a list merged by {key:?} must be objects, got {}",
                    type_name(item)
                )));
            };
            let key_value = element.get(key);
            match element.get(PATCH) {
                Some(Value::String(d)) if d == "delete" => {
                    let Some(key_value) = key_value else {
                        return Err(self.bad_directive(
                            PATCH,
                            format!("a delete element must carry the merge key {key:?}"),
                        ));
                    };
                    merged.retain(|existing| existing.get(key) != Some(key_value));
                    continue;
                }
                Some(Value::String(d)) if d == "merge" => {}
                None => {}
                Some(other) => {
                    let reason = format!(
                        "list elements accept \"delete\", \"replace\" or \"merge\", got {other}"
                    );
                    return Err(self.bad_directive(PATCH, reason));
                }
            }
            let Some(key_value) = key_value else {
                return Err(self.bad_patch(format!(
                    "list element does not contain its merge key {key:?}"
                )));
            };
            updates.push((key_value, element));
        }
        for (key_value, element) in updates {
            match merged
                .iter()
                .position(|existing| existing.get(key) == Some(key_value))
            {
                Some(index) => {
                    let base = match merged.remove(index) {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    if let Some(result) = self.merge_map(base, element)? {
                        merged.insert(index, Value::Object(result));
                    }
                }
                None => {
                    if let Some(result) = self.merge_map(Map::new(), element)? {
                        merged.push(Value::Object(result));
                    }
                }
            }
        }
        Ok(merged)
    }

    /// Turns patch list elements into storable values: objects are merged
    /// into nothing (dropping nulls and directives, and elements that delete
    /// themselves); lists of lists are left alone because only atomic lists
    /// may hold them.
    fn clean_list(&mut self, items: &[Value]) -> Result<Vec<Value>, PatchError> {
        let mut cleaned = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Object(map) => {
                    if let Some(map) = self.merge_map(Map::new(), map)? {
                        cleaned.push(Value::Object(map));
                    }
                }
                other => cleaned.push(other.clone()),
            }
        }
        Ok(cleaned)
    }

    /// Reorders list `field` of `original` after `$setElementOrder/<field>`;
    /// `self.path` already ends with `field`.
    fn apply_order(
        &self,
        original: &mut Map<String, Value>,
        field: &str,
        order: &[Value],
        patch: &Map<String, Value>,
    ) -> Result<(), PatchError> {
        let directive = format!("{SET_ELEMENT_ORDER}{field}");
        let strategy = self.strategy_for(
            field,
            patch,
            patch
                .get(field)
                .and_then(Value::as_array)
                .map(Vec::as_slice),
        );
        let order_keys: Vec<&Value> = match strategy {
            Strategy::ByKey(key) => order
                .iter()
                .map(|entry| entry.get(key))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    self.bad_directive(
                        &directive,
                        format!("every entry must carry the merge key {key:?}"),
                    )
                })?,
            Strategy::Set | Strategy::Replace => {
                if let Some(bad) = order.iter().find(|v| v.is_object() || v.is_array()) {
                    return Err(self.bad_directive(
                        &directive,
                        format!(
                            "entries for a list of primitives must be primitives, got {}",
                            type_name(bad)
                        ),
                    ));
                }
                order.iter().collect()
            }
        };
        let Some(Value::Array(items)) = original.get_mut(field) else {
            return Ok(());
        };
        let rank = |item: &Value| {
            let item_key = match strategy {
                Strategy::ByKey(key) => item.get(key),
                Strategy::Set | Strategy::Replace => Some(item),
            };
            item_key
                .and_then(|k| order_keys.iter().position(|o| *o == k))
                .unwrap_or(usize::MAX)
        };
        // A stable sort keeps unnamed elements (rank MAX) in their relative
        // order, after the named ones.
        items.sort_by_cached_key(rank);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value, kind: &str) -> Value {
        strategic_merge(&target, &patch, kind).expect("patch must apply")
    }

    fn smp_err(target: Value, patch: Value, kind: &str) -> PatchError {
        strategic_merge(&target, &patch, kind).expect_err("patch must be rejected")
    }

    fn web_service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
            "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                           "protocol": "TCP", "nodePort": 31234}],
                "selector": {"app": "web"},
                "type": "NodePort"
            }
        })
    }

    #[test]
    fn kubectl_client_side_apply_port_change() {
        let patch = json!({"spec":{"$setElementOrder/ports":[{"port":8081}],
            "ports":[{"name":"http","port":8081,"targetPort":8080},{"$patch":"delete","port":80}],
            "selector":{"app":"web2"}}});
        let out = smp(web_service(), patch, "Service");
        assert_eq!(
            out,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
                "spec": {
                    "ports": [{"name": "http", "port": 8081, "targetPort": 8080}],
                    "selector": {"app": "web2"},
                    "type": "NodePort"
                }
            })
        );
    }

    #[test]
    fn keyed_list_merges_matching_element_in_place() {
        let mut svc = web_service();
        svc["spec"]["ports"] = json!([{"name": "http", "port": 80, "targetPort": 8080},
                                      {"name": "https", "port": 443, "targetPort": 8443}]);
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            "Service",
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": 9090},
                   {"name": "https", "port": 443, "targetPort": 8443}])
        );
    }

    #[test]
    fn keyed_list_element_fields_can_be_deleted_with_null() {
        let out = smp(
            web_service(),
            json!({"spec": {"ports": [{"port": 80, "nodePort": null}]}}),
            "Service",
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
        );
    }

    #[test]
    fn set_element_order_puts_named_first_and_keeps_the_rest_in_order() {
        let live = json!({"spec": {"ports": [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}]}});
        let out = smp(
            live,
            json!({"spec": {"$setElementOrder/ports": [{"port": 3}, {"port": 1}],
                            "ports": [{"port": 3, "name": "c"}]}}),
            "Service",
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 3, "name": "c"}, {"port": 1}, {"port": 2}, {"port": 4}])
        );
    }

    #[test]
    fn set_element_order_without_the_list_in_the_patch_reorders_live() {
        let live = json!({"spec": {"ports": [{"port": 1}, {"port": 2}]}});
        let out = smp(
            live,
            json!({"spec": {"$setElementOrder/ports": [{"port": 2}, {"port": 1}]}}),
            "Service",
        );
        assert_eq!(out, json!({"spec": {"ports": [{"port": 2}, {"port": 1}]}}));
    }

    #[test]
    fn list_replace_directive() {
        let mut svc = web_service();
        svc["spec"]["ports"] = json!([{"port": 80}, {"port": 443}]);
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 8080, "name": "x"}]}}),
            "Service",
        );
        assert_eq!(out["spec"]["ports"], json!([{"port": 8080, "name": "x"}]));
    }

    #[test]
    fn map_replace_directive() {
        let out = smp(
            web_service(),
            json!({"spec": {"selector": {"$patch": "replace", "tier": "fe", "gone": null}}}),
            "Service",
        );
        assert_eq!(out["spec"]["selector"], json!({"tier": "fe"}));
    }

    #[test]
    fn map_delete_directive_removes_the_map() {
        let out = smp(
            web_service(),
            json!({"spec": {"selector": {"$patch": "delete"}}}),
            "Service",
        );
        assert!(out["spec"].get("selector").is_none(), "{out}");
        assert_eq!(out["spec"]["type"], json!("NodePort"));
    }

    #[test]
    fn explicit_merge_directive_is_the_default() {
        let out = smp(
            web_service(),
            json!({"spec": {"selector": {"$patch": "merge", "tier": "fe"}}}),
            "Service",
        );
        assert_eq!(out["spec"]["selector"], json!({"app": "web", "tier": "fe"}));
    }

    #[test]
    fn labels_and_scalars_behave_like_merge_patch() {
        let live =
            json!({"metadata": {"name": "n", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let out = smp(
            live,
            json!({"metadata": {"labels": {"a": "x", "b": null, "c": "3"}}, "data": {"k2": "v2"}}),
            "ConfigMap",
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "n", "labels": {"a": "x", "c": "3"}},
                   "data": {"k": "v", "k2": "v2"}})
        );
    }

    #[test]
    fn finalizers_are_a_merge_set() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = smp(
            live.clone(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            "ConfigMap",
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));

        // kubectl apply going from [a, b] to [a, c].
        let out = smp(
            live,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"],
                                "$setElementOrder/finalizers": ["c", "a"],
                                "finalizers": ["c"]}}),
            "Lease",
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a"]}}));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let live = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "kind": "Service", "name": "a"},
            {"uid": "u2", "kind": "Service", "name": "b"}]}});
        let out = smp(
            live,
            json!({"metadata": {"ownerReferences": [
                {"uid": "u2", "controller": true}, {"$patch": "delete", "uid": "u1"},
                {"uid": "u3", "kind": "Pod", "name": "c"}]}}),
            "EndpointSlice",
        );
        assert_eq!(
            out,
            json!({"metadata": {"ownerReferences": [
                {"uid": "u2", "kind": "Service", "name": "b", "controller": true},
                {"uid": "u3", "kind": "Pod", "name": "c"}]}})
        );
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let live = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}],
                                   "podCIDRs": ["10.0.0.0/24"]}});
        let out = smp(
            live,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}],
                            "podCIDRs": ["10.0.1.0/24"]}}),
            "Node",
        );
        assert_eq!(
            out,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}],
                            "podCIDRs": ["10.0.0.0/24", "10.0.1.0/24"]}})
        );
        let out = smp(
            json!({"endpoints": [{"addresses": ["10.0.0.1"]}]}),
            json!({"endpoints": [{"addresses": ["10.0.0.2"]}]}),
            "EndpointSlice",
        );
        assert_eq!(out, json!({"endpoints": [{"addresses": ["10.0.0.2"]}]}));
    }

    #[test]
    fn node_status_conditions_and_addresses_merge_by_type() {
        let live = json!({"status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}});
        let out = smp(
            live,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
                              "addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}}),
            "Node",
        );
        assert_eq!(
            out,
            json!({"status": {
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"},
                              {"type": "ExternalIP", "address": "1.2.3.4"}]}})
        );
    }

    #[test]
    fn pod_containers_nested_lists() {
        let live = json!({"spec": {"containers": [
            {"name": "app", "image": "app:1",
             "ports": [{"containerPort": 80, "name": "http"}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "side:1"}],
            "tolerations": [{"key": "x", "operator": "Exists"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
            "containers": [{"name": "app", "image": "app:2",
                            "$setElementOrder/env": [{"name": "B"}, {"name": "C"}],
                            "env": [{"$patch": "delete", "name": "A"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
            "tolerations": [{"key": "y", "operator": "Exists"}]}});
        let out = smp(live, patch, "Pod");
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "app", "image": "app:2",
                 "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                 "env": [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]},
                {"name": "side", "image": "side:1"}],
                "tolerations": [{"key": "y", "operator": "Exists"}]}})
        );
    }

    #[test]
    fn retain_keys_drops_unlisted_keys_after_merging() {
        let live = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}, "hostPath": {"path": "/x"}}]}});
        let out = smp(
            live,
            json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["name", "configMap"],
                                         "configMap": {"name": "cm"}}]}}),
            "Pod",
        );
        assert_eq!(
            out,
            json!({"spec": {"volumes": [{"name": "data", "configMap": {"name": "cm"}}]}})
        );
    }

    #[test]
    fn retain_keys_must_list_every_key_the_patch_sets() {
        let err = smp_err(
            json!({"spec": {}}),
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            "Pod",
        );
        assert!(
            matches!(err, PatchError::RetainKeysMismatch { ref key, .. } if key == "b"),
            "{err}"
        );
        assert_eq!(err.status_code(), 422);
    }

    #[test]
    fn table_gap_infers_merge_key_from_directives() {
        // "Lease" has no keyed lists; a client that believes otherwise must
        // still not get directive garbage stored.
        let live = json!({"spec": {"things": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}});
        let out = smp(
            live,
            json!({"spec": {"$setElementOrder/things": [{"id": 2}, {"id": 3}],
                            "things": [{"id": 3, "v": "c"}, {"$patch": "delete", "id": 1}]}}),
            "Lease",
        );
        assert_eq!(
            out,
            json!({"spec": {"things": [{"id": 2, "v": "b"}, {"id": 3, "v": "c"}]}})
        );
    }

    #[test]
    fn directives_in_a_missing_list_are_not_stored() {
        let out = smp(
            json!({"spec": {}}),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}, {"port": 81}]}}),
            "Service",
        );
        assert_eq!(out, json!({"spec": {"ports": [{"port": 81}]}}));
    }

    #[test]
    fn no_directive_key_survives_anywhere() {
        let out = smp(
            web_service(),
            json!({"metadata": {"$setElementOrder/finalizers": ["f"], "finalizers": ["f"],
                                "labels": {"$patch": "replace", "x": "y"}},
                   "spec": {"$setElementOrder/ports": [{"port": 80}],
                            "ports": [{"port": 80, "$retainKeys": ["port", "name"], "name": "h"}],
                            "extra": {"$patch": "merge", "deep": {"$patch": "replace", "a": 1}}}}),
            "Service",
        );
        fn has_dollar_key(v: &Value) -> bool {
            match v {
                Value::Object(m) => m
                    .iter()
                    .any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
                Value::Array(a) => a.iter().any(has_dollar_key),
                _ => false,
            }
        }
        assert!(!has_dollar_key(&out), "{out}");
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "h"}]));
        assert_eq!(out["spec"]["extra"], json!({"deep": {"a": 1}}));
        assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
    }

    #[test]
    fn malformed_directives_are_rejected() {
        let cases = [
            json!({"spec": {"$patch": "obliterate"}}),
            json!({"spec": {"$patch": 1}}),
            json!({"spec": {"$retainKeys": "ports"}}),
            json!({"spec": {"$retainKeys": [1]}}),
            json!({"spec": {"$setElementOrder/ports": {"port": 80}}}),
            json!({"spec": {"$setElementOrder/": []}}),
            json!({"spec": {"$setElementOrder/ports": [{"name": "x"}]}}),
            json!({"metadata": {"$setElementOrder/finalizers": [{"a": 1}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"spec": {"$unknownDirective": 1}}),
            json!({"spec": {"ports": [{"$patch": "delete", "name": "http"}]}}),
            json!({"spec": {"ports": [{"$patch": "frob", "port": 80}]}}),
            json!({"$patch": "delete"}),
        ];
        for patch in cases {
            let err = smp_err(web_service(), patch.clone(), "Service");
            assert!(
                matches!(err, PatchError::BadDirective { .. }),
                "{patch}: {err}"
            );
            assert_eq!(err.status_code(), 400);
        }
    }

    #[test]
    fn structurally_wrong_patches_are_rejected() {
        let cases = [
            json!({"spec": {"ports": [{"name": "no-port-key"}]}}),
            json!({"spec": {"ports": ["80"]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        ];
        for patch in cases {
            let err = smp_err(web_service(), patch.clone(), "Service");
            assert!(
                matches!(err, PatchError::BadStrategicPatch { .. }),
                "{patch}: {err}"
            );
        }
        let err = smp_err(web_service(), json!([1]), "Service");
        assert!(matches!(err, PatchError::BadStrategicPatch { .. }));
        assert!(err.to_string().contains("<root>"), "{err}");
    }

    #[test]
    fn error_messages_name_the_field_path() {
        let err = smp_err(
            web_service(),
            json!({"spec": {"ports": [{"name": "x"}]}}),
            "Service",
        );
        assert!(err.to_string().contains("spec.ports"), "{err}");
    }

    #[test]
    fn root_replace_replaces_the_object() {
        let out = smp(
            web_service(),
            json!({"$patch": "replace", "kind": "Service", "spec": {"type": "ClusterIP"}}),
            "Service",
        );
        assert_eq!(
            out,
            json!({"kind": "Service", "spec": {"type": "ClusterIP"}})
        );
    }
}
