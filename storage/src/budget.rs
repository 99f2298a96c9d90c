//! One limit for the acknowledged rows all tables hold in memory until they are flushed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pace::Pacer;

/// The bytes of Arrow data buffered by every table of a [`crate::Storage`] together (the rows
/// being flushed included), against `StorageConfig::max_buffer_bytes`. A table past it refuses
/// writes until a flush gives bytes back, whichever table holds them: one busy table cannot make
/// the server's memory grow by a buffer per table.
#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
    /// Woken whenever bytes are given back: what writers waiting for room wait on.
    freed: Notify,
    /// The turns of writes once the budget is half full ([`crate::pace`]).
    pacer: Mutex<Pacer>,
}

impl BufferBudget {
    pub fn new(limit: usize) -> BufferBudget {
        assert!(limit > 0, "a buffer budget of 0 bytes would refuse every write");
        BufferBudget { limit, used: AtomicUsize::new(0), freed: Notify::new(), pacer: Mutex::default() }
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
        self.pacer.lock().expect("pacer lock").record_drained(Instant::now(), bytes);
        self.freed.notify_waiters();
    }

    /// Past half the limit, waits for the turn of a write of `bytes`: writes then go in one
    /// after the other at the rate the buffers drained lately ([`crate::pace`]), so that the
    /// wait for a flush is shared by all of them rather than borne by the few that find the
    /// budget full. A write whose turn would come after `timeout` waits that long, takes no
    /// turn and goes on to the check for room.
    pub async fn pace(&self, bytes: usize, timeout: Duration) {
        if self.used() < self.limit / 2 {
            return;
        }
        let now = Instant::now();
        let deadline = now + timeout;
        let turn = self.pacer.lock().expect("pacer lock").turn(now, bytes, deadline);
        tokio::time::sleep_until(turn.unwrap_or(deadline)).await;
    }

    /// Waits until the budget is not full, at most `timeout`; returns whether it has room.
    /// A writer that finds the buffers full waits here for a flush to give bytes back rather
    /// than being refused at once: a flush takes a fraction of a second, a client told to
    /// retry waits a whole `Retry-After` second.
    pub async fn wait_for_room(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a give-back between the two is not missed.
            freed.as_mut().enable();
            if !self.full() {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return !self.full();
            }
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_writer_waits_for_room_until_bytes_are_given_back_or_its_time_is_up() {
        let budget = std::sync::Arc::new(BufferBudget::new(100));
        budget.take(100);
        assert!(!budget.wait_for_room(Duration::from_millis(500)).await, "nothing given back: no room");
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.wait_for_room(Duration::from_secs(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "still full: the writer waits");
        budget.give_back(10);
        assert!(waiter.await.unwrap(), "room once a flush gave bytes back");
    }

    #[tokio::test(start_paused = true)]
    async fn past_half_full_writes_go_in_turns_at_the_rate_the_buffers_drained() {
        const MIB: usize = 1 << 20;
        let budget = BufferBudget::new(100 * MIB);
        budget.take(100 * MIB);
        budget.give_back(10 * MIB);
        tokio::time::advance(Duration::from_secs(1)).await;
        budget.give_back(30 * MIB);
        assert_eq!(budget.used(), 60 * MIB, "past half full, drained at 30 MiB/s");
        let started = Instant::now();
        budget.pace(15 * MIB, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "the first write's turn is now");
        budget.pace(15 * MIB, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(500), "the next one after the first one's 15 MiB drained");
        budget.pace(30 * MIB, Duration::from_millis(100)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(600), "a turn past the timeout is not waited for");
        budget.give_back(20 * MIB);
        let below_half = Instant::now();
        budget.pace(30 * MIB, Duration::from_secs(10)).await;
        assert_eq!(below_half.elapsed(), Duration::ZERO, "below half full nothing is paced");
    }

    #[test]
    #[should_panic(expected = "gave back")]
    fn giving_back_more_than_was_taken_is_a_bug() {
        let budget = BufferBudget::new(100);
        budget.take(10);
        budget.give_back(11);
    }
}
