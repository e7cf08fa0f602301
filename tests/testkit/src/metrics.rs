//! Reading the Prometheus text the daemons serve on `/metrics`, one way for every test, bench
//! and the sandbox: a sample line is `name`, optional `{labels}`, a space, the value (and
//! perhaps a timestamp); `#` lines are comments or metadata.

use std::collections::BTreeSet;

/// One sample line, borrowed from the exposition text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The metric name.
    pub name: &'a str,
    /// The name and the label set exactly as printed (`name` or `name{a="b"}`).
    pub series: &'a str,
    /// The value.
    pub value: f64,
}

/// Every sample line of `text` whose value parses, in order. Label values may hold spaces,
/// braces and escaped quotes.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

fn sample(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end == 0 {
        return None;
    }
    let series_end = if line[name_end..].starts_with('{') {
        name_end + labels_len(&line[name_end..])?
    } else {
        name_end
    };
    let value = line[series_end..].split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: &line[..name_end],
        series: &line[..series_end],
        value,
    })
}

/// The length of the `{...}` block at the start of `s`, quotes and escapes respected.
fn labels_len(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The value of the sample whose name and labels are exactly `series` as printed, e.g.
/// `ferrolb_allocation_failures_total{reason="pool_exhausted"}` or `ferrolb_leader`.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    samples(text).find(|s| s.series == series).map(|s| s.value)
}

/// The value of the first sample of metric `name`, whatever its labels.
pub fn first_value(text: &str, name: &str) -> Option<f64> {
    samples(text).find(|s| s.name == name).map(|s| s.value)
}

/// What tests mean by "the value of X": for a bare metric name the first sample of that metric
/// whatever its labels, for a series written with labels (`name{ip="…"}`) exactly that series.
pub fn value(text: &str, name_or_series: &str) -> Option<f64> {
    if name_or_series.contains('{') {
        series_value(text, name_or_series)
    } else {
        first_value(text, name_or_series)
    }
}

/// The sum over every sample of metric `name` (0 when there is none).
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The sample names the text makes queryable: those of sample lines, plus the names a
/// declared family yields even before its first sample (`_total` for counters,
/// `_bucket`/`_sum`/`_count` for histograms).
pub fn exported_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    out.insert(format!("{}_total", name.trim_end_matches("_total")));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        out.insert(format!("{name}{s}"));
                    }
                }
                _ => {
                    out.insert(name.to_string());
                }
            }
        } else if let Some(s) = sample(line) {
            out.insert(s.name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ferrolb_leader Whether this replica leads.
# TYPE ferrolb_leader gauge
ferrolb_leader 1
# TYPE ferrolb_allocation_failures counter
ferrolb_allocation_failures_total{reason="pool_exhausted"} 2
ferrolb_allocation_failures_total{reason="a } and \" in it"} 3 1700000000
ferrolb_leader_changes_total 7
# TYPE ferrolb_reconcile_duration_seconds histogram
# EOF
"#;

    #[test]
    fn value_takes_a_name_or_an_exact_series() {
        assert_eq!(value(TEXT, "ferrolb_allocation_failures_total"), Some(2.0));
        assert_eq!(
            value(
                TEXT,
                r#"ferrolb_allocation_failures_total{reason="a } and \" in it"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            value(TEXT, r#"ferrolb_allocation_failures_total{reason="other"}"#),
            None
        );
    }

    #[test]
    fn exact_series_first_sample_and_sum() {
        assert_eq!(series_value(TEXT, "ferrolb_leader"), Some(1.0));
        assert_eq!(
            series_value(
                TEXT,
                r#"ferrolb_allocation_failures_total{reason="pool_exhausted"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            series_value(TEXT, "ferrolb_allocation_failures_total"),
            None
        );
        // A name is never matched as the prefix of a longer one.
        assert_eq!(first_value(TEXT, "ferrolb_leader"), Some(1.0));
        assert_eq!(first_value(TEXT, "ferrolb_leader_changes"), None);
        assert_eq!(
            first_value(TEXT, "ferrolb_allocation_failures_total"),
            Some(2.0)
        );
        assert_eq!(sum(TEXT, "ferrolb_allocation_failures_total"), 5.0);
        assert_eq!(sum(TEXT, "ferrolb_missing_total"), 0.0);
    }

    #[test]
    fn exported_names_include_declared_families() {
        let names = exported_names(TEXT);
        for n in [
            "ferrolb_leader",
            "ferrolb_allocation_failures_total",
            "ferrolb_leader_changes_total",
            "ferrolb_reconcile_duration_seconds_bucket",
            "ferrolb_reconcile_duration_seconds_count",
        ] {
            assert!(names.contains(n), "{n} in {names:?}");
        }
        assert!(!names.contains("EOF"));
    }
}
