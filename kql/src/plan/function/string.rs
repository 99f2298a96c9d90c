//! String functions: `tolower`, `strcat`, `substring`, `extract`, `replace_regex`, `trim`, `split`, `indexof`...

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The string functions; `None` for a name this family does not have.
    pub(in crate::plan) fn string_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, span } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
            "tolower" => {
                want(self, 1, 1)?;
                f::lower(a(self, 0)?)
            }
            "toupper" => {
                want(self, 1, 1)?;
                f::upper(a(self, 0)?)
            }
            "strlen" => {
                want(self, 1, 1)?;
                cast(f::character_length(a(self, 0)?), DataType::Int64)
            }
            "strcat" => {
                if args.is_empty() {
                    return Err(self.err(ErrorKind::Semantic, "strcat() takes 1 to 64 arguments", span));
                }
                let parts = (0..args.len())
                    .map(|i| a(self, i).map(|x| cast(x, DataType::Utf8)))
                    .collect::<PResult<Vec<_>>>()?;
                f::concat(parts)
            }
            "substring" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                // Kusto counts from 0, SQL from 1.
                let start = cast(a(self, 1)?, DataType::Int64) + lit(1i64);
                if args.len() == 3 {
                    f::substring(text, start, cast(a(self, 2)?, DataType::Int64))
                } else {
                    f::substr(text, start)
                }
            }
            "split" => {
                want(self, 2, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                let parts = crate::udf::split(text, a(self, 1)?);
                if args.len() == 3 { crate::udf::dyn_get(parts, cast(a(self, 2)?, DataType::Int64)) } else { parts }
            }
            "strcat_array" => {
                want(self, 2, 2)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::strcat_array(x, a(self, 1)?)
            }
            "extract" => {
                want(self, 3, 3)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes its regex as a string literal",
                        args[0].span,
                    ));
                };
                let ExprKind::Literal(Literal::Long(group)) = &args[1].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        "extract() takes the capture group as a number",
                        args[1].span,
                    ));
                };
                let re = regex::Regex::new(re)
                    .map_err(|e| self.err(ErrorKind::Semantic, format!("invalid regex: {e}"), args[0].span))?;
                if *group < 0 || *group as usize > re.captures_len() - 1 {
                    return Err(self.err(
                        ErrorKind::Semantic,
                        format!(
                            "the regex has {} capture group(s); group {group} does not exist",
                            re.captures_len() - 1
                        ),
                        args[1].span,
                    ));
                }
                let text = a(self, 2)?;
                let text = self.to_text(text, schema, args[2].span)?;
                crate::udf::extract(&re, *group as usize, text)
            }
            "replace_string" => {
                want(self, 3, 3)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                f::replace(text, a(self, 1)?, a(self, 2)?)
            }
            "replace_regex" | "replace" => {
                want(self, 3, 3)?;
                // replace(regex, rewrite, text) is the older argument order.
                let (t, r, w) = if n == "replace" { (2, 0, 1) } else { (0, 1, 2) };
                let text = a(self, t)?;
                let text = self.to_text(text, schema, args[t].span)?;
                self.check_regex(&args[r])?;
                f::regexp_replace(text, a(self, r)?, a(self, w)?, Some(lit("g")))
            }
            "trim" | "trim_start" | "trim_end" => {
                want(self, 2, 2)?;
                let ExprKind::Literal(Literal::String(re)) = &args[0].kind else {
                    return Err(self.err(
                        ErrorKind::Unsupported,
                        format!("{n}() takes its regex as a string literal"),
                        args[0].span,
                    ));
                };
                self.check_regex(&args[0])?;
                let pattern = match n {
                    "trim" => format!("^(?:{re})+|(?:{re})+$"),
                    "trim_start" => format!("^(?:{re})+"),
                    _ => format!("(?:{re})+$"),
                };
                let text = a(self, 1)?;
                let text = self.to_text(text, schema, args[1].span)?;
                f::regexp_replace(text, lit(pattern), lit(""), Some(lit("g")))
            }
            "indexof" => {
                want(self, 2, 2)?;
                let text = a(self, 0)?;
                let text = self.to_text(text, schema, args[0].span)?;
                cast(f::strpos(text, a(self, 1)?), DataType::Int64) - lit(1i64)
            }
            _ => return Ok(None),
        }))
    }
}
