//! Control and null handling: `iff`, `case`, `coalesce`, `isempty`, `isnull`, `not`, `toscalar`.

use super::super::*;
use super::{Call, Function};

/// The control functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["toscalar"], arity: Some((1, 1)), plan: toscalar },
    Function { names: &["iff", "iif"], arity: Some((3, 3)), plan: iff },
    Function { names: &["case"], arity: None, plan: case },
    Function { names: &["coalesce"], arity: None, plan: coalesce },
    Function { names: &["isempty", "isnotempty", "notempty"], arity: Some((1, 1)), plan: isempty },
    Function { names: &["isnull", "isnotnull"], arity: Some((1, 1)), plan: isnull },
    Function { names: &["not"], arity: Some((1, 1)), plan: negation },
];

/// `toscalar`.
fn toscalar(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, span, .. } = *call;
    let sub = p.tabular_expr(&args[0])?;
    let first = sub.schema().field(0).name().clone();
    let sub = LogicalPlanBuilder::from(sub)
        .project(vec![ident(first)])
        .and_then(|b| b.limit(0, Some(1)))
        .and_then(|b| b.build())
        .map_err(|e| p.df_err(e, span))?;
    Ok(datafusion::logical_expr::expr_fn::scalar_subquery(Arc::new(sub)))
}

/// `iff`, `iif`.
fn iff(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { span, .. } = *call;
    let c = call.arg(p, 0)?;
    let t = call.arg(p, 1)?;
    let e = call.arg(p, 2)?;
    when(c, t).otherwise(e).map_err(|er| p.df_err(er, span))
}

/// `case`.
fn case(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, span, .. } = *call;
    if args.len() < 3 || args.len().is_multiple_of(2) {
        return Err(p.err(ErrorKind::Semantic, "case() takes pairs of predicate and value, then an else value", span));
    }
    let mut c = when(call.arg(p, 0)?, call.arg(p, 1)?);
    let mut i = 2;
    while i + 1 < args.len() {
        c = c.when(call.arg(p, i)?, call.arg(p, i + 1)?);
        i += 2;
    }
    c.otherwise(call.arg(p, args.len() - 1)?).map_err(|er| p.df_err(er, span))
}

/// `coalesce`.
fn coalesce(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, span, .. } = *call;
    if args.is_empty() {
        return Err(p.err(ErrorKind::Semantic, "coalesce() takes at least one argument", span));
    }
    let xs = (0..args.len()).map(|i| call.arg(p, i)).collect::<PResult<Vec<_>>>()?;
    Ok(if p.is_string(&xs[0], schema, args[0].span)? {
        // For strings, the first non-empty value.
        let mut c = when(xs[0].clone().not_eq(lit("")), xs[0].clone());
        for x in &xs[1..] {
            c = c.when(x.clone().not_eq(lit("")), x.clone());
        }
        c.otherwise(lit("")).map_err(|er| p.df_err(er, span))?
    } else {
        f::coalesce(xs)
    })
}

/// `isempty`, `isnotempty`, `notempty`.
fn isempty(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    let empty =
        if p.is_string(&x, schema, args[0].span)? { x.clone().is_null().or(x.eq(lit(""))) } else { x.is_null() };
    Ok(if n == "isempty" { empty } else { not(empty) })
}

/// `isnull`, `isnotnull`.
fn isnull(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let x = call.arg(p, 0)?;
    Ok(if n == "isnull" { x.is_null() } else { x.is_not_null() })
}

/// `not`.
fn negation(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(not(call.arg(p, 0)?))
}
