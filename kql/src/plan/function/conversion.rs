//! Conversions: `tostring`, `toint`/`tolong`/`toreal`/`tobool`/`todatetime`..., `parse_json`/`todynamic`.

use super::super::*;
use super::{Call, Function};

/// The conversion functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["tostring"], arity: Some((1, 1)), plan: tostring },
    Function {
        names: &["toint", "tolong", "toreal", "todouble", "tobool", "toboolean", "todatetime", "todecimal"],
        arity: Some((1, 1)),
        plan: convert_scalar,
    },
    Function { names: &["parse_json", "parsejson", "todynamic", "toobject"], arity: Some((1, 1)), plan: parse_json },
];

/// `tostring`.
fn tostring(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    p.to_text(x, schema, args[0].span)
}

/// `toint`, `tolong`, `toreal`, `todouble`, `tobool`, `toboolean`, `todatetime`, `todecimal`.
fn convert_scalar(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { schema, .. } = *call;
    let mut x = call.arg(p, 0)?;
    if p.is_dynamic(&x, schema) {
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
    Ok(try_cast(x, t))
}

/// `parse_json`, `parsejson`, `todynamic`, `toobject`.
fn parse_json(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { schema, .. } = *call;
    let x = call.arg(p, 0)?;
    Ok(if p.is_dynamic(&x, schema) { x } else { crate::udf::parse_json(x) })
}
