//! Building test objects from JSON: a base object plus what one test changes in it.

use serde_json::Value;

/// Deep-merges `b` into `a`: objects merge key by key, anything else (arrays, scalars, null)
/// replaces. Unlike a JSON merge patch (RFC 7386), a null is stored, not a deletion.
pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_and_the_rest_replaces() {
        let mut a = json!({"spec": {"type": "LoadBalancer", "ports": [1, 2]}, "x": 1});
        merge(
            &mut a,
            json!({"spec": {"ports": [3], "class": "c"}, "x": null}),
        );
        assert_eq!(
            a,
            json!({"spec": {"type": "LoadBalancer", "ports": [3], "class": "c"}, "x": null})
        );
    }
}
