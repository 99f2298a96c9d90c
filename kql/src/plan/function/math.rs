//! Math: `sqrt`, `exp`, `log*`, `ceiling`, `pow`, `abs`, `round`, `max_of`/`min_of`.

use super::super::*;
use super::Call;

impl Planner<'_> {
    /// The math functions; `None` for a name this family does not have.
    pub(in crate::plan) fn math_call(&mut self, call: &Call) -> PResult<Option<DfExpr>> {
        let Call { name, args, schema, span } = *call;
        let n = name.name.as_str();
        let want = |p: &Self, lo: usize, hi: usize| call.want(p, lo, hi);
        let a = |p: &mut Self, i: usize| p.scalar(&args[i], schema);
        Ok(Some(match n {
            "sqrt" | "exp" | "log" | "log10" | "log2" | "ceiling" => {
                want(self, 1, 1)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                match n {
                    "sqrt" => f::sqrt(x),
                    "exp" => f::exp(x),
                    "log" => f::ln(x),
                    "log10" => f::log10(x),
                    "log2" => f::log2(x),
                    _ => f::ceil(x),
                }
            }
            "pow" => {
                want(self, 2, 2)?;
                f::power(cast(a(self, 0)?, DataType::Float64), cast(a(self, 1)?, DataType::Float64))
            }
            "abs" => {
                want(self, 1, 1)?;
                f::abs(a(self, 0)?)
            }
            "round" => {
                want(self, 1, 2)?;
                let x = cast(a(self, 0)?, DataType::Float64);
                if args.len() == 2 { f::round(vec![x, cast(a(self, 1)?, DataType::Int64)]) } else { f::round(vec![x]) }
            }
            "max_of" | "min_of" => {
                if args.len() < 2 {
                    return Err(self.err(ErrorKind::Semantic, format!("{n}() takes at least 2 arguments"), span));
                }
                let xs = (0..args.len()).map(|i| a(self, i)).collect::<PResult<Vec<_>>>()?;
                if n == "max_of" { f::greatest(xs) } else { f::least(xs) }
            }
            _ => return Ok(None),
        }))
    }
}
