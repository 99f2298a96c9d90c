//! Prometheus metrics of the storage engine, registered on the server's registry.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct StorageMetrics {
    wal_sync_seconds: HistogramVec,
    wal_disk_full: IntCounterVec,
    flush_failures: IntCounterVec,
    flushes: IntCounterVec,
    flush_seconds: HistogramVec,
    flushed_rows: IntCounterVec,
    files: IntGaugeVec,
    bytes: IntGaugeVec,
    buffered_rows: IntGaugeVec,
    buffered_bytes: IntGaugeVec,
    compactions: IntCounterVec,
    retention_removed_files: IntCounterVec,
    log_read_timestamp: IntGaugeVec,
    staged_rows: IntCounterVec,
    buffer_limit_bytes: IntGauge,
}

/// The metrics of one table (children of the vectors above, looked up once).
#[derive(Clone)]
pub struct TableMetrics {
    pub wal_sync_seconds: Histogram,
    pub wal_disk_full: IntCounter,
    pub flush_failures: IntCounter,
    pub flushes: IntCounter,
    pub flush_seconds: Histogram,
    pub flushed_rows: IntCounter,
    pub files: IntGauge,
    pub bytes: IntGauge,
    pub buffered_rows: IntGauge,
    pub buffered_bytes: IntGauge,
    pub compactions: IntCounter,
    pub retention_removed_files: IntCounter,
    /// In a cluster: when the table's Delta log was last read for other nodes' commits.
    pub log_read_timestamp: IntGauge,
    /// On a cluster's leader: rows of the ingest nodes' staged flushes it committed.
    pub staged_rows: IntCounter,
}

impl StorageMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let t = &["table"];
        let m = StorageMetrics {
            wal_sync_seconds: HistogramVec::new(
                HistogramOpts::new("fimlake_wal_sync_seconds", "Latency of one WAL group write and fsync")
                    .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0]),
                t,
            )?,
            wal_disk_full: IntCounterVec::new(
                Opts::new("fimlake_wal_disk_full_total", "Appends refused because the WAL's file system was full"),
                t,
            )?,
            flush_failures: IntCounterVec::new(
                Opts::new(
                    "fimlake_flush_failures_total",
                    "Flushes that failed (their rows stay buffered and in the WAL)",
                ),
                t,
            )?,
            flushes: IntCounterVec::new(Opts::new("fimlake_flushes_total", "Buffer flushes committed to Delta"), t)?,
            flush_seconds: HistogramVec::new(
                HistogramOpts::new("fimlake_flush_seconds", "Duration of a flush: Parquet write and Delta commit")
                    .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                t,
            )?,
            flushed_rows: IntCounterVec::new(
                Opts::new("fimlake_flushed_rows_total", "Rows written to Parquet by flushes"),
                t,
            )?,
            files: IntGaugeVec::new(Opts::new("fimlake_table_files", "Live Parquet files of a table"), t)?,
            bytes: IntGaugeVec::new(Opts::new("fimlake_table_bytes", "Bytes of the live Parquet files of a table"), t)?,
            buffered_rows: IntGaugeVec::new(
                Opts::new("fimlake_buffered_rows", "Acknowledged rows not yet in Parquet"),
                t,
            )?,
            buffered_bytes: IntGaugeVec::new(
                Opts::new("fimlake_buffered_bytes", "Arrow bytes buffered, including the flush in progress"),
                t,
            )?,
            compactions: IntCounterVec::new(
                Opts::new("fimlake_compactions_total", "Hours or closed days whose files were merged into one"),
                t,
            )?,
            retention_removed_files: IntCounterVec::new(
                Opts::new("fimlake_retention_removed_files_total", "Files removed because their rows passed retention"),
                t,
            )?,
            log_read_timestamp: IntGaugeVec::new(
                Opts::new(
                    "fimlake_table_log_read_timestamp_seconds",
                    "In a cluster: when the table's Delta log was last read for other nodes' commits (Unix time)",
                ),
                t,
            )?,
            staged_rows: IntCounterVec::new(
                Opts::new(
                    "fimlake_staged_rows_committed_total",
                    "On a cluster's leader: rows of the flushes ingest nodes staged that it committed",
                ),
                t,
            )?,
            buffer_limit_bytes: IntGauge::new(
                "fimlake_buffer_limit_bytes",
                "Bytes all tables may buffer together (max_buffer_bytes); past it writes get 503",
            )?,
        };
        registry.register(Box::new(m.wal_sync_seconds.clone()))?;
        registry.register(Box::new(m.buffer_limit_bytes.clone()))?;
        registry.register(Box::new(m.wal_disk_full.clone()))?;
        registry.register(Box::new(m.flush_failures.clone()))?;
        registry.register(Box::new(m.flushes.clone()))?;
        registry.register(Box::new(m.flush_seconds.clone()))?;
        registry.register(Box::new(m.flushed_rows.clone()))?;
        registry.register(Box::new(m.files.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.buffered_rows.clone()))?;
        registry.register(Box::new(m.buffered_bytes.clone()))?;
        registry.register(Box::new(m.compactions.clone()))?;
        registry.register(Box::new(m.retention_removed_files.clone()))?;
        registry.register(Box::new(m.log_read_timestamp.clone()))?;
        registry.register(Box::new(m.staged_rows.clone()))?;
        Ok(m)
    }

    /// Publishes the one buffer budget the tables' `fimlake_buffered_bytes` add up against.
    pub fn set_buffer_limit(&self, bytes: usize) {
        self.buffer_limit_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn table(&self, table: &str) -> TableMetrics {
        let l = &[table];
        TableMetrics {
            wal_sync_seconds: self.wal_sync_seconds.with_label_values(l),
            wal_disk_full: self.wal_disk_full.with_label_values(l),
            flush_failures: self.flush_failures.with_label_values(l),
            flushes: self.flushes.with_label_values(l),
            flush_seconds: self.flush_seconds.with_label_values(l),
            flushed_rows: self.flushed_rows.with_label_values(l),
            files: self.files.with_label_values(l),
            bytes: self.bytes.with_label_values(l),
            buffered_rows: self.buffered_rows.with_label_values(l),
            buffered_bytes: self.buffered_bytes.with_label_values(l),
            compactions: self.compactions.with_label_values(l),
            retention_removed_files: self.retention_removed_files.with_label_values(l),
            log_read_timestamp: self.log_read_timestamp.with_label_values(l),
            staged_rows: self.staged_rows.with_label_values(l),
        }
    }
}
