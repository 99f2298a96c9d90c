//! Expressions, by precedence: `or` < `and` < comparisons and string operators < `+ -` <
//! `* / %` < unary `-` < postfix (calls, `.member`, `[index]`) < primaries and literals.

use super::*;

impl Parser<'_> {
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.nested(Self::or_expr)
    }

    /// Runs `f` one nesting level deeper, refusing past `MAX_NESTING`.
    #[recursive::recursive]
    pub(super) fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
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

    pub(super) fn cmp_expr(&mut self) -> PResult<Expr> {
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

    pub(super) fn add_expr(&mut self) -> PResult<Expr> {
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
            Tok::Sym("(") => self.parenthesized(span),
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

    /// `( ... )`: a parenthesised expression or pipeline, or a tuple `(a, b)`.
    fn parenthesized(&mut self, start: Span) -> PResult<Expr> {
        self.bump();
        let p = self.pipeline()?;
        if self.is_sym(",") {
            let mut values = vec![pipeline_to_expr(p)];
            while self.eat_sym(",") {
                values.push(self.expr()?);
            }
            let end = self.expect_sym(")")?;
            return Ok(Expr { kind: ExprKind::List(values), span: start.to(end) });
        }
        let end = self.expect_sym(")")?;
        let mut e = pipeline_to_expr(p);
        e.span = start.to(end);
        Ok(e)
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
        if matches!(word, "real" | "double")
            && let Some(literal) = self.special_real(start)
        {
            return Ok(Some(literal));
        }
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

    /// `real(nan)`, `real(inf)`, `real(+inf)`, `real(-inf)`. Called with `(` next.
    fn special_real(&mut self, start: Span) -> Option<Expr> {
        let (sign, word_at) = match self.peek_at(1) {
            Tok::Sym("+") => (1.0, 2),
            Tok::Sym("-") => (-1.0, 2),
            _ => (1.0, 1),
        };
        let value = match (self.peek_at(word_at), self.peek_at(word_at + 1)) {
            (Tok::Ident(w), Tok::Sym(")")) if w == "nan" && word_at == 1 => f64::NAN,
            (Tok::Ident(w), Tok::Sym(")")) if w == "inf" => sign * f64::INFINITY,
            _ => return None,
        };
        for _ in 0..word_at + 1 {
            self.bump();
        }
        let end = self.bump().span;
        Some(Expr { kind: ExprKind::Literal(Literal::Real(value)), span: start.to(end) })
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
pub(super) fn pipeline_to_expr(p: Pipeline) -> Expr {
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
