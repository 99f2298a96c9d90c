//! Math: `sqrt`, `exp`, `log*`, `ceiling`, `pow`, `abs`, `round`, `max_of`/`min_of`.

use super::super::*;
use super::{Call, Function};

/// The math functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["sqrt", "exp", "log", "log10", "log2", "ceiling"], arity: Some((1, 1)), plan: unary_math },
    Function { names: &["pow"], arity: Some((2, 2)), plan: pow },
    Function { names: &["abs"], arity: Some((1, 1)), plan: abs },
    Function { names: &["round"], arity: Some((1, 2)), plan: round },
    Function { names: &["max_of", "min_of"], arity: None, plan: max_of },
    Function { names: &["isnan", "isinf", "isfinite"], arity: Some((1, 1)), plan: classify },
];

/// `isnan`, `isinf`, `isfinite`: of a number (a long is never NaN nor infinite).
fn classify(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let x = call.real_arg(p, 0)?;
    let infinite = f::abs(x.clone()).eq(lit(f64::INFINITY));
    Ok(match call.name.name.as_str() {
        "isnan" => f::isnan(x),
        "isinf" => infinite,
        _ => not(f::isnan(x)).and(not(infinite)),
    })
}

/// `sqrt`, `exp`, `log`, `log10`, `log2`, `ceiling`.
fn unary_math(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let x = cast(call.arg(p, 0)?, DataType::Float64);
    Ok(match n {
        "sqrt" => f::sqrt(x),
        "exp" => f::exp(x),
        "log" => f::ln(x),
        "log10" => f::log10(x),
        "log2" => f::log2(x),
        _ => f::ceil(x),
    })
}

/// `pow`.
fn pow(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(f::power(cast(call.arg(p, 0)?, DataType::Float64), cast(call.arg(p, 1)?, DataType::Float64)))
}

/// `abs`.
fn abs(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(f::abs(call.arg(p, 0)?))
}

/// `round`.
fn round(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let x = cast(call.arg(p, 0)?, DataType::Float64);
    Ok(if args.len() == 2 { f::round(vec![x, cast(call.arg(p, 1)?, DataType::Int64)]) } else { f::round(vec![x]) })
}

/// `max_of`, `min_of`.
fn max_of(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, span, .. } = *call;
    if args.len() < 2 {
        return Err(p.err(ErrorKind::Semantic, format!("{n}() takes at least 2 arguments"), span));
    }
    let xs = (0..args.len()).map(|i| call.arg(p, i)).collect::<PResult<Vec<_>>>()?;
    Ok(if n == "max_of" { f::greatest(xs) } else { f::least(xs) })
}
