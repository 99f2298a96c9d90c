//! `fimlake serve` as a node of a cluster (`[cluster] node_id` set): every node shares the
//! tables in one bucket, and the node holding the leader lease is the one that serves.
//!
//! A node's life: it registers in the bucket (`starting`), commits whatever its own WAL still
//! holds from before a crash (its records are acknowledged, so they must reach the tables
//! whoever leads), then waits as a `standby` (answering 503 with the leader's address) until it
//! takes the lease, and then runs as the `leader`: the whole server, with every commit fenced by
//! the lease's epoch. If it cannot renew the lease in time it exits at once: no leader work may
//! go on, and its acknowledged records stay in its WAL for the restart to commit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fimlake_cluster::{
    CLUSTER_DIR, ClusterStatus, LeaderGuard, Lease, LeaseRecord, NodeRole, Registry, Role, Standing,
};
use fimlake_ingest::ApiError;
use fimlake_storage::{CommitFence, CommitMode, Storage, StorageConfig, TableRegistry};

use crate::config::Config;

mod commands;
mod membership;
mod workers;

pub use commands::{forget, print_status};
use membership::Membership;
pub(crate) use workers::query_engine;

/// What the server needs to run as a node of a cluster: the lease when it leads.
pub(crate) struct Leading {
    /// `None` on a node without the leader role: it commits nothing itself.
    lease: Option<(LeaderGuard, ClusterMetrics)>,
    membership: Membership,
    /// The standby's listening socket, kept so that the leader answers on the same address.
    listener: Option<std::net::TcpListener>,
    /// Printed under the server's banner.
    banner: String,
}

/// The leader's side of the cluster, at `/metrics`.
#[derive(Clone)]
struct ClusterMetrics {
    epoch: prometheus::IntGauge,
    leading: prometheus::IntGauge,
    lost: prometheus::IntCounter,
}

impl ClusterMetrics {
    fn new() -> prometheus::Result<ClusterMetrics> {
        Ok(ClusterMetrics {
            epoch: prometheus::IntGauge::new(
                "fimlake_cluster_lease_epoch",
                "The leader lease epoch this node leads in",
            )?,
            leading: prometheus::IntGauge::new(
                "fimlake_cluster_leading",
                "1 while this node counts on its leader lease (commits, alert rules), else 0",
            )?,
            lost: prometheus::IntCounter::new(
                "fimlake_cluster_lease_lost_total",
                "Times this node could not renew its leader lease in time",
            )?,
        })
    }

    /// After each step of the lease: `leading` says whether the guard holds right now (a
    /// renewal still being retried keeps an expired lease's `Standing::Leader`).
    fn set(&self, standing: &Standing, guard: &LeaderGuard) {
        match standing {
            Standing::Leader { epoch, .. } => self.epoch.set(*epoch as i64),
            Standing::Lost { .. } => self.lost.inc(),
            Standing::Follower { .. } => {}
        }
        self.leading.set(i64::from(guard.epoch().is_ok()));
    }
}

/// What leading a cluster adds to the server (nothing on a single node).
#[derive(Default)]
pub(crate) struct LeadingParts {
    /// Every commit's fence, `/readyz`'s and the alert rules' check.
    pub(crate) fence: Option<Arc<dyn CommitFence>>,
    /// The standby's socket, to serve on the same address.
    pub(crate) listener: Option<std::net::TcpListener>,
    /// A line under the server's banner.
    pub(crate) banner: Option<String>,
    /// `GET /v1/cluster` (behind the API keys, as any read).
    pub(crate) router: Router,
    /// The node's registration, to [`Membership::track`] its storage once open.
    pub(crate) membership: Option<Membership>,
}

impl Leading {
    /// Splits `leading` into what the server wires in, registering the cluster's metrics.
    pub(crate) fn parts(leading: Option<Leading>, registry: &prometheus::Registry) -> anyhow::Result<LeadingParts> {
        let Some(leading) = leading else { return Ok(LeadingParts::default()) };
        let mut fence: Option<Arc<dyn CommitFence>> = None;
        if let Some((guard, metrics)) = leading.lease {
            registry.register(Box::new(metrics.epoch))?;
            registry.register(Box::new(metrics.leading))?;
            registry.register(Box::new(metrics.lost))?;
            fence = Some(Arc::new(LeaseFence(guard)));
        }
        Ok(LeadingParts {
            fence,
            listener: leading.listener,
            banner: Some(leading.banner),
            router: Router::new().route("/v1/cluster", get(status)).with_state(leading.membership.clone()),
            membership: Some(leading.membership),
        })
    }
}

struct LeaseFence(LeaderGuard);

impl CommitFence for LeaseFence {
    fn epoch(&self) -> Result<u64, String> {
        self.0.epoch()
    }
}

/// Runs this node until a shutdown signal: registration, its WAL committed, standby, leader.
pub async fn serve(mut cfg: Config, insecure: bool) -> anyhow::Result<()> {
    // Listened for from the start: a SIGTERM while the node turns from standby to leader stops it.
    let shutdown = crate::server::Shutdown::listen()?;
    let node_id = cfg.cluster.node_id.clone().context("cluster mode needs cluster.node_id")?;
    let store = fimlake_storage::store_beside_tables(&cfg.storage, CLUSTER_DIR)?;
    cfg.workspace_id = Some(shared_workspace_id(&cfg, store.as_ref()).await?);
    let membership = Membership::new(Registry::new(store.clone()), &cfg.cluster, &node_id);
    membership.keep_previous_hold().await.context("reading this node's last registration in the bucket")?;
    membership.set(NodeRole::Starting, None).await.context("registering this node in the bucket")?;
    let heartbeat = membership.spawn_heartbeat();
    if !cfg.cluster.roles.has(Role::Leader) {
        let result = serve_without_lease(cfg, insecure, &membership, shutdown).await;
        heartbeat.abort();
        result?;
        return leave(&membership).await;
    }
    commit_own_wal(&cfg, true).await?;
    membership.clear_hold();
    let lease = Lease::new(store, &node_id, cfg.cluster.advertise_url.clone(), cfg.cluster.lease_ttl);
    let lease = Arc::new(tokio::sync::Mutex::new(lease));
    let Some((epoch, listener)) = standby(&cfg, &lease, &membership, shutdown.clone()).await? else {
        heartbeat.abort();
        return leave(&membership).await;
    };
    if let Err(e) = membership.set(NodeRole::Leader, Some(epoch)).await {
        tracing::warn!(error = %e, "writing this node's registration in the bucket failed");
    }
    let guard = lease.lock().await.guard();
    let metrics = ClusterMetrics::new()?;
    metrics.set(&Standing::Leader { epoch, valid_until: tokio::time::Instant::now() }, &guard);
    let renewals = tokio::spawn(keep_lease(lease.clone(), cfg.cluster.renew_every(), node_id.clone(), metrics.clone()));
    let banner = format!("cluster: node {node_id} leads (lease epoch {epoch})");
    let leading = Leading { lease: Some((guard, metrics)), membership: membership.clone(), listener, banner };
    let result = crate::server::serve_as(cfg, insecure, Some(leading), shutdown).await;
    renewals.abort();
    let _ = renewals.await;
    if let Err(e) = lease.lock().await.release().await {
        tracing::warn!(error = %e, "releasing the leader lease failed; a standby takes over once it expires");
    }
    heartbeat.abort();
    result?;
    leave(&membership).await
}

/// A node without the leader role (ingest, query): it serves at once, and the leader commits
/// its flushes, which it stages ([`fimlake_storage::staging`]).
async fn serve_without_lease(
    mut cfg: Config,
    insecure: bool,
    membership: &Membership,
    shutdown: crate::server::Shutdown,
) -> anyhow::Result<()> {
    commit_own_wal(&cfg, false).await?;
    cfg.storage.commits = CommitMode::Staged;
    membership.set(NodeRole::Serving, None).await.context("registering this node in the bucket")?;
    let banner =
        format!("cluster: node {} serves {} (the leader commits its flushes)", membership.node_id(), cfg.cluster.roles);
    let node = Leading { lease: None, membership: membership.clone(), listener: None, banner };
    crate::server::serve_as(cfg, insecure, Some(node), shutdown).await
}

/// Where the alerting engine keeps the rules' states and the outbox: in a cluster, in the
/// bucket (`_cluster/alerting/`), so that the next leader resumes each rule where the last one
/// left it and delivers what it had not; else in the data directory.
pub(crate) fn alerting_place(cfg: &Config) -> anyhow::Result<fimlake_alerting::place::Place> {
    if !cfg.cluster.enabled() {
        return Ok(fimlake_alerting::place::Place::Dir(cfg.data_dir.join("alerting")));
    }
    let cluster = fimlake_storage::store_beside_tables(&cfg.storage, CLUSTER_DIR)?;
    Ok(fimlake_alerting::place::Place::in_bucket(cluster).child("alerting"))
}

/// Records a clean stop in this node's registration.
async fn leave(membership: &Membership) -> anyhow::Result<()> {
    if let Err(e) = membership.set(NodeRole::Stopped, None).await {
        tracing::warn!(error = %e, "recording this node's stop in the bucket failed");
    }
    Ok(())
}

/// The cluster's one workspace id (queries' URLs and records' `TenantId` must not change with the
/// leader): the first node's, kept in the bucket; a node configured with another is refused.
async fn shared_workspace_id(cfg: &Config, store: &dyn object_store::ObjectStore) -> anyhow::Result<String> {
    let proposed = crate::config::workspace_id(cfg)?;
    let shared = fimlake_cluster::shared::agree(store, "workspace-id", &proposed)
        .await
        .context("agreeing on the workspace id in the bucket")?;
    if shared == proposed {
        return Ok(shared);
    }
    anyhow::ensure!(
        cfg.workspace_id.is_none(),
        "workspace_id is set to {proposed} but the cluster's is {shared}: every node must use the cluster's"
    );
    // This node's own file was made before it joined: it takes the cluster's.
    let path = cfg.data_dir.join("workspace-id");
    std::fs::write(&path, format!("{shared}\n")).with_context(|| format!("writing {}", path.display()))?;
    Ok(shared)
}

/// Commits what this node's WAL holds (records acknowledged before a crash or a lost lease),
/// and first a single-node WAL left in the data directory by a node that ran alone before.
/// These commits are not the leader's: each records the node's own WAL application id, so
/// the Delta log keeps them exactly once whoever leads.
///
/// A node without the leader role (`with_cluster_wal` false) commits only the single-node WAL
/// here: its cluster WAL is staged for the leader like any flush.
async fn commit_own_wal(cfg: &Config, with_cluster_wal: bool) -> anyhow::Result<()> {
    let single = StorageConfig { node_id: None, ..cfg.storage.clone() };
    let single_dir = single.wal_dir();
    let mut wals = vec![single];
    if with_cluster_wal {
        wals.push(cfg.storage.clone());
    }
    for storage in wals {
        if !storage.wal_dir().is_dir() {
            continue;
        }
        let dir = storage.wal_dir();
        let opened = Storage::open(storage, TableRegistry::builtin(), &prometheus::Registry::new())
            .await
            .with_context(|| format!("opening the tables to commit the WAL in {}", dir.display()))?;
        opened.shutdown().await.with_context(|| format!("committing the WAL in {}", dir.display()))?;
        tracing::info!(wal = %dir.display(), "committed this node's WAL before joining the cluster");
    }
    // Everything the single-node WAL held is committed: it is not needed again.
    if single_dir.is_dir() {
        std::fs::remove_dir_all(&single_dir).with_context(|| format!("removing {}", single_dir.display()))?;
    }
    Ok(())
}

/// Waits for the lease, answering requests with 503 and the leader's address meanwhile.
/// `None` when a shutdown signal came first; else the epoch, and the socket to serve on.
async fn standby(
    cfg: &Config,
    lease: &tokio::sync::Mutex<Lease>,
    membership: &Membership,
    shutdown: crate::server::Shutdown,
) -> anyhow::Result<Option<(u64, Option<std::net::TcpListener>)>> {
    let leader = Arc::new(Mutex::new(match lease.lock().await.step().await {
        Standing::Leader { epoch, .. } => return Ok(Some((epoch, None))),
        Standing::Follower { leader } => leader,
        Standing::Lost { .. } => None,
    }));
    membership.set(NodeRole::Standby, None).await.context("registering this node in the bucket")?;
    let listener = std::net::TcpListener::bind(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let kept = listener.try_clone()?;
    let tls = cfg.tls.as_ref().map(crate::tls::server_config).transpose().context("TLS settings ([tls])")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("fimlake listening on {scheme}://{}", listener.local_addr()?);
    println!("cluster: node {} is a standby ({})", membership.node_id(), describe(&leader));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = standby_router(leader.clone(), cfg.cluster.renew_every());
    let server = {
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            crate::server::accept(listener, tls, app, &cfg, stop).await
        })
    };
    let signal = shutdown.requested();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            _ = &mut signal => break None,
            _ = tokio::time::sleep(cfg.cluster.renew_every()) => {}
        }
        match lease.lock().await.step().await {
            Standing::Leader { epoch, .. } => break Some(epoch),
            Standing::Follower { leader: now } => *leader.lock().expect("leader lock") = now,
            Standing::Lost { .. } => {}
        }
    };
    let _ = stop_tx.send(());
    server.await.context("standby server task")??;
    Ok(outcome.map(|epoch| (epoch, Some(kept))))
}

/// Renews the lease until the task is aborted. Once the lease could not be renewed in time,
/// every commit is refused (the guard says so) while records are still acknowledged into the
/// WAL; the node leads again if it takes the lease back, and exits the moment another node
/// holds it, so that its acknowledged records are committed by its restart.
async fn keep_lease(lease: Arc<tokio::sync::Mutex<Lease>>, every: Duration, node_id: String, metrics: ClusterMetrics) {
    let mut lost_epoch = None;
    loop {
        tokio::time::sleep(every).await;
        let mut lease = lease.lock().await;
        let standing = lease.step().await;
        metrics.set(&standing, &lease.guard());
        drop(lease);
        match standing {
            Standing::Leader { epoch, .. } => {
                if lost_epoch.take().is_some() {
                    tracing::warn!(epoch, "took the leader lease back; committing again");
                }
            }
            Standing::Lost { epoch, reason } => {
                tracing::error!(epoch, reason, "lost the leader lease: commits stop until it is taken back");
                lost_epoch = Some(epoch);
            }
            Standing::Follower { leader: Some(holder) } if !holder.released && holder.holder != node_id => {
                step_down(&holder)
            }
            Standing::Follower { .. } => {}
        }
    }
}

fn step_down(holder: &LeaseRecord) -> ! {
    tracing::error!(holder = holder.holder, epoch = holder.epoch, "another node leads: exiting");
    eprintln!(
        "fimlake: node {} took the leader lease (epoch {}); this node exits at once. Its acknowledged records stay in its WAL and are committed when it starts again.",
        holder.holder, holder.epoch
    );
    std::process::exit(3)
}

fn describe(leader: &Mutex<Option<LeaseRecord>>) -> String {
    match &*leader.lock().expect("leader lock") {
        Some(l) if !l.released => match &l.advertise_url {
            Some(url) => format!("node {} ({url}) leads", l.holder),
            None => format!("node {} leads", l.holder),
        },
        _ => "no node leads yet".to_string(),
    }
}

/// A standby's answers: alive, not ready, every request refused with where to go.
fn standby_router(leader: Arc<Mutex<Option<LeaseRecord>>>, retry: Duration) -> Router {
    let refuse = move |leader: Arc<Mutex<Option<LeaseRecord>>>| async move {
        let message = format!(
            "this node is a standby of the fimlake cluster and takes no requests: {}; retry there, or here once it leads",
            describe(&leader)
        );
        ApiError {
            retry_after_secs: Some(retry.as_secs().max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Standby", message)
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(leader): State<Arc<Mutex<Option<LeaseRecord>>>>| async move {
                (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: standby ({})\n", describe(&leader)))
            }),
        )
        .fallback(move |State(leader): State<Arc<Mutex<Option<LeaseRecord>>>>| refuse(leader))
        .with_state(leader)
}

async fn status(State(membership): State<Membership>) -> Response {
    match ClusterStatus::read(&membership.registry, &membership.node_id(), membership.heartbeat).await {
        Ok(status) => axum::Json(status).into_response(),
        Err(e) => ApiError {
            retry_after_secs: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("reading the cluster's state from the bucket: {e}"),
            )
        }
        .into_response(),
    }
}
