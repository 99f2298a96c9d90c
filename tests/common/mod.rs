//! A real `fimlake serve` child process on an ephemeral loopback port, and a small HTTP client.
#![allow(dead_code)]

pub mod records;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    listen: String,
    /// What a start waits for: `/readyz` (serving), or `/healthz` (up, maybe a cluster's standby).
    wait_for: &'static str,
}

impl Server {
    /// Starts the server on `data_dir` with extra `FIMLAKE_*` settings and waits until it
    /// answers `/readyz`.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_at(data_dir, env, "127.0.0.1:0")
    }

    /// Like `start`, on a fixed address that a restart keeps (for clients configured with it).
    pub fn start_at(data_dir: &Path, env: &[(&str, &str)], listen: &str) -> Server {
        Self::launch(data_dir, env, listen, "/readyz")
    }

    /// Like `start_at`, waiting only until it answers `/healthz`: a cluster node that may be a
    /// standby (not ready until it leads).
    pub fn start_node(data_dir: &Path, env: &[(&str, &str)], listen: &str) -> Server {
        Self::launch(data_dir, env, listen, "/healthz")
    }

    fn launch(data_dir: &Path, env: &[(&str, &str)], listen: &str, wait_for: &'static str) -> Server {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (child, url) = spawn(data_dir, &env, listen);
        let data_dir = data_dir.to_path_buf();
        let s = Server { child: Some(child), url, data_dir, env, listen: listen.to_string(), wait_for };
        s.wait_ready();
        s
    }

    /// The process's exit status once it has exited by itself (`None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = http_get(&format!("{}{}", self.url, self.wait_for))
                && r.0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server at {} did not become ready", self.url);
    }

    /// SIGKILL: no flush, no cleanup.
    /// A JSON request to this server (`key` as a bearer token): the status and the body (null when not JSON).
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let (status, _, body) = http(method, &format!("{}{path}", self.url), &headers, body.as_bytes()).unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the graceful shutdown (which flushes every buffer).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(status.success(), "server exited with {status}");
                    return;
                }
                assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the server again on the same data directory (on a new port, unless started at a
    /// fixed address).
    pub fn restart(&mut self) {
        self.kill();
        let (child, url) = spawn(&self.data_dir, &self.env, &self.listen);
        self.child = Some(child);
        self.url = url;
        self.wait_ready();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address with a port free right now.
pub fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn spawn(data_dir: &Path, env: &[(String, String)], listen: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fimlake"));
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env("FIMLAKE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawning fimlake serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("server printed nothing").expect("reading server output");
    let url = first
        .strip_prefix("fimlake listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// Status, headers (names lower-case) and body of an answer.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// The value of header `name` (lower-case) in an answer's headers.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A blocking HTTP request over a fresh connection.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Reply> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok((status, headers, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}

pub fn http_get(url: &str) -> std::io::Result<Reply> {
    http("GET", url, &[], &[])
}

pub fn post_json(url: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http("POST", url, &[("Content-Type", "application/json")], body.as_bytes()).expect("POST");
    let v = if body.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&body).expect("JSON answer") };
    (status, v)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every row of a table as JSON objects, read from the data directory with fimlake's own
/// storage engine (committed files and WAL), after the server has stopped.
pub fn read_table(data_dir: &Path, table: &str, columns: &[&str]) -> Vec<serde_json::Value> {
    let cfg = fimlake_storage::StorageConfig { data_dir: data_dir.to_path_buf(), ..Default::default() };
    read_table_with(cfg, table, columns)
}

/// [`read_table`] with a full storage configuration (tables on S3, say).
pub fn read_table_with(cfg: fimlake_storage::StorageConfig, table: &str, columns: &[&str]) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let storage = fimlake_storage::Storage::open(
            cfg,
            fimlake_storage::TableRegistry::builtin(),
            &prometheus::Registry::new(),
        )
        .await
        .unwrap();
        let ctx = datafusion::prelude::SessionContext::new();
        for (name, p) in storage.providers() {
            ctx.register_table(name.as_str(), p).unwrap();
        }
        let cols: Vec<_> = columns.iter().map(|c| datafusion::prelude::ident(*c)).collect();
        let batches = ctx.table(table).await.unwrap().select(cols).unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        let mut w = arrow::json::ArrayWriter::new(&mut out);
        for b in &batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        storage.shutdown().await.unwrap();
        if out.is_empty() { Vec::new() } else { serde_json::from_slice(&out).unwrap() }
    })
}

/// Whether a table's write-ahead log holds no record (every segment is a bare header).
pub fn wal_is_empty(data_dir: &Path, table: &str) -> bool {
    std::fs::read_dir(data_dir.join("wal").join(table))
        .unwrap()
        .all(|e| std::fs::metadata(e.unwrap().path()).unwrap().len() <= 8)
}

/// Runs `fimlake keys create ARGS`: (the key, its configuration snippet).
/// Runs the `fimlake` CLI, untouched by the developer's client profile.
pub fn fimlake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fimlake"))
        .args(args)
        .env("FIMLAKE_LOG", "warn")
        .env("FIMLAKE_CLIENT_CONFIG", "/nonexistent/fimlake-client.toml")
        .output()
        .unwrap()
}

pub fn create_key(args: &[&str]) -> (String, String) {
    let out = fimlake(&[&["keys", "create"], args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().strip_prefix("key: ").unwrap().to_string();
    let snippet = text[text.find("[[auth.keys]]").unwrap()..].to_string();
    assert!(!snippet.contains(&key[4..]), "the configuration holds the hash, not the key");
    (key, snippet)
}

/// The public KQL corpus (`kql/tests/data/public-queries.jsonl`): each query's id and text.
pub fn public_corpus() -> Vec<(String, String)> {
    let corpus =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kql/tests/data/public-queries.jsonl")).unwrap();
    corpus
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let query: serde_json::Value = serde_json::from_str(line).unwrap();
            (query["id"].as_str().unwrap().to_string(), query["query"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Posts one record to each FIM table (Heartbeat, ConfigurationChange, ConfigurationData), so
/// queries over them have rows to read.
pub fn post_fim_samples(server_url: &str) {
    for (table, record) in [
        ("Heartbeat", r#"[{"Computer":"web1","OSType":"Linux","ComputerIP":"10.0.0.1","Category":"Direct Agent"}]"#),
        (
            "ConfigurationChange",
            r#"[{"Computer":"web1","ConfigChangeType":"Files","ChangeCategory":"Modified","FileSystemPath":"/etc/passwd"}]"#,
        ),
        ("ConfigurationData", r#"[{"Computer":"web1","ConfigDataType":"Files","FileSystemPath":"/etc/passwd"}]"#),
    ] {
        let (status, body) = post_json(&format!("{server_url}/v1/tables/{table}/records"), record);
        assert_eq!(status, 200, "{table}: {body}");
    }
}

/// The `fimlake-agent` binary, beside `fimlake` (built for the agent's own tests; built here
/// when this test runs alone).
pub fn agent_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_fimlake")).with_file_name("fimlake-agent");
    if !path.exists() {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let status =
            Command::new(cargo).args(["build", "-q", "-p", "fimlake-agent", "--bin", "fimlake-agent"]).status();
        assert!(status.is_ok_and(|s| s.success()) && path.exists(), "building fimlake-agent");
    }
    path
}
