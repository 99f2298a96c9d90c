//! Recursive-descent parser over the tokens of [`crate::lexer`], with Kusto's precedence:
//! `or` < `and` < comparisons and string operators < `+ -` < `* / %` < unary `-` < postfix
//! (calls, `.member`, `[index]`).
//!
//! Errors name what was expected and what was found; KQL that is valid but not supported names
//! the operator.

use crate::ast::*;
use crate::error::{ErrorKind, KqlError, Span};
use crate::lexer::{Tok, Token, tokenize};

/// Tabular operators that are valid KQL but not supported.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "lookup",
    "mv-apply",
    "top-nested",
    "top-hitters",
    "getschema",
    "invoke",
    "sample",
    "sample-distinct",
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
                // `set option = value;`: query options, accepted and ignored.
                while !matches!(self.peek(), Tok::Sym(";") | Tok::Eof) {
                    self.bump();
                }
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
            Some(body) => Ok(Query { lets, body }),
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
            let ty = self.name("a parameter type")?.name;
            let default = if self.eat_sym("=") { Some(self.expr()?) } else { None };
            params.push(Param { name, ty, default });
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(params)
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
            return Ok(Query { lets, body });
        }
    }

    /// A source and its `| operator` stages; a plain scalar expression is a pipeline without
    /// stages.
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
            return Ok(Source::Range { column, from, to, step });
        }
        Ok(Source::Expr(self.expr()?))
    }

    fn datatable(&mut self) -> PResult<Source> {
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

    fn operator(&mut self) -> PResult<Op> {
        let start = self.span();
        let word = match self.peek().clone() {
            Tok::Ident(w) => w,
            _ => return Err(self.expected(OPERATORS_HINT)),
        };
        if UNSUPPORTED_OPERATORS.contains(&word.as_str()) {
            return Err(self.error(ErrorKind::Unsupported, format!("the '{word}' operator is not supported"), start));
        }
        self.bump();
        let kind = match word.as_str() {
            "where" | "filter" => OpKind::Where(self.expr()?),
            "project" => OpKind::Project(self.named_exprs()?),
            "extend" => OpKind::Extend(self.named_exprs()?),
            "project-away" => OpKind::ProjectAway(self.name_list()?),
            "project-keep" => OpKind::ProjectKeep(self.name_list()?),
            "project-rename" => {
                let mut pairs = Vec::new();
                loop {
                    let new = self.name("a new column name")?;
                    self.expect_sym("=")?;
                    let old = self.name("the column to rename")?;
                    pairs.push((new, old));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                OpKind::ProjectRename(pairs)
            }
            "project-reorder" => {
                let mut cols = Vec::new();
                loop {
                    let name = self.name_pattern()?;
                    let dir = self.direction();
                    cols.push((name, dir));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                OpKind::ProjectReorder(cols)
            }
            "summarize" => {
                while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                    self.hint()?;
                }
                let aggregates = if self.is_word("by") { Vec::new() } else { self.named_exprs()? };
                let by = if self.eat_word("by") { self.named_exprs()? } else { Vec::new() };
                if aggregates.is_empty() && by.is_empty() {
                    return Err(self.expected("an aggregate or 'by' after 'summarize'"));
                }
                OpKind::Summarize { aggregates, by }
            }
            "sort" | "order" => {
                self.expect_word("by")?;
                let mut keys = vec![self.sort_key()?];
                while self.eat_sym(",") {
                    keys.push(self.sort_key()?);
                }
                OpKind::Sort(keys)
            }
            "take" | "limit" => OpKind::Take(self.expr()?),
            "top" => {
                let count = self.expr()?;
                self.expect_word("by")?;
                OpKind::Top { count, key: self.sort_key()? }
            }
            "distinct" => {
                if self.is_sym("*") {
                    let span = self.bump().span;
                    OpKind::Distinct(vec![NamedExpr { names: vec![], expr: Expr { kind: ExprKind::Star, span } }])
                } else {
                    OpKind::Distinct(self.named_exprs()?)
                }
            }
            "count" => OpKind::Count,
            "join" => OpKind::Join(Box::new(self.join()?)),
            "union" => OpKind::Union(self.union_body()?),
            "render" => {
                let name = match self.peek().clone() {
                    Tok::Ident(n) => {
                        self.bump();
                        n
                    }
                    _ => return Err(self.expected("a visualization name after 'render'")),
                };
                let properties = if self.is_word("with") { self.render_properties()? } else { Vec::new() };
                self.skip_to_stage_end();
                OpKind::Render(Render { visualization: name, properties })
            }
            "parse" => self.parse_op()?,
            "search" => self.search()?,
            "evaluate" => {
                while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                    self.hint()?;
                }
                let plugin = self.name("a plugin name after 'evaluate'")?;
                self.expect_sym("(")?;
                let mut args = Vec::new();
                if !self.eat_sym(")") {
                    loop {
                        args.push(self.expr()?);
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                    self.expect_sym(")")?;
                }
                OpKind::Evaluate { plugin, args }
            }
            "make-series" => self.make_series()?,
            "mv-expand" => {
                if matches!(self.peek(), Tok::Ident(w) if w == "bagexpansion" || w == "with_itemindex")
                    && matches!(self.peek_at(1), Tok::Sym("="))
                {
                    return Err(self.error(
                        ErrorKind::Unsupported,
                        format!("mv-expand option '{}' is not supported", self.peek().describe().trim_matches('\'')),
                        self.span(),
                    ));
                }
                let mut items = Vec::new();
                loop {
                    let mut item = self.named_expr()?;
                    if self.eat_word("to") {
                        self.expect_word("typeof")?;
                        self.expect_sym("(")?;
                        let ty = self.name("a type")?;
                        self.expect_sym(")")?;
                        let span = item.expr.span.to(ty.span);
                        item.expr = Expr {
                            kind: ExprKind::Call {
                                name: Ident { name: format!("to{}", ty.name), span: ty.span },
                                args: vec![item.expr],
                            },
                            span,
                        };
                    }
                    items.push(item);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                let limit = if self.eat_word("limit") { Some(self.expr()?) } else { None };
                OpKind::MvExpand { items, limit }
            }
            "as" => {
                while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                    self.hint()?;
                }
                OpKind::As(self.name("a name after 'as'")?)
            }
            "serialize" => {
                let items = if matches!(self.peek(), Tok::Sym("|") | Tok::Sym(";") | Tok::Sym(")") | Tok::Eof) {
                    Vec::new()
                } else {
                    self.named_exprs()?
                };
                OpKind::Serialize(items)
            }
            _ => {
                return Err(self.error(ErrorKind::Syntax, format!("expected {OPERATORS_HINT}, found '{word}'"), start));
            }
        };
        if !matches!(self.peek(), Tok::Sym("|") | Tok::Sym(";") | Tok::Sym(")") | Tok::Sym("}") | Tok::Eof) {
            return Err(self.expected("'|' or the end of the query"));
        }
        Ok(Op { kind, span: Span::new(start.start, self.prev_end()) })
    }

    /// `with (name = value, ...)` after `render`: each value a string, a name, a number or a
    /// parenthesised list of names.
    fn render_properties(&mut self) -> PResult<Vec<(String, String)>> {
        self.bump();
        self.expect_sym("(")?;
        let mut out = Vec::new();
        while !matches!(self.peek(), Tok::Sym(")") | Tok::Eof) {
            let name = self.name("a render property name")?.name;
            self.expect_sym("=")?;
            let value = match self.peek().clone() {
                Tok::Ident(v) | Tok::Str(v) | Tok::Quoted(v) => {
                    self.bump();
                    v
                }
                Tok::Long(n) => {
                    self.bump();
                    n.to_string()
                }
                Tok::Sym("(") => {
                    self.bump();
                    let mut names = Vec::new();
                    while !matches!(self.peek(), Tok::Sym(")") | Tok::Eof) {
                        names.push(self.name("a column name in the list")?.name);
                        if matches!(self.peek(), Tok::Sym(",")) {
                            self.bump();
                        }
                    }
                    self.expect_sym(")")?;
                    names.join(",")
                }
                _ => return Err(self.expected("a value for the render property")),
            };
            out.push((name, value));
            if matches!(self.peek(), Tok::Sym(",")) {
                self.bump();
            }
        }
        self.expect_sym(")")?;
        Ok(out)
    }

    /// Skips the rest of a stage (the arguments of `render`).
    fn skip_to_stage_end(&mut self) {
        let mut depth = 0i32;
        loop {
            match self.peek() {
                Tok::Eof => return,
                Tok::Sym("(") | Tok::Sym("[") | Tok::Sym("{") => depth += 1,
                Tok::Sym(")") | Tok::Sym("]") | Tok::Sym("}") if depth == 0 => return,
                Tok::Sym(")") | Tok::Sym("]") | Tok::Sym("}") => depth -= 1,
                Tok::Sym("|") | Tok::Sym(";") if depth == 0 => return,
                _ => {}
            }
            self.bump();
        }
    }

    fn parse_op(&mut self) -> PResult<OpKind> {
        let mut kind = None;
        while matches!(self.peek(), Tok::Ident(w) if w == "kind" || w == "flags")
            && matches!(self.peek_at(1), Tok::Sym("="))
        {
            let opt = self.name("an option")?.name;
            self.bump();
            let v = self.name("an option value")?.name;
            if opt == "kind" {
                kind = Some(v);
            }
        }
        let expr = self.expr()?;
        self.expect_word("with")?;
        let mut pattern = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Str(s) => {
                    self.bump();
                    pattern.push(ParsePart::Literal(s));
                }
                Tok::Sym("*") => {
                    self.bump();
                    pattern.push(ParsePart::Wildcard);
                }
                Tok::Ident(_) | Tok::Quoted(_) => {
                    let name = self.name("a column name")?;
                    let ty = if self.eat_sym(":") { Some(self.name("a column type")?.name) } else { None };
                    pattern.push(ParsePart::Column { name, ty });
                }
                _ => break,
            }
        }
        if pattern.is_empty() {
            return Err(self.expected("a parse pattern (strings, column names and '*')"));
        }
        Ok(OpKind::Parse { expr, kind, pattern })
    }

    /// `search [kind=case_sensitive] Predicate` in a pipeline, as a `where`: `"term"` is a term
    /// of any column, `Col:"term"` one of `Col`; `*` in a term is a wildcard; terms combine with
    /// `and` (also when written side by side), `or`, `not(...)`; other predicates are KQL.
    fn search(&mut self) -> PResult<OpKind> {
        let mut case_sensitive = false;
        if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
            self.bump();
            self.bump();
            case_sensitive = self.name("case_sensitive or case_insensitive")?.name == "case_sensitive";
        }
        if self.is_word("in") {
            return Err(self.error(ErrorKind::Unsupported, "search in (tables) is not supported", self.span()));
        }
        Ok(OpKind::Where(self.search_or(case_sensitive)?))
    }

    fn search_or(&mut self, cs: bool) -> PResult<Expr> {
        let mut e = self.search_and(cs)?;
        while self.eat_word("or") {
            let r = self.search_and(cs)?;
            let span = e.span.to(r.span);
            e = Expr { kind: ExprKind::Binary { op: BinaryOp::Or, left: Box::new(e), right: Box::new(r) }, span };
        }
        Ok(e)
    }

    fn search_and(&mut self, cs: bool) -> PResult<Expr> {
        let mut e = self.search_term(cs)?;
        loop {
            let explicit = self.eat_word("and");
            if !explicit && matches!(self.peek(), Tok::Sym("|") | Tok::Sym(")") | Tok::Sym(";") | Tok::Eof) {
                return Ok(e);
            }
            if !explicit && self.is_word("or") {
                return Ok(e);
            }
            let r = self.search_term(cs)?;
            let span = e.span.to(r.span);
            e = Expr { kind: ExprKind::Binary { op: BinaryOp::And, left: Box::new(e), right: Box::new(r) }, span };
        }
    }

    fn search_term(&mut self, cs: bool) -> PResult<Expr> {
        let start = self.span();
        if self.is_word("not") && matches!(self.peek_at(1), Tok::Sym("(")) {
            self.bump();
            self.bump();
            let inner = self.search_or(cs)?;
            self.expect_sym(")")?;
            let span = Span::new(start.start, self.prev_end());
            let name = Ident { name: "not".into(), span: start };
            return Ok(Expr { kind: ExprKind::Call { name, args: vec![inner] }, span });
        }
        if self.eat_sym("(") {
            let inner = self.search_or(cs)?;
            self.expect_sym(")")?;
            return Ok(inner);
        }
        let term = |target: Expr, text: String, span: Span| -> Expr {
            let (name, t) = match (text.strip_prefix('*'), text.strip_suffix('*')) {
                (Some(inner), Some(_)) if text.len() > 1 => ("contains", inner.trim_end_matches('*').to_string()),
                (Some(inner), None) => ("hassuffix", inner.to_string()),
                (None, Some(inner)) => ("hasprefix", inner.to_string()),
                _ => ("has", text),
            };
            let name = crate::ast::STRING_OPERATORS
                .iter()
                .copied()
                .find(|o| *o == if cs { format!("{name}_cs") } else { name.to_string() })
                .unwrap_or(name);
            let right = Expr { kind: ExprKind::Literal(Literal::String(t)), span };
            Expr {
                kind: ExprKind::Binary {
                    op: BinaryOp::Str(StrOp { name, negated: false }),
                    left: Box::new(target),
                    right: Box::new(right),
                },
                span,
            }
        };
        if let Tok::Str(text) = self.peek().clone() {
            self.bump();
            let star = Expr { kind: ExprKind::Star, span: start };
            return Ok(term(star, text, start));
        }
        if matches!(self.peek(), Tok::Ident(_) | Tok::Quoted(_))
            && matches!(self.peek_at(1), Tok::Sym(":"))
            && matches!(self.peek_at(2), Tok::Str(_))
        {
            let col = self.name("a column name")?;
            self.bump();
            let Tok::Str(text) = self.bump().tok else { unreachable!("checked above") };
            let span = Span::new(start.start, self.prev_end());
            let target = Expr { kind: ExprKind::Name(col.name), span: col.span };
            return Ok(term(target, text, span));
        }
        self.unary_for_search()
    }

    /// A KQL predicate inside `search` (`Size > 10`), up to a comparison.
    fn unary_for_search(&mut self) -> PResult<Expr> {
        self.cmp_expr()
    }

    /// `make-series [Name =] Agg [default = v], ... on Axis (from A to B step S | in range(A, B, S)) [by ...]`.
    fn make_series(&mut self) -> PResult<OpKind> {
        while self.is_word("kind") || (self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym("."))) {
            if self.is_word("kind") {
                self.bump();
                self.expect_sym("=")?;
                self.name("a make-series kind")?;
            } else {
                self.hint()?;
            }
        }
        let mut aggregates = Vec::new();
        loop {
            let agg = self.named_expr()?;
            let default = if self.is_word("default") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.bump();
                self.bump();
                Some(self.expr()?)
            } else {
                None
            };
            aggregates.push((agg, default));
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_word("on")?;
        // Not expr(): `on T in range(...)` is not the `in` operator.
        let axis = self.add_expr()?;
        let (from, to, step) = if self.eat_word("in") {
            self.expect_word("range")?;
            self.expect_sym("(")?;
            let a = self.expr()?;
            self.expect_sym(",")?;
            let b = self.expr()?;
            self.expect_sym(",")?;
            let s = self.expr()?;
            self.expect_sym(")")?;
            (Some(a), Some(b), s)
        } else {
            let from = if self.eat_word("from") { Some(self.expr()?) } else { None };
            let to = if self.eat_word("to") { Some(self.expr()?) } else { None };
            self.expect_word("step")?;
            (from, to, self.expr()?)
        };
        let by = if self.eat_word("by") { self.named_exprs()? } else { Vec::new() };
        Ok(OpKind::MakeSeries(Box::new(MakeSeries { aggregates, axis, from, to, step, by })))
    }

    fn join(&mut self) -> PResult<Join> {
        let mut kind = None;
        loop {
            if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.bump();
                self.bump();
                kind = Some(self.name("a join kind")?);
            } else if self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                self.hint()?;
            } else {
                break;
            }
        }
        let right = if self.is_sym("(") {
            self.bump();
            let p = self.pipeline()?;
            self.expect_sym(")")?;
            p
        } else {
            let start = self.span();
            let name = self.name("the right side of the join: a table or a parenthesised query")?;
            Pipeline {
                source: Source::Expr(Expr { kind: ExprKind::Name(name.name), span: name.span }),
                ops: Vec::new(),
                span: start.to(name.span),
            }
        };
        self.expect_word("on")?;
        let mut on = Vec::new();
        loop {
            on.push(self.join_condition()?);
            if !(self.eat_sym(",") || self.eat_word("and")) {
                break;
            }
        }
        Ok(Join { kind, right, on })
    }

    fn join_condition(&mut self) -> PResult<JoinCondition> {
        let side = |p: &mut Self, which: &str| -> PResult<Ident> {
            p.expect_word(which)?;
            p.expect_sym(".")?;
            p.name("a column name")
        };
        if self.is_word("$left") || self.is_word("$right") {
            let first_is_left = self.is_word("$left");
            let a = side(self, if first_is_left { "$left" } else { "$right" })?;
            self.expect_sym("==")?;
            let b = side(self, if first_is_left { "$right" } else { "$left" })?;
            let (left, right) = if first_is_left { (a, b) } else { (b, a) };
            return Ok(JoinCondition::Pair { left, right });
        }
        Ok(JoinCondition::Same(self.name("a join key column or $left.column == $right.column")?))
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

    // ---- expressions ----

    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.nested(Self::or_expr)
    }

    /// Runs `f` one nesting level deeper, refusing past `MAX_NESTING`.
    #[recursive::recursive]
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_NESTING {
            return Err(self.error(
                ErrorKind::Unsupported,
                format!("the query nests expressions more than {MAX_NESTING} levels deep"),
                self.span(),
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
        let span = left.span.to(right.span);
        Expr { kind: ExprKind::Binary { op, left: Box::new(left), right: Box::new(right) }, span }
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        let mut left = self.and_expr()?;
        while self.eat_word("or") {
            let right = self.and_expr()?;
            left = Self::binary(left, BinaryOp::Or, right);
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        let mut left = self.cmp_expr()?;
        while self.eat_word("and") {
            let right = self.cmp_expr()?;
            left = Self::binary(left, BinaryOp::And, right);
        }
        Ok(left)
    }

    fn cmp_expr(&mut self) -> PResult<Expr> {
        let mut left = self.add_expr()?;
        loop {
            let op = match self.peek().clone() {
                Tok::Sym("==") => BinaryOp::Eq,
                Tok::Sym("!=") | Tok::Sym("<>") => BinaryOp::NotEq,
                Tok::Sym("=~") => BinaryOp::EqTilde,
                Tok::Sym("!~") => BinaryOp::NotEqTilde,
                Tok::Sym("<") => BinaryOp::Lt,
                Tok::Sym("<=") => BinaryOp::LtEq,
                Tok::Sym(">") => BinaryOp::Gt,
                Tok::Sym(">=") => BinaryOp::GtEq,
                Tok::Ident(w) if matches!(w.as_str(), "in" | "!in" | "in~" | "!in~") => {
                    self.bump();
                    let list = self.paren_list()?;
                    let span = left.span.to(Span::new(self.prev_end(), self.prev_end()));
                    left = Expr {
                        kind: ExprKind::In {
                            expr: Box::new(left),
                            list,
                            negated: w.starts_with('!'),
                            case_insensitive: w.ends_with('~'),
                        },
                        span,
                    };
                    continue;
                }
                Tok::Ident(w) if w == "between" || w == "!between" => {
                    self.bump();
                    self.expect_sym("(")?;
                    let low = self.add_expr()?;
                    self.expect_sym("..")?;
                    let high = self.add_expr()?;
                    let end = self.expect_sym(")")?;
                    let span = left.span.to(end);
                    left = Expr {
                        kind: ExprKind::Between {
                            expr: Box::new(left),
                            low: Box::new(low),
                            high: Box::new(high),
                            negated: w.starts_with('!'),
                        },
                        span,
                    };
                    continue;
                }
                Tok::Ident(w) if w == "matches" && matches!(self.peek_at(1), Tok::Ident(r) if r == "regex") => {
                    self.bump();
                    BinaryOp::Str(StrOp { name: "matches regex", negated: false })
                }
                Tok::Ident(w) => {
                    let (negated, base) = match w.strip_prefix('!') {
                        Some(b) => (true, b),
                        None => (false, w.as_str()),
                    };
                    match STRING_OPERATORS.iter().find(|o| **o == base) {
                        Some(name) => BinaryOp::Str(StrOp { name, negated }),
                        None => break,
                    }
                }
                _ => break,
            };
            self.bump();
            let right = match op {
                BinaryOp::Str(StrOp { name: "has_any" | "has_all", .. }) => {
                    let start = self.span();
                    let list = self.paren_list()?;
                    Expr { kind: ExprKind::List(list), span: start.to(Span::new(self.prev_end(), self.prev_end())) }
                }
                _ => self.add_expr()?,
            };
            left = Self::binary(left, op, right);
        }
        Ok(left)
    }

    /// `( a, b, ... )` where an element may be a tabular expression.
    fn paren_list(&mut self) -> PResult<Vec<Expr>> {
        self.expect_sym("(")?;
        let mut items = Vec::new();
        while !self.is_sym(")") {
            let p = self.pipeline()?;
            items.push(pipeline_to_expr(p));
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym(")")?;
        Ok(items)
    }

    fn add_expr(&mut self) -> PResult<Expr> {
        let mut left = self.mul_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("+") => BinaryOp::Add,
                Tok::Sym("-") => BinaryOp::Sub,
                _ => break,
            };
            self.bump();
            let right = self.mul_expr()?;
            left = Self::binary(left, op, right);
        }
        Ok(left)
    }

    fn mul_expr(&mut self) -> PResult<Expr> {
        let mut left = self.unary_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => BinaryOp::Mul,
                Tok::Sym("/") => BinaryOp::Div,
                Tok::Sym("%") => BinaryOp::Mod,
                _ => break,
            };
            self.bump();
            let right = self.unary_expr()?;
            left = Self::binary(left, op, right);
        }
        Ok(left)
    }

    fn unary_expr(&mut self) -> PResult<Expr> {
        if self.is_sym("-") {
            let start = self.bump().span;
            let inner = self.nested(Self::unary_expr)?;
            // Fold negative literals.
            let span = start.to(inner.span);
            return Ok(match inner.kind {
                ExprKind::Literal(Literal::Long(n)) if n != i64::MIN => {
                    Expr { kind: ExprKind::Literal(Literal::Long(-n)), span }
                }
                ExprKind::Literal(Literal::Real(n)) => Expr { kind: ExprKind::Literal(Literal::Real(-n)), span },
                ExprKind::Literal(Literal::Timespan(n)) if n != i64::MIN => {
                    Expr { kind: ExprKind::Literal(Literal::Timespan(-n)), span }
                }
                _ => Expr { kind: ExprKind::Negate(Box::new(inner)), span },
            });
        }
        if self.is_sym("+") {
            self.bump();
            return self.nested(Self::unary_expr);
        }
        self.postfix_expr()
    }

    fn postfix_expr(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.is_sym(".") && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Quoted(_)) {
                self.bump();
                let name = self.name("a property name")?;
                let span = e.span.to(name.span);
                e = Expr { kind: ExprKind::Member { target: Box::new(e), name }, span };
            } else if self.is_sym("[") {
                self.bump();
                let index = self.expr()?;
                let end = self.expect_sym("]")?;
                let span = e.span.to(end);
                e = Expr { kind: ExprKind::Index { target: Box::new(e), index: Box::new(index) }, span };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let tok = self.peek().clone();
        let span = self.span();
        let lit = |l: Literal| Expr { kind: ExprKind::Literal(l), span };
        match tok {
            Tok::Long(n) => {
                self.bump();
                Ok(lit(Literal::Long(n)))
            }
            Tok::Real(n) => {
                self.bump();
                Ok(lit(Literal::Real(n)))
            }
            Tok::Str(s) => {
                self.bump();
                // Adjacent string literals concatenate.
                let mut s = s;
                let mut end = span;
                while let Tok::Str(next) = self.peek().clone() {
                    end = self.bump().span;
                    s.push_str(&next);
                }
                Ok(Expr { kind: ExprKind::Literal(Literal::String(s)), span: span.to(end) })
            }
            Tok::Timespan(n) => {
                self.bump();
                Ok(lit(Literal::Timespan(n)))
            }
            Tok::TypedLit { ty, raw, inner } => {
                self.bump();
                Ok(lit(self.raw_literal(&ty, raw.trim(), inner)?))
            }
            Tok::Quoted(s) => {
                self.bump();
                Ok(Expr { kind: ExprKind::Name(s), span })
            }
            Tok::Sym("*") => {
                self.bump();
                Ok(Expr { kind: ExprKind::Star, span })
            }
            Tok::Sym("(") => {
                self.bump();
                let p = self.pipeline()?;
                let end = self.expect_sym(")")?;
                let mut e = pipeline_to_expr(p);
                e.span = span.to(end);
                Ok(e)
            }
            Tok::Sym("{") => Err(self.error(
                ErrorKind::Syntax,
                "unexpected '{': a workbook parameter placeholder such as {TimeRange} must be replaced by a value before the query runs",
                span,
            )),
            Tok::Ident(w) if w == "true" || w == "True" || w == "TRUE" => {
                self.bump();
                Ok(lit(Literal::Bool(true)))
            }
            Tok::Ident(w) if w == "false" || w == "False" || w == "FALSE" => {
                self.bump();
                Ok(lit(Literal::Bool(false)))
            }
            Tok::Ident(w) if !w.starts_with('!') => {
                self.bump();
                if self.is_sym("(") {
                    if let Some(l) = self.typed_literal(&w, span)? {
                        return Ok(l);
                    }
                    self.bump();
                    let mut args = Vec::new();
                    while !self.is_sym(")") {
                        if matches!(self.peek(), Tok::Ident(_) | Tok::Quoted(_)) && matches!(self.peek_at(1), Tok::Sym("=")) {
                            let name = self.name("an argument name")?;
                            self.bump();
                            let value = self.expr()?;
                            let span = name.span.to(value.span);
                            args.push(Expr { kind: ExprKind::NamedArg { name, value: Box::new(value) }, span });
                            if !self.eat_sym(",") {
                                break;
                            }
                            continue;
                        }
                        let p = self.pipeline()?;
                        args.push(pipeline_to_expr(p));
                        if !self.eat_sym(",") {
                            break;
                        }
                    }
                    let end = self.expect_sym(")")?;
                    return Ok(Expr { kind: ExprKind::Call { name: Ident { name: w, span }, args }, span: span.to(end) });
                }
                // `Security*` in a table position: a wildcard name.
                if self.is_sym("*") && self.span().start == span.end && self.wildcard_follows() {
                    let end = self.bump().span;
                    return Ok(Expr { kind: ExprKind::Name(format!("{w}*")), span: span.to(end) });
                }
                Ok(Expr { kind: ExprKind::Name(w), span })
            }
            _ => Err(self.expected("an expression")),
        }
    }

    /// After `name` and an adjacent `*`: a wildcard name when nothing that could be the
    /// right operand of a multiplication follows.
    fn wildcard_follows(&self) -> bool {
        matches!(self.peek_at(1), Tok::Sym(",") | Tok::Sym("|") | Tok::Sym(")") | Tok::Sym(";") | Tok::Eof)
    }

    /// `type(null)` literals of the types whose other values are written as expressions
    /// (`int(null)`, `string(null)`...). Called with `(` next.
    fn typed_literal(&mut self, word: &str, start: Span) -> PResult<Option<Expr>> {
        const TYPES: &[&str] = &["int", "long", "real", "double", "bool", "boolean", "string", "decimal"];
        let is_null =
            matches!(self.peek_at(1), Tok::Ident(w) if w == "null") && matches!(self.peek_at(2), Tok::Sym(")"));
        if !TYPES.contains(&word) || !is_null {
            return Ok(None);
        }
        self.bump();
        self.bump();
        let end = self.bump().span;
        Ok(Some(Expr {
            kind: ExprKind::Literal(Literal::TypedNull(canonical_type(word).to_string())),
            span: start.to(end),
        }))
    }

    /// The value of `datetime(...)`, `timespan(...)`/`time(...)`, `dynamic(...)`, `guid(...)`.
    fn raw_literal(&self, ty: &str, raw: &str, inner: Span) -> PResult<Literal> {
        if raw == "null" {
            return Ok(Literal::TypedNull(canonical_type(ty).to_string()));
        }
        let bad =
            |what: &str| self.error(ErrorKind::Syntax, format!("invalid {ty} literal '{raw}': expected {what}"), inner);
        Ok(match ty {
            "datetime" | "date" => {
                Literal::DateTime(fimlake_kusto::datetime::parse(raw).map_err(|e| match e.reason {
                    fimlake_kusto::datetime::Reason::Shape => bad("a date such as 2024-05-01 or 2024-05-01T12:00:00Z"),
                    fimlake_kusto::datetime::Reason::NoSuchDate => self.error(
                        ErrorKind::Syntax,
                        format!("invalid {ty} literal '{raw}': there is no such day, hour or offset"),
                        inner,
                    ),
                })?)
            }
            "timespan" | "time" => Literal::Timespan(
                parse_timespan_literal(raw).ok_or_else(|| bad("a value such as 1d, 2h, 15 seconds or 0.12:34:56"))?,
            ),
            "dynamic" => Literal::Dynamic(parse_dynamic(raw).ok_or_else(|| bad("a JSON array, object or value"))?),
            _ => Literal::String(raw.to_string()),
        })
    }
}

/// A pipeline without stages whose source is an expression is that expression.
fn pipeline_to_expr(p: Pipeline) -> Expr {
    match p {
        Pipeline { source: Source::Expr(e), ops, .. } if ops.is_empty() => e,
        p => {
            let span = p.span;
            Expr { kind: ExprKind::Pipeline(Box::new(p)), span }
        }
    }
}

/// The inside of `timespan(...)`: `2d`, `15 seconds`, `2` (days), `0.12:34:56.7`, `12:34:56`.
fn parse_timespan_literal(raw: &str) -> Option<i64> {
    if let Ok(toks) = tokenize(raw) {
        match toks.as_slice() {
            [Token { tok: Tok::Timespan(ns), .. }, Token { tok: Tok::Eof, .. }] => return Some(*ns),
            [Token { tok: Tok::Long(n), .. }, Token { tok: Tok::Eof, .. }] => return n.checked_mul(86_400_000_000_000),
            [Token { tok: Tok::Long(n), .. }, Token { tok: Tok::Ident(unit), .. }, Token { tok: Tok::Eof, .. }] => {
                let t = tokenize(&format!("{n}{unit}")).ok()?;
                if let [Token { tok: Tok::Timespan(ns), .. }, _] = t.as_slice() {
                    return Some(*ns);
                }
            }
            _ => {}
        }
    }
    fimlake_kusto::timespan::parse(raw)
}

/// The inside of `dynamic(...)`: JSON, also with single-quoted strings as KQL allows.
fn parse_dynamic(raw: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str(raw) {
        return Some(v);
    }
    // Re-quote KQL strings ('x' or "x", with KQL escapes) as JSON strings.
    let mut json = String::new();
    let mut i = 0;
    while i < raw.len() {
        let rest = &raw[i..];
        let c = rest.chars().next()?;
        if c == '\'' || c == '"' {
            let (value, len) = crate::lexer::read_string(rest, false).ok()?;
            json.push_str(&serde_json::to_string(&value).ok()?);
            i += len;
        } else {
            json.push(c);
            i += c.len_utf8();
        }
    }
    serde_json::from_str(&json).ok()
}
