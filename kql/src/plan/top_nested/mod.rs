//! `top-nested`: hierarchical top N. Level k summarizes by the first k expressions, ranks each
//! value within its group of the levels before it, keeps the top N and joins the kept groups of
//! level k - 1 (null values are values here, as in `summarize`).

use datafusion::common::JoinType;
use datafusion::logical_expr::{ExprFunctionExt, Operator, binary_expr};

use super::*;

mod others;

/// The internal name of a value's rank within its group.
const RANK: &str = "__top_nested_rank";

impl Planner<'_> {
    /// `top-nested [N] of [Name =] Expr by [Name =] Aggregation [asc | desc], ...`: per level
    /// a column of values and a column of their aggregate (`aggregated_<Name>` by default).
    pub(super) fn top_nested(
        &mut self,
        plan: LogicalPlan,
        levels: &[TopNestedLevel],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let mut keys: Vec<NamedExpr> = Vec::new();
        let mut result: Option<LogicalPlan> = None;
        let mut others_rows: Vec<LogicalPlan> = Vec::new();
        for level in levels {
            let key_name = match level.of.names.as_slice() {
                [n] => n.name.clone(),
                _ => self.derived_name(&level.of.expr),
            };
            let aggregate_name = match level.by.names.as_slice() {
                [n] => n.name.clone(),
                _ => format!("aggregated_{key_name}"),
            };
            let parents: Vec<String> = keys.iter().flat_map(|k| k.names.iter().map(|n| n.name.clone())).collect();
            keys.push(NamedExpr {
                names: vec![Ident { name: key_name.clone(), span: level.of.expr.span }],
                expr: level.of.expr.clone(),
            });
            let aggregate = NamedExpr {
                names: vec![Ident { name: aggregate_name.clone(), span: level.by.expr.span }],
                expr: level.by.expr.clone(),
            };
            let summarized = self.summarize(plan.clone(), std::slice::from_ref(&aggregate), &keys, span)?;
            let ranked = self.top_within(summarized, level, &parents, &aggregate_name, span)?;
            if let Some(value) = &level.others {
                let level = others::Level { keys: &keys, aggregate: &aggregate, value, kept: &ranked };
                others_rows.push(self.others_row(&plan, result.as_ref(), level, span)?);
            }
            result = Some(match result {
                None => ranked,
                Some(previous) => self.join_parents(previous, ranked, &parents, [&key_name, &aggregate_name], span)?,
            });
        }
        let result = result.ok_or_else(|| self.err(ErrorKind::Syntax, "top-nested needs at least one clause", span))?;
        self.with_others(result, others_rows, span)
    }

    /// The level's top N values within each group of `parents` (all of them without N).
    fn top_within(
        &mut self,
        summarized: LogicalPlan,
        level: &TopNestedLevel,
        parents: &[String],
        aggregate: &str,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let Some(count) = &level.count else { return Ok(summarized) };
        let n = self.count_arg(count)?;
        let columns: Vec<DfExpr> = summarized.schema().fields().iter().map(|f| ident(f.name())).collect();
        let rank = datafusion::functions_window::expr_fn::row_number()
            .partition_by(parents.iter().map(ident).collect())
            .order_by(vec![ident(aggregate).sort(!level.descending, false)])
            .build()
            .map_err(|e| self.df_err(e, span))?
            .alias(RANK);
        LogicalPlanBuilder::from(summarized)
            .window(vec![rank])
            .and_then(|b| b.filter(ident(RANK).lt_eq(lit(n as u64))))
            .and_then(|b| b.project(columns))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// The kept values of a level next to their parent groups' columns.
    pub(super) fn join_parents(
        &mut self,
        previous: LogicalPlan,
        level: LogicalPlan,
        parents: &[String],
        added: [&String; 2],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let renamed = |name: &String| format!("__top_nested_{name}");
        let mut right: Vec<DfExpr> = parents.iter().map(|p| ident(p).alias(renamed(p))).collect();
        right.extend(added.iter().map(|a| ident(*a)));
        let on: Vec<DfExpr> =
            parents.iter().map(|p| binary_expr(ident(p), Operator::IsNotDistinctFrom, ident(renamed(p)))).collect();
        let mut out: Vec<DfExpr> = previous.schema().fields().iter().map(|f| ident(f.name())).collect();
        out.extend(added.iter().map(|a| ident(*a)));
        let level =
            LogicalPlanBuilder::from(level).project(right).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))?;
        LogicalPlanBuilder::from(previous)
            .join_on(level, JoinType::Inner, on)
            .and_then(|b| b.project(out))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }
}
