//! Crash safety: the server runs as a child process under concurrent ingest and is killed with
//! SIGKILL at random moments, several times. Every record it acknowledged must then be stored
//! exactly once; a record it did not acknowledge may be stored, but never twice.
//!
//! Maintenance (compaction, retention, vacuum) runs every 200 ms, so it runs, and is killed,
//! inside the short lives of the server too. The records are stamped in the current hour: a
//! fixed date would fall out of the 365-day retention one day, and retention would then delete
//! acknowledged rows as it should (this test once failed so, on 2024-05-01 data, in the runs
//! where a server lived past its first maintenance pass).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Server, http, read_table};

const CLIENTS: usize = 4;
const BATCH: usize = 25;
const KILLS: usize = 5;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_acknowledged_record_survives_sigkill_exactly_once() {
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            ("FIMLAKE_STORAGE_FLUSH_AGE", "150ms"),
            ("FIMLAKE_STORAGE_MAINTENANCE_INTERVAL", "200ms"),
            ("FIMLAKE_STORAGE_COMPACT_MIN_FILES", "3"),
            ("FIMLAKE_STORAGE_VACUUM_DELAY", "0"),
        ],
    );
    let url = Arc::new(Mutex::new(server.url.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let attempted = Arc::new(Mutex::new(HashSet::<String>::new()));
    // One hour for every record, recent enough that retention keeps it.
    let hour = Arc::new(chrono::Utc::now().format("%Y-%m-%dT%H").to_string());

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, stop, acked, attempted, hour) =
                (url.clone(), stop.clone(), acked.clone(), attempted.clone(), hour.clone());
            std::thread::spawn(move || {
                let mut seq = 0usize;
                // Bounded: at most 100,000 attempts per client, and it stops when told to.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ids: Vec<String> = (0..BATCH).map(|i| format!("c{c}-{}", seq + i)).collect();
                    seq += BATCH;
                    attempted.lock().unwrap().extend(ids.iter().cloned());
                    let body: Vec<String> = ids
                        .iter()
                        .map(|id| format!(r#"{{"Computer":"{id}","TimeGenerated":"{hour}:{:02}:00Z"}}"#, seq % 60))
                        .collect();
                    let body = format!("[{}]", body.join(","));
                    let target = format!("{}/v1/tables/Heartbeat/records", url.lock().unwrap());
                    match http("POST", &target, &[("Content-Type", "application/json")], body.as_bytes()) {
                        Ok((200, _, _)) => acked.lock().unwrap().extend(ids),
                        Ok((503 | 429, _, _)) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        Ok((status, _, body)) => panic!("unexpected {status}: {}", String::from_utf8_lossy(&body)),
                    }
                }
            })
        })
        .collect();

    for round in 0..KILLS {
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 600));
        let before = acked.lock().unwrap().len();
        server.kill();
        server.restart();
        *url.lock().unwrap() = server.url.clone();
        println!("round {round}: killed after {before} acknowledged records");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    // One last crash with everything still buffered, then a clean stop.
    server.kill();
    server.restart();
    server.stop();

    let acked = acked.lock().unwrap();
    let attempted = attempted.lock().unwrap();
    assert!(acked.len() > CLIENTS * BATCH * 2, "the test acknowledged too little to mean anything: {}", acked.len());
    let rows = read_table(dir.path(), "Heartbeat", &["Computer"]);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *seen.entry(r["Computer"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "records stored twice (seed {seed}): {dups:?}");
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).take(5).collect();
    assert!(lost.is_empty(), "acknowledged records lost (seed {seed}): {lost:?}");
    let unknown: Vec<_> = seen.keys().filter(|id| !attempted.contains(*id)).take(5).collect();
    assert!(unknown.is_empty(), "records nobody sent: {unknown:?}");
    println!("{} acknowledged, {} stored, {} attempted", acked.len(), rows.len(), attempted.len());
}
