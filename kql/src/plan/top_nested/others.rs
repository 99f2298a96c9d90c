//! `top-nested ... with others = V`: per group of the levels before, one more row whose value is
//! `V` and whose aggregate is computed over the rows of the values outside the top N. Such a row
//! has no nested levels: their columns are null.

use datafusion::common::JoinType;
use datafusion::logical_expr::{Operator, binary_expr};

use super::super::*;

/// A level with `with others`, as planned so far.
pub(super) struct Level<'l> {
    /// The key expressions of this level and the ones before it, each named.
    pub keys: &'l [NamedExpr],
    pub aggregate: &'l NamedExpr,
    /// The `others` value.
    pub value: &'l Expr,
    /// The level's kept values: the key columns and the aggregate.
    pub kept: &'l LogicalPlan,
}

/// The internal name of the i-th key computed over the input rows.
fn row_key(i: usize) -> String {
    format!("__top_nested_key{i}")
}

/// The internal name of the i-th key of the kept values or parent groups.
fn group_key(i: usize) -> String {
    format!("__top_nested_group{i}")
}

/// `left.i IS NOT DISTINCT FROM right.i` for the first `n` keys: null keys are values.
fn same_keys(n: usize) -> Vec<DfExpr> {
    (0..n).map(|i| binary_expr(ident(row_key(i)), Operator::IsNotDistinctFrom, ident(group_key(i)))).collect()
}

impl Planner<'_> {
    /// The `others` rows of a level: the parent groups' columns (from `previous`), `V`, and the
    /// aggregate over the rows whose value is not kept; none for a group without such rows.
    pub(super) fn others_row(
        &mut self,
        input: &LogicalPlan,
        previous: Option<&LogicalPlan>,
        level: Level,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let depth = level.keys.len();
        let rest = self.rows_not_kept(input, previous, &level, span)?;
        let rows = Expr { kind: ExprKind::Call { name: Ident { name: "count".into(), span }, args: vec![] }, span };
        let counted = NamedExpr { names: vec![Ident { name: "__top_nested_rows".into(), span }], expr: rows };
        let parents: Vec<NamedExpr> = level.keys[..depth - 1]
            .iter()
            .enumerate()
            .map(|(i, key)| NamedExpr {
                names: key.names.clone(),
                expr: Expr { kind: ExprKind::Name(row_key(i)), span: key.expr.span },
            })
            .collect();
        let summarized = self.summarize(rest, &[level.aggregate.clone(), counted], &parents, span)?;
        let key = &level.keys[depth - 1];
        let key_name = key.names[0].name.clone();
        let aggregate_name = level.aggregate.names[0].name.clone();
        let value = self.others_value(level.kept, &key_name, level.value)?;
        let mut out: Vec<DfExpr> = parents.iter().map(|p| ident(&p.names[0].name)).collect();
        out.push(value.alias(&key_name));
        out.push(ident(&aggregate_name));
        let rows = LogicalPlanBuilder::from(summarized)
            .filter(ident("__top_nested_rows").gt(lit(0i64)))
            .and_then(|b| b.project(out))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let parent_names: Vec<String> = parents.iter().map(|p| p.names[0].name.clone()).collect();
        match previous {
            None => Ok(rows),
            Some(previous) => {
                self.join_parents(previous.clone(), rows, &parent_names, [&key_name, &aggregate_name], span)
            }
        }
    }

    /// The input rows in the kept parent groups whose value at this level is not kept, with
    /// their keys computed (`row_key(i)`).
    fn rows_not_kept(
        &mut self,
        input: &LogicalPlan,
        previous: Option<&LogicalPlan>,
        level: &Level,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let depth = level.keys.len();
        let schema = input.schema().as_ref().clone();
        let mut keyed: Vec<DfExpr> = schema.fields().iter().map(|f| ident(f.name())).collect();
        for (i, key) in level.keys.iter().enumerate() {
            keyed.push(self.scalar(&key.expr, &schema)?.alias(row_key(i)));
        }
        let groups = |plan: &LogicalPlan, n: usize| -> Vec<DfExpr> {
            plan.schema()
                .fields()
                .iter()
                .step_by(2)
                .take(n)
                .enumerate()
                .map(|(i, f)| ident(f.name()).alias(group_key(i)))
                .collect()
        };
        let kept_keys: Vec<DfExpr> = level
            .kept
            .schema()
            .fields()
            .iter()
            .take(depth)
            .enumerate()
            .map(|(i, f)| ident(f.name()).alias(group_key(i)))
            .collect();
        let mut builder = LogicalPlanBuilder::from(input.clone()).project(keyed).map_err(|e| self.df_err(e, span))?;
        if let Some(previous) = previous {
            let parents = LogicalPlanBuilder::from(previous.clone())
                .project(groups(previous, depth - 1))
                .and_then(|b| b.distinct())
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?;
            builder =
                builder.join_on(parents, JoinType::LeftSemi, same_keys(depth - 1)).map_err(|e| self.df_err(e, span))?;
        }
        let kept = LogicalPlanBuilder::from(level.kept.clone())
            .project(kept_keys)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        builder
            .join_on(kept, JoinType::LeftAnti, same_keys(depth))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// `V` of `with others = V`, which must have the type of the level's values.
    fn others_value(&mut self, kept: &LogicalPlan, key_name: &str, value: &Expr) -> PResult<DfExpr> {
        let key_type = kept.schema().field_with_unqualified_name(key_name).map(|f| f.data_type().clone());
        let planned = self.scalar(value, &DFSchema::empty())?;
        let value_type = self.type_of(&planned, &DFSchema::empty(), value.span)?;
        match key_type {
            Ok(t) if t == value_type => Ok(planned),
            Ok(t) => Err(self.err(
                ErrorKind::Semantic,
                format!(
                    "top-nested 'with others' takes a value of the level's type ({}), not {}",
                    kusto_name(&t),
                    kusto_name(&value_type)
                ),
                value.span,
            )),
            Err(e) => Err(self.df_err(e, value.span)),
        }
    }

    /// The top-nested rows, then the `others` rows of each level with nulls in the columns of
    /// the levels below it.
    pub(super) fn with_others(
        &mut self,
        result: LogicalPlan,
        others: Vec<LogicalPlan>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let fields: Vec<(String, DataType)> =
            result.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let mut builder = LogicalPlanBuilder::from(result);
        for rows in others {
            let padded: Vec<DfExpr> = fields
                .iter()
                .map(|(name, ty)| match rows.schema().field_with_unqualified_name(name) {
                    Ok(_) => cast(ident(name), ty.clone()).alias(name),
                    Err(_) => cast(lit(ScalarValue::Null), ty.clone()).alias(name),
                })
                .collect();
            let rows = LogicalPlanBuilder::from(rows)
                .project(padded)
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?;
            builder = builder.union(rows).map_err(|e| self.df_err(e, span))?;
        }
        builder.build().map_err(|e| self.df_err(e, span))
    }
}
