//! `/`: the overview. Tiles (machines reporting, silent machines, changes, active alerts,
//! coverage losses), changes over time stacked by type or category, the top changed paths and
//! machines, and the machines whose agent lost coverage. Every number links to its list.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{now_us, query_failed, range_of};
use fimlake_kusto::KustoType;

use crate::UiState;
use crate::data::{self, Rows};
use crate::layout::{self, count, segment};
use crate::range::{RangeParams, TimeRange};
use crate::session::Viewer;

#[derive(Deserialize)]
pub struct Params {
    #[serde(flatten)]
    range: RangeParams,
    /// `type` (default) or `category`: what the chart's bars are stacked by.
    #[serde(default)]
    by: Option<String>,
}

/// The bin of the changes chart for a range of `hours`.
pub fn bin_for(hours: i64) -> (&'static str, i64) {
    match hours {
        h if h <= 48 => ("1h", 3600),
        h if h <= 8 * 24 => ("4h", 4 * 3600),
        _ => ("1d", 86400),
    }
}

struct Figures {
    machines: Rows,
    /// Changes per bin, type, category and computer, with the latest `TimeGenerated` of each:
    /// the tiles, the chart, the top machines and the coverage losses all come from this one
    /// scan.
    counts: Rows,
    paths: Rows,
}

async fn figures(st: &UiState, range: &TimeRange, now: i64) -> Result<Figures, fimlake_query::QueryError> {
    let r = Some((range.start_us, range.end_us));
    let silent_before = data::datetime_literal(now - st.config.silent_after.as_micros() as i64);
    let machines = format!(
        "Heartbeat | summarize LastSeen = max(TimeGenerated) by Computer \
         | summarize Reporting = count(), Silent = countif(LastSeen < {silent_before})"
    );
    let (bin, _) = bin_for(range.hours());
    let counts = format!(
        "ConfigurationChange | summarize Count = count(), Last = max(TimeGenerated) \
         by bin(TimeGenerated, {bin}), ConfigChangeType, ChangeCategory, Computer"
    );
    let paths = "ConfigurationChange | where ConfigChangeType != \"AgentCoverage\" and isnotempty(FileSystemPath) \
                 | summarize Changes = count() by FileSystemPath | top 10 by Changes";
    let (machines, counts, paths) =
        futures::join!(data::run(st, &machines, r, now), data::run(st, &counts, r, now), data::run(st, paths, r, now),);
    Ok(Figures { machines: machines?, counts: counts?, paths: paths? })
}

/// What the overview shows of the per-bin counts.
struct Totals {
    changes: i64,
    coverage_losses: i64,
    /// The ten computers with the most changes (`Computer`, `Changes`).
    computers: Rows,
    /// Computers that lost coverage: `Computer`, `Losses`, `Last`, latest first.
    coverage: Vec<(String, i64, serde_json::Value)>,
}

fn totals(counts: &Rows) -> Totals {
    let mut per_computer: std::collections::HashMap<String, i64> = Default::default();
    let mut losses: std::collections::HashMap<String, (i64, serde_json::Value)> = Default::default();
    let (mut changes, mut coverage_losses) = (0, 0);
    for r in &counts.rows {
        let n = counts.cell(r, "Count").as_i64().unwrap_or(0);
        let computer = data::text(counts.cell(r, "Computer"));
        changes += n;
        if counts.cell(r, "ChangeCategory") == "CoverageLost" {
            coverage_losses += n;
            let last = counts.cell(r, "Last").clone();
            let entry = losses.entry(computer.clone()).or_insert((0, last.clone()));
            entry.0 += n;
            if data::micros(&last) > data::micros(&entry.1) {
                entry.1 = last;
            }
        }
        *per_computer.entry(computer).or_default() += n;
    }
    let mut top: Vec<(String, i64)> = per_computer.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let computers = Rows {
        columns: vec![
            data::Column { name: "Computer".into(), kusto_type: KustoType::String },
            data::Column { name: "Changes".into(), kusto_type: KustoType::Long },
        ],
        rows: top.into_iter().take(10).map(|(c, n)| vec![c.into(), n.into()]).collect(),
    };
    let mut coverage: Vec<(String, i64, serde_json::Value)> = losses.into_iter().map(|(c, (n, t))| (c, n, t)).collect();
    coverage.sort_by_key(|(_, _, t)| std::cmp::Reverse(data::micros(t)));
    coverage.truncate(20);
    Totals { changes, coverage_losses, computers, coverage }
}

pub async fn page(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Query<Params>,
) -> Response {
    let range = match range_of(&viewer, &params.range, "Overview", "/") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let by = if params.by.as_deref() == Some("category") { "ChangeCategory" } else { "ConfigChangeType" };
    let now = now_us();
    let f = match figures(&st, &range, now).await {
        Ok(f) => f,
        Err(e) => return query_failed(&viewer, "Overview", "/", &e),
    };
    let t = totals(&f.counts);
    let active_alerts = st.alerting.alert_list().await.iter().filter(|a| a.is_open()).count() as i64;
    let q = range.query();
    let tiles = [
        ("machines-reporting", "Machines reporting", f.machines.first_number("Reporting"), format!("/machines?{q}")),
        (
            "machines-silent",
            "Silent machines",
            f.machines.first_number("Silent"),
            format!("/machines?{q}&state=silent"),
        ),
        ("changes", "Changes", t.changes, format!("/changes?{q}")),
        ("active-alerts", "Active alerts", active_alerts, "/alerts?state=open".to_string()),
        ("coverage-losses", "Coverage losses", t.coverage_losses, format!("/changes?{q}&category=CoverageLost")),
    ];
    let body = html! {
        section.tiles {
            @for (id, label, n, href) in &tiles {
                a.tile href=(href) data-testid=(id) {
                    span.number { (count(*n)) }
                    span.label { (label) }
                }
            }
        }
        section.panel {
            div.panel-head {
                h2 { "Changes over time" }
                div.switch {
                    "Stacked by: "
                    a href=(format!("/?{q}&by=type")) class=[(by == "ConfigChangeType").then_some("active")] { "type" }
                    " · "
                    a href=(format!("/?{q}&by=category")) class=[(by == "ChangeCategory").then_some("active")] { "category" }
                }
            }
            (timeline_chart(&f.counts, by, &range, "changes-chart"))
        }
        div.columns {
            section.panel {
                h2 { "Top changed paths" }
                (top_list(&f.paths, "FileSystemPath", |p| format!("/changes?{q}&path={}", layout::url_encode(p))))
            }
            section.panel {
                h2 { "Top machines by changes" }
                (top_list(&t.computers, "Computer", |c| format!("/machines/{}?{q}", segment(c))))
            }
        }
        section.panel {
            h2 { "Machines whose agent lost coverage" }
            @if t.coverage.is_empty() {
                p.muted { "No agent reported a coverage loss in this range." }
            } @else {
                table.data #coverage {
                    thead { tr { th { "Computer" } th { "Losses (what the agent said: follow the link)" } th { "Last" } } }
                    tbody {
                        @for (computer, losses, last) in &t.coverage {
                            tr {
                                td { a href=(format!("/changes?{q}&computer={}&category=CoverageLost", layout::url_encode(computer))) { (computer) } }
                                td.num { a href=(format!("/changes?{q}&computer={}&category=CoverageLost", layout::url_encode(computer))) { (count(*losses)) } }
                                td { (layout::when(last)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "Overview", "/", Some(&range), body).into_response()
}

/// A ranked list: the key (linked) and its count, with a bar of its share.
fn top_list(rows: &Rows, key: &str, link: impl Fn(&str) -> String) -> Markup {
    let max = rows.rows.iter().filter_map(|r| rows.cell(r, "Changes").as_i64()).max().unwrap_or(1).max(1);
    html! {
        @if rows.rows.is_empty() { p.muted { "No changes in this range." } }
        ol.top {
            @for r in &rows.rows {
                @let name = data::text(rows.cell(r, key));
                @let n = rows.cell(r, "Changes").as_i64().unwrap_or(0);
                li {
                    a href=(link(&name)) { (name) }
                    span.bar { span.fill style=(format!("width:{}%", n * 100 / max)) {} }
                    span.num { (count(n)) }
                }
            }
        }
    }
}

/// The stacked chart of changes per bin and `by` value, drawn by `console.js` from its data;
/// a table of the same numbers follows for readers without JavaScript.
pub fn timeline_chart(series: &Rows, by: &str, range: &TimeRange, id: &str) -> Markup {
    let (_, bin_secs) = bin_for(range.hours());
    let start = range.start_us / 1_000_000 / bin_secs * bin_secs;
    let bins = ((range.end_us / 1_000_000 - start) / bin_secs + 1).clamp(1, 2000) as usize;
    let xs: Vec<i64> = (0..bins as i64).map(|i| start + i * bin_secs).collect();
    let mut groups: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for r in &series.rows {
        let Some(t) = data::micros(series.cell(r, "TimeGenerated")) else { continue };
        let i = ((t / 1_000_000 - start) / bin_secs) as usize;
        let label = data::text(series.cell(r, by));
        let values = groups.entry(label).or_insert_with(|| vec![0; bins]);
        if let Some(v) = values.get_mut(i) {
            *v += series.cell(r, "Count").as_i64().unwrap_or(0);
        }
    }
    let data = json!({
        "kind": "stacked",
        "x": xs,
        "series": groups.iter().map(|(k, v)| json!({"label": k, "values": v})).collect::<Vec<_>>(),
    });
    let totals: Vec<(String, i64)> = groups.iter().map(|(k, v)| (k.clone(), v.iter().sum())).collect();
    html! {
        div.chart data-chart=(id) {}
        (layout::chart_data(id, &data))
        @if totals.is_empty() { p.muted { "No changes in this range." } }
        @else {
            p.legend {
                @for (k, n) in &totals {
                    span.key { (if k.is_empty() { "(none)" } else { k }) ": " a href=(legend_link(by, k, range)) { (count(*n)) } } " "
                }
            }
        }
    }
}

fn legend_link(by: &str, value: &str, range: &TimeRange) -> String {
    let field = if by == "ChangeCategory" { "category" } else { "type" };
    format!("/changes?{}&{field}={}", range.query(), layout::url_encode(value))
}
