//! `fimlake gen`: the same arguments give the same bytes; the rows are valid records of their
//! tables, and `--server` loads them all.

mod common;

use std::process::Command;

use common::{Server, post_json};
use serde_json::json;

fn run_gen(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fimlake")).arg("gen").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn read_all(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for table in ["ConfigurationChange", "ConfigurationData", "Heartbeat"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(table)).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            files.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    files
}

#[test]
fn generated_data_is_deterministic_and_loads_into_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let common = ["--computers", "3", "--days", "2", "--end", "2026-01-03T00:00:00Z", "--changes-per-day", "50"];
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    run_gen(&[&common[..], &["--seed", "7", "--out", a.to_str().unwrap()]].concat());
    run_gen(&[&common[..], &["--seed", "7", "--out", b.to_str().unwrap()]].concat());
    run_gen(&[&common[..], &["--seed", "8", "--out", c.to_str().unwrap()]].concat());
    let (fa, fb, fc) = (read_all(&a), read_all(&b), read_all(&c));
    assert_eq!(
        fa.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        [
            "ConfigurationChange/2026-01-01.ndjson",
            "ConfigurationChange/2026-01-02.ndjson",
            "ConfigurationData/2026-01-01.ndjson",
            "ConfigurationData/2026-01-02.ndjson",
            "Heartbeat/2026-01-01.ndjson",
            "Heartbeat/2026-01-02.ndjson",
        ]
    );
    assert!(fa == fb, "the same seed gives the same bytes");
    assert!(fa != fc, "another seed gives other data");
    let lines = |prefix: &str| -> usize {
        fa.iter().filter(|f| f.0.starts_with(prefix)).map(|f| f.1.iter().filter(|b| **b == b'\n').count()).sum()
    };
    assert_eq!(lines("Heartbeat"), 3 * 2 * 1440, "one heartbeat per computer and minute");
    assert_eq!(lines("ConfigurationData"), 3 * 2 * 60, "a daily inventory of 60 files");
    let changes = lines("ConfigurationChange");
    assert!((150..=450).contains(&changes), "about 50 a day per computer: {changes}");

    // Straight into a server: every row is accepted and queryable, with the mix of kinds.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start(&data, &[]);
    let out = run_gen(&[&common[..], &["--seed", "7", "--server", &server.url]].concat());
    assert!(out.contains(&format!("{changes} records accepted into ConfigurationChange")), "{out}");
    let ws = std::fs::read_to_string(data.join("workspace-id")).unwrap().trim().to_string();
    let (_, v) = post_json(
        &format!("{}/v1/workspaces/{ws}/query", server.url),
        &json!({"query": "ConfigurationChange | where ConfigChangeType == 'Files' | summarize n = count() by ChangeCategory | sort by n desc | project ChangeCategory"}).to_string(),
    );
    assert_eq!(v["tables"][0]["rows"], json!([["Modified"], ["Added"], ["Removed"]]), "a skewed mix");
    let (_, v) = post_json(
        &format!("{}/v1/workspaces/{ws}/query", server.url),
        &json!({"query": "Heartbeat | summarize dcount(Computer), min(TimeGenerated) >= datetime(2026-01-01), max(TimeGenerated) < datetime(2026-01-03)"}).to_string(),
    );
    assert_eq!(v["tables"][0]["rows"], json!([[3, true, true]]));
}

/// The data repeats as a fleet's does: the same file at the same version has one checksum on
/// every machine, and most changed files hash to a checksum other machines report too (an update
/// rolling over the fleet); local edits are the minority whose checksum is a machine's own.
#[test]
fn checksums_repeat_across_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let args = ["--computers", "20", "--days", "1", "--end", "2026-01-02T00:00:00Z", "--changes-per-day", "200"];
    run_gen(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    let text = std::fs::read_to_string(out.join("ConfigurationChange/2026-01-01.ndjson")).unwrap();
    let mut machines_by_checksum: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    let mut sizes: std::collections::HashMap<String, i64> = Default::default();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        if r["ChangeCategory"] != "Modified" || r["FieldsChanged"] == "Acls" || r["ConfigChangeType"] != "Files" {
            continue;
        }
        let checksum = r["FileContentChecksum"].as_str().unwrap().to_string();
        let size = r["Size"].as_i64().unwrap();
        assert_eq!(*sizes.entry(checksum.clone()).or_insert(size), size, "one size per checksum");
        machines_by_checksum.entry(checksum).or_default().insert(r["Computer"].as_str().unwrap().to_string());
    }
    let (shared, total) = machines_by_checksum
        .values()
        .fold((0, 0), |(shared, total), machines| (shared + usize::from(machines.len() > 1), total + 1));
    assert!(total > 100, "{total} checksums");
    assert!(shared * 5 > total, "{shared} of {total} checksums are on more than one machine");
    let repeated = machines_by_checksum.values().map(|m| m.len()).max().unwrap();
    assert!(repeated >= 5, "an update reaches several of the 20 machines in one period: at most {repeated}");
}
