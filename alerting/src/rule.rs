//! Rule and action-group definitions, read from TOML and validated before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a rules directory cannot be used: every problem, each with the file it is in.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|(f, m)| format!("{}: {m}", f.display())).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    pub problems: Vec<(PathBuf, String)>,
}

/// An alert rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; letters, digits, `-` and `_` (it names the rule in URLs and records).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// 0 (critical) to 4 (verbose), as Azure's Sev0..Sev4.
    pub severity: u8,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The KQL query; each evaluation sees the records ingested in its window.
    pub query: String,
    /// How often the rule runs (at least 10 s; default 5 minutes), unless `schedule` says when.
    #[serde(with = "fimlake_settings::duration", default = "five_minutes")]
    pub frequency: Duration,
    /// How far back an aggregate condition looks at each evaluation (default: the frequency).
    #[serde(default, with = "fimlake_settings::duration::option", skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// How long to wait for records to arrive before a window is evaluated.
    #[serde(default, with = "fimlake_settings::duration::option", skip_serializing_if = "Option::is_none")]
    pub ingestion_delay: Option<Duration>,
    /// A cron expression (`0 2 * * MON`) with `timezone`, instead of `frequency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// An IANA time zone for `schedule` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub condition: Condition,
    /// After a notification, later ones of this rule are held this long and then sent as one
    /// summary: deferred, never dropped.
    #[serde(default, with = "fimlake_settings::duration::option", skip_serializing_if = "Option::is_none")]
    pub mute: Option<Duration>,
    /// Added to every notification (`alertContext.properties`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The action groups to notify, by name.
    pub actions: Vec<String>,
}

fn yes() -> bool {
    true
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

pub use crate::condition::{Condition, Measure, Operator};

/// Where notifications go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionGroup {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    #[serde(default)]
    pub emails: Vec<Email>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Signs the body: `X-Fimlake-Signature: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub smtp_host: String,
    #[serde(default = "smtp_port")]
    pub smtp_port: u16,
    /// `starttls` (default), `implicit` (TLS from the first byte) or `none` (a local relay).
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of CA certificates to trust for this server (a private CA), besides the
    /// public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

fn smtp_port() -> u16 {
    587
}

/// How an email action talks TLS to its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: a relay on the same host or network.
    None,
}

/// The rules and action groups of a directory, all valid.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// The file each rule was read from, by rule name.
    pub files: BTreeMap<String, PathBuf>,
    pub action_groups: BTreeMap<String, ActionGroup>,
}

/// Reads `dir/*.toml` (one rule each) and `dir/action-groups.toml`, and checks everything:
/// names, ranges, that each query compiles against the tables' schemas, that columns named by
/// conditions exist in the query's result, that every action group exists and is complete.
pub fn load_dir(dir: &Path) -> Result<RuleSet, LoadError> {
    let mut problems = Vec::new();
    let mut set = RuleSet::default();
    let groups_file = dir.join("action-groups.toml");
    match std::fs::read_to_string(&groups_file) {
        Ok(text) => match toml::from_str::<BTreeMap<String, ActionGroup>>(&text) {
            Ok(groups) => set.action_groups = groups,
            Err(e) => problems.push((groups_file.clone(), e.to_string())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push((groups_file.clone(), e.to_string())),
    }
    for (name, g) in &set.action_groups {
        for p in check_group(name, g) {
            problems.push((groups_file.clone(), p));
        }
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && *p != groups_file)
            .collect(),
        Err(e) => return Err(LoadError { problems: vec![(dir.to_path_buf(), e.to_string())] }),
    };
    files.sort();
    for file in files {
        let rule = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<Rule>(&t).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                problems.push((file, e));
                continue;
            }
        };
        if set.rules.iter().any(|r| r.name == rule.name) {
            problems.push((file.clone(), format!("a rule named '{}' is defined twice", rule.name)));
        }
        for p in check_rule(&rule, &set.action_groups) {
            problems.push((file.clone(), p));
        }
        set.files.insert(rule.name.clone(), file);
        set.rules.push(rule);
    }
    if problems.is_empty() { Ok(set) } else { Err(LoadError { problems }) }
}

/// What is wrong with one rule (empty: nothing).
pub fn check_rule(rule: &Rule, groups: &BTreeMap<String, ActionGroup>) -> Vec<String> {
    let mut p = Vec::new();
    if rule.name.is_empty() || !rule.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        p.push(format!("rule name '{}': use letters, digits, '-' and '_'", rule.name));
    }
    if rule.severity > 4 {
        p.push(format!("severity {} is not 0 to 4", rule.severity));
    }
    if rule.frequency < Duration::from_secs(10) {
        p.push("frequency must be at least 10s".into());
    }
    match &rule.schedule {
        None if rule.timezone.is_some() => p.push("timezone applies to a cron schedule; this rule has none".into()),
        None => {}
        Some(s) => {
            if let Err(e) = crate::schedule::parse(s, rule.timezone.as_deref()) {
                p.push(e);
            }
        }
    }
    if rule.window.is_some() && matches!(rule.condition, Condition::PerRow { .. }) {
        p.push(
            "window applies to aggregate rules; a per-row rule evaluates every record received since its last evaluation"
                .into(),
        );
    }
    if rule.window.is_some_and(|w| w.is_zero()) {
        p.push("window must be longer than 0s".into());
    }
    if rule.actions.is_empty() {
        p.push("a rule needs at least one action group in 'actions'".into());
    }
    for a in &rule.actions {
        if !groups.contains_key(a) {
            let known: Vec<&String> = groups.keys().collect();
            p.push(format!("action group '{a}' is not defined in action-groups.toml (defined: {known:?})"));
        }
    }
    match compile(&rule.query) {
        Err(e) => p.push(format!("the query does not compile: {e}")),
        Ok(columns) => {
            let missing = |c: &String| !columns.contains(c);
            match &rule.condition {
                Condition::PerRow { key } => {
                    for k in key.iter().filter(|k| missing(k)) {
                        p.push(format!(
                            "key column '{k}' is not in the query's result (columns: {})",
                            columns.join(", ")
                        ));
                    }
                }
                Condition::Aggregate { measure, dimensions, failing_periods, evaluation_periods, .. } => {
                    if let Measure::Column(measure) = measure
                        && missing(measure)
                    {
                        p.push(format!(
                            "measure column '{measure}' is not in the query's result (columns: {})",
                            columns.join(", ")
                        ));
                    }
                    for d in dimensions.iter().filter(|d| missing(d)) {
                        p.push(format!(
                            "dimension '{d}' is not in the query's result (columns: {})",
                            columns.join(", ")
                        ));
                    }
                    if *failing_periods == 0 || failing_periods > evaluation_periods {
                        p.push("failing_periods must be from 1 to evaluation_periods".into());
                    }
                }
            }
        }
    }
    p
}

/// Every problem of action group `name`: no target, a webhook that is not http(s), an email
/// without recipients, a CA file that holds no certificate, a name outside `[A-Za-z0-9_-]`.
pub fn check_group(name: &str, g: &ActionGroup) -> Vec<String> {
    let mut p = Vec::new();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        p.push(format!("action group name '{name}': use letters, digits, '-' and '_'"));
    }
    if g.webhooks.is_empty() && g.emails.is_empty() {
        p.push(format!("action group '{name}' has no webhook and no email"));
    }
    for w in &g.webhooks {
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            p.push(format!("action group '{name}': webhook url '{}' is not http(s)", w.url));
        }
    }
    for e in &g.emails {
        if e.to.is_empty() {
            p.push(format!("action group '{name}': an email needs at least one recipient in 'to'"));
        }
        if let Some(f) = &e.ca_file {
            match std::fs::read(f) {
                Err(err) => p.push(format!("action group '{name}': ca_file '{f}': {err}")),
                Ok(pem) if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() => {
                    p.push(format!("action group '{name}': ca_file '{f}' holds no PEM certificate"))
                }
                Ok(_) => {}
            }
        }
    }
    p
}

/// Plans `query` against empty tables of the registry's schemas; returns its result columns.
pub fn compile(query: &str) -> Result<Vec<String>, String> {
    let parsed = fimlake_kql::parse(query).map_err(|e| e.render())?;
    let tables = fimlake_kql::TableList(fimlake_storage::TableRegistry::builtin().empty_tables());
    let plan = fimlake_kql::plan_query(&parsed, query, &tables, 0).map_err(|e| e.render())?;
    Ok(plan.schema().fields().iter().map(|f| f.name().clone()).collect())
}
