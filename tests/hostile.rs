//! Hostile input, as a table: each gets a clear error, the server keeps serving, and what was
//! stored before is still there.
#![allow(clippy::too_many_lines, reason = "a test that reads as one scenario, step by step")]

mod common;

use std::io::{Read, Write};

use common::{Server, gzip, http, post_json};
use serde_json::{Value, json};

/// (what, url, headers, body, status, error code, words of the message)
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str, &'a str);

#[test]
fn hostile_inputs_get_clear_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_INGEST_MAX_BODY_BYTES", "4194304")]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    let records = format!("{}/v1/tables/Heartbeat/records", server.url);
    let query = format!("{}/v1/workspaces/{ws}/query", server.url);
    assert_eq!(post_json(&records, r#"[{"Computer":"before"}]"#).0, 200);

    // A 1 GiB gzip bomb in about 1 MB: one member of 16 MiB of spaces, 64 times (concatenated
    // members are valid gzip).
    let member = gzip(&vec![b' '; 16 << 20]);
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 64).collect();
    let nested_json = format!(r#"[{{"Computer":"x","Extra":{}1{}}}]"#, "[".repeat(10_000), "]".repeat(10_000));
    let nested_kql = format!("print x = {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let long_query = format!("Heartbeat | where Computer == '{}'", "a".repeat(1 << 20));
    let backtracking = format!(
        "range i from 1 to 200 step 1 | extend s = '{}' | where s matches regex '(a+)+$b' | count",
        "a".repeat(5000)
    );

    let json_ct = ("Content-Type", "application/json");
    let cases: Vec<Case> = vec![
        (
            "gzip bomb",
            records.clone(),
            vec![json_ct, ("Content-Encoding", "gzip")],
            bomb,
            413,
            "DecompressedLengthLimitExceeded",
            "after decompression",
        ),
        (
            "10,000-level nesting in a record",
            records.clone(),
            vec![json_ct],
            nested_json.into_bytes(),
            400,
            "InvalidRecord",
            "at most 64 are accepted",
        ),
        (
            "invalid UTF-8 in a record",
            records.clone(),
            vec![json_ct],
            b"[{\"Computer\":\"\xc3\x28\"}]".to_vec(),
            400,
            "InvalidJson",
            "unicode",
        ),
        (
            "wrong type",
            records.clone(),
            vec![json_ct],
            br#"[{"Computer": 5}]"#.to_vec(),
            400,
            "InvalidRecord",
            "expected string",
        ),
        (
            "path traversal table",
            format!("{}/v1/tables/..%2F..%2Fetc%2Fpasswd/records", server.url),
            vec![json_ct],
            b"[{}]".to_vec(),
            404,
            "TableNotFound",
            "does not exist",
        ),
        (
            "an invalid regex (a 400, not the optimizer's 500)",
            query.clone(),
            vec![json_ct],
            json!({"query": "Heartbeat | where Computer matches regex \"(a+)+$((((\""}).to_string().into_bytes(),
            400,
            "BadArgumentError",
            "invalid regex",
        ),
        (
            "10,000-level nesting in KQL",
            query.clone(),
            vec![json_ct],
            json!({"query": nested_kql}).to_string().into_bytes(),
            400,
            "BadArgumentError",
            "nest",
        ),
        (
            "a query over 1 MiB",
            query.clone(),
            vec![json_ct],
            json!({"query": long_query}).to_string().into_bytes(),
            413,
            "RequestTooLarge",
            "over 1048576 bytes",
        ),
        (
            "invalid UTF-8 in a query",
            query.clone(),
            vec![json_ct],
            b"{\"query\": \"Heartbeat \xff\"}".to_vec(),
            400,
            "BadArgumentError",
            "properties",
        ),
        (
            "watchlist path traversal",
            query.clone(),
            vec![json_ct],
            json!({"query": "_GetWatchlist('../../etc/passwd')"}).to_string().into_bytes(),
            400,
            "BadArgumentError",
            "watchlist",
        ),
        (
            "rule name path traversal",
            format!("{}/v1/alert-rules/..%2F..%2Fetc%2Fcron.d%2Fx", server.url),
            vec![json_ct],
            br#"{"severity":1,"query":"Heartbeat","condition":{"kind":"per_row"},"actions":["a"]}"#.to_vec(),
            400,
            "InvalidRule",
            "use letters, digits",
        ),
    ];
    for (what, url, headers, body, status, code, words) in cases {
        let method = if url.contains("alert-rules") { "PUT" } else { "POST" };
        let (got, _, answer) = http(method, &url, &headers, &body).unwrap();
        let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let text = v.to_string();
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(code), "{what}: {text}");
        assert!(text.contains(words), "{what}: no '{words}' in {text}");
    }

    // A catastrophic-looking regex is linear in Rust's regex engine: it just runs.
    let (status, v) = post_json(&query, &json!({"query": backtracking}).to_string());
    assert_eq!((status, &v["tables"][0]["rows"]), (200, &json!([[0]])));

    // A 100 MB body is refused on its Content-Length, before any of it is read.
    let host = server.url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(s, "POST /v1/tables/Heartbeat/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n[").unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&head[..n]));

    // Still serving, and nothing lost.
    assert_eq!(post_json(&records, r#"[{"Computer":"after"}]"#).0, 200);
    let (_, v) = post_json(&query, r#"{"query": "Heartbeat | project Computer | sort by Computer asc"}"#);
    assert_eq!(v["tables"][0]["rows"], json!([["after"], ["before"]]));
}
