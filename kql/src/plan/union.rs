//! `union`: tables aligned by column name.

use super::*;

impl Planner<'_> {
    /// `union`: all columns of all inputs by name (Kusto's default `kind=outer`), missing ones
    /// null; `withsource=Col` names each row's table; `isfuzzy=true` skips missing tables.
    pub(super) fn union(&mut self, first: Option<LogicalPlan>, u: &Union, span: Span) -> PResult<LogicalPlan> {
        if u.kind.as_deref() == Some("inner") {
            return Err(self.err(ErrorKind::Unsupported, "union kind=inner is not supported yet", span));
        }
        let mut inputs: Vec<(String, LogicalPlan)> = Vec::new();
        if let Some(p) = first {
            inputs.push((String::new(), p));
        }
        for t in &u.tables {
            match (&t.source, t.ops.is_empty()) {
                (Source::Expr(Expr { kind: ExprKind::Name(n), span: s }), true) if n.contains('*') => {
                    let mut names: Vec<String> =
                        self.catalog.table_names().into_iter().filter(|t| wildcard_match(n, t)).collect();
                    names.sort();
                    for name in names {
                        inputs.push((name.clone(), self.table(&name, *s)?));
                    }
                }
                (Source::Expr(Expr { kind: ExprKind::Name(n), span: s }), true) => {
                    if u.is_fuzzy && !self.is_tabular_name(n) {
                        continue;
                    }
                    inputs.push((n.clone(), self.table(n, *s)?));
                }
                _ => {
                    let name = match &t.source {
                        Source::Expr(Expr { kind: ExprKind::Name(n), .. }) => n.clone(),
                        _ => String::new(),
                    };
                    match self.pipeline(t) {
                        Ok(p) => inputs.push((name, p)),
                        // isfuzzy: a leg that does not resolve (a missing table or column) is left out.
                        Err(e) if u.is_fuzzy && e.kind == ErrorKind::Semantic => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if inputs.is_empty() {
            return Err(self.err(ErrorKind::Semantic, "union has no input table that exists", span));
        }
        let mut result: Option<LogicalPlan> = None;
        for (name, plan) in inputs {
            let plan = match &u.with_source {
                Some(col) => {
                    let mut exprs = vec![lit(name).alias(&col.name)];
                    exprs.extend(plan.schema().fields().iter().map(|f| ident(f.name())));
                    LogicalPlanBuilder::from(plan)
                        .project(exprs)
                        .and_then(|b| b.build())
                        .map_err(|e| self.df_err(e, span))?
                }
                None => plan,
            };
            result = Some(match result {
                None => plan,
                Some(acc) => LogicalPlanBuilder::from(acc)
                    .union_by_name(plan)
                    .and_then(|b| b.build())
                    .map_err(|e| self.df_err(e, span))?,
            });
        }
        Ok(result.expect("at least one input"))
    }
}
