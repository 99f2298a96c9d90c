//! A stored table's strings are scanned as `Utf8View` (`TableDef::scan_schema`) and answered as
//! `Utf8`, with their Kusto types: committed and buffered rows alike, and mixed with strings the
//! query makes itself (a `datatable`, `strcat`) in unions, joins and searches.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use arrow::datatypes::DataType;
use common::open;
use fimlake_kusto::KustoType;
use fimlake_query::{QueryEngine, QueryResult};

/// Heartbeats of `computers`, one an hour back from now each, with a property bag.
fn heartbeats(schema: &arrow::datatypes::SchemaRef, computers: &[&str]) -> RecordBatch {
    let now = chrono::Utc::now().timestamp_micros();
    let rows = computers.len();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => {
                let times: Vec<i64> = (1..=rows as i64).map(|h| now - h * 3_600_000_000).collect();
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")) as ArrayRef
            }
            "Computer" => Arc::new(StringArray::from(computers.to_vec())),
            "AdditionalFields" => Arc::new(StringArray::from(vec![r#"{"Site":"north"}"#; rows])),
            _ => new_null_array(f.data_type(), rows),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), cols).unwrap()
}

async fn run(engine: &QueryEngine, query: &str) -> RecordBatch {
    let QueryResult { schema, batches, .. } = engine.run(query, None, Duration::from_secs(30)).await.unwrap();
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

/// The column's strings, sorted; the column must be plain `Utf8`.
fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let column = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    assert_eq!(column.data_type(), &DataType::Utf8, "{name} is answered as Utf8");
    let mut out: Vec<String> = column.as_string::<i32>().iter().map(|v| v.unwrap_or("<null>").to_string()).collect();
    out.sort();
    out
}

/// Storage with two heartbeats committed to a file and one still buffered.
async fn engine(dir: &std::path::Path) -> QueryEngine {
    let storage = open(dir).await;
    let hb = storage.table("Heartbeat").unwrap().clone();
    let schema = hb.def().schema().clone();
    hb.append(heartbeats(&schema, &["web-01", "db-02"])).await.unwrap();
    hb.flush().await.unwrap();
    hb.append(heartbeats(&schema, &["web-03"])).await.unwrap();
    assert_eq!(hb.snapshot().buffered_rows(), 1);
    QueryEngine::new(storage, &fimlake_query::QueryConfig::default())
}

#[tokio::test]
async fn stored_strings_are_read_as_views_and_answered_as_utf8_with_their_kusto_types() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let plan = engine.explain("Heartbeat | project Computer", None).await.unwrap();
    assert!(plan.contains(" AS Utf8) as Computer"), "the scan's views are cast for the answer:\n{plan}");

    let batch =
        run(&engine, "Heartbeat | project Computer, AdditionalFields, Site = tostring(AdditionalFields.Site)").await;
    assert_eq!(strings(&batch, "Computer"), ["db-02", "web-01", "web-03"], "the file's rows and the buffered one");
    assert_eq!(strings(&batch, "Site"), ["north"; 3], "a dynamic column's properties read through its views");
    let types: Vec<KustoType> = batch.schema().fields().iter().map(|f| KustoType::of_field(f)).collect();
    assert_eq!(types, [KustoType::String, KustoType::Dynamic, KustoType::String]);
}

#[tokio::test]
async fn stored_strings_mix_with_the_strings_a_query_makes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let union = run(&engine, r#"union Heartbeat, (datatable(Computer:string)["z-09"]) | project Computer"#).await;
    assert_eq!(strings(&union, "Computer"), ["db-02", "web-01", "web-03", "z-09"]);

    let join = r#"Heartbeat
        | join kind=inner (datatable(Computer:string, Owner:string)["web-01", "ops", "web-03", "dev"]) on Computer
        | project Computer, Owner"#;
    assert_eq!(strings(&run(&engine, join).await, "Owner"), ["dev", "ops"]);

    let made = run(&engine, r#"Heartbeat | extend Name = strcat(Computer, ".corp") | where Name has "corp""#).await;
    assert_eq!(strings(&made, "Name"), ["db-02.corp", "web-01.corp", "web-03.corp"]);

    let searched = run(&engine, r#"Heartbeat | where Computer contains "WEB" | summarize by Computer"#).await;
    assert_eq!(strings(&searched, "Computer"), ["web-01", "web-03"]);

    let counted = run(&engine, "Heartbeat | summarize Computers = dcount(Computer), Last = max(Computer)").await;
    assert_eq!(strings(&counted, "Last"), ["web-03"]);

    // A count reads no column of the buffered rows, yet counts them.
    let rows = run(&engine, "Heartbeat | count").await;
    assert_eq!(rows.column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0), 3);
}
