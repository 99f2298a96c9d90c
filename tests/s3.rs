//! The S3 path: the real server keeps its Delta tables in a bucket of a real S3-protocol server
//! (s3s-fs, started here on 127.0.0.1), and the sample records make the same round trip.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{Server, read_table_with, wal_is_empty};

/// Starts s3s-fs serving `root` (each subdirectory is a bucket) on an ephemeral port.
fn start_s3(root: &std::path::Path) -> (SocketAddr, std::thread::JoinHandle<()>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let root = root.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let fs = s3s_fs::FileSystem::new(&root).unwrap();
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single("test-access-key", "test-secret-key"));
            let service = b.build();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let http = ConnBuilder::new(TokioExecutor::new());
            // Serves until the test process exits.
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
    });
    (rx.recv().unwrap(), handle)
}

#[test]
fn tables_on_s3_round_trip_and_survive_a_crash() {
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir(s3_root.path().join("fimlake-bucket")).unwrap();
    let (addr, _s3) = start_s3(s3_root.path());
    let endpoint = format!("http://{addr}");
    let env = [
        ("FIMLAKE_STORAGE_TABLE_URL", "s3://fimlake-bucket/prod"),
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test-access-key"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key"),
        ("AWS_REGION", "us-east-1"),
    ];
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &env);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    let out = Command::new("sh").arg(script).arg(&server.url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Crash with the records only in the WAL, restart, then stop cleanly (flush to S3).
    server.kill();
    server.restart();
    server.stop();

    let table_dir = s3_root.path().join("fimlake-bucket/prod/ConfigurationChange");
    assert!(table_dir.join("_delta_log/00000000000000000000.json").exists(), "Delta log in the bucket");
    assert!(!data.path().join("tables").exists(), "nothing written to the local table directory");

    let mut cfg = fimlake_storage::StorageConfig {
        data_dir: data.path().to_path_buf(),
        table_url: Some("s3://fimlake-bucket/prod".into()),
        ..Default::default()
    };
    for (k, v) in [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test-access-key"),
        ("aws_secret_access_key", "test-secret-key"),
        ("aws_region", "us-east-1"),
    ] {
        cfg.object_store_options.insert(k.into(), v.into());
    }
    for (table, rows) in [("ConfigurationChange", 5), ("ConfigurationData", 4), ("Heartbeat", 3)] {
        assert!(wal_is_empty(data.path(), table), "{table}: all flushed to S3 at shutdown");
        assert_eq!(read_table_with(cfg.clone(), table, &["Computer"]).len(), rows, "{table}");
    }
}
