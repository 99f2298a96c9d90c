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

#[path = "common/cluster_nodes.rs"]
mod cluster_nodes;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cluster_nodes::*;
use common::records::{body_text, metric, post_batch};
use common::{Server, free_address, header, http_get};

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
    assert!(cli(&s3, &a, &["cluster", "status"]).contains("forgotten: b at"), "the forgetting is recorded");
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
