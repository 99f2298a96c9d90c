//! Types of expressions: strings, dynamic values and their conversions.

use super::*;

impl Planner<'_> {
    /// A `where` predicate: Kusto treats null as false, which DataFusion's filter already does.
    pub(super) fn predicate(&mut self, e: &Expr, schema: &DFSchema) -> PResult<DfExpr> {
        self.scalar(e, schema)
    }

    pub(super) fn type_of(&self, e: &DfExpr, schema: &DFSchema, span: Span) -> PResult<DataType> {
        e.get_type(schema).map_err(|er| self.df_err(er, span))
    }

    pub(super) fn is_string(&self, e: &DfExpr, schema: &DFSchema, span: Span) -> PResult<bool> {
        Ok(matches!(self.type_of(e, schema, span)?, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
    }

    /// Whether `e` is a Kusto `dynamic` (JSON text marked in its field metadata).
    pub(super) fn is_dynamic(&self, e: &DfExpr, schema: &DFSchema) -> bool {
        e.metadata(schema).is_ok_and(|m| m.inner().get(KUSTO_TYPE_KEY).is_some_and(|t| t == "dynamic"))
    }

    /// The Kusto type of `e` (`None` for a null literal or an Arrow type Kusto has no name for),
    /// with its Arrow type.
    pub(super) fn kusto_type(
        &self,
        e: &DfExpr,
        schema: &DFSchema,
        span: Span,
    ) -> PResult<(Option<fimlake_kusto::KustoType>, DataType)> {
        let data_type = self.type_of(e, schema, span)?;
        let kusto = if self.is_dynamic(e, schema) {
            Some(fimlake_kusto::KustoType::Dynamic)
        } else {
            fimlake_kusto::KustoType::of_arrow(&data_type)
        };
        Ok((kusto, data_type))
    }

    /// Which of `xs` are dynamic, as the `dynamic_args` bit mask of the UDFs.
    pub(super) fn dynamic_args(&self, xs: &[DfExpr], schema: &DFSchema) -> u64 {
        xs.iter().enumerate().filter(|(_, x)| self.is_dynamic(x, schema)).fold(0u64, |m, (i, _)| m | 1 << i.min(63))
    }

    /// `e` as a string, as `tostring()` gives it: a dynamic string unquoted, other values' text.
    pub(super) fn to_text(&self, e: DfExpr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
        if self.is_dynamic(&e, schema) {
            Ok(crate::udf::dyn_to_string(e))
        } else if self.is_string(&e, schema, span)? {
            Ok(e)
        } else {
            Ok(f::coalesce(vec![cast(e, DataType::Utf8), lit("")]))
        }
    }

    /// `e`, which must be dynamic (for property access, `mv-expand`, array functions).
    pub(super) fn dynamic_value(&self, e: DfExpr, schema: &DFSchema, span: Span) -> PResult<DfExpr> {
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
    pub(super) fn convert_dynamic(&self, e: DfExpr, other: &DataType) -> DfExpr {
        match other {
            DataType::Null => e,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => crate::udf::dyn_to_string(e),
            t => try_cast(crate::udf::dyn_to_string(e), t.clone()),
        }
    }

    /// Converts the dynamic side of a binary operation to the other side's type.
    pub(super) fn unify_dynamic(
        &self,
        l: DfExpr,
        r: DfExpr,
        schema: &DFSchema,
        span: Span,
    ) -> PResult<(DfExpr, DfExpr)> {
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
}
