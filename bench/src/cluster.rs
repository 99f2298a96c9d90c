//! The cluster step: `fimlake serve` nodes sharing their tables in a bucket (s3s-fs on
//! 127.0.0.1, in this process), all on this one machine.
//!
//! - Ingest with 1, 2 and 3 ingest nodes and a leader committing their flushes: the first
//!   ingest case's clients spread over the ingest nodes; records acknowledged per second, and
//!   the CPU of every node (the leader's included).
//! - Queries local against fanned out: the data set loaded into a leader that takes records,
//!   read by two query nodes, one fanning every query out over both (`distribute_above_files =
//!   0`), one never; each query's answers compared, then timed on both, interleaved.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::ingest::{self, IngestResult, Target};
use crate::queries::{self, QUERIES, run_fimlake};
use crate::s3::S3Server;
use crate::server::{ServerProcess, WORKSPACE, metric_sum};
use crate::{Options, QUERY_STORAGE_CONFIG, SERVER_CONFIG};

/// The `[cluster]` keys of a query node that runs every query alone: no scan is over both
/// thresholds.
const NEVER_FAN_OUT: &str = "distribute_above_files = 1000000000\ndistribute_above_bytes = 1000000000000000\n";

/// The `[storage]` keys of the leader loaded for the queries: compacting as the single-node
/// query server does ([`QUERY_STORAGE_CONFIG`]), but leaving closed days in hour files. A
/// closed day's file is uploaded in parts, and s3s-fs names the upload's metadata file after
/// the object's key in base64: for a day file's key (~160 bytes) that name is ~290 bytes, over
/// the file system's 255, so every such upload fails with a 500 (S3 itself takes keys of 1,024).
fn leader_storage_config() -> String {
    format!("{QUERY_STORAGE_CONFIG}compact_day_after = \"3650days\"\n")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterResult {
    pub ingest: Vec<ClusterIngest>,
    /// Records loaded for the queries (ConfigurationChange and Heartbeat).
    pub loaded_records: u64,
    pub queries: Vec<ClusterQuery>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterIngest {
    pub ingest_nodes: usize,
    /// `server_cores` and `server_peak_rss_mib` cover every node, the leader's included.
    pub result: IngestResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterQuery {
    pub name: String,
    pub rows: u64,
    /// Whether the distributed planner split it over the workers (`DistributedExec`).
    pub fanned_out: bool,
    pub local_median_ms: f64,
    pub distributed_median_ms: f64,
    /// Distributed over local.
    pub ratio: f64,
}

/// One node's configuration: the bench's settings, its tables in `prefix` of the bucket, its
/// role, and more `[storage]` and `[cluster]` lines.
struct NodeConfig<'a> {
    prefix: &'a str,
    node_id: &'a str,
    roles: &'a str,
    storage: &'a str,
    cluster: &'a str,
}

async fn start_node(opts: &Options, s3: &S3Server, dir: &Path, node: NodeConfig<'_>) -> anyhow::Result<ServerProcess> {
    let config = format!(
        "{SERVER_CONFIG}[storage]\n{}{}[cluster]\nnode_id = \"{}\"\nroles = \"{}\"\nheartbeat = \"500ms\"\n{}{}",
        s3.storage_config(node.prefix),
        node.storage,
        node.node_id,
        node.roles,
        node.cluster,
        opts.server_config
    );
    ServerProcess::start(&opts.server_bin, &dir.join(node.node_id), &config)
        .await
        .with_context(|| format!("starting cluster node {}", node.node_id))
}

/// Runs the step in `work/cluster` (emptied first).
pub async fn measure(
    opts: &Options,
    work: &Path,
    pool: &[&[u8]],
    files: &dyn Fn(&str) -> anyhow::Result<Vec<PathBuf>>,
    log: &dyn Fn(&str),
) -> anyhow::Result<ClusterResult> {
    let dir = work.join("cluster");
    let s3 = S3Server::start(&dir.join("s3"), Duration::from_millis(opts.s3_latency_ms)).await?;
    let mut ingest = Vec::new();
    for nodes in 1..=3 {
        let result = ingest_with(opts, &s3, &dir, pool, nodes).await?;
        log(&format!(
            "  {nodes} ingest node(s): {:.0} records/s, p99 {:.1} ms, {:.2} cores",
            result.records_per_second, result.ack_p99_ms, result.server_cores
        ));
        ingest.push(ClusterIngest { ingest_nodes: nodes, result });
    }
    let (loaded_records, queries) = local_against_fanned_out(opts, &s3, &dir, files, log).await?;
    Ok(ClusterResult { ingest, loaded_records, queries })
}

/// The first ingest case over `nodes` ingest nodes, with a leader committing their flushes.
async fn ingest_with(
    opts: &Options,
    s3: &S3Server,
    dir: &Path,
    pool: &[&[u8]],
    nodes: usize,
) -> anyhow::Result<IngestResult> {
    let case = *opts.ingest_cases.first().context("no ingest case to run over the cluster")?;
    let (prefix, dir) = (format!("ingest-{nodes}"), dir.join(format!("ingest-{nodes}")));
    let node = |node_id, roles| NodeConfig { prefix: &prefix, node_id, roles, storage: "", cluster: "" };
    let mut leader = start_node(opts, s3, &dir, node("leader", "leader")).await?;
    let mut ingest_nodes = Vec::new();
    for id in ["ingest-1", "ingest-2", "ingest-3"].into_iter().take(nodes) {
        ingest_nodes.push(start_node(opts, s3, &dir, node(id, "ingest")).await?);
    }
    let bodies = ingest::prepare(pool, case.batch, case.gzip);
    let target = Target { post_to: ingest_nodes.iter().collect(), also_measured: vec![&leader] };
    let result =
        ingest::drive(&target, "ConfigurationChange", case, &bodies, opts.ingest_warmup, opts.ingest_measure).await?;
    for node in &mut ingest_nodes {
        node.stop().await?;
    }
    leader.stop().await?;
    Ok(result)
}

/// Loads the queries' tables into a leader that takes records, then times every query on a
/// query node fanning out and on one that does not.
async fn local_against_fanned_out(
    opts: &Options,
    s3: &S3Server,
    dir: &Path,
    files: &dyn Fn(&str) -> anyhow::Result<Vec<PathBuf>>,
    log: &dyn Fn(&str),
) -> anyhow::Result<(u64, Vec<ClusterQuery>)> {
    let dir = dir.join("queries");
    let node = |node_id, roles, cluster| NodeConfig { prefix: "queries", node_id, roles, storage: "", cluster };
    let storage = leader_storage_config();
    let leader_config = NodeConfig { storage: &storage, ..node("leader", "leader,ingest", "") };
    let mut leader = start_node(opts, s3, &dir, leader_config).await?;
    let fanning = start_node(opts, s3, &dir, node("query-1", "query", "distribute_above_files = 0\n")).await?;
    let local = start_node(opts, s3, &dir, node("query-2", "query", NEVER_FAN_OUT)).await?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let mut loaded = 0;
    for table in ["ConfigurationChange", "Heartbeat"] {
        let url = format!("{}/v1/tables/{table}/records", leader.url);
        let mut rows = 0;
        let all = files(table)?;
        for file in &all[all.len().saturating_sub(opts.cluster_days)..] {
            let bytes = std::fs::read(file)?;
            rows += ingest::ndjson_lines(&bytes).count() as u64;
            crate::post_file(opts, &client, &url, &bytes).await?;
        }
        log(&format!("  loaded {rows} {table} records into the leader"));
        loaded += rows;
        crate::settle(&leader).await?;
        for node in [&fanning, &local] {
            wait_count(&client, node, table, rows).await?;
        }
    }
    wait_workers(&fanning, 2).await?;
    let timings = std::fs::File::create(dir.join("timed-runs.log"))?;
    let queries = time_queries(&client, [&fanning, &local], opts.cluster_query_rounds, timings, log).await?;
    leader.stop().await?;
    Ok((loaded, queries))
}

/// Waits until `node` counts `rows` in `table` (the leader's commits reach it within a heartbeat).
async fn wait_count(client: &reqwest::Client, node: &ServerProcess, table: &str, rows: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let answer = run_fimlake(client, node, &format!("{table} | count")).await?;
        let counted = answer.sums.get("Count").copied().unwrap_or_default();
        if counted == rows as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the query node at {} counts {counted} {table} rows, not {rows}", node.url);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `node` fans out over `workers` query nodes.
async fn wait_workers(node: &ServerProcess, workers: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric_sum(&node.metrics().await?, "fimlake_cluster_query_workers", "") != workers as f64 {
        if Instant::now() > deadline {
            bail!("the query node at {} does not see {workers} query workers", node.url);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Every query: one untimed run on each node comparing the answers, then `rounds` timed runs on
/// each, interleaved (alternating which goes first), each also written to `timings` (when it
/// started and ended, Unix ms: the S3 server's requests during it are its reads, `s3.rs`).
async fn time_queries(
    client: &reqwest::Client,
    [fanning, local]: [&ServerProcess; 2],
    rounds: usize,
    mut timings: std::fs::File,
    log: &dyn Fn(&str),
) -> anyhow::Result<Vec<ClusterQuery>> {
    let mut results = Vec::new();
    for q in QUERIES {
        let (near, far) = (run_fimlake(client, local, q.kql).await?, run_fimlake(client, fanning, q.kql).await?);
        queries::compare(q, &near, &far, ["one node", "fanned out"])?;
        let fanned_out = explain(client, fanning, q.kql).await?.contains("DistributedExec");
        let (mut local_ms, mut distributed_ms) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 { [local, fanning] } else { [fanning, local] };
            for node in order {
                let started = unix_ms();
                let ms = run_fimlake(client, node, q.kql).await?.ms;
                let is_local = std::ptr::eq(node, local);
                let name = if is_local { "local" } else { "fanning" };
                writeln!(timings, "{started} {} {name} {} {ms:.1}", unix_ms(), q.name)?;
                if is_local { local_ms.push(ms) } else { distributed_ms.push(ms) }
            }
        }
        let (local_median_ms, distributed_median_ms) = (queries::median(local_ms), queries::median(distributed_ms));
        log(&format!(
            "  {}: {local_median_ms:.1} ms local, {distributed_median_ms:.1} ms {}",
            q.name,
            if fanned_out { "fanned out" } else { "on the fanning node (kept in one task)" }
        ));
        results.push(ClusterQuery {
            name: q.name.into(),
            rows: near.rows,
            fanned_out,
            local_median_ms,
            distributed_median_ms,
            ratio: if local_median_ms > 0.0 { distributed_median_ms / local_median_ms } else { 0.0 },
        });
    }
    Ok(results)
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
}

async fn explain(client: &reqwest::Client, node: &ServerProcess, kql: &str) -> anyhow::Result<String> {
    let url = format!("{}/v1/workspaces/{WORKSPACE}/explain", node.url);
    let body = serde_json::json!({ "query": kql }).to_string();
    let answer: serde_json::Value =
        client.post(&url).header("content-type", "application/json").body(body).send().await?.json().await?;
    answer["plan"].as_str().map(str::to_string).with_context(|| format!("no plan in {answer}"))
}
