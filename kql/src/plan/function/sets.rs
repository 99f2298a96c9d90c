//! Arrays as sets and property bags: `array_concat`, `array_reverse`, `array_index_of`,
//! `set_union`, `set_intersect`, `set_difference`, `set_has_element`, `bag_keys`, `bag_merge`,
//! `bag_remove_keys`.

use super::super::*;
use super::{Call, Function};

/// The set and bag functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["array_concat", "set_union", "bag_merge"], arity: Some((1, 64)), plan: many_dynamic },
    Function { names: &["set_intersect", "set_difference"], arity: Some((2, 64)), plan: many_dynamic },
    Function { names: &["array_reverse", "bag_keys"], arity: Some((1, 1)), plan: many_dynamic },
    Function { names: &["bag_remove_keys"], arity: Some((2, 2)), plan: many_dynamic },
    Function { names: &["set_has_element", "array_index_of"], arity: Some((2, 2)), plan: find_element },
];

/// Functions whose arguments are all dynamic.
fn many_dynamic(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let mut xs = (0..call.args.len()).map(|i| call.dynamic_arg(p, i)).collect::<PResult<Vec<_>>>()?;
    Ok(match call.name.name.as_str() {
        "array_concat" => crate::udf::array_concat(xs),
        "set_union" => crate::udf::set_union(xs),
        "bag_merge" => crate::udf::bag_merge(xs),
        "set_intersect" => crate::udf::set_intersect(xs),
        "set_difference" => crate::udf::set_difference(xs),
        "array_reverse" => crate::udf::array_reverse(xs.remove(0)),
        "bag_keys" => crate::udf::bag_keys(xs.remove(0)),
        _ => {
            let keys = xs.remove(1);
            crate::udf::bag_remove_keys(xs.remove(0), keys)
        }
    })
}

/// `set_has_element(array, value)`, `array_index_of(array, value)`.
fn find_element(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let array = call.dynamic_arg(p, 0)?;
    let value = call.arg(p, 1)?;
    let value_is_dynamic = p.is_dynamic(&value, call.schema);
    Ok(if call.name.name == "set_has_element" {
        crate::udf::set_has_element(array, value, value_is_dynamic)
    } else {
        crate::udf::array_index_of(array, value, value_is_dynamic)
    })
}
