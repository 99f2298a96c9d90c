//! `_ItemId`: a version 7 UUID (RFC 9562) of the time the body was received, unique without a
//! lock per record.
//!
//! Below the 48-bit millisecond timestamp, the 74 bits RFC 9562 leaves to the generator hold a
//! 42-bit counter (method 1, "fixed bit-length dedicated counter") and 32 bits drawn once per
//! process. The counter is the process's, seeded at random and handed out in blocks of
//! [`BLOCK`] to each body, so ids are unique within a process and, across processes and
//! restarts, unless two draw the same 32 bits and counters in the same millisecond.
//!
//! Random bits in every id would be just as unique, but each id's 74 random bits cost ~5 more
//! bytes per row on disk than `Uuid::now_v7`'s 32 (the full run of 2026-12-07: storage 0.063 ->
//! 0.072 of the raw JSON, BENCHMARKS.md); a counter compresses, ids of one body being close.
//! `Uuid::now_v7` itself read the clock and took a lock shared by every decoding thread once per
//! record (2 % of the server's CPU at 8x1000 ingest).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counter values a body takes at a time from the process's counter.
const BLOCK: u64 = 1024;

const COUNTER_BITS: u32 = 42;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// The process's counter and its 32 random bits.
struct Process {
    bits: u32,
    next: AtomicU64,
}

static PROCESS: LazyLock<Process> =
    LazyLock::new(|| Process { bits: rand::random(), next: AtomicU64::new(rand::random::<u64>() >> 23) });

/// The ids of one body: counter values from a block taken from the process's counter.
#[derive(Debug, Default)]
pub(super) struct ItemIds {
    next: u64,
    end: u64,
}

impl ItemIds {
    /// The next id, of the receive time `received_us`.
    pub(super) fn next(&mut self, received_us: i64) -> uuid::Uuid {
        if self.next == self.end {
            self.next = PROCESS.next.fetch_add(BLOCK, Ordering::Relaxed);
            self.end = self.next + BLOCK;
        }
        let counter = self.next & COUNTER_MASK;
        self.next += 1;
        let millis = u64::try_from(received_us.div_euclid(1_000)).unwrap_or(0);
        encode(millis, counter, PROCESS.bits)
    }
}

/// The UUID's 128 bits: `unix_ts_ms` (48) | version 7 (4) | `rand_a` (12: the counter's high
/// bits) | variant `10` (2) | `rand_b` (62: the counter's low 30 bits, the process's 32).
fn encode(millis: u64, counter: u64, process: u32) -> uuid::Uuid {
    let millis = u128::from(millis & ((1 << 48) - 1));
    let counter = u128::from(counter & COUNTER_MASK);
    let value = (millis << 80)
        | (0x7 << 76)
        | ((counter >> 30) << 64)
        | (0b10 << 62)
        | ((counter & ((1 << 30) - 1)) << 32)
        | u128::from(process);
    uuid::Uuid::from_u128(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_land_where_rfc_9562_puts_them() {
        let id = encode(1_714_564_800_123, COUNTER_MASK, 0xdead_beef);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!((seconds, nanos / 1_000_000), (1_714_564_800, 123));
        assert!(id.hyphenated().to_string().ends_with("-bfff-ffffdeadbeef"), "{id}");
    }

    #[test]
    fn ids_of_bodies_decoded_at_once_are_distinct_and_each_bodys_ascend() {
        let bodies: Vec<Vec<uuid::Uuid>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut ids = ItemIds::default();
                        (0..3_000).map(|_| ids.next(1_714_564_800_000_000)).collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        let all: std::collections::HashSet<&uuid::Uuid> = bodies.iter().flatten().collect();
        assert_eq!(all.len(), 12_000);
        for body in &bodies {
            assert!(body.chunks(BLOCK as usize).all(|block| block.windows(2).all(|pair| pair[0] < pair[1])));
        }
    }
}
