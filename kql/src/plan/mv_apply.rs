//! `mv-apply`: a subquery applied to the expanded elements of each row.
//!
//! The rows are numbered, expanded as by `mv-expand`, and the subquery is planned once over all
//! the expanded rows with every operator kept inside its row: `summarize` also groups by the row
//! number, `top`/`take` rank within it, `sort` sorts within it. The subquery's result is joined
//! back to the columns of its row that were not expanded; like Kusto's union of the subqueries'
//! results, the rows come in no particular order.

use datafusion::common::JoinType;
use datafusion::logical_expr::ExprFunctionExt;

use super::*;

/// The internal name of the row number.
const ROW: &str = "__mv_apply_row";
/// The internal name of a rank within a row.
const RANK: &str = "__mv_apply_rank";

const SUPPORTED: &str = "where, extend, project, project-away, project-keep, project-rename, project-reorder, \
                         summarize, count, distinct, top, take, sort, parse, mv-expand";

impl Planner<'_> {
    /// `mv-apply [with_itemindex = I] Arrays [limit N] on (SubQuery)`: the input's other
    /// columns, then the subquery's columns, for each row.
    pub(super) fn mv_apply(
        &mut self,
        plan: LogicalPlan,
        expand: &MvExpand,
        subquery: &[Op],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let input = plan.schema().as_ref().clone();
        let numbered = self.numbered(plan, span)?;
        let (expanded, made) = self.expand_arrays(numbered.clone(), expand, span)?;
        let mut subtable: Vec<DfExpr> = vec![ident(ROW)];
        subtable.extend(made.iter().map(ident));
        let mut result = LogicalPlanBuilder::from(expanded)
            .project(subtable)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        for op in subquery {
            result = self.per_row(result, op)?;
        }
        let produced: Vec<String> =
            result.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != ROW).collect();
        let kept: Vec<String> = input
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !made.contains(n) && !produced.contains(n))
            .collect();
        self.join_row_columns(numbered, result, &kept, &produced, span)
    }

    /// The input with its row number.
    fn numbered(&mut self, plan: LogicalPlan, span: Span) -> PResult<LogicalPlan> {
        let row = datafusion::functions_window::expr_fn::row_number().alias(ROW);
        LogicalPlanBuilder::from(plan).window(vec![row]).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// Each subquery row with the `kept` columns of its input row.
    fn join_row_columns(
        &mut self,
        numbered: LogicalPlan,
        result: LogicalPlan,
        kept: &[String],
        produced: &[String],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let mut left: Vec<DfExpr> = vec![ident(ROW).alias("__mv_apply_left_row")];
        left.extend(kept.iter().map(ident));
        let mut out: Vec<DfExpr> = kept.iter().map(ident).collect();
        out.extend(produced.iter().map(ident));
        LogicalPlanBuilder::from(numbered)
            .project(left)
            .and_then(|b| b.join_on(result, JoinType::Inner, vec![ident("__mv_apply_left_row").eq(ident(ROW))]))
            .and_then(|b| b.project(out))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// One subquery operator, kept within each row.
    fn per_row(&mut self, plan: LogicalPlan, op: &Op) -> PResult<LogicalPlan> {
        let span = op.span;
        let row = || NamedExpr { names: vec![], expr: Expr { kind: ExprKind::Name(ROW.to_string()), span } };
        let with_kind = |kind: OpKind| Op { kind, span };
        match &op.kind {
            OpKind::Where(_)
            | OpKind::Extend(_)
            | OpKind::ProjectAway(_)
            | OpKind::ProjectRename(_)
            | OpKind::ProjectReorder(_)
            | OpKind::Parse { .. }
            | OpKind::MvExpand(_) => self.op(plan, op),
            OpKind::Project(items) => {
                let items = [vec![row()], items.clone()].concat();
                self.op(plan, &with_kind(OpKind::Project(items)))
            }
            OpKind::ProjectKeep(names) => {
                let names = [vec![Ident { name: ROW.to_string(), span }], names.clone()].concat();
                self.op(plan, &with_kind(OpKind::ProjectKeep(names)))
            }
            OpKind::Distinct(items)
                if !matches!(items.as_slice(), [NamedExpr { expr: Expr { kind: ExprKind::Star, .. }, .. }]) =>
            {
                let items = [vec![row()], items.clone()].concat();
                self.op(plan, &with_kind(OpKind::Distinct(items)))
            }
            OpKind::Distinct(_) => self.op(plan, op),
            OpKind::Summarize { aggregates, by } => {
                let by = [vec![row()], by.clone()].concat();
                self.op(plan, &with_kind(OpKind::Summarize { aggregates: aggregates.clone(), by }))
            }
            OpKind::Count => {
                let count =
                    Expr { kind: ExprKind::Call { name: Ident { name: "count".into(), span }, args: vec![] }, span };
                let aggregates = vec![NamedExpr { names: vec![Ident { name: "Count".into(), span }], expr: count }];
                self.op(plan, &with_kind(OpKind::Summarize { aggregates, by: vec![row()] }))
            }
            OpKind::Sort(keys) => {
                let schema = plan.schema().as_ref().clone();
                let mut order = vec![ident(ROW).sort(true, false)];
                for key in keys {
                    order.push(self.sort_expr(key, &schema)?);
                }
                LogicalPlanBuilder::from(plan).sort(order).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
            }
            OpKind::Take(count) => self.first_in_row(plan, count, None, span),
            OpKind::Top { count, key } => self.first_in_row(plan, count, Some(key), span),
            _ => Err(self.err(
                ErrorKind::Unsupported,
                format!("this operator is not supported in mv-apply's subquery, which may use: {SUPPORTED}"),
                span,
            )),
        }
    }

    /// `take n` / `top n by key` within each row.
    fn first_in_row(
        &mut self,
        plan: LogicalPlan,
        count: &Expr,
        key: Option<&SortKey>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let n = self.count_arg(count)?;
        let schema = plan.schema().as_ref().clone();
        let order = match key {
            Some(k) => vec![self.sort_expr(k, &schema)?],
            None => vec![],
        };
        let rank = datafusion::functions_window::expr_fn::row_number().partition_by(vec![ident(ROW)]);
        // DataFusion refuses an empty ORDER BY in a window.
        let rank = if order.is_empty() { rank } else { rank.order_by(order) };
        let rank = rank.build().map_err(|e| self.df_err(e, span))?.alias(RANK);
        let columns: Vec<DfExpr> = schema.fields().iter().map(|f| ident(f.name())).collect();
        LogicalPlanBuilder::from(plan)
            .window(vec![rank])
            .and_then(|b| b.filter(ident(RANK).lt_eq(lit(n as u64))))
            .and_then(|b| b.project(columns))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }
}
