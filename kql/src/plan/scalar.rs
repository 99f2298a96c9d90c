//! Scalar expressions: literals, names, operators.

use super::*;

impl Planner<'_> {
    /// A scalar expression over `schema`. Recursion goes through here: `recursive` moves it to
    /// a fresh heap-allocated stack segment when the thread's stack runs low.
    #[recursive::recursive]
    pub(super) fn scalar(&mut self, e: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Literal(l) => literal(l),
            ExprKind::Name(n) => self.name_value(n, schema, span)?,
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
                self.in_list(expr, list, *negated, *case_insensitive, schema)?
            }
            ExprKind::Between { expr, low, high, negated } => self.between(expr, low, high, *negated, schema)?,
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
            ExprKind::Index { target, index } => self.index(target, index, schema)?,
            ExprKind::List(_) | ExprKind::NamedArg { .. } => {
                return Err(self.err(ErrorKind::Semantic, "a list or named argument is not allowed here", span));
            }
        })
    }

    /// A user function's parameter, a column, or a `let` scalar of that name.
    fn name_value(&mut self, n: &str, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        Ok(if let Some(value) = self.parameters.get(n) {
            value.clone()
        } else if schema.field_with_unqualified_name(n).is_ok() {
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
                Some(Binding::Function(_)) => {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!("'{n}' is a function: call it as {n}(...)"),
                        span,
                    ));
                }
                None => return Err(self.unknown_column(n, schema, span)),
            }
        })
    }

    /// `x in (...)`, `!in`, `in~`: over a list of values and dynamic arrays, or over the first column of a tabular expression.
    fn in_list(
        &mut self,
        expr: &Expr,
        list: &[Expr],
        negated: bool,
        case_insensitive: bool,
        schema: &DFSchema,
    ) -> PResult<DfExpr> {
        let tabular = |p: &Self, e: &Expr| match &e.kind {
            ExprKind::Pipeline(_) => true,
            ExprKind::Name(n) => matches!(p.lets.get(n), Some(Binding::Tabular(_))),
            ExprKind::Call { .. } => p.is_tabular_call(e),
            _ => false,
        };
        if let [only] = list
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
            let (x, sub) = if case_insensitive {
                let lowered = LogicalPlanBuilder::from(sub.clone())
                    .project(vec![f::lower(ident("__in_value")).alias("__in_lower")])
                    .and_then(|b| b.alias("__in_ci"))
                    .and_then(|b| b.build())
                    .map_err(|e| self.df_err(e, only.span))?;
                (f::lower(x), lowered)
            } else {
                (x, sub)
            };
            let e = if negated {
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
        if case_insensitive {
            x = f::lower(x);
            items = items.into_iter().map(f::lower).collect();
        }
        let inlist = x.in_list(items, false);
        Ok(if negated { not(inlist.clone()).or(inlist.is_null()) } else { inlist })
    }

    /// `x between (low .. high)`; a datetime range may end `low .. timespan`.
    fn between(&mut self, expr: &Expr, low: &Expr, high: &Expr, negated: bool, schema: &DFSchema) -> PResult<DfExpr> {
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
        Ok(if negated { not(b).or(x.is_null()) } else { b })
    }

    /// `d[i]`, `d["key"]`: an element of a dynamic array or property bag.
    fn index(&mut self, target: &Expr, index: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        let t = self.scalar(target, schema)?;
        let t = self.dynamic_value(t, schema, target.span)?;
        let i = self.scalar(index, schema)?;
        let i = match self.type_of(&i, schema, index.span)? {
            DataType::Utf8 => i,
            DataType::Utf8View | DataType::LargeUtf8 => cast(i, DataType::Utf8),
            DataType::Int64 | DataType::Int32 => cast(i, DataType::Int64),
            other => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("an index is a long or a string, not {}", kusto_name(&other)),
                    index.span,
                ));
            }
        };
        Ok(crate::udf::dyn_get(t, i))
    }

    pub(super) fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        schema: &DFSchema,
        span: Span,
    ) -> PResult<DfExpr> {
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
            BinaryOp::Mul => {
                let (lt, rt) = (self.type_of(&l, schema, left.span)?, self.type_of(&r, schema, right.span)?);
                match (lt, rt) {
                    // timespan * number (either side) is a timespan: 30m * 2 = 1h.
                    (DataType::Duration(_), n) if n.is_numeric() => scale_timespan(l, r, false),
                    (n, DataType::Duration(_)) if n.is_numeric() => scale_timespan(r, l, false),
                    _ => l * r,
                }
            }
            BinaryOp::Div => {
                let (lt, rt) = (self.type_of(&l, schema, left.span)?, self.type_of(&r, schema, right.span)?);
                match (lt, rt) {
                    (DataType::Duration(_), n) if n.is_numeric() => scale_timespan(l, r, true),
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
}

/// A timespan multiplied or divided by a number, to the nanosecond.
fn scale_timespan(timespan: DfExpr, number: DfExpr, divide: bool) -> DfExpr {
    let nanoseconds =
        cast(cast(cast(timespan, DataType::Duration(TimeUnit::Nanosecond)), DataType::Int64), DataType::Float64);
    let number = cast(number, DataType::Float64);
    let scaled = if divide { nanoseconds / number } else { nanoseconds * number };
    cast(try_cast(f::round(vec![scaled]), DataType::Int64), DataType::Duration(TimeUnit::Nanosecond))
}
