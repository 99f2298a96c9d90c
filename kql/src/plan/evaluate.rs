//! `evaluate` and its plugins: `narrow()`, `bag_unpack()`.

use fimlake_kusto::KustoType;

use super::*;

impl Planner<'_> {
    /// `evaluate plugin(args) [: (column: type, ...)]`.
    pub(super) fn evaluate(
        &mut self,
        plan: LogicalPlan,
        plugin: &Ident,
        args: &[Expr],
        schema: Option<&[(Ident, String)]>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        match (plugin.name.as_str(), args) {
            ("narrow", []) => self.narrow(plan, span),
            ("narrow", _) => Err(self.err(ErrorKind::Semantic, "narrow() takes no arguments", span)),
            ("bag_unpack", [bag, rest @ ..]) if rest.len() <= 1 => {
                self.bag_unpack(plan, bag, rest.first(), schema, span)
            }
            ("bag_unpack", _) => {
                let message = "bag_unpack() takes the dynamic column and an optional column name prefix";
                Err(self.err(ErrorKind::Semantic, message, span))
            }
            (other, _) => Err(self.err(
                ErrorKind::Unsupported,
                format!("the '{other}' plugin of evaluate is not supported"),
                plugin.span,
            )),
        }
    }

    /// `evaluate bag_unpack(d [, prefix]) : (column: type, ...)`: the columns of the output
    /// schema, each an input column of that name or else the bag's property of that name (after
    /// the prefix), of the given type; the bag column itself is not kept. fimlake plans a query
    /// before it reads data, so it cannot learn the bags' keys: the output schema is required.
    fn bag_unpack(
        &mut self,
        plan: LogicalPlan,
        bag: &Expr,
        prefix: Option<&Expr>,
        schema: Option<&[(Ident, String)]>,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let Some(columns) = schema else {
            let message = "bag_unpack() needs its output schema here: evaluate bag_unpack(d) : (Column: type, ...), naming the columns to keep and the properties to unpack (fimlake plans a query before reading the bags, so it cannot learn their keys)";
            return Err(self.err(ErrorKind::Unsupported, message, span));
        };
        let prefix = match prefix.map(|p| &p.kind) {
            None => "",
            Some(ExprKind::Literal(Literal::String(prefix))) => prefix.as_str(),
            Some(_) => {
                let message = "bag_unpack()'s prefix is a string literal";
                return Err(self.err(ErrorKind::Semantic, message, prefix.map_or(span, |p| p.span)));
            }
        };
        let input = plan.schema().as_ref().clone();
        let bag_column = match &bag.kind {
            ExprKind::Name(name) => Some(name.clone()),
            _ => None,
        };
        let value = self.scalar(bag, &input)?;
        let value = self.dynamic_value(value, &input, bag.span)?;
        let mut exprs = Vec::new();
        for (name, ty) in columns {
            let kusto = KustoType::from_name(ty)
                .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{ty}'"), name.span))?;
            let is_input =
                input.field_with_unqualified_name(&name.name).is_ok() && bag_column.as_ref() != Some(&name.name);
            let column = if is_input {
                cast(ident(&name.name), kusto.arrow_type())
            } else {
                let key = name.name.strip_prefix(prefix).unwrap_or(&name.name);
                let property = crate::udf::dyn_get(value.clone(), lit(key));
                if kusto == KustoType::Dynamic { property } else { self.convert_dynamic(property, &kusto.arrow_type()) }
            };
            exprs.push(column.alias(&name.name));
        }
        LogicalPlanBuilder::from(plan).project(exprs).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `evaluate narrow()`: one row per cell, `Row` (from 0), `Column` (its name), `Value` (as a
    /// string), in row then column order.
    fn narrow(&mut self, plan: LogicalPlan, span: Span) -> PResult<LogicalPlan> {
        let schema = plan.schema().as_ref().clone();
        let rn = datafusion::functions_window::expr_fn::row_number().alias("__row");
        let numbered = LogicalPlanBuilder::from(plan)
            .window(vec![rn])
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        let mut result: Option<LogicalPlanBuilder> = None;
        for (i, field) in schema.fields().iter().enumerate() {
            let value = self.to_text(ident(field.name()), &schema, span)?;
            let leg = LogicalPlanBuilder::from(numbered.clone())
                .project(vec![
                    (cast(ident("__row"), DataType::Int64) - lit(1i64)).alias("Row"),
                    lit(field.name().clone()).alias("Column"),
                    value.alias("Value"),
                    lit(i as i64).alias("__col"),
                ])
                .and_then(|b| b.build())
                .map_err(|e| self.df_err(e, span))?;
            result = Some(match result {
                None => LogicalPlanBuilder::from(leg),
                Some(b) => b.union(leg).map_err(|e| self.df_err(e, span))?,
            });
        }
        let Some(b) = result else {
            return Err(self.err(ErrorKind::Semantic, "narrow() of a table without columns", span));
        };
        b.sort(vec![ident("Row").sort(true, false), ident("__col").sort(true, false)])
            .and_then(|b| b.project(vec![ident("Row"), ident("Column"), ident("Value")]))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }
}
