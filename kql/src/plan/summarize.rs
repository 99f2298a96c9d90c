//! `summarize`: one DataFusion aggregate, a projection that finishes Kusto's values, and one of the items.

use super::*;

impl Planner<'_> {
    pub(super) fn summarize(
        &mut self,
        plan: LogicalPlan,
        aggregates: &[NamedExpr],
        by: &[NamedExpr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let plan = self.narrow_to_extremes(plan, aggregates, by, span)?;
        let is_arg = |a: &NamedExpr| matches!(&a.expr.kind, ExprKind::Call { name, .. } if name.name == "arg_max" || name.name == "arg_min");
        let schema = plan.schema().as_ref().clone();
        let group = self.named_list(by, &schema, true)?;
        let global = by.is_empty();
        let mut taken: Vec<String> = group
            .iter()
            .map(|g| match g {
                DfExpr::Alias(a) => a.name.clone(),
                other => other.schema_name().to_string(),
            })
            .collect();
        // Three steps: aggregate into __rawN, finish each (__aggN: make_set's list to a dynamic
        // array, ...), then evaluate the items, which may wrap aggregates (`now() - max(T)`).
        let mut raw: Vec<Agg> = Vec::new();
        let mut outputs: Vec<(OutputItem, String)> = Vec::new();
        for a in aggregates {
            if is_arg(a) {
                for part in self.arg_extreme(a, &schema, &mut taken)? {
                    outputs.push((OutputItem::Agg(raw.len()), part.name.clone()));
                    raw.push(part);
                }
            } else if self.is_aggregate_call(&a.expr) {
                let parts = self.aggregate(&a.expr, &schema, global)?;
                let names = self.aggregate_names(a, &parts)?;
                for (part, name) in parts.into_iter().zip(names) {
                    outputs.push((OutputItem::Agg(raw.len()), name));
                    raw.push(part);
                }
            } else {
                let name = match a.names.as_slice() {
                    [one] => one.name.clone(),
                    [] => self.derived_name(&a.expr),
                    _ => {
                        return Err(self.err(
                            ErrorKind::Unsupported,
                            "multi-column assignment is not supported",
                            a.expr.span,
                        ));
                    }
                };
                let rewritten = self.extract_aggregates(&a.expr, &schema, global, &mut raw)?;
                outputs.push((OutputItem::Expr(rewritten), name));
            }
        }
        if raw.is_empty() && group.is_empty() {
            if let Some(unknown) = aggregates.iter().find_map(|a| self.unknown_function(&a.expr)) {
                let message = format!("the aggregate function '{}' is not supported", unknown.name);
                return Err(self.err(ErrorKind::Unsupported, message, unknown.span));
            }
            return Err(self.err(
                ErrorKind::Semantic,
                "expected an aggregate function such as count() or max(x)",
                span,
            ));
        }
        let group_cols: Vec<DfExpr> = group
            .iter()
            .map(|g| match g {
                DfExpr::Alias(a) => ident(a.name.clone()),
                other => ident(other.schema_name().to_string()),
            })
            .collect();
        let planned = self.aggregate_step(plan, &group, &group_cols, &raw).map_err(|e| self.df_err(e, span))?;
        let finished = self.finish_aggregates(planned, &group_cols, &raw, span)?;
        let fschema = finished.schema().as_ref().clone();
        let mut out = group_cols;
        for (item, name) in outputs {
            let e = match item {
                OutputItem::Agg(i) => ident(format!("__agg{i}")),
                // Over the keys and the aggregates: a column of the input is not in scope.
                OutputItem::Expr(ast) => self.scalar(&ast, &fschema).map_err(|e| {
                    if e.message.starts_with("unknown column") {
                        self.err(
                            ErrorKind::Semantic,
                            "expected an aggregate function such as count() or max(x)",
                            ast.span,
                        )
                    } else {
                        e
                    }
                })?,
            };
            out.push(e.alias(name));
        }
        LogicalPlanBuilder::from(finished).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// The name of the function `e` calls when neither an aggregate, a scalar function nor a
    /// user function has it.
    fn unknown_function<'e>(&self, e: &'e Expr) -> Option<&'e Ident> {
        match &e.kind {
            ExprKind::Call { name, .. }
                if !self.is_aggregate_call(e)
                    && !function::is_scalar_function(&name.name)
                    && !matches!(self.lets.get(&name.name), Some(Binding::Function(_))) =>
            {
                Some(name)
            }
            _ => None,
        }
    }

    pub(super) fn is_aggregate_call(&self, e: &Expr) -> bool {
        matches!(&e.kind, ExprKind::Call { name, .. } if AGGREGATES.contains(&name.name.as_str()))
    }

    /// `e` with each aggregate call in it replaced by a reference to its result column
    /// (`__aggN`), the aggregates appended to `raw`.
    pub(super) fn extract_aggregates(
        &mut self,
        e: &Expr,
        schema: &DFSchema,
        global: bool,
        raw: &mut Vec<Agg>,
    ) -> PResult<Expr> {
        if self.is_aggregate_call(e) {
            let mut parts = self.aggregate(e, schema, global)?;
            if parts.len() != 1 {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    "an aggregate with several result columns inside an expression",
                    e.span,
                ));
            }
            let name = format!("__agg{}", raw.len());
            raw.push(parts.remove(0));
            return Ok(Expr { kind: ExprKind::Name(name), span: e.span });
        }
        let mut sub = |p: &mut Self, x: &Expr| p.extract_aggregates(x, schema, global, raw).map(Box::new);
        let kind = match &e.kind {
            ExprKind::Binary { op, left, right } => {
                ExprKind::Binary { op: *op, left: sub(self, left)?, right: sub(self, right)? }
            }
            ExprKind::Negate(x) => ExprKind::Negate(sub(self, x)?),
            ExprKind::Call { name, args } => ExprKind::Call {
                name: name.clone(),
                args: args.iter().map(|x| sub(self, x).map(|b| *b)).collect::<PResult<_>>()?,
            },
            ExprKind::Member { target, name } => ExprKind::Member { target: sub(self, target)?, name: name.clone() },
            ExprKind::Index { target, index } => {
                ExprKind::Index { target: sub(self, target)?, index: sub(self, index)? }
            }
            ExprKind::Between { expr, low, high, negated } => ExprKind::Between {
                expr: sub(self, expr)?,
                low: sub(self, low)?,
                high: sub(self, high)?,
                negated: *negated,
            },
            ExprKind::In { expr, list, negated, case_insensitive } => ExprKind::In {
                expr: sub(self, expr)?,
                list: list.clone(),
                negated: *negated,
                case_insensitive: *case_insensitive,
            },
            other => other.clone(),
        };
        Ok(Expr { kind, span: e.span })
    }

    /// `arg_max(Target, Col1, ... | *)` in a summarize: the target's maximum (minimum for
    /// arg_min) and, for each chosen column (`*`: all the others, in input order), its value in
    /// the row where the target is largest: `first_value(col ORDER BY Target DESC)`, one
    /// aggregate per column, so that it combines with other aggregates and needs no sort.
    /// `taken` holds the output names so far (keys first); the new ones are added.
    pub(super) fn arg_extreme(
        &mut self,
        item: &NamedExpr,
        schema: &DFSchema,
        taken: &mut Vec<String>,
    ) -> PResult<Vec<Agg>> {
        let ExprKind::Call { name, args } = &item.expr.kind else { unreachable!("checked by the caller") };
        if args.len() < 2 {
            return Err(self.err(
                ErrorKind::Semantic,
                format!("{}() takes the expression to maximise and the columns to return (or *)", name.name),
                item.expr.span,
            ));
        }
        if item.names.len() > 1 {
            return Err(self.err(
                ErrorKind::Unsupported,
                format!("naming several columns of {}() is not supported", name.name),
                item.expr.span,
            ));
        }
        let max = name.name == "arg_max";
        // `Latest = arg_max(t, *)` and `arg_max(Latest = t, *)` both name the target column.
        let (target_name, target_ast) = match &args[0].kind {
            ExprKind::NamedArg { name, value } => (name.name.clone(), value.as_ref()),
            _ => match item.names.first() {
                Some(n) => (n.name.clone(), &args[0]),
                None => (self.derived_name(&args[0]), &args[0]),
            },
        };
        let target = self.scalar(target_ast, schema)?;
        let order = vec![target.clone().sort(!max, false)];
        let pick = |e: DfExpr| agg::first_value(e, order.clone());
        let mut out = vec![Agg {
            expr: if max { agg::max(target.clone()) } else { agg::min(target.clone()) },
            name: target_name.clone(),
            finish: Finish::None,
        }];
        taken.push(target_name);
        for a in &args[1..] {
            match &a.kind {
                ExprKind::Star => {
                    for f in schema.fields() {
                        if !taken.contains(f.name()) {
                            taken.push(f.name().clone());
                            out.push(Agg { expr: pick(ident(f.name())), name: f.name().clone(), finish: Finish::None });
                        }
                    }
                }
                ExprKind::NamedArg { name, value } => {
                    let e = self.scalar(value, schema)?;
                    taken.push(name.name.clone());
                    out.push(Agg { expr: pick(e), name: name.name.clone(), finish: Finish::None });
                }
                _ => {
                    let e = self.scalar(a, schema)?;
                    let n = self.derived_name(a);
                    if !taken.contains(&n) {
                        taken.push(n.clone());
                        out.push(Agg { expr: pick(e), name: n, finish: Finish::None });
                    }
                }
            }
        }
        Ok(out)
    }

    /// The output names of an aggregate's columns: the ones given (`(a, b) = ...`), else its
    /// Kusto default names.
    fn aggregate_names(&self, item: &NamedExpr, parts: &[Agg]) -> PResult<Vec<String>> {
        match (item.names.as_slice(), parts.len()) {
            ([], _) => Ok(parts.iter().map(|p| p.name.clone()).collect()),
            (given, n) if given.len() == n => Ok(given.iter().map(|i| i.name.clone()).collect()),
            (given, n) => Err(self.err(
                ErrorKind::Semantic,
                format!("{} names for an aggregate with {n} result column(s)", given.len()),
                item.expr.span,
            )),
        }
    }

    /// The aggregate itself: each `__rawN` by the keys. A lone distinct count by keys
    /// (`dcount(x) by k`) is two aggregates: the distinct pairs of keys and `x`, then the count
    /// of `x` by the keys. Both run on DataFusion's vectorised group-by, which measured as fast
    /// as [`crate::udf::dcount`]'s keys there (BENCHMARKS.md); beside other aggregates, that is
    /// the faster one.
    fn aggregate_step(
        &self,
        plan: LogicalPlan,
        group: &[DfExpr],
        group_cols: &[DfExpr],
        raw: &[Agg],
    ) -> datafusion::error::Result<LogicalPlan> {
        if let [only] = raw
            && !group.is_empty()
            && matches!(only.finish, Finish::None)
            && let Some(x) = distinct_count_argument(&only.expr)
        {
            let mut pairs = group.to_vec();
            pairs.push(x.clone().alias("__distinct"));
            return LogicalPlanBuilder::from(plan)
                .aggregate(pairs, Vec::<DfExpr>::new())?
                .aggregate(group_cols.to_vec(), vec![agg::count(ident("__distinct")).alias("__raw0")])?
                .build();
        }
        let named: Vec<DfExpr> =
            raw.iter().enumerate().map(|(i, a)| a.expr.clone().alias(format!("__raw{i}"))).collect();
        LogicalPlanBuilder::from(plan).aggregate(group.to_vec(), named)?.build()
    }

    /// The projection after the aggregate: the keys, then each `__rawN` finished as Kusto gives
    /// it (`__aggN`: a list as a dynamic array, a percentile by nearest rank).
    fn finish_aggregates(
        &self,
        planned: LogicalPlan,
        group_cols: &[DfExpr],
        raw: &[Agg],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let mut finished = group_cols.to_vec();
        for (i, a) in raw.iter().enumerate() {
            let c = ident(format!("__raw{i}"));
            let done = match a.finish {
                Finish::None => c,
                Finish::List(max, dynamic) => crate::udf::list_to_dynamic(c, max, dynamic),
                Finish::Percentile(p) => crate::udf::nearest_rank(c, p),
                Finish::Percentiles(ref percentiles) => crate::udf::nearest_ranks(c, percentiles),
                Finish::Bag(max) => crate::udf::merge_bags(c, max),
            };
            finished.push(done.alias(format!("__agg{i}")));
        }
        LogicalPlanBuilder::from(planned).project(finished).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }
}

/// `x` when `e` is a plain [`crate::udf::dcount`] call: no filter, no order.
fn distinct_count_argument(e: &DfExpr) -> Option<&DfExpr> {
    let DfExpr::AggregateFunction(call) = e else { return None };
    let params = &call.params;
    let plain =
        call.func.inner().is::<crate::udf::DistinctCount>() && params.filter.is_none() && params.order_by.is_empty();
    match params.args.as_slice() {
        [x] if plain => Some(x),
        _ => None,
    }
}
