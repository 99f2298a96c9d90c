//! `sort by K1, K2 | take N` and `top N by K` over a wide input, sorted first by another column
//! than `TimeGenerated`: the keys of the first `N` rows are found first, reading the key columns
//! only, and the whole rows are then read for those keys alone.
//!
//! A top-k over every column decodes every column of every row (DataFusion has no late
//! materialisation without filter pushdown). Narrowed, the first top-k reads the keys; a hash
//! join then keeps the input's rows whose keys are among the `N` found, and DataFusion's dynamic
//! filter of that join (the keys' bounds) lets the second scan skip every file whose
//! `TimeGenerated` range misses the bounds (the latest rows sit in the newest files). The outer
//! top-k takes `N` of the rows kept: rows tied on the keys are all kept by the join, so the
//! answer is one of the answers the plain plan may give. Keys compare null-equal, so null keys
//! keep their rows.

use datafusion::common::tree_node::TreeNode;

use super::*;

/// Fewer columns besides the keys than this are cheaper read once.
const NARROW_FROM_COLUMNS: usize = 4;
/// The column files are pruned by.
const TIME_COLUMN: &str = "TimeGenerated";
/// More rows than this make the join's build side larger than the win.
const NARROW_UP_TO_ROWS: usize = 10_000;

/// The alias of the first rows' keys.
const KEYS: &str = "__first_keys";

impl Planner<'_> {
    /// The first `n` rows of `plan` by `sorts`.
    pub(super) fn first_rows(
        &self,
        plan: LogicalPlan,
        sorts: Vec<SortExpr>,
        n: usize,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let (plan, sorts) = match narrowable_keys(&plan, &sorts, n) {
            Some(keys) => (self.narrow_to_first(plan, &sorts, &keys, n, span)?, unqualified_sorts(sorts)),
            None => (plan, sorts),
        };
        LogicalPlanBuilder::from(plan)
            .sort(sorts)
            .and_then(|b| b.limit(0, Some(n)))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    fn narrow_to_first(
        &self,
        plan: LogicalPlan,
        sorts: &[SortExpr],
        keys: &[Column],
        n: usize,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let first_keys = LogicalPlanBuilder::from(plan.clone())
            .project(keys.iter().map(|k| DfExpr::Column(k.clone())).collect::<Vec<_>>())
            .and_then(|b| b.sort(sorts.to_vec()))
            .and_then(|b| b.limit(0, Some(n)))
            .and_then(|b| b.alias(KEYS))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let left: Vec<Column> = keys.iter().map(|k| Column::new(Some(KEYS), &k.name)).collect();
        let right: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        self.rows_matching(first_keys, left, plan, &right, span)
    }
}

/// The key columns, when every sort key is a distinct column of a wide, deterministic input and
/// `n` is small.
fn narrowable_keys(plan: &LogicalPlan, sorts: &[SortExpr], n: usize) -> Option<Vec<Column>> {
    if n == 0 || n > NARROW_UP_TO_ROWS || sorts.is_empty() {
        return None;
    }
    let keys: Vec<Column> = sorts
        .iter()
        .map(|s| match &s.expr {
            DfExpr::Column(c) => Some(c.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    // Sorted by time first, the query engine bounds the top-k at execution (`fimlake_query`'s
    // `topk.rs`: a first pass finds the n-th time, the scan then prunes by it).
    if keys[0].name == TIME_COLUMN {
        return None;
    }
    let distinct: std::collections::HashSet<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let wide = plan.schema().fields().len() >= keys.len() + NARROW_FROM_COLUMNS;
    // Read twice, the input must give the same rows both times.
    (distinct.len() == keys.len() && wide && is_deterministic(plan)).then_some(keys)
}

fn is_deterministic(plan: &LogicalPlan) -> bool {
    let volatile = plan.exists(|node| Ok(node.expressions().iter().any(|e| e.is_volatile())));
    !volatile.unwrap_or(true)
}

/// `sorts` on the narrowed plan, whose columns lost their qualifiers.
fn unqualified_sorts(sorts: Vec<SortExpr>) -> Vec<SortExpr> {
    sorts
        .into_iter()
        .map(|s| match s.expr {
            DfExpr::Column(c) => SortExpr { expr: ident(&c.name), ..s },
            _ => s,
        })
        .collect()
}
