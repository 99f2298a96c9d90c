//! Commits in a cluster: each node records its WAL segments under its own application id, and
//! a leader's commits are fenced by its lease epoch, so a node that lost the lease cannot
//! commit over a newer leader's work, and loses nothing by being refused.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use datafusion::prelude::SessionContext;
use fimlake_storage::{CommitFence, Storage, StorageConfig, StorageError, TableRegistry};

/// 2024-05-01T00:00:00Z
const T0: i64 = 1_714_521_600_000_000;

/// A lease as the storage engine sees it: an epoch, or why there is none.
#[derive(Default)]
struct TestFence {
    epoch: AtomicU64,
    refused: Mutex<Option<String>>,
}

impl CommitFence for TestFence {
    fn epoch(&self) -> Result<u64, String> {
        match self.refused.lock().unwrap().clone() {
            Some(reason) => Err(reason),
            None => Ok(self.epoch.load(Ordering::SeqCst)),
        }
    }
}

fn node(data: &Path, tables: &Path, id: &str) -> StorageConfig {
    StorageConfig {
        data_dir: data.to_path_buf(),
        table_url: Some(tables.to_str().unwrap().to_string()),
        node_id: Some(id.to_string()),
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        ..Default::default()
    }
}

async fn open(cfg: StorageConfig, fence: Option<Arc<TestFence>>) -> Arc<Storage> {
    let fence = fence.map(|f| f as Arc<dyn CommitFence>);
    Storage::open_fenced(cfg, TableRegistry::builtin(), &prometheus::Registry::new(), fence).await.unwrap()
}

async fn append(storage: &Storage, computers: &[&str]) {
    let table = storage.table("Heartbeat").unwrap();
    let schema = table.def().schema().clone();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => {
                Arc::new(TimestampMicrosecondArray::from(vec![T0; computers.len()]).with_timezone("UTC")) as ArrayRef
            }
            "Computer" => Arc::new(StringArray::from(computers.to_vec())),
            _ => new_null_array(f.data_type(), computers.len()),
        })
        .collect();
    table.append(RecordBatch::try_new(schema, cols).unwrap()).await.unwrap();
}

async fn count(storage: &Storage) -> usize {
    let ctx = SessionContext::new();
    let (_, p) = storage.providers().into_iter().find(|(n, _)| n == "Heartbeat").unwrap();
    ctx.register_table("Heartbeat", p).unwrap();
    ctx.table("Heartbeat").await.unwrap().count().await.unwrap()
}

fn fenced_reason(e: StorageError) -> String {
    match e {
        StorageError::Fenced { reason, .. } => reason,
        other => panic!("expected a fenced commit, got {other}"),
    }
}

/// Two leaders in turn on `tables`: "old" (epoch 1) committed `a1`, then "new" (epoch 2)
/// committed `b1`. Returns the old one with its lease, and the new one.
async fn two_leaders(tables: &Path, data_old: &Path, data_new: &Path) -> (Arc<Storage>, Arc<TestFence>, Arc<Storage>) {
    let old_lease = Arc::new(TestFence::default());
    old_lease.epoch.store(1, Ordering::SeqCst);
    let old = open(node(data_old, tables, "old"), Some(old_lease.clone())).await;
    append(&old, &["a1"]).await;
    old.flush_all().await.unwrap();

    let new_lease = Arc::new(TestFence::default());
    new_lease.epoch.store(2, Ordering::SeqCst);
    let new = open(node(data_new, tables, "new"), Some(new_lease)).await;
    append(&new, &["b1"]).await;
    new.flush_all().await.unwrap();
    (old, old_lease, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_leaders_commit_is_refused_and_its_rows_wait_in_its_wal() {
    let tables = tempfile::tempdir().unwrap();
    let (data_old, data_new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (old, old_lease, new) = two_leaders(tables.path(), data_old.path(), data_new.path()).await;

    // The old leader still believes in its lease, and its snapshot predates epoch 2: the Delta
    // log refuses the commit (the new leader's commit carries the same app id), and it says why.
    append(&old, &["a2"]).await;
    let reason = fenced_reason(old.table("Heartbeat").unwrap().flush().await.unwrap_err());
    assert!(reason.contains("records leader epoch 2, newer than this node's 1"), "{reason}");
    // Knowing it lost the lease, it does not even try.
    *old_lease.refused.lock().unwrap() = Some("this node does not hold the leader lease".into());
    let reason = fenced_reason(old.table("Heartbeat").unwrap().flush().await.unwrap_err());
    assert_eq!(reason, "this node does not hold the leader lease");
    append(&old, &["a3"]).await;
    assert_eq!(count(&old).await, 3, "the refused rows are still buffered (and in its WAL)");
    drop(old);

    // Restarted without leading, the old node commits its WAL under its own id: exactly once,
    // beside the new leader's rows, whose segment numbers are counted apart.
    let restarted = open(node(data_old.path(), tables.path(), "old"), None).await;
    restarted.shutdown().await.unwrap();
    new.table("Heartbeat").unwrap().refresh().await.unwrap();
    assert_eq!(count(&new).await, 4, "a1, b1, a2 and a3, each once");
    let reopened = open(node(data_old.path(), tables.path(), "old"), None).await;
    assert_eq!(count(&reopened).await, 4, "nothing replayed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushing_everything_after_a_refused_commit_commits_the_rows_that_came_after_it_too() {
    let (tables, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let lease = Arc::new(TestFence::default());
    *lease.refused.lock().unwrap() = Some("the bucket is unreachable".into());
    let storage = open(node(data.path(), tables.path(), "a"), Some(lease.clone())).await;
    append(&storage, &["before"]).await;
    assert!(storage.flush_all().await.is_err());
    append(&storage, &["after"]).await;
    *lease.refused.lock().unwrap() = None;
    // One call: the refused flush is retried, then the later rows are flushed too (a clean
    // stop calls it once, and must leave nothing in the WAL).
    storage.flush_all().await.unwrap();
    drop(storage);
    let reader_dir = tempfile::tempdir().unwrap();
    let reader = open(node(reader_dir.path(), tables.path(), "reader"), None).await;
    assert_eq!(count(&reader).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_refused_commit_the_next_read_of_the_log_shows_every_file_the_refusal_read() {
    let tables = tempfile::tempdir().unwrap();
    let (data_old, data_new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (old, _, _new) = two_leaders(tables.path(), data_old.path(), data_new.path()).await;

    // The refusal read the log up to the new leader's commit to say why; the file list a
    // query sees was not replaced then. The next read of the log (the refresh loop's) must
    // show that commit's file, though the log itself has nothing newer.
    append(&old, &["a2"]).await;
    assert!(old.table("Heartbeat").unwrap().flush().await.is_err());
    old.table("Heartbeat").unwrap().refresh().await.unwrap();
    assert_eq!(count(&old).await, 3, "a1 and b1 committed, a2 buffered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_window_end_is_given_queries_see_every_commit_other_nodes_made_before() {
    let tables = tempfile::tempdir().unwrap();
    let (data_leader, data_other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A cluster node reads the log for other nodes' commits every hour here: only the window's
    // own read shows them.
    let every_hour = Some(Duration::from_secs(3600));
    let leader =
        open(StorageConfig { refresh: every_hour, ..node(data_leader.path(), tables.path(), "leader") }, None).await;
    let other = open(node(data_other.path(), tables.path(), "other"), None).await;
    append(&other, &["o1"]).await;
    other.flush_all().await.unwrap();
    assert_eq!(count(&leader).await, 0, "the log was not read again yet");

    leader.window_end().await.unwrap();
    assert_eq!(count(&leader).await, 1, "the other node's commit shows once a window may end past it");
}
