//! Two `fimlake serve` processes as one cluster on one S3 bucket (s3s-fs on 127.0.0.1, started
//! by the test): the first takes the leader lease and serves, the other waits as a standby and
//! refuses requests naming the leader; when the leader is killed the standby takes over within
//! one lease TTL, the killed node's acknowledged records reach the tables when it restarts, and
//! every acknowledged record is stored exactly once.

mod common;

#[path = "common/s3.rs"]
mod s3_server;

#[path = "common/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::records::{assert_exactly_once, body_text, computers, metric, post_batch};
use common::{Server, free_address, header, http, http_get, read_table_with};

const TABLE_URL: &str = "s3://fimlake-bucket/cluster";
const LEASE_TTL: Duration = Duration::from_secs(3);

struct Node {
    id: &'static str,
    server: Server,
    _data: tempfile::TempDir,
}

fn node_env(s3: &s3_server::S3Server, id: &str, listen: &str) -> Vec<(String, String)> {
    let mut env = s3.server_env(TABLE_URL);
    for (k, v) in [
        ("FIMLAKE_CLUSTER_NODE_ID", id.to_string()),
        ("FIMLAKE_CLUSTER_ADVERTISE_URL", format!("http://{listen}")),
        ("FIMLAKE_CLUSTER_LEASE_TTL", format!("{}s", LEASE_TTL.as_secs())),
        ("FIMLAKE_CLUSTER_HEARTBEAT", "500ms".to_string()),
        ("FIMLAKE_STORAGE_FLUSH_AGE", "2s".to_string()),
        // Failed flushes and reads are expected while the bucket is away.
        ("FIMLAKE_LOG", "warn,fimlake_storage=off,buoyant_kernel=off".to_string()),
    ] {
        env.push((k.to_string(), v));
    }
    env
}

fn start(s3: &s3_server::S3Server, id: &'static str) -> Node {
    start_via(s3, id, &s3.endpoint())
}

/// A node that reaches the S3 server at `endpoint` (a proxy the test can cut).
fn start_via(s3: &s3_server::S3Server, id: &'static str, endpoint: &str) -> Node {
    let data = tempfile::tempdir().unwrap();
    let listen = free_address();
    let mut env = node_env(s3, id, &listen);
    env.push(("AWS_ENDPOINT".into(), endpoint.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Node { id, server: Server::start_node(data.path(), &env, &listen), _data: data }
}

/// Waits until `/readyz` answers `status`; returns how long that took.
fn wait_ready(node: &Node, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if http_get(&format!("{}/readyz", node.server.url)).is_ok_and(|r| r.0 == status) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "node {} did not answer /readyz {status} within {within:?}", node.id);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster_status(node: &Node) -> serde_json::Value {
    let (status, body) = node.server.call("GET", "/v1/cluster", None, "");
    assert_eq!(status, 200, "{body}");
    body
}

fn roles(status: &serde_json::Value) -> Vec<(String, String, bool)> {
    let nodes = status["nodes"].as_array().unwrap();
    nodes
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap().into(), n["role"].as_str().unwrap().into(), n["alive"] == true))
        .collect()
}

fn post_group(node: &Node, batches: usize, next: &mut usize, acked: &mut HashSet<String>) {
    for _ in 0..batches {
        let (reply, names) = post_batch(&node.server.url, next);
        assert_eq!(reply.0, 200, "node {}: {}", node.id, body_text(&reply));
        acked.extend(names);
    }
}

fn wait_committed(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&node.server.url, r#"fimlake_buffered_rows{table="Heartbeat"}"#) > 0.0 {
        assert!(Instant::now() < deadline, "node {}: rows not committed within 30 s", node.id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With every node stopped: the Heartbeat table in the bucket (read with an empty WAL) holds
/// every acknowledged record exactly once.
fn assert_bucket_holds_exactly_once(s3: &s3_server::S3Server, acked: &HashSet<String>) {
    let reader = tempfile::tempdir().unwrap();
    let cfg = s3.storage_config(TABLE_URL, reader.path());
    assert_exactly_once(computers(&read_table_with(cfg, "Heartbeat", &["Computer"])), acked);
}

/// Polls `Heartbeat | count` on the leader until it equals `expected` (other nodes' commits
/// reach it through its periodic read of the Delta log).
fn wait_count(node: &Node, expected: usize) {
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

#[test]
fn a_standby_takes_over_from_a_killed_leader_and_every_acknowledged_record_is_stored_once() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);

    let mut a = start(&s3, "a");
    wait_ready(&a, 200, Duration::from_secs(30));
    let b = start(&s3, "b");
    // The standby is alive, not ready, and sends writers to the leader.
    let (status, _, body) = http_get(&format!("{}/readyz", b.server.url)).unwrap();
    let readyz = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 503, "{readyz}");
    assert!(readyz.contains(&format!("node a ({}) leads", a.server.url)), "{readyz}");
    let (refused, _) = post_batch(&b.server.url, &mut next);
    assert_eq!(refused.0, 503, "{}", body_text(&refused));
    assert_eq!(header(&refused.1, "x-ms-error-code"), Some("Standby"));
    assert!(header(&refused.1, "retry-after").is_some());
    assert!(body_text(&refused).contains("node a"), "{}", body_text(&refused));
    let status = cluster_status(&a);
    assert_eq!((status["leader"]["node_id"].as_str(), status["leader"]["epoch"].as_u64()), (Some("a"), Some(1)));
    assert_eq!(roles(&status), vec![("a".into(), "leader".into(), true), ("b".into(), "standby".into(), true)]);

    let a_workspace = a.server.call("GET", "/v1/workspace", None, "").1["workspaceId"].clone();
    assert!(a_workspace.is_string());
    // Some records committed, then some only in a's WAL when it is killed.
    post_group(&a, 5, &mut next, &mut acked);
    wait_committed(&a);
    post_group(&a, 5, &mut next, &mut acked);
    a.server.kill();
    let takeover = wait_ready(&b, 200, Duration::from_secs(30));
    // A whole TTL without renewals, one look by the standby, then opening the tables.
    assert!(takeover < LEASE_TTL + LEASE_TTL / 4 + Duration::from_secs(5), "takeover took {takeover:?}");
    eprintln!("standby ready {takeover:?} after the leader's SIGKILL (lease_ttl {LEASE_TTL:?})");
    post_group(&b, 5, &mut next, &mut acked);
    let workspace = |node: &Node| node.server.call("GET", "/v1/workspace", None, "").1["workspaceId"].clone();
    assert_eq!(workspace(&b), a_workspace, "the query API's URL does not change with the leader");

    // The killed node commits its WAL as it starts again, then waits as a standby.
    a.server.restart();
    wait_ready(&a, 503, Duration::from_secs(30));
    wait_count(&b, acked.len());
    let status = cluster_status(&b);
    assert_eq!((status["leader"]["node_id"].as_str(), status["leader"]["epoch"].as_u64()), (Some("b"), Some(2)));
    assert_eq!(roles(&status), vec![("a".into(), "standby".into(), true), ("b".into(), "leader".into(), true)]);
    assert_eq!(metric(&b.server.url, "fimlake_cluster_lease_epoch"), 2.0);
    assert_eq!(metric(&b.server.url, "fimlake_cluster_leading"), 1.0);
    let read_at = metric(&b.server.url, r#"fimlake_table_log_read_timestamp_seconds{table="Heartbeat"}"#);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(now - read_at < 5.0, "the leader read the Delta log {}s ago", now - read_at);

    // A clean stop releases the lease: the standby takes over without waiting out the TTL.
    let mut b = b;
    b.server.stop();
    let handover = wait_ready(&a, 200, Duration::from_secs(30));
    assert!(handover < LEASE_TTL + Duration::from_secs(5), "handover took {handover:?}");
    eprintln!("standby ready {handover:?} after the leader's clean stop (lease released)");
    post_group(&a, 2, &mut next, &mut acked);
    let printed = cli(&s3, &a, &["cluster", "status"]);
    assert!(printed.contains("leader: a (epoch 3"), "{printed}");
    assert!(printed.lines().any(|l| l.starts_with('b') && l.contains("stopped")), "{printed}");
    // A node taken out for good is forgotten; a live one is not.
    assert!(cli(&s3, &a, &["cluster", "forget", "b"]).contains("forgot node b"));
    let refused = cli_refused(&s3, &a, &["cluster", "forget", "a"]);
    assert!(refused.contains("node 'a' was seen") && refused.contains("stop it before"), "{refused}");
    let nodes = cluster_status(&a)["nodes"].as_array().unwrap().len();
    assert_eq!(nodes, 1, "only a is registered");
    a.server.stop();

    assert_bucket_holds_exactly_once(&s3, &acked);
}

/// `fimlake ARGS` with node `node`'s settings: its standard output, once it succeeded.
fn cli(s3: &s3_server::S3Server, node: &Node, args: &[&str]) -> String {
    let out = run_cli(s3, node, args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `fimlake ARGS` that must fail: its standard error.
fn cli_refused(s3: &s3_server::S3Server, node: &Node, args: &[&str]) -> String {
    let out = run_cli(s3, node, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn run_cli(s3: &s3_server::S3Server, node: &Node, args: &[&str]) -> std::process::Output {
    let env = node_env(s3, node.id, "127.0.0.1:1");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fimlake"));
    command.args(args).envs(env).env("FIMLAKE_LOG", "warn").output().unwrap()
}

#[test]
fn a_leader_cut_off_from_the_bucket_keeps_acknowledging_and_nothing_is_lost_whoever_leads_after() {
    let bucket_root = tempfile::tempdir().unwrap();
    let mut s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);
    let mut a = start(&s3, "a");
    wait_ready(&a, 200, Duration::from_secs(30));
    let mut b = start(&s3, "b");
    post_group(&a, 2, &mut next, &mut acked);
    wait_committed(&a);

    // Two lease TTLs without the bucket: the leader cannot renew, stops committing, and still
    // acknowledges records into its WAL.
    s3.pause();
    let outage = Instant::now();
    while outage.elapsed() < 2 * LEASE_TTL {
        post_group(&a, 1, &mut next, &mut acked);
        std::thread::sleep(Duration::from_millis(200));
    }
    s3.resume();

    // Afterwards exactly one node leads: the old leader renewed or took its lease back, or the
    // standby took it and the old leader exited (code 3) so that its restart commits its WAL.
    // Never are both ready: a leader that cannot count on its lease answers /readyz with 503.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        if let Some(status) = a.server.exited() {
            assert_eq!(status.code(), Some(3), "the cut-off leader exits with code 3 when another node leads");
            wait_ready(&b, 200, Duration::from_secs(30));
            a.server.restart();
            break &b;
        }
        let a_ready = http_get(&format!("{}/readyz", a.server.url)).is_ok_and(|r| r.0 == 200);
        let b_ready = http_get(&format!("{}/readyz", b.server.url)).is_ok_and(|r| r.0 == 200);
        assert!(!(a_ready && b_ready), "two nodes serve as leader at once");
        if a_ready && cluster_status(&a)["leader"]["node_id"] == "a" {
            break &a;
        }
        assert!(Instant::now() < deadline, "no node leads 60 s after the bucket returned");
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = cluster_status(leader);
    eprintln!("after the outage, node {} leads in epoch {}", status["leader"]["node_id"], status["leader"]["epoch"]);
    wait_count(leader, acked.len());
    post_group(leader, 1, &mut next, &mut acked);
    a.server.stop();
    b.server.stop();

    assert_bucket_holds_exactly_once(&s3, &acked);
}

#[test]
fn a_leader_cut_off_alone_is_replaced_and_exits_when_it_sees_the_new_leader() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let link = proxy::Proxy::start(s3.addr);
    let (mut acked, mut next) = (HashSet::new(), 0);
    let mut a = start_via(&s3, "a", &link.endpoint());
    wait_ready(&a, 200, Duration::from_secs(30));
    let b = start(&s3, "b");
    post_group(&a, 2, &mut next, &mut acked);
    wait_committed(&a);

    // Only a loses the bucket. It stops counting on its lease (not ready, commits refused) but
    // still acknowledges into its WAL; b takes the lease over once it saw it unchanged a TTL.
    link.cut();
    let cut = Instant::now();
    wait_ready(&a, 503, LEASE_TTL);
    while metric(&a.server.url, "fimlake_cluster_leading") != 0.0 {
        assert!(cut.elapsed() < LEASE_TTL, "fimlake_cluster_leading still 1 on a node cut off");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut a_acked = 0;
    while http_get(&format!("{}/readyz", b.server.url)).map_or(true, |r| r.0 != 200) {
        assert!(cut.elapsed() < Duration::from_secs(30), "b did not take over within 30 s");
        let (reply, names) = post_batch(&a.server.url, &mut next);
        assert_eq!(reply.0, 200, "{}", body_text(&reply));
        a_acked += names.len();
        acked.extend(names);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(a_acked > 0);
    assert_eq!(cluster_status(&b)["leader"]["epoch"], 2);
    post_group(&b, 2, &mut next, &mut acked);

    // Back on the network, a sees b's lease and exits at once; its restart commits its WAL.
    link.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = a.server.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "the replaced leader did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3), "{status}");
    a.server.restart();
    wait_ready(&a, 503, Duration::from_secs(30));
    wait_count(&b, acked.len());
    a.server.stop();
    let mut b = b;
    b.server.stop();

    assert_bucket_holds_exactly_once(&s3, &acked);
}

#[test]
fn a_single_node_that_joins_a_cluster_first_commits_what_its_own_wal_holds() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);
    // A single node on the bucket, killed with records only in its WAL (`<data_dir>/wal`).
    let data = tempfile::tempdir().unwrap();
    let mut env = s3.server_env(TABLE_URL);
    env.push(("FIMLAKE_STORAGE_FLUSH_AGE".into(), "1h".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut single = Server::start(data.path(), &env_refs);
    for _ in 0..3 {
        let (reply, names) = post_batch(&single.url, &mut next);
        assert_eq!(reply.0, 200, "{}", body_text(&reply));
        acked.extend(names);
    }
    single.kill();

    // The same data directory, now as cluster node a: it commits that WAL, then leads.
    let listen = free_address();
    let mut env = node_env(&s3, "a", &listen);
    env.push(("FIMLAKE_STORAGE_FLUSH_AGE".into(), "1h".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = Node { id: "a", server: Server::start_node(data.path(), &env_refs, &listen), _data: data };
    wait_ready(&a, 200, Duration::from_secs(30));
    assert_eq!(metric(&a.server.url, r#"fimlake_buffered_rows{table="Heartbeat"}"#), 0.0, "committed, not replayed");
    assert!(!a.server.data_dir.join("wal").exists(), "the single-node WAL, committed, is removed");
    wait_count(&a, acked.len());
    let mut a = a;
    a.server.stop();

    assert_bucket_holds_exactly_once(&s3, &acked);
}
