//! Notifications: what one evaluation has to say to people, rendered for each kind of target.
//!
//! Webhooks get Azure Monitor's common alert schema (`schemaId: azureMonitorCommonAlertSchema`,
//! `essentials`, `alertContext` with the log query condition), plus what Azure leaves out: the
//! matching rows (`alertContext.searchResults`, truncated, with the total count) and, for
//! summaries, the list of alerts. Emails get a subject that says what happened where, and text
//! and HTML bodies listing every column of each row (computer, path, change type, before and
//! after values).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rule::{Condition, Measure, Rule};
use crate::state::AlertRecord;

/// Common alert schema payloads above this size are cut (Azure's limit is 256 KB).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// One alert fired.
    Fired,
    /// One alert resolved.
    Resolved,
    /// Many alerts in one message: the rule's mute period ended with alerts held back, or one
    /// evaluation raised more alerts than are sent one by one.
    Summary,
    /// The rule's query failed: nothing it watches is being checked.
    RuleUnhealthy,
    /// The rule runs again.
    RuleHealthy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fired => "Fired",
            Kind::Resolved => "Resolved",
            Kind::Summary => "Summary",
            Kind::RuleUnhealthy => "RuleUnhealthy",
            Kind::RuleHealthy => "RuleHealthy",
        }
    }
}

/// Result rows as the query API gives them: columns and rows of values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rows {
    pub columns: Vec<Value>,
    pub rows: Vec<Value>,
    pub total: u64,
}

impl Rows {
    /// All of `rows`, in `columns`.
    pub fn new(columns: &[Value], rows: Vec<Value>) -> Rows {
        Rows { columns: columns.to_vec(), total: rows.len() as u64, rows }
    }
}

/// One message about a rule, before it is rendered for a target.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Stable: the same evaluation re-run after a crash gives the same id. Sent as the
    /// `Idempotency-Key` of every delivery attempt.
    pub id: String,
    pub kind: Kind,
    pub alerts: Vec<AlertRecord>,
    /// How many alerts this notification stands for (a summary lists at most some of them).
    pub alert_count: u64,
    pub window: (i64, i64),
    pub rows: Rows,
    pub error: Option<String>,
    pub at_us: i64,
}

pub fn datetime(us: i64) -> String {
    fimlake_kusto::datetime::format(us)
}

fn iso_duration(d: std::time::Duration) -> String {
    format!("PT{}S", d.as_secs())
}

fn condition_json(rule: &Rule, n: &Notification) -> Value {
    let first = n.alerts.first();
    let dimensions: Vec<Value> = first
        .map(|a| a.dimensions.iter().map(|(k, v)| json!({"name": k, "value": text(v)})).collect())
        .unwrap_or_default();
    let mut c = json!({
        "searchQuery": rule.query,
        "dimensions": dimensions,
        "metricValue": first.and_then(|a| a.metric_value).unwrap_or(n.rows.total as f64),
    });
    match &rule.condition {
        Condition::PerRow { .. } => {
            c["operator"] = json!("GreaterThan");
            c["threshold"] = json!("0");
            c["timeAggregation"] = json!("Count");
            c["failingPeriods"] = json!({"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1});
        }
        Condition::Aggregate { measure, operator, threshold, failing_periods, evaluation_periods, .. } => {
            c["operator"] = json!(operator.azure_name());
            c["threshold"] = json!(threshold.to_string());
            match measure {
                Measure::Count => c["timeAggregation"] = json!("Count"),
                Measure::Column(column) => {
                    c["timeAggregation"] = json!("Total");
                    c["metricMeasureColumn"] = json!(column);
                }
            }
            c["failingPeriods"] = json!({
                "numberOfEvaluationPeriods": evaluation_periods,
                "minFailingPeriodsToAlert": failing_periods,
            });
        }
    }
    c
}

/// The webhook body: Azure's common alert schema with the rows and fimlake's details.
pub fn webhook_body(rule: &Rule, n: &Notification, max_rows: usize) -> String {
    let mut rows = max_rows.min(n.rows.rows.len());
    loop {
        let body = webhook_json(rule, n, rows).to_string();
        if body.len() <= MAX_WEBHOOK_BYTES || rows == 0 {
            return body;
        }
        rows /= 2;
    }
}

fn webhook_json(rule: &Rule, n: &Notification, rows: usize) -> Value {
    let first = n.alerts.first();
    let alert_id = match n.kind {
        Kind::Fired | Kind::Resolved => first.map_or(n.id.clone(), |a| a.alert_id.clone()),
        _ => n.id.clone(),
    };
    let condition = match n.kind {
        Kind::Resolved => "Resolved",
        Kind::RuleHealthy => "Resolved",
        _ => "Fired",
    };
    let targets: Vec<Value> = n
        .alerts
        .iter()
        .filter_map(|a| a.dimensions.get("Computer").or_else(|| a.row.as_ref()?.get("Computer")).map(text))
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .map(Value::String)
        .collect();
    let fired = first.map_or(n.at_us, |a| a.fired_us);
    let mut essentials = json!({
        "alertId": alert_id,
        "alertRule": rule.name,
        "alertRuleID": format!("/fimlake/alert-rules/{}", rule.name),
        "severity": format!("Sev{}", rule.severity),
        "signalType": "Log",
        "monitorCondition": condition,
        "monitoringService": "Log Alerts V2",
        "alertTargetIDs": targets.clone(),
        "configurationItems": targets,
        "originAlertId": alert_id,
        "firedDateTime": datetime(fired),
        "description": rule.description,
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    });
    if let Some(r) = first.and_then(|a| a.resolved_us).filter(|_| n.kind == Kind::Resolved) {
        essentials["resolvedDateTime"] = json!(datetime(r));
    }
    let window = rule.window.unwrap_or(rule.frequency);
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "alertId": a.alert_id,
                "monitorCondition": a.monitor_condition,
                "firedDateTime": datetime(a.fired_us),
                "dimensions": a.dimensions,
                "metricValue": a.metric_value,
            })
        })
        .collect();
    json!({
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": essentials,
            "alertContext": {
                "properties": rule.properties,
                "conditionType": "LogQueryCriteria",
                "condition": {
                    "windowSize": iso_duration(window),
                    "allOf": [condition_json(rule, n)],
                    "windowStartTime": datetime(n.window.0),
                    "windowEndTime": datetime(n.window.1),
                },
                "searchResults": {
                    "tables": [{
                        "name": "PrimaryResult",
                        "columns": n.rows.columns,
                        "rows": n.rows.rows.iter().take(rows).collect::<Vec<_>>(),
                    }],
                    "totalRows": n.rows.total,
                    "truncated": (rows as u64) < n.rows.total,
                },
                "fimlake": {
                    "notificationId": n.id,
                    "kind": n.kind.as_str(),
                    "alertCount": n.alert_count,
                    "alerts": alerts,
                    "error": n.error,
                },
            },
            "customProperties": rule.properties,
        }
    })
}

/// An email's subject and bodies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn what(a: &AlertRecord) -> String {
    let get = |c: &str| a.row.as_ref().and_then(|r| r.get(c)).or_else(|| a.dimensions.get(c)).map(text);
    match (get("ChangeCategory"), get("FileSystemPath"), get("Computer")) {
        (Some(change), Some(path), Some(computer)) if !path.is_empty() => {
            format!("{change} {path} on {computer}")
        }
        (_, Some(path), Some(computer)) if !path.is_empty() => format!("{path} on {computer}"),
        _ if !a.dimensions.is_empty() => {
            a.dimensions.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(", ")
        }
        _ => String::new(),
    }
}

pub fn email(rule: &Rule, n: &Notification, max_rows: usize) -> EmailContent {
    let sev = format!("Sev{}", rule.severity);
    let first = n.alerts.first();
    let subject = match n.kind {
        Kind::Fired => {
            let w = first.map(what).unwrap_or_default();
            let value = match (&rule.condition, first.and_then(|a| a.metric_value)) {
                (Condition::Aggregate { operator, threshold, .. }, Some(v)) => format!(" ({v} {operator} {threshold})"),
                _ => String::new(),
            };
            if w.is_empty() {
                format!("[fimlake {sev}] {}: fired{value}", rule.name)
            } else {
                format!("[fimlake {sev}] {}: {w}{value}", rule.name)
            }
        }
        Kind::Resolved => format!("[fimlake] Resolved: {}: {}", rule.name, first.map(what).unwrap_or_default()),
        Kind::Summary => format!("[fimlake {sev}] {}: {} alerts", rule.name, n.alert_count),
        Kind::RuleUnhealthy => format!("[fimlake] Alert rule {} is failing: its query does not run", rule.name),
        Kind::RuleHealthy => format!("[fimlake] Alert rule {} runs again", rule.name),
    };
    let mut head = vec![
        ("Rule", rule.name.clone()),
        ("Severity", sev.clone()),
        ("Event", n.kind.as_str().to_string()),
        ("Description", rule.description.clone()),
        ("Window", format!("{} to {}", datetime(n.window.0), datetime(n.window.1))),
        ("Notification id", n.id.clone()),
    ];
    if let Some(e) = &n.error {
        head.push(("Error", e.clone()));
    }
    if n.kind == Kind::Summary {
        head.push(("Alerts", n.alert_count.to_string()));
    }
    let names: Vec<String> = n.rows.columns.iter().map(|c| text(&c["name"])).collect();
    let shown: Vec<&Value> = n.rows.rows.iter().take(max_rows).collect();

    let mut t = String::new();
    for (k, v) in &head {
        t.push_str(&format!("{k}: {v}\n"));
    }
    if n.kind == Kind::Summary || n.kind == Kind::Resolved {
        t.push_str("\nAlerts:\n");
        for a in &n.alerts {
            t.push_str(&format!("- {} {} {}\n", a.monitor_condition, datetime(a.fired_us), what(a)));
        }
    }
    for (i, row) in shown.iter().enumerate() {
        t.push_str(&format!("\nRow {}:\n", i + 1));
        for (name, v) in names.iter().zip(row.as_array().into_iter().flatten()) {
            t.push_str(&format!("  {name}: {}\n", text(v)));
        }
    }
    if (shown.len() as u64) < n.rows.total {
        t.push_str(&format!("\n{} of {} rows shown.\n", shown.len(), n.rows.total));
    }

    let mut h = String::from("<html><body>\n<table>\n");
    for (k, v) in &head {
        h.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", esc(k), esc(v)));
    }
    h.push_str("</table>\n");
    if n.kind == Kind::Summary || n.kind == Kind::Resolved {
        h.push_str("<ul>\n");
        for a in &n.alerts {
            h.push_str(&format!(
                "<li>{} {} {}</li>\n",
                esc(a.monitor_condition.as_str()),
                esc(&datetime(a.fired_us)),
                esc(&what(a))
            ));
        }
        h.push_str("</ul>\n");
    }
    if !shown.is_empty() {
        h.push_str("<table border=\"1\" cellpadding=\"4\">\n<tr>");
        for name in &names {
            h.push_str(&format!("<th>{}</th>", esc(name)));
        }
        h.push_str("</tr>\n");
        for row in &shown {
            h.push_str("<tr>");
            for v in row.as_array().into_iter().flatten() {
                h.push_str(&format!("<td>{}</td>", esc(&text(v))));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if (shown.len() as u64) < n.rows.total {
        h.push_str(&format!("<p>{} of {} rows shown.</p>\n", shown.len(), n.rows.total));
    }
    h.push_str("</body></html>\n");
    EmailContent { subject, text: t, html: h }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
