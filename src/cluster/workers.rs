//! A query node's share of distributed queries: its worker (the endpoint that runs plan
//! fragments for the other query nodes), the `worker_url` in its registration, and the list of
//! workers it fans its own large queries out over, read from the registrations every heartbeat.

use std::sync::Arc;

use anyhow::Context;
use fimlake_cluster::{Role, query_workers};
use fimlake_query::QueryEngine;
use fimlake_query::distributed::{Distribution, Workers, serve_worker};
use fimlake_storage::Storage;

use super::membership::Membership;
use crate::config::Config;

/// The node's query engine: on a query node of a cluster, one that fans queries reading more
/// than `distribute_above_files` files or `distribute_above_bytes` bytes out over the cluster's
/// query nodes, this one's worker started and registered; elsewhere a local one.
pub(crate) async fn query_engine(
    cfg: &Config,
    storage: &Arc<Storage>,
    membership: Option<&Membership>,
    registry: &prometheus::Registry,
) -> anyhow::Result<Arc<QueryEngine>> {
    let engine = QueryEngine::new(storage.clone(), &cfg.query);
    registry.register(Box::new(engine.metadata_cache_metrics()?))?;
    let Some(membership) = membership.filter(|_| cfg.cluster.roles.has(Role::Query)) else {
        return Ok(Arc::new(engine));
    };
    let distribution = start_worker(cfg, membership, storage, &engine).await?;
    let workers = distribution.workers.clone();
    let engine = Arc::new(engine.with_distribution(distribution));
    keep_workers_fresh(membership.clone(), workers, engine.clone(), registry)?;
    Ok(engine)
}

/// Binds and serves this node's worker, and publishes its URL in the registration.
async fn start_worker(
    cfg: &Config,
    membership: &Membership,
    storage: &Arc<Storage>,
    engine: &QueryEngine,
) -> anyhow::Result<Distribution> {
    let cluster = &cfg.cluster;
    let token = worker_token(membership).await?;
    let listener = tokio::net::TcpListener::bind(cluster.worker_listen)
        .await
        .with_context(|| format!("binding the query worker's cluster.worker_listen {}", cluster.worker_listen))?;
    let url = match &cluster.worker_advertise_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let parsed = url::Url::parse(&url).with_context(|| format!("the query worker's URL '{url}'"))?;
    let (storage, runtime, served_token) = (storage.clone(), engine.runtime(), token.clone());
    tokio::spawn(async move {
        if let Err(e) = serve_worker(listener, &storage, &runtime, served_token, std::future::pending()).await {
            tracing::error!(error = %e, "the query worker stopped: other query nodes' fragments fail here");
        }
    });
    membership.set_worker_url(url.clone()).await.context("registering this node's query worker in the bucket")?;
    tracing::info!(
        url,
        above_files = cluster.distribute_above_files,
        above_bytes = cluster.distribute_above_bytes,
        "query worker serving; larger queries fan out"
    );
    let workers = Workers::default();
    workers.set(vec![parsed]);
    Ok(Distribution {
        workers,
        above_files: cluster.distribute_above_files,
        above_bytes: cluster.distribute_above_bytes,
        token,
    })
}

/// The secret every worker of the cluster checks: made by the first query node, kept in the
/// bucket (`_cluster/worker-token`, readable by whoever may read the tables anyway).
async fn worker_token(membership: &Membership) -> anyhow::Result<String> {
    let proposed = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    fimlake_cluster::shared::agree(membership.registry.store().as_ref(), "worker-token", &proposed)
        .await
        .context("agreeing on the query workers' token in the bucket")
}

/// Every heartbeat: the workers are the query nodes alive now ([`query_workers`]); metrics say
/// how many, and how many queries fanned out.
fn keep_workers_fresh(
    membership: Membership,
    workers: Workers,
    engine: Arc<QueryEngine>,
    registry: &prometheus::Registry,
) -> anyhow::Result<()> {
    let alive = prometheus::IntGauge::new(
        "fimlake_cluster_query_workers",
        "Query nodes (this one included) a large query fans out over",
    )?;
    let fanned = prometheus::IntCounter::new(
        "fimlake_distributed_queries_total",
        "Queries this node fanned out over the cluster's query nodes",
    )?;
    registry.register(Box::new(alive.clone()))?;
    registry.register(Box::new(fanned.clone()))?;
    alive.set(workers.urls().len() as i64);
    tokio::spawn(async move {
        loop {
            refresh_workers(&membership, &workers).await;
            alive.set(workers.urls().len() as i64);
            fanned.inc_by(engine.distributed_queries().saturating_sub(fanned.get()));
            tokio::time::sleep(membership.heartbeat).await;
        }
    });
    Ok(())
}

async fn refresh_workers(membership: &Membership, workers: &Workers) {
    let nodes = match membership.registry.list().await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(error = %e, "reading the query nodes' registrations failed; fanning out over the last ones seen");
            return;
        }
    };
    let urls = query_workers(&nodes, chrono::Utc::now(), membership.heartbeat)
        .into_iter()
        .filter_map(|url| match url::Url::parse(&url) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                tracing::warn!(url, error = %e, "a node registered a worker URL that does not parse; leaving it out");
                None
            }
        })
        .collect();
    workers.set(urls);
}
