//! The `fimlake` command's tools: `ingest` bulk-loads files into a running server, `tables` lists
//! the schema.

mod common;

use std::process::Command;

use common::{Server, fimlake, read_table};

#[test]
fn ingest_loads_json_and_ndjson_files_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let ndjson = dir.path().join("beats.ndjson");
    let lines: Vec<String> = (0..500).map(|i| format!(r#"{{"Computer":"n{i}","OSType":"Linux"}}"#)).collect();
    std::fs::write(&ndjson, lines.join("\n")).unwrap();
    let array = dir.path().join("beats.json");
    std::fs::write(&array, r#"[{"Computer":"a1"}, {"Computer":"a2"}]"#).unwrap();
    let out = fimlake(&[
        "ingest",
        "--quiet",
        "--server",
        &server.url,
        "--table",
        "Heartbeat",
        "--chunk-bytes",
        "4096",
        ndjson.to_str().unwrap(),
        array.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "502 records accepted into Heartbeat\n");
    server.stop();
    assert_eq!(read_table(&dir.path().join("data"), "Heartbeat", &["Computer"]).len(), 502);
}

#[test]
fn ingest_reports_the_servers_refusal_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"Computer\":\"ok\"}\n{\"Computer\":7}\n").unwrap();
    let out = fimlake(&["ingest", "--quiet", "--server", &server.url, "--table", "Heartbeat", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ndjson: records 0..2"), "{err}");
    assert!(err.contains("field 'Computer': expected string (a JSON string), got number 7"), "{err}");
}

#[test]
fn tables_lists_the_registry() {
    let out = fimlake(&["tables"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ConfigurationChange (62 columns): "), "{text}");
    assert!(text.contains("\nHeartbeat (38 columns): "), "{text}");
    let out = fimlake(&["tables", "Heartbeat"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  ComputerPrivateIPs           dynamic   The list of private IP addresses"), "{text}");
    let out = fimlake(&["tables", "Nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("table 'Nope' does not exist; tables are: "));
}

#[test]
fn query_prints_tables_csv_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    assert!(Command::new("sh").arg(script).arg(&server.url).output().unwrap().status.success());
    let ws = std::fs::read_to_string(data.join("workspace-id")).unwrap().trim().to_string();
    let d = data.to_str().unwrap();
    let q = "Heartbeat | summarize beats = count() by Computer | order by Computer asc";
    let table = "Computer | beats\n---------+------\ndb-02    | 1\nweb-01   | 2\n(2 rows)\n";
    let out = fimlake(&["query", "--server", &server.url, "--workspace", &ws, q]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), table);
    let out = fimlake(&["query", "--server", &server.url, "--workspace", &ws, "--format", "csv", q]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Computer,beats\ndb-02,1\nweb-01,2\n");
    let out = fimlake(&["query", "--server", &server.url, "--workspace", &ws, "Heartbeat | wher x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("found 'wher' (line 1, column 13)"), "{err}");
    assert!(err.contains("Heartbeat | wher x\n            ^"), "{err}");

    // --data-dir reads the directory itself, read-only, beside the running server: the rows
    // are still in the WAL; then, the server stopped, in Parquet.
    let out = fimlake(&["query", "--data-dir", d, q]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), table, "rows acknowledged but not yet flushed");
    server.stop();
    let out = fimlake(&["query", "--data-dir", d, q]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), table, "rows in Parquet");
    let out = fimlake(&[
        "query",
        "--data-dir",
        d,
        "--explain",
        "Heartbeat | where TimeGenerated > datetime(2024-05-01) | count",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("DataSourceExec: file_groups="), "{plan}");
    assert!(plan.contains("predicate=TimeGenerated@"), "the time filter reaches the scan: {plan}");
    let out = fimlake(&["query", "--data-dir", &dir.path().join("nope").to_string_lossy(), q]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope does not exist"));

    // --explain on a server: the same plan, over the API.
    server.restart();
    let out = fimlake(&["query", "--server", &server.url, "--workspace", &ws, "--explain", "Heartbeat | count"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DataSourceExec"));
}

#[test]
fn rules_validate_checks_a_directory_without_a_server() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rules");
    let out = fimlake(&["rules", "validate", examples]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok  critical-file-modified (severity 1, every 1m)"), "{text}");
    assert!(text.ends_with("5 rules and 1 action groups are valid\n"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\nseverity = 1\nquery = \"Heartbeat | wher x\"\nfrequency = \"1m\"\ncondition = { kind = \"per_row\" }\nactions = [\"nobody\"]\n").unwrap();
    let out = fimlake(&["rules", "validate", &dir.path().to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: action group 'nobody' is not defined"), "{err}");
    assert!(err.contains("bad.toml: the query does not compile: expected a tabular operator"), "{err}");
}

/// The generator's output loads into a server with default settings, with no option: the client
/// sizes its requests by the limits the server names (4 MiB of generated NDJSON gzips past the
/// default 1 MiB body limit, so chunks are split).
#[test]
fn ingest_loads_the_generators_output_into_a_default_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let generated = fimlake(&[
        "gen",
        "--computers",
        "100",
        "--changes-per-day",
        "120",
        "--end",
        "2026-01-01T00:00:00Z",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let files: Vec<String> = std::fs::read_dir(out.join("ConfigurationChange"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(bytes > 4 << 20, "more than one default chunk: {bytes} bytes");
    let rows: usize = files.iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum();

    let server = Server::start(&dir.path().join("data"), &[]);
    let (status, _, tables) = common::http("GET", &format!("{}/v1/tables", server.url), &[], b"").unwrap();
    let tables: serde_json::Value = serde_json::from_slice(&tables).unwrap();
    assert_eq!((status, &tables["limits"]["max_body_bytes"]), (200, &serde_json::json!(1 << 20)), "{tables}");
    let args = [
        &["ingest", "--quiet", "--server", server.url.as_str(), "--table", "ConfigurationChange"][..],
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat();
    let loaded = fimlake(&args);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert_eq!(String::from_utf8_lossy(&loaded.stdout), format!("{rows} records accepted into ConfigurationChange\n"));
}
