//! The query API of the real server, shaped like the Log Analytics Query API: KQL over records
//! posted a moment before (still buffered) and after a restart (in Parquet).

mod common;

use std::process::Command;

use common::{Server, http, http_get};
use serde_json::{Value, json};

fn query(server: &Server, ws: &str, body: Value, prefer: Option<&str>) -> (u16, Value) {
    let url = format!("{}/v1/workspaces/{ws}/query", server.url);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(p) = prefer {
        headers.push(("Prefer", p));
    }
    let (status, _, body) = http("POST", &url, &headers, body.to_string().as_bytes()).unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[test]
fn kql_over_ingested_records_answers_in_the_log_analytics_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    assert!(Command::new("sh").arg(script).arg(&server.url).output().unwrap().status.success());
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();

    let q = "ConfigurationChange | where FileSystemPath contains 'PASSWD' | project Computer, ChangeCategory, Size, TimeGenerated";
    for round in ["buffered", "after a restart"] {
        let (status, v) = query(&server, &ws, json!({"query": q, "timespan": null, "workspaces": null}), Some(""));
        assert_eq!(status, 200, "{round}: {v}");
        assert_eq!(
            v["tables"][0]["columns"],
            json!([
                {"name": "Computer", "type": "string"},
                {"name": "ChangeCategory", "type": "string"},
                {"name": "Size", "type": "long"},
                {"name": "TimeGenerated", "type": "datetime"}
            ]),
            "{round}"
        );
        assert_eq!(
            v["tables"][0]["rows"],
            json!([["web-01", "Modified", 2874, "2024-05-01T10:15:02.123Z"]]),
            "{round}"
        );
        server.stop();
        server.restart();
    }

    let (status, v) = query(
        &server,
        &ws,
        json!({"query": "Heartbeat | summarize count(), arg_max(TimeGenerated, ComputerPrivateIPs) by Computer | order by Computer asc | project Computer, count_, ips = ComputerPrivateIPs[0]"}),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tables"][0]["columns"][2], json!({"name": "ips", "type": "dynamic"}));
    assert_eq!(v["tables"][0]["rows"], json!([["db-02", 1, "10.0.1.7"], ["web-01", 2, "10.0.0.5"]]));
    let (status, v) = query(&server, &ws, json!({"query": "Heartbeat | frobnicate"}), None);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["innererror"]["code"], "SyntaxError");
    let (status, v) = query(&server, &ws, json!({"query": "Heartbeat | top-hitters 3 of Computer by count()"}), None);
    assert_eq!((status, v["error"]["innererror"]["code"].as_str()), (400, Some("UnsupportedError")));

    let (status, v) = query(
        &server,
        &ws,
        json!({"query": "Heartbeat | summarize n = count() by Computer | order by Computer asc"}),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tables"][0]["rows"], json!([["db-02", 1], ["web-01", 2]]));

    // The timespan applies on top of the query: the records are from 2024-05-01.
    let (_, v) = query(
        &server,
        &ws,
        json!({"query": "Heartbeat | count", "timespan": "PT1H"}),
        Some("wait=100,include-statistics=true"),
    );
    assert_eq!(v["tables"][0]["rows"], json!([[0]]));
    let (_, v) = query(
        &server,
        &ws,
        json!({"query": "Heartbeat | count", "timespan": "2024-05-01T10:15:30.000Z/2024-05-02T00:00:00.000Z"}),
        None,
    );
    assert_eq!(v["tables"][0]["rows"], json!([[2]]));

    // GET, and the path without /v1 (azure-monitor-query 1.x with a custom endpoint).
    let (status, _, body) =
        http_get(&format!("{}/workspaces/{ws}/query?query=Heartbeat%20%7C%20count", server.url)).unwrap();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["tables"][0]["rows"], json!([[3]]));

    // Errors: position and kind of a KQL error, unknown workspace, bad timespan.
    let (status, v) = query(&server, &ws, json!({"query": "Heartbeat\n| wher Computer == 'a'"}), None);
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "BadArgumentError");
    assert_eq!(v["error"]["innererror"]["code"], "SyntaxError");
    assert_eq!(v["error"]["innererror"]["line"], 2);
    assert_eq!(v["error"]["innererror"]["pos"], 3);
    let (status, v) = query(&server, "nope", json!({"query": "Heartbeat"}), None);
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("WorkspaceNotFoundError")));
    let (status, v) = query(&server, &ws, json!({"query": "Heartbeat", "timespan": "yesterday"}), None);
    assert_eq!(status, 400);
    assert!(v["error"]["innererror"]["message"].as_str().unwrap().contains("invalid timespan 'yesterday'"));
}

#[test]
fn a_query_past_its_memory_limit_fails_clearly_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_QUERY_MAX_MEMORY_BYTES", "16777216")]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    // Counting distinct values keeps every value in memory (it cannot spill to disk).
    let q = "range x from 1 to 2000000 step 1 | summarize dcount(strcat('value-number-', x))";
    let (status, v) = query(&server, &ws, json!({ "query": q }), None);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["innererror"]["code"], "QueryMemoryLimitExceeded", "{v}");
    let message = v["error"]["innererror"]["message"].as_str().unwrap();
    assert!(message.contains("memory limit of 16777216 bytes"), "{message}");
    let (status, v) = query(&server, &ws, json!({"query": "range x from 1 to 3 step 1 | count"}), None);
    assert_eq!((status, &v["tables"][0]["rows"]), (200, &json!([[3]])));
}

#[test]
fn watchlists_are_csv_files_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    assert!(Command::new("sh").arg(script).arg(&server.url).output().unwrap().status.success());
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    std::fs::create_dir_all(dir.path().join("watchlists")).unwrap();
    std::fs::write(dir.path().join("watchlists/CriticalHosts.csv"), "Host,Owner\nweb-01,\"Ops, EU\"\nmail-09,Mail\n")
        .unwrap();
    let q = "Heartbeat | where Computer in ((_GetWatchlist('CriticalHosts') | project SearchKey)) | summarize count() by Computer";
    let (status, v) = query(&server, &ws, json!({ "query": q }), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tables"][0]["rows"], json!([["web-01", 2]]));
    let (_, v) = query(
        &server,
        &ws,
        json!({"query": "_GetWatchlist('CriticalHosts') | where Owner has 'EU' | project Host"}),
        None,
    );
    assert_eq!(v["tables"][0]["rows"], json!([["web-01"]]));
    let (status, v) = query(&server, &ws, json!({"query": "_GetWatchlist('Nope')"}), None);
    assert_eq!(status, 400);
    assert!(v["error"]["innererror"]["message"].as_str().unwrap().starts_with("unknown watchlist 'Nope'"), "{v}");
    let (_, v) = query(&server, &ws, json!({"query": "_GetWatchlist('../workspace-id')"}), None);
    assert!(v["error"]["innererror"]["message"].as_str().unwrap().contains("letters, digits"), "{v}");
}
