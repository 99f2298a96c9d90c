//! A time-windowed KQL query over many hourly partitions opens only the matching files.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{StringArray, TimestampMicrosecondArray};
use common::{heartbeats, open};
use fimlake_query::QueryEngine;
use fimlake_storage::{Storage, Table};

/// Storage in `dir` with one heartbeat per time, from the computer `computer` names for its
/// index, flushed (a file per hour the times fall in); and its Heartbeat table.
async fn flushed_heartbeats(
    dir: &std::path::Path,
    times: &[i64],
    computer: impl Fn(usize) -> &'static str,
) -> (Arc<Storage>, Arc<Table>) {
    let storage = open(dir).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(hb.def().schema(), times, computer)).await.unwrap();
    hb.flush().await.unwrap();
    (storage, hb)
}

/// Storage in `dir` with a heartbeat in each of the last three hours, flushed; and how many
/// files they are in.
async fn heartbeats_of_the_last_three_hours(dir: &std::path::Path) -> (Arc<Storage>, usize) {
    let hour = 3_600_000_000i64;
    let now = chrono::Utc::now().timestamp_micros();
    let times: Vec<i64> = (1..=3).map(|h| now - h * hour).collect();
    let (storage, hb) = flushed_heartbeats(dir, &times, |_| "a").await;
    let files = hb.snapshot().files.len();
    (storage, files)
}

#[tokio::test]
async fn the_first_rows_by_computer_are_found_by_their_keys_then_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000_000i64;
    let now = chrono::Utc::now().timestamp_micros();
    let times: Vec<i64> = (1..=12).map(|h| now - h * hour).collect();
    let (storage, _) = flushed_heartbeats(dir.path(), &times, |i| ["b", "a", "c"][i % 3]).await;

    let engine = QueryEngine::new(storage.clone(), &fimlake_query::QueryConfig::default());
    let q = "Heartbeat | sort by Computer asc, TimeGenerated desc | take 2 | project Computer, TimeGenerated";
    let plan = engine.explain(q, None).await.unwrap();
    assert!(plan.contains("RightSemi"), "the rows are joined to the first keys:\n{plan}");
    let result = engine.run(q, None, Duration::from_secs(30)).await.unwrap();
    let batch = arrow::compute::concat_batches(&result.schema, &result.batches).unwrap();
    let computers = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let got: Vec<i64> = batch.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap().values().to_vec();
    assert_eq!(computers.iter().flatten().collect::<Vec<_>>(), ["a", "a"]);
    assert_eq!(got, [times[1], times[4]], "the two latest of computer a");

    let by_time = engine.explain("Heartbeat | top 2 by TimeGenerated desc", None).await.unwrap();
    assert!(!by_time.contains("RightSemi"), "by time, the plain top-k already skips old files:\n{by_time}");
}

#[tokio::test]
async fn the_last_hours_of_a_day_read_only_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    let hour = 3_600_000_000i64;
    // One row at the middle of each of the last 48 hours: 48 hourly partitions.
    let times: Vec<i64> = (0..48).map(|h| (now / hour - h) * hour + hour / 2).filter(|t| *t < now).collect();
    let (storage, hb) = flushed_heartbeats(dir.path(), &times, |_| "web-01").await;
    assert!(hb.snapshot().files.len() >= 47);

    let engine = QueryEngine::new(storage.clone(), &fimlake_query::QueryConfig::default());
    let q = "Heartbeat | where TimeGenerated > ago(3h) | summarize count() by Computer";
    let plan = engine.explain(q, None).await.unwrap();
    let files = plan.matches(".parquet").count();
    assert!((3..=4).contains(&files), "a 3-hour window opens 3 or 4 hourly files, not {files}:\n{plan}");
    let result = engine.run(q, None, Duration::from_secs(30)).await.unwrap();
    let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1);
    let all = engine.explain("Heartbeat | count", None).await.unwrap();
    assert_eq!(all.matches(".parquet").count(), hb.snapshot().files.len(), "without a time filter every file is read");
}

#[tokio::test]
async fn a_string_filter_reaches_the_parquet_scan_on_the_plain_column() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    let times: Vec<i64> = (1..=6).map(|h| now - h * 3_600_000_000).collect();
    let (storage, _) = flushed_heartbeats(dir.path(), &times, |i| ["web-01", "db-02"][i % 2]).await;

    let engine = QueryEngine::new(storage.clone(), &fimlake_query::QueryConfig::default());
    // Kusto strings are never null, so `Computer` is read as `coalesce(Computer, '')`; a filter
    // false on '' needs no coalesce, and the scan can prune by the column's statistics.
    let q = r#"Heartbeat | where Computer == "web-01" | count"#;
    let plan = engine.explain(q, None).await.unwrap();
    let scan = plan.lines().find(|l| l.contains("DataSourceExec")).unwrap_or_else(|| panic!("a scan:\n{plan}"));
    assert!(scan.contains("predicate=Computer@") && scan.contains("Computer_min@"), "{plan}");
    assert!(!plan.contains("IS NOT NULL THEN Computer"), "no coalesce left in the filter:\n{plan}");
    let result = engine.run(q, None, Duration::from_secs(30)).await.unwrap();
    let count = result.batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0);
    assert_eq!(count, 3);

    // A filter true on '' keeps the coalesce: the rows whose Computer is missing count as empty.
    let negated = engine.explain(r#"Heartbeat | where Computer != "web-01" | count"#, None).await.unwrap();
    assert!(negated.contains("IS NOT NULL THEN Computer"), "{negated}");
}

#[tokio::test]
async fn file_footers_are_parsed_once_and_kept_for_the_next_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, files) = heartbeats_of_the_last_three_hours(dir.path()).await;
    assert!(files >= 3, "a file per hour: {files}");

    let engine = QueryEngine::new(storage.clone(), &fimlake_query::QueryConfig::default());
    let cache = engine.runtime().cache_manager.get_file_metadata_cache();
    assert_eq!(cache.len(), 0);
    engine.run("Heartbeat | count", None, Duration::from_secs(30)).await.unwrap();
    assert_eq!(cache.len(), files, "each file's footer is in the runtime's metadata cache");
    engine.run("Heartbeat | summarize count() by Computer", None, Duration::from_secs(30)).await.unwrap();
    assert_eq!(cache.len(), files, "the next query finds them there");
    assert_eq!(engine.runtime().cache_manager.get_metadata_cache_limit(), fimlake_query::METADATA_CACHE_BYTES);
}

#[tokio::test]
async fn the_metadata_cache_takes_its_configured_limit_and_its_gauges_tell_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, files) = heartbeats_of_the_last_three_hours(dir.path()).await;
    let config = fimlake_query::QueryConfig { metadata_cache_bytes: 3 << 20, ..Default::default() };
    let engine = QueryEngine::new(storage.clone(), &config);
    let registry = prometheus::Registry::new();
    registry.register(Box::new(engine.metadata_cache_metrics().unwrap())).unwrap();
    let gauge = |name: &str| {
        let families = registry.gather();
        let family = families.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("{name} is registered"));
        family.get_metric()[0].get_gauge().get_value() as usize
    };
    assert_eq!(gauge("fimlake_query_metadata_cache_limit_bytes"), 3 << 20);
    assert_eq!((gauge("fimlake_query_metadata_cache_files"), gauge("fimlake_query_metadata_cache_bytes")), (0, 0));

    engine.run("Heartbeat | count", None, Duration::from_secs(30)).await.unwrap();
    assert_eq!(gauge("fimlake_query_metadata_cache_files"), files, "read once, each footer is kept");
    let bytes = gauge("fimlake_query_metadata_cache_bytes");
    assert!(bytes > 1_000 * files && bytes <= 3 << 20, "parsed footers of {files} files: {bytes} bytes");
}
