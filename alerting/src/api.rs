//! The alerting HTTP API:
//!
//! - `GET /v1/alert-rules`: every rule with its health and schedule;
//! - `GET|PUT|DELETE /v1/alert-rules/{name}`: one rule (PUT takes the rule as JSON, with the
//!   fields of a rule file; it is validated like one and written to the rules directory);
//! - `GET /v1/alerts?state=active|fired|resolved|all&rule=NAME`: active and recent alerts;
//! - `POST /v1/alerts/{id}/acknowledge|close` (body `{"comment": "..."}`, optional): changes the
//!   alert's state, recorded with the caller's name ([`Principal`]) in `AlertEvent`;
//! - `GET /v1/notifications`: deliveries pending in the outbox and those given up on;
//! - `POST /v1/notifications/{id}/retry`: a failed delivery goes back to the outbox;
//! - `GET /v1/action-groups`, `GET|PUT|DELETE /v1/action-groups/{name}`: action groups (PUT takes
//!   the group as JSON, with the fields of `action-groups.toml`; secrets are listed as `(set)`).
//!
//! Errors have the Azure shape `{"error": {"code", "message"}}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::engine::{Alerting, AlertingError};
use crate::rule::Rule;
use crate::state::MonitorCondition;

pub fn router(alerting: Arc<Alerting>) -> Router {
    Router::new()
        .route("/v1/alert-rules", get(list_rules))
        .route("/v1/alert-rules/{name}", get(get_rule).put(put_rule).delete(delete_rule))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}/{action}", axum::routing::post(change_alert))
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/notifications/{id}/retry", axum::routing::post(retry_notification))
        .route("/v1/action-groups", get(list_action_groups))
        .route("/v1/action-groups/{name}", get(get_action_group).put(put_action_group).delete(delete_action_group))
        .with_state(alerting)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

fn failure(e: AlertingError) -> Response {
    match e {
        AlertingError::NoSuchRule(_) => error(StatusCode::NOT_FOUND, "RuleNotFound", e.to_string()),
        AlertingError::NoSuchAlert(_) => error(StatusCode::NOT_FOUND, "AlertNotFound", e.to_string()),
        AlertingError::Refused(_) => error(StatusCode::CONFLICT, "Conflict", e.to_string()),
        AlertingError::NoSuchNotification(_) => error(StatusCode::NOT_FOUND, "NotificationNotFound", e.to_string()),
        AlertingError::Invalid(_) => error(StatusCode::BAD_REQUEST, "InvalidRule", e.to_string()),
        AlertingError::InvalidActionGroup(_) => error(StatusCode::BAD_REQUEST, "InvalidActionGroup", e.to_string()),
        AlertingError::NoSuchActionGroup(_) => error(StatusCode::NOT_FOUND, "ActionGroupNotFound", e.to_string()),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", other.to_string()),
    }
}

async fn list_rules(State(a): State<Arc<Alerting>>) -> Response {
    Json(json!({"value": a.rules().await})).into_response()
}

async fn get_rule(State(a): State<Arc<Alerting>>, Path(name): Path<String>) -> Response {
    match a.rule(&name).await {
        Some(s) => Json(s).into_response(),
        None => failure(AlertingError::NoSuchRule(name)),
    }
}

async fn put_rule(State(a): State<Arc<Alerting>>, Path(name): Path<String>, body: axum::body::Bytes) -> Response {
    let mut v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidJson", format!("the body is not JSON: {e}")),
    };
    let Some(obj) = v.as_object_mut() else {
        return error(StatusCode::BAD_REQUEST, "InvalidRule", "the body must be a JSON object (a rule)");
    };
    match obj.get("name") {
        None => {
            obj.insert("name".into(), json!(name));
        }
        Some(n) if n.as_str() == Some(name.as_str()) => {}
        Some(n) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRule",
                format!("the body's name {n} differs from the name in the URL '{name}'"),
            );
        }
    }
    let rule: Rule = match serde_json::from_value(v) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidRule", format!("invalid rule: {e}")),
    };
    match a.put_rule(rule).await {
        Ok(created) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(a.rule(&name).await)).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn delete_rule(State(a): State<Arc<Alerting>>, Path(name): Path<String>) -> Response {
    match a.delete_rule(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(e),
    }
}

async fn list_alerts(State(a): State<Arc<Alerting>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let state = q.get("state").map_or("all", String::as_str);
    if !["active", "fired", "resolved", "all"].contains(&state) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("state '{state}' is not one of active, fired, resolved, all"),
        );
    }
    let (active, recent) = a.alerts().await;
    let mut out = match state {
        "active" => active,
        "fired" => recent.into_iter().filter(|r| r.monitor_condition == MonitorCondition::Fired).collect(),
        "resolved" => recent.into_iter().filter(|r| r.monitor_condition == MonitorCondition::Resolved).collect(),
        _ => recent,
    };
    if let Some(rule) = q.get("rule") {
        out.retain(|r| &r.rule == rule);
    }
    Json(json!({"value": out})).into_response()
}

async fn list_notifications(State(a): State<Arc<Alerting>>) -> Response {
    let view = |e: &crate::outbox::Entry| {
        json!({
            "id": e.id,
            "notificationId": e.notification_id,
            "rule": e.rule,
            "kind": e.kind,
            "actionGroup": e.group,
            "targetType": e.target.kind(),
            "target": e.target.describe(),
            "created": crate::notify::datetime(e.created_us),
            "attempts": e.attempts,
            "nextAttempt": (e.next_attempt_us > 0).then(|| crate::notify::datetime(e.next_attempt_us)),
            "lastStatus": e.last_status,
            "lastError": e.last_error,
        })
    };
    let pending: Vec<Value> = a.outbox().pending().iter().map(view).collect();
    let outbox = a.outbox().clone();
    let failed = match tokio::task::spawn_blocking(move || outbox.failed()).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()),
    };
    let failed: Vec<Value> = failed.iter().map(view).collect();
    Json(json!({"pending": pending, "failed": failed})).into_response()
}

/// Who made a request, as the server's authentication found it (the key's name, or
/// `anonymous` without keys): put in the request's extensions by the server.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

async fn change_alert(
    State(a): State<Arc<Alerting>>,
    Path((id, action)): Path<(String, String)>,
    principal: Option<axum::Extension<Principal>>,
    body: axum::body::Bytes,
) -> Response {
    let state = match action.as_str() {
        "acknowledge" => crate::response::AlertState::Acknowledged,
        "close" => crate::response::AlertState::Closed,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("'{other}' is not an alert action (acknowledge, close)"),
            );
        }
    };
    let comment = if body.is_empty() {
        String::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v.get("comment").and_then(Value::as_str).unwrap_or_default().to_string(),
            Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidJson", format!("the body is not JSON: {e}")),
        }
    };
    let who = principal.map_or_else(|| "anonymous".to_string(), |p| p.0.0);
    match a.set_alert_state(&id, state, &who, &comment, chrono::Utc::now().timestamp_micros()).await {
        Ok(alert) => Json(alert).into_response(),
        Err(e) => failure(e),
    }
}

async fn retry_notification(State(a): State<Arc<Alerting>>, Path(id): Path<String>) -> Response {
    match a.retry_failed(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(e),
    }
}

async fn list_action_groups(State(a): State<Arc<Alerting>>) -> Response {
    let groups: serde_json::Map<String, Value> =
        a.action_groups().iter().map(|(name, g)| (name.clone(), json!(crate::action_groups::redacted(g)))).collect();
    Json(json!({ "value": groups })).into_response()
}

async fn get_action_group(State(a): State<Arc<Alerting>>, Path(name): Path<String>) -> Response {
    match a.action_groups().get(&name) {
        Some(g) => Json(crate::action_groups::redacted(g)).into_response(),
        None => failure(AlertingError::NoSuchActionGroup(name)),
    }
}

async fn put_action_group(
    State(a): State<Arc<Alerting>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let group: crate::rule::ActionGroup = match serde_json::from_slice(&body) {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidActionGroup", format!("invalid action group: {e}")),
    };
    match a.put_action_group(&name, group).await {
        Ok(created) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            let stored = a.action_groups().get(&name).map(crate::action_groups::redacted);
            (status, Json(stored)).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn delete_action_group(State(a): State<Arc<Alerting>>, Path(name): Path<String>) -> Response {
    match a.delete_action_group(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(e),
    }
}
