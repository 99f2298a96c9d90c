//! `join`, with Kusto's kinds (innerunique by default), and `lookup`.

use super::*;

impl Planner<'_> {
    pub(super) fn join(&mut self, left: LogicalPlan, j: &Join, span: Span) -> PResult<LogicalPlan> {
        let right = self.pipeline(&j.right)?;
        self.join_with(left, right, j, span)
    }

    /// `lookup`: a `leftouter` (the default) or `inner` join whose right key columns are dropped
    /// (the left ones hold the same values).
    pub(super) fn lookup(&mut self, left: LogicalPlan, j: &Join, span: Span) -> PResult<LogicalPlan> {
        let kind = j.kind.as_ref().map_or("leftouter", |k| k.name.as_str());
        if kind != "leftouter" && kind != "inner" {
            let message = format!("unknown lookup kind '{kind}' (leftouter, inner)");
            return Err(self.err(ErrorKind::Semantic, message, j.kind.as_ref().map_or(span, |k| k.span)));
        }
        let kind = Ident { name: kind.to_string(), span };
        let join = Join { kind: Some(kind), right: j.right.clone(), on: j.on.clone() };
        let right = self.pipeline(&j.right)?;
        let left_width = left.schema().fields().len();
        let right_keys: Vec<usize> =
            j.on.iter()
                .filter_map(|c| {
                    let key = match c {
                        JoinCondition::Same(k) => k,
                        JoinCondition::Pair { right, .. } => right,
                    };
                    right.schema().index_of_column_by_name(None, &key.name)
                })
                .map(|i| left_width + i)
                .collect();
        let joined = self.join_with(left, right, &join, span)?;
        let kept: Vec<DfExpr> = joined
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| !right_keys.contains(i))
            .map(|(_, f)| ident(f.name()))
            .collect();
        LogicalPlanBuilder::from(joined).project(kept).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    fn join_with(&mut self, left: LogicalPlan, right: LogicalPlan, j: &Join, span: Span) -> PResult<LogicalPlan> {
        use datafusion::common::{Column, JoinType};
        let kind = j.kind.as_ref().map_or("innerunique", |k| k.name.as_str());
        let (join_type, both_sides, dedupe_left) = match kind {
            "innerunique" => (JoinType::Inner, true, true),
            "inner" => (JoinType::Inner, true, false),
            "leftouter" => (JoinType::Left, true, false),
            "rightouter" => (JoinType::Right, true, false),
            "fullouter" | "outer" => (JoinType::Full, true, false),
            "leftanti" | "anti" | "leftantisemi" => (JoinType::LeftAnti, false, false),
            "rightanti" | "rightantisemi" => (JoinType::RightAnti, false, false),
            "leftsemi" => (JoinType::LeftSemi, false, false),
            "rightsemi" => (JoinType::RightSemi, false, false),
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown join kind '{other}' (innerunique, inner, leftouter, rightouter, fullouter, leftanti, rightanti, leftsemi, rightsemi)"),
                    j.kind.as_ref().map_or(span, |k| k.span),
                ));
            }
        };
        let lschema = left.schema().as_ref().clone();
        let rschema = right.schema().as_ref().clone();
        let mut keys = Vec::new();
        for c in &j.on {
            let (l, r) = match c {
                JoinCondition::Same(k) => (k, k),
                JoinCondition::Pair { left, right } => (left, right),
            };
            if lschema.field_with_unqualified_name(&l.name).is_err() {
                return Err(self.unknown_column(&l.name, &lschema, l.span));
            }
            if rschema.field_with_unqualified_name(&r.name).is_err() {
                return Err(self.unknown_column(&r.name, &rschema, r.span));
            }
            keys.push((l.name.clone(), r.name.clone()));
        }
        // innerunique: one arbitrary left row per key.
        let left = if dedupe_left {
            use datafusion::logical_expr::ExprFunctionExt;
            let rn = datafusion::functions_window::expr_fn::row_number()
                .partition_by(keys.iter().map(|(l, _)| ident(l)).collect())
                .build()
                .map_err(|e| self.df_err(e, span))?
                .alias("__rn");
            let cols: Vec<DfExpr> = lschema.fields().iter().map(|f| ident(f.name())).collect();
            LogicalPlanBuilder::from(left)
                .window(vec![rn])
                .and_then(|b| b.filter(ident("__rn").eq(lit(1u64))))
                .and_then(|b| b.project(cols))
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?
        } else {
            left
        };
        // Right columns whose names the left side has get a numeric suffix: Computer1.
        let lnames: Vec<String> = lschema.fields().iter().map(|f| f.name().clone()).collect();
        let mut taken: Vec<String> = lnames.clone();
        taken.extend(rschema.fields().iter().map(|f| f.name().clone()));
        let mut renamed = HashMap::new();
        let mut rcols = Vec::new();
        for f in rschema.fields() {
            let n = f.name().clone();
            if both_sides && lnames.contains(&n) {
                let mut i = 1;
                while taken.contains(&format!("{n}{i}")) {
                    i += 1;
                }
                let new = format!("{n}{i}");
                taken.push(new.clone());
                rcols.push(ident(&n).alias(&new));
                renamed.insert(n, new);
            } else {
                rcols.push(ident(&n));
            }
        }
        let right = LogicalPlanBuilder::from(right)
            .project(rcols)
            .and_then(|b| b.alias("__right"))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let on: Vec<DfExpr> = keys
            .iter()
            .map(|(l, r)| {
                let r = renamed.get(r).cloned().unwrap_or_else(|| r.clone());
                DfExpr::Column(Column::new(Some("__left"), l)).eq(DfExpr::Column(Column::new(Some("__right"), r)))
            })
            .collect();
        let joined = LogicalPlanBuilder::from(left)
            .alias("__left")
            .and_then(|b| b.join_on(right, join_type, on))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        // Drop the internal qualifiers.
        self.unqualified(joined, span)
    }
}
