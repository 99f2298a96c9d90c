//! Datetime and timespan functions: `now`, `ago`, `bin`, `startof...`, `format_datetime`, `datetime_add`, `datetime_diff`, `datetime_part`...

use super::super::*;
use super::{Call, Function};

/// The datetime functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["now"], arity: Some((0, 1)), plan: now },
    Function { names: &["ago"], arity: Some((1, 1)), plan: ago },
    Function { names: &["bin", "floor"], arity: Some((2, 2)), plan: bin },
    Function { names: &["bin_at"], arity: Some((3, 3)), plan: bin_at },
    Function { names: &["bin_auto"], arity: Some((1, 1)), plan: bin_auto },
    Function {
        names: &[
            "startofday",
            "startofweek",
            "startofmonth",
            "startofyear",
            "endofday",
            "endofweek",
            "endofmonth",
            "endofyear",
        ],
        arity: Some((1, 2)),
        plan: period_boundary,
    },
    Function { names: &["make_datetime"], arity: Some((3, 6)), plan: make_datetime },
    Function { names: &["make_timespan"], arity: Some((2, 4)), plan: make_timespan },
    Function {
        names: &[
            "unixtime_seconds_todatetime",
            "unixtime_milliseconds_todatetime",
            "unixtime_microseconds_todatetime",
            "unixtime_nanoseconds_todatetime",
        ],
        arity: Some((1, 1)),
        plan: unixtime,
    },
    Function { names: &["datetime_utc_to_local", "datetime_local_to_utc"], arity: Some((2, 2)), plan: time_zone },
    Function { names: &["totimespan", "time"], arity: Some((1, 1)), plan: totimespan },
    Function { names: &["format_datetime"], arity: Some((2, 2)), plan: format_datetime },
    Function { names: &["datetime_add"], arity: Some((3, 3)), plan: datetime_add },
    Function { names: &["dayofweek"], arity: Some((1, 1)), plan: dayofweek },
    Function {
        names: &[
            "hourofday",
            "dayofmonth",
            "dayofyear",
            "getmonth",
            "monthofyear",
            "getyear",
            "week_of_year",
            "weekofyear",
        ],
        arity: Some((1, 1)),
        plan: date_part_number,
    },
    Function { names: &["datetime_part"], arity: Some((2, 2)), plan: datetime_part },
    Function { names: &["ingestion_time"], arity: Some((0, 0)), plan: ingestion_time },
    Function { names: &["datetime_diff"], arity: Some((3, 3)), plan: datetime_diff },
];

/// `now`.
fn now(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let now = ts_lit(p.now_us);
    Ok(if args.is_empty() { now } else { now + call.arg(p, 0)? })
}

/// `ago`.
fn ago(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(ts_lit(p.now_us) - call.arg(p, 0)?)
}

/// `bin`, `floor`.
fn bin(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    let size = call.arg(p, 1)?;
    Ok(match p.type_of(&x, schema, args[0].span)? {
        DataType::Timestamp(..) => {
            let ns = duration_ns(&size).ok_or_else(|| {
                p.err(ErrorKind::Semantic, "bin() of a datetime takes a timespan literal as its size", args[1].span)
            })?;
            // Kusto bins count from 0001-01-01; shift the epoch origin to match.
            let origin_shift = (719_162i128 * DAY_NS as i128).rem_euclid(ns.max(1) as i128) as i64;
            f::date_bin(interval(ns), x, ts_lit(-origin_shift / 1000))
        }
        _ => numeric_bin(p, call, x, size, None)?,
    })
}

/// `bin` and `bin_at` of numbers: a long when the value and the size are whole numbers (as in
/// Kusto), a real otherwise.
fn numeric_bin(p: &mut Planner, call: &Call, x: DfExpr, size: DfExpr, fixed: Option<DfExpr>) -> PResult<DfExpr> {
    let whole = |t: &DataType| t.is_integer();
    let both_whole = whole(&p.type_of(&x, call.schema, call.args[0].span)?)
        && whole(&p.type_of(&size, call.schema, call.args[1].span)?)
        && match &fixed {
            Some(f) => whole(&p.type_of(f, call.schema, call.args[2].span)?),
            None => true,
        };
    let real = |e: DfExpr| cast(e, DataType::Float64);
    let fixed = real(fixed.unwrap_or(lit(0i64)));
    let binned = f::floor((real(x) - fixed.clone()) / real(size.clone())) * real(size) + fixed;
    Ok(if both_whole { cast(binned, DataType::Int64) } else { binned })
}

/// `bin_at(x, size, fixed)`: bins of `size` with `fixed` on a bin's start.
fn bin_at(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    let size = call.arg(p, 1)?;
    let fixed = call.arg(p, 2)?;
    if !matches!(p.type_of(&x, schema, args[0].span)?, DataType::Timestamp(..)) {
        return numeric_bin(p, call, x, size, Some(fixed));
    }
    let ns = duration_ns(&size)
        .ok_or_else(|| p.err(ErrorKind::Semantic, "bin_at() takes a timespan literal as its size", args[1].span))?;
    Ok(f::date_bin(interval(ns), x, fixed))
}

/// `bin_auto(x)`: `bin_at(x, size, at)` with the query's `set query_bin_auto_size = size;` and
/// `set query_bin_auto_at = at;` (`bin(x, size)` without the latter).
fn bin_auto(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Some(size) = p.options.get("query_bin_auto_size").cloned() else {
        return Err(p.err(
            ErrorKind::Semantic,
            "bin_auto() needs its bin size set before the query: 'set query_bin_auto_size = 1h;'",
            call.span,
        ));
    };
    let mut args = vec![call.args[0].clone(), size];
    let name = match p.options.get("query_bin_auto_at") {
        Some(at) => {
            args.push(at.clone());
            "bin_at"
        }
        None => "bin",
    };
    let binned = Expr {
        kind: ExprKind::Call { name: Ident { name: name.to_string(), span: call.name.span }, args },
        span: call.span,
    };
    p.scalar(&binned, call.schema)
}

/// `startofday`, `startofweek` (a Sunday), `startofmonth`, `startofyear`, and their `endof`
/// twins, with an optional constant offset in that period. The end is the last microsecond of
/// the period (Kusto's is the last 100-nanosecond tick: fimlake's datetimes are microseconds).
fn period_boundary(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let name = call.name.name.as_str();
    let (edge, period) = name.split_at(name.find("of").expect("startof or endof") + 2);
    let datetime = call.datetime_arg(p, 0)?;
    let offset = match call.args.get(1) {
        None => 0,
        Some(arg) => constant_whole_number(arg).ok_or_else(|| {
            p.err(ErrorKind::Unsupported, format!("{name}() takes its offset as a constant whole number"), arg.span)
        })?,
    };
    Ok(if edge == "startof" {
        period_start(period, datetime, offset)
    } else {
        period_start(period, datetime, offset + 1) - dur_lit(1000)
    })
}

/// The start of the `period` (day, week, month, year) holding `datetime`, moved by `offset`
/// periods.
fn period_start(period: &str, datetime: DfExpr, offset: i64) -> DfExpr {
    let months = |n: i64| {
        lit(ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
            months: i32::try_from(n).unwrap_or(i32::MAX),
            days: 0,
            nanoseconds: 0,
        })))
    };
    match period {
        "day" => f::date_trunc(lit("day"), datetime) + dur_lit(offset.saturating_mul(DAY_NS)),
        // Kusto weeks start on Sunday; date_trunc's on Monday.
        "week" => {
            f::date_trunc(lit("week"), datetime + dur_lit(DAY_NS)) + dur_lit((7 * offset - 1).saturating_mul(DAY_NS))
        }
        "month" => f::date_trunc(lit("month"), datetime) + months(offset),
        _ => f::date_trunc(lit("year"), datetime) + months(offset.saturating_mul(12)),
    }
}

/// A literal whole number, or a negated one.
fn constant_whole_number(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Literal(Literal::Long(n)) => Some(*n),
        ExprKind::Negate(inner) => constant_whole_number(inner).map(|n| -n),
        _ => None,
    }
}

/// `make_datetime(year, month, day [, hour, minute [, second]])`.
fn make_datetime(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    if call.args.len() == 4 {
        let message = "make_datetime() takes 3, 5 or 6 arguments (year, month, day [, hour, minute [, second]])";
        return Err(p.err(ErrorKind::Semantic, message, call.span));
    }
    let parts = (0..call.args.len()).map(|i| call.real_arg(p, i)).collect::<PResult<Vec<_>>>()?;
    Ok(crate::udf::make_datetime(parts))
}

/// `make_timespan(hours, minutes [, seconds])`, `make_timespan(days, hours, minutes, seconds)`.
fn make_timespan(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let parts = (0..call.args.len()).map(|i| call.real_arg(p, i)).collect::<PResult<Vec<_>>>()?;
    Ok(crate::udf::make_timespan(parts))
}

/// `unixtime_seconds_todatetime` and its milli-, micro- and nanosecond twins: null when out of
/// range.
fn unixtime(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let micros_per_unit = match call.name.name.as_str() {
        "unixtime_seconds_todatetime" => 1e6,
        "unixtime_milliseconds_todatetime" => 1e3,
        "unixtime_microseconds_todatetime" => 1.0,
        _ => 1e-3,
    };
    let micros = f::round(vec![call.real_arg(p, 0)? * lit(micros_per_unit)]);
    Ok(try_cast(try_cast(micros, DataType::Int64), fimlake_kusto::timestamp_type()))
}

/// `datetime_utc_to_local(datetime, zone)`, `datetime_local_to_utc(datetime, zone)`: `zone` an
/// IANA time zone name (`"Europe/Paris"`).
fn time_zone(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let datetime = call.datetime_arg(p, 0)?;
    let zone = call.typed_arg(p, 1, &[fimlake_kusto::KustoType::String])?;
    if let ExprKind::Literal(Literal::String(name)) = &call.args[1].kind
        && name.parse::<chrono_tz::Tz>().is_err()
    {
        let message = format!("unknown time zone '{name}' (an IANA name such as 'Europe/Paris' or 'UTC')");
        return Err(p.err(ErrorKind::Semantic, message, call.args[1].span));
    }
    Ok(if call.name.name == "datetime_utc_to_local" {
        crate::udf::utc_to_local(datetime, zone)
    } else {
        crate::udf::local_to_utc(datetime, zone)
    })
}

/// `totimespan`, `time`.
fn totimespan(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    Ok(match p.type_of(&x, schema, args[0].span)? {
        DataType::Duration(_) => x,
        _ => crate::udf::totimespan(p.to_text(x, schema, args[0].span)?),
    })
}

/// `format_datetime`.
fn format_datetime(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let ExprKind::Literal(Literal::String(fmt)) = &args[1].kind else {
        return Err(p.err(
            ErrorKind::Unsupported,
            "format_datetime() takes its format as a string literal",
            args[1].span,
        ));
    };
    let chrono_fmt = kusto_datetime_format(fmt).map_err(|m| p.err(ErrorKind::Semantic, m, args[1].span))?;
    Ok(f::coalesce(vec![f::to_char(call.arg(p, 0)?, lit(chrono_fmt)), lit("")]))
}

/// `datetime_add`.
fn datetime_add(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
        return Err(p.err(ErrorKind::Semantic, "datetime_add() takes the period as a string literal", args[0].span));
    };
    let amount = call.arg(p, 1)?;
    let dt = call.arg(p, 2)?;
    p.datetime_add(unit, amount, &args[1], dt, args[0].span)
}

/// `dayofweek`.
fn dayofweek(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    // A timespan: days since the last Sunday.
    let days = cast(f::date_part(lit("dow"), call.arg(p, 0)?), DataType::Int64);
    Ok(cast(days * lit(DAY_NS), DataType::Duration(TimeUnit::Nanosecond)))
}

/// `hourofday`, `dayofmonth`, `dayofyear`, `getmonth`, `monthofyear`, `getyear`, `week_of_year`, `weekofyear`.
fn date_part_number(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let part = match n {
        "hourofday" => "hour",
        "dayofmonth" => "day",
        "dayofyear" => "doy",
        "getmonth" | "monthofyear" => "month",
        "getyear" => "year",
        _ => "week",
    };
    Ok(cast(f::date_part(lit(part), call.arg(p, 0)?), DataType::Int32))
}

/// `datetime_part`.
fn datetime_part(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let ExprKind::Literal(Literal::String(part)) = &args[0].kind else {
        return Err(p.err(ErrorKind::Semantic, "datetime_part() takes the part as a string literal", args[0].span));
    };
    let part = match part.to_ascii_lowercase().as_str() {
        p @ ("year" | "quarter" | "month" | "day" | "hour" | "minute" | "second" | "millisecond" | "microsecond"
        | "nanosecond") => p.to_string(),
        "week_of_year" => "week".into(),
        "dayofyear" => "doy".into(),
        other => {
            return Err(p.err(ErrorKind::Semantic, format!("unknown datetime part '{other}'"), args[0].span));
        }
    };
    Ok(cast(f::date_part(lit(part), call.arg(p, 1)?), DataType::Int32))
}

/// `ingestion_time`.
fn ingestion_time(_: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { schema, .. } = *call;
    Ok(if schema.field_with_unqualified_name("_TimeReceived").is_ok() {
        ident("_TimeReceived")
    } else {
        lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into())))
    })
}

/// `datetime_diff`.
fn datetime_diff(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
        return Err(p.err(ErrorKind::Semantic, "datetime_diff() takes the period as a string literal", args[0].span));
    };
    let x = call.arg(p, 1)?;
    let y = call.arg(p, 2)?;
    p.datetime_diff(unit, x, y, args[0].span)
}
