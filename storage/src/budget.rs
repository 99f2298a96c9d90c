//! One limit for the acknowledged rows all tables hold in memory until they are flushed.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes of Arrow data buffered by every table of a [`crate::Storage`] together (the rows
/// being flushed included), against `StorageConfig::max_buffer_bytes`. A table past it refuses
/// writes until a flush gives bytes back, whichever table holds them: one busy table cannot make
/// the server's memory grow by a buffer per table.
#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BufferBudget {
    pub fn new(limit: usize) -> BufferBudget {
        assert!(limit > 0, "a buffer budget of 0 bytes would refuse every write");
        BufferBudget { limit, used: AtomicUsize::new(0) }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The bytes buffered now, by all tables.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Whether new writes must wait for a flush.
    pub fn full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Counts `bytes` a table has just buffered. Rows already acknowledged by the WAL are
    /// always taken: the budget is checked before a write, never after it.
    pub(crate) fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Gives back `bytes` a table no longer buffers (a flush committed them).
    pub(crate) fn give_back(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        assert!(before >= bytes, "gave back {bytes} bytes of a buffer budget holding {before}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_full_at_its_limit_and_frees_what_is_given_back() {
        let budget = BufferBudget::new(100);
        budget.take(60);
        assert!(!budget.full());
        budget.take(40);
        assert!(budget.full(), "full at the limit");
        budget.take(10);
        assert_eq!(budget.used(), 110, "acknowledged rows are counted even past the limit");
        budget.give_back(50);
        assert!(!budget.full());
        assert_eq!(budget.used(), 60);
    }

    #[test]
    #[should_panic(expected = "gave back")]
    fn giving_back_more_than_was_taken_is_a_bug() {
        let budget = BufferBudget::new(100);
        budget.take(10);
        budget.give_back(11);
    }
}
