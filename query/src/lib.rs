//! fimlake's query side: KQL text to rows, over the storage tables ([`QueryEngine`]), and the
//! HTTP API shaped like the Log Analytics Query API ([`api`]).

pub mod api;
pub mod cache_metrics;
pub mod distributed;
pub mod encode;
pub mod spill;
pub mod table;
pub mod timespan;
mod topk;
pub mod watchlist;

pub use table::{Cell, Column, Table};

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use fimlake_kql::{KqlError, PlanOptions, TableList};
use fimlake_storage::{Storage, TableScanProvider};
use futures::StreamExt;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Kql(KqlError),
    #[error("the query ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    #[error(
        "the query needed more than its memory limit of {limit} bytes ({detail}); narrow its time range or aggregate earlier"
    )]
    MemoryLimit { limit: usize, detail: String },
    /// The query's expressions failed on its values while it ran (a string that does not
    /// convert to a number, a division by zero, an overflow): the query's fault, a 400.
    #[error("the query failed while it ran: {0}")]
    Evaluation(String),
    /// The table storage could not be read (S3 unreachable, say): a 503, worth retrying.
    #[error("the table storage could not be read, retry when it is reachable again: {0}")]
    StorageUnavailable(String),
    /// The server's own fault (I/O, a bug): a 500.
    #[error("query execution failed: {0}")]
    Execution(String),
}

/// Whether the query failed because the table storage could not be read: an object store error
/// (other than a missing object) anywhere in the error's chain (`source()` leads through
/// DataFusion's and Parquet's wrappers to it). DataFusion flattens a failed Parquet footer fetch
/// into text, so that one is known by its message.
fn storage_unreachable(e: &datafusion::error::DataFusionError) -> bool {
    use parquet::errors::ParquetError;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = next {
        if let Some(o) = current.downcast_ref::<object_store::Error>() {
            return !matches!(o, object_store::Error::NotFound { .. });
        }
        if let Some(ParquetError::General(message)) = current.downcast_ref::<ParquetError>()
            && message.contains("Object Store error")
        {
            return !(message.contains("Object at location") && message.contains("not found"));
        }
        next = current.source();
    }
    false
}

/// Whether DataFusion failed because of what the query asks of its values (casts, arithmetic,
/// arguments, types found only while optimizing) rather than because of the server.
fn caused_by_the_query(root: &datafusion::error::DataFusionError) -> bool {
    use arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    match root {
        DataFusionError::ArrowError(e, _) => matches!(
            e.as_ref(),
            ArrowError::CastError(_)
                | ArrowError::DivideByZero
                | ArrowError::ArithmeticOverflow(_)
                | ArrowError::ComputeError(_)
                | ArrowError::InvalidArgumentError(_)
                | ArrowError::ParseError(_)
        ),
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => true,
        _ => false,
    }
}

/// Limits of one query.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Results stop after this many rows (and say so with a `PartialError`), as Log Analytics'
    /// 500,000.
    pub max_rows: usize,
    /// Memory the queries running at once may hold together for joins, aggregations and sorts,
    /// in bytes (one pool, shared fairly); a query that needs more than its share fails with a
    /// clear error and the server goes on. Derived from the server's `memory_limit` unless set.
    pub max_memory_bytes: usize,
    /// Evaluate filters inside the Parquet decoder (late materialisation: the other columns are
    /// decoded only for matching rows). Off by default: on the benchmark's hunting queries it
    /// was slower for every one, by up to 30 % (BENCHMARKS.md); files are pruned by time and
    /// row groups by statistics either way.
    pub parquet_pushdown_filters: bool,
    /// Parsed Parquet footers kept between queries, in bytes ([`METADATA_CACHE_BYTES`] unless
    /// set). Queries that read more files' footers than fit parse every one again: size it to
    /// hold every live file of the tables queried together (`fimlake_query_metadata_cache_*`
    /// metrics).
    pub metadata_cache_bytes: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_rows: 500_000,
            max_memory_bytes: 384 << 20,
            parquet_pushdown_filters: false,
            metadata_cache_bytes: METADATA_CACHE_BYTES,
        }
    }
}

/// A started execution: its schema, its rows' stream, and whether it runs on the workers.
struct Started {
    schema: SchemaRef,
    stream: datafusion::physical_plan::SendableRecordBatchStream,
    fanned_out: bool,
}

/// Rows of a result, and whether the row limit cut them.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
}

pub struct QueryEngine {
    tables: Tables,
    /// Where `_GetWatchlist()` finds its CSV files.
    pub watchlists: Option<std::path::PathBuf>,
    /// Results stop after this many rows (and say so).
    pub max_rows: usize,
    /// Memory the queries running at once may use together, in bytes: the size of `runtime`'s pool.
    pub max_memory_bytes: usize,
    pushdown_filters: bool,
    /// Whether the tables' files are in an object store: sessions then run
    /// [`REMOTE_PARTITIONS_PER_CORE`] partitions per core.
    remote_reads: bool,
    /// One runtime for every query: its memory pool is shared by all queries running at once.
    runtime: Arc<RuntimeEnv>,
    /// In a cluster's query node: large queries fan out over the query nodes' workers.
    distribution: Option<distributed::Distribution>,
    /// How many queries ran fanned out.
    distributed_queries: std::sync::atomic::AtomicU64,
}

/// Parsed Parquet footers and page indexes kept between queries, at most, unless
/// `query.metadata_cache_bytes` says otherwise (the scans read through the runtime's metadata
/// cache; a file never changes once written). Part of the room `memory_limit` leaves beside its
/// shares for caches. The benchmark's 30 days of three tables (1,472 hourly files of 35-62
/// columns) hold 63 MiB of footers: a least-recently-used cache smaller than the files a query
/// reads keeps none of them for the next (BENCHMARKS.md, 2026-12-05).
pub const METADATA_CACHE_BYTES: usize = 128 << 20;

/// Partitions per core of a query over tables in an object store. DataFusion spreads a scan's
/// files over the session's partitions (one per core), and each partition has one read in flight
/// at a time, waiting the bucket's latency before it decodes what came: with one per core the
/// cores sat idle for every read. Over a bucket answering each request 20 ms late, a full scan of
/// 73 files made 73 reads two at a time, 0.7 s of waiting per query (`fimlake-bench --steps
/// cluster --s3-latency-ms 20`, BENCHMARKS.md, round of 2026-12-06 (3)).
pub const REMOTE_PARTITIONS_PER_CORE: usize = 4;

/// A runtime whose memory pool of `config.max_memory_bytes` the sessions made with it share;
/// a server's spills under its data directory ([`spill`]), others' under the system's
/// temporary directory.
fn shared_runtime(config: &QueryConfig, data_dir: Option<&std::path::Path>) -> Arc<RuntimeEnv> {
    let pool = datafusion::execution::memory_pool::FairSpillPool::new(config.max_memory_bytes);
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .with_metadata_cache_limit(config.metadata_cache_bytes);
    if let Some(data_dir) = data_dir {
        runtime = runtime.with_disk_manager_builder(spill::disk_manager(data_dir));
    }
    runtime.build_arc().expect("a runtime whose spill directory exists (or the system's, made when first spilled)")
}

/// The tables queries read.
enum Tables {
    /// A running storage engine: committed files and buffered rows, fresh for every query.
    Live(Arc<Storage>),
    /// A fixed set (a read-only view of a data directory).
    Fixed(Vec<(String, Arc<dyn TableProvider>)>),
}

impl QueryEngine {
    pub fn new(storage: Arc<Storage>, config: &QueryConfig) -> Self {
        let remote_reads = storage.providers().iter().any(|(_, provider)| provider.remote());
        QueryEngine {
            watchlists: Some(storage.config().data_dir.join("watchlists")),
            runtime: shared_runtime(config, Some(&storage.config().data_dir)),
            tables: Tables::Live(storage),
            max_rows: config.max_rows,
            max_memory_bytes: config.max_memory_bytes,
            pushdown_filters: config.parquet_pushdown_filters,
            remote_reads,
            distribution: None,
            distributed_queries: Default::default(),
        }
    }

    /// An engine over fixed tables, such as [`Storage::open_read_only`] gives.
    pub fn over(tables: Vec<(String, Arc<dyn TableProvider>)>, config: &QueryConfig) -> Self {
        let remote_reads = tables
            .iter()
            .any(|(_, provider)| provider.downcast_ref::<TableScanProvider>().is_some_and(TableScanProvider::remote));
        QueryEngine {
            watchlists: None,
            remote_reads,
            tables: Tables::Fixed(tables),
            max_rows: config.max_rows,
            max_memory_bytes: config.max_memory_bytes,
            pushdown_filters: config.parquet_pushdown_filters,
            runtime: shared_runtime(config, None),
            distribution: None,
            distributed_queries: Default::default(),
        }
    }

    /// An engine over a read-only view of the tables of `storage` ([`Storage::open_read_only`]).
    pub async fn read_only(
        storage: &fimlake_storage::StorageConfig,
        config: &QueryConfig,
    ) -> Result<Self, fimlake_storage::StorageError> {
        let registry = fimlake_storage::TableRegistry::builtin();
        let tables = Storage::open_read_only(storage, &registry).await?;
        let tables = tables.into_iter().map(|(n, p)| (n, p as Arc<dyn TableProvider>)).collect();
        let mut engine = Self::over(tables, config);
        engine.watchlists = Some(storage.data_dir.join("watchlists"));
        Ok(engine)
    }

    /// Fans queries reading more than `distribution.above_files` files out over its workers.
    pub fn with_distribution(mut self, distribution: distributed::Distribution) -> Self {
        self.distribution = Some(distribution);
        self
    }

    /// The runtime queries run on (its memory pool), which this node's worker shares.
    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        self.runtime.clone()
    }

    /// Gauges of the runtime's Parquet metadata cache, for the server's registry.
    pub fn metadata_cache_metrics(&self) -> prometheus::Result<cache_metrics::MetadataCacheMetrics> {
        cache_metrics::MetadataCacheMetrics::new(self.runtime.cache_manager.get_file_metadata_cache())
    }

    /// How many queries ran fanned out over the cluster's workers (explained ones do not count).
    pub fn distributed_queries(&self) -> u64 {
        self.distributed_queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The physical plan of `plan` (optimized first): fanned out over the workers when the node has some and
    /// its scans read enough files ([`distributed::Distribution::worth_it`]), else local.
    /// `fan_out` false keeps it local whatever its size.
    async fn physical_plan(
        &self,
        ctx: &SessionContext,
        plan: &LogicalPlan,
        fan_out: bool,
    ) -> Result<(Arc<dyn ExecutionPlan>, Arc<datafusion::execution::TaskContext>), DataFusionError> {
        let state = ctx.state();
        let optimized = state.optimize(plan)?;
        let (plan, state) = match topk::with_threshold(&state, &optimized).await? {
            Some(narrowed) => (narrowed.plan, narrowed.state),
            None => (optimized, state),
        };
        let plan = &plan;
        // Optimized once: the planner's own `create_physical_plan` would optimize it again.
        let local = state.query_planner().create_physical_plan(plan, &state).await?;
        let Some(distribution) = self.distribution.as_ref().filter(|_| fan_out) else {
            return Ok((local, state.task_ctx()));
        };
        let size = distributed::scan_size(&local);
        if !distribution.worth_it(size) {
            return Ok((local, state.task_ctx()));
        }
        let functions = fimlake_kql::udf::kql_functions(plan)?;
        let state = distribution.session(state, size, &functions)?;
        // The distributed planner may yet keep the plan in one task.
        Ok((state.query_planner().create_physical_plan(plan, &state).await?, state.task_ctx()))
    }

    /// Starts `plan`: its output schema and the stream of its rows.
    async fn start(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<(SchemaRef, datafusion::physical_plan::SendableRecordBatchStream), QueryError> {
        let started = self.start_placed(ctx, &plan, true).await.map_err(|(e, _)| e)?;
        Ok((started.schema, started.stream))
    }

    /// Starts `plan`, fanned out if `fan_out` and it is worth it; an error says whether the
    /// plan was fanned out.
    async fn start_placed(
        &self,
        ctx: &SessionContext,
        plan: &LogicalPlan,
        fan_out: bool,
    ) -> Result<Started, (QueryError, bool)> {
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let (physical, task) =
            self.physical_plan(ctx, plan, fan_out).await.map_err(|e| (self.execution_error(e), false))?;
        let fanned_out = distributed::is_fanned_out(&physical);
        if fanned_out {
            self.distributed_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let stream = datafusion::physical_plan::execute_stream(physical, task)
            .map_err(|e| (self.execution_error(e), fanned_out))?;
        Ok(Started { schema, stream, fanned_out })
    }

    /// Runs `plan` to the end, keeping at most `max_rows` rows. A fanned-out run that fails for
    /// a reason other than the query itself (a worker gone since the last heartbeat, say) runs
    /// again on this node alone: nothing was handed to the caller yet.
    async fn collect(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        max_rows: usize,
    ) -> Result<QueryResult, QueryError> {
        match self.collect_placed(ctx, &plan, max_rows, true).await {
            Err((QueryError::Execution(e), true)) => {
                tracing::warn!(error = %e, "a query fanned out over the cluster's workers failed; running it on this node");
                self.collect_placed(ctx, &plan, max_rows, false).await.map_err(|(e, _)| e)
            }
            result => result.map_err(|(e, _)| e),
        }
    }

    async fn collect_placed(
        &self,
        ctx: &SessionContext,
        plan: &LogicalPlan,
        max_rows: usize,
        fan_out: bool,
    ) -> Result<QueryResult, (QueryError, bool)> {
        let Started { schema, mut stream, fanned_out } = self.start_placed(ctx, plan, fan_out).await?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| (self.execution_error(e), fanned_out))?;
            if rows + b.num_rows() > max_rows {
                batches.push(b.slice(0, max_rows - rows));
                truncated = true;
                break;
            }
            rows += b.num_rows();
            batches.push(b);
        }
        Ok(QueryResult { schema, batches, truncated })
    }

    /// A session whose operators draw on the engine's one memory pool of `max_memory_bytes`.
    fn session(&self) -> Result<SessionContext, QueryError> {
        self.session_with(None)
    }

    /// A session; `partitions` overrides DataFusion's default (one per core, or
    /// [`REMOTE_PARTITIONS_PER_CORE`] over an object store).
    fn session_with(&self, partitions: Option<usize>) -> Result<SessionContext, QueryError> {
        let config = datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.execution.parquet.pushdown_filters", self.pushdown_filters)
            .set_bool("datafusion.execution.parquet.reorder_filters", self.pushdown_filters)
            // The tables' files are written without bloom filters, so looking for them only
            // costs (DataFusion opens each file a second time when it may read them); the page
            // index adds a read per file and prunes little inside hour files whose row groups
            // (128k rows) statistics already prune. Measured in BENCHMARKS.md (2026-12-03).
            .set_bool("datafusion.execution.parquet.enable_page_index", false)
            .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false)
            // A hash join collects its build side once: its dynamic filter is then plain bounds
            // of the keys, which prune files and row groups by their statistics (a partitioned
            // join routes its filter through a hash of the keys, which statistics cannot read).
            .set_bool("datafusion.optimizer.repartition_joins", false);
        let remote = self.remote_reads.then(|| config.target_partitions() * REMOTE_PARTITIONS_PER_CORE);
        let config = match partitions.or(remote) {
            Some(n) => config.with_target_partitions(n),
            None => config,
        };
        let state = fimlake_kql::session_state().with_config(config).with_runtime_env(self.runtime.clone()).build();
        Ok(SessionContext::new_with_state(state))
    }

    fn execution_error(&self, e: datafusion::error::DataFusionError) -> QueryError {
        match e.find_root() {
            datafusion::error::DataFusionError::ResourcesExhausted(detail) => {
                QueryError::MemoryLimit { limit: self.max_memory_bytes, detail: detail.clone() }
            }
            root if caused_by_the_query(root) => QueryError::Evaluation(root.to_string()),
            _ if storage_unreachable(&e) => QueryError::StorageUnavailable(e.find_root().to_string()),
            _ => QueryError::Execution(e.to_string()),
        }
    }

    /// Parses and plans `text` against the storage's tables, with one `now()` for the query.
    fn plan(
        &self,
        text: &str,
        time_range: Option<(i64, i64)>,
    ) -> Result<datafusion::logical_expr::LogicalPlan, QueryError> {
        self.plan_with(text, PlanOptions { time_range, ..PlanOptions::default() })
    }

    fn plan_with(
        &self,
        text: &str,
        mut options: PlanOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan, QueryError> {
        let query = fimlake_kql::parse(text).map_err(QueryError::Kql)?;
        let tables = match &self.tables {
            Tables::Live(storage) => {
                TableList(storage.providers().into_iter().map(|(n, p)| (n, p as Arc<dyn TableProvider>)).collect())
            }
            Tables::Fixed(t) => TableList(t.clone()),
        };
        let catalog = watchlist::WorkspaceCatalog { tables, watchlists: self.watchlists.clone() };
        if options.now_us == 0 {
            options.now_us = chrono::Utc::now().timestamp_micros();
        }
        fimlake_kql::plan_query_with(&query, text, &catalog, &options).map_err(QueryError::Kql)
    }

    /// The physical plan of `text`, indented: which files each scan reads, and the filters
    /// pushed into it.
    pub async fn explain(&self, text: &str, time_range: Option<(i64, i64)>) -> Result<String, QueryError> {
        let plan = self.plan(text, time_range)?;
        let ctx = self.session()?;
        let (physical, _) = self.physical_plan(&ctx, &plan, true).await.map_err(|e| self.execution_error(e))?;
        if distributed::is_fanned_out(&physical) {
            return Ok(datafusion_distributed::display_plan_ascii(physical.as_ref(), false));
        }
        Ok(datafusion::physical_plan::displayable(physical.as_ref()).indent(true).to_string())
    }

    /// Runs `text`, optionally restricted to `[start, end)` of `TimeGenerated`, cancelled after
    /// `timeout`.
    pub async fn run(
        &self,
        text: &str,
        time_range: Option<(i64, i64)>,
        timeout: Duration,
    ) -> Result<QueryResult, QueryError> {
        self.run_with(text, PlanOptions { time_range, ..PlanOptions::default() }, timeout).await
    }

    /// Runs `text` over the records ingested in `[start, end)` (`_TimeReceived`): consecutive
    /// windows see every record once, whatever its `TimeGenerated` (alert rule evaluation).
    pub async fn run_ingested(
        &self,
        text: &str,
        ingestion_range: (i64, i64),
        timeout: Duration,
    ) -> Result<QueryResult, QueryError> {
        self.run_with(text, PlanOptions { ingestion_range: Some(ingestion_range), ..PlanOptions::default() }, timeout)
            .await
    }

    /// Runs `text` with explicit plan options: time and ingestion ranges, and the instant
    /// `now()` and `ago()` refer to (`now_us`; 0 means the current time).
    pub async fn run_with(
        &self,
        text: &str,
        options: PlanOptions,
        timeout: Duration,
    ) -> Result<QueryResult, QueryError> {
        self.run_limited(text, options, timeout, self.max_rows).await
    }

    /// Like [`QueryEngine::run_with`], keeping at most `max_rows` rows (the rest of the
    /// execution is cancelled; `truncated` says whether there were more).
    pub async fn run_limited(
        &self,
        text: &str,
        options: PlanOptions,
        timeout: Duration,
        max_rows: usize,
    ) -> Result<QueryResult, QueryError> {
        let plan = self.plan_with(text, options)?;
        let ctx = self.session()?;
        let work = async move { self.collect(&ctx, plan, max_rows).await };
        // Dropping the future on timeout drops the stream, which cancels the execution.
        tokio::time::timeout(timeout, work).await.map_err(|_| QueryError::Timeout(timeout))?
    }

    /// Runs `text` and hands its rows over as they are produced, without the row limit:
    /// memory stays bounded as long as the caller consumes the stream. Planning and starting
    /// the execution are bounded by `timeout`; the stream itself is not.
    pub async fn stream(
        &self,
        text: &str,
        options: PlanOptions,
        timeout: Duration,
    ) -> Result<(SchemaRef, datafusion::physical_plan::SendableRecordBatchStream), QueryError> {
        self.stream_with(text, options, timeout, None).await
    }

    /// Like [`QueryEngine::stream`] on one partition: the scan runs only as fast as the caller
    /// consumes, so a slow reader (a download) holds a batch or two, not the partitions' backlog.
    pub async fn export(
        &self,
        text: &str,
        options: PlanOptions,
        timeout: Duration,
    ) -> Result<(SchemaRef, datafusion::physical_plan::SendableRecordBatchStream), QueryError> {
        self.stream_with(text, options, timeout, Some(1)).await
    }

    async fn stream_with(
        &self,
        text: &str,
        options: PlanOptions,
        timeout: Duration,
        partitions: Option<usize>,
    ) -> Result<(SchemaRef, datafusion::physical_plan::SendableRecordBatchStream), QueryError> {
        let plan = self.plan_with(text, options)?;
        let ctx = self.session_with(partitions)?;
        let work = self.start(&ctx, plan);
        tokio::time::timeout(timeout, work).await.map_err(|_| QueryError::Timeout(timeout))?
    }

    /// A stream's error as a [`QueryError`] (memory limit or execution failure).
    pub fn stream_error(&self, e: datafusion::error::DataFusionError) -> QueryError {
        self.execution_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;
    use parquet::errors::ParquetError;

    fn refused() -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: "error sending request: connection refused".into() }
    }

    fn missing() -> object_store::Error {
        object_store::Error::NotFound { path: "t/part-0.parquet".into(), source: "404".into() }
    }

    #[test]
    fn an_object_store_failure_anywhere_in_the_chain_is_storage_unavailable() {
        assert!(storage_unreachable(&DataFusionError::ObjectStore(Box::new(refused()))));
        let data_page = DataFusionError::ParquetError(Box::new(ParquetError::External(Box::new(refused()))));
        assert!(storage_unreachable(&data_page));
        let footer = DataFusionError::ParquetError(Box::new(ParquetError::General(format!(
            "Failed to fetch metadata for file x.parquet: {}",
            DataFusionError::ObjectStore(Box::new(refused()))
        ))));
        assert!(storage_unreachable(&footer));
        let wrapped = DataFusionError::Context("reading".into(), Box::new(data_page));
        assert!(storage_unreachable(&wrapped));
    }

    #[test]
    fn a_missing_object_or_another_failure_is_not_storage_unavailable() {
        assert!(!storage_unreachable(&DataFusionError::ObjectStore(Box::new(missing()))));
        let footer = DataFusionError::ParquetError(Box::new(ParquetError::General(format!(
            "Failed to fetch metadata for file x.parquet: {}",
            DataFusionError::ObjectStore(Box::new(missing()))
        ))));
        assert!(!storage_unreachable(&footer));
        assert!(!storage_unreachable(&DataFusionError::Execution("a bug".into())));
    }

    /// A table with no file, its files said to be in an object store or not.
    struct EmptyTable {
        def: Arc<fimlake_storage::TableDef>,
        remote: bool,
    }

    impl fimlake_storage::provider::ScanSource for EmptyTable {
        fn def(&self) -> &Arc<fimlake_storage::TableDef> {
            &self.def
        }
        fn store(&self) -> Arc<dyn object_store::ObjectStore> {
            Arc::new(object_store::memory::InMemory::new())
        }
        fn snapshot(&self) -> fimlake_storage::TableSnapshot {
            fimlake_storage::TableSnapshot { files: Arc::new(Vec::new()), batches: Vec::new() }
        }
        fn remote(&self) -> bool {
            self.remote
        }
    }

    fn engine_over(remote: bool) -> QueryEngine {
        let def = fimlake_storage::TableRegistry::builtin().get("Heartbeat").unwrap().clone();
        let table = TableScanProvider::new(Arc::new(EmptyTable { def, remote }));
        QueryEngine::over(vec![("Heartbeat".into(), Arc::new(table))], &QueryConfig::default())
    }

    fn partitions(session: Result<SessionContext, QueryError>) -> usize {
        session.unwrap().state().config().target_partitions()
    }

    #[test]
    fn tables_in_an_object_store_are_read_with_more_partitions_than_cores() {
        let cores = datafusion::prelude::SessionConfig::new().target_partitions();
        let local = engine_over(false);
        assert_eq!(partitions(local.session()), cores, "local files: one partition per core");
        let remote = engine_over(true);
        assert_eq!(partitions(remote.session()), cores * REMOTE_PARTITIONS_PER_CORE);
        assert_eq!(partitions(remote.session_with(Some(1))), 1, "an export still reads one partition");
    }
}
