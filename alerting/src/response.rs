//! People's response to alerts (PCI DSS 12.10): Azure Monitor's alert states. An alert is
//! `New` when it fires; a person acknowledges it (working on it) or closes it (done), with a
//! comment. Each change is kept with the alert (who, when, why), saved with the rule's state,
//! and appended to `AlertEvent` (`AlertState`, `Principal`, `Comment`) as evidence.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::engine::{Alerting, AlertingError};
use crate::state::AlertRecord;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    #[default]
    New,
    Acknowledged,
    Closed,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::New => "New",
            AlertState::Acknowledged => "Acknowledged",
            AlertState::Closed => "Closed",
        }
    }
}

impl std::str::FromStr for AlertState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "new" => Ok(AlertState::New),
            "acknowledged" | "acknowledge" => Ok(AlertState::Acknowledged),
            "closed" | "close" => Ok(AlertState::Closed),
            _ => Err(format!("alert state '{s}' is not one of New, Acknowledged, Closed")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    pub state: AlertState,
    /// The key's name (or `anonymous` on a server without keys).
    pub principal: String,
    pub comment: String,
    pub at_us: i64,
}

/// The longest comment kept.
pub const MAX_COMMENT: usize = 4096;

impl AlertRecord {
    /// Fired (not resolved) and not closed: someone still has to look at it.
    pub fn is_open(&self) -> bool {
        self.monitor_condition == crate::state::MonitorCondition::Fired && self.state != AlertState::Closed
    }
}

impl Alerting {
    /// Every alert the rules remember (active and recent), one entry per alert id with its
    /// latest condition, newest first.
    pub async fn alert_list(&self) -> Vec<AlertRecord> {
        let (active, recent) = self.alerts().await;
        let mut by_id: std::collections::HashMap<String, AlertRecord> = Default::default();
        for a in active.into_iter().chain(recent) {
            match by_id.get(&a.alert_id) {
                Some(known) if known.resolved_us.is_some() || a.resolved_us.is_none() => {}
                _ => {
                    by_id.insert(a.alert_id.clone(), a);
                }
            }
        }
        let mut out: Vec<AlertRecord> = by_id.into_values().collect();
        out.sort_by(|a, b| b.fired_us.cmp(&a.fired_us).then_with(|| a.alert_id.cmp(&b.alert_id)));
        out
    }

    /// The alert `id` with its latest condition.
    pub async fn alert(&self, id: &str) -> Option<AlertRecord> {
        self.alert_list().await.into_iter().find(|a| a.alert_id == id)
    }

    /// Changes alert `id` to `state`, by `principal` with `comment`: every copy the rule keeps
    /// (its active series and its recent list) is changed, the rule's state saved, and an
    /// `AlertEvent` row written. Changing to the state it has is an error.
    pub async fn set_alert_state(
        &self,
        id: &str,
        state: AlertState,
        principal: &str,
        comment: &str,
        now_us: i64,
    ) -> Result<AlertRecord, AlertingError> {
        if comment.len() > MAX_COMMENT {
            return Err(AlertingError::Refused(format!("a comment has at most {MAX_COMMENT} bytes")));
        }
        let change =
            StateChange { state, principal: principal.to_string(), comment: comment.to_string(), at_us: now_us };
        let slots: Vec<(String, std::sync::Arc<tokio::sync::Mutex<crate::state::RuleState>>)> =
            self.slots.lock().expect("slots lock").iter().map(|(n, s)| (n.clone(), s.state.clone())).collect();
        for (rule, shared) in slots {
            let mut guard = shared.lock().await;
            let st: &mut crate::state::RuleState = &mut guard;
            let copies = st
                .series
                .values_mut()
                .filter_map(|s| s.active.as_mut())
                .chain(st.recent.iter_mut())
                .filter(|a| a.alert_id == id);
            let mut changed: Option<AlertRecord> = None;
            for a in copies {
                if a.state == state {
                    return Err(AlertingError::Refused(format!("alert {id} is already {}", state.as_str())));
                }
                a.state = state;
                a.state_changes.push(change.clone());
                if changed.as_ref().is_none_or(|c| c.resolved_us.is_none()) {
                    changed = Some(a.clone());
                }
            }
            let Some(alert) = changed else { continue };
            let (states, snapshot) = (self.states.clone(), st.clone());
            let name = rule.clone();
            tokio::task::spawn_blocking(move || states.save(&name, &snapshot))
                .await
                .expect("state save panicked")
                .map_err(|source| AlertingError::Io { what: format!("saving the state of rule '{rule}'"), source })?;
            drop(guard);
            self.audit().record("AlertEvent", vec![state_row(&alert, &change)]).await;
            return Ok(alert);
        }
        Err(AlertingError::NoSuchAlert(id.to_string()))
    }
}

impl Alerting {
    /// `POST /v1/notifications/{id}/retry`: a failed delivery is attempted again now.
    pub async fn retry_failed(&self, id: &str) -> Result<(), AlertingError> {
        if id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(AlertingError::NoSuchNotification(id.to_string()));
        }
        let outbox = self.outbox().clone();
        let (id_owned, retry_for) = (id.to_string(), self.delivery_retry_for().as_micros() as i64);
        let now = chrono::Utc::now().timestamp_micros();
        let found = tokio::task::spawn_blocking(move || outbox.retry(&id_owned, now, retry_for))
            .await
            .expect("outbox retry panicked")
            .map_err(|source| AlertingError::Io { what: format!("retrying delivery {id}"), source })?;
        found.map(|_| ()).ok_or_else(|| AlertingError::NoSuchNotification(id.to_string()))
    }
}

/// The `AlertEvent` row of a state change.
fn state_row(a: &AlertRecord, change: &StateChange) -> Value {
    json!({
        "TimeGenerated": crate::notify::datetime(change.at_us),
        "RuleName": a.rule,
        "Severity": a.severity,
        "AlertId": a.alert_id,
        "MonitorCondition": a.monitor_condition,
        "Dimensions": Value::Object(a.dimensions.clone()),
        "MetricValue": a.metric_value,
        "AlertState": change.state.as_str(),
        "Principal": change.principal,
        "Comment": change.comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_old_records_are_new() {
        assert_eq!("close".parse::<AlertState>().unwrap(), AlertState::Closed);
        assert_eq!("Acknowledged".parse::<AlertState>().unwrap(), AlertState::Acknowledged);
        assert!("done".parse::<AlertState>().is_err());
        // An alert saved before alert states existed.
        let old = r#"{"alertId":"a","rule":"r","severity":1,"monitorCondition":"Fired","firedUs":1,
                      "resolvedUs":null,"dimensions":{},"metricValue":null,"row":null}"#;
        let a: AlertRecord = serde_json::from_str(old).unwrap();
        assert_eq!((a.state, a.state_changes.len()), (AlertState::New, 0));
        assert!(a.is_open());
    }
}
