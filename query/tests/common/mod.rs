//! What the query crate's integration tests share.

use std::sync::Arc;
use std::time::Duration;

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
