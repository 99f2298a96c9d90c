//! A table's write buffer: the acknowledged rows not in a Delta commit yet, counted in the
//! budget all tables share.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};

use crate::budget::BufferBudget;

/// Acknowledged rows that are not in a Delta commit yet. `active` takes new rows; `flushing`
/// holds the rows of the flushes in progress, oldest first, which stay visible to queries until
/// the commit that holds them is visible too. A node that commits itself has at most one flush
/// in progress; an ingest node stages the next while the leader has yet to commit the last
/// ([`crate::handoff`]).
pub(crate) struct Buffer {
    /// Shared with every other table's buffer: what all of them hold together.
    pub(crate) budget: Arc<BufferBudget>,
    active: Vec<RecordBatch>,
    pub(crate) active_rows: usize,
    pub(crate) active_bytes: usize,
    pub(crate) oldest: Option<Instant>,
    flushing: VecDeque<Generation>,
    flushing_rows: usize,
    flushing_bytes: usize,
}

/// The rows of one flush: those of the WAL segments up to `upto` not in an earlier flush.
struct Generation {
    upto: u64,
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
}

impl Buffer {
    pub(crate) fn new(budget: Arc<BufferBudget>) -> Buffer {
        Buffer {
            budget,
            active: Vec::new(),
            active_rows: 0,
            active_bytes: 0,
            oldest: None,
            flushing: VecDeque::new(),
            flushing_rows: 0,
            flushing_bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, batch: RecordBatch) {
        let bytes = batch.get_array_memory_size();
        self.budget.take(bytes);
        self.active_rows += batch.num_rows();
        self.active_bytes += bytes;
        self.oldest.get_or_insert_with(Instant::now);
        self.active.push(batch);
    }

    /// Moves the active rows, those of the WAL segments up to `upto`, to a new flush and
    /// returns them.
    pub(crate) fn seal(&mut self, upto: u64) -> Vec<RecordBatch> {
        debug_assert!(self.flushing.back().is_none_or(|g| g.upto < upto), "flushes follow each other");
        let generation = Generation {
            upto,
            batches: std::mem::take(&mut self.active),
            rows: std::mem::take(&mut self.active_rows),
            bytes: std::mem::take(&mut self.active_bytes),
        };
        self.oldest = None;
        self.flushing_rows += generation.rows;
        self.flushing_bytes += generation.bytes;
        let batches = generation.batches.clone();
        self.flushing.push_back(generation);
        batches
    }

    /// Drops the rows of the flushes up to segment `upto`: a commit holds them now.
    pub(crate) fn finish_flush(&mut self, upto: u64) {
        while self.flushing.front().is_some_and(|g| g.upto <= upto) {
            let done = self.flushing.pop_front().expect("checked above");
            self.budget.give_back(done.bytes);
            self.flushing_rows -= done.rows;
            self.flushing_bytes -= done.bytes;
        }
    }

    /// Makes the flushes in progress one, to be written again as one (their rows in order);
    /// returns its rows and last segment, `None` when there is none.
    pub(crate) fn merge_flushing(&mut self) -> Option<(u64, Vec<RecordBatch>)> {
        let upto = self.flushing.back()?.upto;
        let batches: Vec<RecordBatch> = self.flushing.iter().flat_map(|g| g.batches.iter().cloned()).collect();
        let merged =
            Generation { upto, batches: batches.clone(), rows: self.flushing_rows, bytes: self.flushing_bytes };
        self.flushing = VecDeque::from([merged]);
        Some((upto, batches))
    }

    pub(crate) fn active_rows(&self) -> usize {
        self.active_rows
    }

    pub(crate) fn total_bytes(&self) -> usize {
        self.active_bytes + self.flushing_bytes
    }

    pub(crate) fn total_rows(&self) -> usize {
        self.active_rows + self.flushing_rows
    }

    fn flushing_batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.flushing.iter().flat_map(|g| &g.batches)
    }

    /// The oldest `_TimeReceived` (µs) of the rows held, flushing or not.
    pub(crate) fn oldest_received(&self) -> Option<i64> {
        self.flushing_batches().chain(&self.active).filter_map(oldest_received).min()
    }

    pub(crate) fn batches(&self) -> Vec<RecordBatch> {
        self.flushing_batches().chain(&self.active).cloned().collect()
    }
}

/// The smallest `_TimeReceived` of a batch, when the table has the column.
fn oldest_received(batch: &RecordBatch) -> Option<i64> {
    let column = batch.column_by_name(crate::schema::TIME_RECEIVED_COLUMN)?;
    arrow::compute::min(column.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()?)
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.budget.give_back(self.total_bytes());
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
    }

    #[test]
    fn flushes_in_progress_leave_the_buffer_in_order_as_their_commits_reach_them() {
        let budget = Arc::new(BufferBudget::new(1 << 30));
        let mut buffer = Buffer::new(budget.clone());
        buffer.push(rows(3));
        assert_eq!(buffer.seal(4).len(), 1);
        buffer.push(rows(5));
        buffer.seal(7);
        buffer.push(rows(2));
        assert_eq!((buffer.total_rows(), buffer.active_rows()), (10, 2));
        assert_eq!(buffer.batches().len(), 3, "queries see the flushes in progress and the active rows");

        buffer.finish_flush(4);
        assert_eq!(buffer.total_rows(), 7);
        buffer.finish_flush(5);
        assert_eq!(buffer.total_rows(), 7, "segment 5 does not reach the flush up to 7");
        buffer.finish_flush(7);
        assert_eq!(buffer.total_rows(), 2);
        assert_eq!(budget.used(), buffer.total_bytes());
    }

    #[test]
    fn flushes_set_aside_become_one_flush_up_to_the_last_segment() {
        let budget = Arc::new(BufferBudget::new(1 << 30));
        let mut buffer = Buffer::new(budget.clone());
        assert!(buffer.merge_flushing().is_none());
        buffer.push(rows(3));
        buffer.seal(4);
        buffer.push(rows(5));
        buffer.seal(7);
        let (upto, batches) = buffer.merge_flushing().unwrap();
        assert_eq!((upto, batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>()), (7, vec![3, 5]));
        buffer.finish_flush(7);
        assert_eq!((buffer.total_rows(), budget.used()), (0, 0));
    }
}
