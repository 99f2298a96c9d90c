//! Scan speed and real-time latency of the agent (`cargo bench -p fimlake-agent`): a generated
//! tree of 100,000 files (1,000 directories of 100 files of 1 KiB), scanned once to build the
//! baseline (everything hashed), then again (nothing changed: no file is read), then the time
//! from a write to its record in the spool with inotify, over 50 edits.
#![allow(
    clippy::disallowed_methods,
    reason = "test settings (the venv python, bench sizes) come from the environment scripts/test sets"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fimlake_agent::agent::{self, Agent};
use fimlake_agent::config::{AgentConfig, Item};

fn config(root: &Path, data: &Path) -> AgentConfig {
    AgentConfig {
        computer: Some("bench".into()),
        server: "http://127.0.0.1:9".into(),
        data_dir: data.to_path_buf(),
        scan_interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(20),
        track_daemons: false,
        scan_threads: std::env::var("FIMLAKE_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1),
        track_software: false,
        items: vec![Item { name: "tree".into(), path: root.to_string_lossy().into(), ..Item::default() }],
        ..AgentConfig::default()
    }
}

fn spooled_changes(data: &Path) -> usize {
    std::fs::read_dir(data.join("spool"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with("-ConfigurationChange.json"))
            })
            .count()
        })
        .unwrap_or(0)
}

fn main() {
    let files: usize = std::env::var("FIMLAKE_BENCH_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let block = vec![b'x'; 1024];
    let started = Instant::now();
    for d in 0..files.div_ceil(100) {
        let sub = root.join(format!("d{d:04}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100.min(files - d * 100) {
            std::fs::write(sub.join(format!("f{f:03}.conf")), &block).unwrap();
        }
    }
    // Write the tree out now: an fsync during the scan would otherwise pay for it (ext4 ordered
    // mode flushes the data of the whole transaction), which a real host's old files never cost.
    std::process::Command::new("sync").status().unwrap();
    println!("generated {files} files in {:.1?} (and synced)", started.elapsed());

    let data = dir.path().join("agent");
    let agent = Agent::open(config(&root, &data)).unwrap();
    let t = Instant::now();
    let first = agent.full_scan(true, &mut |_| {}).unwrap();
    let d1 = t.elapsed();
    println!(
        "first scan: {} paths in {d1:.2?}: {:.0} files/s (hash + baseline write); {:?}",
        first.files,
        first.files as f64 / d1.as_secs_f64(),
        first.phases
    );
    // Rescans: FIMLAKE_BENCH_RESCANS of them (default 3), the median reported.
    let rescans: usize = std::env::var("FIMLAKE_BENCH_RESCANS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut times = Vec::new();
    for _ in 0..rescans.max(1) {
        let t = Instant::now();
        let again = agent.full_scan(true, &mut |_| {}).unwrap();
        let d2 = t.elapsed();
        assert_eq!(again.changes, 0);
        println!(
            "rescan:     {} paths in {d2:.2?}: {:.0} files/s (stat only, nothing re-hashed); {:?}",
            again.files,
            again.files as f64 / d2.as_secs_f64(),
            again.phases
        );
        times.push((d2, again.files));
    }
    times.sort();
    let (median, paths) = times[times.len() / 2];
    println!("rescan median: {:.0} files/s", paths as f64 / median.as_secs_f64());
    drop(agent);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let agent = Arc::new(Agent::open(config(&root, &data)).unwrap());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = rt.spawn(agent::run(agent, stop));
    // Wait for the start-up scan to finish (it writes a fresh baseline snapshot).
    std::thread::sleep(Duration::from_millis(500));
    let mut latencies = Vec::new();
    for i in 0..50 {
        let before = spooled_changes(&data);
        let t = Instant::now();
        std::fs::write(root.join(format!("d{:04}/f000.conf", i % (files / 100).max(1))), format!("edit {i}")).unwrap();
        while spooled_changes(&data) == before {
            assert!(t.elapsed() < Duration::from_secs(30), "edit {i} not reported");
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(30));
    }
    latencies.sort();
    println!(
        "real-time: write to spooled record, median {:.1?}, p95 {:.1?} (debounce 20 ms)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 95 / 100]
    );
    let _ = stop_tx.send(true);
    let _ = rt.block_on(running);
}
