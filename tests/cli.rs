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
