//! fimlake's storage engine.
//!
//! Each table of the [`TableRegistry`] is a Delta Lake table on an object store (a local
//! directory by default, S3 for scale-out), partitioned by the UTC day and hour of
//! `TimeGenerated`. Writes go through a per-table write-ahead log with group commit
//! ([`wal`]), into an Arrow buffer, and from there to Parquet in one Delta commit per flush
//! ([`delta`]). Queries read the Delta snapshot's files and the buffer through
//! [`TableScanProvider`].
//!
//! The crate knows nothing of HTTP or KQL: callers hand it Arrow batches in a table's schema.

pub mod budget;
mod buffer;
mod compaction;
pub mod config;
pub mod delta;
pub mod error;
mod handoff;
pub mod maintenance;
pub mod metrics;
mod pace;
pub mod provider;
pub mod receive;
pub mod reuse;
pub mod schema;
mod sorted;
pub mod staging;
pub mod table;
pub mod wal;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

pub use budget::BufferBudget;
pub use config::{CommitMode, StorageConfig};
pub use delta::{CommitFence, DataFile, LEADER_APP_ID};
pub use error::{Result, StorageError};
pub use maintenance::MaintenanceReport;
pub use metrics::StorageMetrics;
pub use provider::TableScanProvider;
pub use receive::{Receipt, ReceiveClock};
pub use schema::{Column, KustoType, PageCodec, TableDef, TableRegistry};
pub use table::{FlushOutcome, Table, TableSnapshot};

/// A table as it was when read, for queries only ([`Storage::open_read_only`]).
pub struct ReadOnlyTable {
    def: Arc<TableDef>,
    store: Arc<dyn ObjectStore>,
    /// Whether `store` is an object store (`delta::Location::remote`).
    remote: bool,
    snapshot: TableSnapshot,
}

impl provider::ScanSource for ReadOnlyTable {
    fn def(&self) -> &Arc<TableDef> {
        &self.def
    }
    fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }
    fn snapshot(&self) -> TableSnapshot {
        self.snapshot.clone()
    }
    fn remote(&self) -> bool {
        self.remote
    }
}

/// How long a stopping ingest node waits for the leader to commit its last flushes.
pub const STAGED_SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// All tables, opened and running: WAL writers, flush loops and maintenance.
pub struct Storage {
    config: Arc<StorageConfig>,
    registry: TableRegistry,
    tables: HashMap<String, Arc<Table>>,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    table_root: String,
    receive_clock: Arc<ReceiveClock>,
    /// See [`Storage::set_cluster_floor`].
    cluster_floor: std::sync::atomic::AtomicI64,
}

impl Storage {
    /// Opens every table of `registry` (creating what is missing), replays their WALs and
    /// starts the background flush and maintenance loops.
    pub async fn open(
        config: StorageConfig,
        registry: TableRegistry,
        metrics_registry: &prometheus::Registry,
    ) -> Result<Arc<Storage>> {
        Storage::open_fenced(config, registry, metrics_registry, None).await
    }

    /// [`Storage::open`] for a cluster's leader: every commit is fenced by its lease.
    pub async fn open_fenced(
        config: StorageConfig,
        registry: TableRegistry,
        metrics_registry: &prometheus::Registry,
        fence: Option<Arc<dyn CommitFence>>,
    ) -> Result<Arc<Storage>> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StorageError::io(&config.data_dir, e))?;
        let metrics = StorageMetrics::new(metrics_registry)
            .map_err(|e| StorageError::Config(format!("metrics registration: {e}")))?;
        let (root_store, root_url) = root_store(&config)?;
        let budget = Arc::new(BufferBudget::new(config.max_buffer_bytes));
        metrics.set_buffer_limit(config.max_buffer_bytes);
        let staging = match config.node_id {
            Some(_) => Some(staging::Staging::new(store_beside_tables(&config, staging::STAGED_DIR)?)),
            None => None,
        };
        let mut tables = HashMap::new();
        for def in registry.tables() {
            let url = root_url
                .join(&format!("{}/", def.name()))
                .map_err(|e| StorageError::Config(format!("table URL for {}: {e}", def.name())))?;
            let loc = delta::Location::new(root_store.clone(), url)?;
            let metrics = metrics.table(def.name());
            let table =
                Table::open(def.clone(), config.clone(), loc, metrics, budget.clone(), fence.clone(), staging.clone())
                    .await?;
            tables.insert(def.name().to_string(), table);
        }
        let (shutdown, _) = watch::channel(false);
        let storage = Arc::new(Storage {
            config,
            registry,
            tables,
            shutdown,
            tasks: std::sync::Mutex::new(Vec::new()),
            table_root: root_url.to_string(),
            receive_clock: Arc::default(),
            cluster_floor: std::sync::atomic::AtomicI64::new(i64::MAX),
        });
        storage.start_background(fence.is_some());
        Ok(storage)
    }

    /// The flush loops; in a cluster the refresh loops; where this node commits, maintenance,
    /// and on a cluster's leader (`leading`) the commit of the ingest nodes' staged flushes.
    fn start_background(self: &Arc<Self>, leading: bool) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        if let Some(every) = self.config.refresh {
            for table in self.tables.values() {
                tasks.push(tokio::spawn(refresh_loop(table.clone(), every, self.shutdown.subscribe())));
                if leading {
                    tasks.push(tokio::spawn(commit_staged_loop(table.clone(), every, self.shutdown.subscribe())));
                }
                if self.config.commits == CommitMode::Staged {
                    tasks.push(tokio::spawn(watch_staged_loop(table.clone(), self.shutdown.subscribe())));
                }
            }
        }
        let tick = (self.config.flush_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        for table in self.tables.values() {
            let table = table.clone();
            let mut stop = self.shutdown.subscribe();
            tasks.push(tokio::spawn(async move {
                let mut failures = 0u32;
                loop {
                    tokio::select! {
                        _ = table.flush_requested() => {}
                        _ = tokio::time::sleep(tick) => {}
                        _ = stop.changed() => break,
                    }
                    if !table.flush_due() {
                        continue;
                    }
                    match table.flush_step().await {
                        Ok(_) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            let wait = Duration::from_millis(100 * 2u64.pow(failures.min(8)));
                            tracing::error!(table = table.name(), error = %e, retry_in = ?wait, "flush failed; rows stay buffered and in the WAL");
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }));
        }
        if self.config.commits == CommitMode::Staged {
            return;
        }
        for table in self.tables.values() {
            let table = table.clone();
            let mut stop = self.shutdown.subscribe();
            let every = self.config.maintenance_interval;
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => break,
                    }
                    match table.maintain(chrono::Utc::now()).await {
                        Ok(r) if r != MaintenanceReport::default() => {
                            tracing::info!(table = table.name(), report = ?r, "maintenance")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(table = table.name(), error = %e, "maintenance failed"),
                    }
                }
            }));
        }
    }

    /// Query access to the tables of `config` as they are now, without opening them for writing:
    /// the committed files of each Delta table and the acknowledged rows still in its WAL.
    /// No table is created and no WAL replayed, trimmed or written, so a running server is not
    /// disturbed; a table that does not exist yet reads as empty.
    pub async fn open_read_only(
        config: &StorageConfig,
        registry: &TableRegistry,
    ) -> Result<Vec<(String, Arc<TableScanProvider>)>> {
        if config.table_url.is_none() && !config.data_dir.is_dir() {
            return Err(StorageError::Config(format!("data directory {} does not exist", config.data_dir.display())));
        }
        let (root_store, root_url) = root_store(config)?;
        let mut out = Vec::new();
        for def in registry.tables() {
            let url = root_url
                .join(&format!("{}/", def.name()))
                .map_err(|e| StorageError::Config(format!("table URL for {}: {e}", def.name())))?;
            let loc = delta::Location::new(root_store.clone(), url)?;
            let mut table = deltalake_core::DeltaTable::new(loc.log_store.clone());
            let exists = table.verify_deltatable_existence().await.map_err(|e| StorageError::delta(def.name(), e))?;
            let (files, committed) = if exists {
                table.load().await.map_err(|e| StorageError::delta(def.name(), e))?;
                let committed = delta::committed_wal_segment(&table, def.name(), &config.wal_app_id()).await?;
                (delta::live_files(&table, def.name())?, committed)
            } else {
                (Vec::new(), None)
            };
            let dir = config.wal_dir().join(def.name());
            let schema = def.schema().clone();
            let batches = tokio::task::spawn_blocking(move || wal::read_uncommitted(&dir, &schema, committed))
                .await
                .expect("WAL read panicked")?;
            let frozen = ReadOnlyTable {
                def: def.clone(),
                store: loc.store.clone(),
                remote: loc.remote,
                snapshot: TableSnapshot { files: Arc::new(files), batches },
            };
            out.push((def.name().to_string(), Arc::new(TableScanProvider::new(Arc::new(frozen)))));
        }
        Ok(out)
    }

    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    pub fn registry(&self) -> &TableRegistry {
        &self.registry
    }

    /// Where the Delta tables live (a `file://` or `s3://` URL ending in `/`).
    pub fn table_root(&self) -> &str {
        &self.table_root
    }

    /// Stamps `_TimeReceived` for a request; keep the [`Receipt`] until its append returned.
    pub fn stamp_received(&self) -> Receipt {
        self.receive_clock.stamp()
    }

    /// Every record received before this instant (µs) is visible to queries or was refused:
    /// where a window over `_TimeReceived` may end without missing anything. On a cluster's
    /// leader, also below the ingest nodes' floor ([`Storage::set_cluster_floor`]).
    pub fn visible_before(&self) -> i64 {
        let floor = self.cluster_floor.load(std::sync::atomic::Ordering::Acquire);
        self.receive_clock.visible_before().min(floor)
    }

    /// Where a window over `_TimeReceived` may end now ([`Storage::visible_before`]), with every
    /// record before it in what this node's queries see from now on. In a cluster the other
    /// nodes' floor may count on a commit this node has not read yet (one the previous leader
    /// made just before it died, landing after this node opened its tables), or on one of its
    /// own still finishing (an ingest node sees it in the log before delta-rs returns): the
    /// tables' logs are read again after the floor, under the lock commits hold, so that such
    /// commits show.
    pub async fn window_end(&self) -> Result<i64> {
        let end = self.visible_before();
        if self.config.refresh.is_some() {
            for table in self.tables.values() {
                table.refresh().await?;
            }
        }
        Ok(end)
    }

    /// On a cluster's leader: every record the other nodes received before `floor` (µs) is
    /// committed (`i64::MAX`: no other node holds records).
    pub fn set_cluster_floor(&self, floor: i64) {
        self.cluster_floor.store(floor, std::sync::atomic::Ordering::Release);
    }

    /// Every record this node received before this instant (µs) is committed, or was refused:
    /// what an ingest node publishes for the leader's alert windows.
    pub fn committed_before(&self) -> i64 {
        self.receive_clock
            .committed_before(|| self.tables.values().filter_map(|t| t.oldest_uncommitted_receipt()).min())
    }

    pub fn table(&self, name: &str) -> Result<&Arc<Table>> {
        self.tables.get(name).ok_or_else(|| StorageError::UnknownTable(name.to_string()))
    }

    /// A DataFusion provider for every table, by name.
    pub fn providers(&self) -> Vec<(String, Arc<TableScanProvider>)> {
        self.registry
            .tables()
            .iter()
            .map(|d| (d.name().to_string(), Arc::new(TableScanProvider::new(self.tables[d.name()].clone()))))
            .collect()
    }

    /// `Err` naming every table that cannot take writes.
    pub fn health(&self) -> std::result::Result<(), String> {
        let failures: Vec<String> = self.tables.values().filter_map(|t| t.health().err()).collect();
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }

    /// Flushes every table now: every row acknowledged so far is committed when it returns.
    pub async fn flush_all(&self) -> Result<()> {
        for t in self.tables.values() {
            t.flush_all_rows().await?;
        }
        Ok(())
    }

    /// Stops the background loops and flushes every buffer. Rows that cannot be flushed stay
    /// in the WAL and are replayed at the next start.
    /// A node whose flushes the leader commits waits for it at most [`STAGED_SHUTDOWN_WAIT`].
    pub async fn shutdown(&self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let tasks: Vec<_> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        match self.config.commits {
            CommitMode::Own => self.flush_all().await,
            CommitMode::Staged => tokio::time::timeout(STAGED_SHUTDOWN_WAIT, self.flush_all())
                .await
                .map_err(|_| StorageError::NoLeaderCommit { waited: STAGED_SHUTDOWN_WAIT })?,
        }
    }
}

/// Reads a table's Delta log every `every` for other nodes' commits, until shutdown.
async fn refresh_loop(table: Arc<Table>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        if let Err(e) = table.refresh().await {
            tracing::warn!(table = table.name(), error = %e, "reading the Delta log for other nodes' commits failed");
        }
    }
}

/// On an ingest node: looks for the leader's commit of the table's staged flushes while any
/// waits, so that their rows leave the buffer soon after it.
async fn watch_staged_loop(table: Arc<Table>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(table.commit_poll_interval()) => {}
            _ = stop.changed() => break,
        }
        match table.check_staged().await {
            Ok(()) => {}
            // The flush loop stages the rows again.
            Err(e @ StorageError::StagedNotCommitted { .. }) => tracing::warn!(table = table.name(), error = %e),
            Err(e) => tracing::warn!(table = table.name(), error = %e, "looking for the leader's commit failed"),
        }
    }
}

/// How many rounds in a row find nothing to commit before the leader looks again only every
/// refresh interval: while ingest nodes keep staging, it looks [`BUSY_ROUNDS_PER_REFRESH`]
/// times as often, so that their flushes do not wait for the next interval.
const BUSY_ROUNDS_PER_REFRESH: u32 = 5;

/// On a cluster's leader: commits the ingest nodes' staged flushes of a table every `every`,
/// and [`BUSY_ROUNDS_PER_REFRESH`] times as often for an interval after a round that found
/// some.
async fn commit_staged_loop(table: Arc<Table>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut quiet_rounds = BUSY_ROUNDS_PER_REFRESH;
    loop {
        let wait = if quiet_rounds < BUSY_ROUNDS_PER_REFRESH { every / BUSY_ROUNDS_PER_REFRESH } else { every };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        quiet_rounds = quiet_rounds.saturating_add(1);
        match table.commit_staged().await {
            Ok(0) => {}
            Ok(rows) => {
                quiet_rounds = 0;
                tracing::debug!(table = table.name(), rows, "committed the ingest nodes' staged flushes");
            }
            Err(e) => {
                tracing::warn!(table = table.name(), error = %e, "committing the ingest nodes' staged flushes failed")
            }
        }
    }
}

/// `table_url` as a URL: `s3://...`, `file://...`, or an absolute local path.
fn table_url(u: &str) -> Result<Url> {
    match Url::parse(u) {
        Ok(url) => Ok(url),
        Err(url::ParseError::RelativeUrlWithoutBase) if std::path::Path::new(u).is_absolute() => {
            Url::from_directory_path(u)
                .map_err(|()| StorageError::Config(format!("table_url '{u}' is not a valid path")))
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            Err(StorageError::Config(format!("table_url '{u}' is neither a URL (s3://, file://) nor an absolute path")))
        }
        Err(e) => Err(StorageError::Config(format!("table_url '{u}': {e}"))),
    }
}

/// An object store rooted at `dir` beside the tables (`<table_url>/<dir>/`): where a cluster
/// keeps its lease and registrations.
pub fn store_beside_tables(config: &StorageConfig, dir: &str) -> Result<Arc<dyn ObjectStore>> {
    let (root, url) = root_store(config)?;
    let prefix = object_store::path::Path::from_url_path(url.path())?.join(dir);
    Ok(Arc::new(object_store::prefix::PrefixStore::new(root, prefix)))
}

/// The object store holding the tables, rooted at its namespace root, and the URL of the
/// directory the tables go in.
fn root_store(config: &StorageConfig) -> Result<(Arc<dyn ObjectStore>, Url)> {
    match &config.table_url {
        None => {
            let dir = config.data_dir.join("tables");
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
            let abs = std::fs::canonicalize(&dir).map_err(|e| StorageError::io(&dir, e))?;
            let url = Url::from_directory_path(&abs)
                .map_err(|()| StorageError::Config(format!("{} is not an absolute path", abs.display())))?;
            Ok((Arc::new(LocalFileSystem::new()), url))
        }
        Some(u) => {
            let mut url = table_url(u)?;
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            match url.scheme() {
                "s3" | "s3a" => {
                    let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                    for (k, v) in &config.object_store_options {
                        let key =
                            k.parse().map_err(|e| StorageError::Config(format!("object store option '{k}': {e}")))?;
                        b = b.with_config(key, v);
                    }
                    Ok((Arc::new(b.build()?), url))
                }
                "file" => {
                    let path = url
                        .to_file_path()
                        .map_err(|()| StorageError::Config(format!("table_url '{u}' is not a local path")))?;
                    std::fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
                    Ok((Arc::new(LocalFileSystem::new()), url))
                }
                other => Err(StorageError::Config(format!(
                    "table_url '{u}': unsupported scheme '{other}' (use a local path, file:// or s3://)"
                ))),
            }
        }
    }
}

/// Options for the S3 client (`aws_endpoint`, `aws_region`, `aws_allow_http`...), in addition to
/// the `AWS_*` environment variables.
pub type ObjectStoreOptions = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_url_takes_urls_and_absolute_paths() {
        assert_eq!(table_url("s3://bucket/prefix").unwrap().as_str(), "s3://bucket/prefix");
        assert_eq!(table_url("file:///srv/tables").unwrap().as_str(), "file:///srv/tables");
        assert_eq!(table_url("/srv/tables").unwrap().as_str(), "file:///srv/tables/");
        let relative = table_url("srv/tables").unwrap_err().to_string();
        assert!(relative.contains("neither a URL (s3://, file://) nor an absolute path"), "{relative}");
    }
}
