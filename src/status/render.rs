//! The report as text: a table for people (`-o wide` adds columns and the speakers), or JSON
//! with exactly the keys design.md promises.

use std::fmt::Write;

use serde_json::json;

use super::report::Report;

const BAR: usize = 20;

/// `[#####---------------]`, rounded up so any use shows.
fn bar(used: u128, total: u128) -> String {
    let filled = if total == 0 {
        0
    } else if used >= total {
        BAR
    } else {
        // A /64's counts overflow `used * BAR`; a float ratio is exact enough for 20 cells.
        let f = match used.checked_mul(BAR as u128) {
            Some(scaled) => scaled.div_ceil(total),
            None => ((used as f64 / total as f64) * BAR as f64).ceil() as u128,
        };
        usize::try_from(f)
            .unwrap_or(BAR)
            .clamp(usize::from(used > 0), BAR)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled))
}

fn percent(used: u128, total: u128) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{}%", used.saturating_mul(100) / total)
}

/// Left-aligned columns, two spaces apart.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// The human table; `wide` adds per-Service problems in full and the speakers.
pub fn text(r: &Report, wide: bool) -> String {
    let mut out = String::new();
    let mut rows = vec![vec![
        "POOL".to_string(),
        "USED/TOTAL".into(),
        "USAGE".into(),
        String::new(),
    ]];
    for p in &r.pools {
        rows.push(vec![
            p.name.clone(),
            format!("{}/{}", p.used, p.total),
            bar(p.used, p.total),
            percent(p.used, p.total),
        ]);
    }
    table(&mut out, &rows);
    out.push('\n');
    let mut header = vec![
        "NAMESPACE".to_string(),
        "NAME".into(),
        "IPS".into(),
        "POOL".into(),
        "MODE".into(),
        "ANNOUNCED BY".into(),
    ];
    header.push(if wide { "PROBLEMS" } else { "STATUS" }.into());
    let mut rows = vec![header];
    for s in &r.services {
        let status = match (s.problems.as_slice(), wide) {
            ([], _) => "ok".to_string(),
            (all, true) => all.join("; "),
            ([first], false) => first.clone(),
            ([first, ..], false) => format!("{first} (+{} more, -o wide)", s.problems.len() - 1),
        };
        rows.push(vec![
            s.namespace.clone(),
            s.name.clone(),
            or_dash(&s.ips),
            s.pool.clone().unwrap_or_else(|| "-".into()),
            s.mode.clone(),
            or_dash(&s.announced_by),
            status,
        ]);
    }
    if r.services.is_empty() {
        out.push_str("No LoadBalancer Services.\n");
    } else {
        table(&mut out, &rows);
    }
    if wide {
        out.push('\n');
        let mut rows = vec![vec![
            "SPEAKER".to_string(),
            "LIVE".into(),
            "RENEWED".into(),
            "SUBNETS".into(),
        ]];
        for s in &r.speakers {
            rows.push(vec![
                s.node.clone(),
                if s.live { "yes" } else { "no" }.into(),
                s.renewed_ago
                    .map(|a| format!("{a}s ago"))
                    .unwrap_or_else(|| "never".into()),
                or_dash(&s.subnets),
            ]);
        }
        table(&mut out, &rows);
    }
    for n in &r.notes {
        let _ = writeln!(out, "warning: {n}");
    }
    out
}

/// `-o json`: `pools[{name,used,total}]`, `services[{namespace,name,ips,pool,mode,announcedBy,
/// problems}]`, nothing else (notes go to stderr).
pub fn json(r: &Report) -> String {
    let v = json!({"pools": r.pools, "services": r.services});
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_show_any_use_and_never_overflow() {
        assert_eq!(bar(0, 10), format!("[{}]", "-".repeat(20)));
        assert_eq!(bar(1, 1000), format!("[#{}]", "-".repeat(19)));
        assert_eq!(bar(10, 10), format!("[{}]", "#".repeat(20)));
        assert_eq!(bar(5, 0), format!("[{}]", "-".repeat(20)));
        assert_eq!(bar(u128::MAX, u128::MAX), format!("[{}]", "#".repeat(20)));
        assert_eq!(percent(1, 4), "25%");
    }
}
