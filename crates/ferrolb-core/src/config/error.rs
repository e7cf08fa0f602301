//! The one error shape every config problem is reported in, so the controller's Event, the
//! log line and `ferrolb check-config` all say the same thing.

use std::fmt;

use thiserror::Error;

/// One problem in a config: which pool (when it belongs to one), which field, and what is wrong
/// with the value. Displays as a single line so it fits an Event message and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", render(.pool.as_deref(), .field, .message))]
pub struct ConfigError {
    /// The pool's name, when the problem is inside a named pool.
    pub pool: Option<String>,
    /// Where the problem is: a path relative to the pool (`addresses[2]`), or from the top of
    /// the config when there is no pool (`l2.garp.interval`, `pools[3].name`).
    pub field: String,
    /// What is wrong, quoting the offending value.
    pub message: String,
}

impl ConfigError {
    /// A problem at `field`, inside `pool` if given.
    pub fn new(pool: Option<&str>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pool: pool.map(str::to_string),
            field: field.into(),
            message: message.into(),
        }
    }
}

fn render(pool: Option<&str>, field: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(pool) = pool {
        out.push_str(&format!("pool {pool:?}: "));
    }
    if !field.is_empty() {
        out.push_str(&escape_controls(field));
        out.push_str(": ");
    }
    out.push_str(&escape_controls(message));
    out
}

/// Messages quote user input (keys, values, parser excerpts). Escaping control characters keeps
/// every error on one line of an Event, a log or `check-config` output, and keeps input from
/// forging extra lines there.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Every problem found in a config; a config is checked completely so the operator can fix
/// everything in one edit instead of one error per round trip.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors and warnings while a config is walked, so no check stops the others.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
}

impl Report {
    /// Records an error.
    pub(crate) fn error(
        &mut self,
        pool: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError::new(pool, field, message));
    }

    /// Records a warning, formatted like an error so operators read both the same way.
    pub(crate) fn warn(
        &mut self,
        pool: Option<&str>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.warnings
            .push(ConfigError::new(pool, field, message).to_string());
    }
}

/// Turns a multi-line message from a library (YAML or regex errors draw carets) into one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn errors_never_span_lines_or_carry_control_characters() {
        let e = ConfigError::new(Some("p\nq"), "a\rb", "bad \"x\ny\u{3}\"");
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text, r#"pool "p\nq": a\rb: bad "x\ny\u{3}""#);
    }
}
