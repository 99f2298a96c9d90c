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
    /// A named watchlist, what Sentinel's `_GetWatchlist('name')` reads: none by default; an
    /// error says why an existing one cannot be read.
    fn watchlist(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>, String> {
        Ok(None)
    }
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
    plan_query_with(query, source, catalog, &PlanOptions { now_us, ..PlanOptions::default() })
}

/// How a query is planned.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// The value of `now()` for the whole query, microseconds since the epoch.
    pub now_us: i64,
    /// `[start, end)` in microseconds: every table is filtered to `TimeGenerated` in it, as the
    /// `timespan` of the Log Analytics Query API does (in addition to the query's own filters).
    pub time_range: Option<(i64, i64)>,
    /// `[start, end)` in microseconds of ingestion time (`_TimeReceived`): every table with that
    /// column is filtered to it. Consecutive windows `[a, b)`, `[b, c)` see each record exactly
    /// once, however late its `TimeGenerated` (how alert rules evaluate without gaps).
    pub ingestion_range: Option<(i64, i64)>,
}

pub fn plan_query_with(
    query: &Query,
    source: &str,
    catalog: &dyn Catalog,
    options: &PlanOptions,
) -> Result<LogicalPlan, KqlError> {
    // The planner's frames are large in debug builds: keep 1 MiB free before each level.
    recursive::set_minimum_stack_size(1 << 20);
    let mut p = Planner {
        source,
        catalog,
        now_us: options.now_us,
        time_range: options.time_range,
        ingestion_range: options.ingestion_range,
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
    ingestion_range: Option<(i64, i64)>,
    lets: HashMap<String, Binding>,
    auto_names: usize,
}

type PResult<T> = Result<T, KqlError>;

/// The aggregate functions of `summarize`.
const AGGREGATES: &[&str] = &[
    "count",
    "countif",
    "dcount",
    "dcountif",
    "sum",
    "sumif",
    "avg",
    "avgif",
    "min",
    "max",
    "any",
    "take_any",
    "stdev",
    "variance",
    "make_set",
    "make_list",
    "makeset",
    "makelist",
    "make_set_if",
    "make_list_if",
    "make_bag",
    "percentile",
    "percentiles",
    "arg_max",
    "arg_min",
];

/// One aggregate of a `summarize`: its DataFusion expression, Kusto's default name for it, and
/// what turns the aggregate's value into the Kusto value.
struct Agg {
    expr: DfExpr,
    name: String,
    finish: Finish,
}

enum Finish {
    None,
    /// A list to a dynamic array of at most this many elements (of dynamic elements).
    List(i64, bool),
    /// The nearest-rank percentile of a sorted list.
    Percentile(f64),
}

enum OutputItem {
    Agg(usize),
    Expr(Expr),
}

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
        self.scan(name, provider, span)
    }

    /// A scan of `provider`, strings made non-null, limited to the query's time range.
    fn scan(&self, name: &str, provider: Arc<dyn TableProvider>, span: Span) -> PResult<LogicalPlan> {
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
        if let Some((start, end)) = self.ingestion_range
            && schema.field_with_name("_TimeReceived").is_ok()
        {
            b = b
                .filter(ident("_TimeReceived").gt_eq(ts_lit(start)).and(ident("_TimeReceived").lt(ts_lit(end))))
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
    fn pipeline(&mut self, p: &Pipeline) -> PResult<LogicalPlan> {
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
            OpKind::Parse { expr, kind, pattern } => return self.parse_op(plan, expr, kind.as_deref(), pattern, span),
            OpKind::MvExpand { items, limit } => return self.mv_expand(plan, items, limit.as_ref(), span),
            OpKind::MakeSeries(m) => return self.make_series(plan, m, span),
            OpKind::Evaluate { plugin, args } => {
                return match (plugin.name.as_str(), args.as_slice()) {
                    ("narrow", []) => self.narrow(plan, span),
                    ("narrow", _) => Err(self.err(ErrorKind::Semantic, "narrow() takes no arguments", span)),
                    (other, _) => Err(self.err(
                        ErrorKind::Unsupported,
                        format!("the '{other}' plugin of evaluate is not supported"),
                        plugin.span,
                    )),
                };
            }
        };
        built.and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `range x from a to b step s`: one column of longs or datetimes, `a` to `b` inclusive.
    fn range(&mut self, column: &Ident, from: &Expr, to: &Expr, step: &Expr, span: Span) -> PResult<LogicalPlan> {
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

    /// `parse Expr with * "literal" Col:type ...`: each column is a capture group of one regex
    /// built from the pattern (`kind=regex`: the literals are regexes). A row that does not match
    /// gets empty strings and nulls.
    fn parse_op(
        &mut self,
        plan: LogicalPlan,
        expr: &Expr,
        kind: Option<&str>,
        pattern: &[ParsePart],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let regex_kind = match kind {
            None | Some("simple") | Some("relaxed") => false,
            Some("regex") => true,
            Some(other) => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown parse kind '{other}' (simple, regex, relaxed)"),
                    span,
                ));
            }
        };
        let schema = plan.schema().as_ref().clone();
        let source = self.scalar(expr, &schema)?;
        let source = self.to_text(source, &schema, expr.span)?;
        let mut re = String::from("(?s)^");
        let mut columns = Vec::new();
        for (i, part) in pattern.iter().enumerate() {
            let last = i + 1 == pattern.len();
            match part {
                ParsePart::Literal(t) if regex_kind => re.push_str(t),
                ParsePart::Literal(t) => re.push_str(&regex::escape(t)),
                ParsePart::Wildcard => re.push_str(if last { ".*" } else { ".*?" }),
                ParsePart::Column { name, ty } => {
                    let ty = ty.as_deref().unwrap_or("string");
                    let dt = kusto_type(ty)
                        .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{ty}'"), name.span))?;
                    re.push_str(match canonical_type(ty) {
                        "long" | "int" => r"([-+]?\d+)",
                        "real" => r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)",
                        _ if last => "(.*)",
                        _ => "(.*?)",
                    });
                    columns.push((name.clone(), dt, canonical_type(ty)));
                }
            }
        }
        let compiled = regex::Regex::new(&re)
            .map_err(|e| self.err(ErrorKind::Semantic, format!("invalid parse pattern: {e}"), span))?;
        let mut plan = plan;
        for (group, (name, dt, ty)) in columns.iter().enumerate() {
            let text = crate::udf::extract(&compiled, group + 1, source.clone());
            let value = match *ty {
                "string" => text,
                "dynamic" => crate::udf::parse_json(text),
                "datetime" | "timespan" | "guid" => try_cast(text, dt.clone()),
                _ => try_cast(text, dt.clone()),
            };
            plan = self.replace_or_append(plan, value.alias(&name.name), &name.name, span)?;
        }
        Ok(plan)
    }

    /// Appends column `e` as `name`; an existing column of that name is dropped (so it moves to
    /// the end, as `extend` does).
    fn replace_or_append(&self, plan: LogicalPlan, e: DfExpr, name: &str, span: Span) -> PResult<LogicalPlan> {
        let schema = plan.schema().clone();
        let mut exprs: Vec<DfExpr> =
            schema.fields().iter().filter(|f| f.name() != name).map(|f| ident(f.name())).collect();
        exprs.push(e);
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|er| self.df_err(er, span))
    }

    /// `mv-expand [Name =] ArrayExpression [to typeof(T)] [limit N]`: one row per element of a
    /// dynamic array (or per property of a bag); a null gives one row, an empty array none.
    fn mv_expand(
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

    /// `evaluate narrow()`: one row per cell, `Row` (from 0), `Column` (its name), `Value` (as a
    /// string), in row then column order.
    fn narrow(&mut self, plan: LogicalPlan, span: Span) -> PResult<LogicalPlan> {
        let schema = plan.schema().as_ref().clone();
        let rn = datafusion::functions_window::expr_fn::row_number().alias("__row");
        let numbered = LogicalPlanBuilder::from(plan)
            .window(vec![rn])
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let mut result: Option<LogicalPlanBuilder> = None;
        for (i, field) in schema.fields().iter().enumerate() {
            let value = self.to_text(ident(field.name()), &schema, span)?;
            let leg = LogicalPlanBuilder::from(numbered.clone())
                .project(vec![
                    (cast(ident("__row"), DataType::Int64) - lit(1i64)).alias("Row"),
                    lit(field.name().clone()).alias("Column"),
                    value.alias("Value"),
                    lit(i as i64).alias("__col"),
                ])
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?;
            result = Some(match result {
                None => LogicalPlanBuilder::from(leg),
                Some(b) => b.union(leg).map_err(|e| self.df_err(e, span))?,
            });
        }
        let Some(b) = result else {
            return Err(self.err(ErrorKind::Semantic, "narrow() of a table without columns", span));
        };
        b.sort(vec![ident("Row").sort(true, false), ident("__col").sort(true, false)])
            .and_then(|b| b.project(vec![ident("Row"), ident("Column"), ident("Value")]))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// `make-series`: per group of `by`, each aggregate over bins of `step` from `from` to `to`
    /// (exclusive) as a dynamic array (`default`, 0 unless given, where a bin has no rows), and
    /// the axis column as the array of the bins' start times. Output: keys, series, axis.
    fn make_series(&mut self, plan: LogicalPlan, m: &MakeSeries, span: Span) -> PResult<LogicalPlan> {
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
            return Err(self.err(ErrorKind::Semantic, "make-series takes a timespan literal as its step", m.step.span));
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
            plan = self.replace_or_append(plan, new, &name, span)?;
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
                let names: Vec<String> = match (a.names.as_slice(), parts.len()) {
                    ([], _) => parts.iter().map(|p| p.name.clone()).collect(),
                    (given, n) if given.len() == n => given.iter().map(|i| i.name.clone()).collect(),
                    (given, n) => {
                        return Err(self.err(
                            ErrorKind::Semantic,
                            format!("{} names for an aggregate with {n} result column(s)", given.len()),
                            a.expr.span,
                        ));
                    }
                };
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
            return Err(self.err(
                ErrorKind::Semantic,
                "expected an aggregate function such as count() or max(x)",
                span,
            ));
        }
        let internal: Vec<DfExpr> =
            raw.iter().enumerate().map(|(i, a)| a.expr.clone().alias(format!("__raw{i}"))).collect();
        let planned = LogicalPlanBuilder::from(plan)
            .aggregate(group.clone(), internal)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let group_cols: Vec<DfExpr> = group
            .iter()
            .map(|g| match g {
                DfExpr::Alias(a) => ident(a.name.clone()),
                other => ident(other.schema_name().to_string()),
            })
            .collect();
        let mut finished = group_cols.clone();
        for (i, a) in raw.iter().enumerate() {
            let c = ident(format!("__raw{i}"));
            let done = match a.finish {
                Finish::None => c,
                Finish::List(max, dynamic) => crate::udf::list_to_dynamic(c, max, dynamic),
                Finish::Percentile(p) => crate::udf::nearest_rank(c, p),
            };
            finished.push(done.alias(format!("__agg{i}")));
        }
        let finished = LogicalPlanBuilder::from(planned)
            .project(finished)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
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

    fn is_aggregate_call(&self, e: &Expr) -> bool {
        matches!(&e.kind, ExprKind::Call { name, .. } if AGGREGATES.contains(&name.name.as_str()))
    }

    /// `e` with each aggregate call in it replaced by a reference to its result column
    /// (`__aggN`), the aggregates appended to `raw`.
    fn extract_aggregates(&mut self, e: &Expr, schema: &DFSchema, global: bool, raw: &mut Vec<Agg>) -> PResult<Expr> {
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
    fn arg_extreme(&mut self, item: &NamedExpr, schema: &DFSchema, taken: &mut Vec<String>) -> PResult<Vec<Agg>> {
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

    /// An aggregate call and its Kusto default name (`count_`, `max_TimeGenerated`, ...).
    fn aggregate(&mut self, e: &Expr, schema: &DFSchema, global: bool) -> PResult<Vec<Agg>> {
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
        let one = |expr: DfExpr, name: String| Ok(vec![Agg { expr, name, finish: Finish::None }]);
        match fname {
            "count" => {
                if args.len() > 1 {
                    return Err(self.err(ErrorKind::Semantic, "count() takes no argument", e.span));
                }
                // count() and count(*) are count_, count(x) count_x (and does not count nulls).
                let (x, n) = match args.first() {
                    None | Some(Expr { kind: ExprKind::Star, .. }) => (lit(1i64), "count_".to_string()),
                    Some(_) => (a0(self)?, format!("count_{}", arg_name(self, 0))),
                };
                one(agg::count(x), n)
            }
            "countif" => {
                arity(self, 1)?;
                let p = self.predicate(&args[0], schema)?;
                one(
                    agg::sum(case(p).when(lit(true), lit(1i64)).otherwise(lit(0i64)).unwrap_or_else(|_| lit(0i64))),
                    "countif_".into(),
                )
            }
            "dcount" => {
                let x = a0(self)?;
                one(agg::count_distinct(x), format!("dcount_{}", arg_name(self, 0)))
            }
            "dcountif" => {
                arity(self, 2)?;
                let x = a0(self)?;
                let x = self.only_if(x, &args[1], schema)?;
                one(agg::count_distinct(x), format!("dcountif_{}", arg_name(self, 0)))
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
                one(s, format!("{fname}_{}", arg_name(self, 0)))
            }
            "avg" | "avgif" => {
                let mut x = a0(self)?;
                if fname == "avgif" {
                    arity(self, 2)?;
                    x = self.only_if(x, &args[1], schema)?;
                }
                one(agg::avg(cast(x, DataType::Float64)), format!("{fname}_{}", arg_name(self, 0)))
            }
            "min" | "max" => {
                arity(self, 1)?;
                let x = a0(self)?;
                let a = if fname == "min" { agg::min(x) } else { agg::max(x) };
                one(a, format!("{fname}_{}", arg_name(self, 0)))
            }
            "any" | "take_any" => {
                arity(self, 1)?;
                let x = a0(self)?;
                one(agg::first_value(x, vec![]), format!("{fname}_{}", arg_name(self, 0)))
            }
            "stdev" | "variance" => {
                arity(self, 1)?;
                let x = cast(a0(self)?, DataType::Float64);
                let a = if fname == "stdev" { agg::stddev(x) } else { agg::var_sample(x) };
                one(a, format!("{fname}_{}", arg_name(self, 0)))
            }
            "make_set" | "make_list" | "makeset" | "makelist" | "make_set_if" | "make_list_if" | "make_bag" => {
                use datafusion::logical_expr::ExprFunctionExt;
                if fname == "make_bag" {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "the aggregate 'make_bag' is not supported",
                        name.span,
                    ));
                }
                let conditional = fname.ends_with("_if");
                let (lo, hi) = if conditional { (2, 3) } else { (1, 2) };
                if !(lo..=hi).contains(&args.len()) {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!("{fname}() takes {lo} or {hi} arguments, got {}", args.len()),
                        e.span,
                    ));
                }
                let x = a0(self)?;
                let dynamic = self.is_dynamic(&x, schema);
                let mut keep = x.clone().is_not_null();
                if conditional {
                    keep = keep.and(self.predicate(&args[1], schema)?);
                }
                let max = match args.get(hi - 1) {
                    // The deprecated makeset/makelist keep their old default of 128.
                    None if fname.starts_with("make") && !fname.contains('_') => 128,
                    None => 1_048_576,
                    Some(Expr { kind: ExprKind::Literal(Literal::Long(n)), .. }) => *n,
                    Some(other) => {
                        return Err(self.err(ErrorKind::Semantic, "the maximum size is a whole number", other.span));
                    }
                };
                let b = agg::array_agg(x).filter(keep);
                let b = if fname.contains("set") { b.distinct() } else { b };
                let expr = b.build().map_err(|er| self.df_err(er, e.span))?;
                // Kusto names them set_X and list_X.
                let base = if fname.contains("set") { "set" } else { "list" };
                Ok(vec![Agg {
                    expr,
                    name: format!("{base}_{}", arg_name(self, 0)),
                    finish: Finish::List(max, dynamic),
                }])
            }
            "percentile" | "percentiles" => {
                use datafusion::logical_expr::ExprFunctionExt;
                if args.len() < 2 || (fname == "percentile" && args.len() != 2) {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!("{fname}() takes the expression and the percentile(s)"),
                        e.span,
                    ));
                }
                let x = a0(self)?;
                let mut out = Vec::new();
                for p in &args[1..] {
                    let v = match &p.kind {
                        ExprKind::Literal(Literal::Long(n)) => *n as f64,
                        ExprKind::Literal(Literal::Real(r)) => *r,
                        _ => {
                            return Err(self.err(
                                ErrorKind::Semantic,
                                "a percentile is a number from 0 to 100",
                                p.span,
                            ));
                        }
                    };
                    if !(0.0..=100.0).contains(&v) {
                        return Err(self.err(ErrorKind::Semantic, "a percentile is a number from 0 to 100", p.span));
                    }
                    let sorted = agg::array_agg(x.clone())
                        .filter(x.clone().is_not_null())
                        .order_by(vec![x.clone().sort(true, false)])
                        .build()
                        .map_err(|er| self.df_err(er, e.span))?;
                    let label = self.source[p.span.start..p.span.end].replace('.', "_");
                    out.push(Agg {
                        expr: sorted,
                        name: format!("percentile_{}_{label}", arg_name(self, 0)),
                        finish: Finish::Percentile(v),
                    });
                }
                Ok(out)
            }
            "arg_max" | "arg_min" => Err(self.err(
                ErrorKind::Unsupported,
                format!("{fname}() inside an expression is not supported"),
                name.span,
            )),
            other => Err(self.err(
                ErrorKind::Unsupported,
                format!("the aggregate function '{other}' is not supported"),
                name.span,
            )),
        }
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

    /// Whether `e` is a Kusto `dynamic` (JSON text marked in its field metadata).
    fn is_dynamic(&self, e: &DfExpr, schema: &DFSchema) -> bool {
        e.metadata(schema).is_ok_and(|m| m.inner().get(KUSTO_TYPE_KEY).is_some_and(|t| t == "dynamic"))
    }

    /// Which of `xs` are dynamic, as the `dynamic_args` bit mask of the UDFs.
    fn dynamic_args(&self, xs: &[DfExpr], schema: &DFSchema) -> u64 {
        xs.iter().enumerate().filter(|(_, x)| self.is_dynamic(x, schema)).fold(0u64, |m, (i, _)| m | 1 << i.min(63))
    }

    /// `e` as a string, as `tostring()` gives it: a dynamic string unquoted, other values' text.
    fn to_text(&self, e: DfExpr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        if self.is_dynamic(&e, schema) {
            Ok(crate::udf::dyn_to_string(e))
        } else if self.is_string(&e, schema, span)? {
            Ok(e)
        } else {
            Ok(f::coalesce(vec![cast(e, DataType::Utf8), lit("")]))
        }
    }

    /// `e`, which must be dynamic (for property access, `mv-expand`, array functions).
    fn dynamic_value(&self, e: DfExpr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        if self.is_dynamic(&e, schema) {
            return Ok(e);
        }
        let ty = self.type_of(&e, schema, span)?;
        if ty == DataType::Null {
            return Ok(e);
        }
        Err(self.err(
            ErrorKind::Semantic,
            format!(
                "expected a dynamic value (an array or a property bag), got {}; parse_json() reads JSON text",
                kusto_name(&ty)
            ),
            span,
        ))
    }

    /// A dynamic operand next to a value of type `other` converts to that type, as Kusto does
    /// when comparing (`d.name == "x"`, `d.count > 5`).
    fn convert_dynamic(&self, e: DfExpr, other: &DataType) -> DfExpr {
        match other {
            DataType::Null => e,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => crate::udf::dyn_to_string(e),
            t => try_cast(crate::udf::dyn_to_string(e), t.clone()),
        }
    }

    /// Converts the dynamic side of a binary operation to the other side's type.
    fn unify_dynamic(&self, l: DfExpr, r: DfExpr, schema: &DFSchema, span: Span) -> PResult<(DfExpr, DfExpr)> {
        let (ld, rd) = (self.is_dynamic(&l, schema), self.is_dynamic(&r, schema));
        Ok(match (ld, rd) {
            (true, false) => {
                let t = self.type_of(&r, schema, span)?;
                (self.convert_dynamic(l, &t), r)
            }
            (false, true) => {
                let t = self.type_of(&l, schema, span)?;
                let r = self.convert_dynamic(r, &t);
                (l, r)
            }
            _ => (l, r),
        })
    }

    /// A scalar expression over `schema`. Recursion goes through here: `recursive` moves it to
    /// a fresh heap-allocated stack segment when the thread's stack runs low.
    #[recursive::recursive]
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
                        Some(Binding::Dynamic(v)) => crate::udf::dynamic_lit(v),
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
                if self.is_dynamic(&x, schema) {
                    x = crate::udf::dyn_to_string(x);
                }
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
                    ErrorKind::Semantic,
                    "a tabular expression where a scalar is expected (toscalar() makes one a scalar)",
                    span,
                ));
            }
            ExprKind::Member { target, name } => {
                let t = self.scalar(target, schema)?;
                let t = self.dynamic_value(t, schema, target.span)?;
                crate::udf::dyn_get(t, lit(name.name.clone()))
            }
            ExprKind::Index { target, index } => {
                let t = self.scalar(target, schema)?;
                let t = self.dynamic_value(t, schema, target.span)?;
                let i = self.scalar(index, schema)?;
                let i = match self.type_of(&i, schema, index.span)? {
                    DataType::Utf8 => i,
                    DataType::Int64 | DataType::Int32 => cast(i, DataType::Int64),
                    other => {
                        return Err(self.err(
                            ErrorKind::Semantic,
                            format!("an index is a long or a string, not {}", kusto_name(&other)),
                            index.span,
                        ));
                    }
                };
                crate::udf::dyn_get(t, i)
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
        let (l, r) =
            if matches!(op, BinaryOp::And | BinaryOp::Or) { (l, r) } else { self.unify_dynamic(l, r, schema, span)? };
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
        if matches!(left.kind, ExprKind::Star) {
            // `* contains x`: any column (all columns for a negated operator).
            let positive = StrOp { negated: false, ..s };
            let mut preds = Vec::new();
            for field in schema.fields() {
                let column = Expr { kind: ExprKind::Name(field.name().clone()), span: left.span };
                preds.push(self.string_op(positive, &column, right, schema, span)?);
            }
            let any = preds.into_iter().reduce(|a, b| a.or(b)).unwrap_or(lit(false));
            return Ok(if s.negated { not(any) } else { any });
        }
        let l = self.scalar(left, schema)?;
        let l = self.to_text(l, schema, left.span)?;
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
                let r = self.to_text(r, schema, right.span)?;
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
                let x = a(self, 0)?;
                self.to_text(x, schema, args[0].span)?
            }
            "toint" | "tolong" | "toreal" | "todouble" | "tobool" | "toboolean" | "todatetime" | "todecimal" => {
                want(self, 1, 1)?;
                let mut x = a(self, 0)?;
                if self.is_dynamic(&x, schema) {
                    x = crate::udf::dyn_to_string(x);
                }
                let t = match n {
                    "toint" => DataType::Int32,
                    "tolong" => DataType::Int64,
                    "toreal" | "todouble" | "todecimal" => DataType::Float64,
                    "tobool" | "toboolean" => DataType::Boolean,
                    _ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                };
                // Kusto: toint(2.7) is 2 and toint("2.7") null; a cast from real truncates.
                try_cast(x, t)
            }
            "totimespan" | "time" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                match self.type_of(&x, schema, args[0].span)? {
                    DataType::Duration(_) => x,
                    _ => crate::udf::totimespan(self.to_text(x, schema, args[0].span)?),
                }
            }
            "parse_json" | "parsejson" | "todynamic" | "toobject" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                if self.is_dynamic(&x, schema) { x } else { crate::udf::parse_json(x) }
            }
            "array_length" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_length(self.dynamic_value(x, schema, args[0].span)?)
            }
            "pack_array" => {
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::pack_array(xs, mask)
            }
            "split" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                let parts = crate::udf::split(text, a(self, 1)?);
                if args.len() == 3 { crate::udf::dyn_get(parts, cast(a(self, 2)?, DataType::Int64)) } else { parts }
            }
            "array_sort_asc" | "array_sort_desc" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_sort(self.dynamic_value(x, schema, args[0].span)?, n == "array_sort_asc")
            }
            "array_slice" => {
                want(self, 3, 3)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::array_slice(x, cast(a(self, 1)?, DataType::Int64), cast(a(self, 2)?, DataType::Int64))
            }
            "pack" | "bag_pack" | "pack_dictionary" | "pack_all" => {
                let xs: Vec<DfExpr> = if n == "pack_all" {
                    want(self, 0, 0)?;
                    schema.fields().iter().flat_map(|f| [lit(f.name().clone()), ident(f.name())]).collect()
                } else {
                    if !args.len().is_multiple_of(2) {
                        return Err(self.err(ErrorKind::Semantic, format!("{n}() takes pairs of key and value"), span));
                    }
                    (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?
                };
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::bag_pack(xs, mask)
            }
            "strcat_array" => {
                want(self, 2, 2)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::strcat_array(x, a(self, 1)?)
            }
            "extract" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes its regex as a string literal",
                        args[0].span,
                    ));
                };
                let ExprKind::Literal(Literal::Long(group)) = &args[1].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes the capture group as a number",
                        args[1].span,
                    ));
                };
                let re = regex::Regex::new(re)
                    .map_err(|e| self.err(ErrorKind::Semantic, format!("invalid regex: {e}"), args[0].span))?;
                if *group < 0 || *group as usize > re.captures_len() - 1 {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!(
                            "the regex has {} capture group(s); group {group} does not exist",
                            re.captures_len() - 1
                        ),
                        args[1].span,
                    ));
                }
                let text = a(self, 2)?;
                let text = self.to_text(text, schema, args[2].span)?;
                crate::udf::extract(&re, *group as usize, text)
            }
            "replace_string" => {
                want(self, 3, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                f::replace(text, a(self, 1)?, a(self, 2)?)
            }
            "replace_regex" | "replace" => {
                want(self, 3, 3)?;
                // replace(regex, rewrite, text) is the older argument order.
                let (t, r, w) = if n == "replace" { (2, 0, 1) } else { (0, 1, 2) };
                let text = a(self, t)?;
                let text = self.to_text(text, schema, args[t].span)?;
                self.check_regex(&args[r])?;
                f::regexp_replace(text, a(self, r)?, a(self, w)?, Some(lit("g")))
            }
            "trim" | "trim_start" | "trim_end" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        format!("{n}() takes its regex as a string literal"),
                        args[0].span,
                    ));
                };
                self.check_regex(&args[0])?;
                let pattern = match n {
                    "trim" => format!("^(?:{re})+|(?:{re})+$"),
                    "trim_start" => format!("^(?:{re})+"),
                    _ => format!("(?:{re})+$"),
                };
                let text = a(self, 1)?;
                let text = self.to_text(text, schema, args[1].span)?;
                f::regexp_replace(text, lit(pattern), lit(""), Some(lit("g")))
            }
            "indexof" => {
                want(self, 2, 2)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                cast(f::strpos(text, a(self, 1)?), DataType::Int64) - lit(1i64)
            }
            "format_datetime" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(fmt)) = &args[1].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "format_datetime() takes its format as a string literal",
                        args[1].span,
                    ));
                };
                let chrono_fmt =
                    kusto_datetime_format(fmt).map_err(|m| self.err(ErrorKind::Semantic, m, args[1].span))?;
                f::coalesce(vec![f::to_char(a(self, 0)?, lit(chrono_fmt)), lit("")])
            }
            "datetime_add" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(unit)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_add() takes the period as a string literal",
                        args[0].span,
                    ));
                };
                let amount = a(self, 1)?;
                let dt = a(self, 2)?;
                self.datetime_add(unit, amount, &args[1], dt, args[0].span)?
            }
            "dayofweek" => {
                want(self, 1, 1)?;
                // A timespan: days since the last Sunday.
                let days = cast(f::date_part(lit("dow"), a(self, 0)?), DataType::Int64);
                cast(days * lit(DAY_NS), DataType::Duration(TimeUnit::Nanosecond))
            }
            "hourofday" | "dayofmonth" | "dayofyear" | "getmonth" | "monthofyear" | "getyear" | "week_of_year"
            | "weekofyear" => {
                want(self, 1, 1)?;
                let part = match n {
                    "hourofday" => "hour",
                    "dayofmonth" => "day",
                    "dayofyear" => "doy",
                    "getmonth" | "monthofyear" => "month",
                    "getyear" => "year",
                    _ => "week",
                };
                cast(f::date_part(lit(part), a(self, 0)?), DataType::Int32)
            }
            "datetime_part" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(part)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        "datetime_part() takes the part as a string literal",
                        args[0].span,
                    ));
                };
                let part = match part.to_ascii_lowercase().as_str() {
                    p @ ("year" | "quarter" | "month" | "day" | "hour" | "minute" | "second" | "millisecond"
                    | "microsecond" | "nanosecond") => p.to_string(),
                    "week_of_year" => "week".into(),
                    "dayofyear" => "doy".into(),
                    other => {
                        return Err(self.err(
                            ErrorKind::Semantic,
                            format!("unknown datetime part '{other}'"),
                            args[0].span,
                        ));
                    }
                };
                cast(f::date_part(lit(part), a(self, 1)?), DataType::Int32)
            }
            "ingestion_time" => {
                want(self, 0, 0)?;
                if schema.field_with_unqualified_name("_TimeReceived").is_ok() {
                    ident("_TimeReceived")
                } else {
                    lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into())))
                }
            }
            "toscalar" => {
                want(self, 1, 1)?;
                let sub = self.tabular_expr(&args[0])?;
                let first = sub.schema().field(0).name().clone();
                let sub = LogicalPlanBuilder::from(sub)
                    .project(vec![ident(first)])
                    .and_then(|b| b.limit(0, Some(1)))
                    .and_then(|b| b.build())
                    .map_err(|e| self.df_err(e, span))?;
                datafusion::logical_expr::expr_fn::scalar_subquery(Arc::new(sub))
            }
            "sqrt" | "exp" | "log" | "log10" | "log2" | "ceiling" => {
                want(self, 1, 1)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                match n {
                    "sqrt" => f::sqrt(x),
                    "exp" => f::exp(x),
                    "log" => f::ln(x),
                    "log10" => f::log10(x),
                    "log2" => f::log2(x),
                    _ => f::ceil(x),
                }
            }
            "pow" => {
                want(self, 2, 2)?;
                f::power(cast(a(self, 0)?, DataType::Float64), cast(a(self, 1)?, DataType::Float64))
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

    fn check_regex(&self, e: &Expr) -> PResult<()> {
        if let ExprKind::Literal(Literal::String(re)) = &e.kind {
            regex::Regex::new(re)
                .map_err(|er| self.err(ErrorKind::Semantic, format!("invalid regex: {er}"), e.span))?;
        }
        Ok(())
    }

    /// `datetime_add(unit, amount, dt)`: calendar units (month, quarter, year) need a constant
    /// amount; the others any whole number.
    fn datetime_add(&self, unit: &str, amount: DfExpr, amount_ast: &Expr, dt: DfExpr, span: Span) -> PResult<DfExpr> {
        let unit = unit.to_ascii_lowercase();
        let months = match unit.as_str() {
            "year" => Some(12),
            "quarter" => Some(3),
            "month" => Some(1),
            _ => None,
        };
        if let Some(m) = months {
            let n = match &amount_ast.kind {
                ExprKind::Literal(Literal::Long(n)) => *n,
                ExprKind::Negate(x) => match &x.kind {
                    ExprKind::Literal(Literal::Long(n)) => -*n,
                    _ => 0,
                },
                _ => {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        format!("datetime_add('{unit}', ...) with an amount that is not a constant whole number"),
                        amount_ast.span,
                    ));
                }
            };
            let months = i32::try_from(n * m)
                .map_err(|_| self.err(ErrorKind::Semantic, "amount out of range", amount_ast.span))?;
            return Ok(dt
                + lit(ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
                    months,
                    days: 0,
                    nanoseconds: 0,
                }))));
        }
        let ns: i64 = match unit.as_str() {
            "week" => 7 * DAY_NS,
            "day" => DAY_NS,
            "hour" => 3_600_000_000_000,
            "minute" => 60_000_000_000,
            "second" => 1_000_000_000,
            "millisecond" => 1_000_000,
            "microsecond" => 1_000,
            "nanosecond" => 1,
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown datetime_add period '{other}' (year, quarter, month, week, day, hour, minute, second, millisecond, microsecond, nanosecond)"),
                    span,
                ));
            }
        };
        Ok(dt + cast(cast(amount, DataType::Int64) * lit(ns), DataType::Duration(TimeUnit::Nanosecond)))
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

/// A Kusto `format_datetime` format as a chrono one: `yyyy-MM-dd HH:mm:ss.fff` and the other
/// documented specifiers; anything that is not a letter is kept as a separator.
fn kusto_datetime_format(fmt: &str) -> Result<String, String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let spec = match (c, run) {
            ('y', 4) => "%Y",
            ('y', 2) => "%y",
            ('M', 2) => "%m",
            ('M', 1) => "%-m",
            ('d', 2) => "%d",
            ('d', 1) => "%-d",
            ('H', 2) => "%H",
            ('H', 1) => "%-H",
            ('h', 2) => "%I",
            ('h', 1) => "%-I",
            ('m', 2) => "%M",
            ('m', 1) => "%-M",
            ('s', 2) => "%S",
            ('s', 1) => "%-S",
            ('t', 2) => "%p",
            ('f' | 'F', 3) => "%3f",
            ('f' | 'F', 6) => "%6f",
            ('f' | 'F', 9) => "%9f",
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!("format_datetime specifier '{}' is not supported", c.to_string().repeat(run)));
            }
            _ => "",
        };
        if spec.is_empty() {
            for _ in 0..run {
                if c == '%' {
                    out.push_str("%%");
                } else {
                    out.push(c);
                }
            }
        } else {
            out.push_str(spec);
        }
        i += run;
    }
    Ok(out)
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
        Literal::Dynamic(v) => crate::udf::dynamic_lit(v),
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
