//! The agent's memory under a burst (`cargo bench -p fimlake-agent --bench burst`): the real
//! `fimlake-agent run` process watches an empty folder; once it idles, N files of 1 KiB are
//! created at once under it (directories of 100 files), and the bench waits until N `Added`
//! records are in the agent's spool. Reported: idle RSS, peak RSS (the process's VmHWM), and the
//! time from the burst to its last spooled record, and the RSS then. The server is unreachable, so every record
//! stays in the spool (as during an outage) and is counted there.
#![allow(
    clippy::disallowed_methods,
    reason = "bench sizes and the binary come from the environment (FIMLAKE_BENCH_BURST_FILES, FIMLAKE_BENCH_AGENT)"
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn config(root: &Path, data: &Path) -> String {
    format!(
        r#"computer = "burst"
server = "http://127.0.0.1:9"
data_dir = "{}"
scan_interval = "1h"
debounce = "200ms"
heartbeat_interval = "1h"
track_daemons = false
track_software = false
config_poll = "0s"
package_logs = []
[[items]]
name = "burst"
path = "{}"
"#,
        data.display(),
        root.display()
    )
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent runs");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field is in the status");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

/// Counts the `Added` records of files (not directories) in spool files not counted yet (a spool file never changes once
/// it is in place).
fn count_new_records(spool: &Path, counted: &mut HashSet<PathBuf>) -> usize {
    let mut added = 0;
    let Ok(entries) = std::fs::read_dir(spool) else { return 0 };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("-ConfigurationChange.json") || counted.contains(&path) {
            continue;
        }
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).expect("a spool file")).expect("spooled records");
        let file = |r: &&serde_json::Value| r["FileSystemPath"].as_str().is_some_and(|p| p.ends_with(".conf"));
        added += records.iter().filter(|r| r["ChangeCategory"] == "Added").filter(file).count();
        counted.insert(path);
    }
    added
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn burst(files: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("watched");
    let data = dir.path().join("agent");
    std::fs::create_dir_all(&root).unwrap();
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config(&root, &data)).unwrap();
    // Another build of the agent (`FIMLAKE_BENCH_AGENT`), to compare two in turn.
    let binary = std::env::var("FIMLAKE_BENCH_AGENT").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fimlake-agent").into());
    let child = Command::new(binary)
        .args(["--config", config_path.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start fimlake-agent");
    let agent = Running(child);
    let pid = agent.0.id();
    let started = Instant::now();
    while !data.join("baseline/baseline.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no first baseline");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle_kib = status_kib(pid, "VmRSS");

    let block = vec![b'x'; 1024];
    let t = Instant::now();
    for d in 0..files.div_ceil(100) {
        let sub = root.join(format!("d{d:04}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100.min(files - d * 100) {
            std::fs::write(sub.join(format!("f{f:03}.conf")), &block).unwrap();
        }
    }
    let created = t.elapsed();
    let mut counted = HashSet::new();
    let mut spooled = 0;
    while spooled < files {
        assert!(t.elapsed() < Duration::from_secs(600), "{spooled} of {files} changes spooled after 10 minutes");
        std::thread::sleep(Duration::from_millis(100));
        spooled += count_new_records(&data.join("spool"), &mut counted);
    }
    assert_eq!(spooled, files, "each created file is reported once");
    let took = t.elapsed();
    let peak_kib = status_kib(pid, "VmHWM");
    let after_kib = status_kib(pid, "VmRSS");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "burst of {files} files: created in {created:.1?}, all spooled {took:.1?} after the first; \
         RSS idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
        mib(idle_kib),
        mib(peak_kib),
        mib(after_kib)
    );
}

fn main() {
    let sizes = std::env::var("FIMLAKE_BENCH_BURST_FILES").unwrap_or_else(|_| "20000,100000".into());
    for files in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        burst(files);
    }
}
