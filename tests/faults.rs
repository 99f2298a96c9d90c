//! Storage faults as an operator meets them, on a single node: the data directory's file system
//! fills up, and the S3 server holding the tables goes away for 30 s. Either way nothing
//! acknowledged is lost, refusals (of writes, and of queries that must read the bucket) say why,
//! and everything resumes by itself once the fault is gone.

mod common;

#[path = "common/s3.rs"]
mod s3_server;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::records::{assert_exactly_once, body_text, computers, metric, post_batch};
use common::{Server, header, http, http_get, read_table, read_table_with, wal_is_empty};

/// A small tmpfs mounted for the test (root only), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a {size} tmpfs failed: this test needs root (as scripts/test runs in CI)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with one file, leaving about `free` bytes.
    fn fill(&self, free: u64) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; 64 << 10];
        // Bounded: the tmpfs is a few MiB; the loop ends at ENOSPC.
        for _ in 0..100_000 {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                break;
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(free)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_with_507_and_writes_resume_when_space_is_freed() {
    let disk = Tmpfs::mount("16m");
    // Rows stay in the WAL (no flush), so the WAL meets the full disk and a restart replays it.
    let mut server = Server::start(disk.path(), &[("FIMLAKE_STORAGE_FLUSH_AGE", "1h")]);
    let mut acked = HashSet::new();
    let mut next = 0;
    for _ in 0..3 {
        let (reply, names) = post_batch(&server.url, &mut next);
        assert_eq!(reply.0, 200, "{}", body_text(&reply));
        acked.extend(names);
    }

    // A little space left: some batches fit, one is cut short by the full disk.
    let filler = disk.fill(96 << 10);
    let mut refusal = None;
    for _ in 0..200 {
        let (reply, names) = post_batch(&server.url, &mut next);
        match reply.0 {
            200 => acked.extend(names),
            _ => {
                refusal = Some(reply);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk filled up within 200 batches");
    assert_eq!(refusal.0, 507, "{}", body_text(&refusal));
    let answer: serde_json::Value = serde_json::from_slice(&refusal.2).unwrap();
    assert_eq!(answer["error"]["code"], "InsufficientStorage", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("No space left on device") && message.contains("Heartbeat"), "{message}");
    assert_eq!(header(&refusal.1, "retry-after"), Some("5"));
    assert!(metric(&server.url, r#"fimlake_wal_disk_full_total{table="Heartbeat"}"#) >= 1.0);

    // Still full: still refused, and the server stays ready (nothing is broken, only full).
    let (reply, _) = post_batch(&server.url, &mut next);
    assert_eq!(reply.0, 507, "{}", body_text(&reply));
    assert_eq!(http_get(&format!("{}/readyz", server.url)).unwrap().0, 200);

    // Space freed: the next write goes through, without a restart.
    std::fs::remove_file(filler).unwrap();
    let (reply, names) = post_batch(&server.url, &mut next);
    assert_eq!(reply.0, 200, "{}", body_text(&reply));
    acked.extend(names);

    // The WAL replays every acknowledged batch, those after the cut-short one included.
    server.kill();
    server.restart();
    server.stop();
    assert_exactly_once(computers(&read_table(disk.path(), "Heartbeat", &["Computer"])), &acked);
}

#[test]
fn an_s3_outage_of_30_s_loses_nothing_and_commits_everything_once_s3_returns() {
    let bucket_root = tempfile::tempdir().unwrap();
    let mut s3 = s3_server::S3Server::start_with_bucket(bucket_root.path());
    let mut env = s3.server_env("s3://fimlake-bucket/outage");
    env.push(("FIMLAKE_STORAGE_FLUSH_AGE".into(), "200ms".into()));
    // The failing flushes are expected: keep the test's output to fimlake's own warnings.
    env.push(("FIMLAKE_LOG".into(), "warn,buoyant_kernel=off,fimlake_storage=off".into()));
    env.push(("FIMLAKE_STORAGE_MAX_BUFFER_BYTES".into(), (1u32 << 20).to_string()));
    env.push(("FIMLAKE_STORAGE_FLUSH_BYTES".into(), (256u32 << 10).to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &env);
    let mut acked = HashSet::new();
    let mut next = 0;

    // Some rows committed to the bucket before it goes away.
    let (reply, names) = post_batch(&server.url, &mut next);
    assert_eq!(reply.0, 200, "{}", body_text(&reply));
    acked.extend(names);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server.url, r#"fimlake_buffered_rows{table="Heartbeat"}"#) > 0.0 {
        assert!(Instant::now() < deadline, "the first batch was not flushed within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    s3.pause();

    // A query that must read the bucket says so, with a 503 worth retrying (not a 500).
    let ws = std::fs::read_to_string(data.path().join("workspace-id")).unwrap().trim().to_string();
    let query_url = format!("{}/v1/workspaces/{ws}/query", server.url);
    let count = br#"{"query":"Heartbeat | count"}"#;
    let reply = http("POST", &query_url, &[("Content-Type", "application/json")], count).unwrap();
    assert_eq!(reply.0, 503, "{}", body_text(&reply));
    assert_eq!(header(&reply.1, "retry-after"), Some("5"));
    assert!(body_text(&reply).contains("the table storage could not be read"), "{}", body_text(&reply));
    let outage = Instant::now();
    // Records keep being acknowledged into the WAL until the buffers are full, then 503.
    let mut acked_in_outage = 0;
    let mut busy = None;
    while outage.elapsed() < Duration::from_secs(30) {
        let (reply, names) = post_batch(&server.url, &mut next);
        match reply.0 {
            200 => {
                acked_in_outage += names.len();
                acked.extend(names);
            }
            503 => {
                busy = Some(reply);
                std::thread::sleep(Duration::from_millis(500));
            }
            status => panic!("unexpected {status} during the outage: {}", body_text(&reply)),
        }
    }
    assert!(acked_in_outage > 0, "nothing was acknowledged while S3 was away");
    let busy = busy.expect("the buffers filled up during the outage: 503");
    assert_eq!(header(&busy.1, "retry-after"), Some("1"));
    let message = body_text(&busy);
    assert!(message.contains("write buffers are full") && message.contains("last flush failed"), "{message}");
    s3.resume();

    // Without a restart, everything buffered is committed to the bucket.
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(&server.url, r#"fimlake_buffered_rows{table="Heartbeat"}"#) > 0.0 {
        assert!(Instant::now() < deadline, "the buffered rows were not committed within 120 s of S3's return");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reply = http("POST", &query_url, &[("Content-Type", "application/json")], count).unwrap();
    assert_eq!(reply.0, 200, "{}", body_text(&reply));
    let answer: serde_json::Value = serde_json::from_slice(&reply.2).unwrap();
    assert_eq!(answer["tables"][0]["rows"][0][0], acked.len(), "{answer}");
    let (reply, names) = post_batch(&server.url, &mut next);
    assert_eq!(reply.0, 200, "{}", body_text(&reply));
    acked.extend(names);
    server.stop();

    assert!(wal_is_empty(data.path(), "Heartbeat"), "every acknowledged row is in the bucket");
    let cfg = s3.storage_config("s3://fimlake-bucket/outage", data.path());
    assert_exactly_once(computers(&read_table_with(cfg, "Heartbeat", &["Computer"])), &acked);
}

#[test]
fn a_full_wal_disk_drains_by_itself_when_the_tables_live_elsewhere() {
    // The WAL on a small disk, the tables on another (as with tables on S3): a flush seals the
    // log on the full disk, commits elsewhere and trims the log, which frees the space.
    let disk = Tmpfs::mount("8m");
    let tables = tempfile::tempdir().unwrap();
    let table_url = tables.path().to_str().unwrap();
    let mut server =
        Server::start(disk.path(), &[("FIMLAKE_STORAGE_TABLE_URL", table_url), ("FIMLAKE_STORAGE_FLUSH_AGE", "1s")]);
    let mut acked = HashSet::new();
    let mut next = 0;
    disk.fill(64 << 10);
    let (mut refused, mut resumed) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !resumed {
        assert!(Instant::now() < deadline, "writes did not resume within 60 s (refused: {refused})");
        let (reply, names) = post_batch(&server.url, &mut next);
        match reply.0 {
            200 => {
                acked.extend(names);
                resumed = refused;
            }
            507 => {
                refused = true;
                std::thread::sleep(Duration::from_millis(200));
            }
            status => panic!("unexpected {status}: {}", body_text(&reply)),
        }
    }
    server.stop();
    let cfg = fimlake_storage::StorageConfig {
        data_dir: disk.path().to_path_buf(),
        table_url: Some(table_url.to_string()),
        ..Default::default()
    };
    assert_exactly_once(computers(&read_table_with(cfg, "Heartbeat", &["Computer"])), &acked);
}
