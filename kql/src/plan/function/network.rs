//! IPv4 addresses and URLs: `parse_ipv4`, `ipv4_is_private`, `ipv4_is_in_range`, `parse_url`.

use fimlake_kusto::KustoType;

use super::super::*;
use super::{Call, Function};

/// The network functions: names, number of arguments, planner.
pub(super) const FUNCTIONS: &[Function] = &[
    Function { names: &["parse_ipv4", "ipv4_is_private", "parse_url"], arity: Some((1, 1)), plan: one_text },
    Function { names: &["ipv4_is_in_range"], arity: Some((2, 2)), plan: ipv4_is_in_range },
];

/// `parse_ipv4`, `ipv4_is_private`, `parse_url`: of a string.
fn one_text(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let text = call.typed_arg(p, 0, &[KustoType::String])?;
    Ok(match call.name.name.as_str() {
        "parse_ipv4" => crate::udf::parse_ipv4(text),
        "ipv4_is_private" => crate::udf::ipv4_is_private(text),
        _ => crate::udf::parse_url(text),
    })
}

/// `ipv4_is_in_range(ip, range)`.
fn ipv4_is_in_range(p: &mut Planner, call: &Call) -> PResult<DfExpr> {
    let ip = call.typed_arg(p, 0, &[KustoType::String])?;
    let range = call.typed_arg(p, 1, &[KustoType::String])?;
    Ok(crate::udf::ipv4_is_in_range(ip, range))
}
