//! `/report`: the PCI DSS 11.5 evidence for a chosen period, printable (the print style sheet
//! hides the navigation): the machines monitored and their heartbeat coverage with every gap
//! longer than the expected interval, the monitored path set, the changes detected by type and
//! category, and the alerts fired with their delivery and the people's response.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use fimlake_kql::PlanOptions;
use futures::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use super::{now_us, query_failed, range_of};
use crate::UiState;
use crate::data::{self, Rows};
use crate::layout::{self, count};
use crate::range::{RangeParams, TimeRange};
use crate::session::Viewer;

/// Gaps listed at most (the count says how many there were).
const MAX_GAPS: usize = 1000;
const MAX_ALERTS: usize = 1000;

#[derive(Deserialize)]
pub struct Params {
    #[serde(flatten)]
    range: RangeParams,
    /// The longest expected time between heartbeats (default `[ui] silent_after`), e.g. `15m`.
    #[serde(default)]
    gap: Option<String>,
}

/// One machine's heartbeat coverage over the period.
#[derive(Debug, Default, Clone)]
struct Coverage {
    beats: u64,
    first_us: i64,
    last_us: i64,
    gaps: Vec<(i64, i64)>,
}

/// Heartbeats per computer in time order, streamed, and the gaps between consecutive beats (and
/// from the last one to the period's end) longer than `gap_us`.
async fn coverage(
    st: &UiState,
    range: &TimeRange,
    gap_us: i64,
    now: i64,
) -> Result<Vec<(String, Coverage)>, fimlake_query::QueryError> {
    let text = "Heartbeat | project Computer, TimeGenerated | sort by Computer asc, TimeGenerated asc";
    let options =
        PlanOptions { time_range: Some((range.start_us, range.end_us)), now_us: now, ..PlanOptions::default() };
    let (_, mut stream) = st.engine.stream(text, options, data::PAGE_QUERY_TIMEOUT).await?;
    let mut out: Vec<(String, Coverage)> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| st.engine.stream_error(e))?;
        let (computers, times) = columns(&batch)?;
        for r in 0..batch.num_rows() {
            if computers.is_null(r) || times.is_null(r) {
                continue;
            }
            let (computer, t) = (computers.value(r), times.value(r));
            if out.last().is_none_or(|(c, _)| c != computer) {
                out.push((computer.to_string(), Coverage { first_us: t, last_us: t, ..Default::default() }));
            }
            let (_, c) = out.last_mut().expect("pushed above");
            if t - c.last_us > gap_us {
                c.gaps.push((c.last_us, t));
            }
            c.last_us = t;
            c.beats += 1;
        }
    }
    let end = range.end_us.min(now);
    for (_, c) in &mut out {
        if end - c.last_us > gap_us {
            c.gaps.push((c.last_us, end));
        }
    }
    Ok(out)
}

/// The batch's `Computer` as strings and `TimeGenerated` as microseconds, read as Arrow arrays
/// (a million heartbeats a week: no per-cell conversion).
fn columns(batch: &RecordBatch) -> Result<(StringArray, Int64Array), fimlake_query::QueryError> {
    let failed = |e: arrow::error::ArrowError| fimlake_query::QueryError::Execution(e.to_string());
    let computers = arrow::compute::cast(batch.column(0), &DataType::Utf8).map_err(failed)?;
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let times = arrow::compute::cast(batch.column(1), &micros).map_err(failed)?;
    let times = arrow::compute::cast(&times, &DataType::Int64).map_err(failed)?;
    Ok((computers.as_string::<i32>().clone(), times.as_primitive::<Int64Type>().clone()))
}

fn duration_text(us: i64) -> String {
    let minutes = us / 60_000_000;
    match minutes {
        m if m >= 1440 => format!("{}d {}h", m / 1440, m % 1440 / 60),
        m if m >= 60 => format!("{}h {}m", m / 60, m % 60),
        m => format!("{m}m"),
    }
}

pub async fn page(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<Params>,
) -> Response {
    let title = "PCI DSS 11.5 evidence";
    let range = match range_of(&viewer, &p.range, title, "/report") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let gap = match p.gap.as_deref().filter(|g| !g.trim().is_empty()) {
        None => st.config.silent_after,
        Some(g) => match fimlake_settings::duration::parse(g) {
            Ok(d) if d.as_secs() >= 60 => d,
            _ => {
                return super::message(
                    &viewer,
                    axum::http::StatusCode::BAD_REQUEST,
                    title,
                    &format!("gap '{g}' is not a duration of at least 1m such as 15m or 1h"),
                );
            }
        },
    };
    let gap_us = gap.as_micros() as i64;
    let now = now_us();
    let r = Some((range.start_us, range.end_us));
    let paths = "ConfigurationData | where ConfigDataType == \"Files\" | summarize Machines = dcount(Computer), Files = dcount(FileSystemPath) by Location | sort by Location asc | take 1000";
    let changes = "ConfigurationChange | summarize Changes = count() by ConfigChangeType, ChangeCategory | sort by ConfigChangeType asc, ChangeCategory asc";
    let fired = format!(
        "AlertEvent | where MonitorCondition == \"Fired\" and isempty(AlertState) | summarize arg_min(TimeGenerated, RuleName, Severity, NotificationId) by AlertId | sort by TimeGenerated desc | take {MAX_ALERTS}"
    );
    let responses = "AlertEvent | where isnotempty(AlertState) | summarize arg_max(TimeGenerated, AlertState, Principal, Comment) by AlertId";
    let deliveries =
        "AlertDelivery | summarize Delivered = countif(Status == \"Delivered\"), Attempts = count() by NotificationId";
    let (cov, paths, changes, fired, responses, deliveries) = futures::join!(
        coverage(&st, &range, gap_us, now),
        data::run(&st, paths, Some((0, range.end_us)), now),
        data::run(&st, changes, r, now),
        data::run(&st, &fired, r, now),
        data::run(&st, responses, Some((range.start_us, i64::MAX / 2)), now),
        data::run(&st, deliveries, Some((range.start_us, i64::MAX / 2)), now),
    );
    let (cov, paths, changes, fired, responses, deliveries) = match (cov, paths, changes, fired, responses, deliveries)
    {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
        (Err(e), ..)
        | (_, Err(e), ..)
        | (_, _, Err(e), ..)
        | (_, _, _, Err(e), ..)
        | (.., Err(e), _)
        | (.., Err(e)) => {
            return query_failed(&viewer, title, "/report", &e);
        }
    };
    let body = html! {
        form.filters.noprint method="get" action="/report" {
            @for (k, v) in super::machines::range_fields(&range) { input type="hidden" name=(k) value=(v); }
            label { "Expected heartbeat interval " input type="text" name="gap" value=(crate::pages::rules::duration_label(gap)); }
            button type="submit" { "Apply" }
            button.print type="button" data-print="1" { "Print / save as PDF" }
        }
        p { "Period: " strong { (range.label()) } " (" (crate::range::local(range.start_us)) " to " (crate::range::local(range.end_us)) " UTC). Generated " (fimlake_alerting::notify::datetime(now)) "." }
        (coverage_section(&cov, gap_us))
        section.panel {
            h2 { "2. Monitored path set" }
            p.muted { "From the agents' inventory (ConfigurationData) up to the end of the period: each monitored item, on how many machines, with how many files." }
            (super::table(&paths))
        }
        section.panel {
            h2 { "3. Changes detected" }
            (super::table(&changes))
        }
        (alerts_section(&fired, &responses, &deliveries))
    };
    layout::page(&viewer, title, "/report", Some(&range), body).into_response()
}

/// Section 1: every machine's heartbeats and the gaps longer than `gap_us` (the first
/// [`MAX_GAPS`] listed).
fn coverage_section(cov: &[(String, Coverage)], gap_us: i64) -> Markup {
    let total_gaps: usize = cov.iter().map(|(_, c)| c.gaps.len()).sum();
    let gaps = cov.iter().flat_map(|(computer, c)| c.gaps.iter().map(move |g| (computer, *g))).take(MAX_GAPS);
    html! {
        section.panel {
            h2 { "1. Machines monitored and heartbeat coverage" }
            p { (cov.len()) " machines reported; " strong data-testid="gap-count" { (total_gaps) } " gaps longer than " (duration_text(gap_us)) "." }
            table.data #coverage {
                thead { tr { th { "Computer" } th { "Heartbeats" } th { "First" } th { "Last" } th { "Gaps" } } }
                tbody { @for (computer, c) in cov { tr class=[(!c.gaps.is_empty()).then_some("differs")] {
                    td { (computer) } td.num { (count(c.beats as i64)) }
                    td { (fimlake_alerting::notify::datetime(c.first_us)) } td { (fimlake_alerting::notify::datetime(c.last_us)) }
                    td.num { (c.gaps.len()) }
                } } }
            }
            @if total_gaps > 0 {
                h3 { "Gaps" }
                table.data #gaps {
                    thead { tr { th { "Computer" } th { "No heartbeat from" } th { "until" } th { "Length" } } }
                    tbody { @for (computer, (from, to)) in gaps { tr {
                        td { (computer) } td { (fimlake_alerting::notify::datetime(from)) } td { (fimlake_alerting::notify::datetime(to)) } td { (duration_text(to - from)) }
                    } } }
                }
                @if total_gaps > MAX_GAPS { p.muted { "The first " (MAX_GAPS) " of " (total_gaps) " gaps are listed; narrow the period for the rest." } }
            }
        }
    }
}

/// Section 4: each alert fired, how its notification was delivered, and the latest response.
fn alerts_section(fired: &Rows, responses: &Rows, deliveries: &Rows) -> Markup {
    let by_id = |rows: &Rows, key: &str| -> HashMap<String, Vec<serde_json::Value>> {
        rows.rows.iter().map(|r| (data::text(rows.cell(r, key)), r.clone())).collect()
    };
    let (response_of, delivery_of) = (by_id(responses, "AlertId"), by_id(deliveries, "NotificationId"));
    let delivery = |notification: &str, column: &str| {
        delivery_of.get(notification).map(|d| data::text(deliveries.cell(d, column))).unwrap_or_else(|| "0".into())
    };
    let response = |id: &str, column: &str| response_of.get(id).map(|x| data::text(responses.cell(x, column)));
    html! {
        section.panel {
            h2 { "4. Alerts fired, their delivery and response" }
            @if fired.rows.is_empty() { p.muted { "No alert fired in this period." } }
            @else {
                table.data #report-alerts {
                    thead { tr { th { "Fired (UTC)" } th { "Rule" } th { "Severity" } th { "Delivered" } th { "Attempts" } th { "State" } th { "By" } th { "Comment" } } }
                    tbody { @for r in &fired.rows {
                        @let id = data::text(fired.cell(r, "AlertId"));
                        @let notification = data::text(fired.cell(r, "NotificationId"));
                        tr {
                            td { a href=(format!("/alerts/{}", layout::segment(&id))) { (data::text(fired.cell(r, "TimeGenerated"))) } }
                            td { (data::text(fired.cell(r, "RuleName"))) }
                            td { "Sev" (data::text(fired.cell(r, "Severity"))) }
                            td.num { (delivery(&notification, "Delivered")) }
                            td.num { (delivery(&notification, "Attempts")) }
                            td { (response(&id, "AlertState").unwrap_or_else(|| "New".into())) }
                            td { (response(&id, "Principal").unwrap_or_default()) }
                            td { (response(&id, "Comment").unwrap_or_default()) }
                        }
                    } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(duration_text(45 * 60_000_000), "45m");
        assert_eq!(duration_text(125 * 60_000_000), "2h 5m");
        assert_eq!(duration_text(1500 * 60_000_000), "1d 1h");
    }
}
