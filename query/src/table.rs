//! A query's result as typed values: columns with their Kusto type, rows of [`Cell`]s. What
//! alert rules evaluate and the console shows; the wire encoding ([`crate::encode`]) is made
//! from it, so every reader sees the same values.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use fimlake_kusto::KustoType;
use serde_json::{Map, Value, json};

use crate::QueryResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kusto_type: KustoType,
}

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Long(i64),
    Real(f64),
    String(String),
    /// Microseconds since the Unix epoch.
    Datetime(i64),
    /// Nanoseconds.
    Timespan(i64),
    /// A dynamic value, as its compact JSON text.
    Dynamic(String),
}

/// The result's columns and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn of(result: &QueryResult) -> Table {
        let columns: Vec<Column> = result
            .schema
            .fields()
            .iter()
            .map(|field| Column { name: field.name().clone(), kusto_type: KustoType::of_field(field) })
            .collect();
        let mut rows = Vec::new();
        for batch in &result.batches {
            assert_eq!(batch.num_columns(), columns.len(), "a batch has the result's columns");
            for row in 0..batch.num_rows() {
                let cells = batch.columns().iter().zip(&columns);
                rows.push(cells.map(|(array, column)| Cell::of(array.as_ref(), row, column.kusto_type)).collect());
            }
        }
        Table { columns, rows }
    }

    /// The position of the column called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column.name == name)
    }

    /// A row as a JSON object from column names to wire values.
    pub fn object(&self, row: &[Cell]) -> Map<String, Value> {
        self.columns.iter().zip(row).map(|(column, cell)| (column.name.clone(), cell.to_json())).collect()
    }

    /// The columns in the wire shape, `{"name", "type"}`.
    pub fn columns_json(&self) -> Vec<Value> {
        self.columns.iter().map(|c| json!({"name": c.name, "type": c.kusto_type.name()})).collect()
    }
}

impl Cell {
    /// The value of `array` at `row`, read as a value of `kusto_type` (the column's type).
    pub fn of(array: &dyn Array, row: usize, kusto_type: KustoType) -> Cell {
        if array.is_null(row) {
            return Cell::Null;
        }
        if kusto_type == KustoType::Dynamic
            && let Some(text) = text(array, row)
        {
            return Cell::Dynamic(text.to_string());
        }
        match array.data_type() {
            DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
            DataType::Float64 => Cell::Real(array.as_primitive::<Float64Type>().value(row)),
            DataType::Float32 => Cell::Real(f64::from(array.as_primitive::<Float32Type>().value(row))),
            DataType::Timestamp(unit, _) => Cell::Datetime(timestamp_micros(array, row, *unit)),
            DataType::Duration(unit) => Cell::Timespan(duration_nanos(array, row, *unit)),
            _ => integer(array, row)
                .or_else(|| text(array, row).map(|text| Cell::String(text.to_string())))
                .unwrap_or_else(|| {
                    Cell::String(arrow::util::display::array_value_to_string(array, row).unwrap_or_default())
                }),
        }
    }

    /// The cell as a number, for a measure: numbers, booleans as 0 and 1, numeric text.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Long(value) => Some(*value as f64),
            Cell::Real(value) => Some(*value),
            Cell::Bool(value) => Some(f64::from(u8::from(*value))),
            Cell::String(text) => text.parse().ok(),
            Cell::Dynamic(_) => self.to_json().as_str()?.parse().ok(),
            Cell::Null | Cell::Datetime(_) | Cell::Timespan(_) => None,
        }
    }

    /// The cell in the Log Analytics encoding: datetime as ISO 8601 `Z` without trailing zeros,
    /// timespan as `[-][d.]hh:mm:ss[.fffffff]`, real NaN and infinities as strings, dynamic as
    /// its JSON text (a dynamic string as itself, as Kusto prints it).
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(value) => json!(value),
            Cell::Long(value) => json!(value),
            Cell::Real(value) => real(*value),
            Cell::String(text) => json!(text),
            Cell::Datetime(micros) => json!(fimlake_kusto::datetime::format(*micros)),
            Cell::Timespan(nanos) => json!(fimlake_kusto::timespan::format(*nanos)),
            Cell::Dynamic(text) => dynamic(text),
        }
    }
}

fn text(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

/// An integer of any width as a long; an unsigned value past `i64::MAX` as a real, which
/// holds its magnitude (Kusto has no unsigned type).
fn integer(array: &dyn Array, row: usize) -> Option<Cell> {
    let long = match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::Int32 => i64::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int16 => i64::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int8 => i64::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::UInt32 => i64::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt16 => i64::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt8 => i64::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt64 => {
            let value = array.as_primitive::<UInt64Type>().value(row);
            return Some(i64::try_from(value).map_or(Cell::Real(value as f64), Cell::Long));
        }
        _ => return None,
    };
    Some(Cell::Long(long))
}

fn timestamp_micros(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000,
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row) * 1000,
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row) / 1000,
    }
}

fn duration_nanos(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row) * 1_000_000_000,
        TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row) * 1_000_000,
        TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row) * 1000,
        TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
    }
}

fn real(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

/// A dynamic value is its JSON text, except a string, which is itself.
fn dynamic(text: &str) -> Value {
    if text.starts_with('"')
        && let Ok(Value::String(inner)) = serde_json::from_str::<Value>(text)
    {
        return Value::String(inner);
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, DurationNanosecondArray, Float64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn result(fields: Vec<Field>, arrays: Vec<ArrayRef>) -> QueryResult {
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        QueryResult { schema, batches: vec![batch], truncated: false }
    }

    #[test]
    fn cells_are_typed_and_encode_as_log_analytics_does() {
        let table = Table::of(&result(
            vec![
                KustoType::DateTime.field("At"),
                KustoType::Timespan.field("Took"),
                KustoType::Real.field("Ratio"),
                KustoType::Dynamic.field("Bag"),
            ],
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![1_622_593_153_440_000]).with_timezone("UTC")),
                Arc::new(DurationNanosecondArray::from(vec![-1_500_000_000])),
                Arc::new(Float64Array::from(vec![f64::NAN])),
                Arc::new(StringArray::from(vec!["\"text\""])),
            ],
        ));
        let row = &table.rows[0];
        assert_eq!(row[0], Cell::Datetime(1_622_593_153_440_000));
        assert_eq!(row[1], Cell::Timespan(-1_500_000_000));
        assert_eq!(row[3], Cell::Dynamic("\"text\"".into()));
        let wire: Vec<Value> = row.iter().map(Cell::to_json).collect();
        assert_eq!(
            wire,
            vec![json!("2021-06-02T00:19:13.44Z"), json!("-00:00:01.5000000"), json!("NaN"), json!("text")]
        );
        assert_eq!(table.columns_json()[1], json!({"name": "Took", "type": "timespan"}));
    }

    #[test]
    fn measures_read_numbers_booleans_and_numeric_text() {
        assert_eq!(Cell::Long(3).as_f64(), Some(3.0));
        assert_eq!(Cell::Bool(true).as_f64(), Some(1.0));
        assert_eq!(Cell::String("2.5".into()).as_f64(), Some(2.5));
        assert_eq!(Cell::String("many".into()).as_f64(), None);
        assert_eq!(Cell::Null.as_f64(), None);
        assert_eq!(Cell::Datetime(0).as_f64(), None);
    }
}
