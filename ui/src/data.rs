//! Running the console's queries: KQL through the engine in-process, results as rows of JSON
//! cells in the Log Analytics encoding (the same values the query API answers).

use std::time::Duration;

use fimlake_kql::PlanOptions;
use fimlake_query::{Cell, QueryError, Table};
use serde_json::Value;

use crate::UiState;

/// The longest a page's query may run.
pub const PAGE_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

pub use fimlake_query::Column;

/// A query's result, bounded by the query itself (`take`, `top`, `summarize`) and by the
/// engine's row limit.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The cell of column `name` in `row` (`null` when there is no such column).
    pub fn cell<'a>(&self, row: &'a [Value], name: &str) -> &'a Value {
        self.index(name).and_then(|i| row.get(i)).unwrap_or(&Value::Null)
    }

    /// The first row's column `name` as a number (a count), 0 when absent.
    pub fn first_number(&self, name: &str) -> i64 {
        self.rows.first().map(|r| self.cell(r, name)).and_then(Value::as_i64).unwrap_or(0)
    }
}

/// Runs `text` over `TimeGenerated` in `range` (every table), with `now()` at `now_us`.
pub async fn run(st: &UiState, text: &str, range: Option<(i64, i64)>, now_us: i64) -> Result<Rows, QueryError> {
    let options = PlanOptions { time_range: range, now_us, ..PlanOptions::default() };
    let result = st.engine.run_with(text, options, PAGE_QUERY_TIMEOUT).await?;
    Ok(to_rows(&result))
}

pub fn to_rows(result: &fimlake_query::QueryResult) -> Rows {
    Rows::of(&Table::of(result))
}

impl Rows {
    /// A typed result's rows, each cell in the Log Analytics encoding (as the query API answers).
    pub fn of(table: &Table) -> Rows {
        let rows = table.rows.iter().map(|row| row.iter().map(Cell::to_json).collect()).collect();
        Rows { columns: table.columns.clone(), rows }
    }
}

/// A KQL string literal holding exactly `text`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A KQL `datetime(...)` literal of `us` microseconds since the epoch.
pub fn datetime_literal(us: i64) -> String {
    format!("datetime({})", fimlake_kusto::datetime::format(us))
}

/// A cell as text for a page: strings as they are, null as empty, others as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The microseconds of a datetime cell (`2024-01-01T00:00:00Z`).
pub fn micros(v: &Value) -> Option<i64> {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_parse_back_to_themselves() {
        for text in ["plain", "a\"b", "back\\slash", "line\nbreak", "</script>", "tab\there", "'single'"] {
            let q = format!("print x = {}", quote(text));
            let parsed = fimlake_kql::parse(&q).expect("parses");
            let fimlake_kql::ast::Source::Print(items) = &parsed.body.source else { panic!("print") };
            let fimlake_kql::ast::ExprKind::Literal(fimlake_kql::ast::Literal::String(s)) = &items[0].expr.kind else {
                panic!("a string literal: {:?}", items[0].expr.kind)
            };
            assert_eq!(s, text);
        }
    }
}
