//! The rows of a flush or a compaction in the order files keep them (`TimeGenerated`, then
//! `Computer`), handed out in chunks of one partition each: the writer never holds a sorted copy
//! of all the rows, only one chunk at a time, and the Delta writer need not split a chunk by
//! partition (a copy of every row, 7 % of the server's CPU at 8x1000 ingest, BENCHMARKS.md).

use std::ops::Range;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::{SortColumn, SortOptions, concat, interleave, lexsort_to_indices};
use arrow::datatypes::{DataType, TimestampMicrosecondType};

use crate::error::{Result, StorageError};
use crate::schema::{COMPUTER_COLUMN, TIME_COLUMN, TableDef};

/// Rows per chunk: a chunk of a wide table is a few tens of MiB at most.
pub(crate) const CHUNK_ROWS: usize = 64 * 1024;

/// Microseconds in a UTC day (a day partition; also what closes a day for compaction).
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;

/// The Delta partition of a row: the UTC day (days since the epoch) and hour of its
/// `TimeGenerated`, both `None` for a row without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Partition {
    pub date: Option<i32>,
    pub hour: Option<i32>,
}

impl Partition {
    fn of(time: Option<i64>) -> Partition {
        Partition {
            date: time.map(|t| t.div_euclid(DAY_MICROS) as i32),
            hour: time.map(|t| (t.rem_euclid(DAY_MICROS) / HOUR_MICROS) as i32),
        }
    }
}

/// Rows of one partition in file order, in the table's schema (the partition columns are not
/// among them: they are the chunk's `partition`).
pub(crate) struct Chunk {
    pub rows: RecordBatch,
    pub partition: Partition,
}

pub(crate) struct SortedRows {
    batches: Vec<RecordBatch>,
    /// The (batch, row) of each row, in file order.
    order: Vec<(usize, usize)>,
    /// The rows of each partition: consecutive ranges of `order` covering all of it.
    partitions: Vec<(Partition, Range<usize>)>,
}

impl SortedRows {
    /// Sorts by the key columns only; the other columns stay where they are until
    /// [`SortedRows::chunks`] gathers them.
    pub(crate) fn new(def: &TableDef, batches: Vec<RecordBatch>) -> Result<SortedRows> {
        if def.column_index(TIME_COLUMN).is_none() {
            return Err(StorageError::Config(format!("table {} has no {TIME_COLUMN} column", def.name())));
        }
        let keys =
            sort_key_indices(def).into_iter().map(|index| sort_column(&batches, index)).collect::<Result<Vec<_>>>()?;
        let indices = lexsort_to_indices(&keys, None)?;
        let times = keys[0].values.as_primitive::<TimestampMicrosecondType>();
        let partitions = partition_ranges(
            indices.values().iter().map(|&i| times.is_valid(i as usize).then(|| times.value(i as usize))),
        );
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
        Ok(SortedRows { batches, order, partitions })
    }

    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }

    /// The sorted rows in chunks of one partition and at most [`CHUNK_ROWS`] rows each. The
    /// rows are gathered [`CHUNK_ROWS`] at a time; a partition's rows among them are contiguous
    /// (sorted by time), so each chunk is a slice of the gathered rows, not a copy.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = Result<Chunk>> + '_ {
        (0..self.order.len()).step_by(CHUNK_ROWS).flat_map(move |start| {
            let window = start..(start + CHUNK_ROWS).min(self.order.len());
            match self.gather(window.clone()) {
                Ok(rows) => self
                    .partitions_within(window)
                    .map(|(partition, range)| {
                        Ok(Chunk { rows: rows.slice(range.start - start, range.len()), partition })
                    })
                    .collect::<Vec<_>>(),
                Err(error) => vec![Err(error)],
            }
        })
    }

    /// The rows at `positions` of the file order, in the table's schema.
    fn gather(&self, positions: Range<usize>) -> Result<RecordBatch> {
        let order = &self.order[positions];
        let schema = self.batches[0].schema();
        let mut nulls = NullColumns::default();
        let columns = (0..schema.fields().len())
            .map(|index| gather_column(&self.batches, index, order, &mut nulls))
            .collect::<Result<_>>()?;
        let rows = RecordBatchOptions::new().with_row_count(Some(order.len()));
        Ok(RecordBatch::try_new_with_options(schema, columns, &rows)?)
    }

    /// Each partition's part of `window` (positions in the file order), in order.
    fn partitions_within(&self, window: Range<usize>) -> impl Iterator<Item = (Partition, Range<usize>)> + '_ {
        let first = self.partitions.partition_point(|(_, range)| range.end <= window.start);
        self.partitions[first..]
            .iter()
            .take_while(move |(_, range)| range.start < window.end)
            .map(move |(partition, range)| (*partition, range.start.max(window.start)..range.end.min(window.end)))
    }
}

/// Column `index` of the rows at `order`. Most of a wide table's columns hold no value in any
/// row (a `ConfigurationChange` record sets 13 of 62): such a column is made null at once
/// instead of being gathered row by row.
fn gather_column(
    batches: &[RecordBatch],
    index: usize,
    order: &[(usize, usize)],
    nulls: &mut NullColumns,
) -> Result<ArrayRef> {
    let arrays: Vec<&dyn Array> = batches.iter().map(|batch| batch.column(index).as_ref()).collect();
    if arrays.iter().all(|array| array.logical_null_count() == array.len()) {
        return Ok(nulls.of(arrays[0].data_type(), order.len()));
    }
    Ok(interleave(&arrays, order)?)
}

/// The all-null columns of one gathered chunk: one array per type, shared by every column of
/// that type (arrays are immutable), so forty null columns cost one allocation, not forty.
#[derive(Default)]
struct NullColumns {
    made: Vec<ArrayRef>,
}

impl NullColumns {
    fn of(&mut self, data_type: &DataType, rows: usize) -> ArrayRef {
        if let Some(made) = self.made.iter().find(|array| array.data_type() == data_type) {
            assert_eq!(made.len(), rows, "one chunk's columns have its row count");
            return made.clone();
        }
        let array = new_null_array(data_type, rows);
        self.made.push(array.clone());
        array
    }
}

/// The partition of each row of `times` (in file order), as consecutive ranges.
fn partition_ranges(times: impl Iterator<Item = Option<i64>>) -> Vec<(Partition, Range<usize>)> {
    let mut ranges: Vec<(Partition, Range<usize>)> = Vec::new();
    for (position, time) in times.enumerate() {
        let partition = Partition::of(time);
        match ranges.last_mut() {
            Some((last, range)) if *last == partition => range.end = position + 1,
            _ => ranges.push((partition, position..position + 1)),
        }
    }
    ranges
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
    use std::sync::Arc;

    use super::*;
    use crate::TableRegistry;
    use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, new_null_array};

    fn batch(def: &TableDef, rows: &[(Option<i64>, &str)]) -> RecordBatch {
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

    fn computers(def: &TableDef, chunk: &Chunk) -> Vec<String> {
        let column = chunk.rows.column(def.column_index(COMPUTER_COLUMN).unwrap()).as_string::<i32>();
        column.iter().map(|c| c.unwrap().to_string()).collect()
    }

    #[test]
    fn rows_of_several_batches_come_out_by_time_then_computer_one_partition_per_chunk() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let hour = HOUR_MICROS;
        let first = batch(&def, &[(Some(3 * hour), "b"), (Some(hour), "z"), (None, "n")]);
        let second = batch(&def, &[(Some(3 * hour + 1), "a"), (Some(DAY_MICROS + 5), "c"), (Some(-1), "e")]);
        let sorted = SortedRows::new(&def, vec![first, second]).unwrap();
        assert_eq!(sorted.rows(), 6);
        let chunks: Vec<Chunk> = sorted.chunks().collect::<Result<_>>().unwrap();
        let partitions: Vec<Partition> = chunks.iter().map(|c| c.partition).collect();
        let partition = |date, hour| Partition { date: Some(date), hour: Some(hour) };
        assert_eq!(
            partitions,
            [
                Partition { date: None, hour: None },
                partition(-1, 23),
                partition(0, 1),
                partition(0, 3),
                partition(1, 0)
            ]
        );
        let names: Vec<Vec<String>> = chunks.iter().map(|c| computers(&def, c)).collect();
        assert_eq!(names, [vec!["n"], vec!["e"], vec!["z"], vec!["b", "a"], vec!["c"]]);
        assert_eq!(chunks[0].rows.schema(), *def.schema(), "the table's columns, no partition columns");
    }

    #[test]
    fn a_column_with_values_in_one_batch_only_is_gathered_and_one_without_any_comes_out_null() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let without = batch(&def, &[(Some(2), "b")]);
        let mut with = batch(&def, &[(Some(1), "a"), (Some(3), "c")]);
        let version = def.column_index("Version").unwrap();
        let mut columns = with.columns().to_vec();
        columns[version] = Arc::new(StringArray::from(vec![Some("1.0"), None]));
        with = RecordBatch::try_new(def.schema().clone(), columns).unwrap();
        let sorted = SortedRows::new(&def, vec![without, with]).unwrap();
        let chunk = sorted.chunks().next().unwrap().unwrap();
        let versions: Vec<Option<&str>> = chunk.rows.column(version).as_string::<i32>().iter().collect();
        assert_eq!(versions, [Some("1.0"), None, None], "rows 1, 2, 3 by time");
        let category = chunk.rows.column(def.column_index("Category").unwrap());
        assert_eq!((category.len(), category.null_count()), (3, 3));
        assert_eq!(category.data_type(), &arrow::datatypes::DataType::Utf8, "the table's type");
    }

    #[test]
    fn many_rows_of_one_partition_come_in_bounded_chunks_in_order() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let rows: Vec<(Option<i64>, &str)> = (0..(CHUNK_ROWS as i64 * 2 + 10)).rev().map(|t| (Some(t), "m")).collect();
        let sorted = SortedRows::new(&def, vec![batch(&def, &rows)]).unwrap();
        let sizes: Vec<usize> = sorted.chunks().map(|c| c.unwrap().rows.num_rows()).collect();
        assert_eq!(sizes, [CHUNK_ROWS, CHUNK_ROWS, 10]);
        let last = sorted.chunks().last().unwrap().unwrap();
        let times = last.rows.column(def.column_index(TIME_COLUMN).unwrap()).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(times.value(9), CHUNK_ROWS as i64 * 2 + 9, "ascending to the last row");
    }

    #[test]
    fn a_partition_across_the_gathered_windows_comes_in_pieces_of_each() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let first_hour = (0..CHUNK_ROWS as i64 + 10).map(|t| (Some(t), "m"));
        let second_hour = (0..5).map(|t| (Some(HOUR_MICROS + t), "m"));
        let rows: Vec<(Option<i64>, &str)> = first_hour.chain(second_hour).collect();
        let sorted = SortedRows::new(&def, vec![batch(&def, &rows)]).unwrap();
        let chunks: Vec<Chunk> = sorted.chunks().collect::<Result<_>>().unwrap();
        let sizes: Vec<(Option<i32>, usize)> = chunks.iter().map(|c| (c.partition.hour, c.rows.num_rows())).collect();
        assert_eq!(sizes, [(Some(0), CHUNK_ROWS), (Some(0), 10), (Some(1), 5)]);
        let time = def.column_index(TIME_COLUMN).unwrap();
        let firsts: Vec<i64> =
            chunks.iter().map(|c| c.rows.column(time).as_primitive::<TimestampMicrosecondType>().value(0)).collect();
        assert_eq!(firsts, [0, CHUNK_ROWS as i64, HOUR_MICROS], "each slice starts at its own first row");
    }

    #[test]
    fn a_chunk_never_spans_two_partitions_even_below_the_chunk_size() {
        let registry = TableRegistry::builtin();
        let def = registry.get("Heartbeat").unwrap().clone();
        let rows: Vec<(Option<i64>, &str)> = (0..10).map(|i| (Some(i * HOUR_MICROS / 2), "m")).collect();
        let sorted = SortedRows::new(&def, vec![batch(&def, &rows)]).unwrap();
        let sizes: Vec<(Option<i32>, usize)> =
            sorted.chunks().map(|c| c.unwrap()).map(|c| (c.partition.hour, c.rows.num_rows())).collect();
        assert_eq!(sizes, [(Some(0), 2), (Some(1), 2), (Some(2), 2), (Some(3), 2), (Some(4), 2)]);
    }
}
