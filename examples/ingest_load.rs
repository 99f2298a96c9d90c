//! A first ingest load: K concurrent clients post batches of B `ConfigurationChange` records to a
//! running server and the example reports records per second and acknowledgement latency.
//!
//!     cargo run --release -- serve --data-dir /tmp/fimlake-load &
//!     cargo run --release --example ingest_load -- http://127.0.0.1:8080 8 1000 200 gzip
//!
//! Arguments: server URL, clients, records per batch, batches per client, `gzip` or `plain`.
//! (The full benchmark harness, with DuckDB comparisons, is a separate tool.)

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn record(i: usize) -> String {
    let computer = format!("host-{:03}", i % 200);
    let path = ["/etc/passwd", "/etc/ssh/sshd_config", "/usr/bin/sudo", "/etc/crontab", "/usr/sbin/sshd"][i % 5];
    let category = ["Modified", "Modified", "Modified", "Added", "Removed"][i % 5];
    let sec = i % 3600;
    format!(
        concat!(
            r#"{{"TimeGenerated":"2024-05-01T10:{:02}:{:02}.{:03}Z","Computer":"{}","ConfigChangeType":"Files","#,
            r#""ChangeCategory":"{}","FileSystemPath":"{}","Name":"{}","FieldsChanged":"FileContentChecksum,Size","#,
            r#""FileContentChecksum":"{:064x}","PreviousFileContentChecksum":"{:064x}","Size":{},"PreviousSize":{},"#,
            r#""DateModified":"2024-05-01T10:00:00Z","Acls":"user::rw-,group::r--,other::r--","SourceSystem":"Linux","#,
            r#""SourceComputerId":"5f1c2a9e-0b7d-4c1e-9f3a-{:012x}"}}"#
        ),
        sec / 60,
        sec % 60,
        i % 1000,
        computer,
        category,
        path,
        path.rsplit('/').next().unwrap(),
        (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
        (i as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
        1000 + i % 5000,
        990 + i % 5000,
        i % 200
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let clients: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(1000), |s| s.parse())?;
    let batches: usize = args.get(4).map_or(Ok(100), |s| s.parse())?;
    let gzip = args.get(5).is_none_or(|s| s == "gzip");

    // Bodies are built before the clock starts: this measures the server, not the generator.
    let mut bodies = Vec::new();
    let mut raw_bytes = 0usize;
    for b in 0..clients.min(16) {
        let recs: Vec<String> = (0..batch).map(|i| record(b * batch + i)).collect();
        let body = format!("[{}]", recs.join(","));
        raw_bytes += body.len();
        bodies.push(if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body.as_bytes())?;
            e.finish()?
        } else {
            body.into_bytes()
        });
    }
    let avg_raw = raw_bytes / bodies.len();
    let bodies = Arc::new(bodies);
    let client = reqwest::Client::new();
    let target = format!("{url}/v1/tables/ConfigurationChange/records");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, target, bodies) = (client.clone(), target.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(batches);
            let mut retries = 0usize;
            let mut n = 0;
            while n < batches {
                let body = bodies[(c + n) % bodies.len()].clone();
                let mut req = client.post(&target).header("content-type", "application/json");
                if gzip {
                    req = req.header("content-encoding", "gzip");
                }
                let t = Instant::now();
                let resp = req.body(body).send().await.expect("request");
                if resp.status().as_u16() == 429 || resp.status().as_u16() == 503 {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                assert!(resp.status().is_success(), "status {}", resp.status());
                latencies.push(t.elapsed());
                n += 1;
            }
            (latencies, retries)
        }));
    }
    let mut latencies = Vec::new();
    let mut retries = 0;
    for t in tasks {
        let (l, r) = t.await?;
        latencies.extend(l);
        retries += r;
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let records = clients * batch * batches;
    println!(
        "{records} records in {secs:.2} s: {:.0} records/s, {:.1} MB/s of JSON; ack latency p50 {:?} p99 {:?}; {retries} retries after 429/503",
        records as f64 / secs,
        (avg_raw * clients * batches) as f64 / secs / 1e6,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}
