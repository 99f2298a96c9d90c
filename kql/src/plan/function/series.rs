//! Series analysis: `series_stats`, `series_fit_line`, `series_fit_2lines` (several values,
//! named with `extend (a, b, ...) = ...`) and their `_dynamic` forms (one property bag).

use fimlake_kusto::KustoType;

use super::super::*;
use super::{Call, Function};

/// The series analysis functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["series_stats_dynamic", "series_fit_line_dynamic", "series_fit_2lines_dynamic"],
        arity: Some((1, 1)),
        plan: as_bag,
    },
    Function { names: &["series_stats", "series_fit_line", "series_fit_2lines"], arity: Some((1, 1)), plan: several },
];

/// The results of the functions that return several values, in Kusto's order.
pub(in crate::plan) fn results(name: &str) -> Option<&'static [(&'static str, KustoType)]> {
    use KustoType::{Dynamic, Long, Real};
    const STATS: &[(&str, KustoType)] = &[
        ("min", Real),
        ("min_idx", Long),
        ("max", Real),
        ("max_idx", Long),
        ("avg", Real),
        ("stdev", Real),
        ("variance", Real),
    ];
    const LINE: &[(&str, KustoType)] = &[
        ("rsquare", Real),
        ("slope", Real),
        ("variance", Real),
        ("rvariance", Real),
        ("interception", Real),
        ("line_fit", Dynamic),
    ];
    const TWO_LINES: &[(&str, KustoType)] = &[
        ("rsquare", Real),
        ("split_idx", Long),
        ("variance", Real),
        ("rvariance", Real),
        ("line_fit", Dynamic),
        ("right_rsquare", Real),
        ("right_slope", Real),
        ("right_interception", Real),
        ("right_variance", Real),
        ("right_rvariance", Real),
        ("left_rsquare", Real),
        ("left_slope", Real),
        ("left_interception", Real),
        ("left_variance", Real),
        ("left_rvariance", Real),
    ];
    match name {
        "series_stats" => Some(STATS),
        "series_fit_line" => Some(LINE),
        "series_fit_2lines" => Some(TWO_LINES),
        _ => None,
    }
}

/// `series_stats_dynamic`, `series_fit_line_dynamic`, `series_fit_2lines_dynamic`.
fn as_bag(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let series = call.dynamic_arg(p, 0)?;
    Ok(match call.name.name.trim_end_matches("_dynamic") {
        "series_stats" => crate::udf::series_stats(series),
        "series_fit_line" => crate::udf::series_fit_line(series),
        _ => crate::udf::series_fit_2lines(series),
    })
}

/// A function of several values where one is expected.
fn several(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let name = &call.name.name;
    let message = format!(
        "{name}() returns several values: name them with extend (a, b, ...) = {name}(...), or use {name}_dynamic() for one property bag"
    );
    Err(p.err(ErrorKind::Semantic, message, call.span))
}
