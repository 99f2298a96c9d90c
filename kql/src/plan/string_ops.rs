//! String operators: `contains`, `has`, `startswith`, `matches regex`, `in~` and their negations and `_cs` forms.

use super::*;
use crate::udf::{Search, text_search};

/// `has`: the term whole, no letter or digit on either side.
const HAS: Search = Search::Term { start: true, end: true };

impl Planner<'_> {
    pub(super) fn string_op(
        &mut self,
        s: StrOp,
        left: &Expr,
        right: &Expr,
        schema: &DFSchema,
        span: Span,
    ) -> PResult<DfExpr> {
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
                let preds: Vec<DfExpr> = terms.iter().map(|t| text_search(l.clone(), t, HAS, false)).collect();
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
                    ("matches regex", _) => {
                        // An invalid literal regex is the query's mistake: a 400 naming it, not a
                        // failure of DataFusion's optimizer when it folds the constant.
                        self.check_regex(right)?;
                        f::regexp_like(l, r, None)
                    }
                    // Case-sensitive LIKE is a SIMD substring search already; ILIKE is a regex.
                    ("contains", Some(t)) if cs => like(l, format!("%{}%", escape_like(&t)), cs),
                    ("contains", Some(t)) => text_search(l, &t, Search::Substring, false),
                    // Case-sensitive LIKE prefixes prune row groups by their statistics; ILIKE
                    // checked every batch's rows for ASCII first, most of the query's time.
                    ("startswith", Some(t)) if cs => like(l, format!("{}%", escape_like(&t)), cs),
                    ("startswith", Some(t)) => text_search(l, &t, Search::Prefix, false),
                    ("endswith", Some(t)) if cs => like(l, format!("%{}", escape_like(&t)), cs),
                    ("endswith", Some(t)) => text_search(l, &t, Search::Suffix, false),
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
                    ("has", Some(t)) => text_search(l, &t, HAS, cs),
                    ("hasprefix", Some(t)) => text_search(l, &t, Search::Term { start: true, end: false }, cs),
                    ("hassuffix", Some(t)) => text_search(l, &t, Search::Term { start: false, end: true }, cs),
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
}
