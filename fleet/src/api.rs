//! The HTTP API over the fleet: keys (`/v1/keys`), enrollment tokens (`/v1/enroll-tokens`),
//! re-enrollment allowances (`/v1/machines/{computer}/reenrollment`), all for admin keys (the
//! server's key check enforces it), and `/v1/enroll`, which takes an enrollment token instead
//! of a key and is rate-limited per client address. Group configurations: admins set and read
//! them (`/v1/agent-config/{group}`), agents fetch their own (`/v1/agent-config`, ingest keys).
//!
//! Answers carry an [`AuditNote`] extension: what the server's audit log records of the call.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::enroll::{EnrollError, NewToken};
use crate::groups::DEFAULT_GROUP;
use crate::keys::NewKey;
use crate::{Fleet, FleetError};

/// The name of the key a call was made with, put on the request by the server's key check:
/// `/v1/agent-config` answers the configuration of that key's group.
#[derive(Debug, Clone)]
pub struct CallerKey(pub String);

/// What the audit log records of a call: who (when not a key) and what came of it.
#[derive(Debug, Clone)]
pub struct AuditNote {
    /// For enrollment: `enrollment token <id>` (the caller presents no key).
    pub principal: Option<String>,
    pub detail: String,
}

type Limiter = governor::DefaultKeyedRateLimiter<IpAddr>;

#[derive(Clone)]
struct ApiState {
    fleet: Arc<Fleet>,
    enrollments: Arc<Limiter>,
}

/// The routes; at most `enrollments_per_minute` enrollment attempts per client address.
pub fn router(fleet: Arc<Fleet>, enrollments_per_minute: NonZeroU32) -> Router {
    let enrollments = Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(enrollments_per_minute)));
    Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{name}", delete(revoke_key))
        .route("/v1/keys/{name}/rotate", post(rotate_key))
        .route("/v1/machines/{computer}/reenrollment", post(allow_reenrollment))
        .route("/v1/enroll-tokens", get(list_tokens).post(create_token))
        .route("/v1/enroll-tokens/{id}", delete(revoke_token))
        .route("/v1/enroll", post(enroll))
        .route("/v1/agent-config", get(own_agent_config))
        .route("/v1/agent-config/{group}", get(agent_config).put(set_agent_config))
        .with_state(ApiState { fleet, enrollments })
}

/// Azure's error shape, with the note for the audit log.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    noted(status, json!({"error": {"code": code, "message": message}}), message.to_string())
}

fn fleet_error(e: FleetError) -> Response {
    match &e {
        FleetError::Invalid(m) => error(StatusCode::BAD_REQUEST, "BadArgumentError", m),
        FleetError::InvalidSettings { problems, .. } => {
            let message = e.to_string();
            let details: Vec<_> = problems.iter().map(|p| json!({"code": "InvalidSetting", "message": p})).collect();
            let body = json!({"error": {"code": "InvalidSettings", "message": message, "details": details}});
            noted(StatusCode::BAD_REQUEST, body, message)
        }
        FleetError::NotFound(m) => error(StatusCode::NOT_FOUND, "NotFound", m),
        FleetError::Conflict(m) => error(StatusCode::CONFLICT, "Conflict", m),
        FleetError::Io { .. } | FleetError::Corrupt { .. } => {
            tracing::error!(error = %e, "writing the fleet state");
            error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "the fleet state could not be written")
        }
    }
}

fn bad_body(rejection: JsonRejection) -> Response {
    error(StatusCode::BAD_REQUEST, "BadArgumentError", &format!("the request body: {}", rejection.body_text()))
}

/// An answer (or a refusal) with its audit note.
fn noted(status: StatusCode, body: serde_json::Value, detail: String) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(AuditNote { principal: None, detail });
    response
}

/// The answer to a change: `status` and the result with the audit note `detail` makes of it,
/// or the error.
fn answer<T: Serialize>(
    result: Result<T, FleetError>,
    status: StatusCode,
    detail: impl FnOnce(&T) -> String,
) -> Response {
    match result {
        Ok(value) => {
            let detail = detail(&value);
            noted(status, serde_json::to_value(value).expect("serialises"), detail)
        }
        Err(e) => fleet_error(e),
    }
}

async fn list_keys(State(api): State<ApiState>) -> Response {
    Json(json!({"keys": api.fleet.list_keys()})).into_response()
}

async fn create_key(State(api): State<ApiState>, body: Result<Json<NewKey>, JsonRejection>) -> Response {
    match body {
        Ok(Json(new)) => answer(api.fleet.create_key(new), StatusCode::CREATED, |created| {
            format!("created key '{}' ({:?})", created.view.name, created.view.role)
        }),
        Err(rejection) => bad_body(rejection),
    }
}

async fn revoke_key(State(api): State<ApiState>, Path(name): Path<String>) -> Response {
    answer(api.fleet.revoke_key(&name), StatusCode::OK, |_| format!("revoked key '{name}'"))
}

async fn rotate_key(State(api): State<ApiState>, Path(name): Path<String>) -> Response {
    answer(api.fleet.rotate_key(&name), StatusCode::OK, |_| format!("rotated key '{name}'"))
}

async fn allow_reenrollment(State(api): State<ApiState>, Path(computer): Path<String>) -> Response {
    let result =
        api.fleet.allow_reenrollment(&computer).map(|()| json!({"computer": computer, "reenrollment": "allowed"}));
    answer(result, StatusCode::OK, |_| format!("allowed the re-enrollment of '{computer}'"))
}

async fn list_tokens(State(api): State<ApiState>) -> Response {
    Json(json!({"tokens": api.fleet.list_tokens()})).into_response()
}

async fn create_token(State(api): State<ApiState>, body: Result<Json<NewToken>, JsonRejection>) -> Response {
    match body {
        Ok(Json(new)) => answer(api.fleet.create_token(new), StatusCode::CREATED, |created| {
            format!("created enrollment token {} for group '{}'", created.view.id, created.view.group)
        }),
        Err(rejection) => bad_body(rejection),
    }
}

async fn revoke_token(State(api): State<ApiState>, Path(id): Path<String>) -> Response {
    answer(api.fleet.revoke_token(&id), StatusCode::OK, |_| format!("revoked enrollment token {id}"))
}

/// An agent's own group configuration; `304` when its `If-None-Match` names the current version,
/// `204` when its group has none (the agent runs on its own file: not an error).
async fn own_agent_config(
    State(api): State<ApiState>,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
) -> Response {
    let group = caller.map_or_else(|| DEFAULT_GROUP.to_string(), |Extension(key)| api.fleet.group_of_key(&key.0));
    let Some(config) = api.fleet.group_config(&group) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let etag = config.etag();
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut response = if matches { StatusCode::NOT_MODIFIED.into_response() } else { Json(config).into_response() };
    response.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).expect("an etag is ASCII"));
    response
}

async fn agent_config(State(api): State<ApiState>, Path(group): Path<String>) -> Response {
    match api.fleet.group_config(&group) {
        Some(config) => Json(config).into_response(),
        None => error(StatusCode::NOT_FOUND, "NotFound", &format!("group '{group}' has no central configuration")),
    }
}

/// Sets a group's configuration: the body is the settings' TOML.
async fn set_agent_config(State(api): State<ApiState>, Path(group): Path<String>, settings: String) -> Response {
    answer(api.fleet.set_group_config(&group, &settings), StatusCode::OK, |config| {
        format!("set the configuration of group '{group}' (version {}):\n{settings}", config.version)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    token: String,
    computer: String,
}

async fn enroll(
    State(api): State<ApiState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Response {
    if api.enrollments.check_key(&client.ip()).is_err() {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("too many enrollment attempts from {}; retry in a minute", client.ip()),
        );
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
        return response;
    }
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_body(rejection),
    };
    let principal = api.fleet.token_id(&request.token).map(|id| format!("enrollment token {id}"));
    let mut response = match api.fleet.enroll(&request.token, &request.computer) {
        Ok(enrolled) => {
            let detail = format!(
                "enrolled computer '{}' in group '{}' (key '{}')",
                enrolled.computer, enrolled.group, enrolled.key_name
            );
            noted(StatusCode::CREATED, serde_json::to_value(enrolled).expect("serialises"), detail)
        }
        Err(e) => enroll_error(e, &request.computer),
    };
    if let Some(note) = response.extensions_mut().get_mut::<AuditNote>() {
        note.principal = Some(principal.unwrap_or_else(|| "unknown enrollment token".into()));
    }
    response
}

fn enroll_error(e: EnrollError, computer: &str) -> Response {
    let message = format!("enrolling '{computer}': {e}");
    match e {
        EnrollError::UnknownToken => error(StatusCode::UNAUTHORIZED, "InvalidEnrollmentToken", &message),
        EnrollError::Revoked(_) | EnrollError::Expired { .. } | EnrollError::UsedUp { .. } => {
            error(StatusCode::FORBIDDEN, "EnrollmentTokenRefused", &message)
        }
        EnrollError::AlreadyEnrolled { .. } => error(StatusCode::CONFLICT, "AlreadyEnrolled", &message),
        EnrollError::Fleet(e) => fleet_error(e),
    }
}
