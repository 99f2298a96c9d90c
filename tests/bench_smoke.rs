//! The benchmark harness on tiny sizes, so that it cannot rot: every step runs against the real
//! server binary and DuckDB, both engines must agree on every hunting query, and the results are
//! written. No timing is asserted (figures on a shared test machine mean nothing).
#![allow(
    clippy::disallowed_methods,
    reason = "test settings (the venv python, bench sizes) come from the environment scripts/test sets"
)]

use fimlake_bench::{Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_end_to_end_on_tiny_sizes() {
    let python = std::env::var("FIMLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FIMLAKE_TEST_PYTHON is not set: run the test suite with scripts/test, which installs DuckDB")
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        server_bin: env!("CARGO_BIN_EXE_fimlake").into(),
        python: python.into(),
        work_dir: dir.path().join("work"),
        out_dir: dir.path().join("results"),
        ..Options::smoke()
    };
    let started = chrono::Utc::now();
    let report = run(&opts, &|m| eprintln!("{m}")).await.expect("the smoke benchmark runs");
    let finished = chrono::Utc::now();

    // The data set went through the server whole.
    assert_eq!(report.rows.heartbeat, 2 * 2 * 1440);
    assert_eq!(
        report.load.records,
        report.rows.configuration_change + report.rows.heartbeat + report.rows.configuration_data
    );
    // Each ingest case acknowledged records and saw the server's memory.
    for i in &report.ingest {
        assert!(i.records > 0 && i.ack_p99_ms >= i.ack_p50_ms && i.server_peak_rss_mib > 0.0, "{i:?}");
    }
    assert!(report.parse_bound.typed_records_per_second > 0.0);
    // Every query ran on both engines (their answers were compared inside `run`).
    assert_eq!(report.queries.len(), fimlake_bench::queries::QUERIES.len());
    let rows = |name: &str| report.queries.iter().find(|q| q.name == name).unwrap().rows;
    assert_eq!(rows("count_by_computer"), 2);
    assert_eq!(rows("heartbeat_latest"), 2);
    assert_eq!(rows("top_100"), 100);
    // Storage was measured on flushed, compacted tables (at these sizes Parquet's per-file
    // metadata outweighs the data, so no ratio is checked): a closed day is one file, every
    // other hour one file.
    let hb = report.storage.iter().find(|s| s.table == "Heartbeat").unwrap();
    assert!(hb.parquet_bytes > 0 && hb.raw_json_bytes > 0, "{hb:?}");
    let expected = compacted_files_of_two_days(started, finished);
    assert!(expected.contains(&usize::try_from(hb.files).unwrap()), "{hb:?}, expected one of {expected:?}");
    assert_eq!(report.alert.as_ref().unwrap().latencies_ms.len(), 1);
    // Every console page answered (a failing page fails the run), and the export streamed the
    // changes of the last three days: at these sizes, one to two days of each computer's.
    let ui = report.ui.as_ref().unwrap();
    assert_eq!(ui.pages.len(), 14);
    assert!(ui.pages.iter().all(|p| p.bytes > 500 && p.last_byte_median_ms >= p.headers_median_ms), "{ui:?}");
    let changes = report.rows.configuration_change;
    assert!(ui.csv.rows > changes / 2 && ui.csv.rows <= changes, "{:?} of {changes}", ui.csv);
    // The cluster: every ingest node count acknowledged records, and every query answered the
    // same on a query node alone and fanned out (compared inside `run`); most fanned out.
    let cluster = report.cluster.as_ref().unwrap();
    let nodes: Vec<usize> = cluster.ingest.iter().map(|i| i.ingest_nodes).collect();
    assert_eq!(nodes, vec![1, 2, 3]);
    assert!(cluster.ingest.iter().all(|i| i.result.records > 0), "{cluster:?}");
    assert_eq!(cluster.loaded_records, report.rows.configuration_change + report.rows.heartbeat);
    assert_eq!(cluster.queries.len(), fimlake_bench::queries::QUERIES.len());
    assert!(cluster.queries.iter().filter(|q| q.fanned_out).count() * 2 > cluster.queries.len(), "{cluster:?}");
    // Both result files, with every target listed.
    let md = std::fs::read_to_string(opts.out_dir.join("results.md")).unwrap();
    assert!(md.contains("## Cluster"), "the cluster's section is in results.md");
    for t in &report.targets {
        assert!(md.contains(&t.what), "{} missing from results.md", t.what);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(opts.out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["queries"].as_array().unwrap().len(), report.queries.len());
}

/// How many files two days of rows a minute apart leave once compacted: one per closed day
/// (ended an hour before the compaction), one per hour of a day not closed. Each count the run
/// allows: the data set ends at the whole minute after `started` or the one before, its first
/// or its last minute holds rows, and the last compaction ran between the two instants.
fn compacted_files_of_two_days(
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
) -> std::collections::BTreeSet<usize> {
    let minute = chrono::Duration::minutes(1);
    let floor_minute = |t: chrono::DateTime<chrono::Utc>| {
        chrono::DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0).unwrap()
    };
    let mut counts = std::collections::BTreeSet::new();
    for end in [floor_minute(started), floor_minute(started) + minute] {
        for first in [end - chrono::Duration::hours(48), end - chrono::Duration::hours(48) + minute] {
            for compacted in [started, finished] {
                counts.insert(files_after_compaction(first, first + chrono::Duration::hours(48), compacted));
            }
        }
    }
    counts
}

/// The files of rows every minute in `[first, end)`, compacted at `compacted`.
fn files_after_compaction(
    first: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    compacted: chrono::DateTime<chrono::Utc>,
) -> usize {
    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;
    let closed_before = (compacted.timestamp() - HOUR).div_euclid(DAY);
    let mut hours = std::collections::BTreeSet::new();
    let mut t = first;
    while t < end {
        hours.insert(t.timestamp().div_euclid(HOUR));
        t += chrono::Duration::minutes(1);
    }
    let days: std::collections::BTreeSet<i64> =
        hours.iter().map(|h| (h * HOUR).div_euclid(DAY)).filter(|day| *day < closed_before).collect();
    let open_hours = hours.iter().filter(|h| (*h * HOUR).div_euclid(DAY) >= closed_before).count();
    days.len() + open_hours
}
