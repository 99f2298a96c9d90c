//! The nodes of a test cluster: `fimlake serve` processes on one S3 bucket (s3s-fs on
//! 127.0.0.1), and what the cluster tests ask of them.
#![allow(dead_code, reason = "each cluster test uses some of these")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::records::{assert_exactly_once, body_text, computers, metric, post_batch};
use crate::common::{Server, free_address, http, http_get, read_table_with};
use crate::s3_server;

pub const TABLE_URL: &str = "s3://fimlake-bucket/cluster";
pub const LEASE_TTL: Duration = Duration::from_secs(3);

pub struct Node {
    pub id: &'static str,
    pub server: Server,
    pub _data: tempfile::TempDir,
}

pub fn node_env(s3: &s3_server::S3Server, id: &str, listen: &str) -> Vec<(String, String)> {
    let mut env = s3.server_env(TABLE_URL);
    for (k, v) in [
        ("FIMLAKE_CLUSTER_NODE_ID", id.to_string()),
        ("FIMLAKE_CLUSTER_ADVERTISE_URL", format!("http://{listen}")),
        ("FIMLAKE_CLUSTER_LEASE_TTL", format!("{}s", LEASE_TTL.as_secs())),
        ("FIMLAKE_CLUSTER_HEARTBEAT", "500ms".to_string()),
        ("FIMLAKE_STORAGE_FLUSH_AGE", "2s".to_string()),
        // Every alert notified on its own, with its row (no summaries), for counting them.
        ("FIMLAKE_ALERTING_MAX_NOTIFICATIONS_PER_EVALUATION", "100000".to_string()),
        // Failed flushes and reads are expected while the bucket is away.
        ("FIMLAKE_LOG", "warn,fimlake_storage=off,buoyant_kernel=off".to_string()),
    ] {
        env.push((k.to_string(), v));
    }
    env
}

pub fn start(s3: &s3_server::S3Server, id: &'static str) -> Node {
    start_via(s3, id, &s3.endpoint())
}

/// A node that reaches the S3 server at `endpoint` (a proxy the test can cut).
pub fn start_via(s3: &s3_server::S3Server, id: &'static str, endpoint: &str) -> Node {
    start_with(s3, id, endpoint, "all", &[])
}

/// A node with `roles` (`all`, or some of `ingest`, `query`, `leader`).
pub fn start_as(s3: &s3_server::S3Server, id: &'static str, roles: &str) -> Node {
    start_with(s3, id, &s3.endpoint(), roles, &[])
}

/// [`start_as`] with more settings (`FIMLAKE_*` variables).
pub fn start_as_with(s3: &s3_server::S3Server, id: &'static str, roles: &str, more: &[(&str, &str)]) -> Node {
    start_with(s3, id, &s3.endpoint(), roles, more)
}

fn start_with(s3: &s3_server::S3Server, id: &'static str, endpoint: &str, roles: &str, more: &[(&str, &str)]) -> Node {
    let data = tempfile::tempdir().unwrap();
    let listen = free_address();
    let mut env = node_env(s3, id, &listen);
    env.push(("AWS_ENDPOINT".into(), endpoint.into()));
    env.push(("FIMLAKE_CLUSTER_ROLES".into(), roles.into()));
    env.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Node { id, server: Server::start_node(data.path(), &env, &listen), _data: data }
}

/// Waits until `/readyz` answers `status`; returns how long that took.
pub fn wait_ready(node: &Node, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if http_get(&format!("{}/readyz", node.server.url)).is_ok_and(|r| r.0 == status) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "node {} did not answer /readyz {status} within {within:?}", node.id);
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn cluster_status(node: &Node) -> serde_json::Value {
    let (status, body) = node.server.call("GET", "/v1/cluster", None, "");
    assert_eq!(status, 200, "{body}");
    body
}

pub fn roles(status: &serde_json::Value) -> Vec<(String, String, bool)> {
    let nodes = status["nodes"].as_array().unwrap();
    nodes
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap().into(), n["role"].as_str().unwrap().into(), n["alive"] == true))
        .collect()
}

pub fn post_group(node: &Node, batches: usize, next: &mut usize, acked: &mut HashSet<String>) {
    for _ in 0..batches {
        let (reply, names) = post_batch(&node.server.url, next);
        assert_eq!(reply.0, 200, "node {}: {}", node.id, body_text(&reply));
        acked.extend(names);
    }
}

pub fn wait_committed(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&node.server.url, r#"fimlake_buffered_rows{table="Heartbeat"}"#) > 0.0 {
        assert!(Instant::now() < deadline, "node {}: rows not committed within 30 s", node.id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With every node stopped: the Heartbeat table in the bucket (read with an empty WAL) holds
/// every acknowledged record exactly once.
pub fn assert_bucket_holds_exactly_once(s3: &s3_server::S3Server, acked: &HashSet<String>) {
    let reader = tempfile::tempdir().unwrap();
    let cfg = s3.storage_config(TABLE_URL, reader.path());
    assert_exactly_once(computers(&read_table_with(cfg, "Heartbeat", &["Computer"])), acked);
}

/// Polls `Heartbeat | count` on the leader until it equals `expected` (other nodes' commits
/// reach it through its periodic read of the Delta log).
pub fn wait_count(node: &Node, expected: usize) {
    let ws = std::fs::read_to_string(node.server.data_dir.join("workspace-id")).unwrap();
    let url = format!("{}/v1/workspaces/{}/query", node.server.url, ws.trim());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply =
            http("POST", &url, &[("Content-Type", "application/json")], br#"{"query":"Heartbeat | count"}"#).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&reply.2).unwrap_or_default();
        if answer["tables"][0]["rows"][0][0] == expected {
            return;
        }
        assert!(Instant::now() < deadline, "node {}: count {answer} never reached {expected}", node.id);
        std::thread::sleep(Duration::from_millis(200));
    }
}
