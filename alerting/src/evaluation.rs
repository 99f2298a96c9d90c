//! The pure steps of one evaluation of a rule, in order: its [`window`], the query's
//! [`plan_options`], the rule's [`health`], and the [`route`] of its alerts to notifications
//! (held while muted, summarised past the per-evaluation limit). The engine runs the query
//! between them and persists what they return ([`crate::engine`]).

use std::time::Duration;

use fimlake_kql::PlanOptions;
use serde_json::{Value, json};

use crate::condition::{Condition, Event};
use crate::notify::{self, Kind, Notification, Rows};
use crate::rule::Rule;
use crate::state::{AlertRecord, DEFERRED_LISTED, Health, MonitorCondition, RuleState};
use crate::store::stable_id;

/// The records one evaluation looks at, in µs since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
    /// Per-row rules only: received records never evaluated because the rule fell more than
    /// `max_catch_up` behind.
    pub skipped: Option<(i64, i64)>,
}

/// A per-row rule looks at the records *received* from its watermark up to now minus the
/// ingestion delay, never past what storage shows (`visible_before`), at most `max_catch_up`
/// of them; an aggregate rule at `TimeGenerated` in `[end - window, end)`.
pub(crate) fn window(
    rule: &Rule,
    state: &RuleState,
    now_us: i64,
    visible_before: i64,
    max_catch_up: Duration,
) -> Window {
    let delay = rule.ingestion_delay.unwrap_or_default().as_micros() as i64;
    if !is_per_row(rule) {
        let end = now_us - delay;
        let start = end - rule.window.unwrap_or(rule.frequency).as_micros() as i64;
        return Window { start, end, skipped: None };
    }
    let end = (now_us - delay).min(visible_before);
    let max_catch_up = max_catch_up.as_micros() as i64;
    if end - state.watermark_us > max_catch_up {
        let start = end - max_catch_up;
        return Window { start, end, skipped: Some((state.watermark_us, start)) };
    }
    Window { start: state.watermark_us, end, skipped: None }
}

pub(crate) fn is_per_row(rule: &Rule) -> bool {
    matches!(rule.condition, Condition::PerRow { .. })
}

/// How the rule's query runs over the window, with `now()` at its end; `None` when a per-row
/// window is empty (nothing new was received).
pub(crate) fn plan_options(rule: &Rule, window: &Window) -> Option<PlanOptions> {
    let Window { start, end, .. } = *window;
    if !is_per_row(rule) {
        return Some(PlanOptions { now_us: end, time_range: Some((start, end)), ..PlanOptions::default() });
    }
    (end > start).then(|| PlanOptions { now_us: end, ingestion_range: Some((start, end)), ..PlanOptions::default() })
}

/// Records the evaluation's outcome in the rule's health. A rule that starts failing notifies
/// once, and so does its recovery.
pub(crate) fn health(
    rule: &Rule,
    state: &mut RuleState,
    outcome: &Result<(), String>,
    window: &Window,
    now_us: i64,
) -> Option<Notification> {
    let notification = |id: String, kind: Kind, error: Option<String>| Notification {
        id,
        kind,
        alerts: vec![],
        alert_count: 0,
        window: (window.start, window.end),
        rows: Rows::default(),
        error,
        at_us: now_us,
    };
    match outcome {
        Err(e) => {
            state.health.consecutive_failures += 1;
            state.health.last_error = Some(e.clone());
            if !state.health.healthy {
                return None;
            }
            state.health.healthy = false;
            state.health.since_us = now_us;
            let id = stable_id(&["unhealthy", &rule.name, &now_us.to_string()]);
            Some(notification(id, Kind::RuleUnhealthy, Some(e.clone())))
        }
        Ok(()) if !state.health.healthy => {
            let id = stable_id(&["healthy", &rule.name, &state.health.since_us.to_string()]);
            let recovered = notification(id, Kind::RuleHealthy, state.health.last_error.clone());
            state.health = Health { healthy: true, since_us: now_us, ..Default::default() };
            Some(recovered)
        }
        Ok(()) => None,
    }
}

/// What routing made of an evaluation's alerts.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    pub notifications: Vec<Notification>,
    /// One `AlertEvent` row per alert: what happened to its notification.
    pub event_rows: Vec<Value>,
    /// Alerts held back because the rule is muted.
    pub deferred: usize,
}

/// The alerts' notifications: while the rule is muted, none (the alerts are deferred);
/// otherwise a summary of what was deferred, one notification per alert up to `limit`, and
/// one summary of the rest. A notification mutes the rule for its `mute` period.
pub(crate) fn route(
    rule: &Rule,
    state: &mut RuleState,
    events: &[Event],
    columns: &[Value],
    window: &Window,
    now_us: i64,
    limit: usize,
) -> Routed {
    let context = Context { rule, columns, window: (window.start, window.end), now_us };
    if state.muted_until_us.is_some_and(|t| now_us < t) {
        return defer(&context, state, events);
    }
    let mut routed = Routed::default();
    if state.deferred.total > 0 {
        routed.notifications.push(deferred_summary(&context, state));
    }
    let one_by_one = if events.len() > limit { limit.saturating_sub(1) } else { events.len() };
    for (alert, rows) in &events[..one_by_one] {
        let (notification, row) = single(&context, alert, rows);
        routed.notifications.push(notification);
        routed.event_rows.push(row);
    }
    if let Some((notification, rows)) = overflow(&context, &events[one_by_one..]) {
        routed.notifications.push(notification);
        routed.event_rows.extend(rows);
    }
    if !routed.notifications.is_empty()
        && let Some(mute) = rule.mute
    {
        state.muted_until_us = Some(now_us + mute.as_micros() as i64);
    }
    routed
}

/// What every notification of one evaluation shares.
struct Context<'r> {
    rule: &'r Rule,
    columns: &'r [Value],
    window: (i64, i64),
    now_us: i64,
}

impl Context<'_> {
    fn notification(
        &self,
        id: String,
        kind: Kind,
        alerts: Vec<AlertRecord>,
        count: u64,
        rows: Vec<Value>,
    ) -> Notification {
        Notification {
            id,
            kind,
            alerts,
            alert_count: count,
            rows: Rows::new(self.columns, rows),
            window: self.window,
            error: None,
            at_us: self.now_us,
        }
    }
}

/// The rule is muted: each alert is kept (the first `DEFERRED_LISTED` in full) for the summary
/// sent when the mute ends.
fn defer(context: &Context, state: &mut RuleState, events: &[Event]) -> Routed {
    let mut routed = Routed { deferred: events.len(), ..Routed::default() };
    for (alert, _) in events {
        if state.deferred.alerts.len() < DEFERRED_LISTED {
            state.deferred.alerts.push(alert.clone());
        }
        state.deferred.total += 1;
        routed.event_rows.push(event_row(context.rule, alert, "Deferred", None));
    }
    routed
}

/// One summary of the alerts deferred while the rule was muted.
fn deferred_summary(context: &Context, state: &mut RuleState) -> Notification {
    let deferred = std::mem::take(&mut state.deferred);
    let rows: Vec<Value> = deferred.alerts.iter().filter_map(|a| row_values(a, context.columns)).collect();
    let id = stable_id(&["summary", &context.rule.name, &state.summaries.to_string()]);
    state.summaries += 1;
    context.notification(id, Kind::Summary, deferred.alerts, deferred.total, rows)
}

/// One alert's own notification and its `AlertEvent` row.
fn single(context: &Context, alert: &AlertRecord, rows: &[Value]) -> (Notification, Value) {
    let kind = match alert.monitor_condition {
        MonitorCondition::Resolved => Kind::Resolved,
        MonitorCondition::Fired => Kind::Fired,
    };
    let id = stable_id(&[kind.as_str(), &alert.alert_id]);
    let row = event_row(context.rule, alert, "Queued", Some(&id));
    (context.notification(id, kind, vec![alert.clone()], 1, rows.to_vec()), row)
}

/// The alerts past the per-evaluation limit, as one summary, and their `AlertEvent` rows.
fn overflow(context: &Context, rest: &[Event]) -> Option<(Notification, Vec<Value>)> {
    let (first, _) = rest.first()?;
    let id = stable_id(&["overflow", &context.rule.name, &first.alert_id, first.monitor_condition.as_str()]);
    let rows: Vec<Value> = rest.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let event_rows = rest.iter().map(|(a, _)| event_row(context.rule, a, "Summarized", Some(&id))).collect();
    let listed = rest.iter().take(DEFERRED_LISTED).map(|(a, _)| a.clone()).collect();
    Some((context.notification(id, Kind::Summary, listed, rest.len() as u64, rows), event_rows))
}

/// An `AlertEvent` row: the alert and what became of its notification.
pub(crate) fn event_row(rule: &Rule, a: &AlertRecord, notification: &str, id: Option<&str>) -> Value {
    json!({
        "TimeGenerated": notify::datetime(a.resolved_us.unwrap_or(a.fired_us)),
        "RuleName": rule.name,
        "Severity": rule.severity,
        "AlertId": a.alert_id,
        "MonitorCondition": a.monitor_condition,
        "Dimensions": Value::Object(a.dimensions.clone()),
        "MetricValue": a.metric_value,
        "Row": a.row.clone().map(Value::Object),
        "Notification": notification,
        "NotificationId": id,
    })
}

/// A deferred alert's row as values in `columns`' order (rows of per-row alerts only).
fn row_values(a: &AlertRecord, columns: &[Value]) -> Option<Value> {
    let row = a.row.as_ref()?;
    if columns.is_empty() {
        return Some(Value::Array(row.values().cloned().collect()));
    }
    Some(Value::Array(
        columns
            .iter()
            .map(|c| row.get(c["name"].as_str().unwrap_or_default()).cloned().unwrap_or(Value::Null))
            .collect(),
    ))
}
