//! `summarize arg_max(T, *) by K` (or `arg_min`, or several returned columns) on its own:
//! before the aggregate, the input is narrowed to the rows where `T` is its group's extreme.
//!
//! `arg_max` returns each column's value in the row where `T` is largest: one ordered
//! `first_value` per column, each comparing `T` again on every row (~30 of them for `*` over a
//! table). Narrowing first costs a small aggregate (the keys and `T` only) and a hash join of
//! every row against one entry per group; the ordered aggregates then see a row per group (and
//! ties). The join's keys include `T`, so DataFusion's dynamic filter can skip the files whose
//! `T` is below every group's extreme (the latest heartbeats sit in the newest files).
//! Keys and targets compare null-equal in the join: a group whose `T` is always null keeps its
//! null-target rows, as the aggregate alone would.

use super::*;

/// Fewer returned columns than this are cheaper as ordered aggregates over every row.
const NARROW_FROM_COLUMNS: usize = 3;

/// The join's internal names.
const EXTREMES: &str = "__extremes";
const EXTREME: &str = "__extreme";

impl Planner<'_> {
    /// `plan` narrowed to its groups' extreme rows when `aggregates` is one `arg_max` /
    /// `arg_min` of a column returning several columns and `by` names columns only; else
    /// `plan` as it is.
    pub(super) fn narrow_to_extremes(
        &self,
        plan: LogicalPlan,
        aggregates: &[NamedExpr],
        by: &[NamedExpr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let Some((target, max)) = narrowable(aggregates, by, plan.schema()) else { return Ok(plan) };
        let keys: Vec<String> = by.iter().filter_map(|b| column_name(&b.expr)).collect();
        let extreme = if max { agg::max(ident(&target)) } else { agg::min(ident(&target)) };
        let extremes = LogicalPlanBuilder::from(plan.clone())
            .aggregate(keys.iter().map(ident).collect::<Vec<_>>(), vec![extreme.alias(EXTREME)])
            .and_then(|b| b.alias(EXTREMES))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let left: Vec<Column> =
            keys.iter().chain([&EXTREME.to_string()]).map(|k| Column::new(Some(EXTREMES), k)).collect();
        let right: Vec<String> = keys.into_iter().chain([target]).collect();
        self.rows_matching(extremes, left, plan, &right, span)
    }
}

/// The target column and whether it is `arg_max`, when the rewrite applies.
fn narrowable(aggregates: &[NamedExpr], by: &[NamedExpr], schema: &DFSchema) -> Option<(String, bool)> {
    let [item] = aggregates else { return None };
    let ExprKind::Call { name, args } = &item.expr.kind else { return None };
    let max = match name.name.as_str() {
        "arg_max" => true,
        "arg_min" => false,
        _ => return None,
    };
    let returned_all = args.iter().skip(1).any(|a| matches!(a.kind, ExprKind::Star));
    if !returned_all && args.len() - 1 < NARROW_FROM_COLUMNS {
        return None;
    }
    let target = match &args.first()?.kind {
        ExprKind::NamedArg { value, .. } => column_name(value)?,
        _ => column_name(&args[0])?,
    };
    let in_schema = |c: &String| schema.has_column_with_unqualified_name(c);
    let keys_are_columns = by.iter().all(|b| b.names.is_empty() && column_name(&b.expr).is_some_and(|c| in_schema(&c)));
    (keys_are_columns && in_schema(&target)).then_some((target, max))
}

fn column_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.clone()),
        _ => None,
    }
}
