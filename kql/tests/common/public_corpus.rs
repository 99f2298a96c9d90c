//! What the public corpus's tests share (those of the kql crate and of the server): its
//! Azure Workbook parameters replaced by values of the right shape, and the queries that must
//! be refused, each with the start of its error.

/// Replaces Azure Workbook parameters (`{TimeRange:query}`, `{Computer}`...) with values of the
/// right shape: `Microsoft/Application-Insights-Workbooks` Documentation/Parameters/Time.md.
pub fn substitute(q: &str) -> String {
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

/// The corpus queries that do not plan, and the error each must give: invalid KQL (type errors
/// and a column the table does not have, as Kusto also reports them) and features fimlake does
/// not have, named.
pub const EXPECTED_PLAN_FAILURES: &[(&str, &str)] = &[
    ("pq005-soxitcompliance", "unknown column 'Account' (line 22, column 9)"),
    ("pq090-log-analitycs-gateway", "cannot compare bool with string (line 2, column 9)"),
    ("pq091-log-analitycs-gateway", "cannot compare bool with string (line 3, column 9)"),
    ("pq092-log-analitycs-gateway", "cannot compare bool with string (line 3, column 9)"),
    ("pq103-billing-usage-by-datatable-tab", "cannot compare string with bool (line 2, column 9)"),
    ("pq114-ama-migration-helper", "cross-service queries (arg(...).Table) are not supported"),
    ("pq134-arg-logstatusofwindowsdevices", "cross-service queries (arg(...).Table) are not supported"),
    ("pq138-sentinelkql-agentinfowithlocation", "cannot compare datetime with timespan (line 4, column 9)"),
];
