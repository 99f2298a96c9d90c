//! The rows of a flush or a compaction in the order files keep them (`TimeGenerated`, then
//! `Computer`), handed out in chunks with their partition columns: the writer never holds a
//! sorted copy of all the rows, only one chunk at a time.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int32Array, RecordBatch};
use arrow::compute::{SortColumn, SortOptions, concat, interleave_record_batch, lexsort_to_indices};
use arrow::datatypes::TimestampMicrosecondType;

use crate::error::{Result, StorageError};
use crate::schema::{COMPUTER_COLUMN, TIME_COLUMN, TableDef};

/// Rows per chunk: a chunk of a wide table is a few tens of MiB at most.
pub(crate) const CHUNK_ROWS: usize = 64 * 1024;

const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;

pub(crate) struct SortedRows {
    def: Arc<TableDef>,
    batches: Vec<RecordBatch>,
    /// The (batch, row) of each row, in file order.
    order: Vec<(usize, usize)>,
}

impl SortedRows {
    /// Sorts by the key columns only; the other columns stay where they are until
    /// [`SortedRows::chunk`] gathers them.
    pub(crate) fn new(def: Arc<TableDef>, batches: Vec<RecordBatch>) -> Result<SortedRows> {
        if def.column_index(TIME_COLUMN).is_none() {
            return Err(StorageError::Config(format!("table {} has no {TIME_COLUMN} column", def.name())));
        }
        let keys =
            sort_key_indices(&def).into_iter().map(|index| sort_column(&batches, index)).collect::<Result<Vec<_>>>()?;
        let indices = lexsort_to_indices(&keys, None)?;
        let mut starts = Vec::with_capacity(batches.len());
        let mut total = 0;
        for b in &batches {
            starts.push(total);
            total += b.num_rows();
        }
        let order = indices
            .values()
            .iter()
            .map(|&i| {
                let i = i as usize;
                let batch = starts.partition_point(|&s| s <= i) - 1;
                (batch, i - starts[batch])
            })
            .collect();
        Ok(SortedRows { def, batches, order })
    }

    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }

    /// The sorted rows in chunks of at most [`CHUNK_ROWS`], in the Delta schema (the table's
    /// columns, then the UTC day and hour of `TimeGenerated`).
    pub(crate) fn chunks(&self) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        self.order.chunks(CHUNK_ROWS).map(|order| self.chunk(order))
    }

    fn chunk(&self, order: &[(usize, usize)]) -> Result<RecordBatch> {
        let sources: Vec<&RecordBatch> = self.batches.iter().collect();
        let rows = interleave_record_batch(&sources, order)?;
        let index = self.def.column_index(TIME_COLUMN).expect("checked by new");
        let times = rows.column(index).as_primitive::<TimestampMicrosecondType>();
        let dates: Date32Array = times.iter().map(|t| t.map(|t| t.div_euclid(DAY_MICROS) as i32)).collect();
        let hours: Int32Array =
            times.iter().map(|t| t.map(|t| (t.rem_euclid(DAY_MICROS) / HOUR_MICROS) as i32)).collect();
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.push(Arc::new(dates));
        columns.push(Arc::new(hours));
        Ok(RecordBatch::try_new(self.def.delta_schema(), columns)?)
    }
}

/// The indices of the columns files are sorted by, in order (`TimeGenerated`, then `Computer`
/// where the table has it), each ascending with nulls first: what [`SortedRows`] sorts by and
/// what the Parquet footer records.
pub(crate) fn sort_key_indices(def: &TableDef) -> Vec<usize> {
    [TIME_COLUMN, COMPUTER_COLUMN].iter().filter_map(|c| def.column_index(c)).collect()
}

/// One key column of all the batches together, ascending with nulls first.
fn sort_column(batches: &[RecordBatch], index: usize) -> Result<SortColumn> {
    let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(index).as_ref()).collect();
    Ok(SortColumn { values: concat(&arrays)?, options: Some(SortOptions { descending: false, nulls_first: true }) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableRegistry;
    use arrow::array::{StringArray, TimestampMicrosecondArray, new_null_array};

    fn batch(def: &TableDef, rows: &[(i64, &str)]) -> RecordBatch {
        let schema = def.schema().clone();
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                TIME_COLUMN => Arc::new(
                    TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()).with_timezone("UTC"),
                ) as ArrayRef,
                COMPUTER_COLUMN => Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                _ => new_null_array(f.data_type(), rows.len()),
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn rows_of_several_batches_come_out_by_time_then_computer_with_their_partition() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let hour = HOUR_MICROS;
        let first = batch(&def, &[(3 * hour, "b"), (hour, "z")]);
        let second = batch(&def, &[(3 * hour, "a"), (DAY_MICROS + 5, "c")]);
        let sorted = SortedRows::new(def.clone(), vec![first, second]).unwrap();
        assert_eq!(sorted.order.len(), 4);
        let chunks: Vec<RecordBatch> = sorted.chunks().collect::<Result<_>>().unwrap();
        assert_eq!(chunks.len(), 1);
        let chunk = &chunks[0];
        let computers = chunk.column(def.column_index(COMPUTER_COLUMN).unwrap()).as_string::<i32>();
        let names: Vec<&str> = computers.iter().map(|c| c.unwrap()).collect();
        assert_eq!(names, ["z", "a", "b", "c"]);
        let hours = chunk.column(chunk.num_columns() - 1).as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!(hours.values().to_vec(), [1, 3, 3, 0]);
        let days = chunk.column(chunk.num_columns() - 2).as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!(days.values().to_vec(), [0, 0, 0, 1]);
    }

    #[test]
    fn many_rows_come_in_bounded_chunks_in_order() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let rows: Vec<(i64, &str)> = (0..(CHUNK_ROWS as i64 * 2 + 10)).rev().map(|t| (t, "m")).collect();
        let sorted = SortedRows::new(def.clone(), vec![batch(&def, &rows)]).unwrap();
        let sizes: Vec<usize> = sorted.chunks().map(|c| c.unwrap().num_rows()).collect();
        assert_eq!(sizes, [CHUNK_ROWS, CHUNK_ROWS, 10]);
        let last = sorted.chunks().last().unwrap().unwrap();
        let times = last.column(def.column_index(TIME_COLUMN).unwrap()).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(times.value(9), CHUNK_ROWS as i64 * 2 + 9, "ascending to the last row");
    }
}
