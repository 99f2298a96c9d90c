//! What the engine remembers about each rule between evaluations, persisted crash-safely as
//! `<state_dir>/<rule>.json` ([`crate::store::write_atomic`]) after every evaluation.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::place::Place;
use serde_json::Value;

/// How many fired/resolved alerts of a rule `GET /v1/alerts` keeps (all of them are in the
/// `AlertEvent` table).
pub const RECENT_ALERTS: usize = 200;
/// How many deferred alerts a summary lists (it counts them all).
pub const DEFERRED_LISTED: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleState {
    /// Per-row rules: every record received (`_TimeReceived`) before this instant has been
    /// evaluated. Aggregate rules: the end of the last evaluated window.
    pub watermark_us: i64,
    /// When the rule last ran (its schedule continues from there).
    pub last_run_us: Option<i64>,
    pub health: Health,
    /// Aggregate rules: one entry per dimension combination (its JSON), with its recent results
    /// and its active alert.
    pub series: BTreeMap<String, Series>,
    /// Notifications are held until then (the rule's `mute`), and then sent as one summary.
    pub muted_until_us: Option<i64>,
    pub deferred: Deferred,
    /// Counts summaries, so that a summary re-created after a crash has the same id.
    pub summaries: u64,
    /// Counts the aggregate alerts fired: part of their ids, so that an evaluation repeated
    /// after a crash gives the same ids and every later firing a new one.
    pub aggregate_alerts: u64,
    /// The latest fired and resolved alerts, newest last.
    pub recent: VecDeque<AlertRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub healthy: bool,
    pub since_us: i64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health { healthy: true, since_us: 0, consecutive_failures: 0, last_error: None }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    pub dimensions: serde_json::Map<String, Value>,
    /// Failing (true) or not, newest last, at most `evaluation_periods` long.
    pub history: VecDeque<bool>,
    pub active: Option<AlertRecord>,
}

/// Whether an alert's condition holds (Azure Monitor's monitor condition). Written as
/// `Fired` and `Resolved` in states, payloads and the `AlertEvent` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorCondition {
    Fired,
    Resolved,
}

impl MonitorCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorCondition::Fired => "Fired",
            MonitorCondition::Resolved => "Resolved",
        }
    }
}

impl std::fmt::Display for MonitorCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, fired or resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub alert_id: String,
    pub rule: String,
    pub severity: u8,
    pub monitor_condition: MonitorCondition,
    pub fired_us: i64,
    pub resolved_us: Option<i64>,
    /// Aggregate: the dimension values; per-row: the key columns' values.
    pub dimensions: serde_json::Map<String, Value>,
    pub metric_value: Option<f64>,
    /// Per-row: the result row, by column.
    pub row: Option<serde_json::Map<String, Value>>,
    /// What people made of it (Azure Monitor's alert state): New until someone acknowledges
    /// or closes it. Absent in states written before alert states existed: New.
    #[serde(default)]
    pub state: crate::response::AlertState,
    /// Every change of `state`, oldest first: who, when, why.
    #[serde(default)]
    pub state_changes: Vec<crate::response::StateChange>,
}

impl AlertRecord {
    /// A new alert of `rule`, fired at `now_us`, in state New.
    pub(crate) fn fired(
        rule: &crate::rule::Rule,
        alert_id: String,
        now_us: i64,
        dimensions: serde_json::Map<String, Value>,
        metric_value: Option<f64>,
        row: Option<serde_json::Map<String, Value>>,
    ) -> AlertRecord {
        AlertRecord {
            alert_id,
            rule: rule.name.clone(),
            severity: rule.severity,
            monitor_condition: MonitorCondition::Fired,
            fired_us: now_us,
            resolved_us: None,
            dimensions,
            metric_value,
            row,
            state: Default::default(),
            state_changes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Deferred {
    /// The first [`DEFERRED_LISTED`] alerts held back.
    pub alerts: Vec<AlertRecord>,
    pub total: u64,
}

/// Reads and writes rule states ([`Place`]: a directory of the node, or a cluster's bucket so
/// that the next leader resumes each rule where the last one left it). Called from blocking
/// threads.
#[derive(Debug, Clone)]
pub struct StateStore {
    place: Place,
}

impl StateStore {
    pub fn new(place: Place) -> Self {
        StateStore { place }
    }

    fn name(rule: &str) -> String {
        format!("{rule}.json")
    }

    /// The saved state, `None` for a rule never evaluated.
    pub fn load(&self, rule: &str) -> std::io::Result<Option<RuleState>> {
        let Some(bytes) = self.place.read(&StateStore::name(rule))? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", self.place.describe(&StateStore::name(rule))),
            )
        })
    }

    pub fn save(&self, rule: &str, state: &RuleState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state).expect("rule state serialises");
        self.place.write(&StateStore::name(rule), &bytes)
    }

    pub fn remove(&self, rule: &str) -> std::io::Result<()> {
        self.place.remove(&StateStore::name(rule))
    }
}

impl RuleState {
    /// Remembers a fired or resolved alert for `GET /v1/alerts`.
    pub fn remember(&mut self, alert: AlertRecord) {
        self.recent.push_back(alert);
        while self.recent.len() > RECENT_ALERTS {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    /// What a leader saves, the next one (another process, the same bucket) loads.
    fn saved_then_loaded(store: StateStore) {
        assert!(store.load("r").unwrap().is_none(), "never evaluated");
        let state = RuleState { watermark_us: 42, ..RuleState::default() };
        store.save("r", &state).unwrap();
        assert_eq!(store.load("r").unwrap().map(|s| s.watermark_us), Some(42));
        store.remove("r").unwrap();
        store.remove("r").unwrap();
        assert!(store.load("r").unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn rule_states_in_a_bucket_or_a_directory_read_back_what_was_saved() {
        let bucket = StateStore::new(Place::in_bucket(Arc::new(InMemory::new())).child("state"));
        tokio::task::spawn_blocking(move || saved_then_loaded(bucket)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        saved_then_loaded(StateStore::new(Place::Dir(dir.path().join("state"))));
    }
}
