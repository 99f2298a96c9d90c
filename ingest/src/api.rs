//! The ingestion HTTP API: the native endpoint, the Azure Logs Ingestion endpoint and the table
//! listing. Every error is `{"error":{"code","message"}}` with an `x-ms-error-code` header, as
//! Azure answers.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fimlake_storage::reuse::{self, ReusedBuffer};
use fimlake_storage::{Storage, StorageError, Table, TableDef};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::admission::{self, Admission, BodyShape};
use crate::decode::{self, DecodeContext, DecodeErrorKind};
use crate::metrics::IngestMetrics;
use crate::sizing::Sizing;

/// Limits of the ingestion API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest body accepted on the wire (compressed or not). Azure's limit is 1 MiB.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression; a body that inflates past it is refused without
    /// being inflated further.
    pub max_decompressed_bytes: usize,
    /// Most records in one request.
    pub max_records: usize,
    /// Requests read and decoded at once.
    pub max_concurrent_requests: usize,
    /// Memory the requests read and decoded at once may hold together: each is counted by its
    /// `Content-Length` (inflated by an estimate when gzipped) before its body is read. The
    /// server derives it from its `memory_limit` unless it is set.
    pub max_decoding_bytes: usize,
    /// How long a request waits, its body unread (TCP holds the sender back): for its turn past
    /// `max_concurrent_requests` or `max_decoding_bytes`, before it gets `429` with
    /// `Retry-After`; for a flush to make room in full write buffers, before it gets `503`.
    #[serde(with = "fimlake_settings::duration")]
    pub queue_timeout: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 20,
            max_records: 100_000,
            max_concurrent_requests: 16,
            max_decoding_bytes: 96 << 20,
            queue_timeout: std::time::Duration::from_secs(2),
        }
    }
}

/// Azure Logs Ingestion API versions this server answers.
pub const API_VERSIONS: &[&str] = &["2023-01-01", "2021-11-01-preview"];

#[derive(Clone)]
pub struct IngestState {
    storage: Arc<Storage>,
    config: IngestConfig,
    metrics: IngestMetrics,
    admission: Arc<Admission>,
    tenant_id: String,
    /// Per table, how large its last body decoded ([`Sizing`]).
    sizing: Arc<HashMap<String, Arc<Sizing>>>,
}

impl IngestState {
    pub fn new(storage: Arc<Storage>, config: IngestConfig, metrics: IngestMetrics, tenant_id: String) -> Self {
        let admission = Arc::new(Admission::new(config.max_concurrent_requests, config.max_decoding_bytes));
        let sizing = storage
            .registry()
            .tables()
            .iter()
            .map(|def| (def.name().to_string(), Arc::new(Sizing::new(def.columns().len()))))
            .collect();
        IngestState { storage, config, metrics, admission, tenant_id, sizing: Arc::new(sizing) }
    }
}

pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/v1/tables", get(list_tables))
        .route("/v1/tables/{table}", get(get_table))
        .route("/v1/tables/{table}/records", post(post_records))
        .route("/dataCollectionRules/{rule}/streams/{stream}", post(post_stream))
        .with_state(state)
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        resp.headers_mut().insert("x-ms-error-code", HeaderValue::from_static(self.code));
        if let Some(s) = self.retry_after_secs {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A request body that did not arrive within its time ([`with_deadline`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub std::time::Duration);

/// `body`, failing with [`BodyTimeout`] once `timeout` has passed since now, however the bytes
/// trickle in (a per-chunk timeout lets a slow client hold a request open forever).
pub fn with_deadline(body: Body, timeout: std::time::Duration) -> Body {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(Some(body.into_data_stream()), move |state| async move {
        let mut s = state?;
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(item)) => Some((item.map_err(axum::BoxError::from), Some(s))),
            Ok(None) => None,
            Err(_) => Some((Err(axum::BoxError::from(BodyTimeout(timeout))), None)),
        }
    });
    Body::from_stream(stream)
}

/// Whether reading a body failed because of [`with_deadline`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// What an authenticated ingest key may post, set by the server's authentication layer: a key
/// bound to a computer may only post records whose `Computer` is that computer, and only to its
/// tables. Without it (authentication off), anything goes.
#[derive(Debug, Clone)]
pub struct IngestGrant {
    /// The key's name, for error messages.
    pub key: String,
    pub computer: Option<String>,
    pub tables: Option<Vec<String>>,
}

#[derive(Serialize)]
struct TableInfo<'a> {
    name: &'a str,
    description: &'a str,
    /// False for fimlake's own tables (the alerting audit trail): queryable, not postable.
    writable: bool,
    columns: &'a [fimlake_storage::Column],
}

async fn list_tables(State(st): State<IngestState>) -> Json<serde_json::Value> {
    let tables: Vec<TableInfo> = st
        .storage
        .registry()
        .tables()
        .iter()
        .map(|t| TableInfo {
            name: t.name(),
            description: t.description(),
            writable: !t.is_internal(),
            columns: t.columns(),
        })
        .collect();
    // What a client must stay under, so that a bulk loader can size its requests.
    let limits = serde_json::json!({
        "max_body_bytes": st.config.max_body_bytes,
        "max_decompressed_bytes": st.config.max_decompressed_bytes,
        "max_records": st.config.max_records,
    });
    Json(serde_json::json!({ "tables": tables, "limits": limits }))
}

async fn get_table(
    State(st): State<IngestState>,
    Path(table): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t = st.storage.registry().get(&table).ok_or_else(|| unknown_table(&st, &table, "TableNotFound"))?;
    Ok(Json(serde_json::json!(TableInfo {
        name: t.name(),
        description: t.description(),
        writable: !t.is_internal(),
        columns: t.columns(),
    })))
}

fn unknown_table(st: &IngestState, table: &str, code: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code,
        format!("table '{table}' does not exist; tables are: {}", st.storage.registry().names().join(", ")),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    accepted: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    additional_fields: Vec<String>,
}

/// `POST /v1/tables/{table}/records`: `200 {"accepted": N}` once the records are durable.
async fn post_records(
    State(st): State<IngestState>,
    Path(table): Path<String>,
    grant: Option<Extension<IngestGrant>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if st.storage.registry().get(&table).is_none() {
        return Err(unknown_table(&st, &table, "TableNotFound"));
    }
    let accepted = ingest(&st, &table, grant.map(|g| g.0), &headers, body).await?;
    Ok((StatusCode::OK, Json(accepted)).into_response())
}

/// `POST /dataCollectionRules/{rule}/streams/{stream}?api-version=2023-01-01`, as the Azure Logs
/// Ingestion API: the stream `Custom-<Table>` or `Microsoft-<Table>` names the table; `204`.
async fn post_stream(
    State(st): State<IngestState>,
    Path((_rule, stream)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    grant: Option<Extension<IngestGrant>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match query.get("api-version") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingApiVersion",
                format!("the api-version query parameter is required (supported: {})", API_VERSIONS.join(", ")),
            ));
        }
        Some(v) if !API_VERSIONS.contains(&v.as_str()) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersion",
                format!("api-version '{v}' is not supported (supported: {})", API_VERSIONS.join(", ")),
            ));
        }
        Some(_) => {}
    }
    let table = stream.strip_prefix("Custom-").or_else(|| stream.strip_prefix("Microsoft-")).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidStream",
            format!("stream '{stream}' not found: a stream is named Custom-<Table> or Microsoft-<Table>"),
        )
    })?;
    if st.storage.registry().get(table).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidStream",
            format!(
                "stream '{stream}' not found: table '{table}' does not exist; tables are: {}",
                st.storage.registry().names().join(", ")
            ),
        ));
    }
    let accepted = ingest(&st, table, grant.map(|g| g.0), &headers, body).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if !accepted.additional_fields.is_empty()
        && let Ok(v) = HeaderValue::from_str(&accepted.additional_fields.join(","))
    {
        resp.headers_mut().insert("x-fimlake-additional-fields", v);
    }
    Ok(resp)
}

/// Reads, inflates, decodes, validates and appends one request's records.
async fn ingest(
    st: &IngestState,
    table: &str,
    grant: Option<IngestGrant>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let started = Instant::now();
    let result = ingest_inner(st, table, grant, headers, body).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS || e.status == StatusCode::SERVICE_UNAVAILABLE => {
            "throttled"
        }
        Err(_) => "rejected",
    };
    st.metrics.requests.with_label_values(&[table, outcome]).inc();
    st.metrics.latency.with_label_values(&[table]).observe(started.elapsed().as_secs_f64());
    result
}

async fn ingest_inner(
    st: &IngestState,
    table: &str,
    grant: Option<IngestGrant>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    check_writable(st, table, grant.as_ref())?;
    // A full buffer holds the request, its body unread, until a flush makes room; past the
    // queue timeout it is refused before its body is read and decoded for nothing.
    let t = st.storage.table(table).map_err(storage_error)?;
    t.wait_for_capacity(st.config.queue_timeout).await.map_err(storage_error)?;
    let encoding = content_encoding(headers)?;
    let mut admitted = admit(st, headers, encoding).await?;
    let wire = read_body(headers, body, st.config.max_body_bytes).await?;
    let wire_len = wire.len();
    let rejected = |e: ApiError| {
        st.metrics.bytes.with_label_values(&[table, "rejected"]).inc_by(wire_len as u64);
        e
    };
    let plain = plain_body(st, &mut admitted, wire, encoding).await.map_err(rejected)?;
    let def = st.storage.registry().get(table).expect("checked by the caller").clone();
    // Held until the append returned: alert windows over _TimeReceived end before it.
    let receipt = st.storage.stamp_received();
    let ctx = DecodeContext {
        received: receipt.time(),
        tenant_id: st.tenant_id.clone(),
        max_records: st.config.max_records,
        sizing: st.sizing.get(table).cloned(),
    };
    let decoded = decode_body(def, plain, ctx).await.map_err(rejected)?;
    let rows = decoded.batch.num_rows();
    if let Some(IngestGrant { key, computer: Some(computer), .. }) = &grant {
        check_computer(&decoded.batch, key, computer)?;
    }
    append(st, t, decoded.batch, wire_len).await?;
    drop(receipt);
    st.metrics.records.with_label_values(&[table, "accepted"]).inc_by(rows as u64);
    st.metrics.bytes.with_label_values(&[table, "accepted"]).inc_by(wire_len as u64);
    Ok(Accepted { accepted: rows, additional_fields: decoded.additional_fields.into_iter().collect() })
}

/// Appends a decoded body's rows, counting them refused if they are. Past half full, the
/// buffers take writes in turns at the rate they drain; and they may have filled while the body
/// was decoded: its rows wait for room too, rather than be decoded again after a refusal (the
/// request still holds its decoding memory meanwhile).
async fn append(st: &IngestState, t: &Table, batch: RecordBatch, wire_len: usize) -> Result<(), ApiError> {
    let rows = batch.num_rows();
    let appended = match t.wait_for_turn(batch.get_array_memory_size(), st.config.queue_timeout).await {
        Ok(()) => t.append(batch).await,
        Err(e) => Err(e),
    };
    appended.map_err(|e| {
        st.metrics.bytes.with_label_values(&[t.name(), "rejected"]).inc_by(wire_len as u64);
        st.metrics.records.with_label_values(&[t.name(), "refused"]).inc_by(rows as u64);
        storage_error(e)
    })
}

/// The body inflated (on the blocking pool) when gzipped, holding the memory it really takes.
async fn plain_body(
    st: &IngestState,
    admitted: &mut admission::Admitted,
    wire: ReusedBuffer,
    encoding: Encoding,
) -> Result<ReusedBuffer, ApiError> {
    let (held, plain) = match encoding {
        Encoding::Identity => (admission::held_bytes(wire.len(), wire.len(), false), wire),
        Encoding::Gzip => {
            let max_inflated = st.config.max_decompressed_bytes;
            let (wire_len, plain) =
                tokio::task::spawn_blocking(move || Ok::<_, ApiError>((wire.len(), inflate(&wire, max_inflated)?)))
                    .await
                    .map_err(|e| internal(format!("inflating failed: {e}")))??;
            (admission::held_bytes(wire_len, plain.len(), true), plain)
        }
    };
    st.admission.top_up(admitted, held, st.config.queue_timeout).await.map_err(|refusal| too_busy(st, refusal))?;
    Ok(plain)
}

/// The body's records as one batch, decoded on the blocking pool.
async fn decode_body(def: Arc<TableDef>, plain: ReusedBuffer, ctx: DecodeContext) -> Result<decode::Decoded, ApiError> {
    tokio::task::spawn_blocking(move || {
        decode::decode(&def, &plain, &ctx).map_err(|e| {
            let (status, code) = match e.kind {
                DecodeErrorKind::TooManyRecords => (StatusCode::PAYLOAD_TOO_LARGE, "TooManyRecords"),
                DecodeErrorKind::Syntax => (StatusCode::BAD_REQUEST, "InvalidJson"),
                DecodeErrorKind::Field | DecodeErrorKind::Empty => (StatusCode::BAD_REQUEST, "InvalidRecord"),
            };
            ApiError::new(status, code, e.to_string())
        })
    })
    .await
    .map_err(|e| internal(format!("decoder failed: {e}")))?
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", message)
}

/// `429` with `Retry-After` for a request that could not start (or go on) in time.
fn too_busy(st: &IngestState, refusal: admission::Refusal) -> ApiError {
    ApiError {
        retry_after_secs: Some(1),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("{refusal} for {:?}; retry later", st.config.queue_timeout),
        )
    }
}

/// Waits for the request's turn: a slot and the memory its body will take ([`Admission`]).
async fn admit(st: &IngestState, headers: &HeaderMap, encoding: Encoding) -> Result<admission::Admitted, ApiError> {
    let content_length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let shape = BodyShape { content_length, gzip: encoding == Encoding::Gzip };
    let bytes = admission::decoding_bytes(shape, st.config.max_body_bytes, st.config.max_decompressed_bytes);
    st.admission.admit(bytes, st.config.queue_timeout).await.map_err(|refusal| too_busy(st, refusal))
}

/// Refuses a key that may not post to `table`, and a table only fimlake itself writes.
fn check_writable(st: &IngestState, table: &str, grant: Option<&IngestGrant>) -> Result<(), ApiError> {
    if let Some(g) = grant
        && let Some(allowed) = &g.tables
        && !allowed.iter().any(|t| t == table)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "TableNotAllowed",
            format!("key '{}' may post to {} only, not to '{table}'", g.key, allowed.join(", ")),
        ));
    }
    if st.storage.registry().get(table).is_some_and(|d| d.is_internal()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "TableNotWritable",
            format!(
                "table '{table}' is written by fimlake itself (the alerting audit trail); records cannot be posted to it"
            ),
        ));
    }
    Ok(())
}

/// The request body as sent (still compressed), at most `limit` bytes, read into a buffer kept
/// from an earlier request ([`reuse`]).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<ReusedBuffer, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(len) = declared
        && len > limit
    {
        return Err(too_large(limit, Some(len)));
    }
    let mut bytes = reuse::take(declared.unwrap_or(0));
    let mut body = http_body_util::Limited::new(body, limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(limit, &*e))?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
        }
    }
    Ok(bytes)
}

/// Why a body could not be read, for the client.
fn body_error(limit: usize, e: &(dyn std::error::Error + Send + Sync + 'static)) -> ApiError {
    if e.is::<http_body_util::LengthLimitError>() {
        too_large(limit, None)
    } else if is_body_timeout(e) {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", e.to_string())
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", format!("could not read the request body: {e}"))
    }
}

/// Every record of a key bound to `computer` must say `Computer` = `computer`: no agent can
/// speak for another host.
fn check_computer(batch: &arrow::record_batch::RecordBatch, key: &str, computer: &str) -> Result<(), ApiError> {
    use arrow::array::{Array, AsArray};
    let refuse = |i: usize, claimed: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "ComputerMismatch",
            format!(
                "record {i} has Computer '{claimed}', but key '{key}' may only post records of computer '{computer}'; nothing was stored"
            ),
        )
    };
    let Some(col) = batch.column_by_name(fimlake_storage::schema::COMPUTER_COLUMN) else {
        return Err(refuse(0, ""));
    };
    let col = col.as_string::<i32>();
    for i in 0..col.len() {
        let claimed = if col.is_null(i) { "" } else { col.value(i) };
        if claimed != computer {
            return Err(refuse(i, claimed));
        }
    }
    Ok(())
}

fn too_large(limit: usize, provided: Option<usize>) -> ApiError {
    let provided = provided.map(|p| format!(" Provided content length: {p} bytes.")).unwrap_or_default();
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ContentLengthLimitExceeded",
        format!("Maximum allowed content length: {limit} bytes.{provided}"),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else { return Ok(Encoding::Identity) };
    match v.to_str().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentEncoding",
            format!("Content-Encoding '{other}' is not supported; send gzip or no encoding"),
        )),
    }
}

/// Inflates a gzip body, refusing it as soon as it passes `max` bytes.
fn inflate(wire: &[u8], max: usize) -> Result<ReusedBuffer, ApiError> {
    let mut out = reuse::take((wire.len() * 8).min(max));
    let mut dec = flate2::read::MultiGzDecoder::new(wire).take(max as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidContentEncoding", format!("the body is not valid gzip: {e}"))
    })?;
    if out.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "DecompressedLengthLimitExceeded",
            format!("the body inflates to more than the {max} bytes allowed after decompression"),
        ));
    }
    Ok(out)
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::Backpressure { retry_after, .. } => ApiError {
            retry_after_secs: Some(retry_after.as_secs().max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", e.to_string())
        },
        StorageError::DiskFull { .. } => ApiError {
            retry_after_secs: Some(5),
            ..ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "InsufficientStorage", e.to_string())
        },
        StorageError::ShuttingDown | StorageError::Wal { .. } | StorageError::WalPoisoned { .. } => ApiError {
            retry_after_secs: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", e.to_string())
        },
        StorageError::UnknownTable(t) => {
            ApiError::new(StatusCode::NOT_FOUND, "TableNotFound", format!("table '{t}' does not exist"))
        }
        other => {
            tracing::error!(error = %other, "ingest failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", other.to_string())
        }
    }
}
