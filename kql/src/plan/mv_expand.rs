//! `mv-expand`: one row per element of a dynamic array or bag.

use super::*;

/// The internal name of the position column of an expansion.
const POSITION: &str = "__mv_index";

/// An array of `mv-expand`, resolved: its dynamic value, the column it becomes and the type its
/// elements are converted to.
struct Expansion {
    value: DfExpr,
    name: String,
    convert: Option<String>,
    span: Span,
}

impl Planner<'_> {
    /// `mv-expand [with_itemindex = I] [Name =] Array [to typeof(T)], ... [limit N]`: one row
    /// per element of a dynamic array (or per property of a bag); a null gives one row, an empty
    /// array none. Several arrays expand side by side, the shorter padded with nulls.
    pub(super) fn mv_expand(&mut self, plan: LogicalPlan, m: &MvExpand, span: Span) -> PResult<LogicalPlan> {
        self.expand_arrays(plan, m, span).map(|(plan, _)| plan)
    }

    /// [`Self::mv_expand`], also answering the names of the columns the expansion made (the
    /// expanded arrays, then the index column if there is one).
    pub(super) fn expand_arrays(
        &mut self,
        plan: LogicalPlan,
        m: &MvExpand,
        span: Span,
    ) -> PResult<(LogicalPlan, Vec<String>)> {
        let schema = plan.schema().as_ref().clone();
        let expansions = m.items.iter().map(|item| self.expansion(item, &schema)).collect::<PResult<Vec<_>>>()?;
        let limit = m.limit.as_ref().map(|l| self.count_arg(l)).transpose()?;
        let with_position = m.index.is_some() || limit.is_some();
        let mut exprs: Vec<DfExpr> = schema.fields().iter().map(|f| ident(f.name())).collect();
        let mut unnested = Vec::new();
        for (k, expansion) in expansions.iter().enumerate() {
            exprs.push(crate::udf::dyn_elements(expansion.value.clone()).alias(format!("__mv{k}")));
            unnested.push(Column::from_name(format!("__mv{k}")));
        }
        if with_position {
            let values = expansions.iter().map(|e| e.value.clone()).collect();
            exprs.push(crate::udf::dyn_element_indices(values).alias(POSITION));
            unnested.push(Column::from_name(POSITION));
        }
        let mut builder = LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.unnest_columns_with_options(unnested, UnnestOptions::default()))
            .map_err(|e| self.df_err(e, span))?;
        if let Some(limit) = limit {
            builder = builder.filter(ident(POSITION).lt(lit(limit as i64))).map_err(|e| self.df_err(e, span))?;
        }
        let expanded = builder.build().map_err(|e| self.df_err(e, span))?;
        let mut made: Vec<(String, DfExpr)> = Vec::new();
        for (k, expansion) in expansions.iter().enumerate() {
            made.push((expansion.name.clone(), self.converted(ident(format!("__mv{k}")), expansion)?));
        }
        if let Some(index) = &m.index {
            made.push((index.name.clone(), ident(POSITION).alias(&index.name)));
        }
        self.expanded_columns(expanded, &schema, made, span)
    }

    /// One array of the list: its value, name and element type.
    fn expansion(&mut self, item: &NamedExpr, schema: &DFSchema) -> PResult<Expansion> {
        // The parser turns `x to typeof(T)` into `toT(x)`: expand `x`, then convert each element.
        let (array, convert) = match &item.expr.kind {
            ExprKind::Call { name, args }
                if args.len() == 1 && name.name.starts_with("to") && name.span.start > args[0].span.end =>
            {
                (&args[0], Some(name.name.trim_start_matches("to").to_string()))
            }
            _ => (&item.expr, None),
        };
        let name = match item.names.as_slice() {
            [n] => n.name.clone(),
            _ => self.derived_name(array),
        };
        let value = self.scalar(array, schema)?;
        let value = self.dynamic_value(value, schema, array.span)?;
        Ok(Expansion { value, name, convert, span: item.expr.span })
    }

    /// An expanded element converted to the type `to typeof(T)` names (dynamic by default),
    /// named.
    fn converted(&self, element: DfExpr, expansion: &Expansion) -> PResult<DfExpr> {
        let name = &expansion.name;
        Ok(match expansion.convert.as_deref() {
            None | Some("dynamic") => {
                let dynamic = datafusion::common::metadata::FieldMetadata::from(&crate::udf::dynamic_field(name));
                element.alias_with_metadata(name, Some(dynamic))
            }
            Some("string") => crate::udf::dyn_to_string(element).alias(name),
            Some(t) => {
                let dt = kusto_type(t)
                    .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{t}'"), expansion.span))?;
                try_cast(element, dt).alias(name)
            }
        })
    }

    /// The input's columns, an expanded column taking the place of the source column of its
    /// name, then the other made columns (each made expression already named).
    fn expanded_columns(
        &mut self,
        expanded: LogicalPlan,
        input: &DFSchema,
        made: Vec<(String, DfExpr)>,
        span: Span,
    ) -> PResult<(LogicalPlan, Vec<String>)> {
        let mut out: Vec<DfExpr> = Vec::new();
        for field in input.fields() {
            match made.iter().find(|(name, _)| name == field.name()) {
                Some((_, value)) => out.push(value.clone()),
                None => out.push(ident(field.name())),
            }
        }
        for (name, value) in &made {
            if input.field_with_unqualified_name(name).is_err() {
                out.push(value.clone());
            }
        }
        let names = made.into_iter().map(|(name, _)| name).collect();
        let plan = LogicalPlanBuilder::from(expanded)
            .project(out)
            .and_then(|b| b.build())
            .map_err(|e| self.df_err(e, span))?;
        Ok((plan, names))
    }
}
