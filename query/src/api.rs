//! The query HTTP API, shaped like the Log Analytics Query API: `POST`/`GET`
//! `/v1/workspaces/{id}/query` (and the same without `/v1`, as azure-monitor-query 1.x sends),
//! body `{"query", "timespan"}`, `Prefer: wait=N`; answers `200 {"tables":[...]}` or an OData
//! error `{"error":{"code","message","innererror"}}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fimlake_kql::ErrorKind;
use serde_json::{Value, json};

use crate::timespan::parse_timespan;
use crate::{QueryEngine, QueryError, encode};

/// Default and longest query time (Log Analytics: 3 and 10 minutes).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(180);
pub const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct QueryState {
    engine: Arc<QueryEngine>,
    workspace_id: String,
}

impl QueryState {
    pub fn new(engine: Arc<QueryEngine>, workspace_id: String) -> Self {
        QueryState { engine, workspace_id }
    }
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/v1/workspaces/{workspace}/query", get(get_query).post(post_query))
        .route("/workspaces/{workspace}/query", get(get_query).post(post_query))
        .route("/v1/workspaces/{workspace}/explain", axum::routing::post(post_explain))
        .route("/v1/workspace", get(workspace))
        .with_state(state)
}

/// The workspace this server answers for, so that clients need not be told its id.
async fn workspace(State(state): State<QueryState>) -> Response {
    Json(json!({ "workspaceId": state.workspace_id })).into_response()
}

/// Response header with the number of rows a query returned (for the server's audit log).
pub const ROWS_HEADER: &str = "x-fimlake-rows";

fn error(status: StatusCode, code: &str, message: &str, inner: Option<Value>) -> Response {
    let mut e = json!({"code": code, "message": message});
    if let Some(i) = inner {
        e["innererror"] = i;
    }
    (status, Json(json!({ "error": e }))).into_response()
}

fn bad_argument(message: String) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "BadArgumentError",
        "The request had some invalid properties",
        Some(json!({"code": "BadArgumentError", "message": message})),
    )
}

async fn post_query(State(st): State<QueryState>, Path(ws): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_argument(format!("the body is not valid JSON: {e}")),
    };
    let Some(query) = v.get("query").and_then(Value::as_str) else {
        return bad_argument("the body has no 'query' string".into());
    };
    let timespan = v.get("timespan").and_then(Value::as_str);
    run(&st, &ws, &headers, query, timespan).await
}

/// fimlake's own: `POST /v1/workspaces/{id}/explain` with the body of a query answers
/// `{"plan": "..."}`, the physical plan (which files each scan reads, the filters pushed into
/// it) without running the query.
async fn post_explain(State(st): State<QueryState>, Path(ws): Path<String>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_argument(format!("the body is not valid JSON: {e}")),
    };
    let Some(query) = v.get("query").and_then(Value::as_str) else {
        return bad_argument("the body has no 'query' string".into());
    };
    if let Some(r) = check_workspace(&st, &ws) {
        return r;
    }
    let range = match v.get("timespan").and_then(Value::as_str) {
        None => None,
        Some(t) => match parse_timespan(t, chrono::Utc::now().timestamp_micros()) {
            Ok(r) => Some(r),
            Err(e) => return bad_argument(e),
        },
    };
    match st.engine.explain(query, range).await {
        Ok(plan) => (StatusCode::OK, Json(json!({ "plan": plan }))).into_response(),
        Err(e) => error_response(e),
    }
}

fn check_workspace(st: &QueryState, ws: &str) -> Option<Response> {
    (ws != st.workspace_id).then(|| {
        error(
            StatusCode::NOT_FOUND,
            "WorkspaceNotFoundError",
            &format!("workspace '{ws}' does not exist; this server's workspace is '{}'", st.workspace_id),
            None,
        )
    })
}

async fn get_query(
    State(st): State<QueryState>,
    Path(ws): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(query) = params.get("query") else {
        return bad_argument("the 'query' parameter is missing".into());
    };
    run(&st, &ws, &headers, query, params.get("timespan").map(String::as_str)).await
}

/// `Prefer: wait=100,include-statistics=true` (possibly empty): the query time limit.
fn wait(headers: &HeaderMap) -> Duration {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix("wait=")?.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)).min(MAX_WAIT))
        .next_back()
        .unwrap_or(DEFAULT_WAIT)
}

/// Whether `Prefer` has `name=true`.
fn prefers(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().split_once('='))
        .any(|(k, v)| k.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case("true"))
}

async fn run(st: &QueryState, ws: &str, headers: &HeaderMap, query: &str, timespan: Option<&str>) -> Response {
    if let Some(r) = check_workspace(st, ws) {
        return r;
    }
    let range = match timespan {
        None => None,
        Some(t) => match parse_timespan(t, chrono::Utc::now().timestamp_micros()) {
            Ok(r) => Some(r),
            Err(e) => return bad_argument(e),
        },
    };
    let timeout = wait(headers);
    match st.engine.run(query, range, timeout).await {
        Ok(result) => {
            let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
            let mut body = encode::to_json(&result, st.engine.max_rows);
            if prefers(headers, "include-render")
                && let Ok(parsed) = fimlake_kql::parse(query)
                && let Some(r) = parsed.render()
            {
                body["render"] = encode::render(r);
            }
            (
                StatusCode::OK,
                [("content-type", "application/json; charset=utf-8".to_string()), (ROWS_HEADER, rows.to_string())],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => error_response(e),
    }
}

/// The OData error of a failed query.
fn error_response(e: QueryError) -> Response {
    match e {
        QueryError::Kql(e) => {
            let code = match e.kind {
                ErrorKind::Syntax => "SyntaxError",
                ErrorKind::Unsupported => "UnsupportedError",
                ErrorKind::Semantic => "SemanticError",
            };
            error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some(json!({
                    "code": code,
                    "message": e.to_string(),
                    "line": e.line,
                    "pos": e.column,
                    "context": e.render(),
                })),
            )
        }
        e @ QueryError::Timeout(_) => error(StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout", &e.to_string(), None),
        e @ QueryError::MemoryLimit { .. } => error(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The query exceeded its resource limits",
            Some(json!({"code": "QueryMemoryLimitExceeded", "message": e.to_string()})),
        ),
        QueryError::Evaluation(message) => error(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The query failed on the values it ran over",
            Some(json!({
                "code": "EvaluationError",
                "message": format!("the query failed while it ran: {message}"),
            })),
        ),
        e @ QueryError::StorageUnavailable(_) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", &e.to_string(), None);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
            response
        }
        e @ QueryError::Execution(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &e.to_string(), None)
        }
    }
}
