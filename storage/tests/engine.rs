//! The storage engine as a whole, against a local data directory: rows appended are queryable
//! at once, survive flushes, restarts and crashes exactly once, and compaction and retention
//! neither lose nor duplicate a row.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use datafusion::prelude::{SessionContext, ident, lit};
use datafusion::scalar::ScalarValue;
use fimlake_storage::{Storage, StorageConfig, TableRegistry};

const HOUR_US: i64 = 3_600_000_000;
/// 2024-05-01T00:00:00Z
const T0: i64 = 1_714_521_600_000_000;

fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        vacuum_delay: Duration::ZERO,
        compact_min_files: 2,
        ..Default::default()
    }
}

async fn open(dir: &Path) -> Arc<Storage> {
    open_with(config(dir)).await
}

async fn open_with(cfg: StorageConfig) -> Arc<Storage> {
    Storage::open(cfg, TableRegistry::builtin(), &prometheus::Registry::new()).await.unwrap()
}

/// Heartbeat rows: one per (time offset in µs from T0, computer).
fn heartbeats(storage: &Storage, rows: &[(i64, &str)]) -> RecordBatch {
    rows_of(storage, "Heartbeat", rows)
}

/// Rows of `table` with only `TimeGenerated` (offset in µs from T0) and `Computer` set.
fn rows_of(storage: &Storage, table: &str, rows: &[(i64, &str)]) -> RecordBatch {
    let schema = storage.registry().get(table).unwrap().schema().clone();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| T0 + r.0).collect::<Vec<_>>()).with_timezone("UTC"),
            ) as ArrayRef,
            "Computer" => Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            _ => new_null_array(f.data_type(), rows.len()),
        })
        .collect();
    RecordBatch::try_new(schema, cols).unwrap()
}

/// Runs `count(*)` over Heartbeat, optionally with `TimeGenerated >= T0 + from`.
async fn count(storage: &Storage, from: Option<i64>) -> i64 {
    let ctx = SessionContext::new();
    for (name, p) in storage.providers() {
        ctx.register_table(name.as_str(), p).unwrap();
    }
    let mut df = ctx.table("Heartbeat").await.unwrap();
    if let Some(from) = from {
        let ts = ScalarValue::TimestampMicrosecond(Some(T0 + from), Some("UTC".into()));
        df = df.filter(ident("TimeGenerated").gt_eq(lit(ts))).unwrap();
    }
    let batches = df.count().await.unwrap();
    batches as i64
}

async fn computers(storage: &Storage) -> Vec<String> {
    let ctx = SessionContext::new();
    let (_, p) = storage.providers().into_iter().find(|(n, _)| n == "Heartbeat").unwrap();
    ctx.register_table("Heartbeat", p).unwrap();
    let batches =
        ctx.table("Heartbeat").await.unwrap().select(vec![ident("Computer")]).unwrap().collect().await.unwrap();
    let mut out: Vec<String> = batches
        .iter()
        // A scan reads strings as views (`TableDef::scan_schema`).
        .flat_map(|b| b.column(0).as_string_view().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn appended_rows_are_visible_before_and_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(&storage, &[(0, "a"), (HOUR_US, "b"), (2 * HOUR_US + 5, "c")])).await.unwrap();
    assert_eq!(count(&storage, None).await, 3, "buffered rows are visible");
    assert_eq!(count(&storage, Some(HOUR_US)).await, 2);

    let out = hb.flush().await.unwrap();
    assert_eq!(out.rows, 3);
    assert_eq!(out.files, 3, "one file per hour partition");
    assert_eq!(hb.snapshot().buffered_rows(), 0);
    assert_eq!(count(&storage, None).await, 3, "flushed rows are visible once");
    assert_eq!(count(&storage, Some(HOUR_US)).await, 2);
    assert_eq!(count(&storage, Some(3 * HOUR_US)).await, 0);

    let part = dir.path().join("tables/Heartbeat/PartitionDate=2024-05-01/PartitionHour=1");
    let files: Vec<_> = std::fs::read_dir(&part).unwrap().collect();
    assert_eq!(files.len(), 1, "{part:?}");
    assert!(dir.path().join("tables/Heartbeat/_delta_log/00000000000000000001.json").exists());
    storage.shutdown().await.unwrap();
}

#[tokio::test]
async fn time_filters_prune_files() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    for h in 0..6 {
        hb.append(heartbeats(&storage, &[(h * HOUR_US, "a")])).await.unwrap();
    }
    hb.flush().await.unwrap();
    let ctx = SessionContext::new();
    let (_, p) = storage.providers().into_iter().find(|(n, _)| n == "Heartbeat").unwrap();
    ctx.register_table("Heartbeat", p).unwrap();
    let ts = ScalarValue::TimestampMicrosecond(Some(T0 + 4 * HOUR_US), Some("UTC".into()));
    let plan = ctx
        .table("Heartbeat")
        .await
        .unwrap()
        .filter(ident("TimeGenerated").gt_eq(lit(ts)))
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
    let scanned = text.matches(".parquet").count();
    assert_eq!(scanned, 2, "only the files of hours 4 and 5 are scanned:\n{text}");
}

#[tokio::test]
async fn unflushed_rows_survive_a_restart_through_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = open(dir.path()).await;
        let hb = storage.table("Heartbeat").unwrap().clone();
        hb.append(heartbeats(&storage, &[(0, "a")])).await.unwrap();
        hb.flush().await.unwrap();
        hb.append(heartbeats(&storage, &[(1, "b"), (2, "c")])).await.unwrap();
        // No shutdown: the buffer is abandoned as in a crash; the WAL holds the rows.
    }
    let storage = open(dir.path()).await;
    assert_eq!(computers(&storage).await, vec!["a", "b", "c"]);
    storage.shutdown().await.unwrap();
    let storage = open(dir.path()).await;
    assert_eq!(computers(&storage).await, vec!["a", "b", "c"], "shutdown flushed, nothing replayed twice");
    assert_eq!(storage.table("Heartbeat").unwrap().snapshot().buffered_rows(), 0);
}

#[tokio::test]
async fn a_wal_segment_already_committed_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal/Heartbeat");
    let saved;
    {
        let storage = open(dir.path()).await;
        let hb = storage.table("Heartbeat").unwrap().clone();
        hb.append(heartbeats(&storage, &[(0, "a"), (1, "b")])).await.unwrap();
        // Keep a copy of the segment as it was before the flush trimmed it: a crash between
        // the Delta commit and the trim leaves exactly this behind. (The next segment, created
        // ahead of time, holds nothing yet.)
        saved = std::fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .filter(|(_, bytes)| bytes.len() > 8)
            .collect::<Vec<_>>();
        assert_eq!(saved.len(), 1, "one segment holds the rows");
        hb.flush().await.unwrap();
    }
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }
    let storage = open(dir.path()).await;
    assert_eq!(computers(&storage).await, vec!["a", "b"]);
    assert!(saved.iter().all(|(p, _)| !p.exists()), "committed segments are deleted at start");
}

#[tokio::test]
async fn compaction_merges_small_files_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let mut expected = Vec::new();
    for i in 0..5 {
        let name = format!("c{i}");
        hb.append(heartbeats(&storage, &[(i * 1000, name.as_str()), (HOUR_US + i, name.as_str())])).await.unwrap();
        hb.flush().await.unwrap();
        expected.push(name.clone());
        expected.push(name);
    }
    expected.sort();
    assert_eq!(hb.snapshot().files.len(), 10);
    let report = hb.compact(first_day_noon()).await.unwrap();
    assert_eq!(report.partitions_compacted, 2);
    assert_eq!(report.files_compacted, 10);
    assert_eq!(hb.snapshot().files.len(), 2);
    assert_eq!(computers(&storage).await, expected);
    let vacuumed = hb.vacuum().await.unwrap();
    assert_eq!(vacuumed.files_vacuumed, 10);
    assert_eq!(computers(&storage).await, expected);
    storage.shutdown().await.unwrap();
    let storage = open(dir.path()).await;
    assert_eq!(computers(&storage).await, expected, "the compacted state is what reloads");
}

/// Noon of T0's day: a compaction then merges hours, not the day (not closed).
fn first_day_noon() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(T0 + 12 * HOUR_US).unwrap()
}

/// The rows of the Parquet file `file` of Heartbeat: (time offset from T0, computer), in file order.
fn rows_in_file(dir: &Path, file: &fimlake_storage::DataFile) -> Vec<(i64, String)> {
    let path = dir.join("tables/Heartbeat").join(file.path.as_ref());
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let times = batch.column_by_name("TimeGenerated").unwrap();
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let computers = batch.column_by_name("Computer").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            rows.push((times.value(i) - T0, computers.value(i).to_string()));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_day_becomes_one_sorted_file_and_late_records_another() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let day_1 = [(23 * HOUR_US, "d"), (5, "b"), (5 * HOUR_US, "c"), (3, "a"), (24 * HOUR_US + HOUR_US, "next day")];
    for row in day_1 {
        hb.append(heartbeats(&storage, &[row])).await.unwrap();
        hb.flush().await.unwrap();
    }
    assert_eq!(hb.snapshot().files.len(), 5);

    // May 1 ended half an hour ago: not closed, only its hour 0's two files are merged.
    let at = |offset: i64| chrono::DateTime::from_timestamp_micros(T0 + offset).unwrap();
    let report = hb.compact(at(24 * HOUR_US + HOUR_US / 2)).await.unwrap();
    assert_eq!((report.partitions_compacted, report.days_compacted, report.files_compacted), (1, 0, 2));
    assert_eq!(hb.snapshot().files.len(), 4);

    // An hour after it ended, May 1 is closed: its three hour files become one, in file order.
    let report = hb.compact(at(25 * HOUR_US)).await.unwrap();
    assert_eq!((report.partitions_compacted, report.days_compacted, report.files_compacted), (0, 1, 3));
    let files = hb.snapshot().files;
    let day: Vec<_> = files.iter().filter(|f| f.date == Some(19844)).collect();
    assert_eq!(day.len(), 1, "{files:?}");
    assert_eq!(day[0].hour, None, "a day's file has no hour");
    // From the file's statistics (milliseconds: T0 + 3 µs is recorded as T0).
    assert_eq!(day[0].time_bounds(), (Some(T0), Some(T0 + 23 * HOUR_US + 999)));
    let in_order = vec![(3, "a".into()), (5, "b".into()), (5 * HOUR_US, "c".into()), (23 * HOUR_US, "d".into())];
    assert_eq!(rows_in_file(dir.path(), day[0]), in_order);
    assert_eq!(count(&storage, None).await, 5);
    assert_eq!(count(&storage, Some(HOUR_US)).await, 3, "the day's file is pruned by its rows' times");

    // Late records for May 1: two hour files, merged into a second file of the day.
    hb.append(heartbeats(&storage, &[(7 * HOUR_US, "late 1")])).await.unwrap();
    hb.flush().await.unwrap();
    hb.append(heartbeats(&storage, &[(2 * HOUR_US, "late 2")])).await.unwrap();
    hb.flush().await.unwrap();
    let report = hb.compact(at(48 * HOUR_US)).await.unwrap();
    assert_eq!((report.days_compacted, report.files_compacted), (1, 2));
    let mut day: Vec<_> = hb.snapshot().files.iter().filter(|f| f.date == Some(19844)).cloned().collect();
    day.sort_by_key(|f| f.rows);
    assert_eq!(day.iter().map(|f| (f.hour, f.rows)).collect::<Vec<_>>(), [(None, Some(2)), (None, Some(4))]);
    assert_eq!(rows_in_file(dir.path(), &day[0]), vec![(2 * HOUR_US, "late 2".into()), (7 * HOUR_US, "late 1".into())]);

    // Nothing lost or doubled, after the merged files are deleted and after a restart.
    let expected = vec!["a", "b", "c", "d", "late 1", "late 2", "next day"];
    assert_eq!(hb.vacuum().await.unwrap().files_vacuumed, 7);
    assert_eq!(computers(&storage).await, expected);
    storage.shutdown().await.unwrap();
    let storage = open(dir.path()).await;
    assert_eq!(computers(&storage).await, expected, "the days' files are what reloads");
    let files = storage.table("Heartbeat").unwrap().snapshot().files;
    assert_eq!(files.iter().filter(|f| f.date == Some(19844) && f.hour.is_none()).count(), 2);
}

#[tokio::test]
async fn retention_removes_only_files_entirely_older_than_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with(StorageConfig { retention_days: 1, ..config(dir.path()) }).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(&storage, &[(0, "old"), (30 * HOUR_US, "new")])).await.unwrap();
    hb.flush().await.unwrap();
    // "now" is 2024-05-02T12:00Z: the cutoff is 2024-05-01T12:00Z.
    let now = chrono::DateTime::from_timestamp_micros(T0 + 36 * HOUR_US).unwrap();
    let report = hb.expire(now).await.unwrap();
    assert_eq!(report.files_expired, 1);
    assert_eq!(computers(&storage).await, vec!["new"]);
    assert_eq!(hb.vacuum().await.unwrap().files_vacuumed, 1);
}

#[tokio::test]
async fn a_full_buffer_refuses_appends_with_a_retry_hint() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with(StorageConfig { max_buffer_bytes: 1, ..config(dir.path()) }).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(&storage, &[(0, "a")])).await.unwrap();
    let err = hb.append(heartbeats(&storage, &[(0, "b")])).await.unwrap_err();
    assert!(matches!(err, fimlake_storage::StorageError::Backpressure { .. }), "{err}");
    hb.flush().await.unwrap();
    hb.append(heartbeats(&storage, &[(0, "b")])).await.unwrap();
    assert_eq!(computers(&storage).await, vec!["a", "b"]);
}

#[tokio::test]
async fn all_tables_share_one_buffer_budget() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with(StorageConfig { max_buffer_bytes: 1, ..config(dir.path()) }).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let changes = storage.table("ConfigurationChange").unwrap().clone();
    hb.append(heartbeats(&storage, &[(0, "a")])).await.unwrap();
    let err = changes.append(rows_of(&storage, "ConfigurationChange", &[(0, "b")])).await.unwrap_err();
    assert!(
        matches!(err, fimlake_storage::StorageError::Backpressure { .. }),
        "another table's rows fill the one budget: {err}"
    );
    assert!(changes.check_capacity().is_err(), "and the check before a request says so");
    let audit = storage.table("AuditLog").unwrap().clone();
    audit
        .append(rows_of(&storage, "AuditLog", &[(0, "c")]))
        .await
        .expect("the server's own audit rows are never refused");
    hb.flush().await.unwrap();
    assert!(changes.check_capacity().is_err(), "the audit rows are counted too");
    audit.flush().await.unwrap();
    changes.append(rows_of(&storage, "ConfigurationChange", &[(0, "b")])).await.unwrap();
    changes.flush().await.unwrap();
    hb.append(heartbeats(&storage, &[(0, "c")])).await.unwrap();
}

#[tokio::test]
async fn parquet_files_are_sorted_with_page_index_and_each_column_codec() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(&storage, &[(30, "z"), (10, "b"), (10, "a"), (20, "c")])).await.unwrap();
    hb.flush().await.unwrap();
    let f = &hb.snapshot().files[0];
    let path = dir.path().join("tables/Heartbeat").join(f.path.as_ref());
    let file = std::fs::File::open(&path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new_with_options(
        file,
        parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required),
    )
    .unwrap();
    let meta = reader.metadata().clone();
    let rg = meta.row_group(0);
    let codec = |name: &str| {
        let column = rg.columns().iter().find(|c| c.column_path().string() == name).unwrap();
        column.compression()
    };
    assert!(matches!(codec("TimeGenerated"), parquet::basic::Compression::ZSTD(_)));
    assert!(matches!(codec("_ItemId"), parquet::basic::Compression::ZSTD(_)));
    assert_eq!(codec("Computer"), parquet::basic::Compression::LZ4_RAW, "strings a fleet repeats");
    assert_eq!(codec("ComputerIP"), parquet::basic::Compression::LZ4_RAW);
    assert!(meta.column_index().is_some(), "page index written");
    assert_eq!(rg.sorting_columns().map(|s| s.len()), Some(2));
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    let comps: Vec<&str> =
        batch.column_by_name("Computer").unwrap().as_string::<i32>().iter().map(|v| v.unwrap()).collect();
    assert_eq!(comps, vec!["a", "b", "c", "z"], "sorted by time then computer");
    assert!(batch.column_by_name("PartitionDate").is_none(), "partition values live in the path");
    let _ = batch.column_by_name("TimeGenerated").unwrap().as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
}

/// A flush is sorted once and written a chunk of 64Ki rows at a time: the file still holds
/// every row once, in order across the chunks' boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_several_chunks_writes_every_row_once_in_file_order() {
    const ROWS: i64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let names: Vec<String> = (0..ROWS).map(|i| format!("m{}", i % 7)).collect();
    let rows: Vec<(i64, &str)> = (0..ROWS).rev().map(|i| (i * 10, names[i as usize].as_str())).collect();
    hb.append(heartbeats(&storage, &rows)).await.unwrap();
    assert_eq!(hb.flush().await.unwrap().rows, ROWS as usize);
    let files = hb.snapshot().files;
    assert_eq!(files.len(), 1, "one hour, one file");
    let times: Vec<i64> = rows_in_file(dir.path(), &files[0]).into_iter().map(|(offset, _)| offset).collect();
    let expected: Vec<i64> = (0..ROWS).map(|i| i * 10).collect();
    assert_eq!(times.len(), expected.len(), "every row once");
    assert!(times == expected, "ascending across the chunks' boundaries");
}

/// A flush of many hours closes each hour's file while the next hours are written: every
/// hour still gets one file holding its rows once and in order, chunk boundaries inside hours
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_many_hours_writes_one_file_per_hour_with_its_rows_in_order() {
    const HOURS: i64 = 7;
    const ROWS_PER_HOUR: i64 = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let offsets: Vec<i64> =
        (0..HOURS).flat_map(|h| (0..ROWS_PER_HOUR).map(move |i| h * HOUR_US + i * 1_000)).rev().collect();
    let rows: Vec<(i64, &str)> = offsets.iter().map(|offset| (*offset, "a")).collect();
    hb.append(heartbeats(&storage, &rows)).await.unwrap();
    // The rows fill enough of the buffer budget for a flush of its own to start: this one may
    // find them written already (it waits for that flush to commit).
    hb.flush().await.unwrap();
    let mut files = hb.snapshot().files.to_vec();
    files.sort_by_key(|f| f.hour);
    assert_eq!(files.iter().map(|f| f.hour.unwrap()).collect::<Vec<_>>(), (0..HOURS as i32).collect::<Vec<_>>());
    for (hour, file) in (0..HOURS).zip(&files) {
        let times: Vec<i64> = rows_in_file(dir.path(), file).into_iter().map(|(offset, _)| offset).collect();
        let expected: Vec<i64> = (0..ROWS_PER_HOUR).map(|i| hour * HOUR_US + i * 1_000).collect();
        assert!(times == expected, "hour {hour}: its rows once, ascending");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_flushes_under_concurrent_ingest_and_queries_keep_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with(StorageConfig { compact_min_files: 3, ..config(dir.path()) }).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let writer = {
        let (storage, hb) = (storage.clone(), hb.clone());
        tokio::spawn(async move {
            for i in 0..60i64 {
                let name = format!("w{i}");
                hb.append(heartbeats(&storage, &[(i % 3 * HOUR_US, name.as_str())])).await.unwrap();
                if i % 4 == 0 {
                    hb.flush().await.unwrap();
                }
            }
        })
    };
    let compactor = {
        let hb = hb.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                hb.compact(first_day_noon()).await.unwrap();
                hb.vacuum().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Queries running meanwhile never see a row twice.
    for _ in 0..20 {
        let got = computers(&storage).await;
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(got, dedup, "a row seen twice mid-flight");
    }
    writer.await.unwrap();
    compactor.await.unwrap();
    hb.flush().await.unwrap();
    hb.compact(first_day_noon()).await.unwrap();
    let mut want: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
    want.sort();
    assert_eq!(computers(&storage).await, want);
    let files = hb.snapshot().files;
    for hour in 0..3 {
        let n = files.iter().filter(|f| f.hour == Some(hour)).count();
        assert!((1..3).contains(&n), "hour {hour}: {n} files left; compaction merges from 3 up");
    }
}

#[tokio::test]
async fn checkpoints_keep_the_delta_log_short_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    for i in 0..21 {
        hb.append(heartbeats(&storage, &[(i, "a")])).await.unwrap();
        hb.flush().await.unwrap();
    }
    let log = dir.path().join("tables/Heartbeat/_delta_log");
    assert!(log.join("_last_checkpoint").exists(), "a checkpoint every 20 commits");
    let names: Vec<String> =
        std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".checkpoint.parquet")), "{names:?}");
    storage.shutdown().await.unwrap();
    let storage = open(dir.path()).await;
    assert_eq!(count(&storage, None).await, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let storage = Storage::open(config(dir.path()), TableRegistry::builtin(), &registry).await.unwrap();
    let hb = storage.table("Heartbeat").unwrap().clone();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (storage, hb) = (storage.clone(), hb.clone());
            tokio::spawn(async move { hb.append(heartbeats(&storage, &[(i, "x")])).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(count(&storage, None).await, 200);
    let syncs = registry
        .gather()
        .iter()
        .find(|m| m.name() == "fimlake_wal_sync_seconds")
        .map(|m| m.get_metric().iter().map(|m| m.get_histogram().get_sample_count()).sum::<u64>())
        .unwrap();
    assert!(syncs < 200, "200 appends took {syncs} fsyncs: no group commit");
}

#[tokio::test]
async fn buffers_flush_by_age_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with(StorageConfig { flush_age: Duration::from_millis(100), ..config(dir.path()) }).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    hb.append(heartbeats(&storage, &[(0, "a")])).await.unwrap();
    // Bounded wait: 100 × 50 ms.
    for _ in 0..100 {
        if !hb.snapshot().files.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hb.snapshot().files.len(), 1, "flushed by age");
    assert_eq!(hb.snapshot().buffered_rows(), 0);
}
