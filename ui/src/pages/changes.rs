//! `/changes`: `ConfigurationChange` rows with filters (time range, computer, path contains or
//! starts with, change type, category, fields changed), newest first, paged by a keyset cursor
//! on (`TimeGenerated`, `_ItemId`): a page deep into the data costs what the first one does.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{now_us, query_failed, range_of};
use crate::UiState;
use crate::data::{self, Rows, quote};
use crate::layout::{self, segment};
use crate::range::{RangeParams, TimeRange};
use crate::session::Viewer;

pub const PAGE_ROWS: usize = 50;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChangeFilter {
    #[serde(flatten)]
    pub range: RangeParams,
    #[serde(default)]
    pub computer: Option<String>,
    /// Part of `FileSystemPath` (case-insensitive).
    #[serde(default)]
    pub path: Option<String>,
    /// The start of `FileSystemPath` (case-sensitive, as paths are).
    #[serde(default)]
    pub prefix: Option<String>,
    /// `ConfigChangeType`: Files, Software, Daemons, AgentCoverage.
    #[serde(default, rename = "type")]
    pub change_type: Option<String>,
    /// `ChangeCategory`: Added, Modified, Removed, CoverageLost.
    #[serde(default)]
    pub category: Option<String>,
    /// A field in `FieldsChanged` (`Size`, `Checksum`, `Mode`...).
    #[serde(default)]
    pub fields: Option<String>,
    /// The keyset cursor: the last row of the previous page, `<TimeGenerated>|<_ItemId>`.
    #[serde(default)]
    pub after: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ChangeFilter {
    /// The filter as KQL over `ConfigurationChange`, without the cursor.
    pub fn kql(&self) -> String {
        let mut q = String::from("ConfigurationChange");
        if let Some(c) = given(&self.computer) {
            q.push_str(&format!("\n| where Computer == {}", quote(c)));
        }
        if let Some(p) = given(&self.path) {
            q.push_str(&format!("\n| where FileSystemPath contains {}", quote(p)));
        }
        if let Some(p) = given(&self.prefix) {
            q.push_str(&format!("\n| where FileSystemPath startswith_cs {}", quote(p)));
        }
        if let Some(t) = given(&self.change_type) {
            q.push_str(&format!("\n| where ConfigChangeType == {}", quote(t)));
        }
        if let Some(c) = given(&self.category) {
            q.push_str(&format!("\n| where ChangeCategory == {}", quote(c)));
        }
        if let Some(f) = given(&self.fields) {
            q.push_str(&format!("\n| where FieldsChanged has {}", quote(f)));
        }
        q
    }

    /// The filter's parameters (not the range or the cursor) for links.
    pub fn query(&self) -> String {
        let pairs = [
            ("computer", &self.computer),
            ("path", &self.path),
            ("prefix", &self.prefix),
            ("type", &self.change_type),
            ("category", &self.category),
            ("fields", &self.fields),
        ];
        pairs.iter().filter_map(|(k, v)| given(v).map(|v| format!("&{k}={}", layout::url_encode(v)))).collect()
    }
}

/// The cursor `<TimeGenerated>|<_ItemId>` as KQL conditions: rows strictly after it in the
/// order (TimeGenerated desc, _ItemId desc). The first condition alone lets the scan skip files.
fn after_cursor(cursor: &str) -> Result<String, String> {
    let (time, id) = cursor.split_once('|').ok_or("the page cursor 'after' is not '<time>|<id>'")?;
    let us = data::micros(&serde_json::Value::String(time.to_string()))
        .ok_or_else(|| format!("the page cursor's time '{time}' is not an ISO 8601 datetime"))?;
    let t = data::datetime_literal(us);
    Ok(format!(
        "\n| where TimeGenerated <= {t}\n| where TimeGenerated < {t} or (TimeGenerated == {t} and _ItemId < {})",
        quote(id)
    ))
}

pub async fn list(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(f): Query<ChangeFilter>,
) -> Response {
    let range = match range_of(&viewer, &f.range, "Changes", "/changes") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut text = f.kql();
    if let Some(cursor) = given(&f.after) {
        match after_cursor(cursor) {
            Ok(c) => text.push_str(&c),
            Err(e) => return super::message(&viewer, axum::http::StatusCode::BAD_REQUEST, "Changes", &e),
        }
    }
    text.push_str(&format!(
        "\n| project TimeGenerated, _ItemId, Computer, ConfigChangeType, ChangeCategory, FileSystemPath, SoftwareName, \
         SvcName, FieldsChanged\n| sort by TimeGenerated desc, _ItemId desc\n| take {}",
        PAGE_ROWS + 1
    ));
    let rows = match data::run(&st, &text, Some((range.start_us, range.end_us)), now_us()).await {
        Ok(r) => r,
        Err(e) => return query_failed(&viewer, "Changes", "/changes", &e),
    };
    let q = format!("{}{}", range.query(), f.query());
    let next = (rows.rows.len() > PAGE_ROWS).then(|| {
        let last = &rows.rows[PAGE_ROWS - 1];
        let cursor =
            format!("{}|{}", data::text(rows.cell(last, "TimeGenerated")), data::text(rows.cell(last, "_ItemId")));
        format!("/changes?{q}&after={}", layout::url_encode(&cursor))
    });
    let shown = Rows { rows: rows.rows.iter().take(PAGE_ROWS).cloned().collect(), ..rows.clone() };
    let body = html! {
        (filter_form(&f, &range))
        (change_table(&shown, &range.query()))
        nav.pager {
            @if given(&f.after).is_some() { a href=(format!("/changes?{q}")) { "« First page" } }
            @if let Some(n) = &next { a rel="next" href=(n) data-testid="next-page" { "Next page »" } }
            a href=(format!("/changes.csv?{q}")) download { "Export CSV (all matching rows)" }
            a href=(format!("/hunt?q={}&{}", layout::url_encode(&f.kql()), range.query())) { "Open in hunting" }
        }
    };
    layout::page(&viewer, "Changes", "/changes", Some(&range), body).into_response()
}

fn filter_form(f: &ChangeFilter, range: &TimeRange) -> Markup {
    let select = |name: &str, current: &Option<String>, options: &[&str]| {
        html! {
            select name=(name) {
                option value="" { "any" }
                @for o in options { option value=(o) selected[given(current) == Some(*o)] { (o) } }
            }
        }
    };
    html! {
        form.filters method="get" action="/changes" {
            @for (k, v) in super::machines::range_fields(range) { input type="hidden" name=(k) value=(v); }
            label { "Computer " input type="search" name="computer" value=[given(&f.computer)]; }
            label { "Path contains " input type="search" name="path" value=[given(&f.path)]; }
            label { "Path starts with " input type="search" name="prefix" value=[given(&f.prefix)]; }
            label { "Type " (select("type", &f.change_type, &["Files", "Software", "Daemons", "AgentCoverage"])) }
            label { "Category " (select("category", &f.category, &["Added", "Modified", "Removed", "CoverageLost"])) }
            label { "Field changed " input type="search" name="fields" value=[given(&f.fields)] placeholder="Checksum"; }
            button type="submit" { "Filter" }
        }
    }
}

/// Change rows with a link to each one's detail.
pub fn change_table(rows: &Rows, range_query: &str) -> Markup {
    html! {
        @if rows.rows.is_empty() { p.muted { "No changes match." } }
        @else {
            div.scroll { table.data.changes {
                thead { tr { th { "Time (UTC)" } th { "Computer" } th { "Type" } th { "Category" } th { "Item" } th { "Fields changed" } } }
                tbody {
                    @for r in &rows.rows {
                        @let id = data::text(rows.cell(r, "_ItemId"));
                        @let time = data::text(rows.cell(r, "TimeGenerated"));
                        @let computer = data::text(rows.cell(r, "Computer"));
                        tr {
                            td { a href=(format!("/changes/{}?t={}", segment(&id), layout::url_encode(&time))) { (layout::when(rows.cell(r, "TimeGenerated"))) } }
                            td { a href=(format!("/machines/{}?{range_query}", segment(&computer))) { (computer) } }
                            td { (data::text(rows.cell(r, "ConfigChangeType"))) }
                            td { span class=(format!("badge {}", data::text(rows.cell(r, "ChangeCategory")).to_lowercase())) { (data::text(rows.cell(r, "ChangeCategory"))) } }
                            td.path { (item_name(rows, r)) }
                            td { (data::text(rows.cell(r, "FieldsChanged"))) }
                        }
                    }
                }
            } }
        }
    }
}

/// What changed: the path of a file, the name of a package or a daemon.
pub fn item_name(rows: &Rows, r: &[serde_json::Value]) -> String {
    ["FileSystemPath", "SoftwareName", "SvcName"]
        .iter()
        .map(|c| data::text(rows.cell(r, c)))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_quoted_kql() {
        let f = ChangeFilter {
            computer: Some("web\"1".into()),
            path: Some("/etc".into()),
            category: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(
            f.kql(),
            "ConfigurationChange\n| where Computer == \"web\\\"1\"\n| where FileSystemPath contains \"/etc\""
        );
        assert_eq!(f.query(), "&computer=web%221&path=%2Fetc");
        fimlake_kql::parse(&f.kql()).expect("the filter parses");
    }

    #[test]
    fn cursor_is_checked() {
        let c = after_cursor("2026-01-01T00:00:00.5Z|abc").unwrap();
        assert!(c.contains("datetime(2026-01-01T00:00:00.5Z)") && c.contains("_ItemId < \"abc\""), "{c}");
        assert!(after_cursor("nonsense").unwrap_err().contains("not '<time>|<id>'"));
        assert!(after_cursor("yesterday|x").unwrap_err().contains("ISO 8601"));
    }
}
