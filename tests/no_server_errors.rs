//! A user's query never gets a 5xx: every query of the public corpus (154 queries pasted from
//! Sentinel, Azure docs and community repositories, `kql/tests/data/public-queries.jsonl`) sent
//! as it is to the real server, over records of the FIM tables, answers 200 or a 4xx naming the
//! problem. A 5xx is the server's own fault.

mod common;

use common::{Server, post_json};

#[test]
fn corpus_queries_never_get_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    for (table, record) in [
        ("Heartbeat", r#"[{"Computer":"web1","OSType":"Linux","ComputerIP":"10.0.0.1"}]"#),
        (
            "ConfigurationChange",
            r#"[{"Computer":"web1","ConfigChangeType":"Files","ChangeCategory":"Modified","FileSystemPath":"/etc/passwd"}]"#,
        ),
        ("ConfigurationData", r#"[{"Computer":"web1","ConfigDataType":"Files","FileSystemPath":"/etc/passwd"}]"#),
    ] {
        let (status, body) = post_json(&format!("{}/v1/tables/{table}/records", server.url), record);
        assert_eq!(status, 200, "{table}: {body}");
    }
    let corpus =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kql/tests/data/public-queries.jsonl")).unwrap();
    let url = format!("{}/v1/workspaces/{ws}/query", server.url);
    let mut answered = [0usize; 2];
    let mut server_errors = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let body = serde_json::json!({ "query": entry["query"], "timespan": "P1D" }).to_string();
        let (status, answer) = post_json(&url, &body);
        match status {
            200 => answered[0] += 1,
            400..=499 => answered[1] += 1,
            _ => server_errors.push(format!("{} -> {status}: {answer}", entry["id"])),
        }
    }
    assert!(server_errors.is_empty(), "{} queries got a 5xx:\n{}", server_errors.len(), server_errors.join("\n"));
    assert_eq!(answered[0] + answered[1], 154, "{answered:?}");
    eprintln!("corpus through the API: {} answered 200, {} refused with a 4xx", answered[0], answered[1]);
}
