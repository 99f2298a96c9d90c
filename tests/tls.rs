//! TLS end to end: `fimlake certs self-signed` writes a CA and a server certificate, the server
//! serves HTTPS with them and API keys, and a client that trusts the CA completes the handshake,
//! posts and queries; one that does not trust it is refused at the handshake.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn fimlake(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fimlake")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_client_trusting_the_dev_ca_talks_https_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    fimlake(&["certs", "self-signed", "--out", certs.to_str().unwrap(), "--host", "localhost", "--host", "127.0.0.1"]);
    let created = fimlake(&["keys", "create", "--role", "admin", "--name", "ops"]);
    let key = created.lines().next().unwrap().strip_prefix("key: ").unwrap().to_string();
    let ingest = fimlake(&["keys", "create", "--role", "ingest", "--name", "loader"]);
    let ingest_key = ingest.lines().next().unwrap().strip_prefix("key: ").unwrap().to_string();
    let config = dir.path().join("fimlake.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = \"{0}/server.pem\"\nkey_file = \"{0}/server-key.pem\"\n\n{1}\n{2}",
            certs.display(),
            &created[created.find("[[auth.keys]]").unwrap()..],
            &ingest[ingest.find("[[auth.keys]]").unwrap()..],
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fimlake"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap(), "--config"])
        .arg(&config)
        .env("FIMLAKE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.strip_prefix("fimlake listening on ").unwrap().to_string();
    std::thread::spawn(move || for _ in lines {});
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let trusting = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(true).build().unwrap();
    rt.block_on(async {
        // Ready? (bounded)
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = trusting.get(format!("{url}/readyz")).send().await
                && r.status() == 200
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "the https server did not become ready");
        let e = untrusting.get(format!("{url}/readyz")).send().await.unwrap_err();
        assert!(e.is_connect(), "a client that does not trust the CA fails the handshake: {e:?}");

        let r = trusting
            .post(format!("{url}/v1/tables/Heartbeat/records"))
            .bearer_auth(&ingest_key)
            .json(&json!([{"Computer": "web1"}]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ws = std::fs::read_to_string(data.join("workspace-id")).unwrap().trim().to_string();
        let r = trusting
            .post(format!("{url}/v1/workspaces/{ws}/query"))
            .bearer_auth(&key)
            .json(&json!({"query": "Heartbeat | count"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["tables"][0]["rows"], json!([[1]]));
    });

    // The CLI trusts the CA through --ca-file.
    let ws = std::fs::read_to_string(data.join("workspace-id")).unwrap().trim().to_string();
    let out = fimlake(&[
        "query",
        "--server",
        &url,
        "--workspace",
        &ws,
        "--api-key",
        &key,
        "--ca-file",
        certs.join("ca.pem").to_str().unwrap(),
        "--format",
        "json",
        "Heartbeat | count",
    ]);
    assert!(out.contains("1"), "{out}");
    let _ = child.kill();
    let _ = child.wait();
}
