//! UDFs building datetimes and timespans from parts, and converting between time zones.

use chrono::{NaiveDate, TimeZone};

use super::*;

/// `make_datetime(year, month, day [, hour, minute [, second]])`: `second` may have a
/// fraction (to the microsecond); null when a part is null or out of range.
pub fn make_datetime(args: Vec<Expr>) -> Expr {
    make(
        "make_datetime",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Type(fimlake_kusto::timestamp_type()),
        |a| {
            let parts: Option<Vec<f64>> = a.iter().map(ArgValue::number).collect();
            parts.and_then(|p| datetime_of_parts(&p)).map_or(Out::Null, Out::DateTime)
        },
        args,
        0,
    )
}

fn datetime_of_parts(parts: &[f64]) -> Option<i64> {
    let part = |i: usize| parts.get(i).copied().unwrap_or(0.0);
    let whole = |x: f64| (x.fract() == 0.0 && x >= 0.0 && x <= f64::from(u32::MAX)).then_some(x as u32);
    let date = NaiveDate::from_ymd_opt(i32::try_from(whole(part(0))?).ok()?, whole(part(1))?, whole(part(2))?)?;
    let second = part(5);
    if !(0.0..60.0).contains(&second) {
        return None;
    }
    let micros = (second.fract() * 1e6).round() as u32;
    let time = date.and_hms_micro_opt(whole(part(3))?, whole(part(4))?, second as u32, micros)?;
    Some(time.and_utc().timestamp_micros())
}

/// `make_timespan(hours, minutes [, seconds])` or `make_timespan(days, hours, minutes,
/// seconds)`: `seconds` may have a fraction; null when a part is null.
pub fn make_timespan(args: Vec<Expr>) -> Expr {
    make(
        "make_timespan",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Type(DataType::Duration(TimeUnit::Nanosecond)),
        |a| {
            let Some(parts) = a.iter().map(ArgValue::number).collect::<Option<Vec<f64>>>() else { return Out::Null };
            let (days, hours, minutes, seconds) = match parts.as_slice() {
                [h, m] => (0.0, *h, *m, 0.0),
                [h, m, s] => (0.0, *h, *m, *s),
                [d, h, m, s] => (*d, *h, *m, *s),
                _ => return Out::Null,
            };
            let total_seconds = ((days * 24.0 + hours) * 60.0 + minutes) * 60.0 + seconds;
            let nanoseconds = (total_seconds * 1e9).round();
            if nanoseconds.abs() >= i64::MAX as f64 {
                return Out::Null;
            }
            Out::Timespan(nanoseconds as i64)
        },
        args,
        0,
    )
}

/// The `(datetime, zone)` arguments: the datetime and the IANA time zone it names (`None`
/// for a null or an unknown zone).
fn zoned(a: &[ArgValue]) -> Option<(DateTime<chrono::Utc>, chrono_tz::Tz)> {
    let ArgValue::DateTime(micros) = a[0] else { return None };
    let zone = a[1].text()?.parse::<chrono_tz::Tz>().ok()?;
    Some((DateTime::from_timestamp_micros(micros)?, zone))
}

/// `datetime_utc_to_local(datetime, zone)`: the wall-clock time in the IANA time zone; null for
/// an unknown zone.
pub fn utc_to_local(datetime: Expr, zone: Expr) -> Expr {
    make(
        "datetime_utc_to_local",
        any(2),
        Ret::Type(fimlake_kusto::timestamp_type()),
        |a| {
            zoned(a).map_or(Out::Null, |(utc, zone)| {
                Out::DateTime(utc.with_timezone(&zone).naive_local().and_utc().timestamp_micros())
            })
        },
        vec![datetime, zone],
        0,
    )
}

/// `datetime_local_to_utc(datetime, zone)`: the UTC time of a wall-clock time in the IANA time
/// zone (the earlier one when the clock went back); null for an unknown zone or a wall-clock
/// time the zone skipped.
pub fn local_to_utc(datetime: Expr, zone: Expr) -> Expr {
    make(
        "datetime_local_to_utc",
        any(2),
        Ret::Type(fimlake_kusto::timestamp_type()),
        |a| {
            zoned(a)
                .and_then(|(local, zone)| zone.from_local_datetime(&local.naive_utc()).earliest())
                .map_or(Out::Null, |utc| Out::DateTime(utc.timestamp_micros()))
        },
        vec![datetime, zone],
        0,
    )
}
