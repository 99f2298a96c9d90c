//! Operators that look at a table rather than transform it: `getschema`, `sample`,
//! `sample-distinct`.

use fimlake_kusto::KustoType;

use super::*;

/// The .NET type Kusto's `getschema` names for a Kusto type.
fn dotnet_type(kusto: KustoType) -> &'static str {
    match kusto {
        KustoType::String => "System.String",
        KustoType::DateTime => "System.DateTime",
        KustoType::Long => "System.Int64",
        KustoType::Int => "System.Int32",
        KustoType::Real => "System.Double",
        KustoType::Bool => "System.SByte",
        KustoType::Guid => "System.Guid",
        KustoType::Dynamic => "System.Object",
        KustoType::Timespan => "System.TimeSpan",
    }
}

impl Planner<'_> {
    /// `getschema`: `ColumnName`, `ColumnOrdinal`, `DataType` (.NET's name), `ColumnType`
    /// (Kusto's), one row per column of the input.
    pub(super) fn getschema(&self, plan: &LogicalPlan, span: Span) -> PResult<LogicalPlan> {
        let rows: Vec<Vec<DfExpr>> = plan
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(ordinal, field)| {
                let kusto = KustoType::of_field(field);
                vec![
                    lit(field.name().clone()),
                    lit(i32::try_from(ordinal).unwrap_or(i32::MAX)),
                    lit(dotnet_type(kusto)),
                    lit(kusto.name()),
                ]
            })
            .collect();
        let names = ["ColumnName", "ColumnOrdinal", "DataType", "ColumnType"];
        if rows.is_empty() {
            let fields: Vec<Field> = names
                .iter()
                .map(|n| Field::new(*n, if *n == "ColumnOrdinal" { DataType::Int32 } else { DataType::Utf8 }, true))
                .collect();
            return self.no_rows("getschema", Arc::new(Schema::new(fields)), span);
        }
        let values = LogicalPlanBuilder::values(rows).map_err(|e| self.df_err(e, span))?;
        let columns: Vec<DfExpr> =
            names.iter().enumerate().map(|(i, name)| ident(format!("column{}", i + 1)).alias(*name)).collect();
        values.project(columns).and_then(|b| b.build()).map_err(|e| self.df_err(e, span))
    }

    /// `sample n`: `n` rows picked at random (all of them when there are fewer).
    pub(super) fn sample(&mut self, plan: LogicalPlan, count: &Expr, span: Span) -> PResult<LogicalPlan> {
        let count = self.count_arg(count)?;
        // The random key is a column (not a sort expression) so that the sort has an input
        // column even when nothing after it reads one (`sample 5 | count`).
        let columns: Vec<DfExpr> = plan.schema().fields().iter().map(|f| ident(f.name())).collect();
        let mut with_key = columns.clone();
        with_key.push(f::random().alias("__sample_key"));
        LogicalPlanBuilder::from(plan)
            .project(with_key)
            .and_then(|b| b.sort(vec![ident("__sample_key").sort(true, false)]))
            .and_then(|b| b.limit(0, Some(count)))
            .and_then(|b| b.project(columns))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }

    /// `sample-distinct n of column`: up to `n` distinct values of the column (which ones is
    /// not specified, as in Kusto).
    pub(super) fn sample_distinct(
        &mut self,
        plan: LogicalPlan,
        count: &Expr,
        column: &Expr,
        span: Span,
    ) -> PResult<LogicalPlan> {
        let count = self.count_arg(count)?;
        let schema = plan.schema().as_ref().clone();
        let name = self.derived_name(column);
        let value = self.scalar(column, &schema)?.alias(name);
        LogicalPlanBuilder::from(plan)
            .aggregate(vec![value], Vec::<DfExpr>::new())
            .and_then(|b| b.limit(0, Some(count)))
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))
    }
}
