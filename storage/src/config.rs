use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Storage engine settings. Every field has a default that suits one server on one disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Local data directory: the write-ahead log always lives here, and the tables too unless
    /// `table_url` points elsewhere.
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// The node's `cluster.node_id` in a cluster (set by the server, not in `[storage]`): its
    /// WAL then lives in `<data_dir>/cluster-wal` and its commits record the WAL segments under
    /// an application id of its own ([`StorageConfig::wal_app_id`]).
    #[serde(skip)]
    pub node_id: Option<String>,
    /// In a cluster (set by the server from `cluster.heartbeat`): how often each table's Delta
    /// log is read again for commits made by other nodes, so that queries see them.
    #[serde(skip)]
    pub refresh: Option<Duration>,
    /// Who commits this node's flushes (set by the server from `cluster.roles`).
    #[serde(skip)]
    pub commits: CommitMode,
    /// Where the Delta tables live: unset for `<data_dir>/tables`, or `s3://bucket/prefix`
    /// (credentials and endpoint from the usual `AWS_*` environment variables).
    pub table_url: Option<String>,
    /// Extra S3 client options (`aws_endpoint`, `aws_region`, `aws_allow_http`, ...), on top of
    /// the `AWS_*` environment variables.
    pub object_store_options: std::collections::BTreeMap<String, String>,
    /// Flush a table's buffer to Parquet when it holds this many bytes of Arrow data.
    pub flush_bytes: usize,
    /// Flush a table's buffer when its oldest record has waited this long.
    #[serde(with = "fimlake_settings::duration")]
    pub flush_age: Duration,
    /// Refuse new records (with a retry hint) when all tables together buffer more than this
    /// many bytes of Arrow data, counting the buffers being flushed (one budget, not one per
    /// table). The server derives it from its `memory_limit` unless it is set.
    pub max_buffer_bytes: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level for Parquet pages.
    pub zstd_level: i32,
    /// Compact a partition when it has at least this many files.
    pub compact_min_files: usize,
    /// A day's files are merged into one file once the day ended this long ago (records for
    /// it arriving later are merged into another file of the day).
    #[serde(with = "fimlake_settings::duration")]
    pub compact_day_after: Duration,
    /// How often compaction and retention run.
    #[serde(with = "fimlake_settings::duration")]
    pub maintenance_interval: Duration,
    /// Rows older than this are deleted by retention (PCI DSS asks for 12 months).
    pub retention_days: u32,
    /// Files removed from a table (by compaction or retention) are deleted from storage this long
    /// after their removal, so that queries already running can finish reading them.
    #[serde(with = "fimlake_settings::duration")]
    pub vacuum_delay: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("fimlake-data"),
            node_id: None,
            refresh: None,
            commits: CommitMode::Own,
            table_url: None,
            object_store_options: Default::default(),
            flush_bytes: 32 << 20,
            flush_age: Duration::from_secs(10),
            max_buffer_bytes: 128 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            compact_min_files: 8,
            compact_day_after: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(300),
            retention_days: 365,
            vacuum_delay: Duration::from_secs(3600),
        }
    }
}

/// Who commits a node's flushes to the Delta tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// The node commits them itself: a single server, or a cluster's leader.
    #[default]
    Own,
    /// A cluster's ingest or query node: it writes each flush's Parquet files to the bucket,
    /// stages them ([`crate::staging`]) and waits for the leader to commit them. It creates no
    /// table, changes no schema and runs no maintenance.
    Staged,
}

impl StorageConfig {
    pub fn wal_dir(&self) -> PathBuf {
        match self.node_id {
            None => self.data_dir.join("wal"),
            Some(_) => self.data_dir.join("cluster-wal"),
        }
    }

    /// The Delta `txn` application id under which commits record this node's WAL segments:
    /// [`crate::wal::WAL_APP_ID`] for a single node, `fimlake-wal/<node_id>` in a cluster, so
    /// that one node's segment numbers never stand for another's.
    pub fn wal_app_id(&self) -> String {
        match &self.node_id {
            None => crate::wal::WAL_APP_ID.to_string(),
            Some(node) => format!("{}/{node}", crate::wal::WAL_APP_ID),
        }
    }
}
