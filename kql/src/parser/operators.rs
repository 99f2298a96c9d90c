//! Tabular operators: `where`, `project`, `summarize`, `join`, `parse`, `search`, `make-series`...

use super::*;

impl Parser<'_> {
    pub(super) fn operator(&mut self) -> PResult<Op> {
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
            "project-rename" => self.project_rename()?,
            "project-reorder" => self.project_reorder()?,
            "summarize" => self.summarize()?,
            "sort" | "order" => self.sort()?,
            "take" | "limit" => OpKind::Take(self.expr()?),
            "top" => self.top()?,
            "distinct" => self.distinct()?,
            "count" => OpKind::Count,
            "join" => OpKind::Join(Box::new(self.join()?)),
            "lookup" => OpKind::Lookup(Box::new(self.join()?)),
            "getschema" => OpKind::GetSchema,
            "sample" => OpKind::Sample(self.expr()?),
            "sample-distinct" => {
                let count = self.expr()?;
                self.expect_word("of")?;
                OpKind::SampleDistinct { count, column: self.expr()? }
            }
            "union" => OpKind::Union(self.union_body()?),
            "render" => self.render()?,
            "parse" => self.parse_op()?,
            "search" => self.search()?,
            "evaluate" => self.evaluate()?,
            "invoke" => self.invoke()?,
            "make-series" => self.make_series()?,
            "mv-expand" => self.mv_expand()?,
            "mv-apply" => self.mv_apply()?,
            "top-nested" => self.top_nested()?,
            "as" => self.as_operator()?,
            "serialize" => self.serialize()?,
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

    /// The operator `project-rename` after its name.
    fn project_rename(&mut self) -> PResult<OpKind> {
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
        Ok(OpKind::ProjectRename(pairs))
    }

    /// The operator `project-reorder` after its name.
    fn project_reorder(&mut self) -> PResult<OpKind> {
        let mut cols = Vec::new();
        loop {
            let name = self.name_pattern()?;
            let dir = self.direction();
            cols.push((name, dir));
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(OpKind::ProjectReorder(cols))
    }

    /// The operator `summarize` after its name.
    fn summarize(&mut self) -> PResult<OpKind> {
        while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
            self.hint()?;
        }
        let aggregates = if self.is_word("by") { Vec::new() } else { self.named_exprs()? };
        let by = if self.eat_word("by") { self.named_exprs()? } else { Vec::new() };
        if aggregates.is_empty() && by.is_empty() {
            return Err(self.expected("an aggregate or 'by' after 'summarize'"));
        }
        Ok(OpKind::Summarize { aggregates, by })
    }

    /// The operator `sort` | `order` after its name.
    fn sort(&mut self) -> PResult<OpKind> {
        self.expect_word("by")?;
        let mut keys = vec![self.sort_key()?];
        while self.eat_sym(",") {
            keys.push(self.sort_key()?);
        }
        Ok(OpKind::Sort(keys))
    }

    /// The operator `top` after its name.
    fn top(&mut self) -> PResult<OpKind> {
        let count = self.expr()?;
        self.expect_word("by")?;
        Ok(OpKind::Top { count, key: self.sort_key()? })
    }

    /// The operator `distinct` after its name.
    fn distinct(&mut self) -> PResult<OpKind> {
        Ok(if self.is_sym("*") {
            let span = self.bump().span;
            OpKind::Distinct(vec![NamedExpr { names: vec![], expr: Expr { kind: ExprKind::Star, span } }])
        } else {
            OpKind::Distinct(self.named_exprs()?)
        })
    }

    /// The operator `render` after its name.
    fn render(&mut self) -> PResult<OpKind> {
        let name = match self.peek().clone() {
            Tok::Ident(n) => {
                self.bump();
                n
            }
            _ => return Err(self.expected("a visualization name after 'render'")),
        };
        let properties = if self.is_word("with") { self.render_properties()? } else { Vec::new() };
        self.skip_to_stage_end();
        Ok(OpKind::Render(Render { visualization: name, properties }))
    }

    /// The operator `evaluate` after its name.
    fn evaluate(&mut self) -> PResult<OpKind> {
        while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
            self.hint()?;
        }
        let plugin = self.name("a plugin name after 'evaluate'")?;
        let args = self.call_arguments()?;
        let schema = if self.eat_sym(":") { Some(self.column_list()?) } else { None };
        Ok(OpKind::Evaluate { plugin, args, schema })
    }

    /// The operator `invoke` after its name: `invoke f(args)`.
    fn invoke(&mut self) -> PResult<OpKind> {
        let function = self.name("a function name after 'invoke'")?;
        let args = self.call_arguments()?;
        Ok(OpKind::Invoke { function, args })
    }

    /// `(a, b, ...)`: the arguments of a plugin or function named by an operator.
    fn call_arguments(&mut self) -> PResult<Vec<Expr>> {
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
        Ok(args)
    }

    /// The operator `mv-expand` after its name.
    fn mv_expand(&mut self) -> PResult<OpKind> {
        Ok(OpKind::MvExpand(self.mv_expansion("mv-expand")?))
    }

    /// The operator `mv-apply` after its name: the arrays, then `on (SubQuery)`, the subquery
    /// being operators without a source.
    fn mv_apply(&mut self) -> PResult<OpKind> {
        let expand = self.mv_expansion("mv-apply")?;
        self.expect_word("on")?;
        self.expect_sym("(")?;
        let subquery = self.nested(|p| {
            let mut ops = vec![p.operator()?];
            while p.eat_sym("|") {
                ops.push(p.operator()?);
            }
            Ok(ops)
        })?;
        self.expect_sym(")")?;
        Ok(OpKind::MvApply { expand, subquery })
    }

    /// `[with_itemindex = I] [Name =] Array [to typeof(T)], ... [limit N]`.
    fn mv_expansion(&mut self, operator: &str) -> PResult<MvExpand> {
        if self.is_word("bagexpansion") && matches!(self.peek_at(1), Tok::Sym("=")) {
            return Err(self.error(
                ErrorKind::Unsupported,
                format!("{operator} option 'bagexpansion' is not supported (bags expand to one single-property bag per property)"),
                self.span(),
            ));
        }
        let index = if self.is_word("with_itemindex") && matches!(self.peek_at(1), Tok::Sym("=")) {
            self.bump();
            self.bump();
            Some(self.name("the name of the index column after 'with_itemindex ='")?)
        } else {
            None
        };
        let mut items = Vec::new();
        loop {
            items.push(self.mv_expand_item()?);
            if !self.eat_sym(",") {
                break;
            }
        }
        let limit = if self.eat_word("limit") { Some(self.expr()?) } else { None };
        Ok(MvExpand { index, items, limit })
    }

    /// `[Name =] Array [to typeof(T)]`; the conversion is read as a call `toT(Array)`.
    fn mv_expand_item(&mut self) -> PResult<NamedExpr> {
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
        Ok(item)
    }

    /// The operator `top-nested` after its name: its clauses, `,`-separated, each after the
    /// first starting with `top-nested` again.
    fn top_nested(&mut self) -> PResult<OpKind> {
        let mut levels = vec![self.top_nested_level()?];
        while self.is_sym(",") && matches!(self.peek_at(1), Tok::Ident(w) if w == "top-nested") {
            self.bump();
            self.bump();
            levels.push(self.top_nested_level()?);
        }
        Ok(OpKind::TopNested(levels))
    }

    /// `[N] of [Name =] Expr [with others = V] by [Name =] Aggregation [asc | desc]`.
    fn top_nested_level(&mut self) -> PResult<TopNestedLevel> {
        let count = if self.is_word("of") { None } else { Some(self.expr()?) };
        self.expect_word("of")?;
        let of = self.named_expr()?;
        let others = if self.eat_word("with") {
            self.expect_word("others")?;
            self.expect_sym("=")?;
            Some(self.expr()?)
        } else {
            None
        };
        self.expect_word("by")?;
        let by = self.named_expr()?;
        let descending = if self.eat_word("asc") {
            false
        } else {
            self.eat_word("desc");
            true
        };
        Ok(TopNestedLevel { count, of, others, by, descending })
    }

    /// The operator `as` after its name.
    fn as_operator(&mut self) -> PResult<OpKind> {
        while self.is_word("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
            self.hint()?;
        }
        Ok(OpKind::As(self.name("a name after 'as'")?))
    }

    /// The operator `serialize` after its name.
    fn serialize(&mut self) -> PResult<OpKind> {
        let items = if matches!(self.peek(), Tok::Sym("|") | Tok::Sym(";") | Tok::Sym(")") | Tok::Eof) {
            Vec::new()
        } else {
            self.named_exprs()?
        };
        Ok(OpKind::Serialize(items))
    }
}
