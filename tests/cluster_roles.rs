//! A cluster of nodes with roles on one S3 bucket (s3s-fs on 127.0.0.1, started by the test):
//! two leader candidates, three ingest nodes, one query node, all separate `fimlake serve`
//! processes. Records posted round-robin to the ingest nodes (by four clients at once for 60 s
//! in the two long phases) are acknowledged by them and committed by the leader; an ingest node
//! and then the leader are killed with SIGKILL and restarted or replaced; at the end the query node
//! counts every acknowledged record, a per-row rule notified each matching record once across
//! the failover, and the bucket holds each record exactly once.

mod common;

#[path = "common/s3.rs"]
mod s3_server;

#[path = "common/cluster_nodes.rs"]
mod cluster_nodes;

#[path = "common/hooks.rs"]
mod hooks;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cluster_nodes::*;
use common::header;
use common::records::{body_text, metric, post_batch};
use serde_json::json;

/// Posts `rounds` batches to each ingest node in turn.
fn post_round_robin(nodes: &[&Node], rounds: usize, next: &mut usize, acked: &mut HashSet<String>) {
    for _ in 0..rounds {
        for node in nodes {
            post_group(node, 1, next, acked);
        }
    }
}

/// Clients posting at once in [`post_for`].
const CLIENTS: usize = 4;

/// `CLIENTS` clients post to the ingest nodes round-robin for `how_long`, each a batch every
/// 100 ms: some records are always waiting for their commit when the leader evaluates its
/// rules. Each client names its records from its own range.
fn post_for(nodes: &[&Node], how_long: Duration, next: &mut usize, acked: &mut HashSet<String>) {
    const RANGE: usize = 10_000_000;
    let started = Instant::now();
    let names: Vec<HashSet<String>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let mut own_next = *next + client * RANGE;
                scope.spawn(move || {
                    let mut own = HashSet::new();
                    let mut turn = client;
                    while started.elapsed() < how_long {
                        post_group(nodes[turn % nodes.len()], 1, &mut own_next, &mut own);
                        turn += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    own
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    *next += CLIENTS * RANGE;
    acked.extend(names.into_iter().flatten());
}

fn query_url(node: &Node) -> String {
    let ws = std::fs::read_to_string(node.server.data_dir.join("workspace-id")).unwrap();
    format!("/v1/workspaces/{}/query", ws.trim())
}

/// Each role's API answers only on the nodes with that role; the others name the role.
fn assert_roles_route_requests(ingest: &Node, query: &Node) {
    let mut next = 1_000_000;
    let (refused, _) = post_batch(&query.server.url, &mut next);
    assert_eq!(refused.0, 421, "{}", body_text(&refused));
    assert_eq!(header(&refused.1, "x-ms-error-code"), Some("WrongRole"));
    assert!(body_text(&refused).contains("the ingest role"), "{}", body_text(&refused));
    let (status, body) = ingest.server.call("POST", &query_url(ingest), None, r#"{"query":"Heartbeat | count"}"#);
    assert_eq!(status, 421, "{body}");
    assert!(body.to_string().contains("the query role"), "{body}");
    let (status, body) = ingest.server.call("GET", "/v1/alert-rules", None, "");
    assert_eq!(status, 421, "{body}");
    assert!(body.to_string().contains("the leader role"), "{body}");
}

/// On the leader: a webhook action group and a per-row rule matching every hundredth host.
fn add_rule(leader: &Node, hook_addr: &str) {
    let group = json!({"webhooks": [{"url": format!("http://{hook_addr}/hook")}]});
    let (status, body) = leader.server.call("PUT", "/v1/action-groups/ops", None, &group.to_string());
    assert!(status == 200 || status == 201, "{body}");
    let rule = json!({
        "severity": 3,
        "description": "every hundredth host",
        "query": "Heartbeat | where Computer endswith '00' | project Computer",
        "frequency": "10s",
        "condition": {"kind": "per_row"},
        "actions": ["ops"],
    });
    let (status, body) = leader.server.call("PUT", "/v1/alert-rules/hundredth", None, &rule.to_string());
    assert_eq!(status, 201, "{body}");
}

/// The hosts the webhook was told about, once each (a notification delivered twice, with the
/// same `Idempotency-Key`, counts once): every acknowledged hundredth host.
fn assert_each_alerted_once(hooks: &hooks::Hooks, acked: &HashSet<String>) {
    let wanted: HashSet<&String> = acked.iter().filter(|name| name.ends_with("00")).collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let told = || -> Vec<String> {
        let mut keys = HashSet::new();
        (0..hooks.len())
            .filter(|i| keys.insert(hooks.get(*i).1))
            .flat_map(|i| {
                let (_, _, body) = hooks.get(i);
                let rows = body["data"]["alertContext"]["searchResults"]["tables"][0]["rows"].clone();
                rows.as_array().unwrap().iter().map(|row| row[0].as_str().unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect()
    };
    while told().len() < wanted.len() {
        if Instant::now() >= deadline {
            let told: HashSet<String> = told().into_iter().collect();
            let mut missing: Vec<&&String> = wanted.iter().filter(|name| !told.contains(**name)).collect();
            missing.sort();
            panic!("alerted {} of {} hosts; not alerted: {missing:?}", told.len(), wanted.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let told = told();
    let unique: HashSet<&String> = told.iter().collect();
    assert_eq!(unique.len(), told.len(), "a host alerted twice: {told:?}");
    assert_eq!(unique, wanted, "alerted hosts differ from the acknowledged ones");
}

/// Waits until the lease names `node` (as `node_id`, not released), read through `via`; returns
/// how long that took.
fn wait_for_leader(via: &Node, node: &str) -> Duration {
    let started = Instant::now();
    loop {
        let leader = cluster_status(via)["leader"].clone();
        if leader["node_id"] == node && leader["released"] == false {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{node} did not take the lease: {leader}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the query node's count is `expected`; returns how long that took.
fn wait_query_count(node: &Node, expected: usize) -> Duration {
    let started = Instant::now();
    wait_count(node, expected);
    started.elapsed()
}

#[test]
fn ingest_nodes_acknowledge_the_leader_commits_and_the_query_node_sees_every_record_once() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);

    // The leader candidates share their rule files (as configuration management would keep
    // them); the rules' states are in the bucket.
    let rules = tempfile::tempdir().unwrap();
    let shared_rules = [("FIMLAKE_ALERTING_RULES_DIR", rules.path().to_str().unwrap())];
    let mut first = start_as_with(&s3, "leader-1", "leader", &shared_rules);
    wait_ready(&first, 200, Duration::from_secs(30));
    let second = start_as_with(&s3, "leader-2", "leader", &shared_rules);
    let mut ingest_1 = start_as(&s3, "ingest-1", "ingest");
    let ingest_2 = start_as(&s3, "ingest-2", "ingest");
    let ingest_3 = start_as(&s3, "ingest-3", "ingest");
    let query = start_as(&s3, "query-1", "query");
    for node in [&ingest_1, &ingest_2, &ingest_3, &query] {
        wait_ready(node, 200, Duration::from_secs(30));
    }
    assert_roles_route_requests(&ingest_1, &query);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (hooks, hook_addr) = hooks::receiver_on_any_port(&rt);
    add_rule(&first, &hook_addr);
    let status = cluster_status(&query);
    let states: Vec<(String, String, String)> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap().into(),
                n["role"].as_str().unwrap().into(),
                n["roles"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("ingest-1".into(), "serving".into(), "ingest".into()),
            ("ingest-2".into(), "serving".into(), "ingest".into()),
            ("ingest-3".into(), "serving".into(), "ingest".into()),
            ("leader-1".into(), "leader".into(), "leader".into()),
            ("leader-2".into(), "standby".into(), "leader".into()),
            ("query-1".into(), "serving".into(), "query".into()),
        ]
    );

    // Acknowledged by the ingest nodes, committed by the leader, seen by the query node.
    post_round_robin(&[&ingest_1, &ingest_2, &ingest_3], 4, &mut next, &mut acked);
    let seen = wait_query_count(&query, acked.len());
    eprintln!("query node counted {} records {seen:?} after the last acknowledgement", acked.len());
    assert!(metric(&first.server.url, r#"fimlake_staged_rows_committed_total{table="Heartbeat"}"#) > 0.0);
    // Each ingest node says how far its acknowledged records are behind being committed.
    for node in cluster_status(&query)["nodes"].as_array().unwrap() {
        let lag = &node["commit_lag_seconds"];
        match node["roles"].as_str() {
            Some("ingest") => assert!(lag.as_f64().is_some_and(|l| l < 30.0), "{node}"),
            _ => assert!(lag.is_null(), "{node}"),
        }
    }

    // An ingest node killed with records only in its WAL (or staged) commits them after its restart.
    post_round_robin(&[&ingest_1, &ingest_2, &ingest_3], 3, &mut next, &mut acked);
    ingest_1.server.kill();
    ingest_1.server.restart();
    wait_ready(&ingest_1, 200, Duration::from_secs(30));
    // Longer than the rule's period: it evaluates while records wait for their commit.
    post_for(&[&ingest_1, &ingest_2, &ingest_3], Duration::from_secs(30), &mut next, &mut acked);
    // The leader's per-row rule saw each matching record once, though other nodes received
    // them and they were committed seconds later (the nodes' commit floor bounds its windows).
    assert_each_alerted_once(&hooks, &acked);

    // The rule's state is in the bucket, for the next leader.
    let state = bucket_root.path().join("fimlake-bucket/cluster/_cluster/alerting/state/hundredth.json");
    assert!(state.is_file(), "no rule state at {}", state.display());

    // The webhook receiver down: the leader's notifications wait in its outbox (in the bucket).
    // Then the leader killed: the ingest nodes keep acknowledging, the standby takes over,
    // commits, and delivers what the killed leader had not.
    hooks.refuse(true);
    post_for(&[&ingest_1, &ingest_2, &ingest_3], Duration::from_secs(30), &mut next, &mut acked);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hooks.refused() == 0 {
        assert!(Instant::now() < deadline, "the leader never tried to notify");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.server.kill();
    hooks.refuse(false);
    // Records posted while the standby takes over, timed from the kill.
    let first_name = next;
    let (takeover, posted_next) = std::thread::scope(|scope| {
        let posting = scope.spawn(|| {
            let (mut own_next, mut own) = (first_name, HashSet::new());
            post_round_robin(&[&ingest_1, &ingest_2, &ingest_3], 3, &mut own_next, &mut own);
            (own_next, own)
        });
        let takeover = wait_for_leader(&query, "leader-2");
        let serving = wait_ready(&second, 200, Duration::from_secs(30));
        eprintln!("leader-2 took the lease {takeover:?} after the SIGKILL and served {serving:?} after it");
        let (posted_next, posted) = posting.join().unwrap();
        acked.extend(posted);
        (takeover, posted_next)
    });
    next = posted_next;
    // A whole TTL unchanged, then the standby's next look; the rest is polling and a busy machine.
    assert!(takeover < LEASE_TTL + LEASE_TTL / 4 + Duration::from_secs(2), "takeover took {takeover:?}");
    post_round_robin(&[&ingest_1, &ingest_2, &ingest_3], 3, &mut next, &mut acked);
    let seen = wait_query_count(&query, acked.len());
    eprintln!(
        "standby leading {takeover:?} after the leader's SIGKILL; query node complete {seen:?} after the last acknowledgement"
    );
    // The new leader resumed the rule where the killed one left it and delivered the killed
    // one's pending notifications: nothing missed, nothing alerted twice (a notification
    // delivered again keeps its Idempotency-Key).
    assert_each_alerted_once(&hooks, &acked);

    // Clean stops: the ingest nodes' last flushes are committed by the leader before they exit.
    let (mut ingest_2, mut ingest_3, mut query, mut second) = (ingest_2, ingest_3, query, second);
    ingest_1.server.stop();
    ingest_2.server.stop();
    ingest_3.server.stop();
    query.server.stop();
    second.server.stop();
    assert_bucket_holds_exactly_once(&s3, &acked);
}

#[test]
fn an_ingest_node_keeps_acknowledging_through_an_s3_outage_and_everything_is_committed_after() {
    let bucket_root = tempfile::tempdir().unwrap();
    let mut s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);
    let mut leader = start_as(&s3, "leader", "all");
    wait_ready(&leader, 200, Duration::from_secs(30));
    let mut ingest = start_as(&s3, "ingest", "ingest");
    wait_ready(&ingest, 200, Duration::from_secs(30));
    post_group(&ingest, 2, &mut next, &mut acked);
    wait_count(&leader, acked.len());

    // Two lease TTLs without the bucket: the ingest node acknowledges into its WAL, its flushes
    // cannot be staged, the leader cannot commit.
    s3.pause();
    let outage = Instant::now();
    while outage.elapsed() < 2 * LEASE_TTL {
        post_group(&ingest, 1, &mut next, &mut acked);
        std::thread::sleep(Duration::from_millis(200));
    }
    s3.resume();
    // No restart: the leader takes its lease back, the ingest node stages again.
    wait_ready(&leader, 200, Duration::from_secs(30));
    post_group(&ingest, 1, &mut next, &mut acked);
    wait_count(&leader, acked.len());
    ingest.server.stop();
    leader.server.stop();
    assert_bucket_holds_exactly_once(&s3, &acked);
}

#[test]
fn without_a_leader_an_ingest_node_acknowledges_until_its_buffers_are_full_then_refuses_saying_why() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let (mut acked, mut next) = (HashSet::new(), 0);
    let mut leader = start_as(&s3, "leader", "leader");
    wait_ready(&leader, 200, Duration::from_secs(30));
    let small_buffers = [("FIMLAKE_STORAGE_FLUSH_BYTES", "20000"), ("FIMLAKE_STORAGE_MAX_BUFFER_BYTES", "400000")];
    let mut ingest = start_as_with(&s3, "ingest", "ingest", &small_buffers);
    wait_ready(&ingest, 200, Duration::from_secs(30));
    leader.server.stop();

    let deadline = Instant::now() + Duration::from_secs(60);
    let refusal = loop {
        assert!(Instant::now() < deadline, "the ingest node never refused");
        let (reply, names) = post_batch(&ingest.server.url, &mut next);
        match reply.0 {
            200 => acked.extend(names),
            // Full while the flush is still being written: refused, and tried again.
            503 if !body_text(&reply).contains("waits for the cluster's leader") => {
                std::thread::sleep(Duration::from_millis(200))
            }
            503 => break reply,
            other => panic!("unexpected {other}: {}", body_text(&reply)),
        }
    };
    assert!(header(&refusal.1, "retry-after").is_some());
    assert!(body_text(&refusal).contains("is a leader running?"), "{}", body_text(&refusal));

    // A leader again: the staged flushes are committed and the node takes records again.
    leader.server.restart();
    wait_ready(&leader, 200, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (reply, names) = post_batch(&ingest.server.url, &mut next);
        if reply.0 == 200 {
            acked.extend(names);
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", body_text(&reply));
        std::thread::sleep(Duration::from_millis(200));
    }
    ingest.server.stop();
    leader.server.stop();
    assert_bucket_holds_exactly_once(&s3, &acked);
}

/// Asks `node` `kql`: the rows of the answer's first table.
fn query_rows(node: &Node, kql: &str) -> serde_json::Value {
    let body = json!({ "query": kql }).to_string();
    let (status, answer) = node.server.call("POST", &query_url(node), None, &body);
    assert_eq!(status, 200, "{}: {kql}: {answer}", node.id);
    answer["tables"][0]["rows"].clone()
}

fn explain(node: &Node, kql: &str) -> String {
    let body = json!({ "query": kql }).to_string();
    let (status, answer) = node.server.call("POST", &query_url(node).replace("/query", "/explain"), None, &body);
    assert_eq!(status, 200, "{}: {kql}: {answer}", node.id);
    answer["plan"].as_str().unwrap().to_string()
}

fn wait_metric(node: &Node, sample: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = metric(&node.server.url, sample);
        if value == expected {
            return;
        }
        assert!(Instant::now() < deadline, "node {}: {sample} is {value}, never reached {expected}", node.id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Queries over several files, and whether the distributed planner fans them out (it keeps a
/// plan whose hash join collects one side, as `arg_max` and `top` become, in one task).
const FANNED_OUT_QUERIES: &[(&str, bool)] = &[
    ("Heartbeat | count", true),
    ("Heartbeat | summarize n = count(), hosts = dcount(Computer) by Category | order by Category asc", true),
    (
        "Heartbeat | where Computer has_any (\"host-000007\", \"host-000123\") or Computer endswith \"99\" | summarize count(), min(Computer), max(Computer)",
        true,
    ),
    (
        "Heartbeat | extend n = toint(extract(@\"host-0*(\\d+)\", 1, Computer)) | summarize c = count() by bucket = n % 7 | order by bucket asc",
        true,
    ),
    ("Heartbeat | summarize arg_max(TimeGenerated, *) by Computer | count", false),
    ("Heartbeat | top 5 by Computer desc | project Computer", false),
];

/// Two query nodes fan large queries out over each other with datafusion-distributed, and
/// answer what one node alone answers; a query node killed drops out of the others' plans.
#[test]
fn query_nodes_fan_a_large_query_out_over_each_other_and_answer_as_one_node_does() {
    let bucket_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let leader = start_as(&s3, "leader", "leader,ingest");
    wait_ready(&leader, 200, Duration::from_secs(30));
    let fanning = start_as_with(&s3, "query-1", "query", &[("FIMLAKE_CLUSTER_DISTRIBUTE_ABOVE_FILES", "0")]);
    let mut local = start_as_with(&s3, "query-2", "query", &[("FIMLAKE_CLUSTER_DISTRIBUTE_ABOVE_FILES", "100000")]);
    for node in [&fanning, &local] {
        wait_ready(node, 200, Duration::from_secs(30));
        wait_metric(node, "fimlake_cluster_query_workers", 2.0);
    }
    let workers: Vec<String> = cluster_status(&fanning)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["worker_url"].as_str().map(|u| format!("{}={u}", n["node_id"].as_str().unwrap())))
        .collect();
    assert_eq!(workers.len(), 2, "each query node registers its worker: {workers:?}");

    // Several commits, so several files to split.
    let (mut acked, mut next) = (HashSet::new(), 0);
    for _ in 0..4 {
        post_group(&leader, 3, &mut next, &mut acked);
        wait_count(&local, acked.len());
    }
    wait_count(&fanning, acked.len());
    // Its count queries fanned out too: counted from here, once the metric has caught up.
    std::thread::sleep(Duration::from_secs(1));
    let before = metric(&fanning.server.url, "fimlake_distributed_queries_total");
    let mut fanned_out = 0;
    for &(kql, fans_out) in FANNED_OUT_QUERIES {
        if fans_out {
            assert!(explain(&fanning, kql).contains("DistributedExec"), "{kql} fans out");
            fanned_out += 1;
        }
        assert!(!explain(&local, kql).contains("DistributedExec"), "{kql} stays local below the threshold");
        assert_eq!(query_rows(&fanning, kql), query_rows(&local, kql), "{kql}");
    }
    assert_eq!(query_rows(&fanning, "Heartbeat | count")[0][0], acked.len());
    wait_metric(&fanning, "fimlake_distributed_queries_total", before + (fanned_out + 1) as f64);

    // A worker killed: the query that finds it gone runs again on its node, and the node
    // leaves it out of its next plans once its registration is three heartbeats old.
    local.server.kill();
    assert_eq!(query_rows(&fanning, "Heartbeat | count")[0][0], acked.len());
    wait_metric(&fanning, "fimlake_cluster_query_workers", 1.0);
    assert!(!explain(&fanning, "Heartbeat | count").contains("DistributedExec"), "one worker left: local");
}
