//! Whether this node may evaluate rules and deliver notifications now: always on a single
//! node; in a cluster, only while it holds the leader lease, so that a leader that lost the
//! lease does not notify beside the new one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Answers whether this node leads now.
pub type LeaderCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// How long a closed gate waits before it is asked again.
pub(crate) const CLOSED_WAIT: Duration = Duration::from_millis(500);

/// Open unless a [`LeaderCheck`] is set and says no.
#[derive(Clone, Default)]
pub struct Gate(Arc<RwLock<Option<LeaderCheck>>>);

impl Gate {
    pub fn set(&self, check: LeaderCheck) {
        *self.0.write().expect("gate lock") = Some(check);
    }

    pub fn open(&self) -> bool {
        self.0.read().expect("gate lock").as_ref().is_none_or(|leads| leads())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn the_gate_is_open_until_a_check_says_this_node_does_not_lead() {
        let gate = Gate::default();
        assert!(gate.open());
        let leads = Arc::new(AtomicBool::new(true));
        let check = leads.clone();
        gate.set(Arc::new(move || check.load(Ordering::SeqCst)));
        assert!(gate.open());
        leads.store(false, Ordering::SeqCst);
        assert!(!gate.clone().open(), "clones share the check");
    }
}
