//! One module per page (or family of pages). Each handler takes the [`Viewer`] the session
//! middleware found, runs bounded queries and renders with [`crate::layout::page`].

pub mod alerts;
pub mod audit;
pub mod change;
pub mod changes;
pub mod deliveries;
pub mod export;
pub mod hunt;
pub mod machines;
pub mod overview;
pub mod report;
pub mod rules;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::layout;
use crate::range::{RangeParams, TimeRange};
use crate::session::Viewer;

/// The current instant, in microseconds.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The page's time range, or a 400 page saying what is wrong with it.
pub fn range_of(viewer: &Viewer, params: &RangeParams, title: &str, active: &str) -> Result<TimeRange, Response> {
    TimeRange::from_params(params, now_us()).map_err(|e| {
        let fallback = TimeRange::from_params(&RangeParams::default(), now_us()).expect("default range");
        let body = layout::page(viewer, title, active, Some(&fallback), layout::error_box(&e));
        (StatusCode::BAD_REQUEST, body).into_response()
    })
}

/// A page for a failed query: the error as the engine said it (a 400 for the user's mistake).
pub fn query_failed(viewer: &Viewer, title: &str, active: &str, e: &fimlake_query::QueryError) -> Response {
    let status = match e {
        fimlake_query::QueryError::Kql(_) | fimlake_query::QueryError::MemoryLimit { .. } => StatusCode::BAD_REQUEST,
        fimlake_query::QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        fimlake_query::QueryError::Evaluation(_) => StatusCode::BAD_REQUEST,
        fimlake_query::QueryError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        fimlake_query::QueryError::Execution(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, layout::page(viewer, title, active, None, layout::error_box(&e.to_string()))).into_response()
}

/// A page that says `message` with `status`.
pub fn message(viewer: &Viewer, status: StatusCode, title: &str, message: &str) -> Response {
    (status, layout::page(viewer, title, "", None, html! { p.error role="alert" { (message) } })).into_response()
}

/// Refuses a change to someone without the admin role.
pub fn need_admin(viewer: &Viewer) -> Result<(), Response> {
    if viewer.is_admin() {
        return Ok(());
    }
    Err(message(
        viewer,
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!("{} has the query role; changing rules needs the admin role.", viewer.principal),
    ))
}

/// A table of rows: column headers and cells, every cell escaped.
pub fn table(rows: &crate::data::Rows) -> Markup {
    html! {
        div.scroll {
            table.data {
                thead { tr { @for c in &rows.columns { th title=(c.kusto_type.name()) { (c.name) } } } }
                tbody {
                    @for r in &rows.rows {
                        tr { @for v in r { td { (crate::data::text(v)) } } }
                    }
                }
            }
        }
    }
}
