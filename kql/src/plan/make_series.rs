//! `make-series`: aggregates per bin of an axis, as arrays.

use datafusion::logical_expr::ExprFunctionExt;

use super::*;

/// The internal names of the series' bounds when the data gives them.
const FROM: &str = "__series_from";
const TO: &str = "__series_to";

/// Where the series start and end: constants of the query, or columns computed from the data.
struct Bounds {
    from: DfExpr,
    to: DfExpr,
    /// One row with the `FROM` and `TO` columns when `from` or `to` is missing.
    computed: Option<LogicalPlan>,
}

impl Planner<'_> {
    /// `make-series`: per group of `by`, each aggregate over bins of `step` from `from` to `to`
    /// (exclusive) as a dynamic array (`default`, 0 unless given, where a bin has no rows), and
    /// the axis column as the array of the bins' start times. Output: keys, series, axis.
    /// Without `from`, the series start at the bin of the earliest axis value; without `to`,
    /// they end after the bin of the latest; every series shares the one axis.
    pub(super) fn make_series(&mut self, plan: LogicalPlan, m: &MakeSeries, span: Span) -> PResult<LogicalPlan> {
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
        let step = self.scalar(&m.step, &empty)?;
        if duration_ns(&step).is_none() {
            return Err(self.err(
                ErrorKind::Semantic,
                "make-series takes a constant timespan as its step (1h, a let of one, 30m * 2)",
                m.step.span,
            ));
        }
        let filtered = self.series_rows(plan, m, axis, span)?;
        let bounds = self.series_bounds(&filtered, m, span)?;
        let (grouped, series_names) = self.series_bins(filtered, m, span)?;
        let grouped = match &bounds.computed {
            None => grouped,
            Some(computed) => LogicalPlanBuilder::from(grouped)
                .cross_join(computed.clone())
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?,
        };
        let mut out: Vec<DfExpr> = grouped.schema().fields().iter().take(m.by.len()).map(|f| ident(f.name())).collect();
        for (i, ((_, default), name)) in m.aggregates.iter().zip(series_names).enumerate() {
            let default = match default {
                Some(d) => self.scalar(d, &empty)?,
                None => lit(0i64),
            };
            let values = ident(format!("__values{i}"));
            let series = crate::udf::series_fill(
                ident("__bins"),
                values,
                bounds.from.clone(),
                bounds.to.clone(),
                step.clone(),
                default,
            );
            out.push(series.alias(name));
        }
        out.push(crate::udf::series_axis(bounds.from, bounds.to, step).alias(self.derived_name(&m.axis)));
        LogicalPlanBuilder::from(grouped).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// The rows in `[from, to)`, each bound where the query gives it.
    fn series_rows(&mut self, plan: LogicalPlan, m: &MakeSeries, axis: DfExpr, span: Span) -> PResult<LogicalPlan> {
        let empty = DFSchema::empty();
        let mut condition = lit(true);
        if let Some(from) = &m.from {
            condition = condition.and(axis.clone().gt_eq(self.scalar(from, &empty)?));
        }
        if let Some(to) = &m.to {
            condition = condition.and(axis.lt(self.scalar(to, &empty)?));
        }
        LogicalPlanBuilder::from(plan).filter(condition).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// The series' start and end: the query's constants, else the bins of the earliest and the
    /// latest axis values (the end one step after the latest's bin).
    fn series_bounds(&mut self, rows: &LogicalPlan, m: &MakeSeries, span: Span) -> PResult<Bounds> {
        let empty = DFSchema::empty();
        if let (Some(from), Some(to)) = (&m.from, &m.to) {
            return Ok(Bounds { from: self.scalar(from, &empty)?, to: self.scalar(to, &empty)?, computed: None });
        }
        let axis = self.scalar(&m.axis, rows.schema())?;
        let extremes = LogicalPlanBuilder::from(rows.clone())
            .aggregate(Vec::<DfExpr>::new(), vec![agg::min(axis.clone()).alias("__min"), agg::max(axis).alias("__max")])
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let extremes_schema = extremes.schema().as_ref().clone();
        let name = |n: &str| Expr { kind: ExprKind::Name(n.to_string()), span: m.axis.span };
        let from = match &m.from {
            Some(from) => self.scalar(from, &empty)?,
            None => self.scalar(&self.series_bin(m, name("__min")), &extremes_schema)?,
        };
        let last_bin = self.scalar(&self.series_bin(m, name("__max")), &extremes_schema)?;
        let to = match &m.to {
            Some(to) => self.scalar(to, &empty)?,
            None => last_bin + self.scalar(&m.step, &empty)?,
        };
        let computed = LogicalPlanBuilder::from(extremes)
            .project(vec![from.alias(FROM), to.alias(TO)])
            // No rows, no bounds: no series (not one series of nulls).
            .and_then(|b| b.filter(ident(FROM).is_not_null().and(ident(TO).is_not_null())))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        Ok(Bounds { from: ident(FROM), to: ident(TO), computed: Some(computed) })
    }

    /// The bin of `value`: `bin_at(value, step, from)` when the query gives `from`, else
    /// `bin(value, step)`.
    fn series_bin(&self, m: &MakeSeries, value: Expr) -> Expr {
        let (name, args) = match &m.from {
            Some(from) => ("bin_at", vec![value, m.step.clone(), from.clone()]),
            None => ("bin", vec![value, m.step.clone()]),
        };
        Expr { kind: ExprKind::Call { name: Ident { name: name.into(), span: m.step.span }, args }, span: m.step.span }
    }

    /// Per group of `by`: the keys, the bins in order (`__bins`) and each aggregate's values in
    /// the same order (`__values0`...); also the aggregates' column names.
    fn series_bins(&mut self, rows: LogicalPlan, m: &MakeSeries, span: Span) -> PResult<(LogicalPlan, Vec<String>)> {
        let mut by = m.by.clone();
        let bin = self.series_bin(m, m.axis.clone());
        by.push(NamedExpr { names: vec![Ident { name: "__bin".into(), span: m.step.span }], expr: bin });
        let aggregates: Vec<NamedExpr> = m.aggregates.iter().map(|(a, _)| a.clone()).collect();
        let binned = self.summarize(rows, &aggregates, &by, span)?;
        let binned_schema = binned.schema().as_ref().clone();
        let key_names: Vec<String> = binned_schema.fields().iter().take(m.by.len()).map(|f| f.name().clone()).collect();
        let series_names: Vec<String> =
            binned_schema.fields().iter().skip(m.by.len() + 1).map(|f| f.name().clone()).collect();
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
        Ok((grouped, series_names))
    }
}
