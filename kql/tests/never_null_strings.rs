//! The `kql_never_null_strings` optimizer rule (`kql/src/optimize/never_null_strings.rs`): a
//! filter reads a string column plainly, without the `coalesce(column, '')` Kusto's never-null
//! strings add, exactly when that keeps the same rows. Each query runs on a table whose strings
//! are values, empty and null, once with fimlake's optimizer rules and once with DataFusion's
//! alone; the answers must be equal, and the optimized plan's filters must read the column
//! plainly (or not) as listed. Each runs with the strings as `Utf8` (computed columns, datatables)
//! and as `Utf8View` (how a stored table's scan reads them).

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use fimlake_kql::{TableList, parse, plan_query, session_state};

/// Filters whose leaves can read `Name` plainly: false on `''`, false or null on null.
const PLAIN: &[&str] = &[
    "Name == 'sshd'",
    "Name contains 'ssh'",
    "Name contains_cs 'SSH'",
    "Name has 'nginx'",
    "Name startswith '/etc'",
    "Name endswith 'config'",
    "Name in ('sshd', 'x')",
    "Name =~ 'SSHD'",
    "isnotempty(Name)",
    "strlen(Name) > 2",
    "Name matches regex 'ss.'",
    "Name == 'sshd' or Name contains 'conf'",
    "Name contains 'ssh' and Size > 1",
    "Name has 'nginx' or Size > 4",
];

/// Filters that must keep the coalesce: true on `''`, or their leaf under a `not`.
const COALESCED: &[&str] = &[
    "Name != 'sshd'",
    "isempty(Name)",
    "Name == ''",
    "Name !contains 'ssh'",
    "not(Name contains 'ssh')",
    "Name in ('', 'sshd')",
    "Name !in ('sshd')",
    "iff(Name == 'sshd', false, true)",
    "Name < 'b'",
    "strlen(Name) < 3",
    "Name == Other",
    "Name != 'sshd' and Size > 1",
];

/// The two string types a column reaches a filter in.
const STRING_TYPES: [DataType; 2] = [DataType::Utf8, DataType::Utf8View];

fn table(strings: &DataType) -> TableList {
    let schema = Arc::new(Schema::new(vec![
        Field::new("Name", strings.clone(), true),
        Field::new("Other", strings.clone(), true),
        Field::new("Size", DataType::Int64, true),
    ]));
    let names = ["sshd", "", "", "SSHD_config", "/etc/ssh/sshd_config", "nginx conf", "é-SSH"];
    let nulls = [false, false, true, false, false, false, false];
    let name: StringArray = names.iter().zip(nulls).map(|(n, null)| (!null).then_some(*n)).collect();
    let other = StringArray::from(vec![Some("sshd"), None, Some(""), None, Some("x"), Some("nginx conf"), Some("")]);
    let size = Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7]);
    let name = arrow::compute::cast(&name, strings).unwrap();
    let other = arrow::compute::cast(&other, strings).unwrap();
    let batch = RecordBatch::try_new(schema.clone(), vec![name, other, Arc::new(size)]).unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    TableList(vec![("T".to_string(), Arc::new(table))])
}

fn plan(filter: &str, strings: &DataType) -> LogicalPlan {
    let text = format!("T | where {filter} | project Size, Name | order by Size asc");
    let query = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    plan_query(&query, &text, &table(strings), 0).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn with_kql_rules() -> SessionContext {
    SessionContext::new_with_state(session_state().build())
}

async fn answer(ctx: &SessionContext, filter: &str, strings: &DataType) -> String {
    let batches = ctx.execute_logical_plan(plan(filter, strings)).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Whether any filter of the optimized plan still reads a column through `coalesce` (or the
/// `case` DataFusion's simplifier makes of it).
fn filters_coalesce(ctx: &SessionContext, filter: &str, strings: &DataType) -> bool {
    let optimized = ctx.state().optimize(&plan(filter, strings)).unwrap();
    let text = optimized.display_indent().to_string();
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("Filter:") || l.contains("filters="))
        .any(|l| l.contains("coalesce") || l.contains("IS NOT NULL THEN t.Name ELSE"))
}

#[tokio::test]
async fn filters_answer_alike_with_and_without_the_rule() {
    let kql = with_kql_rules();
    let datafusion = SessionContext::new();
    for (filter, strings) in PLAIN.iter().chain(COALESCED).flat_map(|f| STRING_TYPES.iter().map(move |s| (f, s))) {
        let expected = answer(&datafusion, filter, strings).await;
        assert_eq!(answer(&kql, filter, strings).await, expected, "where {filter} ({strings})");
    }
}

#[tokio::test]
async fn filters_read_the_plain_column_only_where_that_keeps_the_rows() {
    let kql = with_kql_rules();
    for strings in &STRING_TYPES {
        for filter in PLAIN {
            assert!(
                !filters_coalesce(&kql, filter, strings),
                "where {filter} ({strings}): still reads the column through coalesce"
            );
        }
        for filter in COALESCED {
            assert!(
                filters_coalesce(&kql, filter, strings),
                "where {filter} ({strings}): reads the plain column, which drops null rows"
            );
        }
    }
}

#[tokio::test]
async fn the_null_row_counts_as_empty_in_a_negated_filter() {
    // Why the coalesce stays there: Kusto's `!=` keeps the rows whose string is empty or missing.
    for strings in &STRING_TYPES {
        let plan = plan("Name != 'sshd' and Size < 4", strings);
        let batches = with_kql_rules().execute_logical_plan(plan).await.unwrap();
        let rows: usize = batches.collect().await.unwrap().iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2, "the empty and the null Name ({strings})");
    }
}
