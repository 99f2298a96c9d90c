//! `/machines`: every computer that sent a heartbeat in the range, with its state, OS, agent
//! version, address and changes by type; sortable and filterable by name.
//! `/machines/{computer}`: one machine's changes timeline, its monitored files (the latest
//! `ConfigurationData` inventory) and its alerts.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use fimlake_fleet::health::{Flag, LastHeartbeat, Machine};
use fimlake_fleet::keys::KeyState;
use maud::html;
use serde::Deserialize;

use super::{now_us, query_failed, range_of};
use crate::UiState;
use crate::data::{self, quote};
use crate::layout::{self, count, segment};
use crate::range::RangeParams;
use crate::session::Viewer;

/// Machines listed on one page at most (the list says when there are more).
const MAX_MACHINES: usize = 1000;
/// Files of one machine's inventory listed at most.
const MAX_FILES: usize = 500;

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(flatten)]
    range: RangeParams,
    /// Part of the computer's name.
    #[serde(default)]
    name: Option<String>,
    /// `silent` or `healthy`.
    #[serde(default)]
    state: Option<String>,
    /// `name` (default), `last`, `changes`.
    #[serde(default)]
    sort: Option<String>,
}

const SORTS: &[(&str, &str)] = &[("name", "Computer asc"), ("last", "LastHeartbeat desc"), ("changes", "Changes desc")];

pub async fn list(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<ListParams>,
) -> Response {
    let range = match range_of(&viewer, &p.range, "Machines", "/machines") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = now_us();
    let silent_before = data::datetime_literal(now - st.config.silent_after.as_micros() as i64);
    let name_filter = p.name.as_deref().filter(|n| !n.is_empty());
    let text = list_query(&p, name_filter, &silent_before);
    let rows = match data::run(&st, &text, Some((range.start_us, range.end_us)), now).await {
        Ok(r) => r,
        Err(e) => return query_failed(&viewer, "Machines", "/machines", &e),
    };
    let q = range.query();
    let more = rows.rows.len() > MAX_MACHINES;
    let health = fleet_health(&st, &rows, now);
    let keep = |extra: &str| {
        let mut link = format!("/machines?{q}");
        if let Some(n) = name_filter {
            link.push_str(&format!("&name={}", layout::url_encode(n)));
        }
        if let Some(s) = &p.state {
            link.push_str(&format!("&state={}", layout::url_encode(s)));
        }
        link.push_str(extra);
        link
    };
    let body = html! {
        form.filters method="get" action="/machines" {
            @for (k, v) in range_fields(&range) { input type="hidden" name=(k) value=(v); }
            label { "Name contains " input type="search" name="name" value=[name_filter]; }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    option value="healthy" selected[p.state.as_deref() == Some("healthy")] { "healthy" }
                    option value="silent" selected[p.state.as_deref() == Some("silent")] { "silent" }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (count(rows.rows.len().min(MAX_MACHINES) as i64)) " machines"
            @if more { " (the first " (MAX_MACHINES) "; narrow the filter)" } }
        div.scroll {
            table.data #machines {
                thead { tr {
                    th { a href=(keep("&sort=name")) { "Computer" } }
                    th { "State" }
                    th { a href=(keep("&sort=last")) { "Last heartbeat" } }
                    th { "OS" } th { "Agent" } th { "Configuration" } th { "Key" } th { "IP" }
                    th { a href=(keep("&sort=changes")) { "Changes" } }
                    th { "Files" } th { "Software" } th { "Daemons" }
                } }
                tbody {
                    @for r in rows.rows.iter().take(MAX_MACHINES) {
                        @let computer = data::text(rows.cell(r, "Computer"));
                        @let state = data::text(rows.cell(r, "State"));
                        tr {
                            td { a href=(format!("/machines/{}?{q}", segment(&computer))) { (computer) } }
                            td { span class=(format!("badge {state}")) { (state) } }
                            td { (layout::when(rows.cell(r, "LastHeartbeat"))) }
                            td { (data::text(rows.cell(r, "OSName"))) " " (data::text(rows.cell(r, "OSMajorVersion")))
                                 @if !data::text(rows.cell(r, "OSMinorVersion")).is_empty() { "." (data::text(rows.cell(r, "OSMinorVersion"))) } }
                            @let machine = health.get(&computer);
                            @let flagged = |flag| machine.is_some_and(|m| m.flags.contains(&flag));
                            td { (data::text(rows.cell(r, "Version")))
                                 @if flagged(Flag::AgentOutdated) { " " span.badge.outdated title="older than the newest agent seen" { "outdated" } } }
                            td { (configuration(machine))
                                 @if flagged(Flag::ConfigurationBehind) { " " span.badge.behind title="its group has a newer configuration" { "behind" } } }
                            td { (machine.and_then(|m| m.key_state).map_or("-", |s| if s == KeyState::Active { "active" } else { "revoked" })) }
                            td { (data::text(rows.cell(r, "ComputerIP"))) }
                            td.num { a href=(format!("/changes?{q}&computer={}", layout::url_encode(&computer))) { (data::text(rows.cell(r, "Changes"))) } }
                            td.num { (data::text(rows.cell(r, "Files"))) }
                            td.num { (data::text(rows.cell(r, "Software"))) }
                            td.num { (data::text(rows.cell(r, "Daemons"))) }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "Machines", "/machines", Some(&range), body).into_response()
}

/// What the fleet knows of the listed machines (their keys, their groups' current
/// configuration), by computer; nothing when the console runs without the fleet.
fn fleet_health(st: &UiState, rows: &data::Rows, now_us: i64) -> HashMap<String, Machine> {
    let Some(fleet) = &st.fleet else { return HashMap::new() };
    let heartbeats = rows
        .rows
        .iter()
        .map(|r| {
            let text = |name| Some(data::text(rows.cell(r, name))).filter(|t| !t.is_empty());
            LastHeartbeat {
                computer: data::text(rows.cell(r, "Computer")),
                at: text("LastHeartbeat").and_then(|t| t.parse().ok()),
                agent_version: text("Version"),
                group: text("ConfigurationGroup"),
                configuration_version: rows.cell(r, "ConfigurationVersion").as_i64(),
            }
        })
        .collect();
    let now = chrono::DateTime::from_timestamp_micros(now_us).unwrap_or_default();
    let machines = fleet.machines(heartbeats, now, st.config.silent_after);
    machines.into_iter().map(|m| (m.computer.clone(), m)).collect()
}

/// "group v3", or "-" for an agent on its own file.
fn configuration(machine: Option<&Machine>) -> String {
    match machine.and_then(|m| m.group.as_deref().zip(m.configuration_version)) {
        Some((group, version)) => format!("{group} v{version}"),
        None => "-".into(),
    }
}

/// The machines query: the latest heartbeat of each computer, its state, and its changes by type.
fn list_query(p: &ListParams, name_filter: Option<&str>, silent_before: &str) -> String {
    let mut text = String::from(
        "Heartbeat | summarize arg_max(TimeGenerated, OSName, OSMajorVersion, OSMinorVersion, Version, ComputerIP, \
         ConfigurationGroup, ConfigurationVersion) by Computer",
    );
    if let Some(n) = name_filter {
        text.push_str(&format!(" | where Computer contains {}", quote(n)));
    }
    text.push_str(&format!(
        " | extend LastHeartbeat = TimeGenerated, State = iff(TimeGenerated < {silent_before}, \"silent\", \"healthy\")"
    ));
    if let Some(s @ ("silent" | "healthy")) = p.state.as_deref() {
        text.push_str(&format!(" | where State == \"{s}\""));
    }
    text.push_str(
        " | join kind=leftouter (ConfigurationChange | summarize Changes = count(), \
         Files = countif(ConfigChangeType == \"Files\"), Software = countif(ConfigChangeType == \"Software\"), \
         Daemons = countif(ConfigChangeType == \"Daemons\") by Computer) on Computer",
    );
    let sort = SORTS.iter().find(|(k, _)| Some(*k) == p.sort.as_deref()).unwrap_or(&SORTS[0]);
    text.push_str(&format!(
        " | project Computer, State, LastHeartbeat, OSName, OSMajorVersion, OSMinorVersion, Version, ComputerIP, \
         ConfigurationGroup, ConfigurationVersion, \
         Changes = coalesce(Changes, 0), Files = coalesce(Files, 0), Software = coalesce(Software, 0), \
         Daemons = coalesce(Daemons, 0) | sort by {} | take {}",
        sort.1,
        MAX_MACHINES + 1
    ));
    text
}

/// The range as hidden form fields, so a filter form keeps it.
pub fn range_fields(range: &crate::range::TimeRange) -> Vec<(&'static str, String)> {
    let mut out = vec![("range", range.name.clone())];
    if range.name == "custom" {
        out.push(("from", crate::range::local(range.start_us)));
        out.push(("to", crate::range::local(range.end_us)));
    }
    out
}

pub async fn page(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(computer): Path<String>,
    Query(p): Query<RangeParams>,
) -> Response {
    let title = format!("Machine {computer}");
    let range = match range_of(&viewer, &p, &title, "/machines") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let now = now_us();
    let r = Some((range.start_us, range.end_us));
    let c = quote(&computer);
    let (bin, _) = super::overview::bin_for(range.hours());
    let timeline = format!(
        "ConfigurationChange | where Computer == {c} | summarize Count = count() by bin(TimeGenerated, {bin}), ConfigChangeType"
    );
    let recent = format!(
        "ConfigurationChange | where Computer == {c} | project TimeGenerated, _ItemId, ConfigChangeType, ChangeCategory, \
         FileSystemPath, SoftwareName, SvcName, FieldsChanged | sort by TimeGenerated desc | take 50"
    );
    // The inventory is the latest state of each file, whenever it was reported.
    let files = format!(
        "ConfigurationData | where Computer == {c} and ConfigDataType == \"Files\" \
         | summarize arg_max(TimeGenerated, Size, FileContentChecksum, DateModified, AdditionalFields) by FileSystemPath \
         | extend Owner = tostring(AdditionalFields.Owner), Mode = tostring(AdditionalFields.Mode), \
         Group = tostring(AdditionalFields.Group) \
         | project FileSystemPath, Size, FileContentChecksum, Owner, Group, Mode, DateModified, TimeGenerated \
         | sort by FileSystemPath asc | take {}",
        MAX_FILES + 1
    );
    let (timeline, recent, files) = futures::join!(
        data::run(&st, &timeline, r, now),
        data::run(&st, &recent, r, now),
        data::run(&st, &files, None, now),
    );
    let (timeline, recent, files) = match (timeline, recent, files) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return query_failed(&viewer, &title, "/machines", &e),
    };
    let alerts: Vec<_> =
        st.alerting.alert_list().await.into_iter().filter(|a| super::alerts::concerns(a, &computer)).collect();
    let q = range.query();
    let body = html! {
        p { a href=(format!("/changes?{q}&computer={}", layout::url_encode(&computer))) { "All changes of this machine" }
            " · " a href=(format!("/hunt?q={}", layout::url_encode(&format!("ConfigurationChange\n| where Computer == {c}\n| sort by TimeGenerated desc")))) { "Open in hunting" } }
        section.panel {
            h2 { "Changes over time" }
            (super::overview::timeline_chart(&timeline, "ConfigChangeType", &range, "machine-chart"))
        }
        section.panel {
            h2 { "Latest changes" }
            (super::changes::change_table(&recent, &q))
        }
        section.panel {
            h2 { "Monitored files" }
            @if files.rows.is_empty() { p.muted { "No inventory (ConfigurationData) from this machine." } }
            @else {
                @if files.rows.len() > MAX_FILES { p.muted { "The first " (MAX_FILES) " files by path." } }
                div.scroll { table.data #inventory {
                    thead { tr { th { "Path" } th { "Size" } th { "SHA-256" } th { "Owner" } th { "Group" } th { "Mode" } th { "Modified" } th { "Reported" } } }
                    tbody { @for r in files.rows.iter().take(MAX_FILES) { tr {
                        td.path { (data::text(files.cell(r, "FileSystemPath"))) }
                        td.num { (data::text(files.cell(r, "Size"))) }
                        td.hash { (data::text(files.cell(r, "FileContentChecksum"))) }
                        td { (data::text(files.cell(r, "Owner"))) }
                        td { (data::text(files.cell(r, "Group"))) }
                        td { (data::text(files.cell(r, "Mode"))) }
                        td { (layout::when(files.cell(r, "DateModified"))) }
                        td { (layout::when(files.cell(r, "TimeGenerated"))) }
                    } } }
                } }
            }
        }
        section.panel {
            h2 { "Alerts" }
            (super::alerts::alert_table(&alerts))
        }
    };
    layout::page(&viewer, &title, "/machines", Some(&range), body).into_response()
}
