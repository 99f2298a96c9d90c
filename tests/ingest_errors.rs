//! Every bad input to the ingestion API gets its documented status, error code and message;
//! the server keeps serving, and nothing of a rejected request is stored.
#![allow(clippy::too_many_lines, reason = "a table of bad inputs, one case a few lines each")]

mod common;

use common::{Server, gzip, http, post_json, read_table};

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    message: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path,
        headers: vec![("Content-Type", "application/json")],
        body: body.into(),
        status,
        code,
        message,
    }
}

const RECORDS: &str = "/v1/tables/ConfigurationChange/records";

#[test]
fn bad_inputs_get_clear_errors_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("FIMLAKE_INGEST_MAX_BODY_BYTES", "65536"),
            ("FIMLAKE_INGEST_MAX_DECOMPRESSED_BYTES", "1048576"),
            ("FIMLAKE_INGEST_MAX_RECORDS", "100"),
        ],
    );
    let too_many = format!("[{}{{}}]", "{},".repeat(100));
    let big_body = format!("[{{\"Computer\":\"{}\"}}]", "x".repeat(70_000));
    let bomb = gzip(&vec![b' '; 20 << 20]);
    let cases = vec![
        case(
            "unknown table",
            "/v1/tables/Nope/records",
            "[{}]",
            404,
            "TableNotFound",
            "table 'Nope' does not exist; tables are: ConfigurationChange, ConfigurationData, Heartbeat",
        ),
        case(
            "path traversal table name",
            "/v1/tables/..%2F..%2Fetc/records",
            "[{}]",
            404,
            "TableNotFound",
            "table '../../etc' does not exist",
        ),
        case(
            "invalid JSON",
            RECORDS,
            "[{\"Computer\": }]",
            400,
            "InvalidJson",
            "invalid JSON at index 0: expected value (line 1, column 15)",
        ),
        case(
            "wrong type",
            RECORDS,
            r#"[{"Computer":"a"},{"Size":"big"}]"#,
            400,
            "InvalidRecord",
            "invalid record at index 1, field 'Size': expected long (a JSON integer), got string \"big\" (line 1, column 31)",
        ),
        case(
            "bad timestamp",
            RECORDS,
            r#"[{"TimeGenerated":"2024-13-45T99:00:00Z"}]"#,
            400,
            "InvalidRecord",
            "invalid record at index 0, field 'TimeGenerated': expected datetime",
        ),
        case("empty array", RECORDS, "[]", 400, "InvalidRecord", "the body holds no record"),
        case(
            "invalid UTF-8",
            RECORDS,
            b"[{\"Computer\":\"\xff\"}]".to_vec(),
            400,
            "InvalidJson",
            "invalid JSON at index 0: invalid unicode code point (line 1, column 15)",
        ),
        case("too many records", RECORDS, too_many, 413, "TooManyRecords", "the body holds more than 100 records"),
        case(
            "body over the wire limit",
            RECORDS,
            big_body,
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 65536 bytes.",
        ),
        Case {
            headers: vec![("Content-Encoding", "gzip")],
            ..case(
                "gzip bomb",
                RECORDS,
                bomb,
                413,
                "DecompressedLengthLimitExceeded",
                "the body inflates to more than the 1048576 bytes allowed after decompression",
            )
        },
        Case {
            headers: vec![("Content-Encoding", "gzip")],
            ..case("not gzip", RECORDS, "[{}]", 400, "InvalidContentEncoding", "the body is not valid gzip")
        },
        Case {
            headers: vec![("Content-Encoding", "br")],
            ..case(
                "unsupported encoding",
                RECORDS,
                "[{}]",
                415,
                "UnsupportedContentEncoding",
                "Content-Encoding 'br' is not supported",
            )
        },
        case(
            "Azure: no api-version",
            "/dataCollectionRules/dcr-1/streams/Custom-Heartbeat",
            "[{}]",
            400,
            "MissingApiVersion",
            "the api-version query parameter is required",
        ),
        case(
            "Azure: unknown api-version",
            "/dataCollectionRules/dcr-1/streams/Custom-Heartbeat?api-version=1999-01-01",
            "[{}]",
            400,
            "InvalidApiVersion",
            "api-version '1999-01-01' is not supported",
        ),
        case(
            "Azure: unknown stream",
            "/dataCollectionRules/dcr-1/streams/Custom-Nope_CL?api-version=2023-01-01",
            "[{}]",
            404,
            "InvalidStream",
            "stream 'Custom-Nope_CL' not found: table 'Nope_CL' does not exist",
        ),
        case(
            "Azure: malformed stream",
            "/dataCollectionRules/dcr-1/streams/Heartbeat?api-version=2023-01-01",
            "[{}]",
            404,
            "InvalidStream",
            "stream 'Heartbeat' not found",
        ),
        case(
            "Azure: wrong type",
            "/dataCollectionRules/dcr-1/streams/Microsoft-Heartbeat?api-version=2023-01-01",
            r#"[{"IsGatewayInstalled":"yes"}]"#,
            400,
            "InvalidRecord",
            "invalid record at index 0, field 'IsGatewayInstalled': expected bool (true or false), got string \"yes\"",
        ),
    ];
    let mut good = 0;
    for c in &cases {
        let url = format!("{}{}", server.url, c.path);
        let (status, headers, body) = http(c.method, &url, &c.headers, &c.body).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{}: not JSON: {body:?}", c.name));
        assert_eq!(status, c.status, "{}: {v}", c.name);
        assert_eq!(v["error"]["code"], c.code, "{}: {v}", c.name);
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(c.message), "{}: message was {msg:?}", c.name);
        let header = headers.iter().find(|(k, _)| k == "x-ms-error-code").map(|(_, v)| v.as_str());
        assert_eq!(header, Some(c.code), "{}", c.name);

        // The server keeps serving.
        let (status, v) = post_json(&format!("{}{RECORDS}", server.url), &format!(r#"[{{"Computer":"good-{good}"}}]"#));
        assert_eq!((status, v["accepted"].as_u64()), (200, Some(1)), "{}: after the bad input", c.name);
        good += 1;
    }
    server.stop();
    let rows = read_table(dir.path(), "ConfigurationChange", &["Computer"]);
    let mut got: Vec<String> = rows.iter().map(|r| r["Computer"].as_str().unwrap().to_string()).collect();
    got.sort();
    let mut want: Vec<String> = (0..good).map(|i| format!("good-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "only the accepted records are stored");
}

#[test]
fn azure_endpoint_answers_204_and_names_additional_fields_in_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = format!("{}/dataCollectionRules/dcr-1/streams/Custom-Heartbeat?api-version=2023-01-01", server.url);
    let body = gzip(br#"[{"Computer":"vm1","Extra":1}]"#);
    let (status, headers, body) =
        http("POST", &url, &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")], &body).unwrap();
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert!(headers.contains(&("x-fimlake-additional-fields".to_string(), "Extra".to_string())));
    let (status, v) =
        post_json(&format!("{}/v1/tables/Heartbeat/records", server.url), r#"{"Computer":"vm2","b":1,"a":2}"#);
    assert_eq!(status, 200);
    assert_eq!(v, serde_json::json!({"accepted": 1, "additionalFields": ["a", "b"]}));
}

#[test]
fn tables_metrics_and_health_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, _, body) = common::http_get(&format!("{}/v1/tables", server.url)).unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = v["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "ConfigurationChange",
            "ConfigurationData",
            "Heartbeat",
            "AlertEvaluation",
            "AlertEvent",
            "AuditLog",
            "AlertDelivery"
        ]
    );
    let writable: Vec<bool> = v["tables"].as_array().unwrap().iter().map(|t| t["writable"] == true).collect();
    assert_eq!(
        writable,
        [true, true, true, false, false, false, false],
        "the audit trail is written by the server only"
    );
    assert_eq!(v["tables"][0]["columns"].as_array().unwrap().len(), 62);
    let (status, _, body) = common::http_get(&format!("{}/v1/tables/Heartbeat", server.url)).unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let col = v["columns"].as_array().unwrap().iter().find(|c| c["name"] == "ComputerPrivateIPs").unwrap();
    assert_eq!(col["type"], "dynamic");

    post_json(&format!("{}/v1/tables/Heartbeat/records", server.url), r#"[{"Computer":"a"},{"Computer":"b"}]"#);
    let (_, _, body) = common::http_get(&format!("{}/metrics", server.url)).unwrap();
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "fimlake_ingest_records_total{outcome=\"accepted\",table=\"Heartbeat\"} 2",
        "fimlake_ingest_requests_total{outcome=\"accepted\",table=\"Heartbeat\"} 1",
        "fimlake_buffered_rows{table=\"Heartbeat\"} 2",
        "fimlake_wal_sync_seconds_count{table=\"Heartbeat\"} 1",
        "fimlake_http_request_seconds_count{method=\"POST\",route=\"/v1/tables/{table}/records\",status=\"200\"} 1",
        "fimlake_table_files{table=\"Heartbeat\"} 0",
        // The default memory_limit's quarter: 768 MiB / 4.
        "fimlake_buffer_limit_bytes 201326592",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert_eq!(common::http_get(&format!("{}/healthz", server.url)).unwrap().0, 200);
    assert_eq!(common::http_get(&format!("{}/readyz", server.url)).unwrap().0, 200);
}

#[test]
fn a_slow_client_is_cut_off_and_the_server_keeps_serving() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_HEADER_READ_TIMEOUT", "1s")]);
    let host = server.url.strip_prefix("http://").unwrap();
    // Headers started, never finished (slowloris).
    let mut slow = std::net::TcpStream::connect(host).unwrap();
    slow.write_all(b"POST /v1/tables/Heartbeat/records HTTP/1.1\r\nHost: x\r\nContent-Type: appl").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(10), "the connection was closed by the server, after {waited:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    let (status, _, _) = common::http_get(&format!("{}/readyz", server.url)).unwrap();
    assert_eq!(status, 200, "others are served");
}

/// Posts `body` to `host`'s Heartbeat records in chunks of `chunk` bytes, with no
/// `Content-Length`, and reads the whole answer (a write the server cut short is not an error:
/// the answer says why).
fn post_chunked(host: &str, body: &str, chunk: usize) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let head = "POST /v1/tables/Heartbeat/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    for piece in body.as_bytes().chunks(chunk) {
        let _ = s.write_all(format!("{:x}\r\n", piece.len()).as_bytes());
        let _ = s.write_all(piece);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_chunked_body_without_a_length_is_refused_once_it_passes_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_INGEST_MAX_BODY_BYTES", "1000")]);
    let host = server.url.strip_prefix("http://").unwrap();
    let record = r#"{"Computer":"chunked"}"#;
    let body = format!("[{}]", vec![record; 60].join(","));
    assert!(body.len() > 1000);
    let answer = post_chunked(host, &body, 300);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("ContentLengthLimitExceeded") && answer.contains("1000 bytes"), "{answer}");
    // A body under the limit, chunked too, is taken.
    let answer = post_chunked(host, &format!("[{record}]"), 300);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_body_that_trickles_in_times_out_whole_not_per_chunk() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_BODY_READ_TIMEOUT", "2s")]);
    let host = server.url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    s.write_all(b"POST /v1/tables/Heartbeat/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        .unwrap();
    // A byte every 500 ms: never idle for long, never done.
    let mut answer = String::new();
    for _ in 0..20 {
        if s.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = s.read(&mut buf) {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        s.set_nonblocking(false).unwrap();
        if !answer.is_empty() {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
}

#[test]
fn connections_past_the_limit_are_closed_and_others_served() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_MAX_CONNECTIONS", "2"), ("FIMLAKE_HEADER_READ_TIMEOUT", "60s")]);
    let host = server.url.strip_prefix("http://").unwrap();
    // Three connections, none sending anything: whichever the server accepts third is closed at
    // once (the order of accepts is the server's), the other two stay open.
    let mut conns: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(host).unwrap()).collect();
    for c in &conns {
        c.set_nonblocking(true).unwrap();
    }
    let mut closed = vec![false; 3];
    // Bounded: at most 10 s.
    for _ in 0..200 {
        for (i, c) in conns.iter_mut().enumerate() {
            let mut buf = [0u8; 16];
            if let Ok(0) = c.read(&mut buf) {
                closed[i] = true;
            }
        }
        if closed.iter().any(|c| *c) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (i, c) in conns.iter_mut().enumerate() {
        let mut buf = [0u8; 16];
        if let Ok(0) = c.read(&mut buf) {
            closed[i] = true;
        }
    }
    assert_eq!(closed.iter().filter(|c| **c).count(), 1, "exactly one connection over the limit closed: {closed:?}");
    let idle = conns;
    drop(idle);
    // Bounded wait for the server to see the two close.
    let mut ok = false;
    for _ in 0..100 {
        if common::http_get(&format!("{}/readyz", server.url)).is_ok_and(|r| r.0 == 200) {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ok, "served again once connections closed");
}
