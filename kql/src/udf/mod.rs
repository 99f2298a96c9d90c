//! Kusto functions DataFusion has no equivalent for, as scalar UDFs (and `dcount`, an aggregate).
//!
//! Kusto's `dynamic` values are stored as compact JSON text in `Utf8` columns whose field
//! metadata says `kusto.type = dynamic` ([`KUSTO_TYPE_KEY`]); the UDFs that return one mark their
//! result the same way, so the planner knows a value is dynamic wherever it flows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::{DateTime, SecondsFormat};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

use crate::plan::KUSTO_TYPE_KEY;

mod conversion;
mod datetime;
mod distinct_count;
mod distinct_keys;
mod dynamic;
mod network;
mod search;
mod series;
mod series_analysis;
mod sets;
mod string;
mod text;
mod wire;

pub use conversion::totimespan;
pub use datetime::{local_to_utc, make_datetime, make_timespan, utc_to_local};
pub use distinct_count::{DistinctCount, dcount};
pub use dynamic::{
    array_length, array_slice, array_sort, bag_pack, dyn_element_indices, dyn_elements, dyn_get, dyn_to_string,
    list_to_dynamic, pack_array, parse_json,
};
pub use network::{ipv4_is_in_range, ipv4_is_private, parse_ipv4, parse_url};
pub use search::{Search, text_search};
pub use series::{nearest_rank, nearest_ranks, range_list, series_axis, series_fill};
pub use series_analysis::{series_fit_2lines, series_fit_line, series_stats};
pub use sets::{
    array_concat, array_index_of, array_reverse, bag_keys, bag_merge, bag_remove_keys, merge_bags, set_difference,
    set_has_element, set_intersect, set_union,
};
pub use string::{extract, split, strcat_array};
pub use text::{
    base64_decode, base64_encode, countof, hash, hash_md5, hash_sha256, indexof, parse_path, url_decode, url_encode,
    url_encode_component,
};
pub use wire::{kql_functions, rebuild};

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
    /// The name and, when some arguments are dynamic, which: `parse_json[1]` ([`wire`]).
    wire_name: String,
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

impl ArgValue {
    /// The text of a string (`None` for null or another type).
    fn text(&self) -> Option<&str> {
        match self {
            ArgValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A whole number: a long, or a finite real cut to one.
    fn whole(&self) -> Option<i64> {
        match self {
            ArgValue::Long(n) => Some(*n),
            ArgValue::Real(x) if x.is_finite() => Some(*x as i64),
            _ => None,
        }
    }

    /// A finite number.
    fn number(&self) -> Option<f64> {
        match self {
            ArgValue::Long(n) => Some(*n as f64),
            ArgValue::Real(x) if x.is_finite() => Some(*x),
            _ => None,
        }
    }

    /// The elements of a dynamic array.
    fn array(&self) -> Option<&Vec<Value>> {
        match self {
            ArgValue::Json(Value::Array(items)) => Some(items),
            _ => None,
        }
    }

    /// The properties of a dynamic property bag.
    fn bag(&self) -> Option<&serde_json::Map<String, Value>> {
        match self {
            ArgValue::Json(Value::Object(bag)) => Some(bag),
            _ => None,
        }
    }

    /// The maximum size argument of `make_list`, `make_set`, `make_bag`: no limit unless a long.
    fn size_limit(&self) -> usize {
        match self {
            ArgValue::Long(n) => (*n).max(0) as usize,
            _ => usize::MAX,
        }
    }
}

/// A result value of one row.
#[derive(Debug)]
enum Out {
    Null,
    Str(String),
    Json(Value),
    Long(i64),
    Bool(bool),
    /// Microseconds since the epoch.
    DateTime(i64),
    Timespan(i64),
}

impl RowUdf {
    fn new(name: &'static str, signature: Signature, ret: Ret, eval: RowFn, dynamic_args: u64) -> RowUdf {
        let wire_name = match dynamic_args {
            0 => name.to_string(),
            bits => wire::name(name, &serde_json::json!([bits])),
        };
        RowUdf { name, wire_name, signature, ret, eval, dynamic_args }
    }
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
        &self.wire_name
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

/// A string cell: JSON text when its column is `dynamic`, else the string.
fn text_value(text: &str, dynamic: bool) -> ArgValue {
    match dynamic {
        true => ArgValue::Json(serde_json::from_str(text).unwrap_or(Value::Null)),
        false => ArgValue::Str(text.into()),
    }
}

fn value_at(a: &ArrayRef, i: usize, dynamic: bool) -> ArgValue {
    if a.is_null(i) {
        return ArgValue::Null;
    }
    match a.data_type() {
        DataType::Utf8 => text_value(a.as_string::<i32>().value(i), dynamic),
        DataType::LargeUtf8 => text_value(a.as_string::<i64>().value(i), dynamic),
        DataType::Utf8View => text_value(a.as_string_view().value(i), dynamic),
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

/// Collects a UDF's results, one per row, into an array of its return type.
struct OutBuilder {
    kind: DataType,
    strings: StringBuilder,
    longs: Vec<Option<i64>>,
    bools: Vec<Option<bool>>,
}

impl OutBuilder {
    fn new(kind: &DataType, rows: usize) -> Result<Self> {
        Ok(OutBuilder {
            kind: kind.clone(),
            strings: StringBuilder::with_capacity(rows, rows * 8),
            longs: Vec::new(),
            bools: Vec::new(),
        })
    }

    fn push(&mut self, v: Out) -> Result<()> {
        match (&self.kind, v) {
            (DataType::Utf8, Out::Null | Out::Json(Value::Null)) => self.strings.append_null(),
            (DataType::Utf8, Out::Str(s)) => self.strings.append_value(s),
            (DataType::Utf8, Out::Json(v)) => self.strings.append_value(v.to_string()),
            (DataType::Int64 | DataType::Duration(_) | DataType::Timestamp(..), Out::Null) => self.longs.push(None),
            (DataType::Int64, Out::Long(n))
            | (DataType::Duration(_), Out::Timespan(n))
            | (DataType::Timestamp(..), Out::DateTime(n)) => self.longs.push(Some(n)),
            (DataType::Boolean, Out::Null) => self.bools.push(None),
            (DataType::Boolean, Out::Bool(b)) => self.bools.push(Some(b)),
            (k, v) => return Err(DataFusionError::Internal(format!("kql udf returned {v:?} for a {k} result"))),
        }
        Ok(())
    }

    fn finish(mut self) -> ArrayRef {
        match self.kind {
            DataType::Int64 => Arc::new(Int64Array::from(self.longs)),
            DataType::Duration(_) => Arc::new(arrow::array::DurationNanosecondArray::from(self.longs)),
            DataType::Timestamp(_, zone) => {
                Arc::new(arrow::array::TimestampMicrosecondArray::from(self.longs).with_timezone_opt(zone))
            }
            DataType::Boolean => Arc::new(arrow::array::BooleanArray::from(self.bools)),
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
    ScalarUDF::new_from_impl(RowUdf::new(name, signature, ret, eval, dynamic_args)).call(args)
}

fn any(n: usize) -> Signature {
    Signature::any(n, Volatility::Immutable)
}
