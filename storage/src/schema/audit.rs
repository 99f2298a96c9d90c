//! Columns of fimlake's alerting audit trail: evidence of every rule evaluation, every alert and
//! every delivery attempt (PCI DSS 10 and 11.5), queryable with KQL like any other table.

use super::KustoType::{self, *};

type Columns = &'static [(&'static str, KustoType, &'static str)];

pub(crate) const ALERT_EVALUATION: Columns = &[
    ("RuleName", String, "The alert rule"),
    ("Severity", Int, "The rule's severity, 0 (critical) to 4"),
    ("ConditionKind", String, "per_row or aggregate"),
    ("WindowStart", DateTime, "Start of the evaluated window (inclusive)"),
    ("WindowEnd", DateTime, "End of the evaluated window (exclusive)"),
    ("WindowColumn", String, "The column the window applies to: _TimeReceived (per-row) or TimeGenerated (aggregate)"),
    ("Status", String, "Succeeded or Failed"),
    ("Error", String, "Why the evaluation failed"),
    ("Rows", Long, "Rows the query returned"),
    ("RowsTruncated", Bool, "Whether the row limit cut the result"),
    ("AlertsFired", Int, "Alerts fired by this evaluation"),
    ("AlertsResolved", Int, "Alerts resolved by this evaluation"),
    ("NotificationsQueued", Int, "Notifications written to the outbox"),
    ("NotificationsDeferred", Int, "Alerts held back by the rule's mute period, to be summarised"),
    ("SkippedStart", DateTime, "Start of records not evaluated because the catch-up limit was exceeded"),
    ("SkippedEnd", DateTime, "End of records not evaluated because the catch-up limit was exceeded"),
    ("DurationMs", Real, "How long the evaluation took"),
];

pub(crate) const ALERT_EVENT: Columns = &[
    ("RuleName", String, "The alert rule"),
    ("Severity", Int, "The rule's severity, 0 (critical) to 4"),
    ("AlertId", String, "The alert's id (the same for its Fired and Resolved events)"),
    ("MonitorCondition", String, "Fired or Resolved"),
    ("Dimensions", Dynamic, "The alert's dimension values (aggregate rules) or key values (per-row rules)"),
    ("MetricValue", Real, "The measured value (aggregate rules)"),
    ("Row", Dynamic, "The result row that raised the alert (per-row rules)"),
    ("Notification", String, "Queued, Deferred (rule muted) or Summarized (over the per-evaluation limit)"),
    ("NotificationId", String, "The notification that carries this alert"),
    ("AlertState", String, "New, Acknowledged or Closed, when a person changed the alert's state"),
    ("Principal", String, "Who changed the alert's state"),
    ("Comment", String, "Why, as the person wrote it"),
];

pub(crate) const ALERT_DELIVERY: Columns = &[
    ("RuleName", String, "The alert rule"),
    ("NotificationId", String, "The notification, also its Idempotency-Key"),
    ("NotificationKind", String, "Fired, Resolved, Summary, RuleUnhealthy or RuleHealthy"),
    ("TargetType", String, "Webhook or Email"),
    ("Target", String, "The webhook URL (without credentials) or the SMTP server and recipients"),
    ("Attempt", Int, "1 for the first attempt"),
    ("Status", String, "Delivered, Retrying or Failed (no more attempts)"),
    ("HttpStatus", Int, "The webhook's HTTP status, when it answered"),
    ("Error", String, "Why the attempt failed"),
    ("DurationMs", Real, "How long the attempt took"),
    ("NextAttempt", DateTime, "When the next attempt is due (Retrying)"),
];

pub(crate) const AUDIT_LOG: Columns = &[
    ("Principal", String, "The API key's name, or 'anonymous' when the server runs without keys"),
    ("Role", String, "The key's role: ingest, query or admin"),
    ("Method", String, "The HTTP method"),
    ("Route", String, "The API route, e.g. /v1/alert-rules/{name}"),
    ("Url", String, "The path and query string"),
    ("Status", Int, "The HTTP status answered"),
    ("DurationMs", Real, "How long the request took"),
    ("ClientAddress", String, "The client's address and port"),
    ("QueryText", String, "The KQL text of a query or explain request"),
    ("Rows", Long, "Rows a query returned"),
    ("Detail", String, "The body of an alert rule change, or why a request was refused"),
];
