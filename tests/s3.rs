//! The S3 path: the real server keeps its Delta tables in a bucket of a real S3-protocol server
//! (s3s-fs, started here on 127.0.0.1), and the sample records make the same round trip.

mod common;

use std::process::Command;

use common::{Server, read_table_with, wal_is_empty};

#[path = "common/s3.rs"]
mod s3_server;

#[test]
fn tables_on_s3_round_trip_and_survive_a_crash() {
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = s3_server::S3Server::start_with_bucket(s3_root.path());
    let env = s3.server_env("s3://fimlake-bucket/prod");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
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

    let cfg = s3.storage_config("s3://fimlake-bucket/prod", data.path());
    for (table, rows) in [("ConfigurationChange", 5), ("ConfigurationData", 4), ("Heartbeat", 3)] {
        assert!(wal_is_empty(data.path(), table), "{table}: all flushed to S3 at shutdown");
        assert_eq!(read_table_with(cfg.clone(), table, &["Computer"]).len(), rows, "{table}");
    }
}
