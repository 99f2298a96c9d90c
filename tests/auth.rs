//! API keys and roles end to end: keys made by `fimlake keys create`, a server that requires
//! them, each role allowed exactly its part, a computer-bound key that cannot speak for another
//! host, and a server that will not listen on a public address without keys.

mod common;

use std::process::Command;

use common::{Server, create_key, http};
use serde_json::{Value, json};

#[test]
fn each_role_can_do_exactly_what_it_may() {
    let (web1, web1_cfg) =
        create_key(&["--role", "ingest", "--computer", "web1", "--tables", "Heartbeat,ConfigurationChange"]);
    let (ingest, ingest_cfg) = create_key(&["--role", "ingest", "--name", "bulk-loader"]);
    let (query, query_cfg) = create_key(&["--role", "query", "--name", "analyst"]);
    let (admin, admin_cfg) = create_key(&["--role", "admin", "--name", "secops"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fimlake.toml");
    std::fs::write(&config, [web1_cfg, ingest_cfg, query_cfg, admin_cfg].join("\n")).unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    let query_path = format!("/v1/workspaces/{ws}/query");
    let post_heartbeat = r#"[{"Computer": "web1"}]"#;
    let rule = r#"{"severity": 1, "query": "Heartbeat", "frequency": "1m", "condition": {"kind": "per_row"}, "actions": ["none"]}"#;

    // (method, path, body, expected status for: no key, a wrong key, ingest, query, admin)
    let table: Vec<(&str, &str, &str, [u16; 5])> = vec![
        ("GET", "/healthz", "", [200, 200, 200, 200, 200]),
        ("POST", "/v1/tables/Heartbeat/records", post_heartbeat, [401, 401, 200, 403, 403]),
        (
            "POST",
            "/dataCollectionRules/dcr/streams/Custom-Heartbeat?api-version=2023-01-01",
            post_heartbeat,
            [401, 401, 204, 403, 403],
        ),
        ("POST", &query_path, r#"{"query": "Heartbeat | count"}"#, [401, 401, 403, 200, 200]),
        ("GET", "/v1/tables", "", [401, 401, 200, 200, 200]),
        ("GET", "/metrics", "", [401, 401, 403, 200, 200]),
        ("GET", "/v1/alert-rules", "", [401, 401, 403, 200, 200]),
        ("GET", "/v1/alerts", "", [401, 401, 403, 200, 200]),
        // An admin passes authentication and reaches validation (no such action group: 400).
        ("PUT", "/v1/alert-rules/r1", rule, [401, 401, 403, 403, 400]),
        ("DELETE", "/v1/alert-rules/r1", "", [401, 401, 403, 403, 404]),
        ("GET", "/no/such/route", "", [401, 401, 404, 404, 404]),
    ];
    let keys = [None, Some("flk_0000"), Some(web1.as_str()), Some(query.as_str()), Some(admin.as_str())];
    for (method, path, body, expected) in &table {
        let got: Vec<u16> = keys.iter().map(|k| server.call(method, path, *k, body).0).collect();
        assert_eq!(got, expected, "{method} {path}");
    }
    let (_, e) = server.call("GET", "/v1/alerts", None, "");
    assert_eq!(e["error"]["code"], "AuthorizationRequiredError");
    let (_, e) = server.call("GET", "/v1/alerts", Some(&web1), "");
    assert_eq!(e["error"]["code"], "InsufficientAccessError");

    // A key bound to web1 cannot post for db1, nor to a table it was not given.
    let (status, e) =
        server.call("POST", "/v1/tables/Heartbeat/records", Some(&web1), r#"[{"Computer":"web1"},{"Computer":"db1"}]"#);
    assert_eq!(status, 403);
    assert_eq!(e["error"]["code"], "ComputerMismatch");
    assert!(e["error"]["message"].as_str().unwrap().contains("record 1 has Computer 'db1'"), "{e}");
    let (status, e) = server.call("POST", "/v1/tables/ConfigurationData/records", Some(&web1), post_heartbeat);
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("TableNotAllowed")));
    // An unbound ingest key may post for any computer.
    assert_eq!(server.call("POST", "/v1/tables/Heartbeat/records", Some(&ingest), r#"[{"Computer":"db1"}]"#).0, 200);

    let (_, v) = server.call(
        "POST",
        &query_path,
        Some(&query),
        r#"{"query": "Heartbeat | summarize count() by Computer | sort by Computer asc"}"#,
    );
    assert_eq!(v["tables"][0]["rows"], json!([["db1", 1], ["web1", 2]]), "the refused request stored nothing");

    // Who did what: queries with their text and rows, rule changes with their body, refusals.
    let audit = |kql: &str| {
        let body = json!({ "query": kql }).to_string();
        server.call("POST", &query_path, Some(&query), &body).1["tables"][0]["rows"].clone()
    };
    // Rows are written off the request path: wait (bounded) for the last ones.
    let expect = |kql: &str, expected: Value| {
        for _ in 0..100 {
            if audit(kql) == expected {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(audit(kql), expected, "{kql}");
    };
    // Refusals: no or a wrong key (10 routes twice, and one more), and each role's 403s.
    let refused = "AuditLog | where Status in (401, 403) | summarize count() by Principal | sort by Principal asc";
    expect(refused, json!([["analyst", 4], ["secops", 2], ["unknown", 21], ["web1", 9]]));
    let q = "AuditLog | where Principal == 'analyst' and QueryText == 'Heartbeat | count' | project Status, Rows, Role";
    expect(q, json!([[200, 1, "query"]]));
    let changes = audit("AuditLog | where Method == 'PUT' and Principal == 'secops' | project Route, Status, Detail");
    assert_eq!(changes[0][0], "/v1/alert-rules/{name}");
    assert_eq!(changes[0][1], 400);
    assert!(changes[0][2].as_str().unwrap().contains("\"severity\": 1"), "{changes}");
    let forged =
        "AuditLog | where Principal == 'web1' and Route == '/v1/tables/{table}/records' | project Status, Detail";
    // Both refused by the ingestion API (the binding), after authentication: no Detail.
    expect(forged, json!([[403, ""], [403, ""]]));
}

#[test]
fn the_server_will_not_listen_on_a_public_address_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything is bound or opened.
    let out = Command::new(env!("CARGO_BIN_EXE_fimlake"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("FIMLAKE_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without API keys") && err.contains("--insecure"), "{err}");
    assert!(!dir.path().join("tables").exists(), "nothing was opened");
}

#[test]
fn a_key_over_its_rate_gets_429_with_retry_after() {
    let (key, cfg) = create_key(&["--role", "query", "--name", "busy", "--requests-per-second", "1"]);
    let (other, other_cfg) = create_key(&["--role", "query", "--name", "calm"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fimlake.toml");
    std::fs::write(&config, format!("{cfg}\n{other_cfg}")).unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);
    let statuses: Vec<u16> = (0..3).map(|_| server.call("GET", "/v1/alert-rules", Some(&key), "").0).collect();
    assert_eq!(statuses[0], 200);
    assert!(statuses[1..].contains(&429), "{statuses:?}");
    let (status, headers, _) =
        http("GET", &format!("{}/v1/alert-rules", server.url), &[("Authorization", &format!("Bearer {key}"))], b"")
            .unwrap();
    assert_eq!(status, 429);
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"), "{headers:?}");
    assert_eq!(server.call("GET", "/v1/alert-rules", Some(&other), "").0, 200, "other keys are not limited");
}
