//! `/deliveries`: notifications waiting in the outbox (with their attempts and last error) and
//! those given up on, each with "retry now".

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fimlake_alerting::engine::AlertingError;
use fimlake_alerting::notify::datetime;
use fimlake_alerting::outbox::Entry;
use maud::{Markup, html};

use crate::UiState;
use crate::layout::{self, segment};
use crate::session::{Viewer, audit_action};

pub async fn list(State(st): State<UiState>, Extension(viewer): Extension<Viewer>) -> Response {
    let mut pending = st.alerting.outbox().pending();
    pending.sort_by_key(|e| e.created_us);
    let outbox = st.alerting.outbox().clone();
    let failed = match tokio::task::spawn_blocking(move || outbox.failed()).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return super::message(&viewer, StatusCode::INTERNAL_SERVER_ERROR, "Deliveries", &e.to_string()),
        Err(e) => return super::message(&viewer, StatusCode::INTERNAL_SERVER_ERROR, "Deliveries", &e.to_string()),
    };
    let body = html! {
        section.panel {
            h2 { "Pending (" (pending.len()) ")" }
            (entries(&pending, None))
        }
        section.panel {
            h2 { "Failed (" (failed.len()) ")" }
            (entries(&failed, Some(&viewer)))
        }
        p.muted { "Every attempt is in the " a href="/hunt?q=AlertDelivery%0A%7C%20sort%20by%20TimeGenerated%20desc&range=7d" { "AlertDelivery" } " table." }
    };
    layout::page(&viewer, "Deliveries", "/deliveries", None, body).into_response()
}

fn entries(list: &[Entry], retry: Option<&Viewer>) -> Markup {
    html! {
        @if list.is_empty() { p.muted { "None." } }
        @else {
            div.scroll { table.data.deliveries {
                thead { tr { th { "Created (UTC)" } th { "Rule" } th { "Kind" } th { "Target" } th { "Attempts" } th { "Next attempt" } th { "Last error" } @if retry.is_some() { th {} } } }
                tbody { @for e in list { tr {
                    td { (datetime(e.created_us)) }
                    td { (e.rule) }
                    td { (e.kind) }
                    td { (e.target.kind()) ": " (e.target.describe()) }
                    td.num { (e.attempts) }
                    td { @if e.next_attempt_us > 0 { (datetime(e.next_attempt_us)) } }
                    td { (e.last_status.map(|s| format!("HTTP {s}: ")).unwrap_or_default()) (e.last_error.clone().unwrap_or_default()) }
                    @if let Some(v) = retry { td {
                        form.inline method="post" action=(format!("/deliveries/retry/{}", segment(&e.id))) {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Retry now" }
                        }
                    } }
                } } }
            } }
        }
    }
}

pub async fn retry(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let outcome = st.alerting.retry_failed(&id).await;
    let status = match &outcome {
        Ok(()) => 303,
        Err(AlertingError::NoSuchNotification(_)) => 404,
        Err(_) => 500,
    };
    audit_action(&st, &viewer, "/deliveries/retry/{id}", status, None, &format!("retry delivery {id}")).await;
    match outcome {
        Ok(()) => Redirect::to("/deliveries").into_response(),
        Err(e) => super::message(
            &viewer,
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Deliveries",
            &e.to_string(),
        ),
    }
}
