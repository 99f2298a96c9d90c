//! fimlake's benchmark harness. One `run` does, in order:
//!
//! 1. `fimlake gen`: the data set (NDJSON per table and day) and its raw size;
//! 2. the serde_json parse bound of `ConfigurationChange` records on one core (`ingest::parse_bound`);
//! 3. per ingest case (K clients, batches of B, gzip or not): a fresh server, the load for a fixed
//!    time from this process, records/s, MB/s, acknowledgement p50/p99, server peak RSS and CPU
//!    (`ingest::drive`);
//! 4. the whole data set loaded into a fresh server, flushed and compacted; the Parquet size
//!    against the raw JSON;
//! 5. the hunting queries on fimlake and DuckDB over the same Parquet files, interleaved, answers
//!    compared (`queries::run_all`);
//! 6. the console's pages on the same server: time to headers and to the last byte, a change
//!    list 1,000 pages deep, the CSV export's rate and memory (`ui::measure`);
//! 7. the latency from an acknowledged record to its alert's webhook (`alert::measure`);
//! 8. (run after 3) a cluster on an S3 server on this machine: ingest over 1, 2 and 3 ingest
//!    nodes, and the queries on a query node fanning out against one that does not
//!    (`cluster::measure`);
//!
//! and writes `results.json` and `results.md` (`report`).

pub mod alert;
pub mod cluster;
pub mod ingest;
pub mod queries;
pub mod report;
pub mod s3;
pub mod server;
pub mod ui;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use ingest::IngestCase;
use server::{ServerProcess, metric_sum};

/// Everything a run needs; `Options::full` and `Options::smoke` are the two documented sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// The `fimlake` binary (a release build for real figures).
    #[serde(skip)]
    pub server_bin: PathBuf,
    /// A Python with the `duckdb` and `deltalake` packages.
    #[serde(skip)]
    pub python: PathBuf,
    /// Scratch space: generated data and the servers' data directories (emptied first).
    #[serde(skip)]
    pub work_dir: PathBuf,
    /// Where `results.json` and `results.md` go.
    #[serde(skip)]
    pub out_dir: PathBuf,
    pub computers: usize,
    pub days: u32,
    pub changes_per_day: u32,
    pub seed: u64,
    /// `ConfigurationChange` records the ingest cases post (round-robin) and the parse bound parses.
    pub pool_records: usize,
    pub ingest_cases: Vec<IngestCase>,
    pub ingest_warmup: Duration,
    pub ingest_measure: Duration,
    /// Loading the query data set: clients and records per request.
    pub load_clients: usize,
    pub load_batch: usize,
    pub query_rounds: usize,
    /// Timed runs of each query on each query node in the cluster step (after the compared one).
    #[serde(default)]
    pub cluster_query_rounds: usize,
    /// Days of the data set (the latest) loaded into the cluster for its queries: over s3s-fs a
    /// scan of 30 days takes 10-25 s, and compacting them on the leader half an hour.
    #[serde(default)]
    pub cluster_days: usize,
    /// Added by the S3 server before it answers each request, in milliseconds: a bucket across
    /// a network (S3's first byte takes tens of milliseconds), where on loopback reads do not
    /// wait at all.
    #[serde(default)]
    pub s3_latency_ms: u64,
    pub alert_samples: usize,
    pub alert_frequency_s: u64,
    /// Which parts run (all by default; fewer when working on one of them).
    pub steps: Steps,
    /// Reuse the generated data set whatever its age, and the query server's loaded data
    /// directory: for working on queries (time-relative queries then see older data).
    pub reuse: bool,
    /// TOML appended to every benchmark server's configuration (a `[query]` or `[alerting]`
    /// section: `[ingest]` and `[storage]` are the harness's).
    pub server_config: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Steps {
    pub ingest: bool,
    pub queries: bool,
    /// The console's pages (on the loaded query server; loads it without `queries` too).
    #[serde(default = "yes")]
    pub ui: bool,
    pub alert: bool,
    /// Ingest over 1, 2 and 3 ingest nodes, and queries local against fanned out, on a cluster
    /// sharing a bucket (s3s-fs) on this machine.
    #[serde(default)]
    pub cluster: bool,
}

fn yes() -> bool {
    true
}

impl std::str::FromStr for Steps {
    type Err = String;
    /// A comma-separated list of `ingest`, `queries` (the load, storage size and queries), `ui`
    /// (the console's pages on the loaded data), `alert`, `cluster`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut steps = Steps { ingest: false, queries: false, ui: false, alert: false, cluster: false };
        for part in s.split(',').map(str::trim) {
            match part {
                "ingest" => steps.ingest = true,
                "queries" => steps.queries = true,
                "alert" => steps.alert = true,
                "ui" => steps.ui = true,
                "cluster" => steps.cluster = true,
                other => {
                    return Err(format!("unknown step '{other}': the steps are ingest, queries, ui, alert, cluster"));
                }
            }
        }
        Ok(steps)
    }
}

impl Options {
    /// 100 computers x 30 days: 10 million `ConfigurationChange` rows and 4.3 million heartbeats.
    pub fn full() -> Options {
        Options {
            server_bin: PathBuf::new(),
            python: PathBuf::new(),
            work_dir: PathBuf::from("target/bench-work"),
            out_dir: PathBuf::from("target/bench-results"),
            computers: 100,
            days: 30,
            changes_per_day: 3334,
            seed: 1,
            pool_records: 200_000,
            ingest_cases: vec![
                IngestCase { clients: 8, batch: 1000, gzip: false },
                IngestCase { clients: 8, batch: 1000, gzip: true },
                IngestCase { clients: 16, batch: 10_000, gzip: false },
                IngestCase { clients: 16, batch: 10_000, gzip: true },
                IngestCase { clients: 64, batch: 10_000, gzip: true },
            ],
            ingest_warmup: Duration::from_secs(3),
            ingest_measure: Duration::from_secs(20),
            load_clients: 8,
            load_batch: 10_000,
            query_rounds: 10,
            cluster_query_rounds: 5,
            cluster_days: 7,
            s3_latency_ms: 0,
            alert_samples: 5,
            alert_frequency_s: 10,
            steps: Steps { ingest: true, queries: true, ui: true, alert: true, cluster: true },
            reuse: false,
            server_config: String::new(),
        }
    }

    /// Seconds, not minutes: every step on tiny sizes (the test suite runs this).
    pub fn smoke() -> Options {
        Options {
            computers: 2,
            days: 2,
            changes_per_day: 100,
            pool_records: 300,
            ingest_cases: vec![IngestCase { clients: 2, batch: 50, gzip: true }],
            ingest_warmup: Duration::from_millis(200),
            ingest_measure: Duration::from_millis(800),
            load_clients: 2,
            load_batch: 500,
            query_rounds: 2,
            // The answers are compared all the same; debug builds over S3 are slow to time.
            cluster_query_rounds: 0,
            alert_samples: 1,
            ..Options::full()
        }
    }
}

/// Settings every benchmark server gets: bodies large enough for the biggest batches.
pub(crate) const SERVER_CONFIG: &str = "[ingest]\nmax_body_bytes = 33554432\nmax_decompressed_bytes = 67108864\n";
/// The query server also compacts every partition with two files or more, soon: the layout a
/// server reaches in steady state, when maintenance has merged each hour's flushes. Buffers are
/// flushed after 2 s, so that the loaded data set is all in Parquet soon after the load.
pub(crate) const QUERY_STORAGE_CONFIG: &str =
    "compact_min_files = 2\nmaintenance_interval = \"5s\"\nflush_age = \"2s\"\n";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: report::Machine,
    pub commit: String,
    pub date: String,
    pub options: Options,
    pub rows: Rows,
    pub parse_bound: ingest::ParseBound,
    pub ingest: Vec<ingest::IngestResult>,
    /// Loading the whole query data set (all three tables) with `load_clients` x `load_batch`.
    pub load: Load,
    pub storage: Vec<report::TableSize>,
    pub duckdb: String,
    pub queries: Vec<queries::QueryResult>,
    #[serde(default)]
    pub ui: Option<ui::UiResult>,
    pub alert: Option<alert::AlertResult>,
    #[serde(default)]
    pub cluster: Option<cluster::ClusterResult>,
    pub targets: Vec<report::Target>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rows {
    pub configuration_change: u64,
    pub configuration_data: u64,
    pub heartbeat: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Load {
    pub records: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub json_mb_per_second: f64,
    pub refused: u64,
    pub server_peak_rss_mib: f64,
    /// From the last record acknowledged to every buffer flushed and every partition compacted.
    pub settle_seconds: f64,
}

pub const TABLES: [&str; 3] = ["ConfigurationChange", "ConfigurationData", "Heartbeat"];

/// Step 1: the data set, ending at the next whole minute (so that "last hour" has data), in the work
/// directory (emptied first). A data set of the same parameters generated less than 30 minutes
/// ago (or any, with `--reuse`) is reused. Returns the work and data directories.
fn prepare_data_set(
    opts: &Options,
    date: chrono::DateTime<chrono::Utc>,
    log: &dyn Fn(&str),
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let params = format!("{} {} {} {}", opts.computers, opts.days, opts.changes_per_day, opts.seed);
    let stamp = opts.work_dir.join("data/params");
    let reuse = std::fs::read_to_string(&stamp).ok().and_then(|t| {
        let (p, end) = t.split_once('@')?;
        let end = chrono::DateTime::parse_from_rfc3339(end.trim()).ok()?.with_timezone(&chrono::Utc);
        (p == params && (opts.reuse || date - end < chrono::Duration::minutes(30))).then_some(end)
    });
    if opts.work_dir.exists() {
        for entry in std::fs::read_dir(&opts.work_dir)? {
            let path = entry?.path();
            let keep = |name: &str| path.file_name().is_some_and(|n| n == name);
            if reuse.is_some() && (keep("data") || (opts.reuse && (keep("query") || keep("query.toml")))) {
                continue;
            }
            if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }
                .with_context(|| format!("emptying {}", opts.work_dir.display()))?;
        }
    }
    std::fs::create_dir_all(&opts.work_dir)?;
    let work = std::fs::canonicalize(&opts.work_dir)?;
    let next_minute = chrono::DateTime::from_timestamp(date.timestamp() - date.timestamp() % 60 + 60, 0);
    let end = reuse.or(next_minute).context("the clock is out of chrono's range")?;
    let data = work.join("data");
    if reuse.is_some() {
        log(&format!("reusing the data set that ends at {end}"));
    } else {
        generate(opts, end, &data, log)?;
        std::fs::write(data.join("params"), format!("{params}@{}", end.to_rfc3339()))?;
    }
    Ok((work, data))
}

pub async fn run(opts: &Options, log: &dyn Fn(&str)) -> anyhow::Result<Report> {
    let date = chrono::Utc::now();
    let (work, data) = prepare_data_set(opts, date, log)?;
    let files = |t: &str| -> anyhow::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(data.join(t))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        v.sort();
        Ok(v)
    };

    // 2. The pool of ConfigurationChange records, and their parse bound.
    let (mut pool_bytes, mut pool_lines) = (Vec::new(), 0);
    for f in files("ConfigurationChange")? {
        let bytes = std::fs::read(&f)?;
        pool_lines += ingest::ndjson_lines(&bytes).count();
        pool_bytes.extend(bytes);
        if pool_lines >= opts.pool_records {
            break;
        }
    }
    let pool: Vec<&[u8]> = ingest::ndjson_lines(&pool_bytes).take(opts.pool_records).collect();
    log(&format!("serde_json parse bound over {} records", pool.len()));
    let parse_bound =
        ingest::parse_bound(&pool, opts.ingest_measure.min(Duration::from_secs(5)).max(Duration::from_millis(200)))?;

    // 3. Ingest cases, each on a fresh server.
    let mut ingest_results = Vec::new();
    let cases = if opts.steps.ingest { &opts.ingest_cases[..] } else { &[] };
    for (i, case) in cases.iter().enumerate() {
        log(&format!("ingest {}x{}{}", case.clients, case.batch, if case.gzip { " gzip" } else { "" }));
        let bodies = ingest::prepare(&pool, case.batch, case.gzip);
        let dir = work.join(format!("ingest-{i}"));
        let mut server =
            ServerProcess::start(&opts.server_bin, &dir, &format!("{SERVER_CONFIG}{}", opts.server_config)).await?;
        let mut r = ingest::drive(
            &ingest::Target::one(&server),
            "ConfigurationChange",
            *case,
            &bodies,
            opts.ingest_warmup,
            opts.ingest_measure,
        )
        .await?;
        server.stop().await?;
        std::fs::remove_dir_all(&dir)?;
        r.fraction_of_parse_bound_per_core = if r.server_cores > 0.0 {
            r.records_per_second / r.server_cores / parse_bound.typed_records_per_second
        } else {
            0.0
        };
        log(&format!(
            "  {:.0} records/s, p99 {:.1} ms, peak RSS {:.0} MiB",
            r.records_per_second, r.ack_p99_ms, r.server_peak_rss_mib
        ));
        ingest_results.push(r);
    }
    let cluster = if opts.steps.cluster {
        log("cluster: ingest over 1, 2, 3 ingest nodes; queries local against fanned out");
        Some(cluster::measure(opts, &work, &pool, &files, log).await?)
    } else {
        None
    };
    drop(pool);
    drop(pool_bytes);

    // 4, 5. The query data set, loaded, flushed and compacted; its size; the queries.
    let (rows, load, storage, duckdb, query_results, ui) = if opts.steps.queries || opts.steps.ui {
        load_and_query(opts, &work, &files, log).await?
    } else {
        (Rows::default(), Load::default(), Vec::new(), String::new(), Vec::new(), None)
    };

    // 6. Alert latency.
    let alert = if opts.steps.alert { Some(alert_latency(opts, &work, log).await?) } else { None };

    let mut report = Report {
        machine: report::Machine::read(),
        commit: report::commit(),
        date: date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        options: opts.clone(),
        rows,
        parse_bound,
        ingest: ingest_results,
        load,
        storage,
        duckdb,
        queries: query_results,
        ui,
        alert,
        cluster,
        targets: Vec::new(),
    };
    report.targets = report::targets(&report);
    std::fs::create_dir_all(&opts.out_dir)?;
    std::fs::write(opts.out_dir.join("results.json"), serde_json::to_string_pretty(&report)?)?;
    std::fs::write(opts.out_dir.join("results.md"), report::markdown(&report))?;
    Ok(report)
}

/// Step 7 on a fresh server: a per-row rule's webhook, timed from each record's acknowledgement.
async fn alert_latency(opts: &Options, work: &Path, log: &dyn Fn(&str)) -> anyhow::Result<alert::AlertResult> {
    log("alert latency");
    let (hook, mut rx) = alert::receiver().await?;
    let dir = work.join("alert");
    alert::write_rules(&dir.join("rules"), &hook, opts.alert_frequency_s)?;
    let mut server =
        ServerProcess::start(&opts.server_bin, &dir, &format!("{SERVER_CONFIG}{}", opts.server_config)).await?;
    let alert = alert::measure(&server, &mut rx, opts.alert_frequency_s, opts.alert_samples).await?;
    server.stop().await?;
    Ok(alert)
}

type QueryStep = (Rows, Load, Vec<report::TableSize>, String, Vec<queries::QueryResult>, Option<ui::UiResult>);

/// Loads every generated file into a fresh server through HTTP, waits for flush and compaction,
/// measures the tables and runs the queries on both engines.
async fn load_and_query(
    opts: &Options,
    work: &Path,
    files: &dyn Fn(&str) -> anyhow::Result<Vec<PathBuf>>,
    log: &dyn Fn(&str),
) -> anyhow::Result<QueryStep> {
    let dir = work.join("query");
    let reuse = opts.reuse && dir.join("loaded").exists();
    let mut server = ServerProcess::start(
        &opts.server_bin,
        &dir,
        &format!("{SERVER_CONFIG}[storage]\n{QUERY_STORAGE_CONFIG}{}", opts.server_config),
    )
    .await?;
    if reuse {
        log("reusing the loaded query server's data directory (no load figures)");
    }
    let mut rows = Rows::default();
    let mut raw_sizes = Vec::new();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let load_start = Instant::now();
    let (mut loaded, mut loaded_bytes, mut refused) = (0u64, 0u64, 0u64);
    for table in TABLES {
        let mut raw = 0u64;
        let url = format!("{}/v1/tables/{table}/records", server.url);
        for f in files(table)? {
            let bytes = std::fs::read(&f)?;
            raw += bytes.len() as u64;
            let n = ingest::ndjson_lines(&bytes).count() as u64;
            if !reuse {
                refused += post_file(opts, &client, &url, &bytes).await?;
            }
            loaded += n;
            match table {
                "ConfigurationChange" => rows.configuration_change += n,
                "ConfigurationData" => rows.configuration_data += n,
                _ => rows.heartbeat += n,
            }
        }
        loaded_bytes += raw;
        raw_sizes.push((table, raw));
        log(&format!("  loaded {table}"));
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let peak = server.peak_rss()?;
    log(&format!("loaded {loaded} records in {load_secs:.1} s; waiting for flush and compaction"));
    let settle_start = Instant::now();
    settle(&server).await?;
    std::fs::write(dir.join("loaded"), "")?;
    let load = if reuse {
        Load::default()
    } else {
        Load {
            records: loaded,
            seconds: load_secs,
            records_per_second: loaded as f64 / load_secs,
            json_mb_per_second: loaded_bytes as f64 / load_secs / 1e6,
            refused,
            server_peak_rss_mib: peak as f64 / (1 << 20) as f64,
            settle_seconds: settle_start.elapsed().as_secs_f64(),
        }
    };
    let metrics = server.metrics().await?;
    let storage = table_sizes(&metrics, &raw_sizes);

    // 5. Hunting queries against DuckDB on the same files.
    let (mut query_results, mut duckdb) = (Vec::new(), String::new());
    if opts.steps.queries {
        let tables = dir.join("tables");
        let (cc, hb) = (tables.join("ConfigurationChange"), tables.join("Heartbeat"));
        let mut duck = queries::DuckDb::start(&opts.python, work, &[("ConfigurationChange", &cc), ("Heartbeat", &hb)])?;
        log(&format!(
            "queries: {} rounds, DuckDB {} ({} threads), files {:?}",
            opts.query_rounds, duck.version, duck.threads, duck.files
        ));
        query_results = queries::run_all(&server, &mut duck, opts.query_rounds, log).await?;
        duckdb = format!("{} ({} threads)", duck.version, duck.threads);
    }
    // 6. The console's pages on the same data.
    let ui = if opts.steps.ui {
        log(&format!("console pages: {} rounds", opts.query_rounds));
        Some(ui::measure(&server, opts.query_rounds, log).await?)
    } else {
        None
    };
    server.stop().await?;
    Ok((rows, load, storage, duckdb, query_results, ui))
}

/// Each table's raw JSON size beside its Parquet bytes and files, from the server's metrics.
fn table_sizes(metrics: &str, raw_sizes: &[(&str, u64)]) -> Vec<report::TableSize> {
    raw_sizes
        .iter()
        .map(|(t, raw)| {
            let label = format!("table=\"{t}\"");
            report::TableSize {
                table: t.to_string(),
                raw_json_bytes: *raw,
                parquet_bytes: metric_sum(metrics, "fimlake_table_bytes", &label) as u64,
                files: metric_sum(metrics, "fimlake_table_files", &label) as u64,
            }
        })
        .collect()
}

/// `fimlake gen` into `data`.
fn generate(opts: &Options, end: chrono::DateTime<chrono::Utc>, data: &Path, log: &dyn Fn(&str)) -> anyhow::Result<()> {
    log(&format!(
        "generating {} computers x {} days ({} changes per computer and day)",
        opts.computers, opts.days, opts.changes_per_day
    ));
    let status = std::process::Command::new(&opts.server_bin)
        .args(["gen", "--computers", &opts.computers.to_string(), "--days", &opts.days.to_string()])
        .args(["--seed", &opts.seed.to_string(), "--changes-per-day", &opts.changes_per_day.to_string()])
        .args(["--end", &end.to_rfc3339(), "--out"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {} gen", opts.server_bin.display()))?;
    if !status.success() {
        bail!("{} gen failed: {status}", opts.server_bin.display());
    }
    Ok(())
}

/// Posts the NDJSON lines of `bytes` to `url` in batches of `load_batch` from `load_clients`
/// clients at once; answers how often a batch was refused.
pub(crate) async fn post_file(
    opts: &Options,
    client: &reqwest::Client,
    url: &str,
    bytes: &[u8],
) -> anyhow::Result<u64> {
    let lines: Vec<&[u8]> = ingest::ndjson_lines(bytes).collect();
    let bodies = ingest::prepare(&lines, opts.load_batch, false);
    let mut posts = futures::stream::iter(bodies.bodies.into_iter().map(|b| post(client, url, b)))
        .buffer_unordered(opts.load_clients);
    let mut refused = 0;
    while let Some(r) = posts.next().await {
        refused += r?;
    }
    Ok(refused)
}

/// Posts one body until it is accepted ([`ingest::post_once`]); answers how often it was refused.
/// A cut connection is retried only while the body has been refused fewer than 1,000 times.
async fn post(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> anyhow::Result<u64> {
    let mut refused = 0;
    loop {
        match ingest::post_once(client, url, body.clone(), false).await? {
            ingest::Posted::Accepted => return Ok(refused),
            ingest::Posted::Cut if refused >= 1000 => {
                bail!("posting to {url}: the connection was cut after {refused} refusals")
            }
            again => {
                refused += 1;
                tokio::time::sleep(again.wait()).await;
            }
        }
    }
}

/// Waits until nothing is buffered and maintenance has stopped changing the file lists (at most
/// 30 minutes).
pub(crate) async fn settle(server: &ServerProcess) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut last = (f64::NAN, f64::NAN);
    let mut stable = 0;
    while Instant::now() < deadline {
        let m = server.metrics().await?;
        let buffered = metric_sum(&m, "fimlake_buffered_rows", "");
        let now = (metric_sum(&m, "fimlake_table_files", ""), metric_sum(&m, "fimlake_compactions_total", ""));
        if buffered == 0.0 && now == last {
            stable += 1;
            // Two maintenance passes (5 s apart) with nothing to do.
            if stable >= 12 {
                return Ok(());
            }
        } else {
            stable = 0;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("the server was still flushing or compacting after 30 minutes")
}

/// The default path of the `fimlake` binary: beside this executable (both in `target/release`).
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .map_or_else(|| PathBuf::from(name), |d| d.join(name))
}
