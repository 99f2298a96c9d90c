use std::path::PathBuf;
use std::time::Duration;

/// Everything the storage engine can fail with. Variants separate the caller's fault
/// (`UnknownTable`, `SchemaMismatch`), load (`Backpressure`) and the engine's own failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("table '{0}' does not exist")]
    UnknownTable(String),

    #[error("record batch for table '{table}' does not match its schema: {detail}")]
    SchemaMismatch { table: String, detail: String },

    /// The write buffers (of all tables together) are full; the caller should retry after
    /// `retry_after`.
    /// `flush_failure` is why this table's last flush failed, when it did (storage unreachable,
    /// disk full): what keeps the buffers full.
    /// `awaiting_leader`: on a cluster's ingest node, its flush is staged and waits for the
    /// leader's commit (none is running, or it cannot reach the bucket).
    #[error(
        "the write buffers are full ({buffered_bytes} bytes buffered by all tables) and table '{table}' takes no more records until a flush; retry later{}{}",
        flush_failure.as_ref().map(|f| format!(" (its last flush failed: {f})")).unwrap_or_default(),
        if *awaiting_leader { " (its flush is staged and waits for the cluster's leader to commit it: is a leader running?)" } else { "" }
    )]
    Backpressure {
        table: String,
        buffered_bytes: usize,
        retry_after: Duration,
        flush_failure: Option<String>,
        awaiting_leader: bool,
    },

    /// A WAL write or fsync failed. The WAL is then closed for writes: after a failed fsync the
    /// state of the file is unknown, so no further acknowledgement can be trusted.
    #[error("write-ahead log of table '{table}' failed: {detail}")]
    Wal { table: String, detail: String },

    /// The WAL's file system is full: the records were not written (nor acknowledged). Writes
    /// resume by themselves once space is freed.
    #[error(
        "no space left for the write-ahead log of table '{table}' ({detail}); the records were not accepted; free space on the data directory's file system and retry"
    )]
    DiskFull { table: String, detail: String },

    #[error("write-ahead log of table '{table}' is unavailable after an earlier failure: {detail}")]
    WalPoisoned { table: String, detail: String },

    /// A commit by a node that is not (or no longer) the cluster's leader: refused before it
    /// reaches the Delta log, or by the log itself when a newer leader committed meanwhile.
    #[error("commit to table '{table}' refused: {reason}")]
    Fenced { table: String, reason: String },

    /// A flush an ingest node staged was set aside by the leader without a commit (it did not
    /// follow the node's last committed one); the node stages it again.
    #[error("table '{table}': the leader did not commit the staged flush up to WAL segment {upto}: {reason}")]
    StagedNotCommitted { table: String, upto: u64, reason: String },

    /// A stopping ingest node's last flushes were not committed in time (no leader?).
    #[error(
        "no leader committed this node's staged flushes within {waited:?}; its records stay in its WAL and are staged again when it starts"
    )]
    NoLeaderCommit { waited: Duration },

    #[error("storage is shutting down")]
    ShuttingDown,

    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("Delta Lake error on table '{table}': {source}")]
    Delta { table: String, source: Box<deltalake_core::DeltaTableError> },

    #[error("object store path: {0}")]
    Path(#[from] object_store::path::Error),

    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("Parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("DataFusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io { path: path.into(), source }
    }

    pub(crate) fn delta(table: &str, source: deltalake_core::DeltaTableError) -> Self {
        StorageError::Delta { table: table.to_string(), source: Box::new(source) }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
