//! The `timespan` of the Log Analytics Query API: an ISO 8601 duration (`PT1H`, `P1D`,
//! `PT3600.0S` as the Azure SDK sends it) counted back from now, or an interval `start/end`
//! where either side may be a duration.

/// Parses a `timespan` into `[start, end)` microseconds. `now_us` ends a bare duration.
pub fn parse_timespan(text: &str, now_us: i64) -> Result<(i64, i64), String> {
    let t = text.trim();
    let bad = |why: &str| format!("invalid timespan '{t}': {why}");
    if let Some((a, b)) = t.split_once('/') {
        let (start, end) = match (parse_instant(a), parse_instant(b)) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => {
                (s, s + parse_duration(b).ok_or_else(|| bad("the end is neither a date nor a duration"))?)
            }
            (None, Some(e)) => {
                (e - parse_duration(a).ok_or_else(|| bad("the start is neither a date nor a duration"))?, e)
            }
            (None, None) => {
                return Err(bad("expected start/end dates, such as 2024-05-01T00:00:00Z/2024-05-02T00:00:00Z"));
            }
        };
        if end < start {
            return Err(bad("the end is before the start"));
        }
        return Ok((start, end));
    }
    let d = parse_duration(t).ok_or_else(|| bad("expected an ISO 8601 duration such as PT1H or P1D, or start/end"))?;
    Ok((now_us - d, now_us + 1))
}

fn parse_instant(s: &str) -> Option<i64> {
    fimlake_kusto::datetime::parse(s).ok()
}

/// `P[nD][T[nH][nM][n.nS]]` (also `PnW`), in microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let mut total = 0f64;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            'T' if num.is_empty() => in_time = true,
            d if d.is_ascii_digit() || d == '.' => num.push(d),
            unit => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                any = true;
                total += n * match (unit, in_time) {
                    ('W', false) => 7.0 * 86_400e6,
                    ('D', false) => 86_400e6,
                    ('H', true) => 3_600e6,
                    ('M', true) => 60e6,
                    ('S', true) => 1e6,
                    _ => return None,
                };
            }
        }
    }
    (any && num.is_empty()).then_some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000_000;

    #[test]
    fn durations_and_intervals() {
        assert_eq!(parse_duration("PT1H"), Some(3_600_000_000));
        assert_eq!(parse_duration("P1D"), Some(86_400_000_000));
        assert_eq!(parse_duration("PT3600.0S"), Some(3_600_000_000));
        assert_eq!(parse_duration("P1DT2H30M"), Some(95_400_000_000));
        assert_eq!(parse_duration("1h"), None);
        assert_eq!(parse_timespan("PT1H", NOW), Ok((NOW - 3_600_000_000, NOW + 1)));
        assert_eq!(
            parse_timespan("2024-05-01T00:00:00.000Z/2024-05-02T00:00:00.000Z", NOW),
            Ok((1_714_521_600_000_000, 1_714_608_000_000_000))
        );
        assert_eq!(parse_timespan("2024-05-01/PT1H", NOW), Ok((1_714_521_600_000_000, 1_714_525_200_000_000)));
        assert!(parse_timespan("yesterday", NOW).unwrap_err().contains("ISO 8601 duration"));
        assert!(parse_timespan("2024-05-02/2024-05-01", NOW).unwrap_err().contains("before the start"));
    }
}
