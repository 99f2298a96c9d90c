//! When a rule's result raises alerts: the [`Condition`] of a rule file, its [`Operator`] and
//! [`Measure`], and the two ways rows become alerts ([`per_row_alerts`], [`aggregate_alerts`]).
//! Pure functions of the rule, its state and the rows; the engine does the I/O.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use fimlake_query::{Cell, Table};

use crate::rule::Rule;
use crate::state::{AlertRecord, MonitorCondition, RuleState, Series};
use crate::store::stable_id;

/// When a rule's result raises alerts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Every result row is an alert of its own (one per file change), identified by the values
    /// of `key` (default: every column).
    PerRow {
        #[serde(default)]
        key: Vec<String>,
    },
    /// A measure (`count` of rows, or a numeric column summed per dimension) compared with a
    /// threshold, per combination of `dimensions`, firing when `failing_periods` of the last
    /// `evaluation_periods` evaluations fail, resolving when one passes (`auto_resolve`).
    Aggregate {
        #[serde(default)]
        measure: Measure,
        operator: Operator,
        threshold: f64,
        #[serde(default)]
        dimensions: Vec<String>,
        #[serde(default = "one")]
        failing_periods: u32,
        #[serde(default = "one")]
        evaluation_periods: u32,
        #[serde(default = "yes")]
        auto_resolve: bool,
    },
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// How an aggregate condition compares its measure with the threshold. A rule file spells it
/// as the symbol; any other text is refused when the rule is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    #[serde(rename = ">")]
    GreaterThan,
    #[serde(rename = ">=")]
    GreaterThanOrEqual,
    #[serde(rename = "<")]
    LessThan,
    #[serde(rename = "<=")]
    LessThanOrEqual,
    #[serde(rename = "==")]
    Equals,
    #[serde(rename = "!=")]
    NotEquals,
}

impl Operator {
    pub const ALL: [Operator; 6] = [
        Operator::GreaterThan,
        Operator::GreaterThanOrEqual,
        Operator::LessThan,
        Operator::LessThanOrEqual,
        Operator::Equals,
        Operator::NotEquals,
    ];

    /// How a rule file writes it: `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::GreaterThan => ">",
            Operator::GreaterThanOrEqual => ">=",
            Operator::LessThan => "<",
            Operator::LessThanOrEqual => "<=",
            Operator::Equals => "==",
            Operator::NotEquals => "!=",
        }
    }

    /// Azure's name in the common alert schema (`GreaterThan`...).
    pub fn azure_name(self) -> &'static str {
        match self {
            Operator::GreaterThan => "GreaterThan",
            Operator::GreaterThanOrEqual => "GreaterThanOrEqual",
            Operator::LessThan => "LessThan",
            Operator::LessThanOrEqual => "LessThanOrEqual",
            Operator::Equals => "Equals",
            Operator::NotEquals => "NotEquals",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.symbol() == symbol)
    }

    /// Whether `value operator threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::GreaterThan => value > threshold,
            Operator::GreaterThanOrEqual => value >= threshold,
            Operator::LessThan => value < threshold,
            Operator::LessThanOrEqual => value <= threshold,
            Operator::Equals => value == threshold,
            Operator::NotEquals => value != threshold,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// What an aggregate condition measures per dimension combination: the number of rows
/// (`count`, the default) or the sum of a numeric result column.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Measure {
    #[default]
    Count,
    Column(String),
}

impl From<String> for Measure {
    fn from(text: String) -> Measure {
        if text == "count" { Measure::Count } else { Measure::Column(text) }
    }
}

impl From<Measure> for String {
    fn from(measure: Measure) -> String {
        measure.to_string()
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Count => f.write_str("count"),
            Measure::Column(column) => f.write_str(column),
        }
    }
}

/// An alert and the result rows it stands for.
pub type Event = (AlertRecord, Vec<Value>);

/// Per-row: every row is an alert, identified by its key columns' values (all columns when no
/// key is given) within the window: rows of one window with the same key are one alert (the
/// first row stands for it), and the window's start is part of the id, so the same key in a
/// later window is a new alert while a repeated evaluation of the same window gives the same id.
pub(crate) fn per_row_alerts(rule: &Rule, key: &[String], table: &Table, window_start: i64, now_us: i64) -> Vec<Event> {
    let mut seen = HashSet::new();
    let start = window_start.to_string();
    table
        .rows
        .iter()
        .filter_map(|row| {
            let map = table.object(row);
            let dims: Map<String, Value> = if key.is_empty() {
                map.clone()
            } else {
                key.iter().map(|k| (k.clone(), map.get(k).cloned().unwrap_or(Value::Null))).collect()
            };
            let id = stable_id(&[&rule.name, &start, &Value::Object(dims.clone()).to_string()]);
            if !seen.insert(id.clone()) {
                return None;
            }
            let alert = AlertRecord::fired(rule, id, now_us, dims, None, Some(map));
            Some((alert, vec![wire_row(row)]))
        })
        .collect()
}

/// One dimension combination of a result: its values, the measure's sum, its rows.
struct Group {
    dimensions: Map<String, Value>,
    sum: Option<f64>,
    rows: Vec<Value>,
}

/// Aggregate: the measure per dimension combination against the threshold, N of the last M
/// evaluations failing fires an alert; with `auto_resolve`, an active alert resolves when that
/// no longer holds. Combinations seen before but absent now measure 0 rows (or no value).
pub(crate) fn aggregate_alerts(rule: &Rule, state: &mut RuleState, table: &Table, now_us: i64) -> Vec<Event> {
    let Condition::Aggregate { measure, dimensions, .. } = &rule.condition else {
        return Vec::new();
    };
    let mut groups = group_rows(measure, dimensions, table);
    for (key, series) in &state.series {
        groups.entry(key.clone()).or_insert_with(|| Group {
            dimensions: series.dimensions.clone(),
            sum: None,
            rows: Vec::new(),
        });
    }
    let mut events = Vec::new();
    for (key, group) in groups {
        let value = match measure {
            Measure::Count => Some(group.rows.len() as f64),
            Measure::Column(_) => group.sum,
        };
        if let Some(alert) = step_series(rule, state, &key, &group.dimensions, value, now_us) {
            events.push((alert, group.rows));
        }
    }
    events
}

/// The rows by dimension combination (one group with no dimensions when there are none, so
/// an empty result measures 0).
fn group_rows(measure: &Measure, dimensions: &[String], table: &Table) -> BTreeMap<String, Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    if dimensions.is_empty() {
        groups.insert("{}".into(), Group { dimensions: Map::new(), sum: None, rows: Vec::new() });
    }
    let measured = match measure {
        Measure::Column(column) => table.index(column),
        Measure::Count => None,
    };
    for row in &table.rows {
        let map = table.object(row);
        let dims: Map<String, Value> =
            dimensions.iter().map(|d| (d.clone(), map.get(d).cloned().unwrap_or(Value::Null))).collect();
        let key = Value::Object(dims.clone()).to_string();
        let group = groups.entry(key).or_insert_with(|| Group { dimensions: dims, sum: None, rows: Vec::new() });
        if let Some(value) = measured.and_then(|i| row[i].as_f64()) {
            group.sum = Some(group.sum.unwrap_or(0.0) + value);
        }
        group.rows.push(wire_row(row));
    }
    groups
}

/// One evaluation of one dimension combination: records whether it failed, and returns the
/// alert that fires or resolves now, if any.
fn step_series(
    rule: &Rule,
    state: &mut RuleState,
    key: &str,
    dimensions: &Map<String, Value>,
    value: Option<f64>,
    now_us: i64,
) -> Option<AlertRecord> {
    let Condition::Aggregate { operator, threshold, failing_periods, evaluation_periods, auto_resolve, .. } =
        &rule.condition
    else {
        return None;
    };
    let failing = value.is_some_and(|v| operator.holds(v, *threshold));
    let fired_before = state.aggregate_alerts;
    let series = state
        .series
        .entry(key.to_string())
        .or_insert_with(|| Series { dimensions: dimensions.clone(), ..Default::default() });
    series.history.push_back(failing);
    while series.history.len() > *evaluation_periods as usize {
        series.history.pop_front();
    }
    let met = series.history.iter().filter(|f| **f).count() >= *failing_periods as usize;
    let fire = || {
        let id = stable_id(&[&rule.name, key, &fired_before.to_string()]);
        AlertRecord::fired(rule, id, now_us, dimensions.clone(), value, None)
    };
    let active = series.active.take();
    let event = match (*auto_resolve, met, active) {
        (true, true, None) => {
            let alert = fire();
            series.active = Some(alert.clone());
            Some(alert)
        }
        (true, false, Some(mut alert)) => {
            alert.monitor_condition = MonitorCondition::Resolved;
            alert.resolved_us = Some(now_us);
            alert.metric_value = value;
            Some(alert)
        }
        (false, true, active) => {
            series.active = active;
            Some(fire())
        }
        (_, _, active) => {
            series.active = active;
            None
        }
    };
    if series.active.is_none() && !series.history.iter().any(|f| *f) {
        state.series.remove(key);
    }
    if event.as_ref().is_some_and(|a| a.monitor_condition == MonitorCondition::Fired) {
        state.aggregate_alerts += 1;
    }
    event
}

/// A row as the wire shape has it, for the notification.
fn wire_row(row: &[Cell]) -> Value {
    Value::Array(row.iter().map(Cell::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_read_from_their_symbols_and_unknown_ones_are_refused() {
        for operator in Operator::ALL {
            let parsed: Operator = serde_json::from_value(Value::String(operator.symbol().into())).unwrap();
            assert_eq!(parsed, operator);
        }
        assert!(serde_json::from_value::<Operator>(Value::String("=>".into())).is_err());
        assert!(Operator::NotEquals.holds(1.0, 2.0) && !Operator::NotEquals.holds(2.0, 2.0));
        assert!(Operator::GreaterThanOrEqual.holds(2.0, 2.0) && !Operator::GreaterThan.holds(2.0, 2.0));
    }

    #[test]
    fn a_measure_is_count_or_a_column() {
        assert_eq!(Measure::from("count".to_string()), Measure::Count);
        assert_eq!(Measure::from("Bytes".to_string()), Measure::Column("Bytes".into()));
        assert_eq!(String::from(Measure::Column("Bytes".into())), "Bytes");
    }
}
