//! A time-windowed KQL query over many hourly partitions opens only the matching files.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use fimlake_query::QueryEngine;
use fimlake_storage::{Storage, StorageConfig, TableRegistry};

#[tokio::test]
async fn the_last_hours_of_a_day_read_only_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        data_dir: dir.path().to_path_buf(),
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let storage = Storage::open(cfg, TableRegistry::builtin(), &prometheus::Registry::new()).await.unwrap();
    let hb = storage.table("Heartbeat").unwrap().clone();
    let schema = hb.def().schema().clone();
    let now = chrono::Utc::now().timestamp_micros();
    let hour = 3_600_000_000i64;
    // One row at the middle of each of the last 48 hours: 48 hourly partitions.
    let times: Vec<i64> = (0..48).map(|h| (now / hour - h) * hour + hour / 2).filter(|t| *t < now).collect();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => {
                Arc::new(TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC")) as ArrayRef
            }
            "Computer" => Arc::new(StringArray::from(vec!["web-01"; times.len()])),
            _ => new_null_array(f.data_type(), times.len()),
        })
        .collect();
    hb.append(RecordBatch::try_new(schema, cols).unwrap()).await.unwrap();
    hb.flush().await.unwrap();
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
