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
    /// Where the Delta tables live: unset for `<data_dir>/tables`, or `s3://bucket/prefix`
    /// (credentials and endpoint from the usual `AWS_*` environment variables).
    pub table_url: Option<String>,
    /// Extra S3 client options (`aws_endpoint`, `aws_region`, `aws_allow_http`, ...), on top of
    /// the `AWS_*` environment variables.
    pub object_store_options: std::collections::BTreeMap<String, String>,
    /// Flush a table's buffer to Parquet when it holds this many bytes of Arrow data.
    pub flush_bytes: usize,
    /// Flush a table's buffer when its oldest record has waited this long.
    #[serde(with = "humantime_serde_compat")]
    pub flush_age: Duration,
    /// Refuse new records (with a retry hint) when a table buffers more than this many bytes,
    /// counting the buffer being flushed.
    pub max_buffer_bytes: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level for Parquet pages.
    pub zstd_level: i32,
    /// Compact a partition when it has at least this many files.
    pub compact_min_files: usize,
    /// How often compaction and retention run.
    #[serde(with = "humantime_serde_compat")]
    pub maintenance_interval: Duration,
    /// Rows older than this are deleted by retention (PCI DSS asks for 12 months).
    pub retention_days: u32,
    /// Files removed from a table (by compaction or retention) are deleted from storage this long
    /// after their removal, so that queries already running can finish reading them.
    #[serde(with = "humantime_serde_compat")]
    pub vacuum_delay: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("fimlake-data"),
            table_url: None,
            object_store_options: Default::default(),
            flush_bytes: 32 << 20,
            flush_age: Duration::from_secs(10),
            max_buffer_bytes: 128 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            compact_min_files: 8,
            maintenance_interval: Duration::from_secs(300),
            retention_days: 365,
            vacuum_delay: Duration::from_secs(3600),
        }
    }
}

impl StorageConfig {
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }
}

/// Durations in the configuration are written as whole seconds (`flush_age = 10`) or as a
/// string with a unit (`flush_age = "500ms"`, `"10s"`, `"5m"`, `"1h"`, `"7d"`).
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() == 0 {
            s.serialize_str(&format!("{}s", d.as_secs()))
        } else {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse_duration(&t).map_err(de::Error::custom),
        }
    }

    /// Parses `500ms`, `10s`, `5m`, `1h`, `7d` or a bare number of seconds.
    pub fn parse_duration(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration '{text}': expected a number with a unit such as 10s, 5m, 1h"))?;
        let ms = match unit.trim() {
            "" | "s" => n * 1000,
            "ms" => n,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            "d" => n * 86_400_000,
            other => return Err(format!("invalid duration unit '{other}' in '{text}': use ms, s, m, h or d")),
        };
        Ok(Duration::from_millis(ms))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn durations_parse_with_units() {
            assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
            assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
            assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
            assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
            assert!(parse_duration("5 weeks").unwrap_err().contains("unit"));
            assert!(parse_duration("soon").unwrap_err().contains("invalid duration"));
        }
    }
}
