//! The results as JSON (the `Report` itself) and as Markdown, with the targets checked.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::Report;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: (kib / (1 << 20) as f64 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }
}

/// The commit checked out in the current directory, `-dirty` when files differ from it.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        None => "unknown".into(),
        Some(c) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c}-dirty")
        }
        Some(c) => c,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableSize {
    pub table: String,
    pub raw_json_bytes: u64,
    pub parquet_bytes: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn target(what: &str, target: &str, measured: String, met: bool) -> Target {
    Target { what: what.into(), target: target.into(), measured, met }
}

/// Issue 17's acknowledgement target: p99 < 100 ms at 8 clients x 1000 records, the worst of
/// that case's runs (plain and gzip); `None` when the run had no such case.
fn ack_p99_at_8x1000(r: &Report) -> Option<Target> {
    let cases = r.ingest.iter().filter(|i| i.case.clients == 8 && i.case.batch == 1000);
    let worst = cases.max_by(|a, b| a.ack_p99_ms.total_cmp(&b.ack_p99_ms))?;
    let gzip = if worst.case.gzip { " gzip" } else { "" };
    Some(target(
        "ack p99 at 8x1000",
        "< 100 ms",
        format!("{:.1} ms (8x1000{gzip}, the worst of that case)", worst.ack_p99_ms),
        worst.ack_p99_ms < 100.0,
    ))
}

/// The targets against this run's figures.
pub fn targets(r: &Report) -> Vec<Target> {
    let mut t = Vec::new();
    if let Some(best) = r.ingest.iter().max_by(|a, b| a.records_per_second.total_cmp(&b.records_per_second)) {
        let c = best.case;
        let name = format!("{}x{}{}", c.clients, c.batch, if c.gzip { " gzip" } else { "" });
        t.push(target(
            "ingest throughput (best case)",
            ">= 200,000 records/s",
            format!("{:.0} records/s ({name})", best.records_per_second),
            best.records_per_second >= 200_000.0,
        ));
        t.push(target(
            "ingest per core vs serde_json bound",
            ">= 0.5",
            format!("{:.2} ({name})", best.fraction_of_parse_bound_per_core),
            best.fraction_of_parse_bound_per_core >= 0.5,
        ));
    }
    if let Some(t8) = ack_p99_at_8x1000(r) {
        t.push(t8);
    }
    let rss = r.ingest.iter().map(|i| i.server_peak_rss_mib).fold(r.load.server_peak_rss_mib, f64::max);
    t.push(target("server peak RSS, any load", "< 1024 MiB", format!("{rss:.0} MiB"), rss < 1024.0));
    if !r.queries.is_empty() {
        let worst = r.queries.iter().max_by(|a, b| a.ratio.total_cmp(&b.ratio)).expect("non-empty");
        t.push(target(
            "every query vs DuckDB",
            "<= 1.5x",
            format!("worst {:.2}x ({})", worst.ratio, worst.name),
            worst.ratio <= 1.5,
        ));
        let median = crate::queries::median(r.queries.iter().map(|q| q.ratio).collect());
        t.push(target("median ratio vs DuckDB", "<= 1.0x", format!("{median:.2}x"), median <= 1.0));
        if let Some(q) = r.queries.iter().find(|q| q.name == "last_hour") {
            t.push(target(
                "last-hour query",
                "< 50 ms",
                format!("{:.1} ms median", q.fimlake_median_ms),
                q.fimlake_median_ms < 50.0,
            ));
        }
    }
    let raw: u64 = r.storage.iter().map(|s| s.raw_json_bytes).sum();
    let parquet: u64 = r.storage.iter().map(|s| s.parquet_bytes).sum();
    if raw > 0 {
        let ratio = parquet as f64 / raw as f64;
        t.push(target("storage vs raw JSON", "<= 0.10", format!("{ratio:.3}"), ratio <= 0.10));
    }
    if let Some(ui) = &r.ui {
        for p in &ui.pages {
            t.push(target(
                &format!("console: {}", p.name),
                &format!("< {:.0} ms", p.target_ms),
                format!("{:.0} ms median", p.last_byte_median_ms),
                p.last_byte_median_ms < p.target_ms,
            ));
        }
        let c = &ui.csv;
        t.push(target(
            "console: CSV export of ~1 M rows",
            ">= 50 MB/s, RSS growth < 100 MiB",
            format!("{:.0} MB/s ({} rows), RSS +{:.0} MiB", c.mb_per_second, c.rows, c.rss_growth_mib),
            c.mb_per_second >= 50.0 && c.rss_growth_mib < 100.0,
        ));
    }
    if let Some(a) = &r.alert {
        t.push(target(
            "ingest-to-webhook latency",
            &format!("< {:.0} ms (2 s + frequency)", a.bound_ms),
            format!("max {:.0} ms", a.max_ms),
            a.max_ms < a.bound_ms,
        ));
    }
    t
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# fimlake benchmark results\n");
    let _ = writeln!(
        s,
        "Commit `{}`, {}; {} ({} cores, {} GiB), Linux {}.\n",
        r.commit, r.date, m.cpu, m.cores, m.memory_gib, m.kernel
    );
    let _ = writeln!(
        s,
        "Data: {} computers x {} days: {} ConfigurationChange, {} Heartbeat, {} ConfigurationData rows.\n",
        r.options.computers, r.options.days, r.rows.configuration_change, r.rows.heartbeat, r.rows.configuration_data
    );
    let _ = writeln!(s, "## Targets\n\n| what | target | measured | met |\n|---|---|---|---|");
    for t in &r.targets {
        let _ =
            writeln!(s, "| {} | {} | {} | {} |", t.what, t.target, t.measured, if t.met { "yes" } else { "**no**" });
    }
    ingest_section(&mut s, r);
    queries_and_storage_section(&mut s, r);
    console_section(&mut s, r);
    alert_section(&mut s, r);
    cluster_section(&mut s, r);
    s
}

/// The parse bound, each ingest case, and the load of the query data set.
fn ingest_section(s: &mut String, r: &Report) {
    let b = &r.parse_bound;
    let _ = writeln!(
        s,
        "\n## Ingest (ConfigurationChange, HTTP, durability on)\n\nserde_json parse bound, one core: {:.0} records/s ({:.0} MB/s) into typed structs, {:.0} records/s into `Value`s.\n",
        b.typed_records_per_second, b.typed_mb_per_second, b.value_records_per_second
    );
    let _ = writeln!(
        s,
        "| clients x batch | gzip | records/s | JSON MB/s | wire MB/s | ack p50 ms | ack p99 ms | refused | server cores | load cores | per core / bound | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for i in &r.ingest {
        let _ = writeln!(
            s,
            "| {}x{} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.0} |",
            i.case.clients,
            i.case.batch,
            if i.case.gzip { "yes" } else { "no" },
            i.records_per_second,
            i.json_mb_per_second,
            i.wire_mb_per_second,
            i.ack_p50_ms,
            i.ack_p99_ms,
            i.refused,
            i.server_cores,
            i.client_cores,
            i.fraction_of_parse_bound_per_core,
            i.server_peak_rss_mib
        );
    }
    let l = &r.load;
    let _ = writeln!(
        s,
        "\nLoading the query data set ({} records, all tables, {}x{}): {:.0} records/s, {:.1} MB/s, {} refused, peak RSS {:.0} MiB; flushed and compacted {:.0} s later.",
        l.records,
        r.options.load_clients,
        r.options.load_batch,
        l.records_per_second,
        l.json_mb_per_second,
        l.refused,
        l.server_peak_rss_mib,
        l.settle_seconds
    );
}

/// The hunting queries against DuckDB, then the storage ratios.
fn queries_and_storage_section(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\n## Hunting queries ({} runs each, interleaved with DuckDB {})\n\n| query | rows | fimlake median ms | fimlake p95 ms | DuckDB median ms | DuckDB p95 ms | ratio |\n|---|---|---|---|---|---|---|",
        r.options.query_rounds, r.duckdb
    );
    for q in &r.queries {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            q.name, q.rows, q.fimlake_median_ms, q.fimlake_p95_ms, q.duckdb_median_ms, q.duckdb_p95_ms, q.ratio
        );
    }
    let _ = writeln!(s, "\n## Storage\n\n| table | raw JSON MB | Parquet MB | ratio | files |\n|---|---|---|---|---|");
    for t in &r.storage {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.3} | {} |",
            t.table,
            t.raw_json_bytes as f64 / 1e6,
            t.parquet_bytes as f64 / 1e6,
            if t.raw_json_bytes > 0 { t.parquet_bytes as f64 / t.raw_json_bytes as f64 } else { 0.0 },
            t.files
        );
    }
}

/// The console's pages and its CSV export, when the run measured them.
fn console_section(s: &mut String, r: &Report) {
    if let Some(ui) = &r.ui {
        let _ = writeln!(
            s,
            "\n## Console\n\nMedian of {} rounds over HTTP on loopback; headers come once the page is rendered whole.\n\n| page | headers ms | last byte ms | target ms | bytes |\n|---|---|---|---|---|",
            r.options.query_rounds
        );
        for p in &ui.pages {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {:.0} | {} |",
                p.name, p.headers_median_ms, p.last_byte_median_ms, p.target_ms, p.bytes
            );
        }
        let c = &ui.csv;
        let _ = writeln!(
            s,
            "\nCSV export of the last three days' changes: {} rows, {:.0} MB in {:.1} s ({:.0} MB/s); server RSS grew {:.0} MiB while it streamed.",
            c.rows,
            c.bytes as f64 / 1e6,
            c.seconds,
            c.mb_per_second,
            c.rss_growth_mib
        );
    }
}

/// Ingest-to-webhook latencies, when the run measured them.
fn alert_section(s: &mut String, r: &Report) {
    if let Some(a) = &r.alert {
        let _ = writeln!(
            s,
            "\n## Alert\n\nIngest-to-webhook latency, per-row rule every {} s: {} ms.",
            a.rule_frequency_s,
            a.latencies_ms.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", ")
        );
    }
}

/// Ingest by number of ingest nodes, and each query local against fanned out.
fn cluster_section(s: &mut String, r: &Report) {
    let Some(c) = &r.cluster else { return };
    let latency = match r.options.s3_latency_ms {
        0 => String::new(),
        ms => format!(", the S3 server answering each request {ms} ms late"),
    };
    let _ = writeln!(
        s,
        "\n## Cluster (every node and the S3 server on this machine{latency})\n\n\
         | ingest nodes | records/s | ack p50 ms | ack p99 ms | refused | cores (all nodes) | peak RSS MiB (largest node) |\n\
         |---|---|---|---|---|---|---|"
    );
    for i in &c.ingest {
        let x = &i.result;
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.1} | {:.1} | {} | {:.2} | {:.0} |",
            i.ingest_nodes,
            x.records_per_second,
            x.ack_p50_ms,
            x.ack_p99_ms,
            x.refused,
            x.server_cores,
            x.server_peak_rss_mib
        );
    }
    let _ = writeln!(
        s,
        "\nQueries over {} loaded records, on a query node alone and fanned out over two query nodes:\n\n\
         | query | rows | fanned out | local ms | distributed ms | ratio |\n|---|---|---|---|---|---|",
        c.loaded_records
    );
    for q in &c.queries {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} |",
            q.name,
            q.rows,
            if q.fanned_out { "yes" } else { "no (one task)" },
            q.local_median_ms,
            q.distributed_median_ms,
            q.ratio
        );
    }
}
