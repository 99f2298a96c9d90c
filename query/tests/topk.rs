//! `top N by TimeGenerated` over a wide table runs in two passes (`query/src/topk.rs`): the
//! first finds the N-th time reading the key alone, the second reads the rows at or past it.
//! The answers are those of the plain top-k, ties, nulls and short tables included.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use fimlake_query::QueryEngine;

const EXTRA_COLUMNS: usize = 10;

/// A table of `TimeGenerated`, `Computer` (`c<i>`) and ten more string columns, one row per time.
fn wide_table(times: &[Option<i64>]) -> Arc<dyn TableProvider> {
    let mut fields = vec![
        Field::new("TimeGenerated", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("Computer", DataType::Utf8, true),
    ];
    fields.extend((0..EXTRA_COLUMNS).map(|i| Field::new(format!("Extra{i}"), DataType::Utf8, true)));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
        Arc::new(StringArray::from((0..times.len()).map(|i| format!("c{i}")).collect::<Vec<_>>())),
    ];
    columns.extend((0..EXTRA_COLUMNS).map(|_| new_null_array(&DataType::Utf8, times.len())));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

fn engine(times: &[Option<i64>]) -> QueryEngine {
    QueryEngine::over(vec![("Wide".to_string(), wide_table(times))], &fimlake_query::QueryConfig::default())
}

/// The answer's `Computer`s and times, in the answer's order.
async fn run(engine: &QueryEngine, query: &str) -> Vec<(String, Option<i64>)> {
    let result = engine.run(query, None, Duration::from_secs(30)).await.unwrap();
    let batch = arrow::compute::concat_batches(&result.schema, &result.batches).unwrap();
    let computers = batch.column_by_name("Computer").unwrap().as_string::<i32>();
    let times = batch.column_by_name("TimeGenerated").unwrap().as_primitive::<TimestampMicrosecondType>();
    (0..batch.num_rows()).map(|i| (computers.value(i).to_string(), times.is_valid(i).then(|| times.value(i)))).collect()
}

const HOUR: i64 = 3_600_000_000;

#[tokio::test]
async fn the_newest_rows_are_found_through_a_threshold_on_time() {
    let times: Vec<Option<i64>> = (0..50).map(|h| Some(h * HOUR)).collect();
    let engine = engine(&times);
    let plan = engine.explain("Wide | top 3 by TimeGenerated desc", None).await.unwrap();
    assert!(plan.contains("TimeGenerated@0 >= 169200000000"), "the third newest time (47 h) bounds the scan:\n{plan}");
    let got = run(&engine, "Wide | top 3 by TimeGenerated desc").await;
    let expected = [("c49", 49), ("c48", 48), ("c47", 47)].map(|(c, h)| (c.to_string(), Some(h * HOUR)));
    assert_eq!(got, expected);
    let oldest = run(&engine, "Wide | where Computer != 'c0' | sort by TimeGenerated asc | take 2").await;
    assert_eq!(oldest, [("c1".to_string(), Some(HOUR)), ("c2".to_string(), Some(2 * HOUR))], "ascending, filtered");
}

#[tokio::test]
async fn a_filtered_history_of_a_few_columns_is_found_through_a_threshold_too() {
    // The console's history of an item: a filter, a handful of columns, the newest first.
    let times: Vec<Option<i64>> = (0..50).map(|h| Some(h * HOUR)).collect();
    let engine = engine(&times);
    let query = "Wide | where Computer startswith 'c1' | project TimeGenerated, Computer, Extra0, Extra1, Extra2 \
                 | sort by TimeGenerated desc | take 3";
    let plan = engine.explain(query, None).await.unwrap();
    assert!(plan.contains("TimeGenerated@0 >= 61200000000"), "the third newest match (17 h) bounds the scan:\n{plan}");
    let got = run(&engine, query).await;
    let expected = [("c19", 19), ("c18", 18), ("c17", 17)].map(|(c, h)| (c.to_string(), Some(h * HOUR)));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn fewer_rows_than_asked_for_are_bounded_by_the_last_and_none_is_read_again() {
    let times: Vec<Option<i64>> = (0..50).map(|h| Some(h * HOUR)).collect();
    let engine = engine(&times);
    let history = |computer: &str| {
        format!(
            "Wide | where Computer == '{computer}' | project TimeGenerated, Computer, Extra0, Extra1, Extra2 \
             | sort by TimeGenerated desc | take 3"
        )
    };
    let one = engine.explain(&history("c7"), None).await.unwrap();
    assert!(one.contains("TimeGenerated@0 >= 25200000000"), "the only match (7 h) bounds the scan:\n{one}");
    assert_eq!(run(&engine, &history("c7")).await, [("c7".to_string(), Some(7 * HOUR))]);
    let none = engine.explain(&history("nobody"), None).await.unwrap();
    assert!(!none.contains("DataSourceExec"), "no match: nothing is read again:\n{none}");
    assert!(run(&engine, &history("nobody")).await.is_empty());
}

#[tokio::test]
async fn fewer_rows_than_asked_for_with_a_null_key_take_the_plain_top_k() {
    let engine = engine(&[Some(3 * HOUR), None, Some(HOUR)]);
    let query = "Wide | where Computer != 'c0' | project TimeGenerated, Computer, Extra0, Extra1, Extra2 \
                 | sort by TimeGenerated desc | take 5";
    let plan = engine.explain(query, None).await.unwrap();
    assert!(!plan.contains("TimeGenerated@0 >="), "a null key is in the answer: no bound:\n{plan}");
    assert_eq!(run(&engine, query).await, [("c2".to_string(), Some(HOUR)), ("c1".to_string(), None)]);
}

#[tokio::test]
async fn rows_tied_with_the_last_one_are_kept_as_candidates() {
    // Three rows share the second newest time: a top 2 takes the newest and one of the three.
    let times = [Some(5 * HOUR), Some(9 * HOUR), Some(9 * HOUR), Some(10 * HOUR), Some(9 * HOUR), Some(HOUR)];
    let engine = engine(&times);
    let got = run(&engine, "Wide | top 2 by TimeGenerated desc").await;
    assert_eq!(got[0], ("c3".to_string(), Some(10 * HOUR)));
    assert_eq!(got[1].1, Some(9 * HOUR));
    assert!(["c1", "c2", "c4"].contains(&got[1].0.as_str()), "{got:?}");
}

#[tokio::test]
async fn nulls_and_short_tables_take_the_plain_top_k() {
    // Ascending puts nulls first: the first pass finds a null among the first two, so no bound.
    let engine = engine(&[Some(3 * HOUR), None, Some(HOUR), Some(2 * HOUR)]);
    let got = run(&engine, "Wide | sort by TimeGenerated asc nulls first | take 2").await;
    assert_eq!(got, [("c1".to_string(), None), ("c2".to_string(), Some(HOUR))]);
    let plan = engine.explain("Wide | sort by TimeGenerated asc nulls first | take 2", None).await.unwrap();
    assert!(!plan.contains("TimeGenerated@0 <="), "no bound when a null is among the first:\n{plan}");
    // Descending puts nulls last: the three non-null times are the top 3.
    let got = run(&engine, "Wide | top 3 by TimeGenerated desc").await;
    assert_eq!(got.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["c0", "c3", "c2"]);
    // More rows asked for than the table has non-null times: every row, nulls last.
    let got = run(&engine, "Wide | top 10 by TimeGenerated desc").await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[3], ("c1".to_string(), None));
}

#[tokio::test]
async fn narrow_queries_and_other_keys_are_left_alone() {
    let times: Vec<Option<i64>> = (0..20).map(|h| Some(h * HOUR)).collect();
    let engine = engine(&times);
    let narrow = engine.explain("Wide | project TimeGenerated, Computer | top 3 by TimeGenerated", None).await.unwrap();
    assert!(!narrow.contains(">= 1970"), "two columns are read whole in one pass:\n{narrow}");
    let computed = engine.explain("Wide | top 3 by TimeGenerated + 1h", None).await.unwrap();
    assert!(!computed.contains(">= 1970"), "a computed key has no column to bound:\n{computed}");
    let got = run(&engine, "Wide | extend Later = TimeGenerated + 1h | top 2 by Later desc").await;
    assert_eq!(got.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["c19", "c18"]);
}

/// Whether `plan` (indented) evaluates `predicate` in a `FilterExec` over rows decoded from
/// Parquet files, rather than inside the Parquet decoder (the other columns decoded for the
/// matching rows only). The buffered rows' scan is filtered by a `FilterExec`: it decodes nothing.
fn filtered_after_decoding(plan: &str, predicate: &str) -> bool {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let lines: Vec<&str> = plan.lines().collect();
    let reads_parquet = |i: usize| {
        let mut below = lines[i + 1..].iter().take_while(|line| indent(line) > indent(lines[i]));
        below.any(|line| line.contains(".parquet"))
    };
    let filters = |i: usize| lines[i].trim_start().starts_with("FilterExec") && lines[i].contains(predicate);
    (0..lines.len()).any(|i| filters(i) && reads_parquet(i))
}

#[tokio::test]
async fn over_stored_files_and_buffered_rows_the_bound_reaches_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let schema = hb.def().schema().clone();
    let now = chrono::Utc::now().timestamp_micros();
    // Three flushes of five hours each, then two rows newer than all of them left in the buffer.
    for (hours_back, rows, computer) in [(30, 5, "h30"), (20, 5, "h20"), (10, 5, "h10"), (1, 2, "h1")] {
        let times: Vec<i64> = (0..rows).map(|i| now - (hours_back + i) * HOUR).collect();
        hb.append(common::heartbeats(&schema, &times, |_| computer)).await.unwrap();
        if hours_back > 1 {
            hb.flush().await.unwrap();
        }
    }
    assert_eq!(hb.snapshot().buffered_rows(), 2);
    let engine = QueryEngine::new(storage, &fimlake_query::QueryConfig::default());
    let expected: Vec<i64> = [1, 2, 10].map(|h| now - h * HOUR).to_vec();
    let plan = engine.explain("Heartbeat | top 3 by TimeGenerated desc", None).await.unwrap();
    let bound = format!("TimeGenerated@1 >= {}", expected[2]);
    assert!(plan.contains(&bound), "the scan is bounded by the third newest time:\n{plan}");
    assert!(!filtered_after_decoding(&plan, &bound), "the decoder keeps the rows within the bound:\n{plan}");
    let all = engine.explain("Heartbeat | project TimeGenerated", None).await.unwrap();
    let files = |plan: &str| plan.matches(".parquet").count();
    assert!(files(&plan) < files(&all) / 2, "{} of {} files read:\n{plan}", files(&plan), files(&all));
    let got = run(&engine, "Heartbeat | top 3 by TimeGenerated desc").await;
    let newest = ["h1", "h1", "h10"].iter().zip(&expected).map(|(c, t)| (c.to_string(), Some(*t)));
    assert_eq!(got, newest.collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rare_items_rows_are_read_through_ranges_of_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open(dir.path()).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let schema = hb.def().schema().clone();
    let now = chrono::Utc::now().timestamp_micros();
    // A busy machine every hour for two days; a rare one 40 and 3 hours ago.
    let busy: Vec<i64> = (1..=48).map(|h| now - h * HOUR - 1).collect();
    hb.append(common::heartbeats(&schema, &busy, |_| "busy")).await.unwrap();
    let (recent, old) = (now - 3 * HOUR, now - 40 * HOUR);
    hb.append(common::heartbeats(&schema, &[recent, old], |_| "rare")).await.unwrap();
    hb.flush().await.unwrap();
    let engine = QueryEngine::new(storage, &fimlake_query::QueryConfig::default());
    let query = "Heartbeat | where Computer == 'rare' | project TimeGenerated, Computer, OSType, OSName, Category \
                 | sort by TimeGenerated desc | take 10";
    let plan = engine.explain(query, None).await.unwrap();
    for bound in [format!(">= {old} AND"), format!(">= {recent} OR"), format!("<= {old} AND")] {
        assert!(plan.contains(&bound), "two ranges, one around each time, bound the scan ({bound}):\n{plan}");
    }
    assert_eq!(run(&engine, query).await, [("rare".to_string(), Some(recent)), ("rare".to_string(), Some(old))]);
    let none = engine.explain(&query.replace("'rare'", "'nobody'"), None).await.unwrap();
    assert!(!none.contains("DataSourceExec"), "no match: nothing is read again:\n{none}");
}
