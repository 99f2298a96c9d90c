//! Ingestion-time windows (`PlanOptions::ingestion_range`): consecutive windows `[a, b)`,
//! `[b, c)` see every record exactly once, a record received exactly at `b` in the second, and
//! a record generated long before it was received in the window of its arrival.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use fimlake_kql::{PlanOptions, TableList, parse, plan_query_with};

const MIN: i64 = 60_000_000;

fn table() -> TableList {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("Name", DataType::Utf8, true),
        Field::new("TimeGenerated", ts(), true),
        Field::new("_TimeReceived", ts(), true),
    ]));
    // (name, generated, received) in minutes.
    let rows = [("early", 0, 1), ("edge", 5, 10), ("late", -600, 12), ("last", 19, 19)];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1 * MIN).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.2 * MIN).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let t: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
    TableList(vec![("T".into(), t)])
}

async fn names(window: (i64, i64)) -> Vec<String> {
    let q = "T | sort by Name asc | project Name";
    let plan = plan_query_with(
        &parse(q).unwrap(),
        q,
        &table(),
        &PlanOptions { ingestion_range: Some((window.0 * MIN, window.1 * MIN)), ..PlanOptions::default() },
    )
    .unwrap();
    let batches = SessionContext::new().execute_logical_plan(plan).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        out.extend(a.iter().map(|v| v.unwrap().to_string()));
    }
    out
}

#[tokio::test]
async fn consecutive_ingestion_windows_see_each_record_once() {
    assert_eq!(names((0, 10)).await, ["early"]);
    assert_eq!(names((10, 20)).await, ["edge", "last", "late"]);
    assert_eq!(names((20, 30)).await, Vec::<String>::new());
}
