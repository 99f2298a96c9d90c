//! `fimlake serve`: storage, the HTTP APIs, health and metrics, graceful shutdown.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fimlake_cluster::{Role, Roles};
use fimlake_ingest::{IngestMetrics, IngestState};
use fimlake_storage::{Storage, TableRegistry};
use prometheus::{Encoder, HistogramOpts, HistogramVec, Registry, TextEncoder};

use crate::config::{Config, workspace_id};

#[derive(Clone)]
struct ServerState {
    storage: Arc<Storage>,
    /// In a cluster, the lease: a leader that cannot count on it is not ready.
    lease: Option<Arc<dyn fimlake_storage::CommitFence>>,
    registry: Registry,
    http_seconds: HistogramVec,
}

pub async fn serve(cfg: Config, insecure: bool) -> anyhow::Result<()> {
    serve_as(cfg, insecure, None, Shutdown::listen()?).await
}

/// The server; `leading` when this node leads a cluster: its commits are fenced by the lease
/// and it answers `GET /v1/cluster`.
pub(crate) async fn serve_as(
    cfg: Config,
    insecure: bool,
    leading: Option<crate::cluster::Leading>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let tables = TableRegistry::builtin();
    let table_names: Vec<String> = tables.names().iter().map(|t| t.to_string()).collect();
    let fleet = Arc::new(
        fimlake_fleet::Fleet::open(&cfg.data_dir, crate::auth::Auth::configured_views(&cfg.auth), table_names)
            .context("opening the fleet's keys and enrollment tokens")?,
    );
    let auth = Arc::new(crate::auth::Auth::new(&cfg.auth, &tables.names())?.with_fleet(fleet.clone()));
    crate::auth::check_exposure(cfg.listen, &auth, cfg.tls.is_some(), insecure)?;
    if !auth.enabled() {
        tracing::warn!(listen = %cfg.listen, "no API keys configured: anyone who can reach this address can post records and read them");
    }
    let tls = cfg.tls.as_ref().map(crate::tls::server_config).transpose().context("TLS settings ([tls])")?;
    let registry = Registry::new();
    let workspace = workspace_id(&cfg)?;
    let crate::cluster::LeadingParts { fence, listener: kept, banner: cluster_banner, router: cluster, membership } =
        crate::cluster::Leading::parts(leading, &registry)?;
    let storage = Storage::open_fenced(cfg.storage.clone(), tables, &registry, fence.clone())
        .await
        .with_context(|| format!("opening storage in {}", cfg.data_dir.display()))?;
    if let Some(membership) = &membership {
        membership.track(&storage, fence.is_some()).await;
    }
    let ingest_metrics = IngestMetrics::new(&registry)?;
    let http_seconds = http_metrics(&registry)?;
    let engine = crate::cluster::query_engine(&cfg, &storage, membership.as_ref(), &registry).await?;
    let alerting = open_alerting(&cfg, &storage, &engine, &workspace, &registry, fence.clone()).await?;
    let state = ServerState { storage: storage.clone(), lease: fence.clone(), registry, http_seconds };
    let console = match cfg.cluster.roles.has(Role::Query) {
        true => console_router(&cfg, &engine, &alerting, &auth, &fleet, tls.is_some())?,
        false => Router::new(),
    };
    let apis = Apis {
        ingest: fimlake_ingest::router(IngestState::new(
            storage.clone(),
            cfg.ingest.clone(),
            ingest_metrics,
            workspace.clone(),
        )),
        query: fimlake_query::api::router(fimlake_query::api::QueryState::new(engine.clone(), workspace.clone()))
            .merge(crate::machines::router(engine, fleet.clone())),
        leader: fimlake_alerting::api::router(alerting.clone()),
        every_node: fimlake_fleet::api::router(fleet.clone(), cfg.fleet.enrollments_per_minute).merge(cluster),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(apis.for_roles(cfg.cluster.roles))
        .layer(axum::middleware::from_fn_with_state(
            crate::auth::Guard { auth, audit: alerting.audit().clone(), body_read_timeout: cfg.body_read_timeout },
            crate::auth::check,
        ))
        // The console checks its own sessions (fimlake_ui::session); the API's keys guard the rest.
        .merge(console)
        .layer(axum::middleware::from_fn_with_state(state, observe));

    let listener = match kept {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?,
    };
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    print_banner(scheme, addr, &cfg, &storage, &workspace);
    if let Some(line) = cluster_banner {
        println!("{line}");
    }
    alerting.start();
    tokio::spawn(save_last_used(fleet.clone()));
    let rules = alerting.rules().await.len();
    println!("alert rules: {rules} (GET {scheme}://{addr}/v1/alert-rules)");
    if cfg.ui.enabled {
        println!("console: {scheme}://{addr}/");
    }
    accept(listener, tls, app, &cfg, shutdown.requested()).await?;
    alerting.stop();
    tracing::info!("shutting down: flushing buffers");
    storage.shutdown().await.context("flushing buffers at shutdown")?;
    println!("fimlake stopped");
    Ok(())
}

/// The alerting engine: its rules run only where this node may (a cluster's leader, while it
/// counts on its lease).
async fn open_alerting(
    cfg: &Config,
    storage: &Arc<Storage>,
    engine: &Arc<fimlake_query::QueryEngine>,
    workspace: &str,
    registry: &Registry,
    lease: Option<Arc<dyn fimlake_storage::CommitFence>>,
) -> anyhow::Result<Arc<fimlake_alerting::Alerting>> {
    let alerting = fimlake_alerting::Alerting::open_in(
        cfg.alerting.clone(),
        &cfg.data_dir,
        crate::cluster::alerting_place(cfg)?,
        storage.clone(),
        engine.clone(),
        workspace.to_string(),
        registry,
    )
    .await
    .context("loading alert rules")?;
    if let Some(lease) = lease {
        alerting.run_while(Arc::new(move || lease.epoch().is_ok()));
    }
    if !cfg.cluster.roles.has(Role::Leader) {
        // Alert rules are the leader's work; this node's would notify a second time.
        alerting.run_while(Arc::new(|| false));
    }
    Ok(alerting)
}

/// The HTTP APIs, by the role that serves them.
struct Apis {
    ingest: Router,
    query: Router,
    leader: Router,
    every_node: Router,
}

impl Apis {
    /// The APIs a node with `roles` serves. Unknown routes go through the key check too (404
    /// only with a key; 421 for another role's API).
    fn for_roles(self, roles: Roles) -> Router {
        let mut app = self.every_node;
        for (role, router) in [(Role::Ingest, self.ingest), (Role::Query, self.query), (Role::Leader, self.leader)] {
            if roles.has(role) {
                app = app.merge(router);
            }
        }
        crate::roles::fallback(app, roles)
    }
}

/// The request latency histogram (and, on Linux, the process's own metrics), registered.
fn http_metrics(registry: &Registry) -> anyhow::Result<HistogramVec> {
    let http_seconds = HistogramVec::new(
        HistogramOpts::new("fimlake_http_request_seconds", "HTTP request latency by route and status")
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
        &["method", "route", "status"],
    )?;
    registry.register(Box::new(http_seconds.clone()))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    Ok(http_seconds)
}

/// The console's routes, or none when `ui.enabled` is off.
fn console_router(
    cfg: &Config,
    engine: &Arc<fimlake_query::QueryEngine>,
    alerting: &Arc<fimlake_alerting::Alerting>,
    auth: &Arc<crate::auth::Auth>,
    fleet: &Arc<fimlake_fleet::Fleet>,
    https: bool,
) -> anyhow::Result<Router> {
    if !cfg.ui.enabled {
        return Ok(Router::new());
    }
    let ui =
        fimlake_ui::UiState::new(engine.clone(), alerting.clone(), auth.clone(), cfg.ui.clone(), &cfg.data_dir, https)
            .context("opening the console's saved queries")?
            .with_fleet(fleet.clone());
    Ok(fimlake_ui::router(ui))
}

/// Where the server listens and how to start using it.
fn print_banner(scheme: &str, addr: std::net::SocketAddr, cfg: &Config, storage: &Storage, workspace: &str) {
    println!("fimlake listening on {scheme}://{addr}");
    println!("data directory: {} (tables in {})", cfg.data_dir.display(), storage.table_root());
    println!("workspace id: {workspace} (query: POST {scheme}://{addr}/v1/workspaces/{workspace}/query)");
    println!(
        "post a record: curl -X POST {scheme}://{addr}/v1/tables/Heartbeat/records -H 'Content-Type: application/json' -d '[{{\"Computer\":\"web1\"}}]'"
    );
}

/// Accepts connections (TLS when configured, at most `max_connections`, slow clients cut off)
/// until `stop` (a shutdown signal), then lets requests in flight finish (30 s at most).
pub(crate) async fn accept(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    cfg: &Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        stop.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let limit = crate::limits::ConnectionLimit::new(axum_server::accept::DefaultAcceptor, cfg.max_connections);
    match tls {
        Some(config) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )
            .acceptor(limit);
            let mut server = axum_server::from_tcp(listener)?.acceptor(acceptor);
            limit_slow_clients(server.http_builder(), cfg.header_read_timeout);
            server.handle(handle).serve(service).await?
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.acceptor(limit);
            limit_slow_clients(server.http_builder(), cfg.header_read_timeout);
            server.handle(handle).serve(service).await?
        }
    }
    Ok(())
}

/// A client must send its request headers within `timeout` (slowloris); the body is bounded by
/// the ingest and query limits and `request_timeout`.
fn limit_slow_clients(
    b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: std::time::Duration,
) {
    b.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout);
}

/// A request to shut down (SIGTERM or Ctrl-C), listened for from the moment it is made to the
/// end of the process: a signal that comes while no one awaits it (a standby turning leader, a
/// node opening its tables) is kept, not lost.
#[derive(Clone)]
pub(crate) struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Starts listening for the signals (the handlers are in place when this returns).
    pub(crate) fn listen() -> anyhow::Result<Shutdown> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("listening for SIGINT")?;
        let (requested, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = interrupt.recv() => {} }
            let _ = requested.send(true);
        });
        Ok(Shutdown(shutdown))
    }

    /// Completes once a shutdown was requested (at once if it was already).
    pub(crate) async fn requested(mut self) {
        let _ = self.0.wait_for(|requested| *requested).await;
    }
}

/// Writes when keys were last used, once a minute (a crash loses at most that much of it).
async fn save_last_used(fleet: Arc<fimlake_fleet::Fleet>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(e) = fleet.save_last_used() {
            tracing::warn!(error = %e, "writing when keys were last used");
        }
    }
}

async fn readyz(State(st): State<ServerState>) -> Response {
    let leading = st.lease.as_ref().map_or(Ok(0), |lease| lease.epoch());
    match leading.and(st.storage.health()) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

async fn metrics(State(st): State<ServerState>) -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&st.registry.gather(), &mut buf) {
        Ok(()) => ([("content-type", "text/plain; version=0.0.4")], buf).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn observe(State(st): State<ServerState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let resp = next.run(req).await;
    st.http_seconds
        .with_label_values(&[method.as_str(), route.as_str(), resp.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[tokio::test]
    async fn a_sigterm_that_came_while_no_one_awaited_it_still_stops_the_server() {
        let shutdown = Shutdown::listen().unwrap();
        // The signal comes while nothing awaits it (as when a standby turns leader) ...
        let status = std::process::Command::new("kill").arg("-TERM").arg(std::process::id().to_string()).status();
        assert!(status.unwrap().success(), "sending SIGTERM to this test process");
        // ... and what awaits it afterwards (the leader's server) sees it.
        let later = shutdown.clone();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), later.requested()).await;
        assert!(seen.is_ok(), "the SIGTERM was lost");
    }
}
