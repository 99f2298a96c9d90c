//! Scalar function calls, one file per family of functions. Each family has a table of
//! [`Function`]s (names, number of arguments, planner); a new function is a row in its family's
//! table and a small planner function beside it (and, when DataFusion lacks it, a UDF in
//! `udf/`, in the file of its family).

mod control;
mod conversion;
mod datetime;
mod dynamic;
mod encoding;
mod math;
mod network;
mod series;
mod sets;
mod string;

use fimlake_kusto::KustoType;

use super::*;

/// The Kusto number types.
const NUMBERS: &[KustoType] = &[KustoType::Int, KustoType::Long, KustoType::Real];

/// One call being planned: the function's name, its arguments and where it stands.
#[derive(Clone, Copy)]
pub(super) struct Call<'c> {
    pub name: &'c Ident,
    pub args: &'c [Expr],
    pub schema: &'c DFSchema,
    pub span: Span,
}

/// One scalar function: the names it answers to, how many arguments it takes (`None`: its
/// planner checks), and its planner.
pub(super) struct Function {
    pub names: &'static [&'static str],
    pub arity: Option<(usize, usize)>,
    pub plan: for<'p> fn(&mut Planner<'p>, &Call) -> PResult<DfExpr>,
}

/// Every family's table, in one map from name to function.
fn functions() -> &'static HashMap<&'static str, &'static Function> {
    static FUNCTIONS: std::sync::OnceLock<HashMap<&'static str, &'static Function>> = std::sync::OnceLock::new();
    FUNCTIONS.get_or_init(|| {
        let families = [
            control::FUNCTIONS,
            conversion::FUNCTIONS,
            datetime::FUNCTIONS,
            dynamic::FUNCTIONS,
            encoding::FUNCTIONS,
            math::FUNCTIONS,
            network::FUNCTIONS,
            series::FUNCTIONS,
            sets::FUNCTIONS,
            string::FUNCTIONS,
        ];
        let mut map = HashMap::new();
        for function in families.into_iter().flatten() {
            for name in function.names {
                let previous = map.insert(*name, function);
                assert!(previous.is_none(), "the function name '{name}' is in two tables");
            }
        }
        map
    })
}

pub(super) use series::results as several_results;

/// Every scalar function's name, sorted.
pub(super) fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = functions().keys().copied().collect();
    names.sort_unstable();
    names
}

/// Whether a scalar function of that name exists.
pub(super) fn is_scalar_function(name: &str) -> bool {
    functions().contains_key(name)
}

impl Call<'_> {
    /// The `i`th argument, planned.
    fn arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        p.scalar(&self.args[i], self.schema)
    }

    /// The `i`th argument as text: a string as it is, other values as `tostring()` gives them.
    fn text_arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        let x = self.arg(p, i)?;
        p.to_text(x, self.schema, self.args[i].span)
    }

    /// The `i`th argument, which must be a dynamic value.
    fn dynamic_arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        let x = self.arg(p, i)?;
        p.dynamic_value(x, self.schema, self.args[i].span)
    }

    /// The `i`th argument, which must be of one of the `expected` Kusto types (a null fits).
    fn typed_arg(&self, p: &mut Planner, i: usize, expected: &[KustoType]) -> PResult<DfExpr> {
        let x = self.arg(p, i)?;
        let span = self.args[i].span;
        let (actual, data_type) = p.kusto_type(&x, self.schema, span)?;
        let fits = match actual {
            None => data_type == DataType::Null,
            Some(actual) => expected.contains(&actual),
        };
        if fits {
            return Ok(x);
        }
        let names: Vec<&str> = expected.iter().map(|t| t.name()).collect();
        let message = format!(
            "{}() expects {} as argument {}, got {}",
            self.name.name,
            names.join(" or "),
            i + 1,
            actual.map_or("null", KustoType::name)
        );
        Err(p.err(ErrorKind::Semantic, message, span))
    }

    /// The `i`th argument as a real; it must be a number.
    fn real_arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        Ok(cast(self.typed_arg(p, i, NUMBERS)?, DataType::Float64))
    }

    /// The `i`th argument as a long; it must be a number.
    fn long_arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        Ok(cast(self.typed_arg(p, i, NUMBERS)?, DataType::Int64))
    }

    /// The `i`th argument; it must be a datetime.
    fn datetime_arg(&self, p: &mut Planner, i: usize) -> PResult<DfExpr> {
        self.typed_arg(p, i, &[KustoType::DateTime])
    }

    /// Checks the number of arguments: `lo` to `hi`.
    fn want(&self, p: &Planner, lo: usize, hi: usize) -> PResult<()> {
        let (n, got) = (self.name.name.as_str(), self.args.len());
        if (lo..=hi).contains(&got) {
            Ok(())
        } else if lo == hi {
            Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} argument(s), got {got}"), self.span))
        } else {
            Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} to {hi} arguments, got {got}"), self.span))
        }
    }
}

impl Planner<'_> {
    /// A scalar function call: the function of that name from the families' tables, its
    /// number of arguments checked, then planned.
    pub(super) fn call(&mut self, name: &Ident, args: &[Expr], schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        if let Some(function) = self.user_function(name)? {
            return self.call_scalar_function(&function, args, schema, span);
        }
        let call = Call { name, args, schema, span };
        let Some(function) = functions().get(name.name.as_str()) else {
            return Err(self.err(
                ErrorKind::Unsupported,
                format!("the function '{}' is not supported", name.name),
                name.span,
            ));
        };
        if let Some((lowest, highest)) = function.arity {
            call.want(self, lowest, highest)?;
        }
        (function.plan)(self, &call)
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
