//! The KQL functions of a plan, for running its fragments on other nodes.
//!
//! datafusion-distributed sends physical plans as DataFusion's protobuf, where a scalar
//! function is its name, found again in the receiving node's function registry. A KQL
//! function carries what it was planned with (the needle of a `has`, the regular expression of
//! an `extract`, which arguments are dynamic JSON), so its name says all of it: `has["nginx"]`,
//! `extract["(\\d+)",1]`, `parse_json[1]` ([`name`]); a plain name is a function without
//! parameters. The planning node lists the names a plan calls ([`kql_functions`]); a worker
//! rebuilds each ([`rebuild`]) and registers it before it decodes the plan.

use std::collections::BTreeSet;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, ScalarUDFImpl};
use serde_json::Value;

use super::dynamic::{DynElementIndices, DynElements};
use super::search::{TextSearch, operator};
use super::series::{NearestRank, RangeList};
use super::string::Extract;
use super::{RowUdf, any};

/// The name of a KQL function `base` planned with `params` (a JSON array).
pub(super) fn name(base: &str, params: &Value) -> String {
    debug_assert!(params.is_array(), "parameters are a JSON array");
    format!("{base}{params}")
}

/// Whether `udf` is one of the KQL functions (rather than one of DataFusion's).
fn is_kql(udf: &dyn ScalarUDFImpl) -> bool {
    udf.downcast_ref::<RowUdf>().is_some()
        || udf.downcast_ref::<TextSearch>().is_some()
        || udf.downcast_ref::<Extract>().is_some()
        || udf.downcast_ref::<NearestRank>().is_some()
        || udf.downcast_ref::<DynElements>().is_some()
        || udf.downcast_ref::<DynElementIndices>().is_some()
        || udf.downcast_ref::<RangeList>().is_some()
}

/// The names of the KQL functions `plan` calls, its subqueries' included, each once.
pub fn kql_functions(plan: &LogicalPlan) -> Result<Vec<String>> {
    let mut names = BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(call) = e
                    && is_kql(call.func.inner().as_ref())
                {
                    names.insert(call.func.name().to_string());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(names.into_iter().collect())
}

/// The KQL function `name` stands for (a name [`kql_functions`] listed).
pub fn rebuild(name: &str) -> Result<ScalarUDF> {
    let unknown =
        || DataFusionError::Plan(format!("the KQL function {name} is not known to this node (another release?)"));
    let (base, params) = match name.find('[') {
        Some(at) => {
            let params: Value = serde_json::from_str(&name[at..]).map_err(|_| unknown())?;
            (&name[..at], params)
        }
        None => (name, Value::Array(Vec::new())),
    };
    let text = |i: usize| params.get(i).and_then(Value::as_str).ok_or_else(unknown);
    let whole = |i: usize| params.get(i).and_then(Value::as_u64).ok_or_else(unknown);
    let udf = match base {
        "extract" => ScalarUDF::new_from_impl(Extract::new(text(0)?.to_string(), whole(1)? as usize)),
        "percentile" => {
            let permille = params.get(0).and_then(Value::as_i64).ok_or_else(unknown)?;
            ScalarUDF::new_from_impl(NearestRank::new(permille))
        }
        "mv_expand_elements" => ScalarUDF::new_from_impl(DynElements { signature: any(1) }),
        "mv_expand_indices" => ScalarUDF::new_from_impl(DynElementIndices::new()),
        "kql_range" => ScalarUDF::new_from_impl(RangeList { signature: any(3) }),
        _ => match operator(base) {
            Some((search, case_sensitive)) => {
                ScalarUDF::new_from_impl(TextSearch::new(text(0)?, search, case_sensitive))
            }
            None => {
                let dynamic_args = if params.get(0).is_some() { whole(0)? } else { 0 };
                let template = row_function(base).ok_or_else(unknown)?;
                ScalarUDF::new_from_impl(RowUdf::new(
                    template.name,
                    template.signature,
                    template.ret,
                    template.eval,
                    dynamic_args,
                ))
            }
        },
    };
    if udf.name() != name {
        return Err(unknown());
    }
    Ok(udf)
}

/// The row function called `name`, as its constructor makes it (its code, signature and
/// result type).
fn row_function(name: &str) -> Option<RowUdf> {
    let Expr::ScalarFunction(call) = constructed(name)? else {
        return None;
    };
    let row = call.func.inner().downcast_ref::<RowUdf>()?;
    assert_eq!(row.name, name, "the constructor of {name} makes a function of that name");
    Some(RowUdf::new(row.name, row.signature.clone(), row.ret.clone(), row.eval, 0))
}

/// Calls the constructor of the row function `name` on placeholder arguments. Every row
/// function is listed here (`every_row_function_is_listed` checks the names against the sources).
fn constructed(name: &str) -> Option<Expr> {
    use super::*;
    let x = || datafusion::logical_expr::lit(datafusion::common::ScalarValue::Null);
    Some(match name {
        "totimespan" => totimespan(x()),
        "make_datetime" => make_datetime(vec![]),
        "make_timespan" => make_timespan(vec![]),
        "datetime_utc_to_local" => utc_to_local(x(), x()),
        "datetime_local_to_utc" => local_to_utc(x(), x()),
        "parse_json" => parse_json(x()),
        "dynamic_get" => dyn_get(x(), x()),
        "dynamic_to_string" => dyn_to_string(x()),
        "array_length" => array_length(x()),
        "pack_array" => pack_array(vec![], 0),
        "make_list" => list_to_dynamic(x(), 0, false),
        "array_sort_asc" => array_sort(x(), true),
        "array_sort_desc" => array_sort(x(), false),
        "array_slice" => array_slice(x(), x(), x()),
        "bag_pack" => bag_pack(vec![], 0),
        "parse_ipv4" => parse_ipv4(x()),
        "ipv4_is_private" => ipv4_is_private(x()),
        "ipv4_is_in_range" => ipv4_is_in_range(x(), x()),
        "parse_url" => parse_url(x()),
        "series_fill" => series_fill(x(), x(), x(), x(), x(), x()),
        "series_axis" => series_axis(x(), x(), x()),
        "percentiles_array" => nearest_ranks(x(), &[]),
        "series_stats" => series_stats(x()),
        "series_fit_line" => series_fit_line(x()),
        "series_fit_2lines" => series_fit_2lines(x()),
        "array_concat" => array_concat(vec![]),
        "array_reverse" => array_reverse(x()),
        "set_union" => set_union(vec![]),
        "set_intersect" => set_intersect(vec![]),
        "set_difference" => set_difference(vec![]),
        "set_has_element" => set_has_element(x(), x(), false),
        "array_index_of" => array_index_of(x(), x(), false),
        "bag_keys" => bag_keys(x()),
        "bag_merge" => bag_merge(vec![]),
        "bag_remove_keys" => bag_remove_keys(x(), x()),
        "make_bag" => merge_bags(x(), 0),
        "split" => split(x(), x()),
        "strcat_array" => strcat_array(x(), x()),
        "url_encode" => url_encode(x()),
        "url_encode_component" => url_encode_component(x()),
        "url_decode" => url_decode(x()),
        "base64_encode_tostring" => base64_encode(x()),
        "base64_decode_tostring" => base64_decode(x()),
        "hash_sha256" => hash_sha256(x()),
        "hash_md5" => hash_md5(x()),
        "hash" => hash(vec![]),
        "countof" => countof(x(), x()),
        "indexof" => indexof(vec![]),
        "parse_path" => parse_path(x()),
        _ => return None,
    })
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
