//! Scalar function calls.

use super::*;

impl Planner<'_> {
    pub(super) fn call(&mut self, name: &Ident, args: &[Expr], schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| -> PResult<()> {
            if (lo..=hi).contains(&args.len()) {
                Ok(())
            } else if lo == hi {
                Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} argument(s), got {}", args.len()), span))
            } else {
                Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} to {hi} arguments, got {}", args.len()), span))
            }
        };
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(match n {
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
            "tolower" => {
                want(self, 1, 1)?;
                f::lower(a(self, 0)?)
            }
            "toupper" => {
                want(self, 1, 1)?;
                f::upper(a(self, 0)?)
            }
            "strlen" => {
                want(self, 1, 1)?;
                cast(f::character_length(a(self, 0)?), DataType::Int64)
            }
            "strcat" => {
                if args.is_empty() {
                    return Err(self.err(ErrorKind::Semantic, "strcat() takes 1 to 64 arguments", span));
                }
                let parts = (0..args.len())
                    .map(|i| a(self, i).map(|x| cast(x, DataType::Utf8)))
                    .collect::<PResult<Vec<_>>>()?;
                f::concat(parts)
            }
            "substring" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                // Kusto counts from 0, SQL from 1.
                let start = cast(a(self, 1)?, DataType::Int64) + lit(1i64);
                if args.len() == 3 {
                    f::substring(text, start, cast(a(self, 2)?, DataType::Int64))
                } else {
                    f::substr(text, start)
                }
            }
            "tostring" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                self.to_text(x, schema, args[0].span)?
            }
            "toint" | "tolong" | "toreal" | "todouble" | "tobool" | "toboolean" | "todatetime" | "todecimal" => {
                want(self, 1, 1)?;
                let mut x = a(self, 0)?;
                if self.is_dynamic(&x, schema) {
                    x = crate::udf::dyn_to_string(x);
                }
                let t = match n {
                    "toint" => DataType::Int32,
                    "tolong" => DataType::Int64,
                    "toreal" | "todouble" | "todecimal" => DataType::Float64,
                    "tobool" | "toboolean" => DataType::Boolean,
                    _ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                };
                // Kusto: toint(2.7) is 2 and toint("2.7") null; a cast from real truncates.
                try_cast(x, t)
            }
            "totimespan" | "time" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                match self.type_of(&x, schema, args[0].span)? {
                    DataType::Duration(_) => x,
                    _ => crate::udf::totimespan(self.to_text(x, schema, args[0].span)?),
                }
            }
            "parse_json" | "parsejson" | "todynamic" | "toobject" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                if self.is_dynamic(&x, schema) { x } else { crate::udf::parse_json(x) }
            }
            "array_length" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_length(self.dynamic_value(x, schema, args[0].span)?)
            }
            "pack_array" => {
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::pack_array(xs, mask)
            }
            "split" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                let parts = crate::udf::split(text, a(self, 1)?);
                if args.len() == 3 { crate::udf::dyn_get(parts, cast(a(self, 2)?, DataType::Int64)) } else { parts }
            }
            "array_sort_asc" | "array_sort_desc" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_sort(self.dynamic_value(x, schema, args[0].span)?, n == "array_sort_asc")
            }
            "array_slice" => {
                want(self, 3, 3)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::array_slice(x, cast(a(self, 1)?, DataType::Int64), cast(a(self, 2)?, DataType::Int64))
            }
            "pack" | "bag_pack" | "pack_dictionary" | "pack_all" => {
                let xs: Vec<DfExpr> = if n == "pack_all" {
                    want(self, 0, 0)?;
                    schema.fields().iter().flat_map(|f| [lit(f.name().clone()), ident(f.name())]).collect()
                } else {
                    if !args.len().is_multiple_of(2) {
                        return Err(self.err(ErrorKind::Semantic, format!("{n}() takes pairs of key and value"), span));
                    }
                    (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?
                };
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::bag_pack(xs, mask)
            }
            "strcat_array" => {
                want(self, 2, 2)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::strcat_array(x, a(self, 1)?)
            }
            "extract" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes its regex as a string literal",
                        args[0].span,
                    ));
                };
                let ExprKind::Literal(Literal::Long(group)) = &args[1].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes the capture group as a number",
                        args[1].span,
                    ));
                };
                let re = regex::Regex::new(re)
                    .map_err(|e| self.err(ErrorKind::Semantic, format!("invalid regex: {e}"), args[0].span))?;
                if *group < 0 || *group as usize > re.captures_len() - 1 {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!(
                            "the regex has {} capture group(s); group {group} does not exist",
                            re.captures_len() - 1
                        ),
                        args[1].span,
                    ));
                }
                let text = a(self, 2)?;
                let text = self.to_text(text, schema, args[2].span)?;
                crate::udf::extract(&re, *group as usize, text)
            }
            "replace_string" => {
                want(self, 3, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                f::replace(text, a(self, 1)?, a(self, 2)?)
            }
            "replace_regex" | "replace" => {
                want(self, 3, 3)?;
                // replace(regex, rewrite, text) is the older argument order.
                let (t, r, w) = if n == "replace" { (2, 0, 1) } else { (0, 1, 2) };
                let text = a(self, t)?;
                let text = self.to_text(text, schema, args[t].span)?;
                self.check_regex(&args[r])?;
                f::regexp_replace(text, a(self, r)?, a(self, w)?, Some(lit("g")))
            }
            "trim" | "trim_start" | "trim_end" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        format!("{n}() takes its regex as a string literal"),
                        args[0].span,
                    ));
                };
                self.check_regex(&args[0])?;
                let pattern = match n {
                    "trim" => format!("^(?:{re})+|(?:{re})+$"),
                    "trim_start" => format!("^(?:{re})+"),
                    _ => format!("(?:{re})+$"),
                };
                let text = a(self, 1)?;
                let text = self.to_text(text, schema, args[1].span)?;
                f::regexp_replace(text, lit(pattern), lit(""), Some(lit("g")))
            }
            "indexof" => {
                want(self, 2, 2)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                cast(f::strpos(text, a(self, 1)?), DataType::Int64) - lit(1i64)
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
            "toscalar" => {
                want(self, 1, 1)?;
                let sub = self.tabular_expr(&args[0])?;
                let first = sub.schema().field(0).name().clone();
                let sub = LogicalPlanBuilder::from(sub)
                    .project(vec![ident(first)])
                    .and_then(|b| b.limit(0, Some(1)))
                    .and_then(|b| b.build())
                    .map_err(|e| self.df_err(e, span))?;
                datafusion::logical_expr::expr_fn::scalar_subquery(Arc::new(sub))
            }
            "sqrt" | "exp" | "log" | "log10" | "log2" | "ceiling" => {
                want(self, 1, 1)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                match n {
                    "sqrt" => f::sqrt(x),
                    "exp" => f::exp(x),
                    "log" => f::ln(x),
                    "log10" => f::log10(x),
                    "log2" => f::log2(x),
                    _ => f::ceil(x),
                }
            }
            "pow" => {
                want(self, 2, 2)?;
                f::power(cast(a(self, 0)?, DataType::Float64), cast(a(self, 1)?, DataType::Float64))
            }
            "iff" | "iif" => {
                want(self, 3, 3)?;
                let c = a(self, 0)?;
                let t = a(self, 1)?;
                let e = a(self, 2)?;
                when(c, t).otherwise(e).map_err(|er| self.df_err(er, span))?
            }
            "case" => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "case() takes pairs of predicate and value, then an else value",
                        span,
                    ));
                }
                let mut c = when(a(self, 0)?, a(self, 1)?);
                let mut i = 2;
                while i + 1 < args.len() {
                    c = c.when(a(self, i)?, a(self, i + 1)?);
                    i += 2;
                }
                c.otherwise(a(self, args.len() - 1)?).map_err(|er| self.df_err(er, span))?
            }
            "coalesce" => {
                if args.is_empty() {
                    return Err(self.err(ErrorKind::Semantic, "coalesce() takes at least one argument", span));
                }
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                if self.is_string(&xs[0], schema, args[0].span)? {
                    // For strings, the first non-empty value.
                    let mut c = when(xs[0].clone().not_eq(lit("")), xs[0].clone());
                    for x in &xs[1..] {
                        c = c.when(x.clone().not_eq(lit("")), x.clone());
                    }
                    c.otherwise(lit("")).map_err(|er| self.df_err(er, span))?
                } else {
                    f::coalesce(xs)
                }
            }
            "isempty" | "isnotempty" | "notempty" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                let empty = if self.is_string(&x, schema, args[0].span)? {
                    x.clone().is_null().or(x.eq(lit("")))
                } else {
                    x.is_null()
                };
                if n == "isempty" { empty } else { not(empty) }
            }
            "isnull" | "isnotnull" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                if n == "isnull" { x.is_null() } else { x.is_not_null() }
            }
            "not" => {
                want(self, 1, 1)?;
                not(a(self, 0)?)
            }
            "abs" => {
                want(self, 1, 1)?;
                f::abs(a(self, 0)?)
            }
            "round" => {
                want(self, 1, 2)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                if args.len() == 2 { f::round(vec![x, cast(a(self, 1)?, DataType::Int64)]) } else { f::round(vec![x]) }
            }
            "max_of" | "min_of" => {
                if args.len() < 2 {
                    return Err(self.err(ErrorKind::Semantic, format!("{n}() takes at least 2 arguments"), span));
                }
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                if n == "max_of" { f::greatest(xs) } else { f::least(xs) }
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
            other => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("the function '{other}' is not supported"),
                    name.span,
                ));
            }
        })
    }

    pub(super) fn check_regex(&self, e: &Expr) -> PResult<()> {
        if let ExprKind::Literal(Literal::String(re)) = &e.kind {
            regex::Regex::new(re)
                .map_err(|er| self.err(ErrorKind::Semantic, format!("invalid regex: {er}"), e.span))?;
        }
        Ok(())
    }

    /// `datetime_add(unit, amount, dt)`: calendar units (month, quarter, year) need a constant
    /// amount; the others any whole number.
    pub(super) fn datetime_add(
        &self,
        unit: &str,
        amount: DfExpr,
        amount_ast: &Expr,
        dt: DfExpr,
        span: Span,
    ) -> PResult<DfExpr> {
        let unit = unit.to_ascii_lowercase();
        let months = match unit.as_str() {
            "year" => Some(12),
            "quarter" => Some(3),
            "month" => Some(1),
            _ => None,
        };
        if let Some(m) = months {
            let n = match &amount_ast.kind {
                ExprKind::Literal(Literal::Long(n)) => *n,
                ExprKind::Negate(x) => match &x.kind {
                    ExprKind::Literal(Literal::Long(n)) => -*n,
                    _ => 0,
                },
                _ => {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        format!("datetime_add('{unit}', ...) with an amount that is not a constant whole number"),
                        amount_ast.span,
                    ));
                }
            };
            let months = i32::try_from(n * m)
                .map_err(|_| self.err(ErrorKind::Semantic, "amount out of range", amount_ast.span))?;
            return Ok(dt
                + lit(ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
                    months,
                    days: 0,
                    nanoseconds: 0,
                }))));
        }
        let ns: i64 = match unit.as_str() {
            "week" => 7 * DAY_NS,
            "day" => DAY_NS,
            "hour" => 3_600_000_000_000,
            "minute" => 60_000_000_000,
            "second" => 1_000_000_000,
            "millisecond" => 1_000_000,
            "microsecond" => 1_000,
            "nanosecond" => 1,
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown datetime_add period '{other}' (year, quarter, month, week, day, hour, minute, second, millisecond, microsecond, nanosecond)"),
                    span,
                ));
            }
        };
        Ok(dt + cast(cast(amount, DataType::Int64) * lit(ns), DataType::Duration(TimeUnit::Nanosecond)))
    }

    /// Calendar boundaries crossed between `y` and `x` (`x - y`) in `unit`.
    pub(super) fn datetime_diff(&self, unit: &str, x: DfExpr, y: DfExpr, span: Span) -> PResult<DfExpr> {
        let part = |p: &str, e: DfExpr| cast(f::date_part(lit(p), e), DataType::Int64);
        let trunc_diff = |p: &str, size_ns: i64| {
            cast(
                cast(f::date_trunc(lit(p), x.clone()) - f::date_trunc(lit(p), y.clone()), DataType::Int64),
                DataType::Int64,
            ) / lit(size_ns / 1000)
        };
        Ok(match unit.to_ascii_lowercase().as_str() {
            "year" => part("year", x.clone()) - part("year", y.clone()),
            "quarter" => {
                (part("year", x.clone()) - part("year", y.clone())) * lit(4i64) + part("quarter", x.clone())
                    - part("quarter", y.clone())
            }
            "month" => {
                (part("year", x.clone()) - part("year", y.clone())) * lit(12i64) + part("month", x.clone())
                    - part("month", y.clone())
            }
            "week" => trunc_diff("week", 7 * DAY_NS),
            "day" => trunc_diff("day", DAY_NS),
            "hour" => trunc_diff("hour", 3_600_000_000_000),
            "minute" => trunc_diff("minute", 60_000_000_000),
            "second" => trunc_diff("second", 1_000_000_000),
            "millisecond" => trunc_diff("millisecond", 1_000_000),
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown datetime_diff period '{other}' (year, quarter, month, week, day, hour, minute, second, millisecond)"),
                    span,
                ));
            }
        })
    }
}
