//! KQL syntax trees to DataFusion logical plans, with Kusto's semantics (`kql-usage.md`,
//! "Semantics to get right"): case-insensitive `contains`/`=~`/`in~`, `has` as a term match,
//! descending default sort, Kusto's default aggregate names, strings that are never null.
//!
//! Plans are built with `LogicalPlanBuilder` and `Expr`, never via SQL text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    Expr as DfExpr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, SortExpr, case, cast, ident, lit, not, try_cast,
    when,
};

use crate::ast::*;
use crate::error::{ErrorKind, KqlError, Span};

/// The tables a query can name.
pub trait Catalog {
    fn table(&self, name: &str) -> Option<Arc<dyn TableProvider>>;
    fn table_names(&self) -> Vec<String>;
}

/// A [`Catalog`] over a list of named tables.
#[derive(Default)]
pub struct TableList(pub Vec<(String, Arc<dyn TableProvider>)>);

impl Catalog for TableList {
    fn table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    }
    fn table_names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Arrow field metadata key with a column's Kusto type (`string`, `dynamic`, `guid`...).
pub const KUSTO_TYPE_KEY: &str = "kusto.type";

/// Plans `query` (parsed from `source`, for error positions). `now_us` is the value of `now()`
/// for the whole query, microseconds since the epoch.
pub fn plan_query(query: &Query, source: &str, catalog: &dyn Catalog, now_us: i64) -> Result<LogicalPlan, KqlError> {
    plan_query_with(query, source, catalog, &PlanOptions { now_us, time_range: None })
}

/// How a query is planned.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// The value of `now()` for the whole query, microseconds since the epoch.
    pub now_us: i64,
    /// `[start, end)` in microseconds: every table is filtered to `TimeGenerated` in it, as the
    /// `timespan` of the Log Analytics Query API does (in addition to the query's own filters).
    pub time_range: Option<(i64, i64)>,
}

pub fn plan_query_with(
    query: &Query,
    source: &str,
    catalog: &dyn Catalog,
    options: &PlanOptions,
) -> Result<LogicalPlan, KqlError> {
    let mut p = Planner {
        source,
        catalog,
        now_us: options.now_us,
        time_range: options.time_range,
        lets: HashMap::new(),
        auto_names: 0,
    };
    for l in &query.lets {
        p.bind_let(l)?;
    }
    p.pipeline(&query.body)
}

#[derive(Clone)]
enum Binding {
    Scalar(DfExpr),
    Tabular(LogicalPlan),
    Dynamic(serde_json::Value),
}

struct Planner<'a> {
    source: &'a str,
    catalog: &'a dyn Catalog,
    now_us: i64,
    time_range: Option<(i64, i64)>,
    lets: HashMap<String, Binding>,
    auto_names: usize,
}

type PResult<T> = Result<T, KqlError>;

const DAY_NS: i64 = 86_400_000_000_000;

fn ts_lit(us: i64) -> DfExpr {
    lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())))
}

fn dur_lit(ns: i64) -> DfExpr {
    lit(ScalarValue::DurationNanosecond(Some(ns)))
}

impl<'a> Planner<'a> {
    fn err(&self, kind: ErrorKind, msg: impl Into<String>, span: Span) -> KqlError {
        KqlError::new(kind, msg, span, self.source)
    }

    fn df_err(&self, e: impl std::fmt::Display, span: Span) -> KqlError {
        self.err(ErrorKind::Semantic, e.to_string(), span)
    }

    fn bind_let(&mut self, l: &Let) -> PResult<()> {
        let binding = match &l.value {
            LetValue::Function { .. } => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    "user-defined functions (let f = (...) {...}) are not supported",
                    l.span,
                ));
            }
            LetValue::Expr(e) => match &e.kind {
                ExprKind::Pipeline(p) => Binding::Tabular(self.pipeline(p)?),
                ExprKind::Name(n) if self.is_tabular_name(n) => Binding::Tabular(self.table(n, e.span)?),
                ExprKind::Call { name, args } if name.name == "materialize" && args.len() == 1 => {
                    Binding::Tabular(self.tabular_expr(&args[0])?)
                }
                ExprKind::Literal(Literal::Dynamic(v)) => Binding::Dynamic(v.clone()),
                _ => Binding::Scalar(self.scalar(e, &DFSchema::empty())?),
            },
        };
        self.lets.insert(l.name.name.clone(), binding);
        Ok(())
    }

    fn is_tabular_name(&self, n: &str) -> bool {
        matches!(self.lets.get(n), Some(Binding::Tabular(_))) || self.catalog.table(n).is_some()
    }

    fn table(&self, name: &str, span: Span) -> PResult<LogicalPlan> {
        if let Some(Binding::Tabular(p)) = self.lets.get(name) {
            return Ok(p.clone());
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
                let is_string = field.data_type() == &DataType::Utf8
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
        b.project(exprs).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    fn tabular_expr(&mut self, e: &Expr) -> PResult<LogicalPlan> {
        match &e.kind {
            ExprKind::Pipeline(p) => self.pipeline(p),
            ExprKind::Name(n) => self.table(n, e.span),
            ExprKind::Call { name, args } if name.name == "materialize" && args.len() == 1 => {
                self.tabular_expr(&args[0])
            }
            ExprKind::Call { name, .. } => Err(self.err(
                ErrorKind::Unsupported,
                format!("the tabular function '{}' is not supported", name.name),
                name.span,
            )),
            _ => Err(self.err(
                ErrorKind::Semantic,
                "expected a tabular expression (a table, a let name or a query)",
                e.span,
            )),
        }
    }

    fn pipeline(&mut self, p: &Pipeline) -> PResult<LogicalPlan> {
        let mut plan = match &p.source {
            Source::Expr(e) => self.tabular_expr(e)?,
            Source::Datatable { columns, values } => self.datatable(columns, values, p.span)?,
            Source::Print(items) => {
                let one = LogicalPlanBuilder::empty(true).build().map_err(|e| self.df_err(e, p.span))?;
                self.project(one, items, p.span)?
            }
            Source::Union(u) => self.union(None, u, p.span)?,
            Source::Range { .. } => {
                return Err(self.err(ErrorKind::Unsupported, "this source is not supported yet", p.span));
            }
        };
        for op in &p.ops {
            plan = self.op(plan, op)?;
        }
        Ok(plan)
    }

    fn datatable(&mut self, columns: &[(Ident, String)], values: &[Expr], span: Span) -> PResult<LogicalPlan> {
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
            let b = LogicalPlanBuilder::empty(false);
            return b.build().map_err(|e| self.df_err(e, span));
        }
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| self.df_err(e, span))?;
        // VALUES names its columns column1, column2...: rename them.
        let names: Vec<DfExpr> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| ident(format!("column{}", i + 1)).alias(f.name()))
            .collect();
        LogicalPlanBuilder::values_with_schema(rows, &Arc::new(df_schema))
            .and_then(|b| b.project(names))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    fn op(&mut self, plan: LogicalPlan, op: &Op) -> PResult<LogicalPlan> {
        let span = op.span;
        let b = LogicalPlanBuilder::from(plan.clone());
        let schema = plan.schema().as_ref().clone();
        let built = match &op.kind {
            OpKind::Where(e) => b.filter(self.predicate(e, &schema)?),
            OpKind::Project(items) => return self.project(plan, items, span),
            OpKind::Extend(items) => return self.extend(plan, items, span),
            OpKind::ProjectAway(names) => {
                let keep: Vec<DfExpr> = schema
                    .fields()
                    .iter()
                    .filter(|f| !names.iter().any(|n| wildcard_match(&n.name, f.name())))
                    .map(|f| ident(f.name()))
                    .collect();
                for n in names {
                    if !n.name.contains('*') && schema.field_with_unqualified_name(&n.name).is_err() {
                        return Err(self.unknown_column(&n.name, &schema, n.span));
                    }
                }
                b.project(keep)
            }
            OpKind::ProjectKeep(names) => {
                let keep: Vec<DfExpr> = schema
                    .fields()
                    .iter()
                    .filter(|f| names.iter().any(|n| wildcard_match(&n.name, f.name())))
                    .map(|f| ident(f.name()))
                    .collect();
                b.project(keep)
            }
            OpKind::ProjectRename(pairs) => {
                for (_, old) in pairs {
                    if schema.field_with_unqualified_name(&old.name).is_err() {
                        return Err(self.unknown_column(&old.name, &schema, old.span));
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
                b.project(exprs)
            }
            OpKind::ProjectReorder(cols) => {
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
                b.project(order)
            }
            OpKind::Summarize { aggregates, by } => return self.summarize(plan, aggregates, by, span),
            OpKind::Sort(keys) => {
                let sorts = keys.iter().map(|k| self.sort_expr(k, &schema)).collect::<PResult<Vec<_>>>()?;
                b.sort(sorts)
            }
            OpKind::Take(n) => b.limit(0, Some(self.count_arg(n)?)),
            OpKind::Top { count, key } => {
                let s = self.sort_expr(key, &schema)?;
                let n = self.count_arg(count)?;
                b.sort(vec![s]).and_then(|b| b.limit(0, Some(n)))
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
            OpKind::Join(j) => return self.join(plan, j, span),
            OpKind::Union(u) => return self.union(Some(plan), u, span),
            OpKind::Parse { .. } => {
                return Err(self.err(ErrorKind::Unsupported, "the 'parse' operator is not supported yet", span));
            }
            OpKind::MvExpand { .. } => {
                return Err(self.err(ErrorKind::Unsupported, "the 'mv-expand' operator is not supported yet", span));
            }
        };
        built.and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    fn join(&mut self, left: LogicalPlan, j: &Join, span: Span) -> PResult<LogicalPlan> {
        use datafusion::common::{Column, JoinType};
        let right = self.pipeline(&j.right)?;
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
        let out: Vec<DfExpr> = joined
            .schema()
            .iter()
            .map(|(q, f)| DfExpr::Column(Column::new(q.cloned(), f.name())).alias(f.name()))
            .collect();
        LogicalPlanBuilder::from(joined).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `union`: all columns of all inputs by name (Kusto's default `kind=outer`), missing ones
    /// null; `withsource=Col` names each row's table; `isfuzzy=true` skips missing tables.
    fn union(&mut self, first: Option<LogicalPlan>, u: &Union, span: Span) -> PResult<LogicalPlan> {
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
                        Err(e)
                            if u.is_fuzzy
                                && e.kind == ErrorKind::Semantic
                                && e.message.starts_with("unknown table") => {}
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

    fn count_arg(&mut self, e: &Expr) -> PResult<usize> {
        match &e.kind {
            ExprKind::Literal(Literal::Long(n)) if *n >= 0 => Ok(*n as usize),
            ExprKind::Name(n) => match self.lets.get(n) {
                Some(Binding::Scalar(DfExpr::Literal(ScalarValue::Int64(Some(v)), _))) if *v >= 0 => Ok(*v as usize),
                _ => Err(self.err(ErrorKind::Semantic, "expected a non-negative whole number of rows", e.span)),
            },
            _ => Err(self.err(ErrorKind::Semantic, "expected a non-negative whole number of rows", e.span)),
        }
    }

    fn sort_expr(&mut self, k: &SortKey, schema: &DFSchema) -> PResult<SortExpr> {
        let e = self.scalar(&k.expr, schema)?;
        let asc = k.direction == Some(SortDirection::Asc);
        Ok(e.sort(asc, k.nulls_first.unwrap_or(asc)))
    }

    fn unknown_column(&self, name: &str, schema: &DFSchema, span: Span) -> KqlError {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| format!(" (column names are case-sensitive: did you mean '{n}'?)"))
            .unwrap_or_default();
        self.err(ErrorKind::Semantic, format!("unknown column '{name}'{hint}"), span)
    }

    /// The output name of an unnamed expression, as Kusto derives it.
    fn derived_name(&mut self, e: &Expr) -> String {
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
    fn named_list(&mut self, items: &[NamedExpr], schema: &DFSchema, grouping: bool) -> PResult<Vec<DfExpr>> {
        items
            .iter()
            .map(|i| {
                let e = self.scalar(&i.expr, schema)?;
                let name = match i.names.as_slice() {
                    [one] => one.name.clone(),
                    [] if grouping => self.group_name(&i.expr),
                    [] => self.derived_name(&i.expr),
                    _ => {
                        return Err(self.err(
                            ErrorKind::Unsupported,
                            "multi-column assignment is not supported",
                            i.expr.span,
                        ));
                    }
                };
                Ok(e.alias(name))
            })
            .collect()
    }

    /// Group keys keep the column name: `bin(TimeGenerated, 1h)` is named `TimeGenerated`.
    fn group_name(&mut self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Call { name, args }
                if matches!(name.name.as_str(), "bin" | "bin_at" | "floor")
                    && matches!(args.first(), Some(Expr { kind: ExprKind::Name(_), .. })) =>
            {
                self.derived_name(&args[0])
            }
            _ => self.derived_name(e),
        }
    }

    fn project(&mut self, plan: LogicalPlan, items: &[NamedExpr], span: Span) -> PResult<LogicalPlan> {
        let schema = plan.schema().as_ref().clone();
        let exprs = self.named_list(items, &schema, false)?;
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `extend`: new columns are appended; a column that exists is replaced and moves to the end.
    fn extend(&mut self, plan: LogicalPlan, items: &[NamedExpr], span: Span) -> PResult<LogicalPlan> {
        let mut plan = plan;
        for item in items {
            let schema = plan.schema().as_ref().clone();
            let new = self.named_list(std::slice::from_ref(item), &schema, false)?.remove(0);
            let name = new.schema_name().to_string();
            let name = match &new {
                DfExpr::Alias(a) => a.name.clone(),
                _ => name,
            };
            let mut exprs: Vec<DfExpr> =
                schema.fields().iter().filter(|f| *f.name() != name).map(|f| ident(f.name())).collect();
            exprs.push(new);
            plan = LogicalPlanBuilder::from(plan)
                .project(exprs)
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?;
        }
        Ok(plan)
    }

    fn summarize(
        &mut self,
        plan: LogicalPlan,
        aggregates: &[NamedExpr],
        by: &[NamedExpr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let is_arg = |a: &NamedExpr| matches!(&a.expr.kind, ExprKind::Call { name, .. } if name.name == "arg_max" || name.name == "arg_min");
        if let Some(first) = aggregates.iter().find(|a| is_arg(a)) {
            if aggregates.len() > 1 {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    "arg_max/arg_min together with other aggregates in one summarize is not supported yet",
                    first.expr.span,
                ));
            }
            return self.arg_extreme(plan, first, by, span);
        }
        let schema = plan.schema().as_ref().clone();
        let group = self.named_list(by, &schema, true)?;
        let global = by.is_empty();
        let mut aggs = Vec::new();
        for a in aggregates {
            let (expr, default_name) = self.aggregate(&a.expr, &schema, global)?;
            let name = match a.names.as_slice() {
                [one] => one.name.clone(),
                [] => default_name,
                _ => {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "multi-column assignment is not supported",
                        a.expr.span,
                    ));
                }
            };
            aggs.push((expr, name));
        }
        // Aggregate under internal names, then name the outputs (names may repeat a key's).
        let internal: Vec<DfExpr> =
            aggs.iter().enumerate().map(|(i, (e, _))| e.clone().alias(format!("__agg{i}"))).collect();
        let planned = LogicalPlanBuilder::from(plan)
            .aggregate(group.clone(), internal)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let mut out: Vec<DfExpr> = group
            .iter()
            .map(|g| match g {
                DfExpr::Alias(a) => ident(a.name.clone()),
                other => ident(other.schema_name().to_string()),
            })
            .collect();
        for (i, (_, name)) in aggs.iter().enumerate() {
            let c = ident(format!("__agg{i}"));
            out.push(c.alias(name));
        }
        LogicalPlanBuilder::from(planned).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `summarize arg_max(Target, Col1, ... | *) by Keys`: for each group, the row where
    /// `Target` is largest (smallest for arg_min); outputs the keys, the target and the chosen
    /// columns of that row (`*`: all the others, in input order).
    fn arg_extreme(
        &mut self,
        plan: LogicalPlan,
        item: &NamedExpr,
        by: &[NamedExpr],
        span: Span,
    ) -> PResult<LogicalPlan> {
        use datafusion::logical_expr::ExprFunctionExt;
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
        let schema = plan.schema().as_ref().clone();
        let max = name.name == "arg_max";
        // `Latest = arg_max(t, *)` and `arg_max(Latest = t, *)` both name the target column.
        let (target_name, target_ast) = match &args[0].kind {
            ExprKind::NamedArg { name, value } => (name.name.clone(), value.as_ref()),
            _ => match item.names.first() {
                Some(n) => (n.name.clone(), &args[0]),
                None => (self.derived_name(&args[0]), &args[0]),
            },
        };
        let target = self.scalar(target_ast, &schema)?;
        let keys = self.named_list(by, &schema, true)?;
        let key_exprs: Vec<DfExpr> = keys.iter().map(|k| k.clone().unalias()).collect();
        let rn = datafusion::functions_window::expr_fn::row_number()
            .partition_by(key_exprs)
            .order_by(vec![target.clone().sort(!max, false)])
            .build()
            .map_err(|e| self.df_err(e, span))?
            .alias("__rn");
        let ranked = LogicalPlanBuilder::from(plan)
            .window(vec![rn])
            .and_then(|b| b.filter(ident("__rn").eq(lit(1u64))))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let mut out: Vec<DfExpr> = keys.clone();
        let mut names: Vec<String> = keys
            .iter()
            .map(|k| match k {
                DfExpr::Alias(a) => a.name.clone(),
                other => other.schema_name().to_string(),
            })
            .collect();
        out.push(target.alias(&target_name));
        names.push(target_name);
        for a in &args[1..] {
            match &a.kind {
                ExprKind::Star => {
                    for f in schema.fields() {
                        if !names.contains(f.name()) {
                            names.push(f.name().clone());
                            out.push(ident(f.name()));
                        }
                    }
                }
                ExprKind::NamedArg { name, value } => {
                    let e = self.scalar(value, &schema)?;
                    names.push(name.name.clone());
                    out.push(e.alias(&name.name));
                }
                _ => {
                    let e = self.scalar(a, &schema)?;
                    let n = self.derived_name(a);
                    if !names.contains(&n) {
                        names.push(n.clone());
                        out.push(e.alias(n));
                    }
                }
            }
        }
        LogicalPlanBuilder::from(ranked).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// An aggregate call and its Kusto default name (`count_`, `max_TimeGenerated`, ...).
    fn aggregate(&mut self, e: &Expr, schema: &DFSchema, global: bool) -> PResult<(DfExpr, String)> {
        let ExprKind::Call { name, args } = &e.kind else {
            return Err(self.err(
                ErrorKind::Semantic,
                "expected an aggregate function such as count() or max(x)",
                e.span,
            ));
        };
        let fname = name.name.as_str();
        let arg_name = |p: &mut Self, i: usize| args.get(i).map(|a| p.derived_name(a)).unwrap_or_default();
        let arity = |p: &Self, n: usize| -> PResult<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(p.err(ErrorKind::Semantic, format!("{fname}() takes {n} argument(s), got {}", args.len()), e.span))
            }
        };
        let a0 = |p: &mut Self| p.scalar(&args[0], schema);
        Ok(match fname {
            "count" => {
                if args.len() > 1 {
                    return Err(self.err(ErrorKind::Semantic, "count() takes no argument", e.span));
                }
                let x = match args.first() {
                    None | Some(Expr { kind: ExprKind::Star, .. }) => lit(1i64),
                    Some(_) => a0(self)?,
                };
                (agg::count(x), "count_".to_string())
            }
            "countif" => {
                arity(self, 1)?;
                let p = self.predicate(&args[0], schema)?;
                (
                    agg::sum(case(p).when(lit(true), lit(1i64)).otherwise(lit(0i64)).unwrap_or_else(|_| lit(0i64))),
                    "countif_".into(),
                )
            }
            "dcount" => {
                let x = a0(self)?;
                (agg::count_distinct(x), format!("dcount_{}", arg_name(self, 0)))
            }
            "dcountif" => {
                arity(self, 2)?;
                let x = a0(self)?;
                let x = self.only_if(x, &args[1], schema)?;
                (agg::count_distinct(x), format!("dcountif_{}", arg_name(self, 0)))
            }
            "sum" | "sumif" => {
                let mut x = a0(self)?;
                if fname == "sumif" {
                    arity(self, 2)?;
                    x = self.only_if(x, &args[1], schema)?;
                }
                let s = agg::sum(x);
                // Kusto: sum over no rows is 0, not null.
                let s = if global { f::coalesce(vec![s, lit(0i64)]) } else { s };
                (s, format!("{fname}_{}", arg_name(self, 0)))
            }
            "avg" | "avgif" => {
                let mut x = a0(self)?;
                if fname == "avgif" {
                    arity(self, 2)?;
                    x = self.only_if(x, &args[1], schema)?;
                }
                (agg::avg(cast(x, DataType::Float64)), format!("{fname}_{}", arg_name(self, 0)))
            }
            "min" | "max" => {
                arity(self, 1)?;
                let x = a0(self)?;
                let a = if fname == "min" { agg::min(x) } else { agg::max(x) };
                (a, format!("{fname}_{}", arg_name(self, 0)))
            }
            "any" | "take_any" => {
                arity(self, 1)?;
                let x = a0(self)?;
                (agg::first_value(x, vec![]), format!("{fname}_{}", arg_name(self, 0)))
            }
            "stdev" | "variance" => {
                arity(self, 1)?;
                let x = cast(a0(self)?, DataType::Float64);
                let a = if fname == "stdev" { agg::stddev(x) } else { agg::var_sample(x) };
                (a, format!("{fname}_{}", arg_name(self, 0)))
            }
            "make_set" | "make_list" | "makeset" | "makelist" | "make_set_if" | "make_list_if" | "percentile"
            | "percentiles" => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("the aggregate '{fname}' is not supported yet"),
                    name.span,
                ));
            }
            other => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("the aggregate function '{other}' is not supported"),
                    name.span,
                ));
            }
        })
    }

    /// `x` where `predicate` holds, null elsewhere: the argument of `sumif`, `avgif`, `dcountif`.
    fn only_if(&mut self, x: DfExpr, predicate: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        let p = self.predicate(predicate, schema)?;
        when(p, x).end().map_err(|er| self.df_err(er, predicate.span))
    }

    /// A `where` predicate: Kusto treats null as false, which DataFusion's filter already does.
    fn predicate(&mut self, e: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        self.scalar(e, schema)
    }

    fn type_of(&self, e: &DfExpr, schema: &DFSchema, span: Span) -> PResult<DataType> {
        e.get_type(schema).map_err(|er| self.df_err(er, span))
    }

    fn is_string(&self, e: &DfExpr, schema: &DFSchema, span: Span) -> PResult<bool> {
        Ok(matches!(self.type_of(e, schema, span)?, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
    }

    /// A scalar expression over `schema`.
    fn scalar(&mut self, e: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Literal(l) => literal(l),
            ExprKind::Name(n) => {
                if schema.field_with_unqualified_name(n).is_ok() {
                    ident(n)
                } else {
                    match self.lets.get(n) {
                        Some(Binding::Scalar(v)) => v.clone(),
                        Some(Binding::Dynamic(v)) => lit(v.to_string()),
                        Some(Binding::Tabular(_)) => {
                            return Err(self.err(
                                ErrorKind::Semantic,
                                format!("'{n}' is tabular; a scalar is expected here"),
                                span,
                            ));
                        }
                        None => return Err(self.unknown_column(n, schema, span)),
                    }
                }
            }
            ExprKind::Star => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    "'*' is only allowed as an argument of count() or arg_max()",
                    span,
                ));
            }
            ExprKind::Negate(x) => DfExpr::Negative(Box::new(self.scalar(x, schema)?)),
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, schema, span)?,
            ExprKind::In { expr, list, negated, case_insensitive } => {
                let tabular = |p: &Self, e: &Expr| match &e.kind {
                    ExprKind::Pipeline(_) => true,
                    ExprKind::Name(n) => matches!(p.lets.get(n), Some(Binding::Tabular(_))),
                    _ => false,
                };
                if let [only] = list.as_slice()
                    && tabular(self, only)
                {
                    // `x in (T | project c)`: the first column of the tabular expression.
                    let sub = self.tabular_expr(only)?;
                    let first = sub.schema().field(0).name().clone();
                    let sub = LogicalPlanBuilder::from(sub)
                        .project(vec![ident(first).alias("__in_value")])
                        .and_then(|b| b.alias("__in"))
                        .and_then(|b| b.build())
                        .map_err(|e| self.df_err(e, only.span))?;
                    let x = self.scalar(expr, schema)?;
                    let (x, sub) = if *case_insensitive {
                        let lowered = LogicalPlanBuilder::from(sub.clone())
                            .project(vec![f::lower(ident("__in_value")).alias("__in_lower")])
                            .and_then(|b| b.alias("__in_ci"))
                            .and_then(|b| b.build())
                            .map_err(|e| self.df_err(e, only.span))?;
                        (f::lower(x), lowered)
                    } else {
                        (x, sub)
                    };
                    let e = if *negated {
                        datafusion::logical_expr::not_in_subquery(x, Arc::new(sub))
                    } else {
                        datafusion::logical_expr::in_subquery(x, Arc::new(sub))
                    };
                    return Ok(e);
                }
                let mut x = self.scalar(expr, schema)?;
                let mut items = Vec::new();
                for item in list {
                    match &item.kind {
                        ExprKind::Name(n) if matches!(self.lets.get(n), Some(Binding::Dynamic(_))) => {
                            let Some(Binding::Dynamic(v)) = self.lets.get(n) else { unreachable!() };
                            items.extend(dynamic_elements(v));
                        }
                        ExprKind::Literal(Literal::Dynamic(v)) => items.extend(dynamic_elements(v)),
                        ExprKind::Pipeline(_) => {
                            return Err(self.err(
                                ErrorKind::Unsupported,
                                "'in' with a tabular expression is not supported yet",
                                item.span,
                            ));
                        }
                        ExprKind::Name(n) if matches!(self.lets.get(n), Some(Binding::Tabular(_))) => {
                            return Err(self.err(
                                ErrorKind::Unsupported,
                                "'in' with a tabular expression is not supported yet",
                                item.span,
                            ));
                        }
                        _ => items.push(self.scalar(item, schema)?),
                    }
                }
                if *case_insensitive {
                    x = f::lower(x);
                    items = items.into_iter().map(f::lower).collect();
                }
                let inlist = x.in_list(items, false);
                if *negated { not(inlist.clone()).or(inlist.is_null()) } else { inlist }
            }
            ExprKind::Between { expr, low, high, negated } => {
                let x = self.scalar(expr, schema)?;
                let lo = self.scalar(low, schema)?;
                let mut hi = self.scalar(high, schema)?;
                let lo_ty = self.type_of(&lo, &DFSchema::empty(), low.span).ok();
                let hi_ty = self.type_of(&hi, &DFSchema::empty(), high.span).ok();
                if matches!(lo_ty, Some(DataType::Timestamp(..))) && matches!(hi_ty, Some(DataType::Duration(_))) {
                    hi = lo.clone() + hi;
                }
                let b = x.clone().gt_eq(lo).and(x.clone().lt_eq(hi));
                // Like every negated operator in Kusto, !between is true for a null operand.
                if *negated { not(b).or(x.is_null()) } else { b }
            }
            ExprKind::Call { name, args } => self.call(name, args, schema, span)?,
            ExprKind::Pipeline(_) => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    "a tabular expression as a scalar (toscalar) is not supported yet",
                    span,
                ));
            }
            ExprKind::Member { .. } | ExprKind::Index { .. } => {
                return Err(self.err(ErrorKind::Unsupported, "dynamic property access is not supported yet", span));
            }
            ExprKind::List(_) | ExprKind::NamedArg { .. } => {
                return Err(self.err(ErrorKind::Semantic, "a list or named argument is not allowed here", span));
            }
        })
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        if let BinaryOp::Str(s) = op {
            return self.string_op(s, left, right, schema, span);
        }
        let l = self.scalar(left, schema)?;
        let r = self.scalar(right, schema)?;
        if matches!(op, BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq)
        {
            let (lt, rt) = (self.type_of(&l, schema, left.span)?, self.type_of(&r, schema, right.span)?);
            if datafusion::logical_expr::type_coercion::binary::comparison_coercion(&lt, &rt).is_none() {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("cannot compare {} with {}", kusto_name(&lt), kusto_name(&rt)),
                    span,
                ));
            }
        }
        Ok(match op {
            BinaryOp::Or => l.or(r),
            BinaryOp::And => l.and(r),
            BinaryOp::Eq => l.eq(r),
            // Kusto: null != x is true (a naive NOT(=) would drop the row).
            BinaryOp::NotEq => distinct_from(l, r),
            BinaryOp::EqTilde => f::lower(l).eq(f::lower(r)),
            BinaryOp::NotEqTilde => distinct_from(f::lower(l), f::lower(r)),
            BinaryOp::Lt => l.lt(r),
            BinaryOp::LtEq => l.lt_eq(r),
            BinaryOp::Gt => l.gt(r),
            BinaryOp::GtEq => l.gt_eq(r),
            BinaryOp::Add => l + r,
            BinaryOp::Sub => l - r,
            BinaryOp::Mul => l * r,
            BinaryOp::Div => {
                let (lt, rt) = (self.type_of(&l, schema, left.span)?, self.type_of(&r, schema, right.span)?);
                match (lt, rt) {
                    // timespan / timespan is a real: 1d / 1h = 24.
                    (DataType::Duration(_), DataType::Duration(_)) => {
                        let ns = |e: DfExpr| {
                            cast(
                                cast(cast(e, DataType::Duration(TimeUnit::Nanosecond)), DataType::Int64),
                                DataType::Float64,
                            )
                        };
                        ns(l) / ns(r)
                    }
                    _ => l / r,
                }
            }
            // Kusto's modulo is never negative: 0 <= n % d < abs(d).
            BinaryOp::Mod => (l % r.clone() + f::abs(r.clone())) % f::abs(r),
            BinaryOp::Str(_) => unreachable!("handled above"),
        })
    }

    fn string_op(&mut self, s: StrOp, left: &Expr, right: &Expr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        let l = self.scalar(left, schema)?;
        let l = if self.is_string(&l, schema, left.span)? { l } else { cast(l, DataType::Utf8) };
        let positive = match s.name {
            "has_any" | "has_all" => {
                let ExprKind::List(items) = &right.kind else { unreachable!("the parser gives a list") };
                let mut terms = Vec::new();
                for i in items {
                    match &i.kind {
                        ExprKind::Literal(Literal::String(t)) => terms.push(t.clone()),
                        ExprKind::Name(n) if matches!(self.lets.get(n), Some(Binding::Dynamic(_))) => {
                            let Some(Binding::Dynamic(v)) = self.lets.get(n) else { unreachable!() };
                            for el in v.as_array().cloned().unwrap_or_default() {
                                terms.push(el.as_str().map(str::to_string).unwrap_or_else(|| el.to_string()));
                            }
                        }
                        _ => {
                            return Err(self.err(
                                ErrorKind::Unsupported,
                                format!("{} takes string literals", s.name),
                                i.span,
                            ));
                        }
                    }
                }
                if terms.is_empty() {
                    return Ok(lit(false));
                }
                let preds: Vec<DfExpr> = terms.iter().map(|t| term_regex(l.clone(), t, true, true, true)).collect();
                let join = |a: DfExpr, b: DfExpr| if s.name == "has_any" { a.or(b) } else { a.and(b) };
                preds.into_iter().reduce(join).expect("not empty")
            }
            name => {
                let r = self.scalar(right, schema)?;
                let literal = match &right.kind {
                    ExprKind::Literal(Literal::String(t)) => Some(t.clone()),
                    _ => None,
                };
                let cs = name.ends_with("_cs");
                let base = name.trim_end_matches("_cs");
                match (base, literal) {
                    ("matches regex", _) => f::regexp_like(l, r, None),
                    ("contains", Some(t)) => like(l, format!("%{}%", escape_like(&t)), cs),
                    ("startswith", Some(t)) => like(l, format!("{}%", escape_like(&t)), cs),
                    ("endswith", Some(t)) => like(l, format!("%{}", escape_like(&t)), cs),
                    ("contains", None) => {
                        let (l, r) = if cs { (l, r) } else { (f::lower(l), f::lower(r)) };
                        f::strpos(l, r).gt(lit(0i32))
                    }
                    ("startswith", None) => {
                        let (l, r) = if cs { (l, r) } else { (f::lower(l), f::lower(r)) };
                        f::starts_with(l, r)
                    }
                    ("endswith", None) => {
                        let (l, r) = if cs { (l, r) } else { (f::lower(l), f::lower(r)) };
                        f::ends_with(l, r)
                    }
                    ("has", Some(t)) => term_regex(l, &t, !cs, true, true),
                    ("hasprefix", Some(t)) => term_regex(l, &t, !cs, true, false),
                    ("hassuffix", Some(t)) => term_regex(l, &t, !cs, false, true),
                    (op, None) => {
                        return Err(self.err(
                            ErrorKind::Unsupported,
                            format!("'{op}' with a non-literal right side is not supported yet"),
                            right.span,
                        ));
                    }
                    (op, _) => return Err(self.err(ErrorKind::Unsupported, format!("'{op}' is not supported"), span)),
                }
            }
        };
        Ok(if s.negated { not(positive) } else { positive })
    }

    fn call(&mut self, name: &Ident, args: &[Expr], schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| -> PResult<()> {
            if (lo..=hi).contains(&args.len()) {
                Ok(())
            } else if lo == hi {
                Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} argument(s), got {}", args.len()), span))
            } else {
                Err(p.err(ErrorKind::Semantic, format!("{n}() takes {lo} to {hi} arguments, got {}", args.len()), span))
            }
        };
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(match n {
            "now" => {
                want(self, 0, 1)?;
                let now = ts_lit(self.now_us);
                if args.is_empty() { now } else { now + a(self, 0)? }
            }
            "ago" => {
                want(self, 1, 1)?;
                ts_lit(self.now_us) - a(self, 0)?
            }
            "bin" | "floor" => {
                want(self, 2, 2)?;
                let x = a(self, 0)?;
                let size = a(self, 1)?;
                match self.type_of(&x, schema, args[0].span)? {
                    DataType::Timestamp(..) => {
                        let ns = duration_ns(&size).ok_or_else(|| {
                            self.err(
                                ErrorKind::Semantic,
                                "bin() of a datetime takes a timespan literal as its size",
                                args[1].span,
                            )
                        })?;
                        // Kusto bins count from 0001-01-01; shift the epoch origin to match.
                        let origin_shift = (719_162i128 * DAY_NS as i128).rem_euclid(ns.max(1) as i128) as i64;
                        f::date_bin(interval(ns), x, ts_lit(-origin_shift / 1000))
                    }
                    _ => f::floor(cast(x, DataType::Float64) / cast(size.clone(), DataType::Float64)) * size,
                }
            }
            "bin_at" => {
                want(self, 3, 3)?;
                let x = a(self, 0)?;
                let size = a(self, 1)?;
                let fixed = a(self, 2)?;
                let ns = duration_ns(&size).ok_or_else(|| {
                    self.err(ErrorKind::Semantic, "bin_at() takes a timespan literal as its size", args[1].span)
                })?;
                f::date_bin(interval(ns), x, fixed)
            }
            "startofday" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("day"), a(self, 0)?)
            }
            "startofmonth" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("month"), a(self, 0)?)
            }
            "startofyear" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("year"), a(self, 0)?)
            }
            "startofweek" => {
                // Kusto weeks start on Sunday; date_trunc's on Monday.
                want(self, 1, 1)?;
                f::date_trunc(lit("week"), a(self, 0)? + dur_lit(DAY_NS)) - dur_lit(DAY_NS)
            }
            "endofday" => {
                want(self, 1, 1)?;
                f::date_trunc(lit("day"), a(self, 0)?) + dur_lit(DAY_NS - 1000)
            }
            "tolower" => {
                want(self, 1, 1)?;
                f::lower(a(self, 0)?)
            }
            "toupper" => {
                want(self, 1, 1)?;
                f::upper(a(self, 0)?)
            }
            "strlen" => {
                want(self, 1, 1)?;
                cast(f::character_length(a(self, 0)?), DataType::Int64)
            }
            "strcat" => {
                if args.is_empty() {
                    return Err(self.err(ErrorKind::Semantic, "strcat() takes 1 to 64 arguments", span));
                }
                let parts = (0..args.len())
                    .map(|i| a(self, i).map(|x| cast(x, DataType::Utf8)))
                    .collect::<PResult<Vec<_>>>()?;
                f::concat(parts)
            }
            "substring" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                // Kusto counts from 0, SQL from 1.
                let start = cast(a(self, 1)?, DataType::Int64) + lit(1i64);
                if args.len() == 3 {
                    f::substring(text, start, cast(a(self, 2)?, DataType::Int64))
                } else {
                    f::substr(text, start)
                }
            }
            "tostring" => {
                want(self, 1, 1)?;
                f::coalesce(vec![cast(a(self, 0)?, DataType::Utf8), lit("")])
            }
            "toint" => {
                want(self, 1, 1)?;
                try_cast(a(self, 0)?, DataType::Int32)
            }
            "tolong" => {
                want(self, 1, 1)?;
                try_cast(a(self, 0)?, DataType::Int64)
            }
            "toreal" | "todouble" => {
                want(self, 1, 1)?;
                try_cast(a(self, 0)?, DataType::Float64)
            }
            "tobool" | "toboolean" => {
                want(self, 1, 1)?;
                try_cast(a(self, 0)?, DataType::Boolean)
            }
            "todatetime" => {
                want(self, 1, 1)?;
                try_cast(a(self, 0)?, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
            }
            "iff" | "iif" => {
                want(self, 3, 3)?;
                let c = a(self, 0)?;
                let t = a(self, 1)?;
                let e = a(self, 2)?;
                when(c, t).otherwise(e).map_err(|er| self.df_err(er, span))?
            }
            "case" => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "case() takes pairs of predicate and value, then an else value",
                        span,
                    ));
                }
                let mut c = when(a(self, 0)?, a(self, 1)?);
                let mut i = 2;
                while i + 1 < args.len() {
                    c = c.when(a(self, i)?, a(self, i + 1)?);
                    i += 2;
                }
                c.otherwise(a(self, args.len() - 1)?).map_err(|er| self.df_err(er, span))?
            }
            "coalesce" => {
                if args.is_empty() {
                    return Err(self.err(ErrorKind::Semantic, "coalesce() takes at least one argument", span));
                }
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                if self.is_string(&xs[0], schema, args[0].span)? {
                    // For strings, the first non-empty value.
                    let mut c = when(xs[0].clone().not_eq(lit("")), xs[0].clone());
                    for x in &xs[1..] {
                        c = c.when(x.clone().not_eq(lit("")), x.clone());
                    }
                    c.otherwise(lit("")).map_err(|er| self.df_err(er, span))?
                } else {
                    f::coalesce(xs)
                }
            }
            "isempty" | "isnotempty" | "notempty" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                let empty = if self.is_string(&x, schema, args[0].span)? {
                    x.clone().is_null().or(x.eq(lit("")))
                } else {
                    x.is_null()
                };
                if n == "isempty" { empty } else { not(empty) }
            }
            "isnull" | "isnotnull" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                if n == "isnull" { x.is_null() } else { x.is_not_null() }
            }
            "not" => {
                want(self, 1, 1)?;
                not(a(self, 0)?)
            }
            "abs" => {
                want(self, 1, 1)?;
                f::abs(a(self, 0)?)
            }
            "round" => {
                want(self, 1, 2)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                if args.len() == 2 { f::round(vec![x, cast(a(self, 1)?, DataType::Int64)]) } else { f::round(vec![x]) }
            }
            "max_of" | "min_of" => {
                if args.len() < 2 {
                    return Err(self.err(ErrorKind::Semantic, format!("{n}() takes at least 2 arguments"), span));
                }
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                if n == "max_of" { f::greatest(xs) } else { f::least(xs) }
            }
            "datetime_diff" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_diff() takes the period as a string literal",
                        args[0].span,
                    ));
                };
                let x = a(self, 1)?;
                let y = a(self, 2)?;
                self.datetime_diff(unit, x, y, args[0].span)?
            }
            other => {
                return Err(self.err(
                    ErrorKind::Unsupported,
                    format!("the function '{other}' is not supported"),
                    name.span,
                ));
            }
        })
    }

    /// Calendar boundaries crossed between `y` and `x` (`x - y`) in `unit`.
    fn datetime_diff(&self, unit: &str, x: DfExpr, y: DfExpr, span: Span) -> PResult<DfExpr> {
        let part = |p: &str, e: DfExpr| cast(f::date_part(lit(p), e), DataType::Int64);
        let trunc_diff = |p: &str, size_ns: i64| {
            cast(
                cast(f::date_trunc(lit(p), x.clone()) - f::date_trunc(lit(p), y.clone()), DataType::Int64),
                DataType::Int64,
            ) / lit(size_ns / 1000)
        };
        Ok(match unit.to_ascii_lowercase().as_str() {
            "year" => part("year", x.clone()) - part("year", y.clone()),
            "quarter" => {
                (part("year", x.clone()) - part("year", y.clone())) * lit(4i64) + part("quarter", x.clone())
                    - part("quarter", y.clone())
            }
            "month" => {
                (part("year", x.clone()) - part("year", y.clone())) * lit(12i64) + part("month", x.clone())
                    - part("month", y.clone())
            }
            "week" => trunc_diff("week", 7 * DAY_NS),
            "day" => trunc_diff("day", DAY_NS),
            "hour" => trunc_diff("hour", 3_600_000_000_000),
            "minute" => trunc_diff("minute", 60_000_000_000),
            "second" => trunc_diff("second", 1_000_000_000),
            "millisecond" => trunc_diff("millisecond", 1_000_000),
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown datetime_diff period '{other}' (year, quarter, month, week, day, hour, minute, second, millisecond)"),
                    span,
                ));
            }
        })
    }
}

fn distinct_from(l: DfExpr, r: DfExpr) -> DfExpr {
    DfExpr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
        Box::new(l),
        datafusion::logical_expr::Operator::IsDistinctFrom,
        Box::new(r),
    ))
}

/// LIKE / ILIKE with a pattern built from an escaped literal.
fn like(l: DfExpr, pattern: String, case_sensitive: bool) -> DfExpr {
    if case_sensitive { l.like(lit(pattern)) } else { l.ilike(lit(pattern)) }
}

fn escape_like(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `has`: the term (a maximal run of letters and digits) appears whole.
fn term_regex(l: DfExpr, term: &str, case_insensitive: bool, start: bool, end: bool) -> DfExpr {
    let mut pattern = String::new();
    if case_insensitive {
        pattern.push_str("(?i)");
    }
    if start {
        pattern.push_str(r"(^|[^\p{L}\p{N}])");
    }
    pattern.push_str(&regex::escape(term));
    if end {
        pattern.push_str(r"([^\p{L}\p{N}]|$)");
    }
    f::regexp_like(l, lit(pattern), None)
}

fn interval(ns: i64) -> DfExpr {
    lit(ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano { months: 0, days: 0, nanoseconds: ns })))
}

fn duration_ns(e: &DfExpr) -> Option<i64> {
    match e {
        DfExpr::Literal(ScalarValue::DurationNanosecond(Some(ns)), _) => Some(*ns),
        _ => None,
    }
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(idx) = rest.find(p) else { return false };
            rest = &rest[idx + p.len()..];
        }
    }
    true
}

fn literal(l: &Literal) -> DfExpr {
    match l {
        Literal::Null => lit(ScalarValue::Null),
        Literal::Bool(b) => lit(*b),
        Literal::Long(n) => lit(*n),
        Literal::Real(n) => lit(*n),
        Literal::String(s) => lit(s.clone()),
        Literal::Timespan(ns) => dur_lit(*ns),
        Literal::DateTime(us) => ts_lit(*us),
        Literal::Dynamic(v) => lit(v.to_string()),
        Literal::TypedNull(t) => match kusto_type(t) {
            Some(dt) => lit(ScalarValue::try_from(&dt).unwrap_or(ScalarValue::Null)),
            None => lit(ScalarValue::Null),
        },
    }
}

/// The elements of a dynamic array (a scalar counts as one element), as literals.
fn dynamic_elements(v: &serde_json::Value) -> Vec<DfExpr> {
    match v.as_array() {
        Some(a) => a.iter().map(json_lit).collect(),
        None => vec![json_lit(v)],
    }
}

fn json_lit(v: &serde_json::Value) -> DfExpr {
    match v {
        serde_json::Value::String(s) => lit(s.clone()),
        serde_json::Value::Bool(b) => lit(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => lit(i),
            None => lit(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::Null => lit(ScalarValue::Null),
        other => lit(other.to_string()),
    }
}

/// The Kusto name of an Arrow type, for messages.
fn kusto_name(t: &DataType) -> &'static str {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Timestamp(..) => "datetime",
        DataType::Duration(_) => "timespan",
        DataType::Int64 | DataType::UInt64 => "long",
        DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::UInt32 | DataType::UInt16 | DataType::UInt8 => {
            "int"
        }
        DataType::Float64 | DataType::Float32 => "real",
        DataType::Boolean => "bool",
        DataType::Null => "null",
        _ => "a value of another type",
    }
}

/// The Arrow type of a Kusto type name.
pub fn kusto_type(ty: &str) -> Option<DataType> {
    Some(match canonical_type(ty) {
        "string" | "guid" | "dynamic" => DataType::Utf8,
        "datetime" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timespan" => DataType::Duration(TimeUnit::Nanosecond),
        "long" => DataType::Int64,
        "int" => DataType::Int32,
        "real" | "decimal" => DataType::Float64,
        "bool" => DataType::Boolean,
        _ => return None,
    })
}
