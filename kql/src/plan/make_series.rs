//! `make-series`: aggregates per bin of an axis, as arrays.

use super::*;

impl Planner<'_> {
    /// `make-series`: per group of `by`, each aggregate over bins of `step` from `from` to `to`
    /// (exclusive) as a dynamic array (`default`, 0 unless given, where a bin has no rows), and
    /// the axis column as the array of the bins' start times. Output: keys, series, axis.
    pub(super) fn make_series(&mut self, plan: LogicalPlan, m: &MakeSeries, span: Span) -> PResult<LogicalPlan> {
        use datafusion::logical_expr::ExprFunctionExt;
        let (Some(from), Some(to)) = (&m.from, &m.to) else {
            return Err(self.err(ErrorKind::Unsupported, "make-series without 'from' and 'to' is not supported", span));
        };
        let schema = plan.schema().as_ref().clone();
        let axis = self.scalar(&m.axis, &schema)?;
        if !matches!(self.type_of(&axis, &schema, m.axis.span)?, DataType::Timestamp(..)) {
            return Err(self.err(
                ErrorKind::Unsupported,
                "make-series on a non-datetime axis is not supported",
                m.axis.span,
            ));
        }
        let empty = DFSchema::empty();
        let from_e = self.scalar(from, &empty)?;
        let to_e = self.scalar(to, &empty)?;
        let step_e = self.scalar(&m.step, &empty)?;
        if duration_ns(&step_e).is_none() {
            return Err(self.err(
                ErrorKind::Semantic,
                "make-series takes a constant timespan as its step (1h, a let of one, 30m * 2)",
                m.step.span,
            ));
        }
        let axis_name = self.derived_name(&m.axis);
        // 1. rows in [from, to); 2. aggregates per group and bin; 3. per group, the bins in order.
        let filtered = LogicalPlanBuilder::from(plan)
            .filter(axis.clone().gt_eq(from_e.clone()).and(axis.clone().lt(to_e.clone())))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let bin_ast = Expr {
            kind: ExprKind::Call {
                name: Ident { name: "bin_at".into(), span: m.step.span },
                args: vec![m.axis.clone(), m.step.clone(), from.clone()],
            },
            span: m.step.span,
        };
        let mut by = m.by.clone();
        by.push(NamedExpr { names: vec![Ident { name: "__bin".into(), span: m.step.span }], expr: bin_ast });
        let aggs: Vec<NamedExpr> = m.aggregates.iter().map(|(a, _)| a.clone()).collect();
        let binned = self.summarize(filtered, &aggs, &by, span)?;
        let bschema = binned.schema().as_ref().clone();
        let key_names: Vec<String> = bschema.fields().iter().take(m.by.len()).map(|f| f.name().clone()).collect();
        let series_names: Vec<String> =
            bschema.fields().iter().skip(m.by.len() + 1).map(|f| f.name().clone()).collect();
        let ordered = |e: DfExpr| {
            agg::array_agg(e)
                .order_by(vec![ident("__bin").sort(true, false)])
                .build()
                .map_err(|er| self.df_err(er, span))
        };
        let mut lists = vec![ordered(ident("__bin"))?.alias("__bins")];
        for (i, n) in series_names.iter().enumerate() {
            lists.push(ordered(ident(n))?.alias(format!("__values{i}")));
        }
        let grouped = LogicalPlanBuilder::from(binned)
            .aggregate(key_names.iter().map(ident).collect::<Vec<_>>(), lists)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let mut out: Vec<DfExpr> = key_names.iter().map(ident).collect();
        for (i, n) in series_names.iter().enumerate() {
            let default = match &m.aggregates[i].1 {
                Some(d) => self.scalar(d, &empty)?,
                None => lit(0i64),
            };
            out.push(
                crate::udf::series_fill(
                    ident("__bins"),
                    ident(format!("__values{i}")),
                    from_e.clone(),
                    to_e.clone(),
                    step_e.clone(),
                    default,
                )
                .alias(n),
            );
        }
        out.push(crate::udf::series_axis(from_e, to_e, step_e).alias(axis_name));
        LogicalPlanBuilder::from(grouped).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }
}
