//! `GET /v1/machines`: the fleet's health, one entry per computer: its last heartbeat, agent
//! version, group and the group configuration it applied (from `Heartbeat`), its key and the key's
//! state (from the fleet). Machines behind their group's configuration, on an agent older than
//! the newest seen, silent for a while, or enrolled but never heard from are flagged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use fimlake_fleet::Fleet;
use fimlake_fleet::keys::KeyState;
use fimlake_query::QueryEngine;
use serde::Serialize;
use serde_json::{Value, json};

/// How far back heartbeats are looked for.
const LOOKBACK: &str = "7d";
/// A machine whose last heartbeat is older than this is `silent`.
const SILENT_AFTER: Duration = Duration::from_secs(10 * 60);

/// What is worth an operator's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// It runs an older version of its group's configuration than the group has.
    ConfigurationBehind,
    /// Its agent is older than the newest agent version seen.
    AgentOutdated,
    /// No heartbeat for 10 minutes.
    Silent,
    /// Enrolled, but no heartbeat within the lookback.
    NeverSeen,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub computer: String,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    /// The group of its key (else the one its heartbeat names).
    pub group: Option<String>,
    /// The group configuration version it applied, and the group's current one.
    pub configuration_version: Option<i64>,
    pub group_version: Option<u64>,
    pub key: Option<String>,
    pub key_state: Option<KeyState>,
    pub flags: Vec<Flag>,
}

#[derive(Clone)]
struct MachinesState {
    engine: Arc<QueryEngine>,
    fleet: Arc<Fleet>,
}

pub fn router(engine: Arc<QueryEngine>, fleet: Arc<Fleet>) -> Router {
    Router::new().route("/v1/machines", get(list)).with_state(MachinesState { engine, fleet })
}

async fn list(State(state): State<MachinesState>) -> Response {
    let kql = format!(
        "Heartbeat | where TimeGenerated > ago({LOOKBACK}) | summarize arg_max(TimeGenerated, Version, \
         ConfigurationGroup, ConfigurationVersion) by Computer"
    );
    let heartbeats = match state.engine.run(&kql, None, Duration::from_secs(60)).await {
        Ok(result) => fimlake_query::encode::to_json(&result, 1_000_000)["tables"][0]["rows"].clone(),
        Err(e) => {
            let body = json!({"error": {"code": "QueryFailed", "message": format!("reading Heartbeat: {e}")}});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let machines = machines(heartbeats.as_array().map(Vec::as_slice).unwrap_or_default(), &state.fleet, Utc::now());
    Json(json!({ "machines": machines })).into_response()
}

/// The machines of `heartbeats` (rows of Computer, TimeGenerated, Version, ConfigurationGroup,
/// ConfigurationVersion) and of the fleet's computer-bound keys, flagged as of `now`.
fn machines(heartbeats: &[Value], fleet: &Fleet, now: DateTime<Utc>) -> Vec<Machine> {
    let mut by_computer: BTreeMap<String, Machine> = BTreeMap::new();
    for row in heartbeats {
        let computer = row[0].as_str().unwrap_or_default().to_string();
        let machine = by_computer.entry(computer.clone()).or_insert_with(|| Machine { computer, ..Machine::default() });
        machine.last_heartbeat = row[1].as_str().and_then(|t| t.parse().ok());
        machine.agent_version = row[2].as_str().filter(|v| !v.is_empty()).map(str::to_string);
        machine.group = row[3].as_str().filter(|g| !g.is_empty()).map(str::to_string);
        machine.configuration_version = row[4].as_i64();
    }
    for key in fleet.list_keys().into_iter().filter(|k| k.computer.is_some()) {
        let computer = key.computer.clone().expect("filtered");
        let machine = by_computer.entry(computer.clone()).or_insert_with(|| Machine { computer, ..Machine::default() });
        // The active key wins over revoked ones of the same computer.
        if machine.key_state != Some(KeyState::Active) {
            machine.key = Some(key.name.clone());
            machine.key_state = Some(key.state);
            machine.group = key.group.clone().or(machine.group.take());
        }
    }
    let group_versions: BTreeMap<String, u64> =
        fleet.group_configs().into_iter().map(|g| (g.group, g.version)).collect();
    let newest = by_computer.values().filter_map(|m| m.agent_version.as_deref()).max_by(|a, b| compare_versions(a, b));
    let newest = newest.map(str::to_string);
    let mut machines: Vec<Machine> = by_computer.into_values().collect();
    for machine in &mut machines {
        machine.group_version = machine.group.as_ref().and_then(|g| group_versions.get(g).copied());
        machine.flags = flags(machine, newest.as_deref(), now);
    }
    machines
}

fn flags(machine: &Machine, newest_agent: Option<&str>, now: DateTime<Utc>) -> Vec<Flag> {
    let mut flags = Vec::new();
    if let Some(current) = machine.group_version
        && machine.configuration_version.is_none_or(|applied| applied < current as i64)
        && machine.last_heartbeat.is_some()
    {
        flags.push(Flag::ConfigurationBehind);
    }
    if let (Some(version), Some(newest)) = (machine.agent_version.as_deref(), newest_agent)
        && compare_versions(version, newest).is_lt()
    {
        flags.push(Flag::AgentOutdated);
    }
    match machine.last_heartbeat {
        None => flags.push(Flag::NeverSeen),
        Some(at) if (now - at).to_std().unwrap_or_default() > SILENT_AFTER => flags.push(Flag::Silent),
        Some(_) => {}
    }
    flags
}

/// Dotted versions compared part by part, numerically where both parts are numbers
/// (`0.10.0` > `0.9.2`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| v.split(['.', '-', '+']).map(str::to_string).collect::<Vec<_>>();
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert!(compare_versions("0.10.0", "0.9.2").is_gt());
        assert!(compare_versions("0.1.0", "0.1.0").is_eq());
        assert!(compare_versions("1.2", "1.2.1").is_lt());
    }

    #[test]
    fn behind_outdated_silent_and_never_seen_machines_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(dir.path(), Vec::new(), vec!["Heartbeat".into()]).unwrap();
        fleet.set_group_config("web", "realtime = true\n").unwrap();
        fleet.set_group_config("web", "realtime = false\n").unwrap();
        let token = fleet
            .create_token(fimlake_fleet::enroll::NewToken { group: "web".into(), expires: None, max_uses: None })
            .unwrap();
        for computer in ["web-1", "web-2", "web-3"] {
            fleet.enroll(&token.token, computer).unwrap();
        }
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let heartbeats = [
            json!(["web-1", "2026-12-01T11:59:30Z", "0.2.0", "web", 2]),
            json!(["web-2", "2026-12-01T11:59:30Z", "0.1.0", "web", 1]),
            json!(["db-1", "2026-12-01T11:00:00Z", "0.2.0", "", null]),
        ];
        let got: Vec<(String, Option<String>, Vec<Flag>)> = machines(&heartbeats, &fleet, now)
            .into_iter()
            .map(|m| (m.computer, m.key_state.map(|s| format!("{s:?}")), m.flags))
            .collect();
        let active = Some("Active".to_string());
        assert_eq!(
            got,
            [
                ("db-1".into(), None, vec![Flag::Silent]),
                ("web-1".into(), active.clone(), vec![]),
                ("web-2".into(), active.clone(), vec![Flag::ConfigurationBehind, Flag::AgentOutdated]),
                ("web-3".into(), active, vec![Flag::NeverSeen]),
            ]
        );
    }
}
