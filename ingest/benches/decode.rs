//! Decoding speed (`cargo bench -p fimlake-ingest --bench decode`): `ConfigurationChange`
//! records shaped as the generator writes them (files added, modified and removed, a dozen
//! fields of the table's ~40 each), posted as NDJSON bodies of 1,000 records, decoded on this
//! thread into the table's Arrow batch. The same bytes parsed into `serde_json::Value` trees
//! are timed beside it, as the reference a serde-based decoder is measured against.
//! `FIMLAKE_BENCH_DECODE_SECONDS` sets how long each is timed (default 3).
#![allow(
    clippy::disallowed_methods,
    reason = "bench settings come from the environment, as the agent's benches take theirs"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fimlake_ingest::decode::{DecodeContext, decode};
use fimlake_ingest::sizing::Sizing;
use fimlake_storage::TableRegistry;

const RECORDS_PER_BODY: usize = 1_000;
const BODIES: usize = 20;

/// One generated change, deterministic in `n`.
fn record(n: usize) -> String {
    let computer = format!("vm-{:04}", n % 100);
    let path = format!("/etc/app{}/conf.d/file-{}.conf", n % 37, n % 1_013);
    let checksum = |salt: usize| format!("{:064x}", (n / 7 + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let time = format!("2026-11-04T{:02}:{:02}:{:02}.{:03}Z", n / 3_600 % 24, n / 60 % 60, n % 60, n % 1_000);
    let common = format!(
        r#""TimeGenerated":"{time}","Computer":"{computer}","ConfigChangeType":"Files","FileSystemPath":"{path}","SourceComputerId":"00000000-0000-4000-8000-{:012}""#,
        n % 100
    );
    match n % 3 {
        0 => format!(
            r#"{{{common},"ChangeCategory":"Added","FileContentChecksum":"{}","Size":{},"Acls":"user::rw-,group::r--,other::r--","Owner":"root","DateModified":"{time}"}}"#,
            checksum(0),
            n % 500_000
        ),
        1 => format!(
            r#"{{{common},"ChangeCategory":"Modified","FileContentChecksum":"{}","Size":{},"Acls":"user::rw-,group::r--,other::r--","Owner":"root","DateModified":"{time}","PreviousFileContentChecksum":"{}","PreviousSize":{},"PreviousAcls":"user::rw-,group::r--,other::r--","FieldsChanged":"Checksum,Size,DateModified"}}"#,
            checksum(0),
            n % 500_000,
            checksum(1),
            n % 499_999
        ),
        _ => format!(
            r#"{{{common},"ChangeCategory":"Removed","PreviousFileContentChecksum":"{}","PreviousSize":{},"PreviousAcls":"user::rwx,group::r--,other::r-x"}}"#,
            checksum(1),
            n % 499_999
        ),
    }
}

fn bodies() -> Vec<Vec<u8>> {
    (0..BODIES)
        .map(|b| {
            let lines: Vec<String> = (0..RECORDS_PER_BODY).map(|r| record(b * RECORDS_PER_BODY + r)).collect();
            lines.join("\n").into_bytes()
        })
        .collect()
}

/// Runs `each` over every body until `seconds` have passed; records per second.
fn rate(bodies: &[Vec<u8>], seconds: Duration, each: &dyn Fn(&[u8])) -> f64 {
    let started = Instant::now();
    let mut passes = 0usize;
    while passes == 0 || started.elapsed() < seconds {
        for body in bodies {
            each(body);
        }
        passes += 1;
    }
    (passes * bodies.len() * RECORDS_PER_BODY) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds = std::env::var("FIMLAKE_BENCH_DECODE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let seconds = Duration::from_secs_f64(seconds);
    let registry = TableRegistry::builtin();
    let def = registry.get("ConfigurationChange").expect("a built-in table");
    let unsized_ctx =
        DecodeContext { received: Utc::now(), tenant_id: "bench".into(), max_records: RECORDS_PER_BODY, sizing: None };
    // As the server decodes: each body's columns sized by the body before it.
    let ctx = DecodeContext { sizing: Some(Arc::new(Sizing::new(def.columns().len()))), ..unsized_ctx.clone() };
    let bodies = bodies();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{} bodies of {RECORDS_PER_BODY} records, {:.0} bytes per record",
        bodies.len(),
        bytes as f64 / (bodies.len() * RECORDS_PER_BODY) as f64
    );
    let decoded = rate(&bodies, seconds, &|body| {
        let batch = decode(def, body, &ctx).expect("generated records decode").batch;
        assert_eq!(batch.num_rows(), RECORDS_PER_BODY);
        std::hint::black_box(batch);
    });
    let grown = rate(&bodies, seconds, &|body| {
        std::hint::black_box(decode(def, body, &unsized_ctx).expect("generated records decode").batch);
    });
    let parsed = rate(&bodies, seconds, &|body| {
        for line in body.split(|b| *b == b'\n') {
            std::hint::black_box(serde_json::from_slice::<serde_json::Value>(line).expect("generated JSON"));
        }
    });
    println!("decode:               {decoded:>9.0} records/s ({:.2} us/record)", 1e6 / decoded);
    println!("decode, not sized:    {grown:>9.0} records/s ({:.2} us/record)", 1e6 / grown);
    println!("serde_json::Value:    {parsed:>9.0} records/s ({:.2} us/record)", 1e6 / parsed);
    println!("decode / Value parse: {:.2}", decoded / parsed);
}
