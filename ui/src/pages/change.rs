//! `/changes/{item}`: one change. Every field before and after, side by side (differences
//! marked); the content diff when the agent uploaded the file's text (`Previous`/`Current`);
//! the file's history on this machine and how many other machines have the same checksum;
//! links to hunting and to a new alert rule prefilled from this change.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{now_us, query_failed};
use crate::UiState;
use crate::data::{self, Rows, quote};
use crate::layout::{self, segment};
use crate::session::Viewer;

/// Columns shown before/after: (label, current column, previous column).
const PAIRS: &[(&str, &str, &str)] = &[
    ("Size", "Size", "PreviousSize"),
    ("Checksum (SHA-256)", "FileContentChecksum", "PreviousFileContentChecksum"),
    ("Modified", "DateModified", "PreviousDateModified"),
    ("Created", "DateCreated", "PreviousDateCreated"),
    ("ACLs", "Acls", "PreviousAcls"),
    ("Attributes", "Attributes", "PreviousAttributes"),
    ("Daemon state", "SvcState", "SvcPreviousState"),
    ("Daemon startup", "SvcStartupType", "SvcPreviousStartupType"),
    ("Daemon path", "SvcPath", "SvcPreviousPath"),
    ("Daemon account", "SvcAccount", "SvcPreviousAccount"),
    ("Daemon controller", "SvcController", "SvcPreviousController"),
    ("Daemon runlevels", "SvcRunlevels", "SvcPreviousRunlevels"),
    ("Registry value", "ValueData", "PreviousValueData"),
];

/// History rows of one file listed at most.
const HISTORY_ROWS: usize = 100;
/// Lines of a content diff shown at most.
const DIFF_LINES: usize = 2000;

#[derive(Deserialize)]
pub struct Params {
    /// The change's `TimeGenerated`, so that only the files of that instant are read.
    #[serde(default)]
    t: Option<String>,
}

pub async fn page(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(item): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let title = "Change";
    let at = p.t.as_deref().and_then(|t| data::micros(&Value::String(t.to_string())));
    let range = at.map(|t| (t, t + 1));
    let text = format!("ConfigurationChange | where _ItemId == {} | take 1", quote(&item));
    let rows = match data::run(&st, &text, range, now_us()).await {
        Ok(r) => r,
        Err(e) => return query_failed(&viewer, title, "/changes", &e),
    };
    let Some(row) = rows.rows.first() else {
        return super::message(&viewer, StatusCode::NOT_FOUND, title, &format!("No change has the id '{item}'."));
    };
    let get = |c: &str| data::text(rows.cell(row, c));
    let (computer, path) = (get("Computer"), get("FileSystemPath"));
    let checksum = get("FileContentChecksum");
    let elsewhere = same_checksum(&st, &computer, &checksum).await;
    let extra = additional_fields(rows.cell(row, "AdditionalFields"));
    let hunt = format!("ConfigurationChange\n| where _ItemId == {}", quote(&item));
    let hunt_range = at
        .map(|t| {
            format!(
                "&range=custom&from={}&to={}",
                crate::range::local(t - 60_000_000),
                crate::range::local(t + 120_000_000)
            )
        })
        .unwrap_or_default();
    let rule_query = format!(
        "ConfigurationChange\n| where Computer == {} and FileSystemPath == {}\n| project TimeGenerated, Computer, FileSystemPath, ChangeCategory, FieldsChanged",
        quote(&computer),
        quote(&path)
    );
    let is_files = get("ConfigChangeType") == "Files";
    let body = html! {
        dl.facts {
            dt { "Time (UTC)" } dd { (layout::when(rows.cell(row, "TimeGenerated"))) }
            dt { "Computer" } dd { a href=(format!("/machines/{}", segment(&computer))) { (computer) } }
            dt { "Type" } dd { (get("ConfigChangeType")) }
            dt { "Category" } dd { span class=(format!("badge {}", get("ChangeCategory").to_lowercase())) { (get("ChangeCategory")) } }
            dt { "Item" } dd.path data-testid="change-path" { (super::changes::item_name(&rows, row)) }
            dt { "Fields changed" } dd { (get("FieldsChanged")) }
        }
        p.actions {
            a.button href=(format!("/hunt?q={}{hunt_range}", layout::url_encode(&hunt))) { "Open in hunting" }
            " "
            a.button href=(format!("/rules/new?query={}&name={}", layout::url_encode(&rule_query), layout::url_encode(&rule_name(&computer, &path)))) { "New alert rule from this" }
        }
        section.panel {
            h2 { "Before and after" }
            (before_after(&rows, row, &extra, !is_files))
        }
        @if is_files && (!get("Previous").is_empty() || !get("Current").is_empty()) {
            section.panel {
                h2 { "Content" }
                (content_diff(&get("Previous"), &get("Current")))
            }
        }
        section.panel {
            h2 { "History of this item on " (computer) }
            @match &elsewhere {
                Ok(Some(n)) => p data-testid="same-checksum" { "The same checksum was seen on " strong { (n) } " other machine" (if *n == 1 { "" } else { "s" }) "." },
                Ok(None) => {},
                Err(e) => (layout::error_box(&e.to_string())),
            }
            (history_placeholder(&item, &computer, &path))
        }
    };
    layout::page(&viewer, title, "/changes", None, body).into_response()
}

fn rule_name(computer: &str, path: &str) -> String {
    let raw = format!("{computer}-{}", path.rsplit('/').next().unwrap_or(path));
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' }).collect();
    cleaned.trim_matches('-').chars().take(60).collect()
}

async fn history(st: &UiState, computer: &str, path: &str) -> Result<Rows, fimlake_query::QueryError> {
    if path.is_empty() {
        return Ok(Rows::default());
    }
    let text = format!(
        "ConfigurationChange | where Computer == {} and FileSystemPath == {} \
         | project TimeGenerated, _ItemId, Computer, ConfigChangeType, ChangeCategory, FileSystemPath, FieldsChanged \
         | sort by TimeGenerated desc | take {HISTORY_ROWS}",
        quote(computer),
        quote(path)
    );
    data::run(st, &text, None, now_us()).await
}

/// The history section: filled by `console.js` from [`history_fragment`] (all the item's
/// changes is a scan of the whole table, so the page does not wait for it); without
/// JavaScript, a link to the same rows in the changes list.
fn history_placeholder(item: &str, computer: &str, path: &str) -> Markup {
    let fragment = format!(
        "/changes/{}/history?computer={}&path={}",
        segment(item),
        layout::url_encode(computer),
        layout::url_encode(path)
    );
    let list =
        format!("/changes?range=30d&computer={}&prefix={}", layout::url_encode(computer), layout::url_encode(path));
    html! {
        div #history data-fragment=(fragment) {
            p.muted { a href=(list) { "Every change of this item on this machine" } }
        }
    }
}

#[derive(Deserialize)]
pub struct HistoryParams {
    computer: String,
    path: String,
}

/// `GET /changes/{item}/history`: the history table alone (an HTML fragment).
pub async fn history_fragment(State(st): State<UiState>, Query(p): Query<HistoryParams>) -> Response {
    match history(&st, &p.computer, &p.path).await {
        Ok(rows) => super::changes::change_table(&rows, "range=30d").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, layout::error_box(&e.to_string())).into_response(),
    }
}

/// How many other machines have a file with `checksum`, by their inventory (`ConfigurationData`).
async fn same_checksum(st: &UiState, computer: &str, checksum: &str) -> Result<Option<i64>, fimlake_query::QueryError> {
    if checksum.is_empty() {
        return Ok(None);
    }
    let text = format!(
        "ConfigurationData | where FileContentChecksum == {} and Computer != {} \
         | summarize Machines = dcount(Computer)",
        quote(checksum),
        quote(computer)
    );
    Ok(Some(data::run(st, &text, None, now_us()).await?.first_number("Machines")))
}

/// `AdditionalFields` (the agent's extra fields: Mode, Owner, Group, LinkTarget...) as a map.
fn additional_fields(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::String(s) => {
            serde_json::from_str(s).ok().and_then(|v: Value| v.as_object().cloned()).unwrap_or_default()
        }
        _ => Map::new(),
    }
}

fn before_after(rows: &Rows, row: &[Value], extra: &Map<String, Value>, with_values: bool) -> Markup {
    let mut lines: Vec<(String, String, String)> = PAIRS
        .iter()
        .map(|(label, cur, prev)| {
            (label.to_string(), data::text(rows.cell(row, prev)), data::text(rows.cell(row, cur)))
        })
        .collect();
    if with_values {
        lines.push(("Value".into(), data::text(rows.cell(row, "Previous")), data::text(rows.cell(row, "Current"))));
    }
    for (k, v) in extra {
        if k.starts_with("Previous") {
            continue;
        }
        let prev = extra.get(&format!("Previous{k}")).map(data::text).unwrap_or_default();
        lines.push((k.clone(), prev, data::text(v)));
    }
    for (k, v) in extra {
        if let Some(base) = k.strip_prefix("Previous")
            && !extra.contains_key(base)
        {
            lines.push((base.to_string(), data::text(v), String::new()));
        }
    }
    lines.retain(|(_, a, b)| !a.is_empty() || !b.is_empty());
    html! {
        table.data.compare data-testid="before-after" {
            thead { tr { th { "Field" } th { "Before" } th { "After" } } }
            tbody {
                @for (label, before, after) in &lines {
                    tr class=[(before != after).then_some("differs")] {
                        th { (label) } td { (before) } td { (after) }
                    }
                }
            }
        }
    }
}

/// A line diff of the uploaded content, as a table of removed, added and kept lines.
fn content_diff(before: &str, after: &str) -> Markup {
    let diff = similar::TextDiff::from_lines(before, after);
    let changes: Vec<_> = diff.iter_all_changes().take(DIFF_LINES).collect();
    html! {
        table.diff data-testid="content-diff" {
            tbody {
                @for c in &changes {
                    @let (class, sign) = match c.tag() {
                        similar::ChangeTag::Delete => ("del", "-"),
                        similar::ChangeTag::Insert => ("ins", "+"),
                        similar::ChangeTag::Equal => ("same", " "),
                    };
                    tr class=(class) {
                        td.ln { (c.old_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                        td.ln { (c.new_index().map(|i| (i + 1).to_string()).unwrap_or_default()) }
                        td.sign { (sign) }
                        td.text { (c.value().trim_end_matches('\n')) }
                    }
                }
            }
        }
        @if changes.len() == DIFF_LINES { p.muted { "The diff is cut at " (DIFF_LINES) " lines." } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_safe() {
        assert_eq!(rule_name("web1", "/etc/ssh/sshd_config"), "web1-sshd-config");
        assert_eq!(rule_name("Web 1", "/x/<b>"), "web-1--b");
    }

    #[test]
    fn diff_marks_lines() {
        let m = content_diff("a\nb\n", "a\nc\n").into_string();
        assert!(m.contains(r#"class="del""#) && m.contains(r#"class="ins""#) && m.contains(">c<"), "{m}");
    }
}
