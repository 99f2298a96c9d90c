//! The receive clock: stamps `_TimeReceived` and knows which stamps may still become visible.
//!
//! A request is stamped before it is decoded and becomes visible to queries only when its
//! append returns, so a reader at time `t` can miss a record stamped just before `t`. Alert
//! rules evaluate windows of `_TimeReceived`; a window may only end at
//! [`ReceiveClock::visible_before`], below which every stamped record is either visible or was
//! refused. Stamps are monotonic within a process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct ReceiveClock {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_us: i64,
    /// Stamps handed out whose appends have not finished, with their counts.
    pending: BTreeMap<i64, usize>,
}

impl ReceiveClock {
    /// A stamp for a request about to be decoded and appended; drop it once the append returned
    /// (or failed).
    pub fn stamp(self: &Arc<Self>) -> Receipt {
        let mut inner = self.inner.lock().expect("receive clock lock");
        let us = chrono::Utc::now().timestamp_micros().max(inner.last_us);
        inner.last_us = us;
        *inner.pending.entry(us).or_default() += 1;
        Receipt { clock: self.clone(), us }
    }

    /// Every record stamped before this instant (µs since the epoch) is visible to queries, or
    /// was never acknowledged.
    pub fn visible_before(&self) -> i64 {
        let mut inner = self.inner.lock().expect("receive clock lock");
        match inner.pending.keys().next() {
            Some(&oldest) => oldest,
            None => {
                let now = chrono::Utc::now().timestamp_micros().max(inner.last_us);
                inner.last_us = now;
                now
            }
        }
    }

    /// Every record stamped before the returned instant (µs) is committed, or was never
    /// acknowledged, given `oldest_uncommitted`: the oldest stamp among the acknowledged rows
    /// not committed yet (`None`: none). The clock is read first: a record whose append returns
    /// between the two reads was pending at the first (which then ends at its stamp), while
    /// read the other way round, it could be missed by both (not yet in the rows, no longer
    /// pending).
    pub fn committed_before(&self, oldest_uncommitted: impl FnOnce() -> Option<i64>) -> i64 {
        let visible = self.visible_before();
        let uncommitted = oldest_uncommitted();
        uncommitted.map_or(visible, |oldest| oldest.min(visible))
    }
}

/// One request's `_TimeReceived`, pending until dropped.
#[derive(Debug)]
pub struct Receipt {
    clock: Arc<ReceiveClock>,
    us: i64,
}

impl Receipt {
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.us).expect("a stamp from the clock is a valid time")
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        let mut inner = self.clock.inner.lock().expect("receive clock lock");
        if let Some(n) = inner.pending.get_mut(&self.us) {
            *n -= 1;
            if *n == 0 {
                inner.pending.remove(&self.us);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_never_ends_past_a_pending_stamp() {
        let clock = Arc::new(ReceiveClock::default());
        let a = clock.stamp();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = clock.stamp();
        assert!(b.time() >= a.time(), "stamps are monotonic");
        assert_eq!(clock.visible_before(), a.us, "the oldest pending stamp bounds the window");
        drop(a);
        assert_eq!(clock.visible_before(), b.us);
        drop(b);
        assert!(clock.visible_before() >= b_us_after(&clock), "nothing pending: now");
    }

    #[test]
    fn a_record_whose_append_returns_while_the_rows_are_read_holds_the_mark() {
        let clock = Arc::new(ReceiveClock::default());
        let appending = clock.stamp();
        let stamped = appending.us;
        // Read before the append put the row in the buffer; the append returns meanwhile.
        let mark = clock.committed_before(|| {
            drop(appending);
            None
        });
        assert_eq!(mark, stamped, "the record is neither committed nor below the mark's reach");
        let buffered = clock.stamp().us;
        assert_eq!(clock.committed_before(|| Some(buffered)), buffered, "an uncommitted row holds the mark");
    }

    fn b_us_after(clock: &Arc<ReceiveClock>) -> i64 {
        clock.inner.lock().unwrap().last_us
    }
}
