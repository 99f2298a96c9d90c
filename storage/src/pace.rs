//! Writes admitted at the rate flushes drain the buffers, once the buffers are half full.
//!
//! Without pacing, a server whose flushes fall behind fills its buffers, then holds every
//! request until the next flush gives room back: most requests are acknowledged at once and a
//! few wait a whole flush (0.4-1 s), so the acknowledgement p99 is a flush's length. Pacing
//! spreads that wait over every request instead: past half the budget, each write waits for
//! its turn, first come first served, and turns follow each other at the rate the buffers
//! drained over the last seconds. The full budget still holds writes as before, for when the
//! rate measured is too generous.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How far back give-backs count towards the drain rate: a few flushes.
const WINDOW: Duration = Duration::from_secs(3);

/// A turn lasts at most this long, however slow the drain: a write that would wait longer is
/// past any `queue_timeout` anyway.
const LONGEST_TURN: Duration = Duration::from_secs(60);

/// The bytes given back to the budget over the last [`WINDOW`], by time.
#[derive(Debug, Default)]
struct DrainRate {
    given_back: VecDeque<(Instant, usize)>,
}

impl DrainRate {
    fn record(&mut self, now: Instant, bytes: usize) {
        self.given_back.push_back((now, bytes));
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: Instant) {
        while self.given_back.front().is_some_and(|&(at, _)| now.duration_since(at) > WINDOW) {
            self.given_back.pop_front();
        }
    }

    /// Bytes per second between the first give-back of the window and the last, or `None`
    /// with fewer than two of them or nothing drained between them: too little to tell a rate
    /// (nothing is paced then).
    fn bytes_per_second(&mut self, now: Instant) -> Option<f64> {
        self.forget_before(now);
        let (&(first, _), &(last, _)) = (self.given_back.front()?, self.given_back.back()?);
        let span = last.duration_since(first).as_secs_f64();
        // The first give-back opens the span; the bytes of the others were drained within it.
        let drained: usize = self.given_back.iter().skip(1).map(|&(_, bytes)| bytes).sum();
        (span > 0.0 && drained > 0).then(|| drained as f64 / span)
    }
}

/// The turns of paced writes.
#[derive(Debug)]
pub(crate) struct Pacer {
    drain: DrainRate,
    /// When the next write's turn may start at the earliest.
    next_turn: Instant,
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer { drain: DrainRate::default(), next_turn: Instant::now() }
    }
}

impl Pacer {
    pub(crate) fn record_drained(&mut self, now: Instant, bytes: usize) {
        self.drain.record(now, bytes);
    }

    /// The turn of a write of `bytes` arriving at `now`: the next free one, which then moves on
    /// by the time the buffers take to drain `bytes`. `now` when no rate is known. `None`, and
    /// no turn taken, when it would start after `deadline`.
    pub(crate) fn turn(&mut self, now: Instant, bytes: usize, deadline: Instant) -> Option<Instant> {
        let Some(rate) = self.drain.bytes_per_second(now) else { return Some(now) };
        let start = self.next_turn.max(now);
        if start > deadline {
            return None;
        }
        let length = Duration::try_from_secs_f64(bytes as f64 / rate).unwrap_or(LONGEST_TURN);
        self.next_turn = start + length.min(LONGEST_TURN);
        Some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn the_drain_rate_is_what_was_given_back_between_the_first_and_last_give_back_of_the_window() {
        let start = Instant::now();
        let mut drain = DrainRate::default();
        assert_eq!(drain.bytes_per_second(start), None, "nothing given back");
        drain.record(start, 10 * MIB);
        assert_eq!(drain.bytes_per_second(start), None, "one give-back tells no rate");
        drain.record(at(start, 500), 20 * MIB);
        drain.record(at(start, 1000), 30 * MIB);
        assert_eq!(drain.bytes_per_second(at(start, 1000)), Some(50.0 * MIB as f64));
        let later = at(start, 1000) + WINDOW + Duration::from_millis(1);
        assert_eq!(drain.bytes_per_second(later), None, "all of it older than the window");
        drain.record(later, 0);
        drain.record(at(later, 500), 0);
        assert_eq!(drain.bytes_per_second(at(later, 500)), None, "empty give-backs (a buffer dropped) drain nothing");
    }

    #[test]
    fn a_turn_lasts_at_most_a_minute_however_slow_the_drain() {
        let start = Instant::now();
        let mut pacer = Pacer { drain: DrainRate::default(), next_turn: start };
        pacer.record_drained(start, 0);
        pacer.record_drained(at(start, 1000), 1);
        let now = at(start, 1000);
        assert_eq!(pacer.turn(now, usize::MAX, at(start, 10_000)), Some(now));
        assert_eq!(pacer.next_turn, now + LONGEST_TURN);
    }

    #[test]
    fn writes_take_turns_in_order_spaced_by_the_time_their_bytes_take_to_drain() {
        let start = Instant::now();
        let mut pacer = Pacer { drain: DrainRate::default(), next_turn: start };
        let deadline = at(start, 10_000);
        assert_eq!(pacer.turn(start, 100 * MIB, deadline), Some(start), "no rate known: at once");
        pacer.record_drained(start, MIB);
        pacer.record_drained(at(start, 1000), 100 * MIB);
        let now = at(start, 1000);
        assert_eq!(pacer.turn(now, 50 * MIB, deadline), Some(now));
        assert_eq!(pacer.turn(now, 25 * MIB, deadline), Some(at(start, 1500)), "after the first one's 0.5 s");
        assert_eq!(pacer.turn(at(start, 1100), MIB, deadline), Some(at(start, 1750)));
        assert_eq!(pacer.turn(at(start, 1100), MIB, at(start, 1700)), None, "its turn would come too late");
        assert_eq!(
            pacer.turn(at(start, 3000), MIB, deadline),
            Some(at(start, 3000)),
            "turns do not pile up while idle"
        );
    }
}
