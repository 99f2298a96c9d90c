//! The `kql_build_on_summaries` physical optimizer rule (`kql/src/optimize/build_on_summaries.rs`):
//! a join of a table's rows with a `summarize` by keys builds its hash table from the summary,
//! whatever the join's kind, unless the rows side is small; and answers as DataFusion's own
//! physical plan does.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::prelude::SessionContext;
use fimlake_kql::{TableList, parse, plan_query, session_state};

/// Changes (100,000 rows) over 50 computers; heartbeats (50,000) over 60: more rows than the
/// filtered changes are estimated at (a fifth), as in a real fleet, so that DataFusion alone
/// would build on the changes.
fn tables() -> TableList {
    let rows = 0..100_000i64;
    let changes = table(vec![
        ("Computer", Arc::new(rows.clone().map(|i| Some(format!("c{}", i % 50))).collect::<StringArray>())),
        (
            "Kind",
            Arc::new(
                rows.clone().map(|i| Some(["Removed", "Added", "Modified"][(i % 3) as usize])).collect::<StringArray>(),
            ),
        ),
        ("Size", Arc::new(Int64Array::from_iter_values(rows))),
    ]);
    let rows = 0..50_000i64;
    let beats = table(vec![
        ("Computer", Arc::new(rows.clone().map(|i| Some(format!("c{}", i % 60))).collect::<StringArray>())),
        ("Time", Arc::new(Int64Array::from_iter_values(rows.clone()))),
        ("IP", Arc::new(rows.map(|i| Some(format!("10.0.{}.{}", i % 60, i % 7))).collect::<StringArray>())),
    ]);
    TableList(vec![("Changes".to_string(), changes), ("Beats".to_string(), beats)])
}

/// A one-batch table of the named columns (all nullable).
fn table(columns: Vec<(&str, ArrayRef)>) -> Arc<MemTable> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap())
}

fn plan(text: &str) -> LogicalPlan {
    let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    plan_query(&query, text, &tables(), 0).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn with_kql_rules() -> SessionContext {
    SessionContext::new_with_state(session_state().build())
}

async fn answer(ctx: &SessionContext, text: &str) -> String {
    let batches = ctx.execute_logical_plan(plan(text)).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Whether the plan's one hash join builds its table from a summary (its left input, through
/// the operators between them, is a grouped aggregate).
async fn builds_on_a_summary(text: &str) -> bool {
    let ctx = with_kql_rules();
    let physical = ctx.state().create_physical_plan(&plan(text)).await.unwrap();
    let join = find_join(&physical).unwrap_or_else(|| panic!("{text}: no hash join in the plan"));
    let mut build = join.left().clone();
    loop {
        if build.is::<AggregateExec>() {
            return true;
        }
        match build.children().as_slice() {
            [only] => build = (*only).clone(),
            _ => return false,
        }
    }
}

fn find_join(plan: &Arc<dyn ExecutionPlan>) -> Option<&HashJoinExec> {
    plan.downcast_ref::<HashJoinExec>().or_else(|| plan.children().into_iter().find_map(find_join))
}

/// Each kind of join of the changes with the latest heartbeat of each computer, each followed
/// by a summary of columns from the sides it keeps (so that the join's work is needed).
fn joins_of_rows_with_a_summary() -> Vec<String> {
    let keeping_both = ["inner", "innerunique", "leftouter", "rightouter", "fullouter"];
    let keeping_one = [
        ("leftanti", "total = sum(Size) by Computer"),
        ("leftsemi", "total = sum(Size) by Computer"),
        ("rightanti", "count() by Computer, IP"),
        ("rightsemi", "count() by Computer, IP"),
    ];
    let kinds =
        keeping_both.iter().map(|kind| (*kind, "count(), total = sum(Size) by Computer, IP")).chain(keeping_one);
    kinds
        .map(|(kind, summary)| {
            format!(
                "Changes | where Kind == 'Removed' \
                 | join kind={kind} (Beats | summarize arg_max(Time, IP) by Computer) on Computer \
                 | summarize {summary} | order by Computer asc, {last} asc",
                last = if summary.ends_with("IP") { "IP" } else { "Computer" }
            )
        })
        .collect()
}

#[tokio::test]
async fn a_join_of_rows_with_a_summary_builds_on_the_summary_whatever_its_kind() {
    for text in joins_of_rows_with_a_summary() {
        assert!(builds_on_a_summary(&text).await, "{text}: builds its hash table from the changes");
    }
}

#[tokio::test]
async fn joins_answer_as_datafusion_plans_them() {
    let kql = with_kql_rules();
    let datafusion = SessionContext::new();
    let mut texts = joins_of_rows_with_a_summary();
    texts.push(
        "Changes | summarize count() by Computer | join (Beats | summarize max(Time) by Computer) on Computer \
         | order by Computer asc"
            .to_string(),
    );
    for text in texts {
        assert_eq!(answer(&kql, &text).await, answer(&datafusion, &text).await, "{text}");
    }
}

#[tokio::test]
async fn a_small_rows_side_stays_the_build_side() {
    let text = "datatable(Computer: string) ['c1', 'c2', 'c99'] \
                | join kind=inner (Beats | summarize max(Time) by Computer) on Computer | order by Computer asc";
    assert!(!builds_on_a_summary(text).await, "{text}: three rows are a smaller table than a summary");
    assert_eq!(answer(&with_kql_rules(), text).await, answer(&SessionContext::new(), text).await);
}
