//! `top N by K` over a scan of more columns than the key and the filters read, in two passes.
//! DataFusion's top-k decodes every column the query returns for each file it opens before its
//! dynamic filter is tight, and it prepares files ahead of that filter: `T | top 100 by
//! TimeGenerated` over a table of 60 columns and 700 hourly files decoded 60 columns of every
//! file's first batch for 100 rows. Here a first pass finds the first N values of `K` reading
//! only `K` and the columns the filters need (filtered inside the Parquet decoder, so `K` is
//! decoded for the matching rows only); the query then runs with `K >= the N-th` (`<=`
//! ascending), literals the scan prunes files, row groups and pages by, so the other columns
//! are decoded for the last pages only.
//!
//! The first pass itself looks back only as far as it must when the key is a stored table's
//! `TimeGenerated`, descending: it reads the newest files first, in windows between the bounds
//! the files' statistics give ([`TableScanProvider::newest_rows_bounds`]: the newest files
//! holding N rows, then four times as many files, and so on), until it has found N rows (every
//! row it did not read is older), the last window all older rows. No row is read twice.
//!
//! That bound is split into ranges of the key where the N keys found are far apart
//! (`topk/ranges.rs`), so a filtered query (a file's history) skips the files and row groups
//! between its rows.
//!
//! When the whole input has fewer than N rows (a rare item's history), the first pass sees all
//! of them: their keys bound them just as well, and with no row at all the query's scan is
//! replaced by nothing (`false`), so the input is read once, not twice.
//!
//! The answer is the same: every one of the top N rows passes the added filter, and at least N
//! rows do (or all of them). It applies only where that holds by construction: one sort key, a
//! column of an ordered type without NaN (integers, dates and times, strings), the first pass
//! finding N values none of them null, or every row and none null (else there is no threshold
//! and the query runs as it is; windows only where nulls sort last), and a sort
//! whose input is a plain chain of filters and projections over one table, with no volatile
//! expression (read twice, it must give the same rows). N is at most [`UP_TO_ROWS`]. Sorts by
//! other keys than time are narrowed at planning instead (`fimlake_kql`'s
//! `plan/first_rows.rs`, by a join on the first keys); this pass needs the first pass's answer
//! as a literal, so it runs at execution.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, LogicalPlanBuilder, Sort, SortExpr, TableScan, col, lit};
use datafusion::optimizer::eliminate_filter::EliminateFilter;
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::propagate_empty_relation::PropagateEmptyRelation;
use datafusion::optimizer::push_down_filter::PushDownFilter;
use fimlake_storage::TableScanProvider;

mod ranges;

/// A first pass pays for itself by the columns it does not decode: the scan's columns other
/// than the key and those the filters read. With fewer than this left out, the scan is read
/// whole at little cost: no first pass. A file's history on the console (`where Computer == ..
/// and FileSystemPath == .. | project` seven columns `| sort by TimeGenerated desc | take 100`)
/// leaves four out: 585 ms in one pass over 10 M rows, 0.1 s in two (BENCHMARKS.md).
pub const MIN_COLUMNS_LEFT_OUT: usize = 3;

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
    /// Lower bounds of the key whose windows a first pass reads, newest first (see the
    /// module's comment).
    newest_bounds: Vec<ScalarValue>,
}

/// A top-k whose first pass found where its rows are: the plan with the ranges of its key
/// added, optimized, and the session state to plan it in.
pub struct Narrowed {
    pub plan: LogicalPlan,
    pub state: SessionState,
}

/// `optimized` (a plan `state` optimized) with the ranges of its top-k's key that its first pass
/// found added, or `None` when there is no such top-k, or the first pass finds nothing that
/// bounds it.
pub async fn with_threshold(
    state: &SessionState,
    optimized: &LogicalPlan,
) -> Result<Option<Narrowed>, DataFusionError> {
    let Some(candidate) = find(optimized)? else { return Ok(None) };
    let state = narrowing_state(state);
    let key = Expr::Column(candidate.key.clone());
    let bound = match first_pass(&state, &candidate).await? {
        FirstPass::Keys(keys) => ranges::covering(&key, &keys, candidate.ascending),
        FirstPass::NoRows => lit(false),
        FirstPass::Unknown => return Ok(None),
    };
    let rewritten = optimized.clone().transform_down(|node| match node {
        LogicalPlan::Sort(sort) if sort == candidate.sort => {
            let input = LogicalPlan::Filter(Filter::try_new(bound.clone(), sort.input.clone())?);
            let sort = Sort { input: Arc::new(input), ..sort };
            Ok(Transformed::new(LogicalPlan::Sort(sort), true, TreeNodeRecursion::Stop))
        }
        other => Ok(Transformed::no(other)),
    })?;
    debug_assert!(rewritten.transformed, "the candidate was found in this plan");
    let plan = state.optimize(&rewritten.data)?;
    Ok(Some(Narrowed { plan, state }))
}

/// The state both passes run in. Their plans are one the session optimized already with a
/// filter of the key added (the first pass also a projection of the key): they need that
/// filter pushed down to the scan and the columns they do not read pruned, not the whole
/// analysis and optimization again (over 62 columns the optimizer's share of a `top 100` that
/// finds no row fell from 54 % to 38 % without it). The filters are evaluated inside the
/// Parquet decoder: the key's bounds keep a few rows of the pages they read, and only those
/// rows' other columns are decoded (`top_100` 30 -> 23.5 ms, `has_term_top` 31 -> 20 ms in
/// the bench, BENCHMARKS.md).
fn narrowing_state(state: &SessionState) -> SessionState {
    let mut state = SessionStateBuilder::new_from_existing(state.clone())
        .with_analyzer_rules(Vec::new())
        .with_optimizer_rules(vec![
            // A first pass that found no row leaves `false`: nothing to scan again.
            Arc::new(EliminateFilter::new()),
            Arc::new(PropagateEmptyRelation::new()),
            Arc::new(PushDownFilter::new()),
            Arc::new(OptimizeProjections::new()),
        ])
        .build();
    let options = state.config_mut().options_mut();
    options.execution.parquet.pushdown_filters = true;
    // One pass pushes a filter down to its scan; a second would only find nothing to change.
    options.optimizer.max_passes = 1;
    state
}

/// What a first pass learns of the sort's input.
#[derive(Debug, PartialEq)]
enum FirstPass {
    /// The keys of the answer's rows in sort order, none null: the first N, or every row's
    /// when the input has fewer.
    Keys(Vec<ScalarValue>),
    /// The input has no rows at all: the answer is empty, and no file needs reading again.
    NoRows,
    /// Nothing that bounds the answer: fewer than N rows past the pass's bound, or a null key
    /// among the rows the answer takes.
    Unknown,
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
    if !orderable_without_nan(field.data_type()) || columns_left_out(&sort.input, key) < MIN_COLUMNS_LEFT_OUT {
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

/// How many of the scan's columns under `input` (a chain of filters and projections over one
/// scan) a first pass does not read: all but the key and the columns the filters name.
fn columns_left_out(input: &LogicalPlan, key: &Column) -> usize {
    let mut read: HashSet<String> = HashSet::from([key.name.clone()]);
    let mut scan_columns = 0;
    let visited = input.apply(|node| {
        let filters: Vec<&Expr> = match node {
            LogicalPlan::Filter(filter) => vec![&filter.predicate],
            LogicalPlan::TableScan(scan) => {
                scan_columns = scan.projected_schema.fields().len();
                scan.filters.iter().collect()
            }
            _ => Vec::new(),
        };
        read.extend(filters.iter().flat_map(|e| e.column_refs()).map(|c| c.name.clone()));
        Ok(TreeNodeRecursion::Continue)
    });
    debug_assert!(visited.is_ok(), "the visit itself returns no error");
    scan_columns.saturating_sub(read.len())
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

/// The keys of the first N rows in sort order, when none of them is null: read window by
/// window, newest first, between the candidate's bounds (each window the rows of the files the
/// next bound adds), until N are found; the last window is everything older, nulls included.
/// Every row is read once, however far back the rows are.
async fn first_pass(state: &SessionState, candidate: &Candidate) -> Result<FirstPass, DataFusionError> {
    let key = Expr::Column(candidate.key.clone());
    let mut keys = Vec::with_capacity(candidate.fetch);
    let mut newer: Option<&ScalarValue> = None;
    for bound in &candidate.newest_bounds {
        let window = key.clone().gt_eq(lit(bound.clone()));
        let window = match newer {
            Some(newer) => window.and(key.clone().lt(lit(newer.clone()))),
            None => window,
        };
        keys.extend(first_keys(state, candidate, Some(window), candidate.fetch - keys.len()).await?);
        if keys.len() == candidate.fetch {
            debug_assert!(keys.iter().all(|k| !k.is_null()), "the windows pass no null");
            return Ok(FirstPass::Keys(keys));
        }
        newer = Some(bound);
    }
    let older = newer.map(|newer| key.clone().lt(lit(newer.clone())).or(key.clone().is_null()));
    keys.extend(first_keys(state, candidate, older, candidate.fetch - keys.len()).await?);
    Ok(if keys.is_empty() {
        FirstPass::NoRows
    } else if keys.iter().any(ScalarValue::is_null) {
        FirstPass::Unknown
    } else {
        FirstPass::Keys(keys)
    })
}

/// The keys of the first `rows` rows in sort order of the candidate's input within `window`
/// (fewer when there are fewer rows), in that order.
async fn first_keys(
    state: &SessionState,
    candidate: &Candidate,
    window: Option<Expr>,
    rows: usize,
) -> Result<Vec<ScalarValue>, DataFusionError> {
    let key = Expr::Column(candidate.key.clone());
    let mut input = LogicalPlanBuilder::from(candidate.sort.input.as_ref().clone());
    if let Some(window) = window {
        input = input.filter(window)?;
    }
    let first_pass = input
        .project(vec![key.alias("key")])?
        .sort_with_limit(vec![SortExpr { expr: col("key"), ..candidate.sort.expr[0].clone() }], Some(rows))?
        .build()?;
    // The pass reads the key and the filters' columns: filtered inside the Parquet decoder, the
    // key is decoded for the matching rows only (a file's history: 10 M times not decoded).
    debug_assert!(state.config().options().execution.parquet.pushdown_filters, "a narrowing state");
    let batches = DataFrame::new(state.clone(), first_pass).collect().await?;
    let mut keys = Vec::with_capacity(rows);
    for batch in &batches {
        for row in 0..batch.num_rows() {
            keys.push(ScalarValue::try_from_array(batch.column(0), row)?);
        }
    }
    debug_assert!(keys.len() <= rows, "the first pass takes at most {rows} rows");
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlanBuilder, ident};

    use super::*;

    /// `top fetch by TimeGenerated desc` over a table of `columns` columns, the first
    /// `filtered` of them after the key compared with a literal.
    fn top(columns: usize, filtered: usize, fetch: usize) -> LogicalPlan {
        let mut fields = vec![Field::new("TimeGenerated", DataType::Timestamp(TimeUnit::Microsecond, None), true)];
        fields.extend((1..columns).map(|i| Field::new(format!("c{i}"), DataType::Utf8, true)));
        let table = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]]).unwrap();
        let mut plan = LogicalPlanBuilder::scan("t", provider_as_source(Arc::new(table)), None).unwrap();
        for i in 1..=filtered {
            plan = plan.filter(ident(format!("c{i}")).eq(lit("x"))).unwrap();
        }
        plan.sort_with_limit(vec![ident("TimeGenerated").sort(false, false)], Some(fetch)).unwrap().build().unwrap()
    }

    #[test]
    fn only_small_top_ks_leaving_columns_out_get_a_first_pass() {
        let enough = MIN_COLUMNS_LEFT_OUT + 1;
        assert!(find(&top(enough, 0, 100)).unwrap().is_some());
        assert!(find(&top(enough, 0, UP_TO_ROWS)).unwrap().is_some());
        assert!(find(&top(enough, 0, UP_TO_ROWS + 1)).unwrap().is_none(), "too many rows");
        assert!(find(&top(enough - 1, 0, 100)).unwrap().is_none(), "too few columns left out");
        assert!(find(&top(enough, 0, 0)).unwrap().is_none(), "no rows");
    }

    #[test]
    fn the_columns_filters_read_are_not_left_out() {
        // A file's history: seven columns, two of them filtered, four left out.
        assert!(find(&top(7, 2, 100)).unwrap().is_some());
        assert!(find(&top(7, 3, 100)).unwrap().is_some(), "three left out");
        assert!(find(&top(7, 4, 100)).unwrap().is_none(), "two left out");
        assert!(find(&top(40, 38, 100)).unwrap().is_none(), "wide, but the filters read nearly all of it");
    }
}
