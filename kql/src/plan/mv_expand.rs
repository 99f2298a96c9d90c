//! `mv-expand`: one row per element of a dynamic array or bag.

use super::*;

impl Planner<'_> {
    /// `mv-expand [Name =] ArrayExpression [to typeof(T)] [limit N]`: one row per element of a
    /// dynamic array (or per property of a bag); a null gives one row, an empty array none.
    pub(super) fn mv_expand(
        &mut self,
        plan: LogicalPlan,
        items: &[NamedExpr],
        limit: Option<&Expr>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let [item] = items else {
            return Err(self.err(
                ErrorKind::Unsupported,
                "mv-expand of several arrays at once is not supported; expand them one after the other",
                span,
            ));
        };
        if let Some(l) = limit {
            return Err(self.err(ErrorKind::Unsupported, "mv-expand limit is not supported", l.span));
        }
        // The parser turns `x to typeof(T)` into `toT(x)`: expand `x`, then convert each element.
        let (array, convert) = match &item.expr.kind {
            ExprKind::Call { name, args }
                if args.len() == 1 && name.name.starts_with("to") && name.span.start > args[0].span.end =>
            {
                (&args[0], Some(name.name.trim_start_matches("to").to_string()))
            }
            _ => (&item.expr, None),
        };
        let name = match item.names.as_slice() {
            [n] => n.name.clone(),
            _ => self.derived_name(array),
        };
        let schema = plan.schema().as_ref().clone();
        let x = self.scalar(array, &schema)?;
        let x = self.dynamic_value(x, &schema, array.span)?;
        let mut exprs: Vec<DfExpr> = schema.fields().iter().map(|f| ident(f.name())).collect();
        exprs.push(crate::udf::dyn_elements(x).alias("__mv"));
        let expanded = LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.unnest_column("__mv"))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let element = ident("__mv");
        let value = match convert.as_deref() {
            None | Some("dynamic") => element,
            Some("string") => crate::udf::dyn_to_string(element),
            Some(t) => {
                let dt = kusto_type(t)
                    .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{t}'"), item.expr.span))?;
                try_cast(element, dt)
            }
        };
        // The expanded column takes the place of the source column when it has its name.
        let out: Vec<DfExpr> = expanded
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() != "__mv")
            .map(|f| if *f.name() == name { value.clone().alias(&name) } else { ident(f.name()) })
            .collect();
        let replaced = schema.field_with_unqualified_name(&name).is_ok();
        let out = if replaced { out } else { out.into_iter().chain([value.alias(&name)]).collect() };
        LogicalPlanBuilder::from(expanded).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }
}
