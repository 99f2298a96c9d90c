//! `/audit`: the `AuditLog` table (API calls, console sign-ins and actions, refusals), newest
//! first, filterable by principal, status and time, paged by a keyset cursor.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::{now_us, query_failed, range_of};
use crate::UiState;
use crate::data::{self, quote};
use crate::layout;
use crate::range::RangeParams;
use crate::session::Viewer;

const PAGE_ROWS: usize = 100;

#[derive(Deserialize)]
pub struct Params {
    #[serde(flatten)]
    range: RangeParams,
    #[serde(default)]
    principal: Option<String>,
    /// `ok` (2xx/3xx), `refused` (4xx), `failed` (5xx), or a status number.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    before: Option<String>,
}

fn status_filter(s: &str) -> Result<Option<String>, String> {
    Ok(match s.trim() {
        "" => None,
        "ok" => Some("Status < 400".into()),
        "refused" => Some("Status >= 400 and Status < 500".into()),
        "failed" => Some("Status >= 500".into()),
        n => match n.parse::<u16>() {
            Ok(code) => Some(format!("Status == {code}")),
            Err(_) => return Err(format!("status '{n}' is not ok, refused, failed or an HTTP status")),
        },
    })
}

pub async fn list(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<Params>,
) -> Response {
    let range = match range_of(&viewer, &p.range, "Audit log", "/audit") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut text = String::from("AuditLog");
    let principal = p.principal.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(who) = principal {
        text.push_str(&format!(" | where Principal == {}", quote(who)));
    }
    match status_filter(p.status.as_deref().unwrap_or("")) {
        Ok(Some(f)) => text.push_str(&format!(" | where {f}")),
        Ok(None) => {}
        Err(e) => return super::message(&viewer, axum::http::StatusCode::BAD_REQUEST, "Audit log", &e),
    }
    if let Some(us) = p.before.as_deref().and_then(|b| data::micros(&serde_json::Value::String(b.into()))) {
        text.push_str(&format!(" | where TimeGenerated < {}", data::datetime_literal(us)));
    }
    text.push_str(&format!(
        " | project TimeGenerated, Principal, Role, Method, Route, Url, Status, DurationMs, ClientAddress, QueryText, Rows, Detail \
         | sort by TimeGenerated desc | take {}",
        PAGE_ROWS + 1
    ));
    let rows = match data::run(&st, &text, Some((range.start_us, range.end_us)), now_us()).await {
        Ok(r) => r,
        Err(e) => return query_failed(&viewer, "Audit log", "/audit", &e),
    };
    let keep = format!(
        "{}{}{}",
        range.query(),
        principal.map(|w| format!("&principal={}", layout::url_encode(w))).unwrap_or_default(),
        p.status.as_deref().map(|s| format!("&status={}", layout::url_encode(s))).unwrap_or_default()
    );
    let next = (rows.rows.len() > PAGE_ROWS)
        .then(|| data::text(rows.cell(&rows.rows[PAGE_ROWS - 1], "TimeGenerated")))
        .map(|t| format!("/audit?{keep}&before={}", layout::url_encode(&t)));
    let shown = data::Rows { rows: rows.rows.iter().take(PAGE_ROWS).cloned().collect(), ..rows.clone() };
    let body = html! {
        form.filters method="get" action="/audit" {
            @for (k, v) in super::machines::range_fields(&range) { input type="hidden" name=(k) value=(v); }
            label { "Principal " input type="search" name="principal" value=[principal]; }
            label { "Status "
                select name="status" {
                    @for (v, l) in [("", "any"), ("ok", "succeeded"), ("refused", "refused (4xx)"), ("failed", "failed (5xx)")] {
                        option value=(v) selected[p.status.as_deref().unwrap_or("") == v] { (l) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        (super::table(&shown))
        nav.pager { @if let Some(n) = next { a href=(n) data-testid="next-page" { "Older »" } } }
    };
    layout::page(&viewer, "Audit log", "/audit", Some(&range), body).into_response()
}
