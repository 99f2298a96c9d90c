//! `/rules`: alert rules with their health, last and next run, how far they are evaluated and
//! their active alerts. Admins create and edit rules in a form whose problems are shown inline
//! (the KQL error with its caret under the query), preview what a rule would fire now, enable,
//! disable and delete rules. Changes go through `Alerting::put_rule`, as the API's do.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fimlake_alerting::engine::AlertingError;
use fimlake_alerting::rule::{Condition, Measure, Operator, Rule};
use maud::{Markup, html};
use serde::Deserialize;

use super::{need_admin, now_us};
use crate::UiState;
use crate::layout::{self, segment};
use crate::session::{Viewer, audit_action};

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(default)]
    rule: Option<String>,
}

pub async fn list(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<ListParams>,
) -> Response {
    let mut rules = st.alerting.rules().await;
    if let Some(r) = p.rule.as_deref().filter(|r| !r.is_empty()) {
        rules.retain(|s| s.rule.name == r);
    }
    rules.sort_by(|a, b| a.rule.name.cmp(&b.rule.name));
    let body = html! {
        @if viewer.is_admin() { p { a.button href="/rules/new" { "New rule" } } }
        @if rules.is_empty() { p.muted { "No alert rules. The PCI DSS 11.5 pack in examples/rules is a start." } }
        @else {
            div.scroll { table.data #rules {
                thead { tr { th { "Rule" } th { "Severity" } th { "Enabled" } th { "Health" } th { "Last run" } th { "Next run" } th { "Evaluated until" } th { "Active alerts" } @if viewer.is_admin() { th { "Actions" } } } }
                tbody { @for s in &rules { tr {
                    td { strong { (s.rule.name) } br; small.muted { (s.rule.description) } }
                    td { "Sev" (s.rule.severity) }
                    td { (if s.rule.enabled { "yes" } else { "no" }) }
                    td { @if s.healthy { span.badge.healthy { "healthy" } } @else { span.badge.silent title=[s.last_error.as_deref()] { "unhealthy" } br; small { (s.last_error.clone().unwrap_or_default()) } } }
                    td { (s.last_run.clone().unwrap_or_default()) }
                    td { (s.next_run.clone().unwrap_or_default()) }
                    td { (s.evaluated_until) }
                    td.num { a href=(format!("/alerts?state=open&rule={}", layout::url_encode(&s.rule.name))) { (s.active_alerts) } }
                    @if viewer.is_admin() { td.actions {
                        a href=(format!("/rules/edit/{}", segment(&s.rule.name))) { "edit" }
                        (post_button(&viewer, &format!("/rules/toggle/{}", segment(&s.rule.name)), if s.rule.enabled { "disable" } else { "enable" }))
                        (post_button(&viewer, &format!("/rules/delete/{}", segment(&s.rule.name)), "delete"))
                    } }
                } } }
            } }
        }
    };
    layout::page(&viewer, "Alert rules", "/rules", None, body).into_response()
}

fn post_button(viewer: &Viewer, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button.link type="submit" data-confirm=[(label == "delete").then_some("Delete this rule?")] { (label) }
        }
    }
}

/// The rule form's fields. Settings the form does not show (schedule, mute, properties...)
/// are kept from the rule being edited.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    pub name: String,
    /// The name of the rule being edited (empty for a new one).
    #[serde(default)]
    pub original: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub enabled: Option<String>,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub frequency: String,
    #[serde(default)]
    pub window: String,
    /// `per_row` or `aggregate`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub measure: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub threshold: String,
    #[serde(default)]
    pub dimensions: String,
    #[serde(default)]
    pub failing_periods: String,
    #[serde(default)]
    pub evaluation_periods: String,
    /// Action groups, comma-separated.
    #[serde(default)]
    pub actions: String,
}

fn list_of(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn duration(text: &str, what: &str, problems: &mut Vec<String>) -> Option<Duration> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    match fimlake_settings::duration::parse(t) {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(format!("{what} '{t}' is not a duration such as 30s, 5m, 1h or 1d"));
            None
        }
    }
}

pub fn duration_label(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl RuleForm {
    fn from_rule(r: &Rule) -> RuleForm {
        let mut f = RuleForm {
            name: r.name.clone(),
            original: r.name.clone(),
            description: r.description.clone(),
            severity: r.severity.to_string(),
            enabled: r.enabled.then(|| "on".into()),
            query: r.query.clone(),
            frequency: duration_label(r.frequency),
            window: r.window.map(duration_label).unwrap_or_default(),
            actions: r.actions.join(", "),
            ..Default::default()
        };
        match &r.condition {
            Condition::PerRow { key } => {
                f.kind = "per_row".into();
                f.key = key.join(", ");
            }
            Condition::Aggregate {
                measure,
                operator,
                threshold,
                dimensions,
                failing_periods,
                evaluation_periods,
                ..
            } => {
                f.kind = "aggregate".into();
                f.measure = measure.to_string();
                f.operator = operator.symbol().to_string();
                f.threshold = threshold.to_string();
                f.dimensions = dimensions.join(", ");
                f.failing_periods = failing_periods.to_string();
                f.evaluation_periods = evaluation_periods.to_string();
            }
        }
        f
    }

    /// The rule the form describes, over `base` (the rule being edited, for the settings the
    /// form does not show), or the problems found reading the form.
    fn to_rule(&self, base: Option<&Rule>) -> Result<Rule, Vec<String>> {
        let mut problems = Vec::new();
        let severity = self.severity.trim().parse::<u8>().unwrap_or_else(|_| {
            problems.push(format!("severity '{}' is not 0 to 4", self.severity));
            3
        });
        let frequency = duration(&self.frequency, "frequency", &mut problems).unwrap_or(Duration::from_secs(300));
        let window = duration(&self.window, "window", &mut problems);
        let number = |text: &str, what: &str, problems: &mut Vec<String>| -> u32 {
            if text.trim().is_empty() {
                return 1;
            }
            text.trim().parse().unwrap_or_else(|_| {
                problems.push(format!("{what} '{text}' is not a whole number"));
                1
            })
        };
        let condition = if self.kind == "aggregate" {
            let threshold = self.threshold.trim().parse::<f64>().unwrap_or_else(|_| {
                problems.push(format!("threshold '{}' is not a number", self.threshold));
                0.0
            });
            let operator = Operator::from_symbol(self.operator.trim()).unwrap_or_else(|| {
                problems.push(format!("operator '{}' is not one of > >= < <= == !=", self.operator));
                Operator::GreaterThan
            });
            let measure = self.measure.trim();
            Condition::Aggregate {
                measure: if measure.is_empty() { Measure::Count } else { Measure::from(measure.to_string()) },
                operator,
                threshold,
                dimensions: list_of(&self.dimensions),
                failing_periods: number(&self.failing_periods, "failing periods", &mut problems),
                evaluation_periods: number(&self.evaluation_periods, "evaluation periods", &mut problems),
                auto_resolve: true,
            }
        } else {
            Condition::PerRow { key: list_of(&self.key) }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut rule = base.cloned().unwrap_or_else(|| Rule {
            name: String::new(),
            description: String::new(),
            severity,
            enabled: true,
            query: String::new(),
            frequency,
            window: None,
            ingestion_delay: None,
            schedule: None,
            timezone: None,
            condition: condition.clone(),
            mute: None,
            properties: Default::default(),
            actions: Vec::new(),
        });
        rule.name = self.name.trim().to_string();
        rule.description = self.description.trim().to_string();
        rule.severity = severity;
        rule.enabled = self.enabled.is_some();
        rule.query = self.query.replace("\r\n", "\n");
        rule.frequency = frequency;
        rule.window = window;
        rule.condition = condition;
        rule.actions = list_of(&self.actions);
        Ok(rule)
    }
}

#[derive(Deserialize, Default)]
pub struct NewParams {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

pub async fn new_form(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(p): Query<NewParams>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    let form = RuleForm {
        name: p.name.unwrap_or_default(),
        query: p.query.unwrap_or_default(),
        severity: "2".into(),
        enabled: Some("on".into()),
        frequency: "5m".into(),
        kind: "per_row".into(),
        actions: st.alerting.action_groups().keys().next().cloned().unwrap_or_default(),
        ..Default::default()
    };
    render_form(&st, &viewer, &form, &[], None, StatusCode::OK)
}

pub async fn edit_form(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    match st.alerting.rule(&name).await {
        Some(s) => render_form(&st, &viewer, &RuleForm::from_rule(&s.rule), &[], None, StatusCode::OK),
        None => super::message(&viewer, StatusCode::NOT_FOUND, "Rule", &format!("Alert rule '{name}' does not exist.")),
    }
}

fn render_form(
    st: &UiState,
    viewer: &Viewer,
    f: &RuleForm,
    problems: &[String],
    preview: Option<Markup>,
    status: StatusCode,
) -> Response {
    let groups: Vec<String> = st.alerting.action_groups().keys().cloned().collect();
    let title = if f.original.is_empty() { "New alert rule".to_string() } else { format!("Edit rule {}", f.original) };
    let body = html! {
        @if !problems.is_empty() {
            div.error role="alert" data-testid="rule-problems" {
                p { "The rule was not saved:" }
                @for p in problems { pre { (p) } }
            }
        }
        form.rule method="post" action="/rules/save" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="original" value=(f.original);
            label { "Name " input type="text" name="name" value=(f.name) required pattern="[A-Za-z0-9_-]+" readonly[!f.original.is_empty()]; }
            label { "Description " input type="text" name="description" value=(f.description); }
            label { "Severity "
                select name="severity" { @for s in 0..=4 { option value=(s) selected[f.severity == s.to_string()] { "Sev" (s) } } }
            }
            label.check { input type="checkbox" name="enabled" checked[f.enabled.is_some()]; " Enabled" }
            label.wide { "Query (KQL)" textarea name="query" rows="8" spellcheck="false" { (f.query) } }
            label { "Frequency " input type="text" name="frequency" value=(f.frequency) placeholder="5m"; }
            label { "Condition "
                select name="kind" {
                    option value="per_row" selected[f.kind != "aggregate"] { "every row is an alert" }
                    option value="aggregate" selected[f.kind == "aggregate"] { "a measure crosses a threshold" }
                }
            }
            fieldset {
                legend { "Every row is an alert" }
                label { "Key columns " input type="text" name="key" value=(f.key) placeholder="Computer, FileSystemPath (default: all)"; }
            }
            fieldset {
                legend { "A measure crosses a threshold" }
                label { "Window " input type="text" name="window" value=(f.window) placeholder="the frequency"; }
                label { "Measure " input type="text" name="measure" value=(f.measure) placeholder="count, or a numeric column"; }
                label { "Operator "
                    select name="operator" { @for o in [">", ">=", "<", "<=", "==", "!="] { option value=(o) selected[f.operator == o] { (o) } } }
                }
                label { "Threshold " input type="text" name="threshold" value=(f.threshold); }
                label { "Dimensions " input type="text" name="dimensions" value=(f.dimensions) placeholder="Computer"; }
                label { "Failing periods " input type="text" name="failing_periods" value=(f.failing_periods) placeholder="1"; }
                label { "of evaluation periods " input type="text" name="evaluation_periods" value=(f.evaluation_periods) placeholder="1"; }
            }
            label { "Action groups " input type="text" name="actions" value=(f.actions) list="groups"; }
            datalist #groups { @for g in &groups { option value=(g) {} } }
            p.muted { "Action groups: " (if groups.is_empty() { "none configured ([alerting] action groups file)".to_string() } else { groups.join(", ") }) }
            div.buttons {
                button type="submit" formaction="/rules/preview" { "Preview" }
                button type="submit" { "Save" }
            }
        }
        @if let Some(p) = preview { (p) }
    };
    (status, layout::page(viewer, &title, "/rules", None, body)).into_response()
}

/// The problems of a rule, with a KQL error rendered with its caret.
fn problems_of(e: AlertingError) -> Vec<String> {
    match e {
        AlertingError::Invalid(p) => p,
        other => vec![other.to_string()],
    }
}

pub async fn save(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    axum::Form(f): axum::Form<RuleForm>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    let base = match f.original.as_str() {
        "" => None,
        name => st.alerting.rule(name).await.map(|s| s.rule),
    };
    if base.is_none() && st.alerting.rule(f.name.trim()).await.is_some() {
        let problems = vec![format!("a rule named '{}' exists already: edit it instead", f.name.trim())];
        return render_form(&st, &viewer, &f, &problems, None, StatusCode::BAD_REQUEST);
    }
    let rule = match f.to_rule(base.as_ref()) {
        Ok(r) => r,
        Err(problems) => return render_form(&st, &viewer, &f, &problems, None, StatusCode::BAD_REQUEST),
    };
    let body = serde_json::to_string(&rule).unwrap_or_default();
    match st.alerting.put_rule(rule).await {
        Ok(_) => {
            audit_action(&st, &viewer, "/rules/save", 303, None, &body).await;
            Redirect::to(&format!("/rules?rule={}", layout::url_encode(f.name.trim()))).into_response()
        }
        Err(e) => {
            audit_action(&st, &viewer, "/rules/save", 400, None, &body).await;
            render_form(&st, &viewer, &f, &problems_of(e), None, StatusCode::BAD_REQUEST)
        }
    }
}

pub async fn preview(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    axum::Form(f): axum::Form<RuleForm>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    let base = st.alerting.rule(&f.original).await.map(|s| s.rule);
    let rule = match f.to_rule(base.as_ref()) {
        Ok(r) => r,
        Err(problems) => return render_form(&st, &viewer, &f, &problems, None, StatusCode::BAD_REQUEST),
    };
    match st.alerting.preview(&rule, now_us()).await {
        Ok(p) => render_form(&st, &viewer, &f, &[], Some(preview_panel(&p)), StatusCode::OK),
        Err(e) => render_form(&st, &viewer, &f, &problems_of(e), None, StatusCode::BAD_REQUEST),
    }
}

fn preview_panel(p: &fimlake_alerting::preview::Preview) -> Markup {
    let rows = crate::data::Rows::of(&p.table);
    html! {
        section.panel #preview data-testid="preview" {
            h2 { "Preview" }
            p { "Over " (p.window_column) " from " (fimlake_alerting::notify::datetime(p.window_start_us)) " to " (fimlake_alerting::notify::datetime(p.window_end_us)) ": "
                strong data-testid="preview-rows" { (p.total_rows) } " rows, "
                strong data-testid="preview-alerts" { (p.alerts.len()) } " alerts would fire." }
            (super::table(&rows))
        }
    }
}

pub async fn toggle(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    let Some(mut rule) = st.alerting.rule(&name).await.map(|s| s.rule) else {
        return super::message(&viewer, StatusCode::NOT_FOUND, "Rule", &format!("Alert rule '{name}' does not exist."));
    };
    rule.enabled = !rule.enabled;
    let detail = format!("rule '{name}' {}", if rule.enabled { "enabled" } else { "disabled" });
    match st.alerting.put_rule(rule).await {
        Ok(_) => {
            audit_action(&st, &viewer, "/rules/toggle/{name}", 303, None, &detail).await;
            Redirect::to("/rules").into_response()
        }
        Err(e) => super::message(&viewer, StatusCode::BAD_REQUEST, "Rule", &e.to_string()),
    }
}

pub async fn delete(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
) -> Response {
    if let Err(resp) = need_admin(&viewer) {
        return resp;
    }
    match st.alerting.delete_rule(&name).await {
        Ok(()) => {
            audit_action(&st, &viewer, "/rules/delete/{name}", 303, None, &format!("rule '{name}' deleted")).await;
            Redirect::to("/rules").into_response()
        }
        Err(e @ AlertingError::NoSuchRule(_)) => super::message(&viewer, StatusCode::NOT_FOUND, "Rule", &e.to_string()),
        Err(e) => super::message(&viewer, StatusCode::INTERNAL_SERVER_ERROR, "Rule", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_written() {
        let mut problems = Vec::new();
        assert_eq!(duration("90s", "frequency", &mut problems), Some(Duration::from_secs(90)));
        assert_eq!(duration("1h 30m", "frequency", &mut problems), Some(Duration::from_secs(5400)));
        assert_eq!(duration("5x", "frequency", &mut problems), None);
        assert_eq!(problems, ["frequency '5x' is not a duration such as 30s, 5m, 1h or 1d"]);
        assert_eq!(duration_label(Duration::from_secs(300)), "5m");
        assert_eq!(duration_label(Duration::from_secs(86400)), "1d");
    }

    #[test]
    fn a_form_round_trips_a_rule() {
        let f = RuleForm {
            name: "r".into(),
            severity: "1".into(),
            enabled: Some("on".into()),
            query: "ConfigurationChange".into(),
            frequency: "1m".into(),
            kind: "aggregate".into(),
            operator: ">".into(),
            threshold: "3".into(),
            dimensions: "Computer".into(),
            actions: "ops".into(),
            ..Default::default()
        };
        let rule = f.to_rule(None).unwrap();
        assert_eq!(rule.frequency, Duration::from_secs(60));
        let back = RuleForm::from_rule(&rule);
        assert_eq!(
            (back.kind.as_str(), back.threshold.as_str(), back.dimensions.as_str()),
            ("aggregate", "3", "Computer")
        );
        let bad = RuleForm { severity: "x".into(), frequency: "soon".into(), ..f };
        assert_eq!(bad.to_rule(None).unwrap_err().len(), 2);
    }
}
