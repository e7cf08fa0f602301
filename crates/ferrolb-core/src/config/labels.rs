//! Kubernetes name syntax for label keys, label values and namespaces. A selector that can
//! never match (because the API server would never accept such a label) is a silent outage,
//! so it is caught here instead.

/// Checks a label key: optional `prefix/` (a DNS subdomain) and a name of at most 63
/// characters. The error explains the rule; the caller quotes the key.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Err(
                "prefix before '/' must be a lowercase DNS subdomain such as example.com".into(),
            );
        }
    }
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    check_name(name)
}

/// Checks a label value: empty, or a name of at most 63 characters.
pub(crate) fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Ok(())
    } else {
        check_name(value)
    }
}

/// Checks a namespace name (a DNS-1123 label).
pub(crate) fn check_namespace(ns: &str) -> Result<(), String> {
    if is_dns_label(ns) {
        Ok(())
    } else {
        Err("not a valid namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)".into())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    if name.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    if !edge_ok(bytes.first())
        || !edge_ok(bytes.last())
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(
            "must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    s.len() <= 63
        && edge(b.first())
        && edge(b.last())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert!(check_key("app").is_ok());
        assert!(check_key("app.kubernetes.io/name").is_ok());
        assert!(check_key("Tier_2.x").is_ok());
        assert!(check_key("-app").is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key("Example.com/x").is_err());
        assert!(check_key("example.com/").is_err());
        assert!(check_key(&"a".repeat(64)).is_err());
        assert!(check_key("a/b/c").is_err());
    }

    #[test]
    fn label_values_and_namespaces() {
        assert!(check_value("").is_ok());
        assert!(check_value("v1.2").is_ok());
        assert!(check_value("v1.").is_err());
        assert!(check_namespace("team-a").is_ok());
        assert!(check_namespace("Team-a").is_err());
        assert!(check_namespace("team_a").is_err());
        assert!(check_namespace("").is_err());
    }
}
