//! Upgrades keep the data: a data directory written by fimlake 0.1 (committed under
//! `tests/fixtures/v0.1`, made by its `make.sh` with the 0.1 binary: two alert events flushed to
//! Parquet, a third only in the WAL after a SIGKILL, the rule's state file) opens with this
//! release, whose `AlertEvent` has three more columns (`AlertState`, `Principal`, `Comment`).

mod common;

use std::path::Path;

use common::{Server, http, post_json};
use serde_json::json;

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

/// A data directory of the release before central agent configuration (`tests/fixtures/v0.2`,
/// made by its `make.sh`: an admin key in the configuration file, host web1 enrolled, two
/// Heartbeat rows flushed and a third only in the WAL) opens with this release: `Heartbeat`
/// gains `ConfigurationGroup` and `ConfigurationVersion` (empty in the old rows), `fleet.json`
/// gains group configurations, and the enrolled host's key stays.
/// A server on a copy of the v0.2 data directory (in `dir`), with `env` added; its admin key.
fn open_v0_2(dir: &Path, env: &[(&str, &str)]) -> (Server, String) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.2");
    copy_dir(&fixture.join("data"), &dir.join("data"));
    let config = dir.join("cfg.toml");
    let text = std::fs::read_to_string(fixture.join("cfg.toml")).unwrap();
    std::fs::write(&config, text.replace("data_dir = \"data\"", "")).unwrap();
    let admin = std::fs::read_to_string(fixture.join("admin-key")).unwrap().trim().to_string();
    // The fixture's rows are of the day it was made: kept whatever today is.
    let mut all = vec![("FIMLAKE_CONFIG", config.to_str().unwrap()), ("FIMLAKE_STORAGE_RETENTION_DAYS", "36500")];
    all.extend_from_slice(env);
    (Server::start(&dir.join("data"), &all), admin)
}

/// The rows of `kql` run on the v0.2 fixture's workspace.
fn query_v0_2(server: &Server, admin: &str, kql: &str) -> Vec<serde_json::Value> {
    let path = "/v1/workspaces/00000000-0000-4000-8000-000000000002/query";
    let (status, body) = server.call("POST", path, Some(admin), &serde_json::json!({ "query": kql }).to_string());
    assert_eq!(status, 200, "{body}");
    body["tables"][0]["rows"].as_array().unwrap().clone()
}

const V0_2_HEARTBEATS: &str =
    "Heartbeat | project Version, ConfigurationGroup, ConfigurationVersion | order by Version asc";

#[test]
fn a_v0_2_data_directory_gains_the_configuration_columns_and_keeps_its_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = open_v0_2(dir.path(), &[]);
    let query = |kql: &str| query_v0_2(&server, &admin, kql);

    let old = V0_2_HEARTBEATS;
    let expected_old: Vec<_> = ["0.2.0", "0.2.1", "0.2.2"].iter().map(|v| serde_json::json!([v, "", null])).collect();
    assert_eq!(query(old), expected_old, "flushed and replayed rows, the new columns empty");

    let (_, keys) = server.call("GET", "/v1/keys", Some(&admin), "");
    let web1 = keys["keys"].as_array().unwrap().iter().find(|k| k["name"] == "agent-web1").cloned();
    assert_eq!(web1.map(|k| (k["group"].clone(), k["state"].clone())), Some((json!("linux"), json!("active"))));
    let (status, body) = server.call("PUT", "/v1/agent-config/linux", Some(&admin), "realtime = false\n");
    assert_eq!((status, &body["version"]), (200, &json!(1)), "{body}");

    let (_, created) = server.call("POST", "/v1/keys", Some(&admin), r#"{"name": "loader", "role": "ingest"}"#);
    let loader = created["key"].as_str().unwrap();
    let new_row =
        r#"[{"Computer": "web1", "Version": "0.3.0", "ConfigurationGroup": "linux", "ConfigurationVersion": 1}]"#;
    assert_eq!(server.call("POST", "/v1/tables/Heartbeat/records", Some(loader), new_row).0, 200);
    let mut expected = expected_old;
    expected.push(serde_json::json!(["0.3.0", "linux", 1]));
    assert_eq!(query(old), expected, "old and new rows side by side");
}

/// The v0.2 directory's Heartbeat rows are of 2026-12-02, a closed day: its hour file and the
/// file of the rows replayed from its WAL become one file of the day, the rows kept once.
#[test]
fn a_v0_2_data_directory_s_closed_day_is_compacted_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let often = [("FIMLAKE_STORAGE_FLUSH_AGE", "200ms"), ("FIMLAKE_STORAGE_MAINTENANCE_INTERVAL", "200ms")];
    let (mut server, admin) = open_v0_2(dir.path(), &often);
    common::records::wait_compacted(&server.url, Some(&admin), "Heartbeat");
    let day = dir.path().join("data/tables/Heartbeat/PartitionDate=2026-12-02");
    let partitions: Vec<String> =
        std::fs::read_dir(&day).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(partitions.contains(&"PartitionHour=__HIVE_DEFAULT_PARTITION__".to_string()), "{partitions:?}");
    let versions = |server: &Server| {
        let rows = query_v0_2(server, &admin, V0_2_HEARTBEATS);
        rows.iter().map(|r| r[0].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(versions(&server), ["0.2.0", "0.2.1", "0.2.2"]);
    server.stop();
    server.restart();
    assert_eq!(versions(&server), ["0.2.0", "0.2.1", "0.2.2"], "the day's file is what reloads");
}
