//! Byte buffers kept from one request to the next: a request's body and its WAL entry.
//!
//! At 1,000 records a request reads ~0.5 MiB of body and encodes ~0.3 MiB of WAL entry. The
//! server's allocator gives freed memory back to the system at once (`src/memory.rs`, which keeps
//! the peak RSS under the budget), so a buffer allocated fresh for every request had every one of
//! its pages faulted in again: 7 % of the server's CPU at 8x1000 ingest (BENCHMARKS.md). The
//! buffers are kept instead, up to [`KEPT_BYTES`] of them together: the memory kept idle is
//! bounded here, not by load. A buffer larger than [`KEPT_CAPACITY`] is freed.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// The idle buffers' capacities together, at most.
const KEPT_BYTES: usize = 64 << 20;

/// A buffer of a larger capacity is freed when dropped, not kept.
const KEPT_CAPACITY: usize = 16 << 20;

static IDLE: Mutex<Idle> = Mutex::new(Idle { buffers: Vec::new(), bytes: 0 });

struct Idle {
    buffers: Vec<Vec<u8>>,
    /// The buffers' capacities together.
    bytes: usize,
}

/// An empty buffer with room for `capacity` bytes, kept for the next request when dropped.
pub fn take(capacity: usize) -> ReusedBuffer {
    let kept = {
        let mut idle = IDLE.lock().expect("the idle buffers' lock");
        // The most recently returned buffer with room enough, its pages likely still in the
        // caches; a new one if none has room (the small ones stay for small requests).
        let room = idle.buffers.iter().rposition(|buffer| buffer.capacity() >= capacity);
        room.map(|index| {
            let buffer = idle.buffers.swap_remove(index);
            idle.bytes -= buffer.capacity();
            buffer
        })
    };
    let mut bytes = kept.unwrap_or_default();
    assert!(bytes.is_empty(), "an idle buffer is kept empty");
    bytes.reserve(capacity);
    ReusedBuffer { bytes }
}

/// A byte buffer from [`take`]; derefs to its `Vec<u8>`.
#[derive(Debug, Default)]
pub struct ReusedBuffer {
    bytes: Vec<u8>,
}

impl Deref for ReusedBuffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for ReusedBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for ReusedBuffer {
    fn drop(&mut self) {
        let capacity = self.bytes.capacity();
        if capacity == 0 || capacity > KEPT_CAPACITY {
            return;
        }
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        let mut idle = IDLE.lock().expect("the idle buffers' lock");
        if idle.bytes + capacity <= KEPT_BYTES {
            idle.bytes += capacity;
            idle.buffers.push(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_empty_with_the_room_asked_for_and_its_memory_serves_the_next_one() {
        let mut first = take(100_000);
        assert!(first.is_empty() && first.capacity() >= 100_000);
        first.extend_from_slice(&[7; 50_000]);
        let address = first.as_ptr();
        drop(first);
        // Tests run on threads sharing the idle buffers: another test may take this one first,
        // so look for it among a few.
        let taken: Vec<ReusedBuffer> = (0..16).map(|_| take(100_000)).collect();
        assert!(taken.iter().all(|buffer| buffer.is_empty() && buffer.capacity() >= 100_000));
        assert!(taken.iter().any(|buffer| buffer.as_ptr() == address), "the dropped buffer's memory is reused");
    }

    #[test]
    fn buffers_above_the_kept_capacity_are_freed_and_the_idle_ones_are_bounded() {
        let large: Vec<ReusedBuffer> = (0..3).map(|_| take(KEPT_CAPACITY + 1)).collect();
        let many: Vec<ReusedBuffer> = (0..KEPT_BYTES / KEPT_CAPACITY * 2).map(|_| take(KEPT_CAPACITY)).collect();
        drop(large);
        drop(many);
        let idle = IDLE.lock().unwrap();
        let capacities: usize = idle.buffers.iter().map(Vec::capacity).sum();
        assert_eq!(idle.bytes, capacities);
        assert!(idle.bytes <= KEPT_BYTES, "{} bytes idle", idle.bytes);
        assert!(idle.buffers.iter().all(|buffer| buffer.capacity() <= KEPT_CAPACITY && buffer.is_empty()));
    }
}
