//! Go-style durations (`1100ms`, `1.5s`, `2m`, `1m30s`), the notation Kubernetes operators
//! already write in every other manifest.
//!
//! The one duration grammar of FerroLB: the ConfigMap's `l2.garp` keys and the command line's
//! `--lease-duration`-style flags both parse with [`parse`], so a value that works in one place
//! works in the other.

use std::time::Duration;

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a non-negative duration; the error says what is wrong without repeating the value
/// (the caller quotes it).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut rest = s;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err("expected a number followed by a unit such as 1100ms, 1.5s or 2m".into());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                "missing unit (use ns, us, ms, s, m or h)".to_string()
            } else {
                format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)")
            });
        };
        nanos = nanos
            .checked_add(scaled(num, scale).ok_or("duration is too long")?)
            .ok_or("duration is too long")?;
        rest = next;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "duration is too long")?;
    // The remainder is below one second, so it fits.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// `num` (digits with at most one dot) times `scale` nanoseconds, truncating below 1ns.
fn scaled(num: &str, scale: u128) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int.checked_mul(scale)?;
    let mut unit = scale;
    for d in frac.chars() {
        unit /= 10;
        if unit == 0 {
            break;
        }
        total = total.checked_add(u128::from(d.to_digit(10)?) * unit)?;
    }
    Some(total)
}

/// Formats a duration in the same notation, as short as it can be: `1100ms`, `5s`, `2m`, `0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    for (unit, scale) in UNITS.iter().rev() {
        if *unit != "µs" && nanos % scale == 0 {
            return format!("{}{unit}", nanos / scale);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse("1100ms"), Ok(ms(1100)));
        assert_eq!(parse("1s"), Ok(ms(1000)));
        assert_eq!(parse("0s"), Ok(ms(0)));
        assert_eq!(parse("0"), Ok(ms(0)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("2m"), Ok(ms(120_000)));
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(
            parse("5"),
            Err("missing unit (use ns, us, ms, s, m or h)".into())
        );
        assert_eq!(
            parse("5sec"),
            Err("unknown unit \"sec\" (use ns, us, ms, s, m or h)".into())
        );
        assert!(parse("-1s").is_err());
        assert!(parse("1..5s").is_err());
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
        assert!(parse("99999999999999999999999999999999999999999h").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_millis(1100)), "1100ms");
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(1)), "1ns");
    }
}
