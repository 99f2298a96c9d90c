//! Properties that hold for any input: the parser never panics, whatever the text, and the
//! planner never panics on whatever parses (it answers a plan or an error). The fuzz target
//! (`kql/fuzz`, `cargo +nightly fuzz run parse`) explores further; this runs in every test run.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use fimlake_kql::{TableList, parse, plan_query};
use proptest::prelude::*;

/// Words and symbols of KQL, so that random sequences reach deep into the grammar (shared with
/// the server test that sends such queries through the HTTP API, `tests/no_server_errors.rs`).
fn tokens() -> Vec<String> {
    serde_json::from_str(include_str!("data/kql-tokens.json")).expect("a JSON array of strings")
}

fn catalog() -> TableList {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("a", DataType::Utf8, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("d", DataType::Utf8, true).with_metadata(
            [(fimlake_kql::plan::KUSTO_TYPE_KEY.to_string(), "dynamic".to_string())].into_iter().collect(),
        ),
    ]));
    let t: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap());
    TableList(vec![("T".into(), t.clone()), ("U".into(), t)])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parsing_any_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse(&text);
    }

    #[test]
    fn parsing_and_planning_kql_like_token_sequences_never_panics(
        tokens in prop::collection::vec(prop::sample::select(tokens()), 0..30)
    ) {
        let text = tokens.join(" ");
        if let Ok(query) = parse(&text) {
            let _ = plan_query(&query, &text, &catalog(), 1_714_564_800_000_000);
        }
    }
}
