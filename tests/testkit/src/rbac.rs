//! RBAC minimality checks: every rule of a manifest must be needed, so the tests run their
//! scenario once per rule with that one rule removed and expect a refused request.

use serde_json::Value;

/// For each rule of each Role/ClusterRole in `docs`: a name for it and a copy of `docs` with
/// exactly that rule removed.
pub fn without_each_rule(docs: &[Value]) -> Vec<(String, Vec<Value>)> {
    let mut variants = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let rules = doc["rules"].as_array().cloned().unwrap_or_default();
        for (r, rule) in rules.iter().enumerate() {
            let mut without = docs.to_vec();
            if let Some(list) = without[d]["rules"].as_array_mut() {
                list.remove(r);
            }
            let name = format!(
                "{} {} rule {r}: {rule}",
                doc["kind"], doc["metadata"]["name"]
            );
            variants.push((name, without));
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_variant_per_rule_each_missing_only_that_rule() {
        let docs = vec![
            json!({"kind": "Role", "metadata": {"name": "a"}, "rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "a"}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "b"}, "rules": [{"verbs": ["watch"]}]}),
        ];
        let v = without_each_rule(&docs);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].1[0]["rules"], json!([{"verbs": ["list"]}]));
        assert_eq!(v[1].1[0]["rules"], json!([{"verbs": ["get"]}]));
        assert_eq!(v[2].1[2]["rules"], json!([]));
        assert_eq!(v[2].1[0], docs[0], "other documents untouched");
        assert!(v[1].0.contains("rule 1"), "{}", v[1].0);
    }
}
