//! Prometheus gauges of the query runtime's Parquet metadata cache, read from the cache when
//! the registry is gathered: how many files' footers it holds, their bytes and its limit. A
//! cache whose bytes sit at its limit while queries scan more files than it holds parses every
//! footer again on each query (`query.metadata_cache_bytes`).

use std::sync::Arc;

use datafusion::execution::cache::cache_manager::FileMetadataCache;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};

pub struct MetadataCacheMetrics {
    cache: Arc<FileMetadataCache>,
    files: IntGauge,
    bytes: IntGauge,
    limit_bytes: IntGauge,
}

impl MetadataCacheMetrics {
    pub fn new(cache: Arc<FileMetadataCache>) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help));
        Ok(MetadataCacheMetrics {
            cache,
            files: gauge(
                "fimlake_query_metadata_cache_files",
                "Parquet files whose parsed footer the query cache holds",
            )?,
            bytes: gauge(
                "fimlake_query_metadata_cache_bytes",
                "Bytes of the parsed Parquet footers the query cache holds",
            )?,
            limit_bytes: gauge(
                "fimlake_query_metadata_cache_limit_bytes",
                "The query metadata cache's limit (query.metadata_cache_bytes)",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 3] {
        [&self.files, &self.bytes, &self.limit_bytes]
    }
}

impl Collector for MetadataCacheMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let entries = self.cache.list_entries();
        let bytes: usize = entries.values().map(|entry| entry.size_bytes).sum();
        self.files.set(saturating_i64(entries.len()));
        self.bytes.set(saturating_i64(bytes));
        self.limit_bytes.set(saturating_i64(self.cache.cache_limit()));
        self.gauges().into_iter().flat_map(|g| g.collect()).collect()
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
