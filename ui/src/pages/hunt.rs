//! `/hunt`: the KQL editor. `?q=` runs a query (a link is a shareable query), over the page's
//! time range; results are a typed table, paged by re-running (`&page=`), at most
//! [`MAX_RESULT_ROWS`] kept; `render` draws its chart. Errors show the line, the column and a
//! caret under the text. Saved queries live on the server ([`crate::saved`]); the history of
//! what this browser ran is in its local storage (`console.js`).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fimlake_kql::PlanOptions;
use fimlake_kusto::KustoType;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{now_us, range_of};
use crate::UiState;
use crate::data::{self, Column, Rows};
use crate::layout;
use crate::range::{RangeParams, TimeRange};
use crate::session::{Viewer, audit_action};

/// Rows of a result kept for paging and charts; the result says when it has more.
pub const MAX_RESULT_ROWS: usize = 10_000;
pub const PAGE_ROWS: usize = 100;

const EXAMPLE: &str = "ConfigurationChange\n| where ConfigChangeType == \"Files\"\n| summarize Changes = count() by bin(TimeGenerated, 1h), ChangeCategory\n| render timechart";

#[derive(Deserialize)]
pub struct Params {
    #[serde(flatten)]
    range: RangeParams,
    #[serde(default)]
    q: Option<String>,
    /// A saved query's id: its text is loaded and run.
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

/// What running the query gave.
enum Outcome {
    NotRun,
    Rows { rows: Rows, more: bool, render: Option<fimlake_kql::ast::Render> },
    Failed(String),
}

pub async fn page(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<Params>,
) -> Response {
    let range = match range_of(&viewer, &p.range, "Hunting", "/hunt") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let saved = p.saved.as_deref().and_then(|id| st.saved.get(id));
    let text = saved.as_ref().map(|s| s.text.clone()).or(p.q.clone()).filter(|t| !t.trim().is_empty());
    let outcome = match &text {
        Some(t) => run(&st, &viewer, t, &range).await,
        None => Outcome::NotRun,
    };
    let status = if matches!(outcome, Outcome::Failed(_)) { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page_no = p.page.unwrap_or(0);
    let body = html! {
        form.hunt #hunt-form method="get" action="/hunt" {
            @for (k, v) in super::machines::range_fields(&range) { input type="hidden" name=(k) value=(v); }
            textarea #query name="q" rows="8" spellcheck="false" aria-label="KQL query" placeholder=(EXAMPLE) { (text.clone().unwrap_or_default()) }
            div.buttons {
                button type="submit" #run { "Run" } span.muted { " Ctrl+Enter runs. The time range applies to every table." }
            }
        }
        @match &outcome {
            Outcome::NotRun => {},
            Outcome::Failed(message) => pre.error data-testid="query-error" role="alert" { (message) },
            Outcome::Rows { rows, more, render } => (results(rows, *more, render.as_ref(), text.as_deref().unwrap_or(""), &range, page_no)),
        }
        div.columns {
            section.panel {
                h2 { "Saved queries" }
                (saved_list(&st, &viewer, &range))
                @if let Some(t) = &text {
                    form.inline method="post" action="/hunt/saved" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="text" value=(t);
                        input type="text" name="name" placeholder="Name" required aria-label="Name of the saved query" value=[saved.as_ref().map(|s| s.name.as_str())];
                        button type="submit" { (if saved.is_some() { "Save (replaces a query of that name)" } else { "Save this query" }) }
                    }
                }
            }
            section.panel {
                h2 { "Recent in this browser" }
                ul #history { li.muted { "Queries you run appear here (kept in this browser only)." } }
            }
        }
    };
    (status, layout::page(&viewer, "Hunting", "/hunt", Some(&range), body)).into_response()
}

/// Runs the query, keeping at most [`MAX_RESULT_ROWS`] rows (the rest of the stream is dropped,
/// which cancels it), and records it in `AuditLog`.
async fn run(st: &UiState, viewer: &Viewer, text: &str, range: &TimeRange) -> Outcome {
    let outcome = match fimlake_kql::parse(text) {
        Err(e) => Outcome::Failed(e.render()),
        Ok(parsed) => match collect(st, text, range).await {
            Ok((rows, more)) => Outcome::Rows { rows, more, render: parsed.render().cloned() },
            Err(fimlake_query::QueryError::Kql(e)) => Outcome::Failed(e.render()),
            Err(e) => Outcome::Failed(e.to_string()),
        },
    };
    let (status, rows) = match &outcome {
        Outcome::Rows { rows, .. } => (200, rows.rows.len()),
        _ => (400, 0),
    };
    audit_action(st, viewer, "/hunt", status, Some(text), &format!("console query, {rows} rows shown")).await;
    outcome
}

async fn collect(st: &UiState, text: &str, range: &TimeRange) -> Result<(Rows, bool), fimlake_query::QueryError> {
    let options =
        PlanOptions { time_range: Some((range.start_us, range.end_us)), now_us: now_us(), ..PlanOptions::default() };
    let result = st.engine.run_limited(text, options, data::PAGE_QUERY_TIMEOUT, MAX_RESULT_ROWS).await?;
    Ok((data::to_rows(&result), result.truncated))
}

fn results(
    rows: &Rows,
    more: bool,
    render: Option<&fimlake_kql::ast::Render>,
    text: &str,
    range: &TimeRange,
    page: usize,
) -> Markup {
    let pages = rows.rows.len().div_ceil(PAGE_ROWS).max(1);
    let page = page.min(pages - 1);
    let shown =
        Rows { rows: rows.rows.iter().skip(page * PAGE_ROWS).take(PAGE_ROWS).cloned().collect(), ..rows.clone() };
    let link = |p: usize| format!("/hunt?{}&q={}&page={p}", range.query(), layout::url_encode(text));
    html! {
        section.panel.results {
            p.muted data-testid="result-count" {
                (layout::count(rows.rows.len() as i64)) " rows"
                @if more { " (the first " (MAX_RESULT_ROWS) "; download the CSV for all)" }
                " · " a href=(format!("/hunt.csv?{}&q={}", range.query(), layout::url_encode(text))) download { "Download CSV" }
            }
            @if let Some(r) = render { (chart(rows, r)) }
            (typed_table(&shown))
            @if pages > 1 {
                nav.pager {
                    @if page > 0 { a href=(link(page - 1)) { "« Previous" } }
                    span { "Page " (page + 1) " of " (pages) }
                    @if page + 1 < pages { a href=(link(page + 1)) data-testid="next-page" { "Next »" } }
                }
            }
        }
    }
}

/// The result as a table whose headers name each column's type.
fn typed_table(rows: &Rows) -> Markup {
    html! {
        div.scroll { table.data #results {
            thead { tr { @for c in &rows.columns { th { (c.name) br; small.type { (c.kusto_type.name()) } } } } }
            tbody { @for r in &rows.rows { tr {
                @for (c, v) in rows.columns.iter().zip(r) {
                    @if c.kusto_type == KustoType::DateTime { td { (layout::when(v)) } }
                    @else if matches!(c.kusto_type, KustoType::Long | KustoType::Int | KustoType::Real) { td.num { (data::text(v)) } }
                    @else { td { (data::text(v)) } }
                }
            } } }
        } }
    }
}

fn is_number(c: &Column) -> bool {
    matches!(c.kusto_type, KustoType::Long | KustoType::Int | KustoType::Real)
}

/// The chart `render` asks for, as data for `console.js`: `timechart`/`linechart`/`areachart`
/// (x: the first datetime column, one series per numeric column and value of the string
/// columns), `barchart`/`columnchart` (categories: the first string column), `piechart`.
/// `table` (or anything else) draws nothing but the table.
fn chart(rows: &Rows, render: &fimlake_kql::ast::Render) -> Markup {
    let viz = render.visualization.to_ascii_lowercase();
    let data = match viz.as_str() {
        "timechart" | "linechart" | "areachart" | "scatterchart" => time_series(rows),
        "barchart" | "columnchart" | "piechart" => categories(rows),
        _ => None,
    };
    let title = render.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case("title")).map(|(_, v)| v.clone());
    let data = data.map(|mut d| {
        d["kind"] = json!(viz);
        d
    });
    html! {
        @match data {
            Some(d) => {
                @if let Some(t) = &title { h3 { (t) } }
                div.chart data-chart="hunt-chart" data-testid="chart" {}
                (layout::chart_data("hunt-chart", &d))
            }
            None => @if viz != "table" { p.muted { "render " (viz) ": the result has no columns to draw it with (a datetime or string column and a number)." } },
        }
    }
}

fn time_series(rows: &Rows) -> Option<Value> {
    let x = rows.columns.iter().position(|c| c.kusto_type == KustoType::DateTime)?;
    let ys: Vec<usize> = (0..rows.columns.len()).filter(|i| is_number(&rows.columns[*i])).collect();
    let keys: Vec<usize> =
        (0..rows.columns.len()).filter(|i| *i != x && rows.columns[*i].kusto_type == KustoType::String).collect();
    if ys.is_empty() {
        return None;
    }
    let mut times: Vec<i64> = rows.rows.iter().filter_map(|r| data::micros(&r[x])).map(|us| us / 1_000_000).collect();
    times.sort_unstable();
    times.dedup();
    let mut series: std::collections::BTreeMap<String, Vec<Option<f64>>> = Default::default();
    for r in &rows.rows {
        let Some(t) = data::micros(&r[x]).map(|us| us / 1_000_000) else { continue };
        let i = times.binary_search(&t).expect("collected above");
        let key: Vec<String> = keys.iter().map(|k| data::text(&r[*k])).collect();
        for y in &ys {
            let mut label = key.join(" / ");
            if ys.len() > 1 || label.is_empty() {
                label = if label.is_empty() {
                    rows.columns[*y].name.clone()
                } else {
                    format!("{label} · {}", rows.columns[*y].name)
                };
            }
            let values = series.entry(label).or_insert_with(|| vec![None; times.len()]);
            values[i] = Some(values[i].unwrap_or(0.0) + r[*y].as_f64().unwrap_or(0.0));
        }
    }
    Some(
        json!({"x": times, "series": series.iter().map(|(k, v)| json!({"label": k, "values": v})).collect::<Vec<_>>()}),
    )
}

fn categories(rows: &Rows) -> Option<Value> {
    let label = rows.columns.iter().position(|c| c.kusto_type == KustoType::String)?;
    let ys: Vec<usize> = (0..rows.columns.len()).filter(|i| is_number(&rows.columns[*i])).collect();
    if ys.is_empty() {
        return None;
    }
    let labels: Vec<String> = rows.rows.iter().take(50).map(|r| data::text(&r[label])).collect();
    let series: Vec<Value> = ys
        .iter()
        .map(|y| json!({"label": rows.columns[*y].name, "values": rows.rows.iter().take(50).map(|r| r[*y].as_f64()).collect::<Vec<_>>()}))
        .collect();
    Some(json!({"labels": labels, "series": series}))
}

fn saved_list(st: &UiState, viewer: &Viewer, range: &TimeRange) -> Markup {
    let saved = st.saved.list();
    html! {
        @if saved.is_empty() { p.muted { "None yet: run a query, name it and save it." } }
        ul.saved {
            @for s in &saved {
                li {
                    a href=(format!("/hunt?saved={}&{}", s.id, range.query())) { (s.name) }
                    span.muted { " by " (s.owner) }
                    @if s.owner == viewer.principal || viewer.is_admin() {
                        form.inline method="post" action=(format!("/hunt/saved/{}/delete", s.id)) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "delete" }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SaveForm {
    name: String,
    text: String,
}

pub async fn save(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    axum::Form(f): axum::Form<SaveForm>,
) -> Response {
    match st.saved.add(&f.name, &f.text, &viewer.principal, viewer.is_admin()) {
        Ok(q) => {
            audit_action(&st, &viewer, "/hunt/saved", 303, Some(&q.text), &format!("saved query '{}'", q.name)).await;
            Redirect::to(&format!("/hunt?saved={}", q.id)).into_response()
        }
        Err(e @ crate::saved::SavedError::NotOwner { .. }) => {
            super::message(&viewer, StatusCode::FORBIDDEN, "Hunting", &e.to_string())
        }
        Err(e) => super::message(&viewer, StatusCode::BAD_REQUEST, "Hunting", &e.to_string()),
    }
}

pub async fn delete_saved(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    match st.saved.delete(&id, &viewer.principal, viewer.is_admin()) {
        Ok(q) => {
            audit_action(
                &st,
                &viewer,
                "/hunt/saved/{id}/delete",
                303,
                None,
                &format!("deleted saved query '{}'", q.name),
            )
            .await;
            Redirect::to("/hunt").into_response()
        }
        Err(e @ crate::saved::SavedError::NotFound(_)) => {
            super::message(&viewer, StatusCode::NOT_FOUND, "Hunting", &e.to_string())
        }
        Err(e @ crate::saved::SavedError::NotOwner { .. }) => {
            super::message(&viewer, StatusCode::FORBIDDEN, "Hunting", &e.to_string())
        }
        Err(e) => super::message(&viewer, StatusCode::INTERNAL_SERVER_ERROR, "Hunting", &e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct CsvParams {
    #[serde(flatten)]
    range: RangeParams,
    q: String,
}

pub async fn csv(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<CsvParams>,
) -> Response {
    let range = match range_of(&viewer, &p.range, "Hunting", "/hunt") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    audit_action(&st, &viewer, "/hunt.csv", 200, Some(&p.q), "console CSV export").await;
    super::export::stream_csv(&st, &viewer, &p.q, Some((range.start_us, range.end_us)), "query.csv").await
}
