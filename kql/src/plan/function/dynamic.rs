//! Dynamic arrays and property bags: `array_length`, `pack_array`, `array_sort_*`, `array_slice`, `bag_pack`...

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The dynamic functions; `None` for a name this family does not have.
    pub(in crate::plan) fn dynamic_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, span } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
            "array_length" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_length(self.dynamic_value(x, schema, args[0].span)?)
            }
            "pack_array" => {
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::pack_array(xs, mask)
            }
            "array_sort_asc" | "array_sort_desc" => {
                want(self, 1, 1)?;
                let x = a(self, 0)?;
                crate::udf::array_sort(self.dynamic_value(x, schema, args[0].span)?, n == "array_sort_asc")
            }
            "array_slice" => {
                want(self, 3, 3)?;
                let x = a(self, 0)?;
                let x = self.dynamic_value(x, schema, args[0].span)?;
                crate::udf::array_slice(x, cast(a(self, 1)?, DataType::Int64), cast(a(self, 2)?, DataType::Int64))
            }
            "pack" | "bag_pack" | "pack_dictionary" | "pack_all" => {
                let xs: Vec<DfExpr> = if n == "pack_all" {
                    want(self, 0, 0)?;
                    schema.fields().iter().flat_map(|f| [lit(f.name().clone()), ident(f.name())]).collect()
                } else {
                    if !args.len().is_multiple_of(2) {
                        return Err(self.err(ErrorKind::Semantic, format!("{n}() takes pairs of key and value"), span));
                    }
                    (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?
                };
                let mask = self.dynamic_args(&xs, schema);
                crate::udf::bag_pack(xs, mask)
            }
            _ => return Ok(None),
        }))
    }
}
