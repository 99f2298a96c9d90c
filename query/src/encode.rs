//! Results in the Log Analytics JSON shape: Kusto type names for columns, and values encoded
//! as the real service does (datetime as ISO 8601 `Z` strings without trailing zeros, timespan
//! as `[-][d.]hh:mm:ss[.fffffff]`, dynamic as JSON text, real NaN/Infinity as strings).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use fimlake_kusto::KustoType;
use serde_json::{Value, json};

use crate::QueryResult;

/// The result's columns (`{"name", "type"}`) and rows (arrays of cells), as the wire shape has
/// them: what the API answers, what alert rules evaluate and what the console shows.
pub fn table(result: &QueryResult) -> (Vec<Value>, Vec<Value>) {
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": KustoType::of_field(f).name()}))
        .collect();
    let dynamic: Vec<bool> =
        result.schema.fields().iter().map(|f| KustoType::of_field(f) == KustoType::Dynamic).collect();
    let mut rows = Vec::new();
    for b in &result.batches {
        for r in 0..b.num_rows() {
            rows.push(Value::Array(
                b.columns()
                    .iter()
                    .zip(&dynamic)
                    .map(|(c, d)| if *d { dynamic_cell(cell(c.as_ref(), r)) } else { cell(c.as_ref(), r) })
                    .collect(),
            ));
        }
    }
    (columns, rows)
}

/// `{"tables":[{"name":"PrimaryResult","columns":[...],"rows":[...]}]}`, with a `PartialError`
/// when the row limit cut the result.
pub fn to_json(result: &QueryResult, max_rows: usize) -> Value {
    let (columns, rows) = table(result);
    let mut out = json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]});
    if result.truncated {
        out["error"] = json!({
            "code": "PartialError",
            "message": "There were some errors when processing your query.",
            "details": [{"code": "ResultLimitExceeded", "message": format!("the result was cut at {max_rows} rows")}]
        });
    }
    out
}

/// A dynamic value is its JSON text, except a string, which is itself (as Kusto prints it).
fn dynamic_cell(v: Value) -> Value {
    match &v {
        Value::String(text) if text.starts_with('"') => match serde_json::from_str::<Value>(text) {
            Ok(Value::String(inner)) => Value::String(inner),
            _ => v,
        },
        _ => v,
    }
}

fn real(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// The `render` object Log Analytics adds to a result with `Prefer: include-render=true`:
/// `{"visualization", "title", "accumulate", "isQuerySorted", "kind", "annotation", "by"}`, plus
/// the axis properties the query gave (`xcolumn`, `ycolumns`, `series`, ...).
pub fn render(r: &fimlake_kql::ast::Render) -> Value {
    let get = |k: &str| r.properties.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let mut out = json!({
        "visualization": r.visualization,
        "title": get("title").unwrap_or_default(),
        "accumulate": get("accumulate").is_some_and(|v| v == "true"),
        "isQuerySorted": false,
        "kind": get("kind").unwrap_or_else(|| "default".into()),
        "annotation": "",
        "by": Value::Null,
    });
    for (k, v) in &r.properties {
        let key = match k.to_ascii_lowercase().as_str() {
            "title" | "kind" | "accumulate" => continue,
            "xcolumn" => "xcolumn",
            "ycolumns" => "ycolumns",
            "series" => "series",
            "xtitle" => "xtitle",
            "ytitle" => "ytitle",
            "ymin" => "ymin",
            "ymax" => "ymax",
            "legend" => "legend",
            "ysplit" => "ysplit",
            _ => continue,
        };
        out[key] = if key == "ycolumns" || key == "series" {
            Value::Array(v.split(',').map(|s| Value::String(s.to_string())).collect())
        } else {
            Value::String(v.clone())
        };
    }
    out
}

/// One cell in the Log Analytics encoding.
pub fn cell(c: &dyn Array, r: usize) -> Value {
    if c.is_null(r) {
        return Value::Null;
    }
    match c.data_type() {
        DataType::Utf8 => json!(c.as_string::<i32>().value(r)),
        DataType::LargeUtf8 => json!(c.as_string::<i64>().value(r)),
        DataType::Utf8View => json!(c.as_string_view().value(r)),
        DataType::Boolean => json!(c.as_boolean().value(r)),
        DataType::Int64 => json!(c.as_primitive::<Int64Type>().value(r)),
        DataType::Int32 => json!(c.as_primitive::<Int32Type>().value(r)),
        DataType::Int16 => json!(c.as_primitive::<Int16Type>().value(r)),
        DataType::Int8 => json!(c.as_primitive::<Int8Type>().value(r)),
        DataType::UInt64 => json!(c.as_primitive::<UInt64Type>().value(r)),
        DataType::UInt32 => json!(c.as_primitive::<UInt32Type>().value(r)),
        DataType::UInt16 => json!(c.as_primitive::<UInt16Type>().value(r)),
        DataType::UInt8 => json!(c.as_primitive::<UInt8Type>().value(r)),
        DataType::Float64 => real(c.as_primitive::<Float64Type>().value(r)),
        DataType::Float32 => real(f64::from(c.as_primitive::<Float32Type>().value(r))),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => c.as_primitive::<arrow::datatypes::TimestampSecondType>().value(r) * 1_000_000,
                TimeUnit::Millisecond => c.as_primitive::<arrow::datatypes::TimestampMillisecondType>().value(r) * 1000,
                TimeUnit::Microsecond => c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(r),
                TimeUnit::Nanosecond => c.as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(r) / 1000,
            };
            json!(fimlake_kusto::datetime::format(v))
        }
        DataType::Duration(unit) => {
            let ns = match unit {
                TimeUnit::Second => c.as_primitive::<DurationSecondType>().value(r) * 1_000_000_000,
                TimeUnit::Millisecond => c.as_primitive::<DurationMillisecondType>().value(r) * 1_000_000,
                TimeUnit::Microsecond => c.as_primitive::<DurationMicrosecondType>().value(r) * 1000,
                TimeUnit::Nanosecond => c.as_primitive::<DurationNanosecondType>().value(r),
            };
            json!(fimlake_kusto::timespan::format(ns))
        }
        _ => json!(arrow::util::display::array_value_to_string(c, r).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_as_log_analytics_does() {
        use fimlake_kusto::{datetime, timespan};
        assert_eq!(datetime::format(1_622_593_153_440_000), "2021-06-02T00:19:13.44Z");
        assert_eq!(datetime::format(1_503_557_999_000_000), "2017-08-24T06:59:59Z");
        assert_eq!(timespan::format(60_000_000_000), "00:01:00");
        assert_eq!(timespan::format(93_784_500_000_000), "1.02:03:04.5000000");
        assert_eq!(timespan::format(-1_500_000_000), "-00:00:01.5000000");
        assert_eq!(real(f64::NAN), json!("NaN"));
    }
}
