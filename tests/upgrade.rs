//! Upgrades keep the data: a data directory written by fimlake 0.1 (committed under
//! `tests/fixtures/v0.1`, made by its `make.sh` with the 0.1 binary: two alert events flushed to
//! Parquet, a third only in the WAL after a SIGKILL, the rule's state file) opens with this
//! release, whose `AlertEvent` has three more columns (`AlertState`, `Principal`, `Comment`).

mod common;

use std::path::Path;

use common::{Server, http, post_json};

const WORKSPACE: &str = "00000000-0000-4000-8000-000000000001";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn rows(server: &Server, query: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/v1/workspaces/{WORKSPACE}/query", server.url);
    let (status, body) = post_json(&url, &serde_json::json!({ "query": query }).to_string());
    assert_eq!(status, 200, "{body}");
    body["tables"][0]["rows"].as_array().unwrap().clone()
}

#[test]
fn a_v0_1_data_directory_opens_and_its_alert_table_gains_the_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1");
    copy_dir(&fixture.join("data"), &dir.path().join("data"));
    copy_dir(&fixture.join("rules"), &dir.path().join("rules"));
    let rules = dir.path().join("rules").display().to_string();
    let env = [("FIMLAKE_WORKSPACE_ID", WORKSPACE), ("FIMLAKE_ALERTING_RULES_DIR", rules.as_str())];
    let mut server = Server::start(&dir.path().join("data"), &env);

    // The two flushed events and the one replayed from the WAL, the new columns empty.
    let old = rows(&server, "AlertEvent | project AlertId, MonitorCondition, AlertState | sort by AlertId asc");
    assert_eq!(old.len(), 3, "{old:?}");
    assert!(old.iter().all(|r| r[1] == "Fired" && r[2] == ""), "{old:?}");
    let changes = rows(&server, "ConfigurationChange | count");
    assert_eq!(changes[0][0], 3);

    // The rule's 0.1 state file still knows its alerts; one is acknowledged now.
    let id = "e20b54be-3a1a-31ec-d7ef-d3f67f204079";
    let url = format!("{}/v1/alerts/{id}/acknowledge", server.url);
    let reply =
        http("POST", &url, &[("Content-Type", "application/json")], br#"{"comment":"after the upgrade"}"#).unwrap();
    assert_eq!(reply.0, 200, "{}", String::from_utf8_lossy(&reply.2));

    // Flushed by a graceful stop, then read again: old rows and the new row side by side.
    server.stop();
    server.restart();
    let acked =
        rows(&server, "AlertEvent | where isnotempty(AlertState) | project AlertId, AlertState, Principal, Comment");
    assert_eq!(acked, vec![serde_json::json!([id, "Acknowledged", "anonymous", "after the upgrade"])]);
    assert_eq!(rows(&server, "AlertEvent | count")[0][0], 4);
}
