//! The server's configuration: defaults, then a TOML file, then `FIMLAKE_*` environment
//! variables, then command-line flags, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fimlake_alerting::AlertingConfig;
use fimlake_ingest::IngestConfig;
use fimlake_query::QueryConfig;
use fimlake_storage::StorageConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Local data directory (WAL, tables unless `storage.table_url` says otherwise, workspace id).
    pub data_dir: PathBuf,
    /// The workspace id (`TenantId` of records, `{workspaceId}` of the query API). Generated
    /// at first start and kept in the data directory when unset.
    pub workspace_id: Option<String>,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub query: QueryConfig,
    /// Alert rules: where they are, catch-up, notification limits, delivery retries.
    pub alerting: AlertingConfig,
    /// API keys (`[[auth.keys]]`); none (and none made at runtime): no authentication,
    /// loopback addresses only.
    pub auth: crate::auth::AuthConfig,
    /// Keys made at runtime and enrollment (`[fleet] enrollments_per_minute`).
    pub fleet: fimlake_fleet::FleetConfig,
    /// Serve HTTPS (`[tls] cert_file, key_file`).
    pub tls: Option<crate::tls::TlsConfig>,
    /// A client must have sent its request headers within this time (slow clients).
    #[serde(with = "fimlake_settings::duration")]
    pub header_read_timeout: std::time::Duration,
    /// A request body must have arrived within this time (slow uploads).
    #[serde(with = "fimlake_settings::duration")]
    pub body_read_timeout: std::time::Duration,
    /// Open connections at most; past it, new ones are closed at once.
    pub max_connections: usize,
    /// The console at `/`: sessions, when a machine counts as silent.
    pub ui: fimlake_ui::UiConfig,
    /// Memory the server may hold for what grows with load, in bytes: the write buffers of all
    /// tables and their flushes, request bodies being decoded, and queries. Shared out in
    /// `memory.rs` ([`crate::memory::Shares`]); a part's own limit, when set, wins.
    pub memory_limit: usize,
    /// Several nodes on one shared `storage.table_url` (`[cluster] node_id`, ...); off unless
    /// `node_id` is set.
    pub cluster: fimlake_cluster::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("fimlake-data"),
            workspace_id: None,
            storage: StorageConfig::default(),
            ingest: IngestConfig::default(),
            query: QueryConfig::default(),
            alerting: AlertingConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            fleet: fimlake_fleet::FleetConfig::default(),
            tls: None,
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            ui: fimlake_ui::UiConfig::default(),
            memory_limit: crate::memory::DEFAULT_LIMIT,
            cluster: fimlake_cluster::ClusterConfig::default(),
        }
    }
}

/// Environment variables read besides the settings themselves (and `FIMLAKE_TEST_*`, which
/// belong to the test suite): the log filter, the configuration file, and the CLI's client
/// settings (`fimlake query --data-dir` and `serve` run beside them).
const OTHER_VARS: &[&str] =
    &["FIMLAKE_LOG", "FIMLAKE_CONFIG", "FIMLAKE_SERVER", "FIMLAKE_API_KEY", "FIMLAKE_CA_FILE", "FIMLAKE_CLIENT_CONFIG"];

impl Config {
    /// Loads the configuration from `file` (if any) and the environment.
    pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> anyhow::Result<Config> {
        let mut doc = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(name) = key.strip_prefix("FIMLAKE_") else { continue };
            if OTHER_VARS.contains(&key.as_str()) || key.starts_with("FIMLAKE_TEST_") {
                continue;
            }
            let name = name.to_ascii_lowercase();
            let (section, field) = match name.split_once('_') {
                Some((s @ ("storage" | "ingest" | "query" | "alerting" | "ui" | "fleet" | "cluster"), f)) => {
                    (Some(s), f.to_string())
                }
                _ => (None, name.clone()),
            };
            let parsed = parse_env_value(&value);
            let target = match section {
                Some(s) => doc
                    .entry(s)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .with_context(|| format!("[{s}] in the config file is not a table"))?,
                None => &mut doc,
            };
            target.insert(field, parsed);
        }
        let explicit = crate::memory::Explicit::of(&doc);
        let mut cfg: Config = Config::deserialize(doc)
            .map_err(|e| anyhow::anyhow!("invalid configuration (from the config file or FIMLAKE_* variables): {e}"))?;
        cfg.storage.data_dir = cfg.data_dir.clone();
        cfg.storage.node_id = cfg.cluster.node_id.clone();
        cfg.storage.refresh = cfg.cluster.enabled().then_some(cfg.cluster.heartbeat);
        if cfg.memory_limit < crate::memory::MIN_LIMIT {
            bail!("memory_limit must be at least {} bytes (64 MiB)", crate::memory::MIN_LIMIT);
        }
        crate::memory::share_out(&mut cfg, &explicit);
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.ingest.max_body_bytes == 0 || self.ingest.max_decompressed_bytes < self.ingest.max_body_bytes {
            bail!("ingest.max_decompressed_bytes must be at least ingest.max_body_bytes, and both above 0");
        }
        if self.storage.max_buffer_bytes < self.storage.flush_bytes {
            bail!(
                "storage.max_buffer_bytes ({}, from memory_limit unless set) must be at least storage.flush_bytes ({})",
                self.storage.max_buffer_bytes,
                self.storage.flush_bytes
            );
        }
        if self.query.max_rows == 0 || self.query.max_memory_bytes < (16 << 20) {
            bail!(
                "query.max_rows must be above 0 and query.max_memory_bytes (from memory_limit unless set) at least 16 MiB"
            );
        }
        if !(1..=22).contains(&self.storage.zstd_level) {
            bail!("storage.zstd_level must be between 1 and 22");
        }
        self.cluster.validate().map_err(|e| anyhow::anyhow!(e))?;
        let on_s3 =
            self.storage.table_url.as_deref().is_some_and(|u| u.starts_with("s3://") || u.starts_with("s3a://"));
        if self.cluster.enabled() && !on_s3 {
            bail!(
                "cluster.node_id is set but storage.table_url is not on S3: the nodes of a cluster share their tables, \
                 lease and registrations in one bucket, with conditional writes a local directory cannot give"
            );
        }
        Ok(())
    }
}

/// `FIMLAKE_INGEST_MAX_RECORDS=10` is the integer 10, `true` a boolean, anything else a string.
fn parse_env_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(v.to_string())
}

/// The workspace id: configured, or read from `<data_dir>/workspace-id`, or created there.
pub fn workspace_id(cfg: &Config) -> anyhow::Result<String> {
    if let Some(id) = &cfg.workspace_id {
        return Ok(id.clone());
    }
    let path = cfg.data_dir.join("workspace-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, format!("{id}\n")).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn environment_overrides_the_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fimlake.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[storage]\nflush_age = \"2s\"\nretention_days = 400\n")
            .unwrap();
        let cfg = Config::load(
            Some(&file),
            env(&[
                ("FIMLAKE_STORAGE_RETENTION_DAYS", "30"),
                ("FIMLAKE_DATA_DIR", "/tmp/x"),
                ("FIMLAKE_INGEST_MAX_RECORDS", "7"),
                ("PATH", "/bin"),
                // The CLI's client settings live beside the server's.
                ("FIMLAKE_SERVER", "https://fim.example:8443"),
                ("FIMLAKE_API_KEY", "flk_x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.storage.flush_age, std::time::Duration::from_secs(2));
        assert_eq!(cfg.storage.retention_days, 30);
        assert_eq!(cfg.ingest.max_records, 7);
        assert_eq!(cfg.storage.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn one_memory_limit_sets_the_buffers_decoding_and_queries_unless_they_are_set() {
        let cfg = Config::load(None, env(&[("FIMLAKE_MEMORY_LIMIT", "536870912")])).unwrap();
        let shares = crate::memory::Shares::of(512 << 20);
        assert_eq!(cfg.storage.max_buffer_bytes, shares.buffers);
        assert_eq!(cfg.ingest.max_decoding_bytes, shares.decoding);
        assert_eq!(cfg.query.max_memory_bytes, shares.queries);
        assert!(cfg.storage.flush_bytes <= cfg.storage.max_buffer_bytes / 4);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fimlake.toml");
        std::fs::write(&file, "memory_limit = 536870912\n[query]\nmax_memory_bytes = 33554432\n").unwrap();
        let cfg = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(cfg.query.max_memory_bytes, 32 << 20, "a part's own limit wins");
        assert_eq!(cfg.storage.max_buffer_bytes, shares.buffers, "the others still come from memory_limit");

        let default = Config::load(None, env(&[])).unwrap();
        assert_eq!(default.storage.max_buffer_bytes, crate::memory::Shares::of(crate::memory::DEFAULT_LIMIT).buffers);
        assert_eq!(default.query.metadata_cache_bytes, fimlake_query::METADATA_CACHE_BYTES, "beside memory_limit");
        std::fs::write(&file, "[query]\nmetadata_cache_bytes = 268435456\n").unwrap();
        let cfg = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(cfg.query.metadata_cache_bytes, 256 << 20);

        let e = Config::load(None, env(&[("FIMLAKE_MEMORY_LIMIT", "1000")])).unwrap_err();
        assert!(e.to_string().contains("memory_limit must be at least"), "{e}");
    }

    #[test]
    fn cluster_mode_needs_a_bucket_and_gives_the_node_its_own_wal() {
        let e = Config::load(None, env(&[("FIMLAKE_CLUSTER_NODE_ID", "fim-1")])).unwrap_err();
        assert!(e.to_string().contains("storage.table_url is not on S3"), "{e}");
        let e = Config::load(
            None,
            env(&[("FIMLAKE_CLUSTER_NODE_ID", "fim/1"), ("FIMLAKE_STORAGE_TABLE_URL", "s3://bucket/fim")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cluster.node_id 'fim/1'"), "{e}");
        let cfg = Config::load(
            None,
            env(&[
                ("FIMLAKE_CLUSTER_NODE_ID", "fim-1"),
                ("FIMLAKE_CLUSTER_LEASE_TTL", "6s"),
                ("FIMLAKE_STORAGE_TABLE_URL", "s3://bucket/fim"),
                ("FIMLAKE_DATA_DIR", "/var/lib/fimlake"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.cluster.lease_ttl, std::time::Duration::from_secs(6));
        assert_eq!(cfg.storage.wal_dir(), PathBuf::from("/var/lib/fimlake/cluster-wal"));
        assert_eq!(cfg.storage.wal_app_id(), "fimlake-wal/fim-1");
        let single = Config::load(None, env(&[])).unwrap();
        assert_eq!(single.storage.wal_app_id(), "fimlake-wal", "a single node keeps the id its tables record");
    }

    #[test]
    fn unknown_settings_are_errors_not_ignored() {
        let e = Config::load(None, env(&[("FIMLAKE_STORAGE_FLUSH_AEG", "1s")])).unwrap_err();
        assert!(e.to_string().contains("unknown field `flush_aeg`"), "{e}");
        let e = Config::load(None, env(&[("FIMLAKE_STORAGE_ZSTD_LEVEL", "99")])).unwrap_err();
        assert!(e.to_string().contains("zstd_level"), "{e}");
    }

    #[test]
    fn the_readme_configuration_is_valid_and_means_the_defaults() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let block = section.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fimlake.toml");
        std::fs::write(&file, block).unwrap();
        let cfg = Config::load(Some(&file), env(&[("FIMLAKE_ALERTING_MAX_CATCH_UP", "2d")])).unwrap();
        let defaults = fimlake_alerting::AlertingConfig::default();
        assert_eq!(cfg.alerting.delivery.retry_for, defaults.delivery.retry_for);
        assert_eq!(cfg.alerting.query_timeout, defaults.query_timeout);
        assert_eq!(cfg.alerting.max_catch_up, std::time::Duration::from_secs(2 * 86400), "the variable wins");
        assert_eq!(cfg.storage.retention_days, StorageConfig::default().retention_days);
        let cluster = fimlake_cluster::ClusterConfig::default();
        assert_eq!(cfg.cluster.distribute_above_files, cluster.distribute_above_files);
        assert_eq!(cfg.cluster.distribute_above_bytes, cluster.distribute_above_bytes);
        assert_eq!(cfg.cluster.worker_listen, cluster.worker_listen);
    }
}
