//! String functions: `tolower`, `strcat`, `substring`, `extract`, `replace_regex`, `trim`, `split`, `indexof`...

use super::super::*;
use super::{Call, Function};

/// The string functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["tolower"], arity: Some((1, 1)), plan: tolower },
    Function { names: &["toupper"], arity: Some((1, 1)), plan: toupper },
    Function { names: &["strlen"], arity: Some((1, 1)), plan: strlen },
    Function { names: &["strcat"], arity: None, plan: strcat },
    Function { names: &["substring"], arity: Some((2, 3)), plan: substring },
    Function { names: &["split"], arity: Some((2, 3)), plan: split },
    Function { names: &["strcat_array"], arity: Some((2, 2)), plan: strcat_array },
    Function { names: &["extract"], arity: Some((3, 3)), plan: extract },
    Function { names: &["replace_string"], arity: Some((3, 3)), plan: replace_string },
    Function { names: &["replace_regex", "replace"], arity: Some((3, 3)), plan: replace_regex },
    Function { names: &["trim", "trim_start", "trim_end"], arity: Some((2, 2)), plan: trim },
    Function { names: &["indexof"], arity: Some((2, 2)), plan: indexof },
];

/// `tolower`.
fn tolower(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(f::lower(call.arg(p, 0)?))
}

/// `toupper`.
fn toupper(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(f::upper(call.arg(p, 0)?))
}

/// `strlen`.
fn strlen(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(cast(f::character_length(call.arg(p, 0)?), DataType::Int64))
}

/// `strcat`.
fn strcat(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, span, .. } = *call;
    if args.is_empty() {
        return Err(p.err(ErrorKind::Semantic, "strcat() takes 1 to 64 arguments", span));
    }
    let parts =
        (0..args.len()).map(|i| call.arg(p, i).map(|x| cast(x, DataType::Utf8))).collect::<PResult<Vec<_>>>()?;
    Ok(f::concat(parts))
}

/// `substring`.
fn substring(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let text = call.arg(p, 0)?;
    // Kusto counts from 0, SQL from 1.
    let start = cast(call.arg(p, 1)?, DataType::Int64) + lit(1i64);
    Ok(if args.len() == 3 {
        f::substring(text, start, cast(call.arg(p, 2)?, DataType::Int64))
    } else {
        f::substr(text, start)
    })
}

/// `split`.
fn split(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let text = call.arg(p, 0)?;
    let text = p.to_text(text, schema, args[0].span)?;
    let parts = crate::udf::split(text, call.arg(p, 1)?);
    Ok(if args.len() == 3 { crate::udf::dyn_get(parts, cast(call.arg(p, 2)?, DataType::Int64)) } else { parts })
}

/// `strcat_array`.
fn strcat_array(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    let x = p.dynamic_value(x, schema, args[0].span)?;
    Ok(crate::udf::strcat_array(x, call.arg(p, 1)?))
}

/// `extract`.
fn extract(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
        return Err(p.err(ErrorKind::Unsupported, "extract() takes its regex as a string literal", args[0].span));
    };
    let ExprKind::Literal(Literal::Long(group)) = &args[1].kind else {
        return Err(p.err(ErrorKind::Unsupported, "extract() takes the capture group as a number", args[1].span));
    };
    let re =
        regex::Regex::new(re).map_err(|e| p.err(ErrorKind::Semantic, format!("invalid regex: {e}"), args[0].span))?;
    if *group < 0 || *group as usize > re.captures_len() - 1 {
        return Err(p.err(
            ErrorKind::Semantic,
            format!("the regex has {} capture group(s); group {group} does not exist", re.captures_len() - 1),
            args[1].span,
        ));
    }
    let text = call.arg(p, 2)?;
    let text = p.to_text(text, schema, args[2].span)?;
    Ok(crate::udf::extract(&re, *group as usize, text))
}

/// `replace_string`.
fn replace_string(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let text = call.arg(p, 0)?;
    let text = p.to_text(text, schema, args[0].span)?;
    Ok(f::replace(text, call.arg(p, 1)?, call.arg(p, 2)?))
}

/// `replace_regex`, `replace`.
fn replace_regex(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, schema, .. } = *call;
    // replace(regex, rewrite, text) is the older argument order.
    let (t, r, w) = if n == "replace" { (2, 0, 1) } else { (0, 1, 2) };
    let text = call.arg(p, t)?;
    let text = p.to_text(text, schema, args[t].span)?;
    p.check_regex(&args[r])?;
    Ok(f::regexp_replace(text, call.arg(p, r)?, call.arg(p, w)?, Some(lit("g"))))
}

/// `trim`, `trim_start`, `trim_end`.
fn trim(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, schema, .. } = *call;
    let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
        return Err(p.err(ErrorKind::Unsupported, format!("{n}() takes its regex as a string literal"), args[0].span));
    };
    p.check_regex(&args[0])?;
    let pattern = match n {
        "trim" => format!("^(?:{re})+|(?:{re})+$"),
        "trim_start" => format!("^(?:{re})+"),
        _ => format!("(?:{re})+$"),
    };
    let text = call.arg(p, 1)?;
    let text = p.to_text(text, schema, args[1].span)?;
    Ok(f::regexp_replace(text, lit(pattern), lit(""), Some(lit("g"))))
}

/// `indexof`.
fn indexof(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let text = call.arg(p, 0)?;
    let text = p.to_text(text, schema, args[0].span)?;
    Ok(cast(f::strpos(text, call.arg(p, 1)?), DataType::Int64) - lit(1i64))
}
