//! The aggregate functions of `summarize`: each call to DataFusion aggregates and Kusto's
//! default name for its column (`count_`, `max_TimeGenerated`, `set_Computer`...).

use datafusion::logical_expr::ExprFunctionExt;

use super::*;

/// One aggregate call being planned.
#[derive(Clone, Copy)]
struct AggregateCall<'c> {
    name: &'c str,
    args: &'c [Expr],
    schema: &'c DFSchema,
    span: Span,
}

impl AggregateCall<'_> {
    /// Checks the number of arguments: `lowest` to `highest`.
    fn want(&self, p: &Planner, lowest: usize, highest: usize) -> PResult<()> {
        let (name, got) = (self.name, self.args.len());
        if (lowest..=highest).contains(&got) {
            return Ok(());
        }
        let message = if lowest == highest {
            format!("{name}() takes {lowest} argument(s), got {got}")
        } else {
            format!("{name}() takes {lowest} to {highest} arguments, got {got}")
        };
        Err(p.err(ErrorKind::Semantic, message, self.span))
    }

    /// Kusto's default column name: `{prefix}_{name of the first argument}`.
    fn column_name(&self, p: &mut Planner, prefix: &str) -> String {
        let first = self.args.first().map(|a| p.derived_name(a)).unwrap_or_default();
        format!("{prefix}_{first}")
    }

    fn first(&self, p: &mut Planner) -> PResult<DfExpr> {
        p.scalar(&self.args[0], self.schema)
    }
}

fn one(expr: DfExpr, name: String) -> PResult<Vec<Agg>> {
    Ok(vec![Agg { expr, name, finish: Finish::None }])
}

impl Planner<'_> {
    /// An aggregate call and its Kusto default name (`count_`, `max_TimeGenerated`, ...).
    pub(super) fn aggregate(&mut self, e: &Expr, schema: &DFSchema, global: bool) -> PResult<Vec<Agg>> {
        let ExprKind::Call { name, args } = &e.kind else {
            return Err(self.err(
                ErrorKind::Semantic,
                "expected an aggregate function such as count() or max(x)",
                e.span,
            ));
        };
        let call = AggregateCall { name: name.name.as_str(), args, schema, span: e.span };
        match call.name {
            "count" => self.count_aggregate(&call),
            "countif" => {
                call.want(self, 1, 1)?;
                let predicate = self.predicate(&args[0], schema)?;
                let ones =
                    case(predicate).when(lit(true), lit(1i64)).otherwise(lit(0i64)).unwrap_or_else(|_| lit(0i64));
                one(agg::sum(ones), "countif_".into())
            }
            "dcount" | "dcountif" | "count_distinct" | "count_distinctif" => self.distinct_count(&call),
            "sum" | "sumif" => {
                let (x, name) = self.maybe_conditional(&call)?;
                // Kusto: sum over no rows is 0, not null.
                let sum = if global { f::coalesce(vec![agg::sum(x), lit(0i64)]) } else { agg::sum(x) };
                one(sum, name)
            }
            "avg" | "avgif" => {
                let (x, name) = self.maybe_conditional(&call)?;
                one(agg::avg(cast(x, DataType::Float64)), name)
            }
            "min" | "max" | "minif" | "maxif" => {
                let (x, name) = self.maybe_conditional(&call)?;
                one(if call.name.starts_with("min") { agg::min(x) } else { agg::max(x) }, name)
            }
            "any" | "take_any" | "anyif" | "take_anyif" => self.take_any(&call),
            "stdev" | "variance" => {
                call.want(self, 1, 1)?;
                let x = cast(call.first(self)?, DataType::Float64);
                let a = if call.name == "stdev" { agg::stddev(x) } else { agg::var_sample(x) };
                one(a, call.column_name(self, call.name))
            }
            "make_set" | "make_list" | "makeset" | "makelist" | "make_set_if" | "make_list_if" => {
                self.collect_aggregate(name, args, e.span, schema)
            }
            "make_bag" | "make_bag_if" => self.make_bag(&call),
            "percentile" | "percentiles" => self.percentile_aggregates(name, args, e.span, schema),
            "percentiles_array" => self.percentiles_array(&call),
            "arg_max" | "arg_min" => Err(self.err(
                ErrorKind::Unsupported,
                format!("{}() inside an expression is not supported", call.name),
                name.span,
            )),
            other => Err(self.err(
                ErrorKind::Unsupported,
                format!("the aggregate function '{other}' is not supported"),
                name.span,
            )),
        }
    }

    /// `count()`, `count(*)` (named `count_`), `count(x)` (`count_x`, nulls not counted).
    fn count_aggregate(&mut self, call: &AggregateCall) -> PResult<Vec<Agg>> {
        call.want(self, 0, 1)?;
        match call.args.first() {
            None | Some(Expr { kind: ExprKind::Star, .. }) => one(agg::count(lit(1i64)), "count_".to_string()),
            Some(_) => {
                let x = call.first(self)?;
                one(agg::count(x), call.column_name(self, "count"))
            }
        }
    }

    /// The value of an aggregate that may end in `if` (`sumif(x, predicate)`): `x`, or `x` where
    /// the predicate holds; and the column's name.
    fn maybe_conditional(&mut self, call: &AggregateCall) -> PResult<(DfExpr, String)> {
        let conditional = call.name.ends_with("if");
        call.want(self, 1 + usize::from(conditional), 1 + usize::from(conditional))?;
        let mut x = call.first(self)?;
        if conditional {
            x = self.only_if(x, &call.args[1], call.schema)?;
        }
        Ok((x, call.column_name(self, call.name)))
    }

    /// `dcount(x [, accuracy])`, `dcountif(x, predicate [, accuracy])`, `count_distinct(x)`,
    /// `count_distinctif(x, predicate)`: exact counts ([`crate::udf::dcount`]; the accuracy
    /// level, 0 to 4, is accepted and has nothing to trade).
    fn distinct_count(&mut self, call: &AggregateCall) -> PResult<Vec<Agg>> {
        let conditional = call.name.ends_with("if");
        let required = 1 + usize::from(conditional);
        let accuracy_allowed = call.name.starts_with("dcount");
        call.want(self, required, required + usize::from(accuracy_allowed))?;
        if let Some(accuracy) = call.args.get(required) {
            let valid = matches!(accuracy.kind, ExprKind::Literal(Literal::Long(level)) if (0..=4).contains(&level));
            if !valid {
                let message = format!("{}()'s accuracy is a whole number from 0 to 4", call.name);
                return Err(self.err(ErrorKind::Semantic, message, accuracy.span));
            }
        }
        let mut x = call.first(self)?;
        if conditional {
            x = self.only_if(x, &call.args[1], call.schema)?;
        }
        one(crate::udf::dcount(x), call.column_name(self, call.name))
    }

    /// `take_any(x)` (`any`), `take_anyif(x, predicate)` (`anyif`): a value of the group (of
    /// its rows where the predicate holds).
    fn take_any(&mut self, call: &AggregateCall) -> PResult<Vec<Agg>> {
        let conditional = call.name.ends_with("if");
        call.want(self, 1 + usize::from(conditional), 1 + usize::from(conditional))?;
        let x = call.first(self)?;
        let mut any = agg::first_value(x, vec![]);
        if conditional {
            let predicate = self.predicate(&call.args[1], call.schema)?;
            any = any.filter(predicate).build().map_err(|e| self.df_err(e, call.span))?;
        }
        one(any, call.column_name(self, call.name))
    }

    /// `make_bag(bag [, max])`, `make_bag_if(bag, predicate [, max])`: the property bags of the
    /// group merged into one.
    fn make_bag(&mut self, call: &AggregateCall) -> PResult<Vec<Agg>> {
        let conditional = call.name.ends_with("_if");
        let required = 1 + usize::from(conditional);
        call.want(self, required, required + 1)?;
        let x = call.first(self)?;
        let x = self.dynamic_value(x, call.schema, call.args[0].span)?;
        let mut keep = x.clone().is_not_null();
        if conditional {
            keep = keep.and(self.predicate(&call.args[1], call.schema)?);
        }
        let max = self.maximum_size(call.args.get(required), 1_048_576)?;
        let expr = agg::array_agg(x).filter(keep).build().map_err(|e| self.df_err(e, call.span))?;
        Ok(vec![Agg { expr, name: call.column_name(self, "bag"), finish: Finish::Bag(max) }])
    }

    /// The optional maximum size argument of `make_set`, `make_list`, `make_bag`.
    fn maximum_size(&self, arg: Option<&Expr>, default: i64) -> PResult<i64> {
        match arg {
            None => Ok(default),
            Some(Expr { kind: ExprKind::Literal(Literal::Long(n)), .. }) => Ok(*n),
            Some(other) => Err(self.err(ErrorKind::Semantic, "the maximum size is a whole number", other.span)),
        }
    }

    /// `percentiles_array(x, p1, p2, ...)` or `percentiles_array(x, dynamic([p1, p2, ...]))`:
    /// the nearest-rank percentiles as one dynamic array.
    fn percentiles_array(&mut self, call: &AggregateCall) -> PResult<Vec<Agg>> {
        if call.args.len() < 2 {
            let message = "percentiles_array() takes the expression and the percentiles";
            return Err(self.err(ErrorKind::Semantic, message, call.span));
        }
        let percentiles = match &call.args[1].kind {
            ExprKind::Literal(Literal::Dynamic(serde_json::Value::Array(items))) if call.args.len() == 2 => items
                .iter()
                .map(|item| item.as_f64().ok_or_else(|| self.not_a_percentile(call.args[1].span)))
                .collect::<PResult<Vec<f64>>>()?,
            _ => call.args[1..].iter().map(|arg| self.percentile_value(arg)).collect::<PResult<Vec<f64>>>()?,
        };
        if percentiles.iter().any(|p| !(0.0..=100.0).contains(p)) {
            return Err(self.not_a_percentile(call.args[1].span));
        }
        let x = call.first(self)?;
        let sorted = self.sorted_values(x, call.span)?;
        Ok(vec![Agg {
            expr: sorted,
            name: call.column_name(self, "percentiles"),
            finish: Finish::Percentiles(percentiles),
        }])
    }

    fn not_a_percentile(&self, span: Span) -> KqlError {
        self.err(ErrorKind::Semantic, "a percentile is a number from 0 to 100", span)
    }

    /// A percentile argument: a number literal from 0 to 100.
    fn percentile_value(&self, arg: &Expr) -> PResult<f64> {
        let value = match &arg.kind {
            ExprKind::Literal(Literal::Long(n)) => *n as f64,
            ExprKind::Literal(Literal::Real(r)) => *r,
            _ => return Err(self.not_a_percentile(arg.span)),
        };
        if (0.0..=100.0).contains(&value) { Ok(value) } else { Err(self.not_a_percentile(arg.span)) }
    }

    /// The non-null values of `x` in a group, sorted ascending.
    fn sorted_values(&self, x: DfExpr, span: Span) -> PResult<DfExpr> {
        agg::array_agg(x.clone())
            .filter(x.clone().is_not_null())
            .order_by(vec![x.sort(true, false)])
            .build()
            .map_err(|er| self.df_err(er, span))
    }

    /// `make_set`, `make_list` (and their `_if` and deprecated forms): the non-null values of
    /// a group as a list, finished into a dynamic array of at most the given size.
    fn collect_aggregate(&mut self, name: &Ident, args: &[Expr], span: Span, schema: &DFSchema) -> PResult<Vec<Agg>> {
        let fname = name.name.as_str();
        let first = args.first().map(|a| self.derived_name(a)).unwrap_or_default();
        let conditional = fname.ends_with("_if");
        let (lo, hi) = if conditional { (2, 3) } else { (1, 2) };
        if !(lo..=hi).contains(&args.len()) {
            return Err(self.err(
                ErrorKind::Semantic,
                format!("{fname}() takes {lo} or {hi} arguments, got {}", args.len()),
                span,
            ));
        }
        let x = self.scalar(&args[0], schema)?;
        let dynamic = self.is_dynamic(&x, schema);
        let mut keep = x.clone().is_not_null();
        if conditional {
            keep = keep.and(self.predicate(&args[1], schema)?);
        }
        // The deprecated makeset/makelist keep their old default of 128.
        let default = if fname.starts_with("make") && !fname.contains('_') { 128 } else { 1_048_576 };
        let max = self.maximum_size(args.get(hi - 1), default)?;
        let b = agg::array_agg(x).filter(keep);
        let b = if fname.contains("set") { b.distinct() } else { b };
        let expr = b.build().map_err(|er| self.df_err(er, span))?;
        // Kusto names them set_X and list_X.
        let base = if fname.contains("set") { "set" } else { "list" };
        Ok(vec![Agg { expr, name: format!("{base}_{}", first), finish: Finish::List(max, dynamic) }])
    }

    /// `percentile(x, p)` and `percentiles(x, p1, p2...)`: each the sorted values of a group,
    /// finished by nearest rank.
    fn percentile_aggregates(
        &mut self,
        name: &Ident,
        args: &[Expr],
        span: Span,
        schema: &DFSchema,
    ) -> PResult<Vec<Agg>> {
        let fname = name.name.as_str();
        let first = args.first().map(|a| self.derived_name(a)).unwrap_or_default();
        if args.len() < 2 || (fname == "percentile" && args.len() != 2) {
            return Err(self.err(
                ErrorKind::Semantic,
                format!("{fname}() takes the expression and the percentile(s)"),
                span,
            ));
        }
        let x = self.scalar(&args[0], schema)?;
        let mut out = Vec::new();
        for p in &args[1..] {
            let v = self.percentile_value(p)?;
            let sorted = self.sorted_values(x.clone(), span)?;
            let label = self.source[p.span.start..p.span.end].replace('.', "_");
            out.push(Agg {
                expr: sorted,
                name: format!("percentile_{}_{label}", first),
                finish: Finish::Percentile(v),
            });
        }
        Ok(out)
    }

    /// `x` where `predicate` holds, null elsewhere: the argument of `sumif`, `avgif`, `dcountif`.
    pub(super) fn only_if(&mut self, x: DfExpr, predicate: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        let p = self.predicate(predicate, schema)?;
        when(p, x).end().map_err(|er| self.df_err(er, predicate.span))
    }
}
