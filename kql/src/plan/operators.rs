//! The tabular operators (`where`, `project`, `extend`, `sort`, `take`, `top`, `distinct`...) and the naming of their columns.

use super::*;

impl Planner<'_> {
    pub(super) fn op(&mut self, plan: LogicalPlan, op: &Op) -> PResult<LogicalPlan> {
        let span = op.span;
        let b = LogicalPlanBuilder::from(plan.clone());
        let schema = plan.schema().as_ref().clone();
        let built = match &op.kind {
            OpKind::Where(e) => b.filter(self.predicate(e, &schema)?),
            OpKind::Project(items) => return self.project(plan, items, span),
            OpKind::Extend(items) => return self.extend(plan, items, span),
            OpKind::ProjectAway(names) => b.project(self.project_away(names, &schema)?),
            OpKind::ProjectKeep(names) => b.project(self.project_keep(names, &schema)?),
            OpKind::ProjectRename(pairs) => b.project(self.project_rename(pairs, &schema)?),
            OpKind::ProjectReorder(cols) => b.project(self.project_reorder(cols, &schema)?),
            OpKind::Summarize { aggregates, by } => return self.summarize(plan, aggregates, by, span),
            OpKind::Sort(keys) => {
                let sorts = keys.iter().map(|k| self.sort_expr(k, &schema)).collect::<PResult<Vec<_>>>()?;
                b.sort(sorts)
            }
            OpKind::Take(n) => match plan {
                LogicalPlan::Sort(sort) if sort.fetch.is_none() => {
                    let (input, n) = (Arc::unwrap_or_clone(sort.input), self.count_arg(n)?);
                    return self.first_rows(input, sort.expr, n, span);
                }
                _ => b.limit(0, Some(self.count_arg(n)?)),
            },
            OpKind::Top { count, key } => {
                let s = self.sort_expr(key, &schema)?;
                let n = self.count_arg(count)?;
                return self.first_rows(plan, vec![s], n, span);
            }
            OpKind::Distinct(items) => {
                if matches!(items.as_slice(), [NamedExpr { expr: Expr { kind: ExprKind::Star, .. }, .. }]) {
                    b.distinct()
                } else {
                    let group = self.named_list(items, &schema, true)?;
                    b.aggregate(group, Vec::<DfExpr>::new())
                }
            }
            OpKind::Count => b.aggregate(Vec::<DfExpr>::new(), vec![agg::count(lit(1i64)).alias("Count")]),
            OpKind::Render(_) => return Ok(plan),
            OpKind::Serialize(items) if items.is_empty() => return Ok(plan),
            OpKind::Serialize(items) => return self.extend(plan, items, span),
            OpKind::As(name) => {
                self.lets.insert(name.name.clone(), Binding::Tabular(plan.clone()));
                return Ok(plan);
            }
            OpKind::Invoke { function, args } => {
                let Some(user_function) = self.user_function(function)? else {
                    let message = format!("invoke: '{}' is not a function defined by a let statement", function.name);
                    return Err(self.err(ErrorKind::Semantic, message, function.span));
                };
                return self.call_tabular_function(&user_function, Some(plan), args, span);
            }
            OpKind::Join(j) => return self.join(plan, j, span),
            OpKind::Lookup(j) => return self.lookup(plan, j, span),
            OpKind::GetSchema => return self.getschema(&plan, span),
            OpKind::Sample(n) => return self.sample(plan, n, span),
            OpKind::SampleDistinct { count, column } => return self.sample_distinct(plan, count, column, span),
            OpKind::Union(u) => return self.union(Some(plan), u, span),
            OpKind::Parse { expr, kind, pattern } => return self.parse_op(plan, expr, kind.as_deref(), pattern, span),
            OpKind::MvExpand(m) => return self.mv_expand(plan, m, span),
            OpKind::MvApply { expand, subquery } => return self.mv_apply(plan, expand, subquery, span),
            OpKind::TopNested(levels) => return self.top_nested(plan, levels, span),
            OpKind::MakeSeries(m) => return self.make_series(plan, m, span),
            OpKind::Evaluate { plugin, args, schema } => {
                return self.evaluate(plan, plugin, args, schema.as_deref(), span);
            }
        };
        built.and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// Appends the (aliased) columns; an existing column of one of their names is dropped (so it
    /// moves to the end, as `extend` does). The columns are computed over the input.
    pub(super) fn replace_or_append(
        &self,
        plan: LogicalPlan,
        columns: Vec<DfExpr>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let names: Vec<String> = columns
            .iter()
            .map(|column| match column {
                DfExpr::Alias(alias) => alias.name.clone(),
                other => other.schema_name().to_string(),
            })
            .collect();
        let schema = plan.schema().clone();
        let mut exprs: Vec<DfExpr> =
            schema.fields().iter().filter(|f| !names.contains(f.name())).map(|f| ident(f.name())).collect();
        exprs.extend(columns);
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|er| self.df_err(er, span))
    }

    pub(super) fn count_arg(&mut self, e: &Expr) -> PResult<usize> {
        match &e.kind {
            ExprKind::Literal(Literal::Long(n)) if *n >= 0 => Ok(*n as usize),
            ExprKind::Name(n) => match self.lets.get(n) {
                Some(Binding::Scalar(DfExpr::Literal(ScalarValue::Int64(Some(v)), _))) if *v >= 0 => Ok(*v as usize),
                _ => Err(self.err(ErrorKind::Semantic, "expected a non-negative whole number of rows", e.span)),
            },
            _ => Err(self.err(ErrorKind::Semantic, "expected a non-negative whole number of rows", e.span)),
        }
    }

    pub(super) fn sort_expr(&mut self, k: &SortKey, schema: &DFSchema) -> PResult<SortExpr> {
        let e = self.scalar(&k.expr, schema)?;
        let asc = k.direction == Some(SortDirection::Asc);
        Ok(e.sort(asc, k.nulls_first.unwrap_or(asc)))
    }

    pub(super) fn unknown_column(&self, name: &str, schema: &DFSchema, span: Span) -> KqlError {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| format!(" (column names are case-sensitive: did you mean '{n}'?)"))
            .unwrap_or_default();
        self.err(ErrorKind::Semantic, format!("unknown column '{name}'{hint}"), span)
    }

    /// The output name of an unnamed expression, as Kusto derives it.
    pub(super) fn derived_name(&mut self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Name(n) => n.clone(),
            ExprKind::Member { target, name } => format!("{}_{}", self.derived_name(target), name.name),
            _ => {
                self.auto_names += 1;
                format!("Column{}", self.auto_names)
            }
        }
    }

    /// `name = expr` items, unnamed ones named as Kusto does: group keys (`grouping`) keep the
    /// column of `bin(col, ...)`, other expressions get `Column1`, `Column2`...
    pub(super) fn named_list(
        &mut self,
        items: &[NamedExpr],
        schema: &DFSchema,
        grouping: bool,
    ) -> PResult<Vec<DfExpr>> {
        let mut out = Vec::new();
        for item in items {
            if let Some(columns) = self.several_columns(item, schema)? {
                out.extend(columns);
                continue;
            }
            // A user function's named arguments are its parameters, not a column name.
            let (inner_name, expr) = if self.is_user_function_call(&item.expr) {
                (None, std::borrow::Cow::Borrowed(&item.expr))
            } else {
                inner_assignment(&item.expr)
            };
            let e = self.scalar(&expr, schema)?;
            let name = match item.names.as_slice() {
                [one] => one.name.clone(),
                [] if inner_name.is_some() => inner_name.expect("checked").name.clone(),
                [] if grouping => self.group_name(&item.expr),
                [] => self.derived_name(&item.expr),
                _ => {
                    let message = "several names need several values: a tuple (x, y) or a function that returns several (series_stats, series_fit_line, series_fit_2lines)";
                    return Err(self.err(ErrorKind::Semantic, message, item.expr.span));
                }
            };
            out.push(e.alias(name));
        }
        Ok(out)
    }

    /// The columns of `(a, b) = (x, y)` and of a function that returns several values
    /// (`(a, b) = series_stats(s)`, or unnamed: `series_stats_s_min`, ...); `None` for an item
    /// of one value.
    fn several_columns(&mut self, item: &NamedExpr, schema: &DFSchema) -> PResult<Option<Vec<DfExpr>>> {
        match &item.expr.kind {
            ExprKind::List(values) if item.names.len() > 1 => {
                if values.len() != item.names.len() {
                    let message = format!("{} names for a tuple of {} values", item.names.len(), values.len());
                    return Err(self.err(ErrorKind::Semantic, message, item.expr.span));
                }
                let mut columns = Vec::new();
                for (name, value) in item.names.iter().zip(values) {
                    columns.push(self.scalar(value, schema)?.alias(&name.name));
                }
                Ok(Some(columns))
            }
            ExprKind::Call { name, args } if function::several_results(&name.name).is_some() => {
                let results = function::several_results(&name.name).expect("checked");
                if item.names.len() > results.len() {
                    let message =
                        format!("{} names for the {} values of {}()", item.names.len(), results.len(), name.name);
                    return Err(self.err(ErrorKind::Semantic, message, item.expr.span));
                }
                let bag_function = Ident { name: format!("{}_dynamic", name.name), span: name.span };
                let bag = self.call(&bag_function, args, schema, item.expr.span)?;
                let prefix = match args.first() {
                    Some(first) => format!("{}_{}", name.name, self.derived_name(first)),
                    None => name.name.clone(),
                };
                let names: Vec<String> = match item.names.as_slice() {
                    [] => results.iter().map(|(result, _)| format!("{prefix}_{result}")).collect(),
                    named => named.iter().map(|n| n.name.clone()).collect(),
                };
                let columns = names.into_iter().zip(results.iter()).map(|(column, (result, kusto))| {
                    let value = crate::udf::dyn_get(bag.clone(), lit(*result));
                    let value = if *kusto == fimlake_kusto::KustoType::Dynamic {
                        value
                    } else {
                        self.convert_dynamic(value, &kusto.arrow_type())
                    };
                    value.alias(column)
                });
                Ok(Some(columns.collect()))
            }
            _ => Ok(None),
        }
    }

    /// Group keys keep the column name: `bin(TimeGenerated, 1h)` is named `TimeGenerated`.
    pub(super) fn group_name(&mut self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Call { name, args }
                if matches!(name.name.as_str(), "bin" | "bin_at" | "bin_auto" | "floor")
                    && matches!(args.first(), Some(Expr { kind: ExprKind::Name(_), .. })) =>
            {
                self.derived_name(&args[0])
            }
            _ => self.derived_name(e),
        }
    }

    pub(super) fn project(&mut self, plan: LogicalPlan, items: &[NamedExpr], span: Span) -> PResult<LogicalPlan> {
        let schema = plan.schema().as_ref().clone();
        let exprs = self.named_list(items, &schema, false)?;
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `extend`: new columns are appended; a column that exists is replaced and moves to the end.
    pub(super) fn extend(&mut self, plan: LogicalPlan, items: &[NamedExpr], span: Span) -> PResult<LogicalPlan> {
        let mut plan = plan;
        for item in items {
            let schema = plan.schema().as_ref().clone();
            let columns = self.named_list(std::slice::from_ref(item), &schema, false)?;
            plan = self.replace_or_append(plan, columns, span)?;
        }
        Ok(plan)
    }

    /// `project-away`: every column but the named ones (wildcards allowed).
    fn project_away(&self, names: &[Ident], schema: &DFSchema) -> PResult<Vec<DfExpr>> {
        let keep: Vec<DfExpr> = schema
            .fields()
            .iter()
            .filter(|f| !names.iter().any(|n| wildcard_match(&n.name, f.name())))
            .map(|f| ident(f.name()))
            .collect();
        for n in names {
            if !n.name.contains('*') && schema.field_with_unqualified_name(&n.name).is_err() {
                return Err(self.unknown_column(&n.name, schema, n.span));
            }
        }
        Ok(keep)
    }

    /// `project-keep`: only the named columns (wildcards allowed), in table order.
    fn project_keep(&self, names: &[Ident], schema: &DFSchema) -> PResult<Vec<DfExpr>> {
        let keep: Vec<DfExpr> = schema
            .fields()
            .iter()
            .filter(|f| names.iter().any(|n| wildcard_match(&n.name, f.name())))
            .map(|f| ident(f.name()))
            .collect();
        Ok(keep)
    }

    /// `project-rename`: the columns, the named ones under their new names.
    fn project_rename(&self, pairs: &[(Ident, Ident)], schema: &DFSchema) -> PResult<Vec<DfExpr>> {
        for (_, old) in pairs {
            if schema.field_with_unqualified_name(&old.name).is_err() {
                return Err(self.unknown_column(&old.name, schema, old.span));
            }
        }
        let exprs: Vec<DfExpr> = schema
            .fields()
            .iter()
            .map(|f| match pairs.iter().find(|(_, old)| old.name == *f.name()) {
                Some((new, _)) => ident(f.name()).alias(&new.name),
                None => ident(f.name()),
            })
            .collect();
        Ok(exprs)
    }

    /// `project-reorder`: the named columns first, in the given order, then the rest.
    fn project_reorder(&self, cols: &[(Ident, Option<SortDirection>)], schema: &DFSchema) -> PResult<Vec<DfExpr>> {
        let mut first: Vec<String> = Vec::new();
        for (n, _) in cols {
            for f in schema.fields() {
                if wildcard_match(&n.name, f.name()) && !first.contains(f.name()) {
                    first.push(f.name().clone());
                }
            }
        }
        let rest = schema.fields().iter().map(|f| f.name().clone()).filter(|n| !first.contains(n));
        let order: Vec<DfExpr> = first.iter().cloned().chain(rest).map(ident).collect();
        Ok(order)
    }
}

impl Planner<'_> {
    fn is_user_function_call(&self, e: &Expr) -> bool {
        matches!(&e.kind, ExprKind::Call { name, .. } if matches!(self.lets.get(&name.name), Some(Binding::Function(_))))
    }
}

/// `round(rate = x * 100, 2)`: an assignment inside a call's argument names the column (as in
/// Kusto); the call with the assigned value in its place.
fn inner_assignment(e: &Expr) -> (Option<&Ident>, std::borrow::Cow<'_, Expr>) {
    let ExprKind::Call { name, args } = &e.kind else { return (None, std::borrow::Cow::Borrowed(e)) };
    let Some(assigned) = args.iter().find_map(|arg| match &arg.kind {
        ExprKind::NamedArg { name, .. } => Some(name),
        _ => None,
    }) else {
        return (None, std::borrow::Cow::Borrowed(e));
    };
    let args = args
        .iter()
        .map(|arg| match &arg.kind {
            ExprKind::NamedArg { value, .. } => value.as_ref().clone(),
            _ => arg.clone(),
        })
        .collect();
    let call = Expr { kind: ExprKind::Call { name: name.clone(), args }, span: e.span };
    (Some(assigned), std::borrow::Cow::Owned(call))
}
