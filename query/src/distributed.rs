//! Fanning a query out over the query nodes of a cluster with datafusion-distributed.
//!
//! Every query node runs a worker ([`serve_worker`]): a gRPC service that executes plan
//! fragments on its own runtime, reading the same Parquet files from the bucket. A node
//! planning a query whose scans read more than `above_files` files or `above_bytes` bytes
//! ([`Distribution`]) plans it again with the distributed planner, which splits the files over
//! the workers it knows of ([`Workers`], kept fresh from the nodes' registrations) and streams
//! their results back.
//! Each worker checks the cluster's shared token on every request ([`TOKEN_HEADER`]), and
//! registers the KQL functions the plan calls ([`FUNCTIONS_HEADER`], [`fimlake_kql::udf::rebuild`])
//! before it decodes the plan, which names them.

use std::sync::{Arc, RwLock};

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::AggregateUDF;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt, Worker, WorkerQueryContext, WorkerResolver};
use fimlake_storage::Storage;
use url::Url;

/// The header carrying the cluster's worker token, from the planning node to each worker and
/// from worker to worker.
pub const TOKEN_HEADER: &str = "x-fimlake-worker-token";

/// The header listing the KQL functions a plan calls (base64 of a JSON array of their names).
pub const FUNCTIONS_HEADER: &str = "x-fimlake-kql-functions";

/// The workers a query may fan out over: the query nodes' worker URLs, this node's included.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    urls: Arc<RwLock<Vec<Url>>>,
}

impl Workers {
    /// Replaces the list (the cluster membership calls it every heartbeat).
    pub fn set(&self, mut urls: Vec<Url>) {
        urls.sort();
        urls.dedup();
        *self.urls.write().expect("workers lock") = urls;
    }

    pub fn urls(&self) -> Vec<Url> {
        self.urls.read().expect("workers lock").clone()
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.urls())
    }
}

/// When and over what a node fans its queries out.
#[derive(Debug, Clone)]
pub struct Distribution {
    pub workers: Workers,
    /// A query whose scans read more files than this runs on the workers.
    pub above_files: usize,
    /// A query whose scans read more bytes than this runs on the workers, however few its
    /// files (a closed day is one file).
    pub above_bytes: u64,
    /// The cluster's shared secret the workers check.
    pub token: String,
}

/// What a plan's scans read: files and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanSize {
    pub files: usize,
    pub bytes: u64,
}

/// The files and bytes the Parquet scans of `plan` read.
pub fn scan_size(plan: &Arc<dyn ExecutionPlan>) -> ScanSize {
    let mut size = ScanSize::default();
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        let scan = node.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>());
        if let Some(config) = scan {
            for file in config.file_groups.iter().flat_map(|g| g.files()) {
                size.files += 1;
                size.bytes += file.object_meta.size;
            }
        }
        stack.extend(node.children().into_iter().cloned());
    }
    size
}

/// Whether `plan` runs on the workers (the distributed planner may keep a plan in one task).
pub fn is_fanned_out(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<datafusion_distributed::DistributedExec>().is_some()
}

impl Distribution {
    /// Whether a plan reading `size` is worth fanning out: more files or more bytes than the
    /// thresholds, and more than one worker to share them.
    pub fn worth_it(&self, size: ScanSize) -> bool {
        let large = size.files > self.above_files || size.bytes > self.above_bytes;
        large && self.workers.urls().len() > 1
    }

    /// `state` with the distributed planner, sized so that the scan of `size` is split over
    /// every worker (each of its partitions reads about the same bytes); the workers are told
    /// the KQL functions the plan calls (`functions`, [`fimlake_kql::udf::kql_functions`]).
    pub fn session(&self, state: SessionState, size: ScanSize, functions: &[String]) -> Result<SessionState> {
        let workers = self.workers.urls().len().max(1) as u64;
        let partitions = state.config().target_partitions().max(1) as u64;
        let per_partition = size.bytes.div_ceil(workers * partitions).max(1);
        SessionStateBuilder::new_from_existing(state)
            .with_distributed_worker_resolver(self.workers.clone())
            .with_distributed_passthrough_headers(headers(&self.token, functions)?)?
            .with_distributed_planner()
            .with_distributed_file_scan_config_bytes_per_partition(per_partition as usize)
            .map(|b| b.build())
    }
}

/// The headers every request to a worker carries: the token, the plan's KQL functions.
fn headers(token: &str, functions: &[String]) -> Result<http::HeaderMap> {
    use base64::Engine;
    let invalid = |e: http::header::InvalidHeaderValue| {
        DataFusionError::Configuration(format!("the cluster's worker token is not a header value: {e}"))
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(TOKEN_HEADER, http::HeaderValue::from_str(token).map_err(invalid)?);
    let names = serde_json::to_vec(functions).expect("names are JSON");
    let encoded = base64::engine::general_purpose::STANDARD.encode(names);
    headers.insert(FUNCTIONS_HEADER, http::HeaderValue::from_str(&encoded).expect("base64 is a header value"));
    Ok(headers)
}

/// The KQL functions a request's plan calls, rebuilt ([`FUNCTIONS_HEADER`]).
fn functions_sent(headers: &http::HeaderMap) -> Result<Vec<String>> {
    use base64::Engine;
    let Some(value) = headers.get(FUNCTIONS_HEADER) else {
        return Ok(Vec::new());
    };
    let malformed = || DataFusionError::Execution(format!("the {FUNCTIONS_HEADER} header is malformed"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// Why a query worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("setting up the query worker's runtime: {0}")]
    Runtime(#[from] DataFusionError),
    #[error("serving the query worker: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Serves the worker of a query node on `listener` until `stop` resolves: runs the plan
/// fragments other query nodes send, drawing on the memory pool of `runtime` (the node's
/// queries'), reading the tables of `storage` and nothing else; refuses a request without `token`.
pub async fn serve_worker(
    listener: tokio::net::TcpListener,
    storage: &Storage,
    runtime: &RuntimeEnv,
    token: String,
    stop: impl Future<Output = ()>,
) -> std::result::Result<(), WorkerError> {
    let runtime = worker_runtime(storage, runtime)?;
    let token = Arc::new(token);
    let builder = move |ctx: WorkerQueryContext| {
        let token = token.clone();
        async move { worker_session(ctx, &token) }
    };
    let worker = Worker::from_session_builder(builder).with_runtime_env(runtime);
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), stop)
        .await?;
    Ok(())
}

/// The runtime fragments run on: the node's query memory pool, and an object store registry
/// holding only the tables' stores, so that a plan fragment can read the tables and no other
/// path (not the node's local files: the default registry serves `file://`).
fn worker_runtime(storage: &Storage, queries: &RuntimeEnv) -> Result<Arc<RuntimeEnv>> {
    let stores = DefaultObjectStoreRegistry::new();
    stores.deregister_store(ObjectStoreUrl::local_filesystem().as_ref())?;
    for (_, provider) in storage.providers() {
        let (url, store) = provider.object_store();
        stores.register_store(url.as_ref(), store);
    }
    RuntimeEnvBuilder::new()
        .with_memory_pool(queries.memory_pool.clone())
        .with_object_store_registry(Arc::new(stores))
        .build_arc()
}

/// The session one fragment runs in, once its token is checked: with the KQL functions its
/// plan calls (and `dcount`, the one KQL aggregate), and the headers passed on to the workers it reads from in turn.
fn worker_session(mut ctx: WorkerQueryContext, token: &str) -> Result<SessionState> {
    let sent = ctx.headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    if sent != Some(token) {
        return Err(DataFusionError::Execution(
            "refused a plan fragment without this cluster's worker token".to_string(),
        ));
    }
    let names = functions_sent(&ctx.headers)?;
    let functions = names.iter().map(|n| fimlake_kql::udf::rebuild(n).map(Arc::new)).collect::<Result<Vec<_>>>()?;
    ctx.builder.scalar_functions().get_or_insert_default().extend(functions);
    let dcount = AggregateUDF::new_from_impl(fimlake_kql::udf::DistinctCount::new());
    ctx.builder.aggregate_functions().get_or_insert_default().push(Arc::new(dcount));
    Ok(ctx.builder.with_distributed_passthrough_headers(headers(token, &names)?)?.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distribution(workers: usize) -> Distribution {
        let urls = (0..workers).map(|i| Url::parse(&format!("http://127.0.0.1:{}", 7070 + i)).unwrap()).collect();
        let distribution =
            Distribution { workers: Workers::default(), above_files: 64, above_bytes: 1 << 30, token: String::new() };
        distribution.workers.set(urls);
        distribution
    }

    #[test]
    fn a_scan_over_either_threshold_fans_out_when_there_are_workers_to_share_it() {
        let two = distribution(2);
        assert!(!two.worth_it(ScanSize { files: 64, bytes: 1 << 30 }), "at both thresholds: local");
        assert!(two.worth_it(ScanSize { files: 65, bytes: 1 }), "many small files");
        assert!(two.worth_it(ScanSize { files: 30, bytes: (1 << 30) + 1 }), "a month of day files");
        assert!(!distribution(1).worth_it(ScanSize { files: 1_000, bytes: 1 << 40 }), "one worker: nothing to share");
    }
}
