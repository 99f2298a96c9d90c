//! A query fanned out over two workers answers what the same query answers on one node: the
//! hunting shapes of the benchmark, the KQL functions that run as UDFs, and the public corpus.
//! The workers are real gRPC services on 127.0.0.1 reading the same tables.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use common::open;
use fimlake_query::QueryEngine;
use fimlake_query::distributed::{Distribution, Workers, serve_worker};
use fimlake_storage::Storage;
use futures::StreamExt;

mod common;

#[path = "../../kql/tests/common/public_corpus.rs"]
#[allow(dead_code, reason = "the corpus' expected failures are the KQL crate's concern")]
mod public_corpus;

const TOKEN: &str = "test-token";
const HOUR_US: i64 = 3_600_000_000;

/// Rows of `table` from JSON objects.
fn batch(storage: &Storage, table: &str, rows: &[serde_json::Value]) -> RecordBatch {
    let schema = storage.table(table).unwrap().def().schema().clone();
    let mut decoder = arrow::json::ReaderBuilder::new(schema).build_decoder().unwrap();
    decoder.serialize(rows).unwrap();
    decoder.flush().unwrap().unwrap()
}

fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Changes and heartbeats of 12 machines over the last 12 hours, flushed hour by hour: one
/// file per table and hour. Values repeat as a fleet's do (paths, checksums, categories).
async fn load(storage: &Storage) {
    let now = chrono::Utc::now().timestamp_micros();
    let paths = ["/etc/passwd", "/etc/ssh/sshd_config", "/usr/bin/nginx", "/etc/nginx/nginx.conf", "/tmp/Ünïcode"];
    let categories = ["Added", "Modified", "Removed"];
    for hour in 0..12i64 {
        let mut changes = Vec::new();
        let mut heartbeats = Vec::new();
        for i in 0..60i64 {
            let n = hour * 60 + i;
            let at = now - (hour + 1) * HOUR_US + i * 59_000_000 + 1_000;
            let computer = format!("web-{:02}", n % 12);
            changes.push(serde_json::json!({
                "TimeGenerated": time(at),
                "Computer": computer,
                "ConfigChangeType": if n % 7 == 0 { "Software" } else { "Files" },
                "ChangeCategory": categories[(n % 3) as usize],
                "FileSystemPath": format!("{}{}", paths[(n % 5) as usize], if n % 4 == 0 { ".bak" } else { "" }),
                "FileContentChecksum": format!("{:064x}", n % 17),
                "Size": n * 13 % 1000,
                "SoftwareName": if n % 7 == 0 { "openssl" } else { "" },
                "FieldsChanged": "Checksum;Size",
            }));
            if i % 5 == 0 {
                heartbeats.push(serde_json::json!({
                    "TimeGenerated": time(at),
                    "Computer": computer,
                    "OSType": "Linux",
                    "ComputerIP": format!("10.0.{}.{}", n % 3, n % 12),
                    "Version": format!("1.{}", n % 4),
                }));
            }
        }
        let change_table = storage.table("ConfigurationChange").unwrap();
        change_table.append(batch(storage, "ConfigurationChange", &changes)).await.unwrap();
        let heartbeat_table = storage.table("Heartbeat").unwrap();
        heartbeat_table.append(batch(storage, "Heartbeat", &heartbeats)).await.unwrap();
        storage.flush_all().await.unwrap();
    }
}

/// Two workers on 127.0.0.1, each with its own runtime, and the list naming them.
async fn start_workers(storage: &Arc<Storage>) -> Workers {
    let mut urls = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap());
        let storage = storage.clone();
        let runtime = datafusion::execution::runtime_env::RuntimeEnv::default();
        tokio::spawn(async move {
            serve_worker(listener, &storage, &runtime, TOKEN.to_string(), std::future::pending()).await.unwrap();
        });
    }
    let workers = Workers::default();
    workers.set(urls);
    workers
}

/// Loaded tables, two workers reading them, and two engines over the tables: one on its node
/// alone, one fanning queries reading more than `above_files` files or `above_bytes` bytes out
/// with `token`.
struct Fixture {
    /// Kept to the end of the test: dropping it removes the tables.
    _dir: tempfile::TempDir,
    storage: Arc<Storage>,
    workers: Workers,
    local: QueryEngine,
    fanned: QueryEngine,
}

async fn fixture(above_files: usize, above_bytes: u64, token: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    load(&storage).await;
    let workers = start_workers(&storage).await;
    let config = fimlake_query::QueryConfig::default();
    let local = QueryEngine::new(storage.clone(), &config);
    let distribution = Distribution { workers: workers.clone(), above_files, above_bytes, token: token.to_string() };
    let fanned = QueryEngine::new(storage.clone(), &config).with_distribution(distribution);
    Fixture { _dir: dir, storage, workers, local, fanned }
}

/// The rows of a result as text, sorted (rows a query sorts by keys with ties may come in
/// either order); reals rounded to 9 significant digits (a sum's terms add in another order).
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        for i in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| {
                    let text = arrow::util::display::array_value_to_string(c, i).unwrap();
                    match (c.data_type(), text.parse::<f64>()) {
                        (arrow::datatypes::DataType::Float64, Ok(v)) => format!("{v:.9e}"),
                        _ => text,
                    }
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// Whether a query's rows are defined by the data: not "any N rows", "any value" or lists in
/// the order rows were read. With `unique_keys` (the test's own data and queries), the first
/// N rows by a sort are defined; in general ties make them "any".
fn deterministic(kql: &str, unique_keys: bool) -> bool {
    let lower = kql.to_ascii_lowercase();
    let picks_any = ["take_any", "any(", "sample", "make_list", "make_set", "make_bag"];
    let first_rows = ["| take", "| limit", "| top"];
    let sorted = lower.contains("sort by") || lower.contains("order by") || lower.contains("| top");
    if picks_any.iter().any(|w| lower.contains(w)) {
        return false;
    }
    match first_rows.iter().any(|w| lower.contains(w)) {
        true => sorted && unique_keys,
        false => true,
    }
}

/// The queries the test compares: the benchmark's shapes, the UDF-backed functions, joins.
const QUERIES: &[&str] = &[
    "ConfigurationChange | count",
    "ConfigurationChange | summarize count() by Computer",
    "ConfigurationChange | summarize count() by Computer, ChangeCategory",
    "ConfigurationChange | summarize count() by bin(TimeGenerated, 1h)",
    "ConfigurationChange | where ConfigChangeType == 'Files' | summarize dcount(FileSystemPath) by Computer",
    "ConfigurationChange | summarize Computers = dcount(Computer) by FileSystemPath",
    "ConfigurationChange | where FileSystemPath has 'nginx' | top 50 by TimeGenerated desc",
    "ConfigurationChange | where FileSystemPath contains 'SSH' | summarize count() by Computer",
    "ConfigurationChange | where FileSystemPath startswith '/etc/ssh' | summarize count() by Computer",
    "ConfigurationChange | where FileSystemPath has_cs 'Ünïcode' or FileSystemPath contains 'ünï' | count",
    "ConfigurationChange | sort by Computer asc, TimeGenerated desc | take 100",
    "ConfigurationChange | top 100 by TimeGenerated",
    "Heartbeat | summarize arg_max(TimeGenerated, *) by Computer",
    "ConfigurationChange | summarize percentiles(Size, 50, 95), avg(Size), stdev(Size) by ChangeCategory",
    "ConfigurationChange | summarize sizes = array_length(make_list(Size)), categories = array_sort_asc(make_set(ChangeCategory)) by Computer",
    "ConfigurationChange | extend parts = split(FileSystemPath, '/') | extend top_dir = tostring(parts[1]) | summarize count() by top_dir",
    "ConfigurationChange | extend v = extract(@'(\\d+)\\.', 1, Computer) | summarize count() by v",
    "ConfigurationChange | extend file = tostring(parse_path(FileSystemPath).Filename) | summarize count() by file",
    "ConfigurationChange | extend bag = bag_pack('path', FileSystemPath, 'size', Size) | summarize count() by tostring(bag.path)",
    "ConfigurationChange | extend fields = split(FieldsChanged, ';') | mv-expand fields to typeof(string) | summarize count() by fields",
    "ConfigurationChange | summarize n = count() by Computer | where n > 50 | order by n desc, Computer asc",
    "Heartbeat | where ipv4_is_private(ComputerIP) | summarize count() by Version",
    "ConfigurationChange | summarize by Computer, FileSystemPath | summarize paths = count() by Computer",
    "ConfigurationChange | where ChangeCategory == 'Removed' | join kind=inner (Heartbeat | summarize arg_max(TimeGenerated, Version) by Computer) on Computer | summarize count() by Version",
    "ConfigurationChange | where TimeGenerated > ago(3h) | summarize count() by Computer, bin(TimeGenerated, 30m)",
    "ConfigurationChange | make-series n = count() default = 0 on TimeGenerated from ago(12h) to now() step 1h by ChangeCategory",
    "ConfigurationChange | summarize hashes = dcount(FileContentChecksum), first = min(TimeGenerated) by FileSystemPath | sort by FileSystemPath asc",
    "union ConfigurationChange, Heartbeat | summarize count() by Type",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_fanned_out_over_two_workers_answers_as_on_one_node() {
    let Fixture { _dir, local, fanned, .. } = fixture(2, u64::MAX, TOKEN).await;

    let plan = fanned.explain("ConfigurationChange | summarize count() by Computer", None).await.unwrap();
    assert!(plan.contains("DistributedExec") && plan.contains("tasks=2"), "fanned out over both workers:\n{plan}");
    let small = fanned.explain("ConfigurationChange | where TimeGenerated > ago(20m) | count", None).await.unwrap();
    assert!(!small.contains("DistributedExec"), "two files or fewer stay local:\n{small}");

    let mut planned_fanned_out = 0;
    for kql in QUERIES {
        // The distributed planner keeps a plan whose hash join collects one side (the
        // `arg_max`/`sort | take` rewrites) in one task; every other one fans out.
        planned_fanned_out += usize::from(fanned.explain(kql, None).await.unwrap().contains("DistributedExec"));
        compare(&local, &fanned, kql, true).await;
    }
    assert!(planned_fanned_out >= QUERIES.len() - 3, "{planned_fanned_out} of {} fanned out", QUERIES.len());
    assert_eq!(fanned.distributed_queries() as usize, planned_fanned_out, "each run fanned out counts once");
}

/// A month of closed days is a few dozen large files: a scan fans out when it reads more bytes
/// than `above_bytes`, however few its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_reading_more_bytes_than_the_threshold_fans_out_whatever_its_files() {
    let Fixture { _dir, storage, workers, .. } = fixture(usize::MAX, u64::MAX, TOKEN).await;
    let files = storage.table("ConfigurationChange").unwrap().snapshot().files;
    assert!(files.len() >= 12, "an hour a file: {} files", files.len());
    let third = files.iter().map(|f| f.size).sum::<u64>() / 3;
    let distribution = Distribution { workers, above_files: usize::MAX, above_bytes: third, token: TOKEN.to_string() };
    let engine = QueryEngine::new(storage, &fimlake_query::QueryConfig::default()).with_distribution(distribution);

    let whole = engine.explain("ConfigurationChange | summarize count() by Computer", None).await.unwrap();
    assert!(whole.contains("DistributedExec"), "the whole table is over a third of its bytes:\n{whole}");
    let recent = engine.explain("ConfigurationChange | where TimeGenerated > ago(20m) | count", None).await.unwrap();
    assert!(!recent.contains("DistributedExec"), "the last hour's files stay local:\n{recent}");
}

/// Runs `kql` on both engines at the same `now()`: equal rows, or the same error.
async fn compare(local: &QueryEngine, fanned: &QueryEngine, kql: &str, unique_keys: bool) {
    let timeout = Duration::from_secs(60);
    let options = fimlake_kql::PlanOptions { now_us: chrono::Utc::now().timestamp_micros(), ..Default::default() };
    let one = local.run_with(kql, options, timeout).await;
    let many = fanned.run_with(kql, options, timeout).await;
    match (one, many) {
        (Ok(one), Ok(many)) => {
            let (a, b) = (rows(&one.batches), rows(&many.batches));
            assert_eq!(a.len(), b.len(), "{kql}: row counts");
            if deterministic(kql, unique_keys) {
                assert_eq!(a, b, "{kql}");
            }
            assert_eq!(one.schema.fields(), many.schema.fields(), "{kql}: columns");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{kql}: errors"),
        (a, b) => panic!("{kql}: one node {:?}, fanned out {:?}", a.map(|_| "rows"), b.map(|_| "rows")),
    }
}

/// The 154 public queries users paste in: each answers the same fanned out (or fails the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_corpus_answers_the_same_fanned_out() {
    let Fixture { _dir, local, fanned, .. } = fixture(0, u64::MAX, TOKEN).await;
    let corpus = include_str!("../../kql/tests/data/public-queries.jsonl");
    let mut answered = 0;
    for line in corpus.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let kql = public_corpus::substitute(entry["query"].as_str().unwrap());
        compare(&local, &fanned, &kql, false).await;
        answered += usize::from(local.run(&kql, None, Duration::from_secs(60)).await.is_ok());
    }
    println!("{answered} of the corpus' queries answered on both, equal; {} fanned out", fanned.distributed_queries());
    assert!(fanned.distributed_queries() >= 20, "the corpus' queries over the FIM tables fan out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_a_plan_without_the_cluster_token() {
    let Fixture { _dir, fanned: intruder, .. } = fixture(0, u64::MAX, "not-the-token").await;
    let options = fimlake_kql::PlanOptions::default();
    let (_, mut stream) =
        intruder.stream("ConfigurationChange | count", options, Duration::from_secs(60)).await.unwrap();
    let error = stream.next().await.unwrap().err().unwrap();
    assert!(error.to_string().contains("without this cluster's worker token"), "{error}");
}

/// A worker gone since the list was read (a node killed between two heartbeats): the query
/// runs again on the planning node alone, with the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_worker_is_gone_runs_again_on_the_planning_node() {
    let Fixture { _dir, workers, local, fanned, .. } = fixture(0, u64::MAX, TOKEN).await;
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    workers.set([workers.urls(), vec![url::Url::parse(&format!("http://{gone}")).unwrap()]].concat());
    for kql in ["ConfigurationChange | count", "ConfigurationChange | summarize count() by Computer"] {
        compare(&local, &fanned, kql, true).await;
    }
    assert_eq!(fanned.distributed_queries(), 2, "both were planned fanned out");
}

/// A plan fragment naming a file outside the tables (here a node's local file, through a table
/// of the planning node's own) is refused by the worker: it reads the tables' stores only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reads_the_tables_and_no_other_file() {
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path()).await;
    let workers = start_workers(&storage).await;
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "Secret",
        arrow::datatypes::DataType::Utf8,
        true,
    )]));
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for file in 0..4 {
        let values: Vec<String> = (0..1000).map(|i| format!("secret-{file}-{i}")).collect();
        let column = Arc::new(arrow::array::StringArray::from(values));
        let rows = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
        let out = std::fs::File::create(secrets.join(format!("{file}.parquet"))).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None).unwrap();
        writer.write(&rows).unwrap();
        writer.close().unwrap();
    }
    let format = Arc::new(datafusion::datasource::file_format::parquet::ParquetFormat::default());
    let config = ListingTableConfig::new(ListingTableUrl::parse(format!("{}/", secrets.display())).unwrap())
        .with_listing_options(ListingOptions::new(format).with_file_extension(".parquet"))
        .with_schema(schema);
    let table: Arc<dyn datafusion::datasource::TableProvider> = Arc::new(ListingTable::try_new(config).unwrap());
    let distribution = Distribution { workers, above_files: 0, above_bytes: 0, token: TOKEN.to_string() };
    let engine = QueryEngine::over(vec![("Secrets".to_string(), table)], &fimlake_query::QueryConfig::default())
        .with_distribution(distribution);
    assert!(engine.explain("Secrets | summarize count() by Secret", None).await.unwrap().contains("DistributedExec"));
    let options = fimlake_kql::PlanOptions::default();
    let (_, mut stream) =
        engine.stream("Secrets | summarize count() by Secret", options, Duration::from_secs(60)).await.unwrap();
    let error = stream.next().await.unwrap().err().unwrap();
    assert!(error.to_string().contains("No suitable object store found for file://"), "{error}");
}
