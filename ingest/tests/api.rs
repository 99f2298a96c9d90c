//! The ingestion router in process, against real storage: what needs control over the storage
//! engine that a child process does not give.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fimlake_ingest::{IngestConfig, IngestMetrics, IngestState, router};
use fimlake_storage::{Storage, StorageConfig, TableRegistry};
use tower::ServiceExt;

/// The router over fresh storage in `dir`; a request finding the write buffers full waits
/// `queue_timeout` for room.
async fn app(
    dir: &std::path::Path,
    storage: StorageConfig,
    queue_timeout: Duration,
) -> (axum::Router, Arc<Storage>, IngestMetrics) {
    let registry = prometheus::Registry::new();
    let storage =
        Storage::open(StorageConfig { data_dir: dir.to_path_buf(), ..storage }, TableRegistry::builtin(), &registry)
            .await
            .unwrap();
    let metrics = IngestMetrics::new(&registry).unwrap();
    let state = IngestState::new(
        storage.clone(),
        IngestConfig { queue_timeout, ..IngestConfig::default() },
        metrics.clone(),
        "ws".into(),
    );
    (router(state), storage, metrics)
}

fn post(body: &str) -> Request<Body> {
    Request::post("/v1/tables/Heartbeat/records").body(Body::from(body.to_string())).unwrap()
}

/// Buffers that fill with one record and are flushed only when a test says so.
fn one_record_buffers() -> StorageConfig {
    StorageConfig {
        max_buffer_bytes: 1,
        flush_bytes: usize::MAX,
        flush_age: Duration::from_secs(3600),
        ..Default::default()
    }
}

#[tokio::test]
async fn with_no_time_to_wait_a_full_write_buffer_answers_503_with_retry_after_until_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (app, storage, metrics) = app(dir.path(), one_record_buffers(), Duration::ZERO).await;
    let first = app.clone().oneshot(post(r#"[{"Computer":"a"}]"#)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let busy = app.clone().oneshot(post(r#"[{"Computer":"b"}]"#)).await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(busy.headers()["x-ms-error-code"], "ServerBusy");
    // Refused before its body was read: the request is counted, no record was decoded.
    let throttled = metrics.requests.with_label_values(&["Heartbeat", "throttled"]).get();
    assert_eq!(throttled, 1, "the refused request is counted");
    let refused = metrics.records.with_label_values(&["Heartbeat", "refused"]).get();
    assert_eq!(refused, 0, "its body was not decoded");
    storage.flush_all().await.unwrap();
    let again = app.oneshot(post(r#"[{"Computer":"b"}]"#)).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_finding_the_buffers_full_waits_for_the_flush_they_ask_for_and_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (app, storage, metrics) = app(dir.path(), one_record_buffers(), Duration::from_secs(30)).await;
    let first = app.clone().oneshot(post(r#"[{"Computer":"a"}]"#)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let asked = Instant::now();
    let second = app.clone().oneshot(post(r#"[{"Computer":"b"}]"#)).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK, "taken once a flush gave the first record's bytes back");
    assert!(asked.elapsed() < Duration::from_secs(30), "well before the queue timeout");
    let throttled = metrics.requests.with_label_values(&["Heartbeat", "throttled"]).get();
    assert_eq!(throttled, 0, "no request was refused");
    let table = storage.table("Heartbeat").unwrap();
    let snapshot = table.snapshot();
    assert_eq!(snapshot.buffered_rows(), 1, "the second record is buffered");
    assert_eq!(snapshot.files.len(), 1, "the first was flushed, by the flush the full buffers asked for");
}
