//! The Arrow builder of each column a body is decoded into, one variant per Kusto type.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, DurationNanosecondBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use fimlake_storage::KustoType;

/// The values (and, for strings, bytes) arrow's builders have room for from `new()`.
const DEFAULT_ROOM: usize = 1024;

/// The builder of one column, by the column's Kusto type (`dynamic` and `guid` are strings).
pub(super) enum Col {
    Str(StringBuilder),
    Time(TimestampMicrosecondBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Span(DurationNanosecondBuilder),
}

impl Col {
    /// A builder with room for `records` values and, for strings, `bytes` bytes of them; the
    /// room arrow's builders start with by default when `records` is 0.
    pub(super) fn with_capacity(ty: KustoType, records: usize, bytes: usize) -> Col {
        let (records, bytes) = if records == 0 { (DEFAULT_ROOM, DEFAULT_ROOM) } else { (records, bytes) };
        match ty {
            KustoType::String | KustoType::Guid | KustoType::Dynamic => {
                Col::Str(StringBuilder::with_capacity(records, bytes))
            }
            KustoType::DateTime => Col::Time(TimestampMicrosecondBuilder::with_capacity(records).with_timezone("UTC")),
            KustoType::Long => Col::I64(Int64Builder::with_capacity(records)),
            KustoType::Int => Col::I32(Int32Builder::with_capacity(records)),
            KustoType::Real => Col::F64(Float64Builder::with_capacity(records)),
            KustoType::Bool => Col::Bool(BooleanBuilder::with_capacity(records)),
            KustoType::Timespan => Col::Span(DurationNanosecondBuilder::with_capacity(records)),
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Col::Str(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::I64(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Span(b) => b.append_null(),
        }
    }

    /// Nulls until the column holds `rows` values: the records before that had no value for it.
    pub(super) fn fill_nulls_to(&mut self, rows: usize) {
        let missing = rows.checked_sub(self.len()).expect("a column never holds more values than records");
        if missing == 0 {
            return;
        }
        match self {
            Col::Str(b) => b.append_nulls(missing),
            Col::Time(b) => b.append_nulls(missing),
            Col::I64(b) => b.append_nulls(missing),
            Col::I32(b) => b.append_nulls(missing),
            Col::F64(b) => b.append_nulls(missing),
            Col::Bool(b) => b.append_nulls(missing),
            Col::Span(b) => b.append_nulls(missing),
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Span(b) => Arc::new(b.finish()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Col::Str(b) => b.len(),
            Col::Time(b) => b.len(),
            Col::I64(b) => b.len(),
            Col::I32(b) => b.len(),
            Col::F64(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::Span(b) => b.len(),
        }
    }
}
