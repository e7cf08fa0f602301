//! JSON patch (RFC 6902) with the behaviour of the evanphx/json-patch library
//! the real API server uses.

use serde_json::Value;

use super::{type_name, PatchError};

/// The most operations one JSON patch may carry; the real API server rejects
/// longer patches, and the limit keeps a hostile body from pinning the CPU.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies a JSON patch (RFC 6902, `application/json-patch+json`).
///
/// kube's finalizer helper and `kubectl patch --type=json` send these. The
/// result differs from a textbook RFC 6902 implementation exactly where the
/// API server does:
/// - `test` with `"value": null` succeeds when the key is absent from an
///   existing object (kube relies on this to add the first finalizer);
/// - `replace` and `remove` of a missing key fail.
///
/// The patch is applied to a copy, so it is atomic: on any error the caller
/// still holds the untouched `target`. Array indices must be canonical
/// decimal (no sign, no leading zeros); `-` appends for `add` and is invalid
/// elsewhere. Negative indices (an evanphx extension no client uses) are
/// rejected.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = ops else {
        return Err(PatchError::JsonPatchNotArray {
            found: type_name(ops),
        });
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: ops.len(),
            max: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_operation(&mut doc, index, op)?;
    }
    Ok(doc)
}

fn apply_operation(doc: &mut Value, index: usize, op: &Value) -> Result<(), PatchError> {
    let malformed = |reason: String| PatchError::MalformedOperation { index, reason };
    let Value::Object(op) = op else {
        return Err(malformed(format!(
            "expected an object, got {}",
            type_name(op)
        )));
    };
    let string_member = |name: &str| -> Result<&str, PatchError> {
        match op.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(malformed(format!(
                "member {name:?} must be a string, got {}",
                type_name(other)
            ))),
            None => Err(malformed(format!("missing member {name:?}"))),
        }
    };
    let value_member = || -> Result<&Value, PatchError> {
        op.get("value")
            .ok_or_else(|| malformed("missing member \"value\"".to_owned()))
    };

    let name = string_member("op")?;
    let path_str = string_member("path")?;
    let path = parse_pointer(index, path_str)?;
    let ctx = OpContext {
        index,
        op: "",
        path: path_str,
    };
    match name {
        "add" => add(doc, &path, value_member()?.clone(), &ctx.with_op("add")),
        "remove" => remove(doc, &path, &ctx.with_op("remove")).map(drop),
        "replace" => replace(doc, &path, value_member()?.clone(), &ctx.with_op("replace")),
        "move" => {
            let from_str = string_member("from")?;
            let from = parse_pointer(index, from_str)?;
            let ctx = ctx.with_op("move");
            if from == path {
                // Moving a value onto itself is a no-op, but only if it exists.
                return lookup(doc, &from).map(drop).ok_or_else(|| {
                    ctx.fail(format!("source {from_str:?} does not exist"), from_str)
                });
            }
            if path.len() > from.len() && path.starts_with(&from) {
                return Err(ctx.fail(
                    format!("cannot move {from_str:?} into one of its own children"),
                    path_str,
                ));
            }
            let value = remove(
                doc,
                &from,
                &OpContext {
                    path: from_str,
                    ..ctx
                },
            )?;
            add(doc, &path, value, &ctx)
        }
        "copy" => {
            let from_str = string_member("from")?;
            let from = parse_pointer(index, from_str)?;
            let ctx = ctx.with_op("copy");
            let value = lookup(doc, &from)
                .cloned()
                .ok_or_else(|| ctx.fail(format!("source {from_str:?} does not exist"), from_str))?;
            add(doc, &path, value, &ctx)
        }
        "test" => test(doc, &path, value_member()?, &ctx.with_op("test")),
        other => Err(malformed(format!("unknown op {other:?}"))),
    }
}

/// Where an operation is, so that each failure can say so.
#[derive(Clone, Copy)]
struct OpContext<'a> {
    index: usize,
    op: &'static str,
    path: &'a str,
}

impl<'a> OpContext<'a> {
    fn with_op(self, op: &'static str) -> Self {
        OpContext { op, ..self }
    }

    fn fail(&self, reason: String, path: &str) -> PatchError {
        PatchError::OperationFailed {
            index: self.index,
            op: self.op,
            path: path.to_owned(),
            reason,
        }
    }

    fn fail_here(&self, reason: String) -> PatchError {
        self.fail(reason, self.path)
    }
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
fn parse_pointer(index: usize, pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PatchError::InvalidPointer {
            index,
            pointer: pointer.to_owned(),
            reason: "must be empty or start with '/'",
        });
    };
    rest.split('/')
        .map(|raw| {
            // Decoding left to right is what makes "~01" mean "~1" and not "/".
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    token.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => {
                        return Err(PatchError::InvalidPointer {
                            index,
                            pointer: pointer.to_owned(),
                            reason: "'~' must be followed by '0' or '1'",
                        })
                    }
                }
            }
            Ok(token)
        })
        .collect()
}

/// Parses an array index token; `None` for anything that is not a canonical
/// non-negative decimal (which includes `-`).
fn array_index(token: &str) -> Option<usize> {
    let canonical = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if canonical {
        token.parse().ok()
    } else {
        None
    }
}

fn lookup<'v>(doc: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => array_index(token).and_then(|i| items.get(i)),
        _ => None,
    })
}

fn lookup_mut<'v>(doc: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => array_index(token).and_then(move |i| items.get_mut(i)),
        _ => None,
    })
}

/// Finds the container that holds the last token of `path`; `path` must not
/// be empty.
fn parent_mut<'v>(
    doc: &'v mut Value,
    path: &'v [String],
    ctx: &OpContext<'_>,
) -> Result<(&'v mut Value, &'v str), PatchError> {
    let Some((last, parent_path)) = path.split_last() else {
        return Err(ctx.fail_here("the document root has no parent".to_owned()));
    };
    match lookup_mut(doc, parent_path) {
        Some(parent @ (Value::Object(_) | Value::Array(_))) => Ok((parent, last)),
        Some(other) => Err(ctx.fail_here(format!(
            "parent of the target is a {}, not an object or array",
            type_name(other)
        ))),
        None => Err(ctx.fail_here("parent of the target does not exist".to_owned())),
    }
}

fn add(
    doc: &mut Value,
    path: &[String],
    value: Value,
    ctx: &OpContext<'_>,
) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, token) = parent_mut(doc, path, ctx)?;
    match parent {
        Value::Object(map) => {
            map.insert(token.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            if token == "-" {
                items.push(value);
                return Ok(());
            }
            match array_index(token) {
                Some(i) if i <= items.len() => {
                    items.insert(i, value);
                    Ok(())
                }
                Some(i) => Err(ctx.fail_here(format!(
                    "index {i} is out of bounds for an array of length {}",
                    items.len()
                ))),
                None => Err(ctx.fail_here(format!("{token:?} is not a valid array index"))),
            }
        }
        _ => Err(ctx.fail_here("parent is not a container".to_owned())),
    }
}

fn remove(doc: &mut Value, path: &[String], ctx: &OpContext<'_>) -> Result<Value, PatchError> {
    if path.is_empty() {
        return Err(ctx.fail_here("cannot remove the document root".to_owned()));
    }
    let (parent, token) = parent_mut(doc, path, ctx)?;
    match parent {
        Value::Object(map) => map
            .remove(token)
            .ok_or_else(|| ctx.fail_here(format!("key {token:?} does not exist"))),
        Value::Array(items) => match array_index(token) {
            Some(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(ctx.fail_here(format!(
                "{token:?} is not an existing index of an array of length {}",
                items.len()
            ))),
        },
        _ => Err(ctx.fail_here("parent is not a container".to_owned())),
    }
}

fn replace(
    doc: &mut Value,
    path: &[String],
    value: Value,
    ctx: &OpContext<'_>,
) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, token) = parent_mut(doc, path, ctx)?;
    let slot = match parent {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => array_index(token).and_then(|i| items.get_mut(i)),
        _ => None,
    };
    match slot {
        Some(slot) => {
            *slot = value;
            Ok(())
        }
        None => Err(ctx.fail_here("target does not exist".to_owned())),
    }
}

fn test(
    doc: &Value,
    path: &[String],
    expected: &Value,
    ctx: &OpContext<'_>,
) -> Result<(), PatchError> {
    let failed = |reason: String| PatchError::TestFailed {
        index: ctx.index,
        path: ctx.path.to_owned(),
        reason,
    };
    let actual = match path.split_last() {
        None => Some(doc),
        Some((last, parent_path)) => match lookup(doc, parent_path) {
            Some(Value::Object(map)) => map.get(last),
            Some(Value::Array(items)) => match array_index(last).and_then(|i| items.get(i)) {
                Some(v) => Some(v),
                None => {
                    return Err(failed(
                        "does not exist (array index out of range)".to_owned(),
                    ))
                }
            },
            Some(other) => {
                return Err(failed(format!(
                    "cannot exist: its parent is a {}",
                    type_name(other)
                )))
            }
            None => return Err(failed("does not exist (its parent is missing)".to_owned())),
        },
    };
    match actual {
        // The evanphx quirk: a missing key "equals" null.
        None if expected.is_null() => Ok(()),
        None => Err(failed(format!("does not exist, expected {expected}"))),
        Some(actual) if json_equal(actual, expected) => Ok(()),
        Some(actual) => Err(failed(format!("is {actual}, expected {expected}"))),
    }
}

/// RFC 6902 equality: like `==`, except that numbers compare by numeric value
/// (`1` equals `1.0`), which `serde_json::Number` equality does not do.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let as_int = |n: &serde_json::Number| {
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
            };
            match (as_int(x), as_int(y)) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jp(target: Value, ops: Value) -> Result<Value, PatchError> {
        json_patch(&target, &ops)
    }

    #[test]
    fn finalizer_add_to_object_without_finalizers() {
        let obj = json!({"metadata": {"name": "web", "namespace": "default"}});
        let out = jp(
            obj,
            json!([{"op":"test","path":"/metadata/finalizers","value":null},
                   {"op":"add","path":"/metadata/finalizers","value":["example.io/cleanup"]}]),
        )
        .expect("kube's first-finalizer patch must apply");
        assert_eq!(
            out,
            json!({"metadata": {"name": "web", "namespace": "default",
                                "finalizers": ["example.io/cleanup"]}})
        );
    }

    #[test]
    fn finalizer_add_fails_when_someone_else_added_one_first() {
        let obj = json!({"metadata": {"finalizers": ["other.io/f"]}});
        let err = jp(
            obj,
            json!([{"op":"test","path":"/metadata/finalizers","value":null},
                   {"op":"add","path":"/metadata/finalizers","value":["example.io/cleanup"]}]),
        )
        .expect_err("test null against an existing list must fail");
        assert!(
            matches!(err, PatchError::TestFailed { index: 0, .. }),
            "{err}"
        );
        assert_eq!(err.status_code(), 422);
    }

    #[test]
    fn finalizer_append_to_existing_list() {
        let obj = json!({"metadata": {"finalizers": ["other.io/f"]}});
        let out = jp(
            obj,
            json!([{"op":"test","path":"/metadata/finalizers","value":["other.io/f"]},
                   {"op":"add","path":"/metadata/finalizers/-","value":"example.io/cleanup"}]),
        )
        .expect("append form must apply");
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["other.io/f", "example.io/cleanup"]}})
        );
    }

    #[test]
    fn finalizer_removal_sequence() {
        let obj = json!({"metadata": {"finalizers": ["example.io/cleanup"],
                                      "deletionTimestamp": "2024-01-01T00:00:00Z"}});
        let ops = json!([{"op":"test","path":"/metadata/finalizers/0","value":"example.io/cleanup"},
                         {"op":"remove","path":"/metadata/finalizers/0"}]);
        let out = jp(obj, ops.clone()).expect("removal must apply");
        // The server, not the patch engine, prunes the now-empty list.
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": [], "deletionTimestamp": "2024-01-01T00:00:00Z"}})
        );
        // Replaying the same patch fails on the test: the index is gone.
        let err = jp(out, ops).expect_err("second removal must fail");
        assert!(
            matches!(err, PatchError::TestFailed { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn finalizer_removal_fails_if_first_finalizer_is_someone_elses() {
        let obj = json!({"metadata": {"finalizers": ["other.io/f", "example.io/cleanup"]}});
        let err = jp(
            obj,
            json!([{"op":"test","path":"/metadata/finalizers/0","value":"example.io/cleanup"},
                   {"op":"remove","path":"/metadata/finalizers/0"}]),
        )
        .expect_err("must fail");
        assert!(matches!(err, PatchError::TestFailed { .. }));
    }

    #[test]
    fn test_null_needs_an_existing_parent() {
        let err = jp(
            json!({}),
            json!([{"op":"test","path":"/metadata/finalizers","value":null}]),
        )
        .expect_err("parent missing");
        assert!(matches!(err, PatchError::TestFailed { .. }));
    }

    #[test]
    fn test_null_matches_an_explicit_null() {
        jp(
            json!({"a": null}),
            json!([{"op":"test","path":"/a","value":null}]),
        )
        .expect("null == null");
    }

    #[test]
    fn test_null_against_empty_list_fails() {
        // The reason the server must drop empty finalizer arrays.
        let err = jp(
            json!({"metadata": {"finalizers": []}}),
            json!([{"op":"test","path":"/metadata/finalizers","value":null}]),
        )
        .expect_err("[] is not null");
        assert!(matches!(err, PatchError::TestFailed { .. }));
    }

    #[test]
    fn test_non_null_against_missing_key_fails() {
        let err = jp(
            json!({"a": {}}),
            json!([{"op":"test","path":"/a/b","value":1}]),
        )
        .expect_err("missing");
        assert!(matches!(err, PatchError::TestFailed { .. }));
    }

    #[test]
    fn test_compares_numbers_by_value_and_objects_deeply() {
        let doc = json!({"n": 1, "o": {"a": [1, {"b": 2.0}]}});
        jp(
            doc.clone(),
            json!([{"op":"test","path":"/n","value":1.0},
                   {"op":"test","path":"/o","value":{"a":[1.0,{"b":2}]}}]),
        )
        .expect("numeric equality");
        jp(doc, json!([{"op":"test","path":"/o","value":{"a":[1]}}])).expect_err("different");
    }

    #[test]
    fn test_against_whole_document() {
        jp(
            json!({"a": 1}),
            json!([{"op":"test","path":"","value":{"a":1}}]),
        )
        .expect("root test");
    }

    #[test]
    fn add_cases() {
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op":"add","path":"/b","value":[1]}])
            )
            .expect("add key"),
            json!({"a": 1, "b": [1]})
        );
        assert_eq!(
            jp(json!({"a": 1}), json!([{"op":"add","path":"/a","value":2}]))
                .expect("add overwrites"),
            json!({"a": 2})
        );
        assert_eq!(
            jp(
                json!({"l": [1, 3]}),
                json!([{"op":"add","path":"/l/1","value":2}])
            )
            .expect("insert in middle"),
            json!({"l": [1, 2, 3]})
        );
        assert_eq!(
            jp(
                json!({"l": [1]}),
                json!([{"op":"add","path":"/l/1","value":2}])
            )
            .expect("index == len"),
            json!({"l": [1, 2]})
        );
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op":"add","path":"","value":[true]}])
            )
            .expect("root"),
            json!([true])
        );
    }

    #[test]
    fn add_rejects_bad_targets() {
        for (doc, path) in [
            (json!({"l": [1]}), "/l/2"),
            (json!({"l": [1]}), "/l/01"),
            (json!({"l": [1]}), "/l/-1"),
            (json!({"l": [1]}), "/l/x"),
            (json!({}), "/missing/child"),
            (json!({"s": "str"}), "/s/x"),
        ] {
            let err = jp(doc, json!([{"op":"add","path":path,"value":0}])).expect_err(path);
            assert!(
                matches!(
                    err,
                    PatchError::OperationFailed {
                        index: 0,
                        op: "add",
                        ..
                    }
                ),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn pointer_escapes() {
        let doc = json!({"metadata": {"annotations": {"example.io/x": "1", "a~b": "2"}}});
        let out = jp(
            doc,
            json!([{"op":"replace","path":"/metadata/annotations/example.io~1x","value":"one"},
                   {"op":"remove","path":"/metadata/annotations/a~0b"},
                   {"op":"add","path":"/metadata/annotations/~01","value":"tilde-one"}]),
        )
        .expect("escapes");
        assert_eq!(
            out,
            json!({"metadata": {"annotations": {"example.io/x": "one", "~1": "tilde-one"}}})
        );
    }

    #[test]
    fn invalid_pointers() {
        for path in ["a/b", "/a~2", "/a~"] {
            let err = jp(json!({}), json!([{"op":"add","path":path,"value":0}])).expect_err(path);
            assert!(
                matches!(err, PatchError::InvalidPointer { index: 0, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_token_is_a_real_key() {
        assert_eq!(
            jp(json!({}), json!([{"op":"add","path":"/","value":1}])).expect("'' key"),
            json!({"": 1})
        );
    }

    #[test]
    fn remove_and_replace_of_missing_targets_fail() {
        for op in ["remove", "replace"] {
            for path in ["/missing", "/l/1", "/l/-", "/nope/x"] {
                let err = jp(json!({"l": [1]}), json!([{"op":op,"path":path,"value":0}]))
                    .expect_err(path);
                assert!(
                    matches!(err, PatchError::OperationFailed { .. }),
                    "{op} {path}: {err}"
                );
            }
        }
        let err = jp(json!({}), json!([{"op":"remove","path":""}])).expect_err("root");
        assert!(matches!(err, PatchError::OperationFailed { .. }));
    }

    #[test]
    fn remove_and_replace_existing() {
        assert_eq!(
            jp(
                json!({"a": 1, "l": [1, 2, 3]}),
                json!([{"op":"remove","path":"/l/1"},{"op":"replace","path":"/a","value":{"x":1}}])
            )
            .expect("ok"),
            json!({"a": {"x": 1}, "l": [1, 3]})
        );
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op":"replace","path":"","value":7}])
            )
            .expect("root"),
            json!(7)
        );
    }

    #[test]
    fn move_and_copy() {
        assert_eq!(
            jp(
                json!({"a": {"b": 1}, "l": [1, 2, 3]}),
                json!([{"op":"move","from":"/a/b","path":"/c"},
                       {"op":"move","from":"/l/0","path":"/l/-"},
                       {"op":"copy","from":"/l","path":"/m"}])
            )
            .expect("ok"),
            json!({"a": {}, "c": 1, "l": [2, 3, 1], "m": [2, 3, 1]})
        );
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op":"move","from":"/a","path":"/a"}])
            )
            .expect("self move"),
            json!({"a": 1})
        );
    }

    #[test]
    fn move_into_own_child_or_from_missing_fails() {
        let err = jp(
            json!({"a": {"b": 1}}),
            json!([{"op":"move","from":"/a","path":"/a/b/c"}]),
        )
        .expect_err("own child");
        assert!(
            matches!(err, PatchError::OperationFailed { op: "move", .. }),
            "{err}"
        );
        for op in ["move", "copy"] {
            let err = jp(json!({}), json!([{"op":op,"from":"/x","path":"/y"}])).expect_err(op);
            assert!(matches!(err, PatchError::OperationFailed { .. }), "{err}");
        }
    }

    #[test]
    fn malformed_operations() {
        for ops in [
            json!([1]),
            json!([{"path":"/a","value":1}]),
            json!([{"op":"add","value":1}]),
            json!([{"op":"add","path":"/a"}]),
            json!([{"op":"replace","path":"/a"}]),
            json!([{"op":"test","path":"/a"}]),
            json!([{"op":"move","path":"/a"}]),
            json!([{"op":"copy","path":"/a","from":3}]),
            json!([{"op":"frobnicate","path":"/a"}]),
            json!([{"op":"add","path":5,"value":1}]),
        ] {
            let err = jp(json!({"a": 1}), ops.clone()).expect_err("malformed");
            assert!(
                matches!(err, PatchError::MalformedOperation { index: 0, .. }),
                "{ops}: {err}"
            );
        }
        assert!(matches!(
            jp(json!({}), json!({"op":"add"})),
            Err(PatchError::JsonPatchNotArray { found: "object" })
        ));
    }

    #[test]
    fn errors_carry_the_failing_index_and_nothing_is_applied() {
        let doc = json!({"a": 1});
        let err = jp(
            doc.clone(),
            json!([{"op":"add","path":"/b","value":2},
                   {"op":"replace","path":"/zzz","value":3}]),
        )
        .expect_err("second op fails");
        match &err {
            PatchError::OperationFailed {
                index, op, path, ..
            } => {
                assert_eq!((*index, *op, path.as_str()), (1, "replace", "/zzz"));
            }
            other => panic!("unexpected error {other}"),
        }
        assert_eq!(doc, json!({"a": 1}));
        assert!(err.to_string().contains("operation 1"), "{err}");
    }

    #[test]
    fn empty_patch_is_identity_and_limit_is_enforced() {
        assert_eq!(
            jp(json!({"a": 1}), json!([])).expect("empty"),
            json!({"a": 1})
        );
        let ops = Value::Array(vec![
            json!({"op":"test","path":"","value":null});
            MAX_JSON_PATCH_OPERATIONS + 1
        ]);
        assert!(matches!(
            jp(json!({}), ops),
            Err(PatchError::TooManyOperations { .. })
        ));
    }
}
