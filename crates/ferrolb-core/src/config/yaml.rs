//! YAML (and therefore JSON) text to a generic tree, with parser errors cut down to one line
//! that makes sense to an operator rather than to a serde-saphyr caller.

use serde_json::Value;

/// Parses every document in `text`. YAML 1.2 booleans only: `yes`, `no`, `on` and `off` stay
/// strings, so a label value `no` is never silently turned into `false`.
pub(crate) fn documents(text: &str) -> Result<Vec<Value>, String> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
    };
    serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(|e| {
        let msg = super::error::one_line(&e.to_string());
        format!(
            "invalid YAML: {}",
            msg.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        )
    })
}

/// Parses a text that must hold at most one document; none gives `Value::Null`.
pub(crate) fn single(text: &str) -> Result<Value, String> {
    let mut docs = documents(text)?;
    match docs.len() {
        0 | 1 => Ok(docs.pop().unwrap_or(Value::Null)),
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_booleans_stay_strings() {
        let v = single("a: yes\nb: no\nc: true\n").unwrap();
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], "no");
        assert_eq!(v["c"], true);
    }

    #[test]
    fn errors_are_one_line_without_library_hints() {
        let e = single("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            e,
            "invalid YAML: duplicate mapping key: a at line 2, column 1"
        );
        assert!(!single("a: [\n").unwrap_err().contains('\n'));
        assert_eq!(
            single("a: 1\n---\nb: 2\n").unwrap_err(),
            "expected one YAML document, found 2"
        );
        assert_eq!(single("").unwrap(), Value::Null);
    }
}
