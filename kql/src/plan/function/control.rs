//! Control and null handling: `iff`, `case`, `coalesce`, `isempty`, `isnull`, `not`, `toscalar`.

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The control functions; `None` for a name this family does not have.
    pub(in crate::plan) fn control_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, span } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
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
            _ => return Ok(None),
        }))
    }
}
