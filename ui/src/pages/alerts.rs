//! `/alerts`: alerts with their rule, severity, computer, time, condition and state;
//! `/alerts/{id}`: one alert, the rows that raised it, the notifications sent for its rule, and
//! its state history; a person acknowledges or closes it with a comment (PCI DSS 12.10).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fimlake_alerting::engine::AlertingError;
use fimlake_alerting::response::AlertState;
use fimlake_alerting::state::{AlertRecord, MonitorCondition};
use maud::{Markup, html};
use serde::Deserialize;

use super::now_us;
use crate::UiState;
use crate::data::{self, quote};
use crate::layout::{self, segment};
use crate::session::{Viewer, audit_action};

/// Alerts listed on one page at most.
const MAX_ALERTS: usize = 500;

#[derive(Deserialize)]
pub struct ListParams {
    /// `open` (fired, not closed), `new`, `acknowledged`, `closed`, `resolved`, `all` (default).
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    rule: Option<String>,
}

fn matches(a: &AlertRecord, filter: &str) -> bool {
    match filter {
        "open" => a.is_open(),
        "new" => a.state == AlertState::New,
        "acknowledged" => a.state == AlertState::Acknowledged,
        "closed" => a.state == AlertState::Closed,
        "resolved" => a.monitor_condition == MonitorCondition::Resolved,
        _ => true,
    }
}

/// The computer an alert is about: its `Computer` dimension or row column.
pub fn computer(a: &AlertRecord) -> String {
    a.dimensions
        .get("Computer")
        .or_else(|| a.row.as_ref().and_then(|r| r.get("Computer")))
        .map(data::text)
        .unwrap_or_default()
}

pub fn concerns(a: &AlertRecord, machine: &str) -> bool {
    computer(a) == machine
}

pub async fn list(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<ListParams>,
) -> Response {
    let filter = p.state.as_deref().unwrap_or("all");
    let alerts: Vec<AlertRecord> = st
        .alerting
        .alert_list()
        .await
        .into_iter()
        .filter(|a| matches(a, filter))
        .filter(|a| p.rule.as_deref().is_none_or(|r| r.is_empty() || a.rule == r))
        .collect();
    let states = [
        ("all", "All"),
        ("open", "Open"),
        ("new", "New"),
        ("acknowledged", "Acknowledged"),
        ("closed", "Closed"),
        ("resolved", "Resolved"),
    ];
    let body = html! {
        nav.switch {
            @for (k, label) in states {
                a href=(format!("/alerts?state={k}")) class=[(k == filter).then_some("active")] { (label) }
            }
        }
        @if alerts.len() > MAX_ALERTS { p.muted { "The newest " (MAX_ALERTS) " of " (alerts.len()) "." } }
        (alert_table(&alerts[..alerts.len().min(MAX_ALERTS)]))
        p.muted { "Every alert ever raised is in the " a href="/hunt?q=AlertEvent%0A%7C%20sort%20by%20TimeGenerated%20desc&range=30d" { "AlertEvent" } " table." }
    };
    layout::page(&viewer, "Alerts", "/alerts", None, body).into_response()
}

pub fn alert_table(alerts: &[AlertRecord]) -> Markup {
    html! {
        @if alerts.is_empty() { p.muted { "No alerts." } }
        @else {
            div.scroll { table.data #alerts {
                thead { tr { th { "Fired (UTC)" } th { "Rule" } th { "Severity" } th { "Computer" } th { "Condition" } th { "State" } th { "What" } } }
                tbody { @for a in alerts { tr {
                    td { a href=(format!("/alerts/{}", segment(&a.alert_id))) { (layout::when(&serde_json::json!(fimlake_alerting::notify::datetime(a.fired_us)))) } }
                    td { (a.rule) }
                    td { span class=(format!("sev sev{}", a.severity)) { "Sev" (a.severity) } }
                    td { (computer(a)) }
                    td { (a.monitor_condition) }
                    td { span class=(format!("badge {}", a.state.as_str().to_lowercase())) data-testid="alert-state" { (a.state.as_str()) } }
                    td.path { (what(a)) }
                } } }
            } }
        }
    }
}

/// A short description: the path of a per-row alert's row, or the dimensions and value.
fn what(a: &AlertRecord) -> String {
    if let Some(row) = &a.row {
        for c in ["FileSystemPath", "SoftwareName", "SvcName"] {
            if let Some(v) = row.get(c).map(data::text).filter(|s| !s.is_empty()) {
                return v;
            }
        }
    }
    let dims: Vec<String> = a.dimensions.iter().map(|(k, v)| format!("{k}={}", data::text(v))).collect();
    match a.metric_value {
        Some(v) => format!("{} (value {v})", dims.join(", ")),
        None => dims.join(", "),
    }
}

pub async fn page(State(st): State<UiState>, Extension(viewer): Extension<Viewer>, Path(id): Path<String>) -> Response {
    let Some(a) = st.alerting.alert(&id).await else {
        return super::message(&viewer, StatusCode::NOT_FOUND, "Alert", &format!("No alert has the id '{id}'."));
    };
    let deliveries = deliveries_of(&st, &a.alert_id).await;
    let title = format!("Alert: {}", a.rule);
    let body = html! {
        dl.facts {
            dt { "Rule" } dd { a href=(format!("/rules?rule={}", layout::url_encode(&a.rule))) { (a.rule) } }
            dt { "Severity" } dd { "Sev" (a.severity) }
            dt { "Fired" } dd { (fimlake_alerting::notify::datetime(a.fired_us)) }
            @if let Some(r) = a.resolved_us { dt { "Resolved" } dd { (fimlake_alerting::notify::datetime(r)) } }
            dt { "Condition" } dd { (a.monitor_condition) }
            dt { "State" } dd { span class=(format!("badge {}", a.state.as_str().to_lowercase())) data-testid="alert-state" { (a.state.as_str()) } }
            @if let Some(v) = a.metric_value { dt { "Value" } dd { (v) } }
            @for (k, v) in &a.dimensions { dt { (k) } dd { (data::text(v)) } }
        }
        (state_form(&a, &viewer))
        @if let Some(row) = &a.row {
            section.panel {
                h2 { "The row that raised it" }
                table.data.compare { tbody { @for (k, v) in row { tr { th { (k) } td { (data::text(v)) } } } } }
            }
        }
        section.panel {
            h2 { "State history" }
            @if a.state_changes.is_empty() { p.muted { "Nobody has responded to this alert yet." } }
            @else {
                table.data #state-history {
                    thead { tr { th { "When (UTC)" } th { "State" } th { "Who" } th { "Comment" } } }
                    tbody { @for c in &a.state_changes { tr {
                        td { (fimlake_alerting::notify::datetime(c.at_us)) }
                        td { (c.state.as_str()) }
                        td { (c.principal) }
                        td { (c.comment) }
                    } } }
                }
            }
        }
        section.panel {
            h2 { "Notifications sent for this alert" }
            @match &deliveries {
                Ok(rows) => (super::table(rows)),
                Err(e) => (layout::error_box(&e.to_string())),
            }
        }
    };
    layout::page(&viewer, &title, "/alerts", None, body).into_response()
}

/// The delivery attempts of the notifications that carried alert `id` (from `AlertEvent`).
async fn deliveries_of(st: &UiState, id: &str) -> Result<crate::data::Rows, fimlake_query::QueryError> {
    let events = format!(
        "AlertEvent | where AlertId == {} and isnotempty(NotificationId) | distinct NotificationId | take 100",
        quote(id)
    );
    let ids = data::run(st, &events, None, now_us()).await?;
    if ids.rows.is_empty() {
        return Ok(crate::data::Rows::default());
    }
    let list: Vec<String> = ids.rows.iter().map(|r| quote(&data::text(&r[0]))).collect();
    let text = format!(
        "AlertDelivery | where NotificationId in ({}) | project TimeGenerated, NotificationKind, TargetType, Target, Attempt, Status, HttpStatus, Error | sort by TimeGenerated desc | take 100",
        list.join(", ")
    );
    data::run(st, &text, None, now_us()).await
}

fn state_form(a: &AlertRecord, viewer: &Viewer) -> Markup {
    html! {
        form.respond method="post" action=(format!("/alerts/{}/state", segment(&a.alert_id))) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="comment" { "Comment" }
            input #comment type="text" name="comment" maxlength="4096" placeholder="What was done, or why it is expected";
            @if a.state != AlertState::Acknowledged && a.state != AlertState::Closed {
                button type="submit" name="state" value="Acknowledged" { "Acknowledge" }
            }
            @if a.state != AlertState::Closed { button type="submit" name="state" value="Closed" { "Close" } }
            @if a.state != AlertState::New { button type="submit" name="state" value="New" { "Reopen" } }
        }
    }
}

#[derive(Deserialize)]
pub struct StateForm {
    state: String,
    #[serde(default)]
    comment: String,
}

pub async fn change_state(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<StateForm>,
) -> Response {
    let state: AlertState = match f.state.parse() {
        Ok(s) => s,
        Err(e) => return super::message(&viewer, StatusCode::BAD_REQUEST, "Alert", &e),
    };
    let outcome = st.alerting.set_alert_state(&id, state, &viewer.principal, f.comment.trim(), now_us()).await;
    let status = match &outcome {
        Ok(_) => 303,
        Err(AlertingError::NoSuchAlert(_)) => 404,
        Err(AlertingError::Refused(_)) => 409,
        Err(_) => 500,
    };
    let detail = format!("alert {id} set to {} ({})", state.as_str(), f.comment.trim());
    audit_action(&st, &viewer, "/alerts/{id}/state", status, None, &detail).await;
    match outcome {
        Ok(_) => Redirect::to(&format!("/alerts/{}", segment(&id))).into_response(),
        Err(e) => super::message(
            &viewer,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Alert",
            &e.to_string(),
        ),
    }
}
