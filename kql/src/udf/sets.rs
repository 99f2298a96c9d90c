//! UDFs over dynamic arrays and property bags: `array_concat`, `array_reverse`,
//! `array_index_of`, the `set_*` functions, `bag_keys`, `bag_merge`, `bag_remove_keys`.

use super::*;

/// Every argument as an array, or `None` when one is not.
fn arrays(a: &[ArgValue]) -> Option<Vec<&Vec<Value>>> {
    a.iter().map(ArgValue::array).collect()
}

/// A UDF of any number of dynamic arguments returning a dynamic.
fn dynamic_udf(name: &'static str, eval: RowFn, args: Vec<Expr>) -> Expr {
    make(name, Signature::variadic_any(Volatility::Immutable), Ret::Dynamic, eval, args, u64::MAX)
}

/// `array_concat(a1, a2, ...)`: the arrays one after the other; null when one is not an array.
pub fn array_concat(args: Vec<Expr>) -> Expr {
    dynamic_udf(
        "array_concat",
        |a| arrays(a).map_or(Out::Null, |all| Out::Json(Value::Array(all.into_iter().flatten().cloned().collect()))),
        args,
    )
}

/// `array_reverse(a)`: the elements in the opposite order; null when `a` is not an array.
pub fn array_reverse(a: Expr) -> Expr {
    dynamic_udf(
        "array_reverse",
        |a| a[0].array().map_or(Out::Null, |items| Out::Json(Value::Array(items.iter().rev().cloned().collect()))),
        vec![a],
    )
}

/// Distinct values in order of first appearance.
fn distinct<'v>(values: impl Iterator<Item = &'v Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for value in values {
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    out
}

/// `set_union(a1, a2, ...)`: the distinct values of all the arrays.
pub fn set_union(args: Vec<Expr>) -> Expr {
    dynamic_udf(
        "set_union",
        |a| arrays(a).map_or(Out::Null, |all| Out::Json(Value::Array(distinct(all.into_iter().flatten())))),
        args,
    )
}

/// `set_intersect(a1, a2, ...)`: the distinct values that are in every array.
pub fn set_intersect(args: Vec<Expr>) -> Expr {
    dynamic_udf(
        "set_intersect",
        |a| {
            arrays(a).map_or(Out::Null, |all| {
                let common = all[0].iter().filter(|v| all[1..].iter().all(|other| other.contains(v)));
                Out::Json(Value::Array(distinct(common)))
            })
        },
        args,
    )
}

/// `set_difference(a1, a2, ...)`: the distinct values of `a1` that are in none of the others.
pub fn set_difference(args: Vec<Expr>) -> Expr {
    dynamic_udf(
        "set_difference",
        |a| {
            arrays(a).map_or(Out::Null, |all| {
                let only = all[0].iter().filter(|v| !all[1..].iter().any(|other| other.contains(v)));
                Out::Json(Value::Array(distinct(only)))
            })
        },
        args,
    )
}

/// `set_has_element(a, value)`: whether the array holds the value; null when `a` is not an
/// array.
pub fn set_has_element(a: Expr, value: Expr, value_is_dynamic: bool) -> Expr {
    make(
        "set_has_element",
        any(2),
        Ret::Type(DataType::Boolean),
        |a| a[0].array().map_or(Out::Null, |items| Out::Bool(items.contains(&to_json(&a[1])))),
        vec![a, value],
        1 | u64::from(value_is_dynamic) << 1,
    )
}

/// `array_index_of(a, value)`: the index of the first element equal to `value`, -1 when none;
/// null when `a` is not an array.
pub fn array_index_of(a: Expr, value: Expr, value_is_dynamic: bool) -> Expr {
    make(
        "array_index_of",
        any(2),
        Ret::Type(DataType::Int64),
        |a| {
            a[0].array().map_or(Out::Null, |items| {
                let value = to_json(&a[1]);
                Out::Long(items.iter().position(|item| *item == value).map_or(-1, |i| i as i64))
            })
        },
        vec![a, value],
        1 | u64::from(value_is_dynamic) << 1,
    )
}

/// `bag_keys(bag)`: the bag's keys; null when it is not a property bag.
pub fn bag_keys(b: Expr) -> Expr {
    dynamic_udf(
        "bag_keys",
        |a| {
            a[0].bag()
                .map_or(Out::Null, |bag| Out::Json(Value::Array(bag.keys().cloned().map(Value::String).collect())))
        },
        vec![b],
    )
}

/// `bag_merge(b1, b2, ...)`: every key of every bag; a key in several bags keeps the value of the
/// leftmost; null when one argument is not a bag.
pub fn bag_merge(args: Vec<Expr>) -> Expr {
    dynamic_udf(
        "bag_merge",
        |a| {
            let Some(bags) = a.iter().map(ArgValue::bag).collect::<Option<Vec<_>>>() else { return Out::Null };
            let mut merged = serde_json::Map::new();
            for bag in bags {
                for (key, value) in bag {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            Out::Json(Value::Object(merged))
        },
        args,
    )
}

/// `bag_remove_keys(bag, keys)`: the bag without the keys named in the array `keys`.
pub fn bag_remove_keys(b: Expr, keys: Expr) -> Expr {
    dynamic_udf(
        "bag_remove_keys",
        |a| match (a[0].bag(), a[1].array()) {
            (Some(bag), Some(keys)) => {
                let removed: Vec<String> = keys.iter().map(json_to_string).collect();
                let kept = bag.iter().filter(|(key, _)| !removed.contains(key));
                Out::Json(Value::Object(kept.map(|(key, value)| (key.clone(), value.clone())).collect()))
            }
            _ => Out::Null,
        },
        vec![b, keys],
    )
}

/// `make_bag`'s finish: the property bags of a group merged into one of at most `max` keys (a
/// key in several bags keeps the first value met); values that are not bags are skipped.
pub fn merge_bags(list: Expr, max: i64) -> Expr {
    make(
        "make_bag",
        any(2),
        Ret::Dynamic,
        |a| {
            let max = a[1].size_limit();
            let mut merged = serde_json::Map::new();
            if let ArgValue::List(items) = &a[0] {
                for bag in items.iter().filter_map(ArgValue::bag) {
                    for (key, value) in bag {
                        if merged.len() < max || merged.contains_key(key) {
                            merged.entry(key.clone()).or_insert_with(|| value.clone());
                        }
                    }
                }
            }
            Out::Json(Value::Object(merged))
        },
        vec![list, datafusion::logical_expr::lit(max)],
        1,
    )
}
