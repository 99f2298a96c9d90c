//! The syntax tree of a KQL query. Every node that can be the subject of an error keeps its
//! [`Span`].

use crate::error::Span;

/// A whole query: `let` statements and one tabular expression (the result), `;`-separated.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub lets: Vec<Let>,
    /// The `set name = value;` options the planner reads (`query_bin_auto_size`,
    /// `query_bin_auto_at`); the others are accepted and ignored.
    pub options: Vec<SetOption>,
    pub body: Pipeline,
}

/// `set name = value;`
#[derive(Debug, Clone, PartialEq)]
pub struct SetOption {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub value: LetValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LetValue {
    /// A scalar or tabular expression; which one is decided when planning (a bare name may be
    /// a table).
    Expr(Expr),
    /// `let f = (a: string, b: long = 1) { body };`
    Function { params: Vec<Param>, body: Box<Query> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    /// A scalar type's name, or a tabular parameter's type as text: `(*)`, `(a:string, b:long)`.
    pub ty: String,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A source followed by `| operator` stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub source: Source,
    pub ops: Vec<Op>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A table, a `let` name, a function call (`materialize(...)`, `_GetWatchlist('x')`), or a
    /// parenthesised pipeline.
    Expr(Expr),
    Union(Union),
    Datatable {
        columns: Vec<(Ident, String)>,
        values: Vec<Expr>,
    },
    Print(Vec<NamedExpr>),
    Range {
        column: Ident,
        from: Box<Expr>,
        to: Box<Expr>,
        step: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Where(Expr),
    Project(Vec<NamedExpr>),
    ProjectAway(Vec<Ident>),
    ProjectKeep(Vec<Ident>),
    ProjectRename(Vec<(Ident, Ident)>),
    ProjectReorder(Vec<(Ident, Option<SortDirection>)>),
    Extend(Vec<NamedExpr>),
    Summarize {
        aggregates: Vec<NamedExpr>,
        by: Vec<NamedExpr>,
    },
    Sort(Vec<SortKey>),
    Take(Expr),
    Top {
        count: Expr,
        key: SortKey,
    },
    Distinct(Vec<NamedExpr>),
    Count,
    Join(Box<Join>),
    Union(Union),
    Parse {
        expr: Expr,
        kind: Option<String>,
        pattern: Vec<ParsePart>,
    },
    MvExpand(MvExpand),
    /// `mv-apply [with_itemindex = I] Arrays [limit N] on (SubQuery)`: the subquery applied to
    /// each row's expanded elements.
    MvApply {
        expand: MvExpand,
        subquery: Vec<Op>,
    },
    /// `top-nested [N] of Expr [with others = V] by Aggregation [asc|desc], ...`: one level per
    /// clause, each the top N values of its expression within the row's group of the levels
    /// before it.
    TopNested(Vec<TopNestedLevel>),
    /// `make-series Agg [default = d], ... on Axis from A to B step S [by Keys]` (also
    /// `on Axis in range(A, B, S)`).
    MakeSeries(Box<MakeSeries>),
    /// `evaluate plugin(args) [: (column: type, ...)]`.
    Evaluate {
        plugin: Ident,
        args: Vec<Expr>,
        /// The output schema, when the query gives one.
        schema: Option<Vec<(Ident, String)>>,
    },
    As(Ident),
    /// `lookup [kind=leftouter|inner] (Dimension) on keys`: a join whose right key columns are
    /// not repeated.
    Lookup(Box<Join>),
    /// `getschema`: one row per column of the input.
    GetSchema,
    /// `sample n`: n rows picked at random.
    Sample(Expr),
    /// `sample-distinct n of column`: up to n distinct values of the column.
    SampleDistinct {
        count: Expr,
        column: Expr,
    },
    /// `invoke f(args)`: the user function `f` with the input as its first (tabular) argument.
    Invoke {
        function: Ident,
        args: Vec<Expr>,
    },
    Serialize(Vec<NamedExpr>),
    /// `render`: no effect on the rows; a visualisation hint the query API returns to clients
    /// (`Prefer: include-render=true`) and the console draws.
    Render(Render),
}

/// `name = expr`, `(a, b) = expr`, or a bare `expr` (whose name the planner derives).
#[derive(Debug, Clone, PartialEq)]
pub struct MakeSeries {
    /// Each aggregate with its `default =` value.
    pub aggregates: Vec<(NamedExpr, Option<Expr>)>,
    pub axis: Expr,
    pub from: Option<Expr>,
    pub to: Option<Expr>,
    pub step: Expr,
    pub by: Vec<NamedExpr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedExpr {
    pub names: Vec<Ident>,
    pub expr: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    /// `None`: Kusto's default, descending.
    pub direction: Option<SortDirection>,
    /// `None`: Kusto's default (nulls first when ascending, last when descending).
    pub nulls_first: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// `None`: `innerunique`, Kusto's default.
    pub kind: Option<Ident>,
    pub right: Pipeline,
    pub on: Vec<JoinCondition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JoinCondition {
    /// `on Key`: equal values of the same-named column on both sides.
    Same(Ident),
    /// `on $left.a == $right.b`
    Pair { left: Ident, right: Ident },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Union {
    pub kind: Option<String>,
    pub with_source: Option<Ident>,
    pub is_fuzzy: bool,
    pub tables: Vec<Pipeline>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsePart {
    Literal(String),
    Column { name: Ident, ty: Option<String> },
    Wildcard,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// A column or `let` name.
    Name(String),
    /// `*` as a function argument (`arg_max(x, *)`, `count(*)`).
    Star,
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Negate(Box<Expr>),
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    /// `d.key`
    Member {
        target: Box<Expr>,
        name: Ident,
    },
    /// `d["key"]`, `d[0]`
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    /// `x in (a, b)`, `x !in~ (T | project c)`
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    /// `x between (a .. b)`
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    /// A tabular expression inside a scalar context: `in ((T | ...))`, `toscalar(T | ...)`.
    Pipeline(Box<Pipeline>),
    /// The parenthesised list on the right of `has_any` / `has_all`.
    List(Vec<Expr>),
    /// A named argument: `arg_max(Latest = TimeGenerated, *)` names an output column.
    NamedArg {
        name: Ident,
        value: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Long(i64),
    Real(f64),
    String(String),
    /// Nanoseconds.
    Timespan(i64),
    /// Microseconds since the Unix epoch, UTC.
    DateTime(i64),
    /// `dynamic(...)`: a JSON value.
    Dynamic(serde_json::Value),
    /// A literal of a type whose value is null: `datetime(null)`, `int(null)`...
    TypedNull(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    EqTilde,
    NotEqTilde,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// A string operator by its KQL name: `contains`, `!has`, `startswith_cs`, `has_any`,
    /// `matches regex`...
    Str(StrOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrOp {
    pub name: &'static str,
    pub negated: bool,
}

/// The string operators, without their `!` form.
pub const STRING_OPERATORS: &[&str] = &[
    "contains",
    "contains_cs",
    "has",
    "has_cs",
    "hasprefix",
    "hasprefix_cs",
    "hassuffix",
    "hassuffix_cs",
    "startswith",
    "startswith_cs",
    "endswith",
    "endswith_cs",
    "has_any",
    "has_all",
    "matches regex",
];

/// The canonical spelling of a Kusto type name (`date` is `datetime`, `double` is `real`...);
/// a word that names no type is returned as it is.
pub fn canonical_type(word: &str) -> &str {
    match fimlake_kusto::KustoType::from_name(word) {
        Some(ty) => ty.name(),
        None => word,
    }
}

/// The arrays of `mv-expand` and `mv-apply`: `[with_itemindex = I] [Name =] Array [to typeof(T)],
/// ... [limit N]`. Several arrays are expanded side by side (the shorter padded with nulls).
#[derive(Debug, Clone, PartialEq)]
pub struct MvExpand {
    pub index: Option<Ident>,
    pub items: Vec<NamedExpr>,
    pub limit: Option<Expr>,
}

/// One `top-nested` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct TopNestedLevel {
    /// `N`; all values when absent.
    pub count: Option<Expr>,
    /// `[Name =] Expr`: the values the level groups by.
    pub of: NamedExpr,
    /// `with others = V`: one more row for the values outside the top N.
    pub others: Option<Expr>,
    /// `[Name =] Aggregation`: what ranks the values.
    pub by: NamedExpr,
    pub descending: bool,
}

/// `render VISUALIZATION [with (name = value, ...)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Render {
    pub visualization: String,
    /// The `with` properties (`title`, `kind`, `xcolumn`, `ycolumns`, `series`, ...), each value
    /// as written (a string literal's text, a name, or a parenthesised list's names joined by `,`).
    pub properties: Vec<(String, String)>,
}

impl Query {
    /// The `render` of the query's last stage, if it has one.
    pub fn render(&self) -> Option<&Render> {
        match self.body.ops.last().map(|op| &op.kind) {
            Some(OpKind::Render(r)) => Some(r),
            _ => None,
        }
    }
}
