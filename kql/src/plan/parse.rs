//! `parse`: text into columns by a pattern.

use super::*;

impl Planner<'_> {
    /// `parse Expr with * "literal" Col:type ...`: each column is a capture group of one regex
    /// built from the pattern (`kind=regex`: the literals are regexes). A row that does not match
    /// gets empty strings and nulls.
    pub(super) fn parse_op(
        &mut self,
        plan: LogicalPlan,
        expr: &Expr,
        kind: Option<&str>,
        pattern: &[ParsePart],
        span: Span,
    ) -> PResult<LogicalPlan> {
        let regex_kind = match kind {
            None | Some("simple") | Some("relaxed") => false,
            Some("regex") => true,
            Some(other) => {
                return Err(self.err(
                    ErrorKind::Semantic,
                    format!("unknown parse kind '{other}' (simple, regex, relaxed)"),
                    span,
                ));
            }
        };
        let schema = plan.schema().as_ref().clone();
        let source = self.scalar(expr, &schema)?;
        let source = self.to_text(source, &schema, expr.span)?;
        let mut re = String::from("(?s)^");
        let mut columns = Vec::new();
        for (i, part) in pattern.iter().enumerate() {
            let last = i + 1 == pattern.len();
            match part {
                ParsePart::Literal(t) if regex_kind => re.push_str(t),
                ParsePart::Literal(t) => re.push_str(&regex::escape(t)),
                ParsePart::Wildcard => re.push_str(if last { ".*" } else { ".*?" }),
                ParsePart::Column { name, ty } => {
                    let ty = ty.as_deref().unwrap_or("string");
                    let dt = kusto_type(ty)
                        .ok_or_else(|| self.err(ErrorKind::Semantic, format!("unknown type '{ty}'"), name.span))?;
                    re.push_str(match canonical_type(ty) {
                        "long" | "int" => r"([-+]?\d+)",
                        "real" => r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)",
                        _ if last => "(.*)",
                        _ => "(.*?)",
                    });
                    columns.push((name.clone(), dt, canonical_type(ty)));
                }
            }
        }
        let compiled = regex::Regex::new(&re)
            .map_err(|e| self.err(ErrorKind::Semantic, format!("invalid parse pattern: {e}"), span))?;
        let mut plan = plan;
        for (group, (name, dt, ty)) in columns.iter().enumerate() {
            let text = crate::udf::extract(&compiled, group + 1, source.clone());
            let value = match *ty {
                "string" => text,
                "dynamic" => crate::udf::parse_json(text),
                "datetime" | "timespan" | "guid" => try_cast(text, dt.clone()),
                _ => try_cast(text, dt.clone()),
            };
            plan = self.replace_or_append(plan, vec![value.alias(&name.name)], span)?;
        }
        Ok(plan)
    }
}
