//! Alert rules end to end: the real server (a child process), a webhook receiver on 127.0.0.1
//! started here, rules managed through the API, a notification that survives a SIGKILL between
//! the outbox write and its delivery.

mod common;

#[path = "common/hooks.rs"]
mod hooks;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, free_address, http, http_get, post_json};
use hooks::{receiver, receiver_on_any_port};
use serde_json::{Value, json};

fn setup(dir: &Path, hook_addr: &str) -> std::path::PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("action-groups.toml"),
        format!("[ops]\nwebhooks = [{{ url = \"http://{hook_addr}/hook\" }}]\n"),
    )
    .unwrap();
    let config = dir.join("fimlake.toml");
    std::fs::write(
        &config,
        "[alerting.delivery]\nmin_retry_delay = \"200ms\"\nmax_retry_delay = \"500ms\"\nattempt_timeout = \"2s\"\n",
    )
    .unwrap();
    config
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

fn get_json(url: &str) -> (u16, Value) {
    let (status, _, body) = http_get(url).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn put_json(url: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) =
        http("PUT", url, &[("Content-Type", "application/json")], body.to_string().as_bytes()).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn rules_through_the_api_alert_by_webhook_within_seconds() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (hooks, hook_addr) = receiver_on_any_port(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &hook_addr);
    let server = Server::start(dir.path(), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);
    let rules_url = format!("{}/v1/alert-rules", server.url);

    assert_eq!(get_json(&rules_url), (200, json!({"value": []})));
    let rule = json!({
        "severity": 1,
        "description": "A file under /etc changed",
        "query": "ConfigurationChange | where FileSystemPath startswith '/etc/' | project Computer, FileSystemPath, ChangeCategory",
        "frequency": "10s",
        "condition": {"kind": "per_row"},
        "actions": ["ops"],
    });
    let (status, created) = put_json(&format!("{rules_url}/etc-changed"), &rule);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["healthy"], true);
    // A query that does not compile is refused with the KQL error; an unknown group too.
    let mut bad = rule.clone();
    bad["query"] = json!("ConfigurationChange | where NoSuchColumn == 1");
    let (status, err) = put_json(&format!("{rules_url}/broken"), &bad);
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("NoSuchColumn"), "{err}");
    let mut bad = rule.clone();
    bad["actions"] = json!(["nobody"]);
    assert_eq!(put_json(&format!("{rules_url}/broken"), &bad).0, 400);
    assert_eq!(get_json(&format!("{rules_url}/broken")).0, 404);
    assert!(dir.path().join("rules/etc-changed.toml").exists(), "the API writes the rules directory");

    // Ingest-to-webhook latency of a 10-second rule, three times, posted at different points of
    // the rule's period.
    let mut latencies = Vec::new();
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(3300 * i as u64));
        let path = format!("/etc/app{i}.conf");
        let (status, _) = post_json(
            &format!("{}/v1/tables/ConfigurationChange/records", server.url),
            &json!([{"Computer": "web1", "FileSystemPath": path, "ChangeCategory": "Modified", "ConfigChangeType": "Files"}])
                .to_string(),
        );
        assert_eq!(status, 200);
        let acked = Instant::now();
        wait_for("the webhook", 40, || hooks.len() > i);
        let (at, _, body) = hooks.get(i);
        latencies.push(at - acked);
        assert_eq!(body["data"]["alertContext"]["searchResults"]["tables"][0]["rows"][0][1], json!(path));
    }
    assert_eq!(hooks.len(), 3, "one notification per change");

    let (_, alerts) = get_json(&format!("{}/v1/alerts?state=fired", server.url));
    assert_eq!(alerts["value"].as_array().unwrap().len(), 3);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    let (status, v) = post_json(
        &format!("{}/v1/workspaces/{ws}/query", server.url),
        &json!({"query": "AlertDelivery | summarize count() by Status"}).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(v["tables"][0]["rows"], json!([["Delivered", 3]]));
    let (_, d) = post_json(
        &format!("{}/v1/workspaces/{ws}/query", server.url),
        &json!({"query": "AlertEvaluation | where Rows > 0 | project DurationMs"}).to_string(),
    );
    let (_, s) = post_json(
        &format!("{}/v1/workspaces/{ws}/query", server.url),
        &json!({"query": "AlertDelivery | project DurationMs"}).to_string(),
    );
    println!(
        "ingest-to-webhook latency, 10 s rule: {latencies:?}; evaluation ms: {}; delivery ms: {}",
        d["tables"][0]["rows"], s["tables"][0]["rows"]
    );

    let (_, _, metrics) = http_get(&format!("{}/metrics", server.url)).unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    for needle in [
        "fimlake_notifications_total{result=\"delivered\"} 3",
        "fimlake_outbox_depth 0",
        "fimlake_alert_rule_unhealthy{rule=\"etc-changed\"} 0",
        "fimlake_alerts_total{condition=\"fired\",rule=\"etc-changed\"} 3",
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }

    // Nobody can forge the audit trail.
    let (status, _) = post_json(
        &format!("{}/v1/tables/AlertDelivery/records", server.url),
        &json!([{"Status": "Delivered"}]).to_string(),
    );
    assert_eq!(status, 403);

    let (status, _, _) = http("DELETE", &format!("{rules_url}/etc-changed"), &[], b"").unwrap();
    assert_eq!(status, 204);
    assert_eq!(get_json(&format!("{rules_url}/etc-changed")).0, 404);
    assert!(!dir.path().join("rules/etc-changed.toml").exists());
}

#[test]
fn a_notification_survives_a_kill_between_the_outbox_and_its_delivery() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook_addr = free_address(); // nothing listens there yet
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &hook_addr);
    std::fs::write(
        dir.path().join("rules/passwd.toml"),
        "name = 'passwd'\nseverity = 0\nquery = \"ConfigurationChange | where FileSystemPath == '/etc/passwd'\"\nfrequency = '10s'\ncondition = { kind = 'per_row', key = ['Computer', 'FileSystemPath', 'TimeGenerated'] }\nactions = ['ops']\n",
    )
    .unwrap();
    let mut server = Server::start(dir.path(), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);
    let (status, _) = post_json(
        &format!("{}/v1/tables/ConfigurationChange/records", server.url),
        &json!([{"Computer": "db1", "FileSystemPath": "/etc/passwd", "ChangeCategory": "Modified"}]).to_string(),
    );
    assert_eq!(status, 200);
    let mut key = String::new();
    wait_for("a failed delivery attempt", 40, || {
        let (_, v) = get_json(&format!("{}/v1/notifications", server.url));
        match v["pending"].as_array().and_then(|p| p.first()) {
            Some(p) if p["attempts"].as_u64() >= Some(1) => {
                key = p["notificationId"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    server.kill();

    let hooks = receiver(&rt, &hook_addr);
    server.restart();
    wait_for("the delivery after the restart", 30, || hooks.len() == 1);
    assert_eq!(hooks.get(0).1, key, "the same idempotency key as before the crash");
    // The next evaluation after the restart does not raise the change again.
    let (_, before) = get_json(&format!("{}/v1/alert-rules/passwd", server.url));
    wait_for("an evaluation after the restart", 30, || {
        get_json(&format!("{}/v1/alert-rules/passwd", server.url)).1["lastRun"] != before["lastRun"]
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hooks.len(), 1, "exactly one notification");
    let (_, n) = get_json(&format!("{}/v1/notifications", server.url));
    assert_eq!(n, json!({"pending": [], "failed": []}));
}
