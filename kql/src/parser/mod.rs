//! Recursive-descent parser over the tokens of [`crate::lexer`], with Kusto's precedence:
//! `or` < `and` < comparisons and string operators < `+ -` < `* / %` < unary `-` < postfix
//! (calls, `.member`, `[index]`).
//!
//! Errors name what was expected and what was found; KQL that is valid but not supported names
//! the operator.

use crate::ast::*;
use crate::error::{ErrorKind, KqlError, Span};
use crate::lexer::{Tok, Token, tokenize};

mod expressions;
use expressions::pipeline_to_expr;
mod operators;

/// Tabular operators that are valid KQL but not supported.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "top-hitters",
    "find",
    "externaldata",
    "fork",
    "facet",
    "partition",
    "scan",
    "reduce",
    "project-smart",
    "parse-where",
    "parse-kv",
    "consume",
    "mvexpand",
    "partition-by",
    "graph-match",
    "make-graph",
];

/// The tabular operators the parser reads (each has a method in `operators.rs`); the README's
/// list is generated from it.
pub const OPERATORS: &[&str] = &[
    "as",
    "count",
    "distinct",
    "evaluate",
    "extend",
    "filter",
    "getschema",
    "invoke",
    "join",
    "limit",
    "lookup",
    "make-series",
    "mv-apply",
    "mv-expand",
    "order",
    "parse",
    "project",
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "render",
    "sample",
    "sample-distinct",
    "search",
    "serialize",
    "sort",
    "summarize",
    "take",
    "top",
    "top-nested",
    "union",
    "where",
];

/// The `set` options the planner reads.
const PLANNED_OPTIONS: &[&str] = &["query_bin_auto_size", "query_bin_auto_at"];

const OPERATORS_HINT: &str = "a tabular operator (where, project, extend, summarize, sort, take, join, union...)";

/// Parses a whole query.
pub fn parse(source: &str) -> Result<Query, KqlError> {
    let toks = tokenize(source)?;
    let mut p = Parser { src: source, toks, pos: 0, depth: 0 };
    p.query()
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    /// How deeply expressions and pipelines are nested here (see `MAX_NESTING`).
    depth: usize,
}

/// The deepest nesting of parentheses, pipelines and unary operators a query may have: enough
/// for any real query, and far from the stack limits of the parser and the planner (which
/// recurse once per level), so that no input can overflow the stack.
pub const MAX_NESTING: usize = 64;

type PResult<T> = Result<T, KqlError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.pos].span
    }

    fn prev_end(&self) -> usize {
        if self.pos == 0 { 0 } else { self.toks[self.pos - 1].span.end }
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>, span: Span) -> KqlError {
        KqlError::new(kind, message, span, self.src)
    }

    fn expected(&self, what: &str) -> KqlError {
        self.error(ErrorKind::Syntax, format!("expected {what}, found {}", self.peek().describe()), self.span())
    }

    fn expect_sym(&mut self, s: &str) -> PResult<Span> {
        if self.is_sym(s) { Ok(self.bump().span) } else { Err(self.expected(&format!("'{s}'"))) }
    }

    fn expect_word(&mut self, w: &str) -> PResult<Span> {
        if self.is_word(w) { Ok(self.bump().span) } else { Err(self.expected(&format!("'{w}'"))) }
    }

    /// A name: an identifier or a bracketed name.
    fn name(&mut self, what: &str) -> PResult<Ident> {
        match self.peek().clone() {
            Tok::Ident(s) if !s.starts_with('!') => {
                let span = self.bump().span;
                Ok(Ident { name: s, span })
            }
            Tok::Quoted(s) => {
                let span = self.bump().span;
                Ok(Ident { name: s, span })
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A column name pattern for project-away/keep: a name, optionally with `*` wildcards.
    fn name_pattern(&mut self) -> PResult<Ident> {
        let start = self.span();
        let mut text = String::new();
        let mut end = start.start;
        loop {
            match self.peek().clone() {
                Tok::Sym("*") if self.span().start == end || text.is_empty() => {
                    end = self.bump().span.end;
                    text.push('*');
                }
                Tok::Ident(s) if (text.is_empty() || self.span().start == end) && !s.starts_with('!') => {
                    end = self.bump().span.end;
                    text.push_str(&s);
                }
                Tok::Quoted(s) if text.is_empty() => {
                    end = self.bump().span.end;
                    text.push_str(&s);
                    break;
                }
                _ => break,
            }
        }
        if text.is_empty() {
            return Err(self.expected("a column name"));
        }
        Ok(Ident { name: text, span: Span::new(start.start, end) })
    }

    fn query(&mut self) -> PResult<Query> {
        let mut lets = Vec::new();
        let mut options = Vec::new();
        let mut body = None;
        loop {
            while self.eat_sym(";") {}
            if matches!(self.peek(), Tok::Eof) {
                break;
            }
            if body.is_some() {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    "a query with more than one tabular expression statement is not supported",
                    self.span(),
                ));
            }
            if self.is_word("let") {
                lets.push(self.let_statement()?);
                if !self.eat_sym(";") && !matches!(self.peek(), Tok::Eof) {
                    return Err(self.expected("';' after the let statement"));
                }
            } else if self.is_word("set") && matches!(self.peek_at(1), Tok::Ident(_)) {
                options.extend(self.set_statement()?);
            } else if self.is_word("declare") || self.is_word("alias") || self.is_word("pattern") {
                return Err(self.error(
                    ErrorKind::Unsupported,
                    format!("the '{}' statement is not supported", self.peek().describe().trim_matches('\'')),
                    self.span(),
                ));
            } else {
                let p = self.pipeline()?;
                if !matches!(self.peek(), Tok::Sym(";") | Tok::Eof) {
                    return Err(self.expected("'|' or the end of the query"));
                }
                body = Some(p);
            }
        }
        match body {
            Some(body) => Ok(Query { lets, options, body }),
            None => Err(self.error(
                ErrorKind::Syntax,
                "the query has no tabular expression to run (only let statements)",
                self.span(),
            )),
        }
    }

    fn let_statement(&mut self) -> PResult<Let> {
        let start = self.expect_word("let")?;
        let name = self.name("a name after 'let'")?;
        self.expect_sym("=")?;
        // let f = (a: string, b: long = 1) { ... }
        if self.is_sym("(") && self.looks_like_params() {
            let params = self.params()?;
            self.expect_sym("{")?;
            let body = self.function_body()?;
            let end = self.expect_sym("}")?;
            return Ok(Let { name, value: LetValue::Function { params, body: Box::new(body) }, span: start.to(end) });
        }
        let p = self.pipeline()?;
        let span = start.to(p.span);
        Ok(Let { name, value: LetValue::Expr(pipeline_to_expr(p)), span })
    }

    /// After `=` in a let: `()` or `(name:` starts a parameter list.
    fn looks_like_params(&self) -> bool {
        matches!((self.peek_at(1), self.peek_at(2)), (Tok::Sym(")"), Tok::Sym("{")) | (Tok::Ident(_), Tok::Sym(":")))
    }

    fn params(&mut self) -> PResult<Vec<Param>> {
        self.expect_sym("(")?;
        let mut params = Vec::new();
        while !self.is_sym(")") {
            let name = self.name("a parameter name")?;
            self.expect_sym(":")?;
            let ty = if self.is_sym("(") { self.tabular_type()? } else { self.name("a parameter type")?.name };
            let default = if self.eat_sym("=") { Some(self.expr()?) } else { None };
            params.push(Param { name, ty, default });
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(params)
    }

    /// A tabular parameter's type: `(*)` (any columns) or `(name: type, ...)` (at least these
    /// columns), kept as its text.
    fn tabular_type(&mut self) -> PResult<String> {
        self.expect_sym("(")?;
        if self.eat_sym("*") {
            self.expect_sym(")")?;
            return Ok("(*)".to_string());
        }
        let mut columns = Vec::new();
        while !self.is_sym(")") {
            let column = self.name("a column name in a tabular parameter's type")?.name;
            self.expect_sym(":")?;
            let ty = self.name("a column type")?.name;
            columns.push(format!("{column}:{ty}"));
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(format!("({})", columns.join(", ")))
    }

    fn function_body(&mut self) -> PResult<Query> {
        let mut lets = Vec::new();
        loop {
            while self.eat_sym(";") {}
            if self.is_word("let") {
                lets.push(self.let_statement()?);
                continue;
            }
            let body = self.pipeline()?;
            while self.eat_sym(";") {}
            return Ok(Query { lets, options: Vec::new(), body });
        }
    }

    /// A source and its `| operator` stages; a plain scalar expression is a pipeline without
    /// stages.
    /// `set option [= value];`: the options the planner reads, with their value; the others
    /// (cache, truncation and client options) accepted and ignored.
    fn set_statement(&mut self) -> PResult<Option<SetOption>> {
        self.bump();
        let name = self.name("an option name after 'set'")?;
        if PLANNED_OPTIONS.contains(&name.name.as_str()) {
            self.expect_sym("=")?;
            return Ok(Some(SetOption { name, value: self.expr()? }));
        }
        while !matches!(self.peek(), Tok::Sym(";") | Tok::Eof) {
            self.bump();
        }
        Ok(None)
    }

    fn pipeline(&mut self) -> PResult<Pipeline> {
        self.nested(Self::pipeline_inner)
    }

    fn pipeline_inner(&mut self) -> PResult<Pipeline> {
        let start = self.span();
        let source = self.source()?;
        let mut ops = Vec::new();
        while self.is_sym("|") {
            self.bump();
            ops.push(self.operator()?);
        }
        Ok(Pipeline { source, ops, span: Span::new(start.start, self.prev_end()) })
    }

    fn source(&mut self) -> PResult<Source> {
        if self.is_word("union") && !matches!(self.peek_at(1), Tok::Sym("=") | Tok::Sym("==")) {
            self.bump();
            return Ok(Source::Union(self.union_body()?));
        }
        if self.is_word("datatable") && matches!(self.peek_at(1), Tok::Sym("(")) {
            self.bump();
            return self.datatable();
        }
        if self.is_word("print") && !matches!(self.peek_at(1), Tok::Sym("|") | Tok::Sym("=")) {
            self.bump();
            return Ok(Source::Print(self.named_exprs()?));
        }
        if self.is_word("range") && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Quoted(_)) {
            self.bump();
            let column = self.name("a column name after 'range'")?;
            self.expect_word("from")?;
            let from = self.expr()?;
            self.expect_word("to")?;
            let to = self.expr()?;
            self.expect_word("step")?;
            let step = self.expr()?;
            return Ok(Source::Range { column, from: Box::new(from), to: Box::new(to), step: Box::new(step) });
        }
        Ok(Source::Expr(self.expr()?))
    }

    /// `(name: type, ...)`: the columns of a `datatable` or of a plugin's output schema.
    fn column_list(&mut self) -> PResult<Vec<(Ident, String)>> {
        self.expect_sym("(")?;
        let mut columns = Vec::new();
        while !self.is_sym(")") {
            let name = self.name("a column name")?;
            self.expect_sym(":")?;
            let ty = self.name("a column type")?.name;
            columns.push((name, ty));
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(columns)
    }

    fn datatable(&mut self) -> PResult<Source> {
        let columns = self.column_list()?;
        if let Tok::Quoted(only) = self.peek().clone() {
            // `datatable(P:string) ['x']`: one string value, which the lexer read as a bracketed name.
            let span = self.span();
            self.bump();
            return Ok(Source::Datatable {
                columns,
                values: vec![Expr { kind: ExprKind::Literal(Literal::String(only)), span }],
            });
        }
        self.expect_sym("[")?;
        let mut values = Vec::new();
        while !self.is_sym("]") {
            values.push(self.expr()?);
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym("]")?;
        Ok(Source::Datatable { columns, values })
    }

    fn union_body(&mut self) -> PResult<Union> {
        let mut u = Union { kind: None, with_source: None, is_fuzzy: false, tables: Vec::new() };
        loop {
            if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.bump();
                self.bump();
                u.kind = Some(self.name("'inner' or 'outer'")?.name);
            } else if self.is_word("withsource") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.bump();
                self.bump();
                u.with_source = Some(self.name("a column name")?);
            } else if self.is_word("isfuzzy") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.bump();
                self.bump();
                u.is_fuzzy = self.name("true or false")?.name.eq_ignore_ascii_case("true");
            } else if self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                self.hint()?;
            } else {
                break;
            }
        }
        loop {
            let start = self.span();
            let table = if self.is_sym("(") {
                self.bump();
                let p = self.pipeline()?;
                self.expect_sym(")")?;
                p
            } else {
                let pat = self.name_pattern()?;
                let expr = Expr { kind: ExprKind::Name(pat.name), span: pat.span };
                Pipeline { source: Source::Expr(expr), ops: Vec::new(), span: start.to(pat.span) }
            };
            u.tables.push(table);
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(u)
    }

    /// `hint.name = value`: accepted and ignored.
    fn hint(&mut self) -> PResult<()> {
        self.expect_word("hint")?;
        self.expect_sym(".")?;
        self.name("a hint name")?;
        self.expect_sym("=")?;
        self.bump();
        Ok(())
    }

    fn direction(&mut self) -> Option<SortDirection> {
        if self.eat_word("asc") {
            Some(SortDirection::Asc)
        } else if self.eat_word("desc") {
            Some(SortDirection::Desc)
        } else {
            None
        }
    }

    fn sort_key(&mut self) -> PResult<SortKey> {
        let expr = self.expr()?;
        let direction = self.direction();
        let nulls_first = if self.eat_word("nulls") {
            if self.eat_word("first") {
                Some(true)
            } else if self.eat_word("last") {
                Some(false)
            } else {
                return Err(self.expected("'first' or 'last' after 'nulls'"));
            }
        } else {
            None
        };
        Ok(SortKey { expr, direction, nulls_first })
    }

    fn name_list(&mut self) -> PResult<Vec<Ident>> {
        let mut names = vec![self.name_pattern()?];
        while self.eat_sym(",") {
            names.push(self.name_pattern()?);
        }
        Ok(names)
    }

    fn named_exprs(&mut self) -> PResult<Vec<NamedExpr>> {
        let mut items = vec![self.named_expr()?];
        while self.eat_sym(",") {
            items.push(self.named_expr()?);
        }
        Ok(items)
    }

    fn named_expr(&mut self) -> PResult<NamedExpr> {
        // name = expr
        if matches!(self.peek(), Tok::Ident(_) | Tok::Quoted(_)) && matches!(self.peek_at(1), Tok::Sym("=")) {
            let name = self.name("a column name")?;
            self.bump();
            return Ok(NamedExpr { names: vec![name], expr: self.expr()? });
        }
        // (a, b) = expr
        if self.is_sym("(") {
            let save = self.pos;
            self.bump();
            let mut names = Vec::new();
            let mut ok = true;
            loop {
                match self.name("a column name") {
                    Ok(n) => names.push(n),
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
            if ok && self.eat_sym(")") && self.eat_sym("=") {
                return Ok(NamedExpr { names, expr: self.expr()? });
            }
            self.pos = save;
        }
        Ok(NamedExpr { names: Vec::new(), expr: self.expr()? })
    }
}
