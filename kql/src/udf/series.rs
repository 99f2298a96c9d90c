//! UDFs behind percentiles, `range` and `make-series`.

use super::*;

/// `percentile(x, p)` from the sorted, non-null values of a group (`array_agg` ordered by `x`):
/// the nearest-rank value, the element at rank `ceil(p/100 * n)`, of `x`'s own type.
pub fn nearest_rank(sorted: Expr, p: f64) -> Expr {
    ScalarUDF::new_from_impl(NearestRank::new((p * 1000.0).round() as i64)).call(vec![sorted])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct NearestRank {
    /// `percentile[permille]` ([`super::wire`]).
    name: String,
    signature: Signature,
    /// The percentile times 1000 (kept integral so the UDF can be hashed).
    pub(super) permille: i64,
}

impl NearestRank {
    pub(super) fn new(permille: i64) -> NearestRank {
        NearestRank {
            name: super::wire::name("percentile", &serde_json::json!([permille])),
            signature: any(1),
            permille,
        }
    }
}

impl ScalarUDFImpl for NearestRank {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::List(f) => Ok(f.data_type().clone()),
            other => Err(DataFusionError::Plan(format!("percentile over {other}"))),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let list = arrays[0].as_list::<i32>();
        let p = self.permille as f64 / 100_000.0;
        let offsets = list.value_offsets();
        let indices: arrow::array::UInt64Array = (0..list.len())
            .map(|i| {
                let (start, end) = (offsets[i] as u64, offsets[i + 1] as u64);
                let n = end - start;
                if list.is_null(i) || n == 0 {
                    return None;
                }
                let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
                Some(start + rank - 1)
            })
            .collect();
        Ok(ColumnarValue::Array(arrow::compute::take(list.values(), &indices, None)?))
    }
}

/// `range x from a to b step s` as one list (unnested by the planner); values are longs, or
/// microseconds for datetimes. Stops with an error past `MAX_RANGE` values.
pub fn range_list(from: Expr, to: Expr, step: Expr) -> Expr {
    ScalarUDF::new_from_impl(RangeList { signature: any(3) }).call(vec![from, to, step])
}

/// The largest number of rows `range` produces.
pub const MAX_RANGE: i64 = 10_000_000;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct RangeList {
    pub(super) signature: Signature,
}

impl ScalarUDFImpl for RangeList {
    fn name(&self) -> &str {
        "kql_range"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new("item", DataType::Int64, true))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut b = ListBuilder::new(arrow::array::Int64Builder::new());
        for i in 0..args.number_rows {
            let num = |a: &ArrayRef| match value_at(a, i, false) {
                ArgValue::Long(n) => Some(n),
                ArgValue::DateTime(us) => Some(us),
                ArgValue::Timespan(ns) => Some(ns / 1000),
                _ => None,
            };
            let (Some(from), Some(to), Some(step)) = (num(&arrays[0]), num(&arrays[1]), num(&arrays[2])) else {
                b.append(true);
                continue;
            };
            if step == 0 || (to - from) / step >= MAX_RANGE {
                return Err(DataFusionError::Execution(format!(
                    "range from {from} to {to} step {step} would produce more than {MAX_RANGE} rows"
                )));
            }
            let mut v = from;
            while (step > 0 && v <= to) || (step < 0 && v >= to) {
                b.values().append_value(v);
                v += step;
            }
            b.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `make-series` values: `values[i]` belongs to bin `bins[i]`; the series has one value per bin
/// from `from` (inclusive) to `to` (exclusive) by `step`, `default` where a bin has none.
pub fn series_fill(bins: Expr, values: Expr, from: Expr, to: Expr, step: Expr, default: Expr) -> Expr {
    make(
        "series_fill",
        any(6),
        Ret::Dynamic,
        |a| {
            let (ArgValue::DateTime(from), ArgValue::DateTime(to), ArgValue::Timespan(step)) = (&a[2], &a[3], &a[4])
            else {
                return Out::Null;
            };
            let step_us = (step / 1000).max(1);
            let n = series_len(*from, *to, step_us);
            let mut out = vec![to_json(&a[5]); n];
            if let (ArgValue::List(bins), ArgValue::List(values)) = (&a[0], &a[1]) {
                for (b, v) in bins.iter().zip(values) {
                    if let ArgValue::DateTime(b) = b {
                        let i = (b - from) / step_us;
                        if (0..n as i64).contains(&i) && !matches!(v, ArgValue::Null) {
                            out[i as usize] = to_json(v);
                        }
                    }
                }
            }
            Out::Json(Value::Array(out))
        },
        vec![bins, values, from, to, step, default],
        0,
    )
}

/// The time axis of a `make-series`: the start of each bin, as a dynamic array of datetimes.
pub fn series_axis(from: Expr, to: Expr, step: Expr) -> Expr {
    make(
        "series_axis",
        any(3),
        Ret::Dynamic,
        |a| {
            let (ArgValue::DateTime(from), ArgValue::DateTime(to), ArgValue::Timespan(step)) = (&a[0], &a[1], &a[2])
            else {
                return Out::Null;
            };
            let step_us = (step / 1000).max(1);
            let n = series_len(*from, *to, step_us);
            Out::Json(Value::Array((0..n as i64).map(|i| to_json(&ArgValue::DateTime(from + i * step_us))).collect()))
        },
        vec![from, to, step],
        0,
    )
}

/// The number of bins from `from` to `to` (exclusive), capped at `MAX_RANGE`.
fn series_len(from: i64, to: i64, step_us: i64) -> usize {
    if to <= from { 0 } else { ((to - from + step_us - 1) / step_us).min(MAX_RANGE) as usize }
}

/// `percentiles_array`'s finish: the nearest-rank percentile of the sorted `list` for each of
/// `percentiles` (numbers from 0 to 100), as a dynamic array.
pub fn nearest_ranks(sorted: Expr, percentiles: &[f64]) -> Expr {
    let percentiles = Value::Array(percentiles.iter().map(|p| serde_json::json!(p)).collect());
    make(
        "percentiles_array",
        any(2),
        Ret::Dynamic,
        |a| {
            let (ArgValue::List(values), ArgValue::Json(Value::Array(percentiles))) = (&a[0], &a[1]) else {
                return Out::Null;
            };
            let values: Vec<&ArgValue> = values.iter().filter(|v| !matches!(v, ArgValue::Null)).collect();
            if values.is_empty() {
                return Out::Json(Value::Array(percentiles.iter().map(|_| Value::Null).collect()));
            }
            let count = values.len() as f64;
            let ranked = percentiles.iter().map(|p| {
                let rank = (p.as_f64().unwrap_or(0.0) / 100.0 * count).ceil().clamp(1.0, count);
                to_json(values[rank as usize - 1])
            });
            Out::Json(Value::Array(ranked.collect()))
        },
        vec![sorted, dynamic_lit(&percentiles)],
        0b10,
    )
}
