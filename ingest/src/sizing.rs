//! How large a table's bodies decode, learned from the last one decoded: the next body's column
//! builders get that room at once, scaled to its length, instead of growing by doubling from a
//! few bytes (each step a copy of the column and fresh pages faulted in, ~10 steps per column of
//! a 1,000-record body: 5 % of the server's CPU at 8x1000 ingest, BENCHMARKS.md).
//!
//! An agent's bodies look alike, so the last body is a good guess for the next; a wrong guess
//! costs what no guess costs (the builder grows) or room unused, never more than about the
//! body's own length. The measures are atomics without ordering: two bodies decoded at once
//! each leave theirs, and either is a fair guess.

use std::sync::atomic::{AtomicU32, Ordering};

const MIB: u64 = 1 << 20;

/// The longest value the server fills a string column with, per record (an `_ItemId` GUID is
/// 36 bytes; a table's name and a tenant id are shorter).
const MAX_FILL_BYTES: usize = 64;

/// The last decoded body of one table, per MiB of body.
#[derive(Debug)]
pub struct Sizing {
    /// Records per MiB of body; 0 before the first body.
    records_per_mib: AtomicU32,
    /// Per column of the table, bytes of string values per MiB of body.
    bytes_per_mib: Vec<AtomicU32>,
}

impl Sizing {
    /// Nothing learned yet, for a table of `columns` columns.
    pub fn new(columns: usize) -> Sizing {
        Sizing { records_per_mib: AtomicU32::new(0), bytes_per_mib: (0..columns).map(|_| AtomicU32::new(0)).collect() }
    }

    /// The records a body of `body_len` bytes likely holds, with room to spare; 0 when no body
    /// was decoded yet.
    pub fn records(&self, body_len: usize) -> usize {
        with_slack(scale(self.records_per_mib.load(Ordering::Relaxed), body_len))
    }

    /// The bytes of string values column `column` likely holds in a body of `body_len` bytes
    /// and `records` records, with room to spare. A column's strings come from the body (at most
    /// its length) or from the server ([`MAX_FILL_BYTES`] a record at most), whatever the last
    /// body was like.
    pub fn bytes(&self, column: usize, body_len: usize, records: usize) -> usize {
        let estimate = with_slack(scale(self.bytes_per_mib[column].load(Ordering::Relaxed), body_len));
        estimate.min(body_len.saturating_add(records.saturating_mul(MAX_FILL_BYTES)))
    }

    /// Keeps what a body of `body_len` bytes decoded to: `records`, and `column_bytes` (column,
    /// bytes of string values) for the columns that hold strings.
    pub fn learn(&self, body_len: usize, records: usize, column_bytes: impl Iterator<Item = (usize, usize)>) {
        if body_len == 0 {
            return;
        }
        self.records_per_mib.store(per_mib(records, body_len), Ordering::Relaxed);
        for (column, bytes) in column_bytes {
            self.bytes_per_mib[column].store(per_mib(bytes, body_len), Ordering::Relaxed);
        }
    }
}

/// `count` per MiB of `body_len` bytes, saturated to `u32`.
fn per_mib(count: usize, body_len: usize) -> u32 {
    let scaled = (count as u64).saturating_mul(MIB) / body_len as u64;
    u32::try_from(scaled).unwrap_or(u32::MAX)
}

/// `per_mib` for a body of `body_len` bytes.
fn scale(per_mib: u32, body_len: usize) -> usize {
    usize::try_from(u64::from(per_mib) * body_len as u64 / MIB).unwrap_or(usize::MAX)
}

/// A sixteenth more than `estimate` (nothing when it is 0), so a body a little larger than the
/// last still fits.
fn with_slack(estimate: usize) -> usize {
    if estimate == 0 { 0 } else { estimate.saturating_add(estimate / 16 + 16) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_sized_as_the_last_one_was_scaled_to_its_length_with_room_to_spare() {
        let sizing = Sizing::new(3);
        assert_eq!((sizing.records(500_000), sizing.bytes(1, 500_000, 0)), (0, 0), "nothing learned yet");
        sizing.learn(560_000, 1_000, [(1, 40_000)].into_iter());
        let records = sizing.records(1_120_000);
        let bytes = sizing.bytes(1, 1_120_000, records);
        assert!((2_000..=2_000 + 2_000 / 16 + 17).contains(&records), "{records}");
        assert!((80_000..=80_000 + 80_000 / 16 + 17).contains(&bytes), "{bytes}");
        assert_eq!(sizing.bytes(2, 1_120_000, records), 0, "a column without strings");
    }

    #[test]
    fn strings_the_server_added_to_tiny_records_do_not_size_a_body_of_few_large_ones() {
        let sizing = Sizing::new(1);
        // 1,000 records `{}` of 3 bytes each, each given a 36-byte `_ItemId`.
        sizing.learn(3_000, 1_000, [(0, 36_000)].into_iter());
        let body_len = 8 << 20;
        let room = sizing.bytes(0, body_len, 10);
        assert_eq!(room, body_len + 10 * MAX_FILL_BYTES, "the body's length, not 12 times it");
    }
}
