//! Sources: table names and `let` tables, scans with the query's time filters, `datatable`, `range`, and pipelines of operators.

use super::*;

impl Planner<'_> {
    pub(super) fn table(&self, name: &str, span: Span) -> PResult<LogicalPlan> {
        match self.lets.get(name) {
            Some(Binding::Tabular(p)) => return Ok(p.clone()),
            Some(Binding::Function(_)) => {
                let message = format!("'{name}' is a function: call it as {name}(...)");
                return Err(self.err(ErrorKind::Semantic, message, span));
            }
            _ => {}
        }
        let Some(provider) = self.catalog.table(name) else {
            let mut names = self.catalog.table_names();
            names.sort();
            return Err(self.err(
                ErrorKind::Semantic,
                format!("unknown table or tabular let '{name}'; tables are: {}", names.join(", ")),
                span,
            ));
        };
        self.scan(name, provider, span)
    }

    /// A scan of `provider`, strings made non-null, limited to the query's time range.
    pub(super) fn scan(&self, name: &str, provider: Arc<dyn TableProvider>, span: Span) -> PResult<LogicalPlan> {
        let schema = provider.schema();
        let plan = LogicalPlanBuilder::scan(name, provider_as_source(provider), None)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        // Kusto strings are never null: a missing string is "".
        let exprs: Vec<DfExpr> = schema
            .fields()
            .iter()
            .map(|field| {
                let c = ident(field.name());
                let is_string = matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View)
                    && field.metadata().get(KUSTO_TYPE_KEY).is_none_or(|t| t == "string");
                if is_string { f::coalesce(vec![c, lit("")]).alias(field.name()) } else { c }
            })
            .collect();
        let mut b = LogicalPlanBuilder::from(plan);
        if let Some((start, end)) = self.time_range
            && schema.field_with_name("TimeGenerated").is_ok()
        {
            b = b
                .filter(ident("TimeGenerated").gt_eq(ts_lit(start)).and(ident("TimeGenerated").lt(ts_lit(end))))
                .map_err(|e| self.df_err(e, span))?;
        }
        if let Some((start, end)) = self.ingestion_range
            && schema.field_with_name("_TimeReceived").is_ok()
        {
            b = b
                .filter(ident("_TimeReceived").gt_eq(ts_lit(start)).and(ident("_TimeReceived").lt(ts_lit(end))))
                .map_err(|e| self.df_err(e, span))?;
        }
        b.project(exprs).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    pub(super) fn tabular_expr(&mut self, e: &Expr) -> PResult<LogicalPlan> {
        match &e.kind {
            ExprKind::Pipeline(p) => self.pipeline(p),
            ExprKind::Name(n) => self.table(n, e.span),
            ExprKind::Call { name, args } if name.name == "materialize" && args.len() == 1 => {
                self.tabular_expr(&args[0])
            }
            ExprKind::Call { name, args } if matches!(self.lets.get(&name.name), Some(Binding::Function(_))) => {
                let function = self.user_function(name)?.expect("a let function");
                self.call_tabular_function(&function, None, args, e.span)
            }
            ExprKind::Call { name, args } if name.name == "_GetWatchlist" => {
                let [Expr { kind: ExprKind::Literal(Literal::String(w)), .. }] = args.as_slice() else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "_GetWatchlist() takes the watchlist name as a string literal",
                        e.span,
                    ));
                };
                match self.catalog.watchlist(w) {
                    Ok(Some(provider)) => self.scan(w, provider, e.span),
                    Ok(None) => Err(self.err(ErrorKind::Semantic, format!("unknown watchlist '{w}'"), e.span)),
                    Err(why) => Err(self.err(ErrorKind::Semantic, format!("watchlist '{w}': {why}"), e.span)),
                }
            }
            ExprKind::Call { name, .. } => Err(self.err(
                ErrorKind::Unsupported,
                format!("the tabular function '{}' is not supported", name.name),
                name.span,
            )),
            ExprKind::Member { target, .. } if matches!(&target.kind, ExprKind::Call { name, .. } if matches!(name.name.as_str(), "arg" | "adx" | "cluster" | "database" | "workspace" | "app" | "resource")) =>
            {
                let ExprKind::Call { name, .. } = &target.kind else { unreachable!() };
                Err(self.err(
                    ErrorKind::Unsupported,
                    format!(
                        "cross-service queries ({}(...).Table) are not supported: fimlake has one workspace",
                        name.name
                    ),
                    e.span,
                ))
            }
            _ => Err(self.err(
                ErrorKind::Semantic,
                "expected a tabular expression (a table, a let name or a query)",
                e.span,
            )),
        }
    }

    #[recursive::recursive]
    pub(super) fn pipeline(&mut self, p: &Pipeline) -> PResult<LogicalPlan> {
        let mut plan = match &p.source {
            Source::Expr(e) => self.tabular_expr(e)?,
            Source::Datatable { columns, values } => self.datatable(columns, values, p.span)?,
            Source::Print(items) => {
                let one = LogicalPlanBuilder::empty(true).build().map_err(|e| self.df_err(e, p.span))?;
                self.project(one, items, p.span)?
            }
            Source::Union(u) => self.union(None, u, p.span)?,
            Source::Range { column, from, to, step } => self.range(column, from, to, step, p.span)?,
        };
        for op in &p.ops {
            plan = self.op(plan, op)?;
        }
        Ok(plan)
    }

    /// A table of `schema` without rows.
    pub(super) fn no_rows(&self, name: &str, schema: Arc<Schema>, span: Span) -> PResult<LogicalPlan> {
        let empty = datafusion::datasource::empty::EmptyTable::new(schema);
        LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(empty)), None)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    pub(super) fn datatable(
        &mut self,
        columns: &[(Ident, String)],
        values: &[Expr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        if columns.is_empty() || !values.len().is_multiple_of(columns.len()) {
            return Err(self.err(
                ErrorKind::Semantic,
                format!(
                    "datatable has {} values for {} columns; the count must be a multiple",
                    values.len(),
                    columns.len()
                ),
                span,
            ));
        }
        let mut fields = Vec::new();
        for (name, ty) in columns {
            let dt = kusto_type(ty)
                .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{ty}'"), name.span))?;
            let mut field = Field::new(&name.name, dt, true);
            field.set_metadata(HashMap::from([(KUSTO_TYPE_KEY.to_string(), canonical_type(ty).to_string())]));
            fields.push(field);
        }
        let schema = Arc::new(Schema::new(fields));
        let empty = DFSchema::empty();
        let mut rows = Vec::new();
        for chunk in values.chunks(columns.len()) {
            let mut row = Vec::new();
            for (v, field) in chunk.iter().zip(schema.fields()) {
                row.push(cast(self.scalar(v, &empty)?, field.data_type().clone()));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return self.no_rows("datatable", schema, span);
        }
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| self.df_err(e, span))?;
        // VALUES names its columns column1, column2...: rename them.
        let names: Vec<DfExpr> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let md = datafusion::common::metadata::FieldMetadata::from(f.as_ref());
                ident(format!("column{}", i + 1)).alias_with_metadata(f.name(), Some(md))
            })
            .collect();
        LogicalPlanBuilder::values_with_schema(rows, &Arc::new(df_schema))
            .and_then(|b| b.project(names))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// `range x from a to b step s`: one column of longs or datetimes, `a` to `b` inclusive.
    pub(super) fn range(
        &mut self,
        column: &Ident,
        from: &Expr,
        to: &Expr,
        step: &Expr,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let empty = DFSchema::empty();
        let (a, b, s) = (self.scalar(from, &empty)?, self.scalar(to, &empty)?, self.scalar(step, &empty)?);
        let ty = self.type_of(&a, &empty, from.span)?;
        let out_ty = match &ty {
            DataType::Timestamp(..) => ty.clone(),
            DataType::Int64 | DataType::Int32 => DataType::Int64,
            other => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("range over {} values is not supported (long and datetime are)", kusto_name(other)),
                    from.span,
                ));
            }
        };
        let one = LogicalPlanBuilder::empty(true).build().map_err(|e| self.df_err(e, span))?;
        LogicalPlanBuilder::from(one)
            .project(vec![crate::udf::range_list(a, b, s).alias("__range")])
            .and_then(|b| b.unnest_column("__range"))
            .and_then(|b| b.project(vec![cast(ident("__range"), out_ty).alias(&column.name)]))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }
}
