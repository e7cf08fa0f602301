//! Kubernetes label selectors as MetalLB uses them: lists of `metav1.LabelSelector`, OR-ed.
//! FerroLB's selectors are a single `matchLabels`, so this decides when a MetalLB selector
//! list can be written that way, and evaluates pool selectors against the imported pools.

use std::collections::BTreeMap;

use serde_json::Value;

/// One `metav1.LabelSelector`, read leniently (the API server validated it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Selector {
    pub match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`.
    pub expressions: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    /// Reads a selector; `None` when it is not an object.
    pub fn read(v: &Value) -> Option<Self> {
        let m = v.as_object()?;
        let mut s = Selector::default();
        if let Some(Value::Object(labels)) = m.get("matchLabels") {
            for (k, v) in labels {
                s.match_labels.insert(k.clone(), scalar(v));
            }
        }
        if let Some(Value::Array(exprs)) = m.get("matchExpressions") {
            for e in exprs {
                let key = e.get("key").map(scalar).unwrap_or_default();
                let op = e.get("operator").map(scalar).unwrap_or_default();
                let values = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().map(scalar).collect())
                    .unwrap_or_default();
                s.expressions.push((key, op, values));
            }
        }
        Some(s)
    }

    /// The selector as a plain `matchLabels`, when it is one: `In` with a single value is the
    /// same as a label match, anything else is not expressible.
    pub fn as_match_labels(&self) -> Option<BTreeMap<String, String>> {
        let mut out = self.match_labels.clone();
        for (key, op, values) in &self.expressions {
            match (op.as_str(), values.as_slice()) {
                ("In", [one]) => {
                    if out
                        .insert(key.clone(), one.clone())
                        .is_some_and(|v| &v != one)
                    {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// Whether `labels` satisfy the selector (the Kubernetes rules; an empty selector matches
    /// everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(k, op, values)| {
                let have = labels.get(k);
                match op.as_str() {
                    "In" => have.is_some_and(|h| values.contains(h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    }
}

/// A label value or other scalar as text (YAML may have typed `true` or `1`).
pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A selector list (OR-ed) as one `matchLabels`: `Some(empty)` for no selectors (everything),
/// `Some(labels)` for exactly one expressible selector, `None` otherwise.
pub(super) fn list_as_match_labels(list: &[Selector]) -> Option<BTreeMap<String, String>> {
    match list {
        [] => Some(BTreeMap::new()),
        [one] => one.as_match_labels(),
        _ => None,
    }
}
