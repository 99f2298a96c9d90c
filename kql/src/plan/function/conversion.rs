//! Conversions: `tostring`, `toint`/`tolong`/`toreal`/`tobool`/`todatetime`..., `parse_json`/`todynamic`.

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The conversion functions; `None` for a name this family does not have.
    pub(in crate::plan) fn conversion_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, .. } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
            "tostring" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                self.to_text(x, schema, args[0].span)?
            }
            "toint" | "tolong" | "toreal" | "todouble" | "tobool" | "toboolean" | "todatetime" | "todecimal" => {
                want(self, 1, 1)?;
                let mut x = a(self, 0)?;
                if self.is_dynamic(&x, schema) {
                    x = crate::udf::dyn_to_string(x);
                }
                let t = match n {
                    "toint" => DataType::Int32,
                    "tolong" => DataType::Int64,
                    "toreal" | "todouble" | "todecimal" => DataType::Float64,
                    "tobool" | "toboolean" => DataType::Boolean,
                    _ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                };
                // Kusto: toint(2.7) is 2 and toint("2.7") null; a cast from real truncates.
                try_cast(x, t)
            }
            "parse_json" | "parsejson" | "todynamic" | "toobject" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                if self.is_dynamic(&x, schema) { x } else { crate::udf::parse_json(x) }
            }
            _ => return Ok(None),
        }))
    }
}
