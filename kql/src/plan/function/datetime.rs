//! Datetime and timespan functions: `now`, `ago`, `bin`, `startof...`, `format_datetime`, `datetime_add`, `datetime_diff`, `datetime_part`...

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The datetime functions; `None` for a name this family does not have.
    pub(in crate::plan) fn datetime_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, .. } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
            "now" => {
                want(self, 0, 1)?;
                let now = ts_lit(self.now_us);
                if args.is_empty() { now } else { now + a(self, 0)? }
            }
            "ago" => {
                want(self, 1, 1)?;
                ts_lit(self.now_us) - a(self, 0)?
            }
            "bin" | "floor" => {
                want(self, 2, 2)?;
                let x = a(self, 0)?;
                let size = a(self, 1)?;
                match self.type_of(&x, schema, args[0].span)? {
                    DataType::Timestamp(..) => {
                        let ns = duration_ns(&size).ok_or_else(|| {
                            self.err(
                                ErrorKind::Semantic,
                                "bin() of a datetime takes a timespan literal as its size",
                                args[1].span,
                            )
                        })?;
                        // Kusto bins count from 0001-01-01; shift the epoch origin to match.
                        let origin_shift = (719_162i128 * DAY_NS as i128).rem_euclid(ns.max(1) as i128) as i64;
                        f::date_bin(interval(ns), x, ts_lit(-origin_shift / 1000))
                    }
                    _ => f::floor(cast(x, DataType::Float64) / cast(size.clone(), DataType::Float64)) * size,
                }
            }
            "bin_at" => {
                want(self, 3, 3)?;
                let x = a(self, 0)?;
                let size = a(self, 1)?;
                let fixed = a(self, 2)?;
                let ns = duration_ns(&size).ok_or_else(|| {
                    self.err(ErrorKind::Semantic, "bin_at() takes a timespan literal as its size", args[1].span)
                })?;
                f::date_bin(interval(ns), x, fixed)
            }
            "startofday" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("day"), a(self, 0)?)
            }
            "startofmonth" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("month"), a(self, 0)?)
            }
            "startofyear" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("year"), a(self, 0)?)
            }
            "startofweek" => {
                // Kusto weeks start on Sunday; date_trunc's on Monday.
                want(self, 1, 1)?;
                f::date_trunc(lit("week"), a(self, 0)? + dur_lit(DAY_NS)) - dur_lit(DAY_NS)
            }
            "endofday" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("day"), a(self, 0)?) + dur_lit(DAY_NS - 1000)
            }
            "totimespan" | "time" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                match self.type_of(&x, schema, args[0].span)? {
                    DataType::Duration(_) => x,
                    _ => crate::udf::totimespan(self.to_text(x, schema, args[0].span)?),
                }
            }
            "format_datetime" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(fmt)) = &args[1].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "format_datetime() takes its format as a string literal",
                        args[1].span,
                    ));
                };
                let chrono_fmt =
                    kusto_datetime_format(fmt).map_err(|m| self.err(ErrorKind::Semantic, m, args[1].span))?;
                f::coalesce(vec![f::to_char(a(self, 0)?, lit(chrono_fmt)), lit("")])
            }
            "datetime_add" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_add() takes the period as a string literal",
                        args[0].span,
                    ));
                };
                let amount = a(self, 1)?;
                let dt = a(self, 2)?;
                self.datetime_add(unit, amount, &args[1], dt, args[0].span)?
            }
            "dayofweek" => {
                want(self, 1, 1)?;
                // A timespan: days since the last Sunday.
                let days = cast(f::date_part(lit("dow"), a(self, 0)?), DataType::Int64);
                cast(days * lit(DAY_NS), DataType::Duration(TimeUnit::Nanosecond))
            }
            "hourofday" | "dayofmonth" | "dayofyear" | "getmonth" | "monthofyear" | "getyear" | "week_of_year"
            | "weekofyear" => {
                want(self, 1, 1)?;
                let part = match n {
                    "hourofday" => "hour",
                    "dayofmonth" => "day",
                    "dayofyear" => "doy",
                    "getmonth" | "monthofyear" => "month",
                    "getyear" => "year",
                    _ => "week",
                };
                cast(f::date_part(lit(part), a(self, 0)?), DataType::Int32)
            }
            "datetime_part" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(part)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_part() takes the part as a string literal",
                        args[0].span,
                    ));
                };
                let part = match part.to_ascii_lowercase().as_str() {
                    p @ ("year" | "quarter" | "month" | "day" | "hour" | "minute" | "second" | "millisecond"
                    | "microsecond" | "nanosecond") => p.to_string(),
                    "week_of_year" => "week".into(),
                    "dayofyear" => "doy".into(),
                    other => {
                        return Err(self.err(
                            ErrorKind::Semantic,
                            format!("unknown datetime part '{other}'"),
                            args[0].span,
                        ));
                    }
                };
                cast(f::date_part(lit(part), a(self, 1)?), DataType::Int32)
            }
            "ingestion_time" => {
                want(self, 0, 0)?;
                if schema.field_with_unqualified_name("_TimeReceived").is_ok() {
                    ident("_TimeReceived")
                } else {
                    lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into())))
                }
            }
            "datetime_diff" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_diff() takes the period as a string literal",
                        args[0].span,
                    ));
                };
                let x = a(self, 1)?;
                let y = a(self, 2)?;
                self.datetime_diff(unit, x, y, args[0].span)?
            }
            _ => return Ok(None),
        }))
    }
}
