//! KQL syntax trees to DataFusion logical plans, with Kusto's semantics (`kql-usage.md`,
//! "Semantics to get right"): case-insensitive `contains`/`=~`/`in~`, `has` as a term match,
//! descending default sort, Kusto's default aggregate names, strings that are never null.
//!
//! Plans are built with `LogicalPlanBuilder` and `Expr`, never via SQL text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, DFSchema, ScalarValue, UnnestOptions};
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    Expr as DfExpr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, SortExpr, case, cast, ident, lit, not, try_cast,
    when,
};

use crate::ast::*;
use crate::error::{ErrorKind, KqlError, Span};

mod aggregate;
mod evaluate;
mod extreme_rows;
mod first_rows;
mod function;
mod inspect;
mod join;
mod make_series;
mod mv_apply;
mod mv_expand;
mod operators;
mod parse;
mod scalar;
mod sources;
mod string_ops;
mod summarize;
mod top_nested;
mod types;
mod union;
mod user_function;

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
pub use fimlake_kusto::KUSTO_TYPE_KEY;

/// Plans `query` (parsed from `source`, for error positions). `now_us` is the value of `now()`
/// for the whole query, microseconds since the epoch.
pub fn plan_query(query: &Query, source: &str, catalog: &dyn Catalog, now_us: i64) -> Result<LogicalPlan, KqlError> {
    plan_query_with(query, source, catalog, &PlanOptions { now_us, ..PlanOptions::default() })
}

/// What the planner supports, for the README's list (generated from the planner's own tables).
pub struct Supported {
    pub operators: Vec<&'static str>,
    pub aggregates: Vec<&'static str>,
    pub functions: Vec<&'static str>,
}

/// The operators, aggregate functions and scalar functions the planner supports, sorted.
pub fn supported() -> Supported {
    let mut aggregates = AGGREGATES.to_vec();
    aggregates.sort_unstable();
    Supported { operators: crate::parser::OPERATORS.to_vec(), aggregates, functions: function::names() }
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
        parameters: HashMap::new(),
        calling: Vec::new(),
        auto_names: 0,
        options: query.options.iter().map(|o| (o.name.name.clone(), o.value.clone())).collect(),
    };
    for l in &query.lets {
        p.bind_let(l)?;
    }
    let plan = p.pipeline(&query.body)?;
    strings_as_utf8(plan).map_err(|e| p.df_err(e, query.body.span))
}

/// `plan` with its `Utf8View` columns (strings as stored tables' scans read them) cast to `Utf8`:
/// a query's answer holds its strings in one buffer per column, as every reader of answers
/// expects. Names and field metadata (the Kusto type) are kept.
fn strings_as_utf8(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    let schema = plan.schema().clone();
    if !schema.fields().iter().any(|f| f.data_type() == &DataType::Utf8View) {
        return Ok(plan);
    }
    let columns = schema.iter().map(|(qualifier, field)| {
        let column = DfExpr::Column(Column::new(qualifier.cloned(), field.name()));
        if field.data_type() != &DataType::Utf8View {
            return column;
        }
        let metadata = datafusion::common::metadata::FieldMetadata::from(field.as_ref());
        let cast = cast(column, DataType::Utf8);
        match qualifier {
            Some(q) => cast.alias_qualified_with_metadata(Some(q.clone()), field.name(), Some(metadata)),
            None => cast.alias_with_metadata(field.name(), Some(metadata)),
        }
    });
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

#[derive(Clone)]
enum Binding {
    Scalar(DfExpr),
    Tabular(LogicalPlan),
    Dynamic(serde_json::Value),
    Function(Arc<user_function::UserFunction>),
}

struct Planner<'a> {
    source: &'a str,
    catalog: &'a dyn Catalog,
    now_us: i64,
    time_range: Option<(i64, i64)>,
    ingestion_range: Option<(i64, i64)>,
    lets: HashMap<String, Binding>,
    /// The scalar parameters of the user function being planned, bound to their arguments.
    parameters: HashMap<String, DfExpr>,
    /// The user functions being planned, outermost first (to refuse recursion).
    calling: Vec<String>,
    auto_names: usize,
    /// The query's `set` options, by name.
    options: HashMap<String, Expr>,
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
    "make_bag_if",
    "minif",
    "maxif",
    "anyif",
    "take_anyif",
    "count_distinct",
    "count_distinctif",
    "percentiles_array",
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
    /// The nearest-rank percentiles of a sorted list, as a dynamic array.
    Percentiles(Vec<f64>),
    /// A list of property bags merged into one of at most this many keys.
    Bag(i64),
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

    /// The rows of `plan` whose `plan_keys` are among the rows of `keys` (`key_columns`, qualified
    /// by the alias `keys` has), compared null-equal, under their own names: how a narrowing
    /// (`extreme_rows.rs`, `first_rows.rs`) reads back the whole rows of the keys it found.
    fn rows_matching(
        &self,
        keys: LogicalPlan,
        key_columns: Vec<Column>,
        plan: LogicalPlan,
        plan_keys: &[String],
        span: Span,
    ) -> PResult<LogicalPlan> {
        const ROWS: &str = "__rows";
        let right: Vec<Column> = plan_keys.iter().map(|k| Column::new(Some(ROWS), k)).collect();
        let rows =
            LogicalPlanBuilder::from(plan).alias(ROWS).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))?;
        let matching = LogicalPlanBuilder::from(keys)
            .join_detailed(
                rows,
                datafusion::logical_expr::JoinType::RightSemi,
                (key_columns, right),
                None,
                datafusion::common::NullEquality::NullEqualsNull,
            )
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        self.unqualified(matching, span)
    }

    /// `plan`'s columns under their own names, without the qualifiers a join gave them.
    fn unqualified(&self, plan: LogicalPlan, span: Span) -> PResult<LogicalPlan> {
        let out: Vec<DfExpr> = plan
            .schema()
            .iter()
            .map(|(q, f)| DfExpr::Column(Column::new(q.cloned(), f.name())).alias(f.name()))
            .collect();
        LogicalPlanBuilder::from(plan).project(out).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    fn bind_let(&mut self, l: &Let) -> PResult<()> {
        let binding = match &l.value {
            LetValue::Function { params, body } => self.define_function(l, params, body)?,
            LetValue::Expr(e) => match &e.kind {
                ExprKind::Pipeline(p) => Binding::Tabular(self.pipeline(p)?),
                ExprKind::Name(n) if self.is_tabular_name(n) => Binding::Tabular(self.table(n, e.span)?),
                ExprKind::Call { name, args } if name.name == "materialize" && args.len() == 1 => {
                    Binding::Tabular(self.tabular_expr(&args[0])?)
                }
                ExprKind::Call { .. } if self.is_tabular_call(e) => Binding::Tabular(self.tabular_expr(e)?),
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

fn interval(ns: i64) -> DfExpr {
    lit(ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano { months: 0, days: 0, nanoseconds: ns })))
}

/// The nanoseconds of a constant timespan expression (`1h`, `30m * 2`, a `let` of one).
fn duration_ns(e: &DfExpr) -> Option<i64> {
    match constant(e)? {
        ScalarValue::DurationNanosecond(Some(ns)) => Some(ns),
        _ => None,
    }
}

/// The value of an expression that reads no column, folded by DataFusion's simplifier.
fn constant(e: &DfExpr) -> Option<ScalarValue> {
    use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
    if let DfExpr::Literal(value, _) = e {
        return Some(value.clone());
    }
    let context = SimplifyContext::default();
    let simplifier = ExprSimplifier::new(context);
    match simplifier.simplify(e.clone()).ok()? {
        DfExpr::Literal(value, _) => Some(value),
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
    match (t, fimlake_kusto::KustoType::of_arrow(t)) {
        (_, Some(kusto)) => kusto.name(),
        (DataType::Null, None) => "null",
        (_, None) => "a value of another type",
    }
}

/// The Arrow type of a Kusto type name.
pub fn kusto_type(ty: &str) -> Option<DataType> {
    fimlake_kusto::KustoType::from_name(ty).map(fimlake_kusto::KustoType::arrow_type)
}
