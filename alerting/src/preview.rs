//! What a rule would do now, without doing it: its query over its last window (per-row: the
//! records received in the last `frequency`; aggregate: `TimeGenerated` over `window`), the
//! rows, and the alerts its condition would fire from a fresh state. Nothing is stored or sent.

use fimlake_query::Table;

use crate::condition::{aggregate_alerts, per_row_alerts};
use crate::engine::{Alerting, AlertingError};
use crate::rule::{Condition, Rule, check_rule};
use crate::state::{AlertRecord, RuleState};

/// Rows a preview shows at most.
pub const PREVIEW_ROWS: usize = 100;

#[derive(Debug, Clone)]
pub struct Preview {
    pub window_start_us: i64,
    pub window_end_us: i64,
    /// `_TimeReceived` (per-row) or `TimeGenerated` (aggregate).
    pub window_column: &'static str,
    /// The result's columns and its first [`PREVIEW_ROWS`] rows.
    pub table: Table,
    pub total_rows: usize,
    pub alerts: Vec<AlertRecord>,
}

impl Alerting {
    /// Validates `rule` like a rule file, then runs it over its last window ending at `now_us`.
    pub async fn preview(&self, rule: &Rule, now_us: i64) -> Result<Preview, AlertingError> {
        let problems = check_rule(rule, &self.action_groups());
        if !problems.is_empty() {
            return Err(AlertingError::Invalid(problems));
        }
        let per_row = matches!(rule.condition, Condition::PerRow { .. });
        let span = if per_row { rule.frequency } else { rule.window.unwrap_or(rule.frequency) };
        let (start, end) = (now_us - span.as_micros() as i64, now_us);
        let options = if per_row {
            fimlake_kql::PlanOptions { now_us: end, ingestion_range: Some((start, end)), ..Default::default() }
        } else {
            fimlake_kql::PlanOptions { now_us: end, time_range: Some((start, end)), ..Default::default() }
        };
        let result = self
            .query_engine()
            .run_with(&rule.query, options, self.query_timeout())
            .await
            .map_err(|e| AlertingError::Query { rule: rule.name.clone(), message: e.to_string() })?;
        let mut table = Table::of(&result);
        let total_rows = table.rows.len();
        let alerts = match &rule.condition {
            Condition::PerRow { key } => per_row_alerts(rule, key, &table, start, now_us),
            Condition::Aggregate { .. } => aggregate_alerts(rule, &mut RuleState::default(), &table, now_us),
        };
        table.rows.truncate(PREVIEW_ROWS);
        Ok(Preview {
            window_start_us: start,
            window_end_us: end,
            window_column: if per_row { "_TimeReceived" } else { "TimeGenerated" },
            table,
            total_rows,
            alerts: alerts.into_iter().map(|(a, _)| a).collect(),
        })
    }
}
