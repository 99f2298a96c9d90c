//! `GET /v1/machines`: the fleet's health ([`fimlake_fleet::health`]), from the last
//! `Heartbeat` of each computer over the past 7 days.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use fimlake_fleet::Fleet;
use fimlake_fleet::health::LastHeartbeat;
use fimlake_query::QueryEngine;
use serde_json::{Value, json};

/// How far back heartbeats are looked for.
const LOOKBACK: &str = "7d";
/// A machine whose last heartbeat is older than this is `silent`.
const SILENT_AFTER: Duration = Duration::from_secs(10 * 60);

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
    let rows = match state.engine.run(&kql, None, Duration::from_secs(60)).await {
        Ok(result) => fimlake_query::encode::to_json(&result, 1_000_000)["tables"][0]["rows"].clone(),
        Err(e) => {
            let body = json!({"error": {"code": "QueryFailed", "message": format!("reading Heartbeat: {e}")}});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    let heartbeats = rows.as_array().into_iter().flatten().map(last_heartbeat).collect();
    let machines = state.fleet.machines(heartbeats, Utc::now(), SILENT_AFTER);
    Json(json!({ "machines": machines })).into_response()
}

/// A row of Computer, TimeGenerated, Version, ConfigurationGroup, ConfigurationVersion.
fn last_heartbeat(row: &Value) -> LastHeartbeat {
    let text = |i: usize| row[i].as_str().filter(|v| !v.is_empty()).map(str::to_string);
    LastHeartbeat {
        computer: row[0].as_str().unwrap_or_default().to_string(),
        at: row[1].as_str().and_then(|t| t.parse().ok()),
        agent_version: text(2),
        group: text(3),
        configuration_version: row[4].as_i64(),
    }
}
