//! What the query crate's integration tests share.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use fimlake_storage::{Storage, StorageConfig, TableRegistry};

/// Storage in `dir` that flushes and maintains only when told.
pub async fn open(dir: &std::path::Path) -> Arc<Storage> {
    let cfg = StorageConfig {
        data_dir: dir.to_path_buf(),
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    Storage::open(cfg, TableRegistry::builtin(), &prometheus::Registry::new()).await.unwrap()
}

/// One heartbeat per time, from the computer `computer` names for its index.
#[allow(dead_code, reason = "each test crate compiles this module; not every one builds heartbeats")]
pub fn heartbeats(
    schema: &arrow::datatypes::SchemaRef,
    times: &[i64],
    computer: impl Fn(usize) -> &'static str,
) -> RecordBatch {
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => {
                Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")) as ArrayRef
            }
            "Computer" => Arc::new(StringArray::from((0..times.len()).map(&computer).collect::<Vec<_>>())),
            _ => new_null_array(f.data_type(), times.len()),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), cols).unwrap()
}
