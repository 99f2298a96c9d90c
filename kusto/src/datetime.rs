//! `datetime` text: parsing what Kusto accepts in `datetime(...)` literals and ingested records,
//! and the ISO 8601 form results are written in.
//!
//! Parsing is strict and calendar-checked (chrono): `2024-02-31` and `25:00` are errors, not
//! rolled over into the next month or day. Values are microseconds since the Unix epoch, UTC.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// Why a text is not a datetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDatetime {
    pub text: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not in a datetime form at all.
    Shape,
    /// In the form of a date, but there is no such day, time or offset (2024-02-31, 24:30).
    NoSuchDate,
}

impl fmt::Display for InvalidDatetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::Shape => write!(f, "'{}' is not a datetime such as 2024-05-01 or 2024-05-01T12:00:00Z", self.text),
            Reason::NoSuchDate => {
                write!(f, "'{}' is not a valid date and time (no such day, hour or offset)", self.text)
            }
        }
    }
}

impl std::error::Error for InvalidDatetime {}

/// Parses a datetime: a date (`2024-05-01`), optionally followed by `T` or a space and a time
/// (`12:00`, `12:00:00`, `12:00:00.1234567`), optionally followed by `Z` or an offset
/// (`+02:00`, `-0530`, `+02`), which is converted to UTC; without one the time is UTC, as in
/// Kusto. Fractions beyond microseconds are truncated.
pub fn parse(text: &str) -> Result<i64, InvalidDatetime> {
    match parse_canonical(text.as_bytes()) {
        Some(micros) => Ok(micros),
        None => parse_any_form(text),
    }
}

/// The form agents and Log Analytics write, `2024-05-01T12:00:00Z` with up to nine digits of a
/// second's fraction, read straight from its digits: most ingested values are in it, and
/// chrono's format-string parser costs several times more. `None` for any other form, or a day
/// or time that does not exist: [`parse_any_form`] then answers (and explains).
fn parse_canonical(text: &[u8]) -> Option<i64> {
    const SEPARATORS: [(usize, u8); 5] = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !SEPARATORS.iter().all(|&(at, byte)| text.get(at) == Some(&byte)) {
        return None;
    }
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    let field = |from: usize, to: usize| text.get(from..to).and_then(number);
    let fraction = match text.get(19..)? {
        [b'Z'] => &[][..],
        [b'.', digits @ .., b'Z'] if (1..=9).contains(&digits.len()) => digits,
        _ => return None,
    };
    // Microseconds: the first six digits, zeros added after fewer; beyond six, truncated.
    let kept = &fraction[..fraction.len().min(6)];
    let micros = number(kept)? * 10u32.pow(6 - kept.len() as u32);
    number(&fraction[kept.len()..])?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(field(0, 4)?).ok()?, field(5, 7)?, field(8, 10)?)?;
    let time = NaiveTime::from_hms_micro_opt(field(11, 13)?, field(14, 16)?, field(17, 19)?, micros)?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// Every form [`parse`] accepts, through chrono's parser.
fn parse_any_form(text: &str) -> Result<i64, InvalidDatetime> {
    let trimmed = text.trim();
    let error = |reason| InvalidDatetime { text: trimmed.to_string(), reason };
    let (date_text, rest) = trimmed.split_at(trimmed.find(['T', ' ']).unwrap_or(trimmed.len()));
    let date = parse_date(date_text).map_err(error)?;
    let time_and_zone = rest.get(1..).unwrap_or("").trim_start();
    let (time_text, offset_seconds) = split_zone(time_and_zone).ok_or(error(Reason::Shape))?;
    let time = if time_text.is_empty() { NaiveTime::MIN } else { parse_time(time_text).map_err(error)? };
    let micros = date.and_time(time).and_utc().timestamp_micros();
    Ok(micros - offset_seconds * 1_000_000)
}

fn parse_date(text: &str) -> Result<NaiveDate, Reason> {
    let shape_ok =
        text.len() >= 8 && text.bytes().all(|b| b.is_ascii_digit() || b == b'-') && text.matches('-').count() == 2;
    if !shape_ok {
        return Err(Reason::Shape);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| Reason::NoSuchDate)
}

fn parse_time(text: &str) -> Result<NaiveTime, Reason> {
    let shape_ok = text.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'.') && text.contains(':');
    if !shape_ok {
        return Err(Reason::Shape);
    }
    let format = if text.matches(':').count() == 1 { "%H:%M" } else { "%H:%M:%S%.f" };
    NaiveTime::parse_from_str(text, format).map_err(|_| Reason::NoSuchDate)
}

/// Splits `12:00:00+02:00` into the time and the offset in seconds; `Z` is offset 0. `None` for
/// an offset that is not `±HH`, `±HHMM` or `±HH:MM` with hours up to 14 and minutes up to 59.
fn split_zone(text: &str) -> Option<(&str, i64)> {
    if let Some(time) = text.strip_suffix(['Z', 'z']) {
        return Some((time, 0));
    }
    let Some(sign_at) = text.rfind(['+', '-']) else { return Some((text, 0)) };
    let (time, offset) = text.split_at(sign_at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits.get(2..).filter(|m| !m.is_empty()).map_or(Some(0), |m| m.parse().ok())?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    Some((time, sign * (hours * 3600 + minutes * 60)))
}

/// The ISO 8601 UTC form of a datetime, as Log Analytics writes it: `2024-05-01T12:00:00Z`,
/// with the fraction of a second only as long as it needs to be (`...:00.5Z`). A value outside
/// chrono's range is written as its number of microseconds.
pub fn format(micros: i64) -> String {
    let Some(time) = DateTime::<Utc>::from_timestamp_micros(micros) else { return micros.to_string() };
    let base = time.format("%Y-%m-%dT%H:%M:%S");
    let fraction = format!("{:06}", micros.rem_euclid(1_000_000));
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { format!("{base}Z") } else { format!("{base}.{fraction}Z") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn accepts_the_forms_kusto_writes_and_reads() {
        let noon = 1_714_564_800_000_000;
        for text in [
            "2024-05-01T12:00:00Z",
            "2024-05-01 12:00:00",
            "2024-05-01T12:00",
            "2024-05-01 12:00Z",
            "2024-05-01T14:00:00+02:00",
            "2024-05-01T07:00:00-0500",
            "2024-05-01T13:00:00+01",
            " 2024-05-01T12:00:00.000000000Z ",
        ] {
            assert_eq!(micros(text), noon, "{text}");
        }
        assert_eq!(micros("2024-05-01"), noon - 12 * 3_600_000_000);
        assert_eq!(micros("2014-05-25T08:20:03.1234567Z") % 1_000_000, 123_456);
        assert_eq!(micros("1969-12-31T23:59:59.5Z"), -500_000);
    }

    #[test]
    fn refuses_days_and_times_that_do_not_exist() {
        for text in ["2024-02-31", "2023-02-29", "2024-13-01", "2024-05-01T24:30", "2024-05-01 12:61:00"] {
            assert_eq!(parse(text).unwrap_err().reason, Reason::NoSuchDate, "{text}");
        }
        assert_eq!(micros("2024-02-29"), 1_709_164_800_000_000);
        for text in
            ["", "yesterday", "2024/05/01", "2024-05-01T12:00:00+2:00", "2024-05-01Tnoon", "2024-05-01T12:00+15:00"]
        {
            assert_eq!(parse(text).unwrap_err().reason, Reason::Shape, "{text}");
        }
    }

    proptest::proptest! {
        /// The canonical form's own reader answers as the general parser does, for days and
        /// times that exist and those that do not, with fractions of every length.
        #[test]
        fn the_canonical_form_reads_as_every_form_does(
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62,
            fraction in proptest::option::of("[0-9]{1,10}"),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z");
            let any_form = parse_any_form(&text);
            match parse_canonical(text.as_bytes()) {
                Some(micros) => proptest::prop_assert_eq!(Ok(micros), any_form, "{}", text),
                None => {
                    let exists = any_form.is_ok() && second < 60 && fraction.len() <= 10;
                    proptest::prop_assert!(!exists, "{} is read only by the general parser", text);
                }
            }
        }
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format(1_714_564_800_000_000), "2024-05-01T12:00:00Z");
        assert_eq!(format(1_714_564_800_500_000), "2024-05-01T12:00:00.5Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59.999999Z");
        for text in ["2024-05-01T12:00:00.123456Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            assert_eq!(format(micros(text)), text);
        }
    }
}
