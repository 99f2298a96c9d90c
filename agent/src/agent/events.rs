//! The queue between the watcher's thread and the agent's loop: bounded
//! (`realtime_queue_events`), so a burst of file events costs a bounded memory however fast the
//! files arrive. An event
//! that finds the queue full is dropped and the loop is told to run a full scan, as it does when
//! the kernel's own queue overflows: the scan finds every change the dropped events named.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

/// The watcher's end: called on the watcher's thread, never blocks.
#[derive(Clone)]
pub struct EventSender {
    events: mpsc::Sender<notify::Result<notify::Event>>,
    overflowed: Arc<Notify>,
}

/// The loop's end.
pub struct EventQueue {
    pub events: mpsc::Receiver<notify::Result<notify::Event>>,
    /// Completes (once per overflow, however many events were dropped) when events were dropped.
    pub overflowed: Arc<Notify>,
}

pub fn queue(capacity: usize) -> (EventSender, EventQueue) {
    assert!(capacity > 0, "an event queue holds at least one event");
    let (events, receiver) = mpsc::channel(capacity);
    let overflowed = Arc::new(Notify::new());
    (EventSender { events, overflowed: overflowed.clone() }, EventQueue { events: receiver, overflowed })
}

impl EventQueue {
    /// Drops the events waiting now (not those arriving meanwhile), when a full scan that starts
    /// after all of them covers what they name.
    pub fn discard_waiting(&mut self) -> usize {
        let waiting = self.events.len();
        for _ in 0..waiting {
            if self.events.try_recv().is_err() {
                break;
            }
        }
        waiting
    }
}

impl EventSender {
    /// Queues an event, or drops it and signals the overflow when the queue is full. Reads
    /// (the agent's own scans open every file) change nothing and are not queued.
    pub fn offer(&self, event: notify::Result<notify::Event>) {
        if event.as_ref().is_ok_and(|e| matches!(e.kind, notify::EventKind::Access(_))) {
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.overflowed.notify_one(),
            // The loop has stopped: nobody is left to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use notify::event::{AccessKind, CreateKind, EventKind};

    use super::*;

    fn created(name: &str) -> notify::Result<notify::Event> {
        Ok(notify::Event::new(EventKind::Create(CreateKind::File)).add_path(PathBuf::from(name)))
    }

    #[tokio::test]
    async fn a_full_queue_drops_events_and_signals_one_overflow() {
        let (sender, mut queue) = queue(2);
        for name in ["a", "b", "c", "d"] {
            sender.offer(created(name));
        }
        let signalled = tokio::time::timeout(Duration::from_secs(5), queue.overflowed.notified()).await;
        assert!(signalled.is_ok(), "the overflow is signalled");
        let first = queue.events.recv().await.unwrap().unwrap();
        let second = queue.events.recv().await.unwrap().unwrap();
        assert_eq!((first.paths[0].to_str(), second.paths[0].to_str()), (Some("a"), Some("b")));
        assert!(queue.events.try_recv().is_err(), "c and d were dropped");
        let again = tokio::time::timeout(Duration::from_millis(50), queue.overflowed.notified()).await;
        assert!(again.is_err(), "two dropped events are one overflow to handle");
    }

    #[tokio::test]
    async fn discarding_drops_what_waits_and_keeps_what_comes_after() {
        let (sender, mut queue) = queue(8);
        sender.offer(created("a"));
        sender.offer(created("b"));
        assert_eq!(queue.discard_waiting(), 2);
        sender.offer(created("c"));
        assert_eq!(queue.events.recv().await.unwrap().unwrap().paths[0].to_str(), Some("c"));
    }

    #[tokio::test]
    async fn reads_are_not_queued_and_never_overflow_it() {
        let (sender, mut queue) = queue(1);
        for _ in 0..10 {
            let read = notify::Event::new(EventKind::Access(AccessKind::Any)).add_path(PathBuf::from("r"));
            sender.offer(Ok(read));
        }
        sender.offer(created("a"));
        assert_eq!(queue.events.recv().await.unwrap().unwrap().paths[0].to_str(), Some("a"));
        let signalled = tokio::time::timeout(Duration::from_millis(50), queue.overflowed.notified()).await;
        assert!(signalled.is_err(), "no overflow");
    }
}
