//! String functions: `tolower`, `strcat`, `substring`, `extract`, `replace_regex`, `trim`, `split`, `indexof`...

use fimlake_kusto::KustoType;

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
    Function { names: &["indexof"], arity: Some((2, 5)), plan: indexof },
    Function { names: &["strcat_delim"], arity: Some((3, 65)), plan: strcat_delim },
    Function { names: &["countof"], arity: Some((2, 3)), plan: countof },
    Function { names: &["strcmp"], arity: Some((2, 2)), plan: strcmp },
    Function { names: &["string_size"], arity: Some((1, 1)), plan: string_size },
    Function { names: &["reverse"], arity: Some((1, 1)), plan: reverse },
    Function { names: &["parse_path"], arity: Some((1, 1)), plan: parse_path },
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

/// `indexof(s, lookup [, start [, length [, occurrence]]])`: `s` and `lookup` as text.
fn indexof(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let mut args = vec![call.text_arg(p, 0)?, call.text_arg(p, 1)?];
    for i in 2..call.args.len() {
        args.push(call.long_arg(p, i)?);
    }
    Ok(crate::udf::indexof(args))
}

/// `strcat_delim(delimiter, a, b, ...)`: the arguments as text, joined by the delimiter.
fn strcat_delim(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let delimiter = call.typed_arg(p, 0, &[KustoType::String])?;
    let parts = (1..call.args.len()).map(|i| call.text_arg(p, i)).collect::<PResult<Vec<_>>>()?;
    let parts = parts.into_iter().map(|x| f::coalesce(vec![x, lit("")])).collect();
    Ok(f::concat_ws(delimiter, parts))
}

/// `countof(text, search [, kind])`: `kind` is `"normal"` (overlapping matches, the default) or
/// `"regex"` (non-overlapping matches of a regex).
fn countof(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, .. } = *call;
    let kind = match args.get(2).map(|a| &a.kind) {
        None => "normal",
        Some(ExprKind::Literal(Literal::String(kind))) if kind == "normal" || kind == "regex" => kind.as_str(),
        Some(_) => {
            let message = "countof() takes its kind as the string literal \"normal\" or \"regex\"";
            return Err(p.err(ErrorKind::Semantic, message, args[2].span));
        }
    };
    let text = call.text_arg(p, 0)?;
    let search = call.typed_arg(p, 1, &[KustoType::String])?;
    if kind == "normal" {
        return Ok(crate::udf::countof(text, search));
    }
    p.check_regex(&args[1])?;
    Ok(cast(
        f::coalesce(vec![datafusion::functions::regex::expr_fn::regexp_count(text, search, None, None), lit(0i64)]),
        DataType::Int64,
    ))
}

/// `strcmp(a, b)`: -1, 0 or 1 as `a` sorts before, with or after `b` (by code point).
fn strcmp(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let a = call.typed_arg(p, 0, &[KustoType::String])?;
    let b = call.typed_arg(p, 1, &[KustoType::String])?;
    when(a.clone().lt(b.clone()), lit(-1i64))
        .when(a.clone().eq(b.clone()), lit(0i64))
        .when(a.gt(b), lit(1i64))
        .end()
        .map_err(|e| p.df_err(e, call.span))
}

/// `string_size(s)`: the size of the UTF-8 text in bytes.
fn string_size(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(cast(f::octet_length(call.text_arg(p, 0)?), DataType::Int64))
}

/// `reverse(s)`: the characters in the opposite order (a non-string as its text).
fn reverse(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(f::reverse(call.text_arg(p, 0)?))
}

/// `parse_path(path)`.
fn parse_path(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    Ok(crate::udf::parse_path(call.text_arg(p, 0)?))
}
