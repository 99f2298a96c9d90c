//! The console end to end in a real browser: a server with keys, an alert rule and records (two
//! machines, one silent; 60 changes under one directory; a change with uploaded content; a
//! hostile path; a coverage loss), then `tests/console/browser.py` (Playwright driving Debian's
//! chromium) clicks through every page as a person would. Screenshots go to
//! `target/ui-screenshots/`.
#![allow(
    clippy::disallowed_methods,
    reason = "test settings (the venv python, bench sizes) come from the environment scripts/test sets"
)]

mod common;

use std::process::Command;

use chrono::{Duration, Utc};
use common::{Server, create_key, http};
use serde_json::{Value, json};

fn post(server: &Server, key: &str, table: &str, rows: &[Value]) {
    let url = format!("{}/v1/tables/{table}/records", server.url);
    let auth = format!("Bearer {key}");
    let body = serde_json::to_vec(rows).unwrap();
    let (status, _, answer) =
        http("POST", &url, &[("Content-Type", "application/json"), ("Authorization", &auth)], &body).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

fn at(minutes_ago: i64) -> String {
    (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn heartbeats(computer: &str, from_minutes_ago: i64, to_minutes_ago: i64) -> Vec<Value> {
    (to_minutes_ago..=from_minutes_ago)
        .map(|m| {
            json!({"TimeGenerated": at(m), "Computer": computer, "OSType": "Linux", "OSName": "Debian GNU/Linux",
                   "OSMajorVersion": "12", "Version": "0.1.0", "ComputerIP": "10.0.0.5", "Category": "Direct Agent"})
        })
        .collect()
}

fn changes() -> Vec<Value> {
    let mut rows: Vec<Value> = (0..60)
        .map(|i| {
            json!({"TimeGenerated": at(30 + i), "Computer": "web1", "ConfigChangeType": "Files",
                   "ChangeCategory": "Modified", "FileSystemPath": format!("/etc/app/conf-{i:02}.conf"),
                   "FieldsChanged": "Checksum"})
        })
        .collect();
    rows.push(json!({
        "TimeGenerated": at(5), "Computer": "web1", "ConfigChangeType": "Files", "ChangeCategory": "Modified",
        "FileSystemPath": "/etc/motd", "Name": "motd", "FieldsChanged": "Size, Checksum, Mode",
        "PreviousSize": 20, "Size": 19, "PreviousFileContentChecksum": "a".repeat(64),
        "FileContentChecksum": "b".repeat(64), "Previous": "Welcome\nline two\nend\n", "Current": "Welcome\nline 2\nend\n",
        "Mode": "0644", "PreviousMode": "0600", "Owner": "root", "PreviousOwner": "root"
    }));
    rows.push(json!({"TimeGenerated": at(70), "Computer": "db1", "ConfigChangeType": "Files",
                     "ChangeCategory": "Added", "FileSystemPath": "/tmp/<script>alert(1)</script>"}));
    rows.push(json!({"TimeGenerated": at(10), "Computer": "web1", "ConfigChangeType": "AgentCoverage",
                     "ChangeCategory": "CoverageLost", "Current": "inotify watch limit reached"}));
    rows
}

#[test]
fn a_person_uses_the_console_in_a_browser() {
    let python = std::env::var("FIMLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FIMLAKE_TEST_PYTHON is not set: run the test suite with scripts/test, which installs Playwright")
    });
    let (admin, admin_cfg) = create_key(&["--role", "admin", "--name", "secops"]);
    let (query, query_cfg) = create_key(&["--role", "query", "--name", "analyst"]);
    let (ingest, ingest_cfg) = create_key(&["--role", "ingest", "--name", "agents"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fimlake.toml");
    std::fs::write(&config, [admin_cfg, query_cfg, ingest_cfg].join("\n")).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    // Deliveries go to a closed port: they stay pending, as the deliveries page shows.
    std::fs::write(rules.join("action-groups.toml"), "[ops]\nwebhooks = [{ url = \"http://127.0.0.1:9/hook\" }]\n")
        .unwrap();
    std::fs::write(
        rules.join("motd.toml"),
        "name = \"motd-changed\"\nseverity = 1\nquery = '''ConfigurationChange | where FileSystemPath == \"/etc/motd\" \
         | project TimeGenerated, Computer, FileSystemPath'''\nfrequency = \"10s\"\ncondition = { kind = \"per_row\" }\n\
         actions = [\"ops\"]\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[("FIMLAKE_CONFIG", config.to_str().unwrap()), ("FIMLAKE_ALERTING_RULES_DIR", rules.to_str().unwrap())],
    );
    post(&server, &ingest, "Heartbeat", &heartbeats("web1", 60, 0));
    post(&server, &ingest, "Heartbeat", &heartbeats("db1", 120, 50));
    post(&server, &ingest, "ConfigurationChange", &changes());
    post(
        &server,
        &ingest,
        "ConfigurationData",
        &[json!({"Computer": "web1", "ConfigDataType": "Files", "FileSystemPath": "/etc/motd", "Size": 19,
                 "FileContentChecksum": "b".repeat(64), "Location": "/etc", "Owner": "root", "Mode": "0644"})],
    );
    let workspace = std::fs::read_to_string(dir.path().join("data/workspace-id")).unwrap().trim().to_string();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.py");
    let out = Command::new(python)
        .arg(script)
        .args([server.url.as_str(), &admin, &query, &workspace, shots.to_str().unwrap()])
        .output()
        .expect("running the browser test");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains("all steps passed"), "{text}");
}
