//! Results in the Log Analytics JSON shape: Kusto type names for columns, and values encoded
//! as the real service does (datetime as ISO 8601 `Z` strings without trailing zeros, timespan
//! as `[-][d.]hh:mm:ss[.fffffff]`, dynamic as JSON text, real NaN/Infinity as strings).

use serde_json::{Value, json};

use crate::QueryResult;
use crate::table::{Cell, Table};

/// The result's columns (`{"name", "type"}`) and rows (arrays of cells), as the wire shape has
/// them: what the API answers.
pub fn table(result: &QueryResult) -> (Vec<Value>, Vec<Value>) {
    let table = Table::of(result);
    let rows = table.rows.iter().map(|row| Value::Array(row.iter().map(Cell::to_json).collect())).collect();
    (table.columns_json(), rows)
}

/// `{"tables":[{"name":"PrimaryResult","columns":[...],"rows":[...]}]}`, with a `PartialError`
/// when the row limit cut the result.
pub fn to_json(result: &QueryResult, max_rows: usize) -> Value {
    let (columns, rows) = table(result);
    let mut out = json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]});
    if result.truncated {
        out["error"] = json!({
            "code": "PartialError",
            "message": "There were some errors when processing your query.",
            "details": [{"code": "ResultLimitExceeded", "message": format!("the result was cut at {max_rows} rows")}]
        });
    }
    out
}

/// The `render` object Log Analytics adds to a result with `Prefer: include-render=true`:
/// `{"visualization", "title", "accumulate", "isQuerySorted", "kind", "annotation", "by"}`, plus
/// the axis properties the query gave (`xcolumn`, `ycolumns`, `series`, ...).
pub fn render(r: &fimlake_kql::ast::Render) -> Value {
    let get = |k: &str| r.properties.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let mut out = json!({
        "visualization": r.visualization,
        "title": get("title").unwrap_or_default(),
        "accumulate": get("accumulate").is_some_and(|v| v == "true"),
        "isQuerySorted": false,
        "kind": get("kind").unwrap_or_else(|| "default".into()),
        "annotation": "",
        "by": Value::Null,
    });
    for (k, v) in &r.properties {
        let key = match k.to_ascii_lowercase().as_str() {
            "title" | "kind" | "accumulate" => continue,
            "xcolumn" => "xcolumn",
            "ycolumns" => "ycolumns",
            "series" => "series",
            "xtitle" => "xtitle",
            "ytitle" => "ytitle",
            "ymin" => "ymin",
            "ymax" => "ymax",
            "legend" => "legend",
            "ysplit" => "ysplit",
            _ => continue,
        };
        out[key] = if key == "ycolumns" || key == "series" {
            Value::Array(v.split(',').map(|s| Value::String(s.to_string())).collect())
        } else {
            Value::String(v.clone())
        };
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn values_are_encoded_as_log_analytics_does() {
        use fimlake_kusto::{datetime, timespan};
        assert_eq!(datetime::format(1_622_593_153_440_000), "2021-06-02T00:19:13.44Z");
        assert_eq!(datetime::format(1_503_557_999_000_000), "2017-08-24T06:59:59Z");
        assert_eq!(timespan::format(60_000_000_000), "00:01:00");
        assert_eq!(timespan::format(93_784_500_000_000), "1.02:03:04.5000000");
        assert_eq!(timespan::format(-1_500_000_000), "-00:00:01.5000000");
    }
}
