//! `fimlake-bench`: runs the benchmark (see BENCHMARKS.md) and writes results.json and
//! results.md. `bench/run` builds the release binaries, installs DuckDB and calls this.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fimlake_bench::{Options, ingest::IngestCase, run, sibling_binary};

#[derive(Parser)]
#[command(about = "fimlake's benchmark: ingest, hunting queries against DuckDB, alert latency, storage size")]
struct Args {
    /// The `fimlake` binary to benchmark [default: beside this executable]
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A Python with the duckdb and deltalake packages (bench/run installs one)
    #[arg(long, env = "FIMLAKE_BENCH_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Tiny sizes, seconds instead of minutes (what the test suite runs)
    #[arg(long)]
    smoke: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    out_dir: Option<PathBuf>,
    #[arg(long)]
    computers: Option<usize>,
    #[arg(long)]
    days: Option<u32>,
    #[arg(long)]
    changes_per_day: Option<u32>,
    /// Ingest cases as CLIENTSxBATCH[gz], comma-separated (e.g. 8x1000,16x10000gz)
    #[arg(long, value_delimiter = ',')]
    ingest: Option<Vec<IngestCase>>,
    /// Seconds each ingest case is measured (after a warm-up)
    #[arg(long)]
    ingest_seconds: Option<f64>,
    /// Runs of each query on each engine
    #[arg(long)]
    rounds: Option<usize>,
    /// Days of the data set (the latest) loaded into the cluster for its queries (at least 1)
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    cluster_days: Option<usize>,
    /// Milliseconds the cluster step's S3 server waits before answering each request (a bucket
    /// across a network); 0 by default
    #[arg(long)]
    s3_latency_ms: Option<u64>,
    /// Records whose webhook latency is measured
    #[arg(long)]
    alert_samples: Option<usize>,
    /// Reuse the data set and the loaded query server's data of an earlier run, whatever their
    /// age (for work on queries: time-relative queries then see older data)
    #[arg(long)]
    reuse: bool,
    /// TOML added to every server's configuration, e.g. "[query]\nparquet_pushdown_filters = false"
    #[arg(long, default_value = "")]
    server_config: String,
    /// Only these parts, comma-separated: ingest, queries, ui, alert, cluster
    #[arg(long)]
    steps: Option<fimlake_bench::Steps>,
    /// Runs nothing: prints the Markdown of an earlier run's results.json, its targets checked
    /// again (after the targets changed)
    #[arg(long, value_name = "RESULTS_JSON")]
    render: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Some(path) = &a.render {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut report: fimlake_bench::Report =
            serde_json::from_str(&text).with_context(|| format!("{} is not a results.json", path.display()))?;
        report.targets = fimlake_bench::report::targets(&report);
        println!("{}", fimlake_bench::report::markdown(&report));
        return Ok(());
    }
    let mut o = if a.smoke { Options::smoke() } else { Options::full() };
    o.server_bin = a.server_bin.unwrap_or_else(|| sibling_binary("fimlake"));
    o.python = a.python;
    if let Some(v) = a.work_dir {
        o.work_dir = v;
    }
    if let Some(v) = a.out_dir {
        o.out_dir = v;
    }
    if let Some(v) = a.computers {
        o.computers = v;
    }
    if let Some(v) = a.days {
        o.days = v;
    }
    if let Some(v) = a.changes_per_day {
        o.changes_per_day = v;
    }
    if let Some(v) = a.ingest {
        o.ingest_cases = v;
    }
    if let Some(v) = a.ingest_seconds {
        o.ingest_measure = Duration::from_secs_f64(v);
    }
    if let Some(v) = a.rounds {
        o.query_rounds = v;
    }
    if let Some(v) = a.cluster_days {
        o.cluster_days = v;
    }
    if let Some(v) = a.s3_latency_ms {
        o.s3_latency_ms = v;
    }
    if let Some(v) = a.alert_samples {
        o.alert_samples = v;
    }
    o.reuse = a.reuse;
    o.server_config = a.server_config;
    if let Some(v) = a.steps {
        o.steps = v;
    }
    let report = run(&o, &|m| eprintln!("fimlake-bench: {m}")).await?;
    println!("{}", fimlake_bench::report::markdown(&report));
    eprintln!("fimlake-bench: results in {}", o.out_dir.join("results.{json,md}").display());
    Ok(())
}
