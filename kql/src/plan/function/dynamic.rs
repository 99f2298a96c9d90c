//! Dynamic arrays and property bags: `array_length`, `pack_array`, `array_sort_*`, `array_slice`, `bag_pack`...

use super::super::*;
use super::{Call, Function};

/// The dynamic functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["array_length"], arity: Some((1, 1)), plan: array_length },
    Function { names: &["pack_array"], arity: None, plan: pack_array },
    Function { names: &["array_sort_asc", "array_sort_desc"], arity: Some((1, 1)), plan: array_sort_asc },
    Function { names: &["array_slice"], arity: Some((3, 3)), plan: array_slice },
    Function { names: &["pack", "bag_pack", "pack_dictionary", "pack_all"], arity: None, plan: pack },
];

/// `array_length`.
fn array_length(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    Ok(crate::udf::array_length(p.dynamic_value(x, schema, args[0].span)?))
}

/// `pack_array`.
fn pack_array(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let xs = (0..args.len()).map(|i| call.arg(p, i)).collect::<PResult<Vec<_>>>()?;
    let mask = p.dynamic_args(&xs, schema);
    Ok(crate::udf::pack_array(xs, mask))
}

/// `array_sort_asc`, `array_sort_desc`.
fn array_sort_asc(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    Ok(crate::udf::array_sort(p.dynamic_value(x, schema, args[0].span)?, n == "array_sort_asc"))
}

/// `array_slice`.
fn array_slice(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let Call { args, schema, .. } = *call;
    let x = call.arg(p, 0)?;
    let x = p.dynamic_value(x, schema, args[0].span)?;
    Ok(crate::udf::array_slice(x, cast(call.arg(p, 1)?, DataType::Int64), cast(call.arg(p, 2)?, DataType::Int64)))
}

/// `pack`, `bag_pack`, `pack_dictionary`, `pack_all`.
fn pack(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let n = call.name.name.as_str();
    let Call { args, schema, span, .. } = *call;
    let xs: Vec<DfExpr> = if n == "pack_all" {
        call.want(p, 0, 0)?;
        schema.fields().iter().flat_map(|f| [lit(f.name().clone()), ident(f.name())]).collect()
    } else {
        if !args.len().is_multiple_of(2) {
            return Err(p.err(ErrorKind::Semantic, format!("{n}() takes pairs of key and value"), span));
        }
        (0..args.len()).map(|i| call.arg(p, i)).collect::<PResult<Vec<_>>>()?
    };
    let mask = p.dynamic_args(&xs, schema);
    Ok(crate::udf::bag_pack(xs, mask))
}
