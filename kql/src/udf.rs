//! Kusto functions DataFusion has no equivalent for, as scalar UDFs.
//!
//! Kusto's `dynamic` values are stored as compact JSON text in `Utf8` columns whose field
//! metadata says `kusto.type = dynamic` ([`KUSTO_TYPE_KEY`]); the UDFs that return one mark their
//! result the same way, so the planner knows a value is dynamic wherever it flows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::{DateTime, SecondsFormat};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use crate::plan::KUSTO_TYPE_KEY;

/// What a UDF returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ret {
    Dynamic,
    Type(DataType),
}

/// One row's arguments, as the evaluator sees them.
type RowFn = fn(&[ArgValue]) -> Out;

/// A scalar function evaluated row by row. Its name identifies its code; `dynamic_args` says
/// which arguments are dynamic JSON text to parse (bit `i` for argument `i`, the elements for a
/// list). The planner decides that from the logical schema: field metadata does not survive
/// every physical operator, so it is not read at execution time.
#[derive(Debug)]
struct RowUdf {
    name: &'static str,
    signature: Signature,
    ret: Ret,
    eval: RowFn,
    dynamic_args: u64,
}

/// An argument value of one row.
#[derive(Debug, Clone)]
pub(crate) enum ArgValue {
    Null,
    Str(String),
    /// A dynamic value, parsed.
    Json(Value),
    Long(i64),
    Real(f64),
    Bool(bool),
    /// Microseconds since the epoch.
    DateTime(i64),
    /// Nanoseconds.
    Timespan(i64),
    /// A list (from an aggregate), its elements.
    List(Vec<ArgValue>),
}

/// A result value of one row.
#[derive(Debug)]
enum Out {
    Null,
    Str(String),
    Json(Value),
    Long(i64),
    Timespan(i64),
}

impl PartialEq for RowUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.dynamic_args == other.dynamic_args
    }
}

impl Eq for RowUdf {}

impl std::hash::Hash for RowUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.dynamic_args.hash(state);
    }
}

impl ScalarUDFImpl for RowUdf {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match &self.ret {
            Ret::Dynamic => DataType::Utf8,
            Ret::Type(t) => t.clone(),
        })
    }
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(match &self.ret {
            Ret::Dynamic => dynamic_field(self.name),
            Ret::Type(t) => Field::new(self.name, t.clone(), true),
        }))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let readers: Vec<Reader> = arrays
            .iter()
            .enumerate()
            .map(|(i, array)| Reader { array, dynamic: i < 64 && self.dynamic_args & (1 << i) != 0 })
            .collect();
        let ret = self.return_type(&[])?;
        let mut out = OutBuilder::new(&ret, rows)?;
        let mut row = Vec::with_capacity(readers.len());
        for i in 0..rows {
            row.clear();
            for r in &readers {
                row.push(r.get(i));
            }
            out.push((self.eval)(&row))?;
        }
        Ok(ColumnarValue::Array(out.finish()))
    }
}

/// Reads one argument column row by row.
struct Reader<'a> {
    array: &'a ArrayRef,
    dynamic: bool,
}

impl Reader<'_> {
    fn get(&self, i: usize) -> ArgValue {
        value_at(self.array, i, self.dynamic)
    }
}

fn value_at(a: &ArrayRef, i: usize, dynamic: bool) -> ArgValue {
    if a.is_null(i) {
        return ArgValue::Null;
    }
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>().value(i);
            if dynamic {
                ArgValue::Json(serde_json::from_str(s).unwrap_or(Value::Null))
            } else {
                ArgValue::Str(s.into())
            }
        }
        DataType::LargeUtf8 => ArgValue::Str(a.as_string::<i64>().value(i).into()),
        DataType::Utf8View => ArgValue::Str(a.as_string_view().value(i).into()),
        DataType::Int64 => ArgValue::Long(a.as_primitive::<arrow::datatypes::Int64Type>().value(i)),
        DataType::Int32 => ArgValue::Long(a.as_primitive::<arrow::datatypes::Int32Type>().value(i) as i64),
        DataType::UInt64 => ArgValue::Long(a.as_primitive::<arrow::datatypes::UInt64Type>().value(i) as i64),
        DataType::Float64 => ArgValue::Real(a.as_primitive::<arrow::datatypes::Float64Type>().value(i)),
        DataType::Boolean => ArgValue::Bool(a.as_boolean().value(i)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            ArgValue::DateTime(a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(i))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            ArgValue::DateTime(a.as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(i) / 1000)
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            ArgValue::Timespan(a.as_primitive::<arrow::datatypes::DurationNanosecondType>().value(i))
        }
        DataType::List(_) => {
            let list = a.as_list::<i32>().value(i);
            ArgValue::List((0..list.len()).map(|j| value_at(&list, j, dynamic)).collect())
        }
        _ => match arrow::util::display::array_value_to_string(a, i) {
            Ok(s) => ArgValue::Str(s),
            Err(_) => ArgValue::Null,
        },
    }
}

struct OutBuilder {
    kind: DataType,
    strings: StringBuilder,
    longs: Vec<Option<i64>>,
}

impl OutBuilder {
    fn new(kind: &DataType, rows: usize) -> Result<Self> {
        Ok(OutBuilder { kind: kind.clone(), strings: StringBuilder::with_capacity(rows, rows * 8), longs: Vec::new() })
    }

    fn push(&mut self, v: Out) -> Result<()> {
        match (&self.kind, v) {
            (DataType::Utf8, Out::Null) => self.strings.append_null(),
            (DataType::Utf8, Out::Str(s)) => self.strings.append_value(s),
            (DataType::Utf8, Out::Json(Value::Null)) => self.strings.append_null(),
            (DataType::Utf8, Out::Json(v)) => self.strings.append_value(v.to_string()),
            (DataType::Int64 | DataType::Duration(_), Out::Null) => self.longs.push(None),
            (DataType::Int64, Out::Long(n)) | (DataType::Duration(_), Out::Timespan(n)) => self.longs.push(Some(n)),
            (k, v) => return Err(DataFusionError::Internal(format!("kql udf returned {v:?} for a {k} result"))),
        }
        Ok(())
    }

    fn finish(mut self) -> ArrayRef {
        match self.kind {
            DataType::Int64 => Arc::new(Int64Array::from(self.longs)),
            DataType::Duration(_) => Arc::new(arrow::array::DurationNanosecondArray::from(self.longs)),
            _ => Arc::new(self.strings.finish()),
        }
    }
}

/// A `Utf8` field marked as Kusto `dynamic`.
pub fn dynamic_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
        .with_metadata(HashMap::from([(KUSTO_TYPE_KEY.to_string(), "dynamic".to_string())]))
}

/// A dynamic literal.
pub fn dynamic_lit(v: &Value) -> Expr {
    let md = datafusion::common::metadata::FieldMetadata::from(HashMap::from([(
        KUSTO_TYPE_KEY.to_string(),
        "dynamic".to_string(),
    )]));
    let sv = if v.is_null() { ScalarValue::Utf8(None) } else { ScalarValue::Utf8(Some(v.to_string())) };
    Expr::Literal(sv, Some(md))
}

/// The JSON form of a value, as Kusto packs it into a dynamic.
fn to_json(v: &ArgValue) -> Value {
    match v {
        ArgValue::Null => Value::Null,
        ArgValue::Str(s) => Value::String(s.clone()),
        ArgValue::Json(j) => j.clone(),
        ArgValue::Long(n) => Value::from(*n),
        ArgValue::Real(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        ArgValue::Bool(b) => Value::Bool(*b),
        ArgValue::DateTime(us) => DateTime::from_timestamp_micros(*us)
            .map_or(Value::Null, |d| Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        ArgValue::Timespan(ns) => Value::String(fimlake_kusto::timespan::format(*ns)),
        ArgValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
    }
}

/// `tostring()` of a dynamic value: a string is itself, anything else its JSON text.
pub(crate) fn json_to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn make(name: &'static str, signature: Signature, ret: Ret, eval: RowFn, args: Vec<Expr>, dynamic_args: u64) -> Expr {
    ScalarUDF::new_from_impl(RowUdf { name, signature, ret, eval, dynamic_args }).call(args)
}

fn any(n: usize) -> Signature {
    Signature::any(n, Volatility::Immutable)
}

/// `parse_json(s)` / `todynamic(s)`: the JSON value of `s`, or `s` itself as a dynamic string
/// when it is not valid JSON (Kusto's rule). A non-string argument becomes its dynamic form.
pub fn parse_json(x: Expr) -> Expr {
    make(
        "parse_json",
        any(1),
        Ret::Dynamic,
        |a| match &a[0] {
            ArgValue::Null => Out::Null,
            ArgValue::Str(s) => Out::Json(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))),
            other => Out::Json(to_json(other)),
        },
        vec![x],
        0,
    )
}

/// `d.key`, `d["key"]`, `d[i]` (negative `i` counts from the end): null when absent.
pub fn dyn_get(d: Expr, key: Expr) -> Expr {
    make(
        "dynamic_get",
        any(2),
        Ret::Dynamic,
        |a| {
            let got = match (&a[0], &a[1]) {
                (ArgValue::Json(Value::Object(m)), ArgValue::Str(k)) => m.get(k).cloned(),
                (ArgValue::Json(Value::Array(v)), ArgValue::Long(i)) => {
                    let i = if *i < 0 { v.len() as i64 + i } else { *i };
                    usize::try_from(i).ok().and_then(|i| v.get(i)).cloned()
                }
                _ => None,
            };
            got.map_or(Out::Null, Out::Json)
        },
        vec![d, key],
        1,
    )
}

/// `tostring()` of a dynamic: strings unquoted, null as "".
pub fn dyn_to_string(d: Expr) -> Expr {
    make(
        "dynamic_to_string",
        any(1),
        Ret::Type(DataType::Utf8),
        |a| match &a[0] {
            ArgValue::Json(v) => Out::Str(json_to_string(v)),
            ArgValue::Null => Out::Str(String::new()),
            other => Out::Str(json_to_string(&to_json(other))),
        },
        vec![d],
        1,
    )
}

/// `array_length(d)`: the number of elements, null when `d` is not an array.
pub fn array_length(d: Expr) -> Expr {
    make(
        "array_length",
        any(1),
        Ret::Type(DataType::Int64),
        |a| match &a[0] {
            ArgValue::Json(Value::Array(v)) => Out::Long(v.len() as i64),
            _ => Out::Null,
        },
        vec![d],
        1,
    )
}

/// `pack_array(a, b, ...)`: a dynamic array of the values (`dynamic_args`: which are dynamic).
pub fn pack_array(xs: Vec<Expr>, dynamic_args: u64) -> Expr {
    make(
        "pack_array",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Dynamic,
        |a| Out::Json(Value::Array(a.iter().map(to_json).collect())),
        xs,
        dynamic_args,
    )
}

/// `split(s, delimiter)`: a dynamic array of the parts (`split("", ",")` is `[""]`).
pub fn split(s: Expr, delimiter: Expr) -> Expr {
    make(
        "split",
        any(2),
        Ret::Dynamic,
        |a| {
            let s = match &a[0] {
                ArgValue::Str(s) => s.clone(),
                ArgValue::Null => String::new(),
                other => json_to_string(&to_json(other)),
            };
            match &a[1] {
                ArgValue::Str(d) if !d.is_empty() => {
                    Out::Json(Value::Array(s.split(d.as_str()).map(|p| Value::String(p.into())).collect()))
                }
                _ => Out::Null,
            }
        },
        vec![s, delimiter],
        0,
    )
}

/// `strcat_array(d, delimiter)`: the elements as strings, joined.
pub fn strcat_array(d: Expr, delimiter: Expr) -> Expr {
    make(
        "strcat_array",
        any(2),
        Ret::Type(DataType::Utf8),
        |a| {
            let delim = match &a[1] {
                ArgValue::Str(s) => s.clone(),
                _ => String::new(),
            };
            match &a[0] {
                ArgValue::Json(Value::Array(v)) => {
                    Out::Str(v.iter().map(json_to_string).collect::<Vec<_>>().join(&delim))
                }
                _ => Out::Str(String::new()),
            }
        },
        vec![d, delimiter],
        1,
    )
}

/// A list (from `array_agg`) as a dynamic array, without nulls, at most `max` elements;
/// `dynamic_elements` when the elements are themselves dynamic.
pub fn list_to_dynamic(list: Expr, max: i64, dynamic_elements: bool) -> Expr {
    make(
        "make_list",
        any(2),
        Ret::Dynamic,
        |a| {
            let max = match a[1] {
                ArgValue::Long(n) => n.max(0) as usize,
                _ => usize::MAX,
            };
            match &a[0] {
                ArgValue::List(items) => Out::Json(Value::Array(
                    items.iter().filter(|v| !matches!(v, ArgValue::Null)).take(max).map(to_json).collect(),
                )),
                _ => Out::Json(Value::Array(vec![])),
            }
        },
        vec![list, datafusion::logical_expr::lit(max)],
        u64::from(dynamic_elements),
    )
}

/// The elements of a dynamic array as a list of dynamic values (for `mv-expand`); a property
/// bag gives one single-property bag per property, any other value itself.
pub fn dyn_elements(d: Expr) -> Expr {
    ScalarUDF::new_from_impl(DynElements { signature: any(1) }).call(vec![d])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DynElements {
    signature: Signature,
}

fn element_field() -> FieldRef {
    Arc::new(dynamic_field("item"))
}

impl ScalarUDFImpl for DynElements {
    fn name(&self) -> &str {
        "mv_expand_elements"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(element_field()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(element_field());
        for i in 0..args.number_rows {
            let items: Vec<Value> = match value_at(&arrays[0], i, true) {
                // Kusto: a null expands to one row (null), an empty array or bag to none.
                ArgValue::Null | ArgValue::Json(Value::Null) => vec![Value::Null],
                ArgValue::Json(Value::Array(v)) => v,
                ArgValue::Json(Value::Object(m)) => {
                    m.into_iter().map(|(k, v)| Value::Object([(k, v)].into_iter().collect())).collect()
                }
                other => vec![to_json(&other)],
            };
            for v in items {
                if v.is_null() { b.values().append_null() } else { b.values().append_value(v.to_string()) }
            }
            b.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `extract(regex, group, text)`: the capture group of the first match, "" when none.
pub fn extract(regex: &regex::Regex, group: usize, text: Expr) -> Expr {
    ScalarUDF::new_from_impl(Extract { signature: any(1), regex: regex.as_str().to_string(), group }).call(vec![text])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    signature: Signature,
    regex: String,
    group: usize,
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        "extract"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let re = regex::Regex::new(&self.regex).map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let out: StringArray = text
            .iter()
            .map(|t| {
                Some(
                    t.and_then(|t| re.captures(t))
                        .and_then(|c| c.get(self.group))
                        .map_or(String::new(), |m| m.as_str().to_string()),
                )
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `totimespan(s)`: `[-][d.]hh:mm[:ss[.fffffff]]` text to a timespan, null when malformed.
pub fn totimespan(s: Expr) -> Expr {
    make(
        "totimespan",
        any(1),
        Ret::Type(DataType::Duration(TimeUnit::Nanosecond)),
        |a| match &a[0] {
            ArgValue::Str(s) => fimlake_kusto::timespan::parse(s).map_or(Out::Null, Out::Timespan),
            ArgValue::Json(Value::String(s)) => fimlake_kusto::timespan::parse(s).map_or(Out::Null, Out::Timespan),
            ArgValue::Timespan(ns) => Out::Timespan(*ns),
            // A number is a count of 100 ns ticks.
            ArgValue::Long(t) => Out::Timespan(t.saturating_mul(100)),
            _ => Out::Null,
        },
        vec![s],
        0,
    )
}

/// `percentile(x, p)` from the sorted, non-null values of a group (`array_agg` ordered by `x`):
/// the nearest-rank value, the element at rank `ceil(p/100 * n)`, of `x`'s own type.
pub fn nearest_rank(sorted: Expr, p: f64) -> Expr {
    ScalarUDF::new_from_impl(NearestRank { signature: any(1), permille: (p * 1000.0).round() as i64 })
        .call(vec![sorted])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NearestRank {
    signature: Signature,
    /// The percentile times 1000 (kept integral so the UDF can be hashed).
    permille: i64,
}

impl ScalarUDFImpl for NearestRank {
    fn name(&self) -> &str {
        "percentile"
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
struct RangeList {
    signature: Signature,
}

impl ScalarUDFImpl for RangeList {
    fn name(&self) -> &str {
        "range"
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

/// `array_sort_asc(d)` / `array_sort_desc(d)`: numbers before strings, nulls last.
pub fn array_sort(d: Expr, ascending: bool) -> Expr {
    fn sorted(a: &[ArgValue], asc: bool) -> Out {
        let ArgValue::Json(Value::Array(v)) = &a[0] else { return Out::Null };
        let mut v = v.clone();
        let key = |x: &Value| match x {
            Value::Null => (3, 0.0, String::new()),
            Value::Number(n) => (0, n.as_f64().unwrap_or(0.0), String::new()),
            Value::String(s) => (1, 0.0, s.clone()),
            other => (2, 0.0, other.to_string()),
        };
        v.sort_by(|x, y| {
            let (kx, ky) = (key(x), key(y));
            let ord = kx.0.cmp(&ky.0).then(kx.1.total_cmp(&ky.1)).then(kx.2.cmp(&ky.2));
            if asc || kx.0 == 3 || ky.0 == 3 { ord } else { ord.reverse() }
        });
        Out::Json(Value::Array(v))
    }
    if ascending {
        make("array_sort_asc", any(1), Ret::Dynamic, |a| sorted(a, true), vec![d], 1)
    } else {
        make("array_sort_desc", any(1), Ret::Dynamic, |a| sorted(a, false), vec![d], 1)
    }
}

/// `array_slice(d, start, end)`: elements `start..=end`; negative indexes count from the end.
pub fn array_slice(d: Expr, start: Expr, end: Expr) -> Expr {
    make(
        "array_slice",
        any(3),
        Ret::Dynamic,
        |a| {
            let (ArgValue::Json(Value::Array(v)), ArgValue::Long(s), ArgValue::Long(e)) = (&a[0], &a[1], &a[2]) else {
                return Out::Null;
            };
            let len = v.len() as i64;
            let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
            let (s, e) = (fix(*s), fix(*e).min(len - 1));
            if s > e || s >= len {
                return Out::Json(Value::Array(vec![]));
            }
            Out::Json(Value::Array(v[s as usize..=e as usize].to_vec()))
        },
        vec![d, start, end],
        1,
    )
}

/// `bag_pack(k1, v1, k2, v2, ...)` (also `pack`, and `pack_all()` over every column): a property
/// bag. `dynamic_args` says which values are dynamic.
pub fn bag_pack(xs: Vec<Expr>, dynamic_args: u64) -> Expr {
    make(
        "bag_pack",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Dynamic,
        |a| {
            let mut m = serde_json::Map::new();
            for kv in a.chunks(2) {
                if let [ArgValue::Str(k), v] = kv {
                    m.insert(k.clone(), to_json(v));
                }
            }
            Out::Json(Value::Object(m))
        },
        xs,
        dynamic_args,
    )
}
