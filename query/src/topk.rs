//! `top N by K` over a wide scan, in two passes. DataFusion's top-k decodes every column the
//! query returns for each file it opens before its dynamic filter is tight, and it prepares
//! files ahead of that filter: `T | top 100 by TimeGenerated` over a table of 60 columns and
//! 700 hourly files decoded 60 columns of every file's first batch for 100 rows. Here a first
//! pass finds the N-th value of `K` reading only `K` and the columns the filters need; the query
//! then runs with `K >= that value` (`<=` ascending), a literal the scan prunes files, row
//! groups and pages by, so the wide columns are decoded for the last pages only.
//!
//! The first pass itself looks back only as far as it must when the key is a stored table's
//! `TimeGenerated`, descending: it runs with `TimeGenerated >= b` for the bounds the files'
//! statistics give ([`TableScanProvider::newest_rows_bounds`]), tightest first, until it finds
//! N rows (those N rows are newer than every row it skipped), and without a bound last.
//!
//! The answer is the same: every one of the top N rows passes the added filter, and at least N
//! rows do. It applies only where that holds by construction: one sort key, a column of an
//! ordered type without NaN (integers, dates and times, strings), the first pass finding N
//! values none of them null (else there is no threshold and the query runs as it is; a bounded
//! first pass only where nulls sort last), and a sort whose input is a plain chain of filters
//! and projections over one table, with no volatile expression (read twice, it must give the
//! same rows). N is at most [`UP_TO_ROWS`]. Sorts by other keys than time are narrowed at
//! planning instead (`fimlake_kql`'s `plan/first_rows.rs`, by a join on the first keys); this
//! pass needs the first pass's answer as a literal, so it runs at execution.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, LogicalPlanBuilder, Sort, SortExpr, TableScan, col, lit};
use datafusion::prelude::SessionContext;
use fimlake_storage::TableScanProvider;

/// A scan reading fewer columns than this is read whole at little cost: no first pass.
pub const WIDE_SCAN_COLUMNS: usize = 8;

/// More rows than this are most of a table's newest files anyway: the first pass would nearly
/// double the work.
pub const UP_TO_ROWS: usize = 10_000;

/// The column stored tables are sorted and bounded by.
const TIME_COLUMN: &str = "TimeGenerated";

/// The sort a first pass can narrow: its key column, direction and row count.
struct Candidate {
    sort: Sort,
    key: Column,
    ascending: bool,
    fetch: usize,
    /// Lower bounds of the key a first pass tries, tightest first (see the module's comment).
    newest_bounds: Vec<ScalarValue>,
}

/// `plan` (optimized) with the threshold of its top-k added, or `None` when there is no such
/// top-k, or the first pass finds no threshold.
pub async fn with_threshold(ctx: &SessionContext, plan: &LogicalPlan) -> Result<Option<LogicalPlan>, DataFusionError> {
    // Most queries sort nothing: they are not optimized twice.
    if !plan.exists(|node| Ok(matches!(node, LogicalPlan::Sort(_))))? {
        return Ok(None);
    }
    let optimized = ctx.state().optimize(plan)?;
    let Some(candidate) = find(&optimized)? else { return Ok(None) };
    let Some(threshold) = threshold(ctx, &candidate).await? else { return Ok(None) };
    let bound = if candidate.ascending {
        Expr::Column(candidate.key.clone()).lt_eq(lit(threshold))
    } else {
        Expr::Column(candidate.key.clone()).gt_eq(lit(threshold))
    };
    let rewritten = optimized.transform_down(|node| match node {
        LogicalPlan::Sort(sort) if sort == candidate.sort => {
            let input = LogicalPlan::Filter(Filter::try_new(bound.clone(), sort.input.clone())?);
            let sort = Sort { input: Arc::new(input), ..sort };
            Ok(Transformed::new(LogicalPlan::Sort(sort), true, TreeNodeRecursion::Stop))
        }
        other => Ok(Transformed::no(other)),
    })?;
    debug_assert!(rewritten.transformed, "the candidate was found in this plan");
    Ok(Some(rewritten.data))
}

/// The first sort (from the top) with a fetch that a first pass can narrow.
fn find(plan: &LogicalPlan) -> Result<Option<Candidate>, DataFusionError> {
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::Sort(sort) = node
            && let Some(candidate) = candidate(sort)
        {
            found = Some(candidate);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

fn candidate(sort: &Sort) -> Option<Candidate> {
    let fetch = sort.fetch.filter(|n| (1..=UP_TO_ROWS).contains(n))?;
    let [SortExpr { expr: Expr::Column(key), asc, nulls_first }] = sort.expr.as_slice() else { return None };
    let (_, field) = sort.input.schema().qualified_field_from_column(key).ok()?;
    let scan = table_scan(&sort.input)?;
    if !orderable_without_nan(field.data_type()) || scan.projected_schema.fields().len() < WIDE_SCAN_COLUMNS {
        return None;
    }
    // Read twice, the input must give the same rows both times.
    let volatile = sort.input.exists(|node| Ok(node.expressions().iter().any(|e| e.is_volatile())));
    if volatile.unwrap_or(true) {
        return None;
    }
    let newest_bounds = if !*asc && !*nulls_first && key.name == TIME_COLUMN {
        newest_bounds(scan, fetch, field.data_type())
    } else {
        Vec::new()
    };
    Some(Candidate { sort: sort.clone(), key: key.clone(), ascending: *asc, fetch, newest_bounds })
}

/// The stored table's bounds for its newest `rows` rows, as literals of the key's type.
fn newest_bounds(scan: &TableScan, rows: usize, data_type: &DataType) -> Vec<ScalarValue> {
    let DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, zone) = data_type else { return Vec::new() };
    let Ok(provider) = source_as_provider(&scan.source) else { return Vec::new() };
    let Some(table) = provider.downcast_ref::<TableScanProvider>() else { return Vec::new() };
    let bounds = table.newest_rows_bounds(rows);
    bounds.into_iter().map(|micros| ScalarValue::TimestampMicrosecond(Some(micros), zone.clone())).collect()
}

/// Types whose sort order and comparison operators agree, with no NaN to break either.
fn orderable_without_nan(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Duration(_)
                | DataType::Utf8
                | DataType::Utf8View
                | DataType::LargeUtf8
        )
}

/// The one table scan under a plain chain of filters and projections; `None` for any other
/// shape (joins, unions, aggregates, windows: their rows are not a table's).
fn table_scan(plan: &LogicalPlan) -> Option<&TableScan> {
    match plan {
        LogicalPlan::Filter(filter) => table_scan(&filter.input),
        LogicalPlan::Projection(projection) => table_scan(&projection.input),
        LogicalPlan::SubqueryAlias(alias) => table_scan(&alias.input),
        LogicalPlan::TableScan(scan) => Some(scan),
        _ => None,
    }
}

/// The N-th value of the key in sort order, when the first N rows all have one: found within
/// each of the candidate's bounds in turn, then without one.
async fn threshold(ctx: &SessionContext, candidate: &Candidate) -> Result<Option<ScalarValue>, DataFusionError> {
    let bounded = candidate.newest_bounds.iter().map(Some);
    for bound in bounded.chain(std::iter::once(None)) {
        if let Some(nth) = nth_value(ctx, candidate, bound).await? {
            return Ok(Some(nth));
        }
    }
    Ok(None)
}

/// The N-th value of the key among the rows at or after `bound`, when there are N of them.
async fn nth_value(
    ctx: &SessionContext,
    candidate: &Candidate,
    bound: Option<&ScalarValue>,
) -> Result<Option<ScalarValue>, DataFusionError> {
    let key = Expr::Column(candidate.key.clone());
    let mut input = LogicalPlanBuilder::from(candidate.sort.input.as_ref().clone());
    if let Some(bound) = bound {
        input = input.filter(key.clone().gt_eq(lit(bound.clone())))?;
    }
    let nth = if candidate.ascending { max(col("key")) } else { min(col("key")) };
    let first_pass = input
        .project(vec![key.clone().alias("key")])?
        .sort_with_limit(vec![SortExpr { expr: col("key"), ..candidate.sort.expr[0].clone() }], Some(candidate.fetch))?
        .aggregate(Vec::<Expr>::new(), vec![nth.alias("nth"), count(col("key")).alias("known")])?
        .build()?;
    let batches = DataFrame::new(ctx.state(), first_pass).collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let known = ScalarValue::try_from_array(batch.column(1), 0)?;
    let fetch = i64::try_from(candidate.fetch).map_err(|e| DataFusionError::External(Box::new(e)))?;
    if known != ScalarValue::Int64(Some(fetch)) {
        return Ok(None);
    }
    let nth = ScalarValue::try_from_array(batch.column(0), 0)?;
    Ok(Some(nth).filter(|v| !v.is_null()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlanBuilder, ident};

    use super::*;

    /// `top fetch by TimeGenerated desc` over a table of `columns` columns.
    fn top(columns: usize, fetch: usize) -> LogicalPlan {
        let mut fields = vec![Field::new("TimeGenerated", DataType::Timestamp(TimeUnit::Microsecond, None), true)];
        fields.extend((1..columns).map(|i| Field::new(format!("c{i}"), DataType::Utf8, true)));
        let table = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]]).unwrap();
        LogicalPlanBuilder::scan("t", provider_as_source(Arc::new(table)), None)
            .unwrap()
            .sort_with_limit(vec![ident("TimeGenerated").sort(false, false)], Some(fetch))
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn only_small_top_ks_of_wide_scans_get_a_first_pass() {
        assert!(find(&top(WIDE_SCAN_COLUMNS, 100)).unwrap().is_some());
        assert!(find(&top(WIDE_SCAN_COLUMNS, UP_TO_ROWS)).unwrap().is_some());
        assert!(find(&top(WIDE_SCAN_COLUMNS, UP_TO_ROWS + 1)).unwrap().is_none(), "too many rows");
        assert!(find(&top(WIDE_SCAN_COLUMNS - 1, 100)).unwrap().is_none(), "too few columns");
        assert!(find(&top(WIDE_SCAN_COLUMNS, 0)).unwrap().is_none(), "no rows");
    }
}
