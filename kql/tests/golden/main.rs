//! KQL golden tests: every `*.kqlt` file under `tests/golden/` is a list of queries with their
//! expected columns and rows (or syntax tree, or error); see `records.rs` for the format.
//! Queries run through the real parser and planner on DataFusion, with `now()` fixed at
//! 2024-05-01T12:00:00Z.
//!
//! `UPDATE_EXPECT=1 cargo test -p fimlake-kql --test golden` rewrites the expected blocks from
//! what the queries give now; review the diff before committing it.

mod records;

use std::path::{Path, PathBuf};

use arrow::array::{Array, RecordBatch};
use datafusion::prelude::SessionContext;
use fimlake_kql::{KqlError, TableList, parse, plan_query, session_state, sexpr};
use fimlake_kusto::KustoType;
use records::{Kind, Record};

/// 2024-05-01T12:00:00Z
const NOW_US: i64 = 1_714_564_800_000_000;

#[tokio::test]
async fn golden_files() {
    #[allow(clippy::disallowed_methods, reason = "a test switch, read where the test starts")]
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in golden_files_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")) {
        let content = std::fs::read_to_string(&path).unwrap();
        let records = records::read(&content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actual = run_file(&records).await;
        for (record, output) in records.iter().zip(&actual) {
            if record.kind != Kind::Statement {
                cases += 1;
                if *output != record.expected {
                    failures.push(mismatch(&path, record, output));
                }
            }
        }
        if update && failures.iter().any(|f: &String| f.starts_with(&path.display().to_string())) {
            std::fs::write(&path, records::rewrite(&content, &records, &actual)).unwrap();
        }
    }
    println!("{cases} golden cases");
    assert!(cases > 0, "no golden cases found");
    if update {
        println!("UPDATE_EXPECT=1: rewrote the expected output of {} case(s)", failures.len());
    } else {
        assert!(failures.is_empty(), "{} golden case(s) differ:\n\n{}", failures.len(), failures.join("\n\n"));
    }
}

fn golden_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kqlt"))
        .collect();
    files.sort();
    files
}

fn mismatch(path: &Path, record: &Record, output: &[String]) -> String {
    format!(
        "{}:{}\n{}\n--- expected\n{}\n--- actual\n{}",
        path.display(),
        record.line,
        record.text,
        record.expected.join("\n"),
        output.join("\n")
    )
}

/// Each record's output, in order; statements output nothing and prefix the later records.
async fn run_file(records: &[Record]) -> Vec<Vec<String>> {
    let mut prefix = String::new();
    let mut outputs = Vec::new();
    for record in records {
        let output = match record.kind {
            Kind::Statement => {
                prefix.push_str(&record.text);
                prefix.push('\n');
                Vec::new()
            }
            Kind::Parse => parse_output(&record.text),
            Kind::Query { rowsort } => query_output(&prefix, &record.text, rowsort).await,
        };
        // Trailing blanks are not kept in the files.
        outputs.push(output.into_iter().map(|line| line.trim_end().to_string()).collect());
    }
    outputs
}

fn parse_output(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(query) => vec![sexpr::query(&query)],
        Err(e) => vec![error_line(&e, 0)],
    }
}

async fn query_output(prefix: &str, text: &str, rowsort: bool) -> Vec<String> {
    let full = format!("{prefix}{text}");
    let prefix_lines = prefix.matches('\n').count();
    let plan = match parse(&full).and_then(|q| plan_query(&q, &full, &TableList::default(), NOW_US)) {
        Ok(plan) => plan,
        Err(e) => return vec![error_line(&e, prefix_lines)],
    };
    let header = plan
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), KustoType::of_field(f)))
        .collect::<Vec<_>>()
        .join(" | ");
    // The optimizer rules fimlake's query engine runs, KQL's own among them.
    let ctx = SessionContext::new_with_state(session_state().build());
    let batches = match ctx.execute_logical_plan(plan).await {
        Ok(frame) => frame.collect().await,
        Err(e) => Err(e),
    };
    let mut rows = match batches {
        Ok(batches) => rows_of(&batches),
        Err(e) => return vec![format!("error: execution: {}", e.to_string().replace('\n', " "))],
    };
    if rowsort {
        rows.sort();
    }
    std::iter::once(header).chain(rows).collect()
}

fn error_line(e: &KqlError, prefix_lines: usize) -> String {
    let line = e.line.saturating_sub(prefix_lines);
    format!("error: {:?} at {line}:{}: {}", e.kind, e.column, e.message.replace('\n', " "))
}

/// Rows as text: cells joined by ` | `, null as `null`, an empty string as `""`.
fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch.columns().iter().map(|column| cell(column.as_ref(), row)).collect();
            rows.push(cells.join(" | "));
        }
    }
    rows
}

fn cell(column: &dyn Array, row: usize) -> String {
    if column.is_null(row) {
        return "null".to_string();
    }
    let text = arrow::util::display::array_value_to_string(column, row).unwrap();
    if text.is_empty() { "\"\"".to_string() } else { text }
}

#[tokio::test]
async fn a_wrong_expectation_is_a_mismatch_and_update_rewrites_only_the_expected_block() {
    let content = "# a comment\nquery\nprint x = 1\n----\nx:long\n2\n\nparse\nT | take 1\n----\n(T (take 1))\n";
    let records = records::read(content).unwrap();
    let actual = run_file(&records).await;
    assert_eq!(actual[0], ["x:long", "1"]);
    assert_ne!(actual[0], records[0].expected);
    assert_eq!(actual[1], records[1].expected);
    let rewritten = records::rewrite(content, &records, &actual);
    assert_eq!(rewritten, content.replace("x:long\n2", "x:long\n1"));
    assert!(records::read("querry\nprint 1\n----\n").unwrap_err().contains("line 1"));
}
