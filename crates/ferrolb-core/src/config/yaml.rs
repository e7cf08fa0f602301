//! YAML (and therefore JSON) text to a generic tree, with parser errors cut down to one line
//! that makes sense to an operator rather than to a serde-saphyr caller.

use serde_json::Value;

/// Parses every document in `text`. YAML 1.2 booleans only: `yes`, `no`, `on` and `off` stay
/// strings, so a label value `no` is never silently turned into `false`.
pub(crate) fn documents(text: &str) -> Result<Vec<Value>, String> {
    // YAML allows only printable characters; the parser would stop at a NUL and read what
    // came before as a complete (possibly empty) config, so reject them with their position.
    if let Some((line, column, c)) = first_non_printable(text) {
        return Err(format!(
            "invalid YAML: non-printable character U+{:04X} at line {line}, column {column}",
            u32::from(c)
        ));
    }
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

/// The first character YAML 1.2 does not allow in a stream (C0 controls other than tab, line
/// feed and carriage return, DEL, C1 controls other than NEL, and U+FFFE/U+FFFF), with its
/// 1-based line and column.
fn first_non_printable(text: &str) -> Option<(usize, usize, char)> {
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        let forbidden = matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
            || (('\u{80}'..='\u{9f}').contains(&c) && c != '\u{85}')
            || c == '\u{fffe}'
            || c == '\u{ffff}';
        if forbidden {
            return Some((line, column, c));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    None
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
    fn non_printable_characters_are_rejected_where_they_are() {
        // The parser alone stops at a NUL and would read this as an empty config.
        assert_eq!(
            single("\u{0}\u{1}pools: []").unwrap_err(),
            "invalid YAML: non-printable character U+0000 at line 1, column 1"
        );
        assert_eq!(
            single("pools:\n  - name: a\u{7f}\n").unwrap_err(),
            "invalid YAML: non-printable character U+007F at line 2, column 12"
        );
        assert!(single("a: \"tab\there\"\r\nb: 1\n").is_ok());
    }

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
