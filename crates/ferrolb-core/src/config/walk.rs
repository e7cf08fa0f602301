//! Typed reads from a parsed YAML/JSON tree that report the exact path of every unknown key and
//! every wrong type, which serde's derived deserializers cannot do while collecting all errors.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::Report;

/// Where in the document a value sits: the pool it belongs to (if known) and the path to it,
/// relative to that pool or to the top of the document.
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    pub(crate) pool: Option<&'a str>,
    pub(crate) path: String,
}

impl<'a> At<'a> {
    /// The top of a document.
    pub(crate) fn root() -> Self {
        Self {
            pool: None,
            path: String::new(),
        }
    }

    /// Where errors inside a pool are reported: under its name once it has one, by position
    /// (`origin`) while it has none.
    pub(crate) fn pool_or(name: &'a str, origin: &At<'a>) -> Self {
        if name.is_empty() {
            origin.clone()
        } else {
            At::pool(name)
        }
    }

    /// Inside the named pool, paths restart from the pool.
    pub(crate) fn pool(name: &'a str) -> Self {
        Self {
            pool: Some(name),
            path: String::new(),
        }
    }

    /// The value under `key` of this map.
    pub(crate) fn key(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Self {
            pool: self.pool,
            path,
        }
    }

    /// Item `index` of this list.
    pub(crate) fn index(&self, index: usize) -> Self {
        Self {
            pool: self.pool,
            path: format!("{}[{index}]", self.path),
        }
    }

    /// Records an error at this place.
    pub(crate) fn error(&self, report: &mut Report, message: impl Into<String>) {
        report.error(self.pool, self.path.clone(), message);
    }

    /// Records a warning at this place.
    pub(crate) fn warn(&self, report: &mut Report, message: impl Into<String>) {
        report.warn(self.pool, self.path.clone(), message);
    }
}

/// Names a value's type and, for scalars, the value itself, for "expected X, found Y".
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a map".to_string(),
    }
}

/// A scalar that YAML typed as a number or boolean but the field wants as text; quoting it is
/// the fix, and saying so saves the operator a search.
fn quote_hint(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) | Value::Number(_) => " (quote it to make it a string)",
        _ => "",
    }
}

/// The value as a map, or an error at `at`.
pub(crate) fn as_map<'v>(
    v: &'v Value,
    at: &At,
    report: &mut Report,
) -> Option<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        other => {
            at.error(report, format!("expected a map, found {}", describe(other)));
            None
        }
    }
}

/// Reports every key of `map` that is not in `allowed`, suggesting the nearest allowed one.
pub(crate) fn check_keys(map: &Map<String, Value>, allowed: &[&str], at: &At, report: &mut Report) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            let hint = match did_you_mean(key, allowed.iter().copied()) {
                Some(s) => format!(" (did you mean {s:?}?)"),
                None => format!(" (expected one of: {})", allowed.join(", ")),
            };
            at.key(key).error(report, format!("unknown field{hint}"));
        }
    }
}

/// The value under `key`, treating an explicit `null` (`key:` with nothing after it) as absent,
/// the way Kubernetes treats it.
/// Reads a pool's `name` (empty when missing or not a string; the error is reported).
pub(crate) fn pool_name(map: &Map<String, Value>, origin: &At, report: &mut Report) -> String {
    match get(map, "name") {
        Some(v) => string(v, &origin.key("name"), report).unwrap_or_default(),
        None => String::new(),
    }
}

pub(crate) fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A boolean field, `default` when absent.
pub(crate) fn bool_field(
    map: &Map<String, Value>,
    key: &str,
    default: bool,
    at: &At,
    report: &mut Report,
) -> bool {
    match get(map, key) {
        None => default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            at.key(key).error(
                report,
                format!("expected true or false, found {}", describe(other)),
            );
            default
        }
    }
}

/// A string value, or an error at `at`.
pub(crate) fn string(v: &Value, at: &At, report: &mut Report) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            at.error(
                report,
                format!(
                    "expected a string, found {}{}",
                    describe(other),
                    quote_hint(other)
                ),
            );
            None
        }
    }
}

/// A list of strings under `key`, each with its index so later errors can point at it.
/// Absent means empty; items of the wrong type are reported and skipped.
pub(crate) fn string_list(
    map: &Map<String, Value>,
    key: &str,
    at: &At,
    report: &mut Report,
) -> Vec<(usize, String)> {
    let at = at.key(key);
    match get(map, key) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| string(v, &at.index(i), report).map(|s| (i, s)))
            .collect(),
        Some(other) => {
            at.error(
                report,
                format!("expected a list, found {}", describe(other)),
            );
            Vec::new()
        }
    }
}

/// A map of strings to strings under `key` (labels, selectors). Absent means empty.
pub(crate) fn string_map(
    map: &Map<String, Value>,
    key: &str,
    at: &At,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let at = at.key(key);
    let Some(v) = get(map, key) else {
        return BTreeMap::new();
    };
    let Some(m) = as_map(v, &at, report) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        if let Value::Object(_) = v {
            // The most likely reason is a Kubernetes-style `matchLabels:` wrapper.
            at.key(k).error(
                report,
                "expected a string, found a map (write the labels directly, without matchLabels)",
            );
        } else if let Some(s) = string(v, &at.key(k), report) {
            out.insert(k.clone(), s);
        }
    }
    out
}

/// The candidate closest to `word` if it is a plausible typo of it: same letters in another
/// case, or at most two edits away.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.to_lowercase() == lower {
                0
            } else {
                edit_distance(&lower, &c.to_lowercase())
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= 2.min(c.len() / 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance; inputs are short keys, so the simple quadratic form is plenty.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["autoAssign", "avoidBuggyIPs", "addresses", "name"];
        assert_eq!(did_you_mean("autoassign", keys), Some("autoAssign"));
        assert_eq!(did_you_mean("adresses", keys), Some("addresses"));
        assert_eq!(did_you_mean("nmae", keys), Some("name"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(did_you_mean("x", keys), None);
    }
}
