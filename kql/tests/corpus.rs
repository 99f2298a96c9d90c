//! Conformance against what users paste: the 154 real public queries of
//! `shared/corpus/kql/public-queries.jsonl`, workbook placeholders substituted as Azure
//! Workbooks would. Prints the count and fails below the bar; every failure must be a precise
//! error, never a panic.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use fimlake_kql::TableList;

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/kql/public-queries.jsonl")
}

/// Replaces Azure Workbook parameters (`{TimeRange:query}`, `{Computer}`...) with values of the
/// right shape: `Microsoft/Application-Insights-Workbooks` Documentation/Parameters/Time.md.
fn substitute(q: &str) -> String {
    let mut out = String::new();
    let mut rest = q;
    while let Some(i) = rest.find('{') {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let Some(end) = after.find('}') else {
            out.push_str(after);
            return out;
        };
        let inner = &after[1..end];
        let is_param = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c));
        if !is_param {
            out.push('{');
            rest = &after[1..];
            continue;
        }
        let quoted = before.ends_with('\'') || before.ends_with('"');
        let field = inner.split(':').nth(1).unwrap_or("");
        let value = match field {
            "query" => "> ago(1d)".to_string(),
            "start" => "datetime(2024-05-01T00:00:00Z)".to_string(),
            "end" => "datetime(2024-05-02T00:00:00Z)".to_string(),
            "grain" => "1h".to_string(),
            _ if inner.ends_with("Criteria") => "1h".to_string(),
            _ if quoted => "value".to_string(),
            _ => "'value'".to_string(),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn corpus_queries_parse() {
    let text = std::fs::read_to_string(corpus_path()).expect("the shared KQL corpus");
    let mut ok = 0;
    let mut total = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap();
        let query = substitute(v["query"].as_str().unwrap());
        total += 1;
        match (fimlake_kql::parse(&query), EXPECTED_FAILURES.iter().find(|(i, _)| *i == id)) {
            (Ok(_), None) => ok += 1,
            (Ok(_), Some(_)) => failures.push(format!("{id}: parses now; remove it from EXPECTED_FAILURES")),
            (Err(e), Some((_, msg))) if e.to_string().starts_with(msg) => {}
            (Err(e), _) => failures.push(format!("{id}: {}", e.render())),
        }
    }
    println!("{ok} of {total} corpus queries parse");
    assert_eq!(total, 154);
    assert!(failures.is_empty(), "unexpected outcomes:\n{}", failures.join("\n\n"));
    assert!(ok >= BAR, "{ok} of {total} corpus queries parse; the bar is {BAR}");
}

/// Empty tables with the documented schemas of the three tables.
fn tables() -> TableList {
    let reg = fimlake_storage::TableRegistry::builtin();
    TableList(
        reg.tables()
            .iter()
            .map(|t| {
                let mem = MemTable::try_new(t.schema().clone(), vec![vec![]]).unwrap();
                (t.name().to_string(), Arc::new(mem) as Arc<dyn TableProvider>)
            })
            .collect(),
    )
}

/// How many corpus queries plan (and run, on empty tables). Prints every failure; the bar is a
/// ratchet that moves up as the planner grows.
#[tokio::test]
async fn corpus_queries_plan_and_run() {
    let text = std::fs::read_to_string(corpus_path()).expect("the shared KQL corpus");
    let catalog = tables();
    let mut planned = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap();
        let query = substitute(v["query"].as_str().unwrap());
        let Ok(q) = fimlake_kql::parse(&query) else { continue };
        match fimlake_kql::plan_query(&q, &query, &catalog, 1_714_564_800_000_000) {
            Ok(plan) => {
                let ctx = SessionContext::new();
                match ctx.execute_logical_plan(plan).await {
                    Ok(df) => match df.collect().await {
                        Ok(_) => planned += 1,
                        Err(e) => failures.push(format!("{id}: execution: {e}")),
                    },
                    Err(e) => failures.push(format!("{id}: optimisation: {e}")),
                }
            }
            Err(e) => failures.push(format!("{id}: {}", e.render())),
        }
    }
    for f in &failures {
        println!("{f}\n");
    }
    println!("{planned} of 154 corpus queries plan and run");
    assert!(planned >= PLAN_BAR, "{planned} corpus queries plan and run; the bar is {PLAN_BAR}");
}

const PLAN_BAR: usize = 103;

/// Ratchet: raise it as the parser grows (issue 3 asks for 140 that parse and plan).
const BAR: usize = 147;

/// Valid KQL that is not supported, and the error each must give.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    ("pq020-heartbeat", "the 'make-series' operator is not supported (line 12, column 3)"),
    ("pq021-heartbeat", "the 'make-series' operator is not supported (line 12, column 3)"),
    ("pq045-automation-tutorial-installed-software", "the 'search' operator is not supported (line 4, column 3)"),
    ("pq062-template", "the 'evaluate' operator is not supported (line 4, column 3)"),
    ("pq120-agent-health-overview", "the 'make-series' operator is not supported (line 16, column 3)"),
    ("pq121-agent-health-overview", "the 'make-series' operator is not supported (line 3, column 3)"),
    ("pq129-la-workspace-insights-agents", "the 'make-series' operator is not supported (line 29, column 3)"),
];
