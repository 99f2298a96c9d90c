//! The agent and the real server together: a change in a watched directory becomes queryable
//! in `ConfigurationChange`; with the server down, changes wait in the agent's spool and
//! arrive once it is back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, free_address, post_json};
use fimlake_agent::agent::{self, Agent};
use fimlake_agent::config::{AgentConfig, Item};
use serde_json::Value;

fn rows(server: &Server, ws: &str, kql: &str) -> Vec<Value> {
    let body = serde_json::json!({ "query": kql }).to_string();
    let (status, v) = post_json(&format!("{}/v1/workspaces/{ws}/query", server.url), &body);
    assert_eq!(status, 200, "{v}");
    v["tables"][0]["rows"].as_array().cloned().unwrap_or_default()
}

fn wait_rows(server: &Server, ws: &str, kql: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let r = rows(server, ws, kql);
        if r.len() >= n {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{kql}: {r:?} after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn changes_reach_the_server_and_survive_its_outage() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("etc");
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::write(watched.join("sshd_config"), "PermitRootLogin no\n").unwrap();
    let mut server = Server::start_at(&dir.path().join("server"), &[], &free_address());
    let ws = std::fs::read_to_string(dir.path().join("server/workspace-id")).unwrap().trim().to_string();

    let cfg = AgentConfig {
        computer: Some("agent-e2e".into()),
        server: server.url.clone(),
        data_dir: dir.path().join("agent"),
        scan_interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
        items: vec![Item { name: "etc".into(), path: watched.to_string_lossy().into(), ..Item::default() }],
        ..AgentConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let agent = Arc::new(Agent::open(cfg).unwrap());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = rt.spawn(agent::run(agent, stop));
    wait_rows(&server, &ws, "Heartbeat | where Computer == 'agent-e2e'", 1);

    let sshd = watched.join("sshd_config");
    std::fs::write(&sshd, "PermitRootLogin yes\n").unwrap();
    let q = format!(
        "ConfigurationChange | where FileSystemPath == '{}' | project ChangeCategory, FieldsChanged, PreviousSize, Size",
        sshd.display()
    );
    let r = wait_rows(&server, &ws, &q, 1);
    assert_eq!(r[0], serde_json::json!(["Modified", "Size, FileContentChecksum, DateModified", 19, 20]));

    // The server goes away; a change made meanwhile is spooled and delivered after it returns.
    server.stop();
    let added = watched.join("authorized_keys");
    std::fs::write(&added, "ssh-ed25519 AAAA attacker\n").unwrap();
    let spool = dir.path().join("agent/spool");
    let start = Instant::now();
    while !std::fs::read_dir(&spool)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with("-ConfigurationChange.json"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "the change was not spooled");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.restart();
    let q = format!("ConfigurationChange | where FileSystemPath == '{}' | project ChangeCategory", added.display());
    assert_eq!(wait_rows(&server, &ws, &q, 1), vec![serde_json::json!(["Added"])]);
    let q = "ConfigurationChange | where Computer == 'agent-e2e' and ConfigChangeType == 'Files' | count";
    assert_eq!(rows(&server, &ws, q), vec![serde_json::json!([2])], "each change once");

    let _ = stop_tx.send(true);
    rt.block_on(running).unwrap().unwrap();
}
