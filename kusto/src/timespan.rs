//! `timespan` text: `[-][d.]hh:mm[:ss[.fffffff]]`, as `totimespan()` reads it and results write
//! it (.NET's "c" format). Values are nanoseconds.

/// Parses `[-][d.]hh:mm[:ss[.fffffffff]]`: minutes and seconds below 60, up to 9 fraction
/// digits. `None` for any other text.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (days, clock) = match text.split_once('.') {
        Some((days, rest)) if rest.contains(':') && !days.contains(':') => (days.parse::<i64>().ok()?, rest),
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let hours: i64 = parts[0].parse().ok()?;
    let minutes: i64 = parts[1].parse().ok()?;
    let (seconds, fraction_ns) = match parts.get(2) {
        None => (0, 0),
        Some(part) => parse_seconds(part)?,
    };
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    let whole_minutes = (days.checked_mul(24)?.checked_add(hours)?).checked_mul(60)?.checked_add(minutes)?;
    let ns = whole_minutes.checked_mul(60_000_000_000)?.checked_add(seconds * 1_000_000_000 + fraction_ns)?;
    Some(if negative { -ns } else { ns })
}

/// `ss` or `ss.fffffff` as whole seconds and nanoseconds.
fn parse_seconds(part: &str) -> Option<(i64, i64)> {
    let Some((whole, fraction)) = part.split_once('.') else { return Some((part.parse().ok()?, 0)) };
    if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((whole.parse().ok()?, format!("{fraction:0<9}").parse().ok()?))
}

/// The .NET "c" form: `[-][d.]hh:mm:ss[.fffffff]` (ticks of 100 ns; finer digits are dropped).
pub fn format(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    let ticks = (ns / 100) % 10_000_000;
    let seconds = ns / 1_000_000_000;
    let (days, hours, minutes, seconds) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    let mut out = String::from(sign);
    if days > 0 {
        out.push_str(&format!("{days}."));
    }
    out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
    if ticks > 0 {
        out.push_str(&format!(".{ticks:07}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn parses_the_c_form() {
        assert_eq!(parse("1.02:03:04"), Some(93_784 * SECOND));
        assert_eq!(parse("00:00:01.5"), Some(SECOND * 3 / 2));
        assert_eq!(parse("-00:01"), Some(-60 * SECOND));
        assert_eq!(parse("26:00:00"), Some(26 * 3600 * SECOND));
        for bad in ["", "1", "00:60", "00:00:60", "1.2.3:00", "00:00:01.", "x:00", "99999999999999.00:00"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_as_dotnet_does_and_round_trips() {
        assert_eq!(format(93_784 * SECOND), "1.02:03:04");
        assert_eq!(format(SECOND / 10), "00:00:00.1000000");
        assert_eq!(format(-90 * SECOND), "-00:01:30");
        for ns in [0, 1_500_000_000, -86_400 * SECOND - 100, 3 * 86_400 * SECOND + 7] {
            assert_eq!(parse(&format(ns)), Some(ns / 100 * 100), "{ns}");
        }
    }
}
