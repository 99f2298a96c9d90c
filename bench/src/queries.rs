//! The hunting queries, in KQL for fimlake and in SQL for DuckDB over the same Parquet files,
//! run interleaved; both engines' answers are compared before any time is reported.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ingest::nearest_rank;
use crate::server::{ServerProcess, WORKSPACE};

pub struct Query {
    pub name: &'static str,
    pub kql: &'static str,
    pub sql: &'static str,
    /// A column whose sum must be the same in both answers (besides the row count).
    pub sum_of: Option<&'static str>,
    /// The query depends on the current time (`ago`): the two engines run it a few
    /// milliseconds apart, so their sums may differ by the records of those milliseconds.
    pub uses_now: bool,
}

/// The fixed set. Column names in the SQL match the KQL result's.
pub const QUERIES: &[Query] = &[
    Query {
        name: "files_path_contains",
        kql: r#"ConfigurationChange
| where ConfigChangeType == "Files" and FileSystemPath contains "SSHD"
| summarize Changes = count(), LastChange = max(TimeGenerated) by Computer, FileSystemPath"#,
        sql: r#"SELECT Computer, FileSystemPath, count(*) AS Changes, max(TimeGenerated) AS LastChange
FROM ConfigurationChange
WHERE ConfigChangeType = 'Files' AND FileSystemPath ILIKE '%SSHD%'
GROUP BY Computer, FileSystemPath"#,
        sum_of: Some("Changes"),
        uses_now: false,
    },
    Query {
        name: "count_by_computer",
        kql: "ConfigurationChange | summarize count() by Computer",
        sql: "SELECT Computer, count(*) AS count_ FROM ConfigurationChange GROUP BY Computer",
        sum_of: Some("count_"),
        uses_now: false,
    },
    Query {
        name: "hourly_7d",
        kql: "ConfigurationChange | where TimeGenerated > ago(7d) | summarize count() by bin(TimeGenerated, 1h)",
        sql: "SELECT date_trunc('hour', TimeGenerated) AS TimeGenerated, count(*) AS count_ FROM ConfigurationChange \
              WHERE TimeGenerated > now() - INTERVAL 7 DAY GROUP BY 1",
        sum_of: Some("count_"),
        uses_now: true,
    },
    Query {
        name: "heartbeat_latest",
        kql: "Heartbeat | summarize arg_max(TimeGenerated, *) by Computer",
        sql: "SELECT Computer, arg_max(COLUMNS(* EXCLUDE (Computer)), TimeGenerated) FROM Heartbeat GROUP BY Computer",
        sum_of: None,
        uses_now: false,
    },
    Query {
        name: "top_100",
        kql: "ConfigurationChange | top 100 by TimeGenerated",
        sql: "SELECT * FROM ConfigurationChange ORDER BY TimeGenerated DESC LIMIT 100",
        sum_of: None,
        uses_now: false,
    },
    Query {
        name: "last_hour",
        kql: "ConfigurationChange | where TimeGenerated > ago(1h) | summarize count() by Computer, ChangeCategory",
        sql: "SELECT Computer, ChangeCategory, count(*) AS count_ FROM ConfigurationChange \
              WHERE TimeGenerated > now() - INTERVAL 1 HOUR GROUP BY Computer, ChangeCategory",
        sum_of: Some("count_"),
        uses_now: true,
    },
    Query {
        name: "join_changes_heartbeats",
        kql: r#"ConfigurationChange
| where TimeGenerated > ago(1d) and ConfigChangeType == "Files"
| summarize Changes = count() by Computer
| join kind=inner (Heartbeat | where TimeGenerated > ago(1d) | summarize LastHeartbeat = max(TimeGenerated), Version = any(Version) by Computer) on Computer
| project Computer, Changes, LastHeartbeat, Version"#,
        sql: r#"WITH c AS (
  SELECT Computer, count(*) AS Changes FROM ConfigurationChange
  WHERE TimeGenerated > now() - INTERVAL 1 DAY AND ConfigChangeType = 'Files' GROUP BY Computer),
h AS (
  SELECT Computer, max(TimeGenerated) AS LastHeartbeat, any_value(Version) AS Version FROM Heartbeat
  WHERE TimeGenerated > now() - INTERVAL 1 DAY GROUP BY Computer)
SELECT c.Computer, Changes, LastHeartbeat, Version FROM c JOIN h ON c.Computer = h.Computer"#,
        sum_of: Some("Changes"),
        uses_now: true,
    },
    Query {
        name: "dcount_paths",
        kql: r#"ConfigurationChange | where ConfigChangeType == "Files" | summarize dcount(FileSystemPath) by Computer"#,
        sql: "SELECT Computer, count(DISTINCT FileSystemPath) AS dcount_FileSystemPath FROM ConfigurationChange \
              WHERE ConfigChangeType = 'Files' GROUP BY Computer",
        sum_of: Some("dcount_FileSystemPath"),
        uses_now: false,
    },
    Query {
        name: "dcount_beside_count",
        kql: r#"ConfigurationChange | summarize Changes = count(), Paths = dcount(FileSystemPath) by Computer"#,
        // Kusto's strings are never null: a change without a path has the path "", a value.
        sql: "SELECT Computer, count(*) AS Changes, count(DISTINCT coalesce(FileSystemPath, '')) AS Paths \
              FROM ConfigurationChange GROUP BY Computer",
        sum_of: Some("Paths"),
        uses_now: false,
    },
    Query {
        name: "has_term_top",
        kql: r#"ConfigurationChange | where FileSystemPath has "nginx" | top 50 by TimeGenerated desc"#,
        sql: "SELECT * FROM ConfigurationChange \
              WHERE regexp_matches(FileSystemPath, '(?i)(^|[^a-z0-9])nginx([^a-z0-9]|$)') \
              ORDER BY TimeGenerated DESC LIMIT 50",
        sum_of: None,
        uses_now: false,
    },
    Query {
        name: "dcount_computers_by_path",
        kql: r#"ConfigurationChange | where ConfigChangeType == "Files" | summarize Computers = dcount(Computer) by FileSystemPath"#,
        sql: "SELECT FileSystemPath, count(DISTINCT Computer) AS Computers FROM ConfigurationChange \
              WHERE ConfigChangeType = 'Files' GROUP BY FileSystemPath",
        sum_of: Some("Computers"),
        uses_now: false,
    },
    Query {
        name: "path_startswith",
        kql: r#"ConfigurationChange | where FileSystemPath startswith "/etc/ssh" | summarize count() by Computer"#,
        sql: "SELECT Computer, count(*) AS count_ FROM ConfigurationChange \
              WHERE FileSystemPath ILIKE '/etc/ssh%' GROUP BY Computer",
        sum_of: Some("count_"),
        uses_now: false,
    },
    Query {
        name: "sort_two_columns_take",
        kql: "ConfigurationChange | sort by Computer asc, TimeGenerated desc | take 100",
        sql: "SELECT * FROM ConfigurationChange ORDER BY Computer ASC, TimeGenerated DESC LIMIT 100",
        sum_of: None,
        uses_now: false,
    },
    Query {
        name: "summarize_two_keys",
        kql: "ConfigurationChange | summarize count() by Computer, ChangeCategory",
        sql: "SELECT Computer, ChangeCategory, count(*) AS count_ FROM ConfigurationChange GROUP BY Computer, ChangeCategory",
        sum_of: Some("count_"),
        uses_now: false,
    },
    Query {
        name: "join_latest_heartbeat",
        kql: r#"ConfigurationChange
| where ChangeCategory == "Removed"
| join kind=inner (Heartbeat | summarize arg_max(TimeGenerated, ComputerIP) by Computer) on Computer
| summarize Removed = count() by Computer, ComputerIP"#,
        sql: r#"WITH h AS (SELECT Computer, arg_max(ComputerIP, TimeGenerated) AS ComputerIP FROM Heartbeat GROUP BY Computer)
SELECT c.Computer, h.ComputerIP, count(*) AS Removed
FROM ConfigurationChange c JOIN h ON c.Computer = h.Computer
WHERE c.ChangeCategory = 'Removed'
GROUP BY c.Computer, h.ComputerIP"#,
        sum_of: Some("Removed"),
        uses_now: false,
    },
];

/// One engine's answer: time, rows, numeric column sums.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ms: f64,
    pub rows: u64,
    pub sums: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryResult {
    pub name: String,
    pub kql: String,
    pub sql: String,
    pub rows: u64,
    pub runs: usize,
    pub fimlake_median_ms: f64,
    pub fimlake_p95_ms: f64,
    pub duckdb_median_ms: f64,
    pub duckdb_p95_ms: f64,
    /// fimlake's median over DuckDB's.
    pub ratio: f64,
}

/// A DuckDB process (the harness's Python runner) with views over the Delta tables' files.
pub struct DuckDb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub version: String,
    pub threads: String,
    pub files: BTreeMap<String, u64>,
}

impl DuckDb {
    pub fn start(python: &Path, work: &Path, tables: &[(&str, &Path)]) -> anyhow::Result<DuckDb> {
        let script = work.join("duckdb_runner.py");
        std::fs::write(&script, include_str!("duckdb_runner.py"))?;
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (the Python with duckdb and deltalake)", python.display()))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut d =
            DuckDb { child, stdin, stdout, version: String::new(), threads: String::new(), files: BTreeMap::new() };
        let t: serde_json::Map<String, Value> =
            tables.iter().map(|(n, p)| (n.to_string(), json!(p.display().to_string()))).collect();
        let reply = d.call(&json!({"op": "open", "tables": t}))?;
        d.version = reply["version"].as_str().unwrap_or_default().to_string();
        d.threads = reply["threads"].to_string();
        d.files = serde_json::from_value(reply["files"].clone())?;
        Ok(d)
    }

    fn call(&mut self, req: &Value) -> anyhow::Result<Value> {
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the DuckDB runner exited (see its error above)");
        }
        let v: Value = serde_json::from_str(&line).context("the DuckDB runner's answer")?;
        if let Some(e) = v.get("error") {
            bail!("DuckDB: {}", e.as_str().unwrap_or_default());
        }
        Ok(v)
    }

    pub fn run(&mut self, sql: &str) -> anyhow::Result<Answer> {
        let v = self.call(&json!({"op": "run", "sql": sql}))?;
        Ok(Answer {
            ms: v["ms"].as_f64().unwrap_or_default(),
            rows: v["rows"].as_u64().unwrap_or_default(),
            sums: serde_json::from_value(v["sums"].clone()).unwrap_or_default(),
        })
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kql` through the server's query API; the time is from sending the request to having
/// read the whole answer.
pub async fn run_fimlake(client: &reqwest::Client, server: &ServerProcess, kql: &str) -> anyhow::Result<Answer> {
    let url = format!("{}/v1/workspaces/{WORKSPACE}/query", server.url);
    let start = Instant::now();
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({ "query": kql }).to_string())
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let v: Value = serde_json::from_slice(&body).context("the query answer is not JSON")?;
    if !status.is_success() || v.get("error").is_some() {
        bail!("fimlake answered {status}: {v}");
    }
    let table = &v["tables"][0];
    let rows = table["rows"].as_array().context("no rows in the answer")?;
    let mut sums = BTreeMap::new();
    for (i, c) in table["columns"].as_array().into_iter().flatten().enumerate() {
        if matches!(c["type"].as_str(), Some("long" | "int" | "real")) {
            let s: f64 = rows.iter().filter_map(|r| r[i].as_f64()).sum();
            sums.insert(c["name"].as_str().unwrap_or_default().to_string(), s);
        }
    }
    Ok(Answer { ms, rows: rows.len() as u64, sums })
}

/// Checks that both engines (or nodes), named by `names`, gave the same answer to `q`.
pub fn compare(q: &Query, ours: &Answer, theirs: &Answer, names: [&str; 2]) -> anyhow::Result<()> {
    let [a_name, b_name] = names;
    let close = |a: f64, b: f64| {
        if q.uses_now { (a - b).abs() <= (a.abs().max(b.abs()) * 0.001).max(2.0) } else { a == b }
    };
    if !close(ours.rows as f64, theirs.rows as f64) {
        bail!("{}: {a_name} returned {} rows, {b_name} {}", q.name, ours.rows, theirs.rows);
    }
    if let Some(col) = q.sum_of {
        let (a, b) = (ours.sums.get(col), theirs.sums.get(col));
        let (Some(a), Some(b)) = (a, b) else {
            bail!(
                "{}: column {col} missing from an answer ({a_name} {:?}, {b_name} {:?})",
                q.name,
                ours.sums,
                theirs.sums
            );
        };
        if !close(*a, *b) {
            bail!("{}: sum of {col} is {a} in {a_name} and {b} in {b_name}", q.name);
        }
    }
    Ok(())
}

/// Runs every query `rounds` times on both engines, interleaved (alternating which goes first),
/// after one untimed run of each that also compares the answers.
pub async fn run_all(
    server: &ServerProcess,
    duck: &mut DuckDb,
    rounds: usize,
    log: &dyn Fn(&str),
) -> anyhow::Result<Vec<QueryResult>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let mut times: Vec<(Vec<f64>, Vec<f64>, u64)> = Vec::new();
    for q in QUERIES {
        let ours = run_fimlake(&client, server, q.kql).await.with_context(|| format!("query {}", q.name))?;
        let theirs = duck.run(q.sql).with_context(|| format!("query {}", q.name))?;
        compare(q, &ours, &theirs, ["fimlake", "DuckDB"])?;
        log(&format!("  {}: {} rows, same answer in both", q.name, ours.rows));
        times.push((Vec::new(), Vec::new(), ours.rows));
    }
    for round in 0..rounds {
        for (q, t) in QUERIES.iter().zip(times.iter_mut()) {
            let (ours, theirs) = if round % 2 == 0 {
                let a = run_fimlake(&client, server, q.kql).await?;
                (a, duck.run(q.sql)?)
            } else {
                let b = duck.run(q.sql)?;
                (run_fimlake(&client, server, q.kql).await?, b)
            };
            t.0.push(ours.ms);
            t.1.push(theirs.ms);
        }
    }
    Ok(QUERIES
        .iter()
        .zip(times)
        .map(|(q, (ours, theirs, rows))| {
            let (om, op) = stats(ours);
            let (dm, dp) = stats(theirs);
            QueryResult {
                name: q.name.into(),
                kql: q.kql.into(),
                sql: q.sql.into(),
                rows,
                runs: rounds,
                fimlake_median_ms: om,
                fimlake_p95_ms: op,
                duckdb_median_ms: dm,
                duckdb_p95_ms: dp,
                ratio: if dm > 0.0 { om / dm } else { 0.0 },
            }
        })
        .collect())
}

/// The median of `values` (0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Median and nearest-rank p95 of times in milliseconds.
fn stats(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let p95 = nearest_rank(&ms, 0.95).unwrap_or(0.0);
    (median(ms), p95)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["fimlake", "DuckDB"];

    fn answer(rows: u64, sum: f64) -> Answer {
        Answer { ms: 1.0, rows, sums: [("n".to_string(), sum)].into() }
    }

    #[test]
    fn answers_must_agree_exactly_unless_the_query_reads_the_clock() {
        let mut q = Query { name: "q", kql: "", sql: "", sum_of: Some("n"), uses_now: false };
        assert!(compare(&q, &answer(3, 10.0), &answer(3, 10.0), NAMES).is_ok());
        assert!(compare(&q, &answer(3, 10.0), &answer(4, 10.0), NAMES).unwrap_err().to_string().contains("rows"));
        assert!(compare(&q, &answer(3, 10.0), &answer(3, 11.0), NAMES).unwrap_err().to_string().contains("sum of n"));
        q.uses_now = true;
        assert!(compare(&q, &answer(3, 10_000.0), &answer(3, 10_002.0), NAMES).is_ok());
        assert!(compare(&q, &answer(3, 10_000.0), &answer(3, 10_500.0), NAMES).is_err());
    }

    #[test]
    fn stats_are_median_and_p95() {
        assert_eq!(stats(vec![3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(stats(vec![4.0, 1.0, 2.0, 3.0]).0, 2.5);
    }
}
