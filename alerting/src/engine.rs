//! The alerting engine: rules, their schedules, gapless evaluation, alerts and the outbox.
//!
//! One evaluation of a rule ([`Alerting::evaluate`]):
//! 1. picks its window: for a per-row rule, the records *received* (`_TimeReceived`) from the
//!    rule's watermark up to now minus `ingestion_delay`, and never past
//!    `Storage::visible_before` (a record being appended is not yet visible); consecutive
//!    windows touch, so each record is evaluated exactly once however late it arrives or long
//!    the server was down (catch-up is bounded by `max_catch_up`; what is skipped is recorded).
//!    For an aggregate rule, `TimeGenerated` in `[end - window, end)`;
//! 2. runs the query with `now()` = the window's end;
//! 3. turns the rows into alerts (per row, or per dimension combination with N-of-M failing
//!    periods and auto-resolve) and notifications (deferred while the rule is muted, then
//!    summarised; more than `max_notifications_per_evaluation` summarised);
//! 4. writes the notifications to the outbox (fsync), the audit rows, and then the rule state
//!    (atomic replace), and only then lets the outbox deliver them. A crash before the state is
//!    written repeats the evaluation: its notifications have the same ids, and the outbox, which
//!    held the first ones undelivered (found at the start by their time, later than the rule's
//!    last saved run), keeps one of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fimlake_query::{QueryEngine, Table};
use fimlake_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::Audit;
use crate::condition::{Event, aggregate_alerts, per_row_alerts};
use crate::deliver::{Deliverer, DeliveryConfig};
use crate::evaluation;
use crate::metrics::Metrics;
use crate::notify::{self, Notification};
use crate::outbox::{Entry, Outbox, Target};
use crate::place::Place;
use crate::rule::{ActionGroup, Condition, LoadError, Rule, check_rule, load_dir};
use crate::state::{AlertRecord, MonitorCondition, RuleState, StateStore};
use crate::store::stable_id;

/// The `[alerting]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Rule files and `action-groups.toml` (default `<data_dir>/rules`).
    pub rules_dir: Option<PathBuf>,
    /// After downtime, a per-row rule evaluates at most this much of the missed records; older
    /// ones are skipped, and the skipped range is recorded in `AlertEvaluation`.
    #[serde(with = "fimlake_settings::duration")]
    pub max_catch_up: Duration,
    /// One evaluation's query time limit.
    #[serde(with = "fimlake_settings::duration")]
    pub query_timeout: Duration,
    /// Alerts of one evaluation notified one by one; the rest go into one summary.
    pub max_notifications_per_evaluation: usize,
    /// Rows a notification carries (its total is always given).
    pub max_rows_per_notification: usize,
    pub delivery: DeliveryConfig,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rules_dir: None,
            max_catch_up: Duration::from_secs(7 * 24 * 3600),
            query_timeout: Duration::from_secs(120),
            max_notifications_per_evaluation: 20,
            max_rows_per_notification: 50,
            delivery: DeliveryConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("invalid alert rules:\n{0}")]
    Rules(#[from] LoadError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("alert rule '{0}' does not exist")]
    NoSuchRule(String),
    #[error("no alert has the id '{0}'")]
    NoSuchAlert(String),
    #[error("no failed delivery has the id '{0}'")]
    NoSuchNotification(String),
    /// A change that cannot be made as asked (an alert already in that state, a comment too long).
    #[error("{0}")]
    Refused(String),
    #[error("invalid alert rule: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("invalid action group: {}", .0.join("; "))]
    InvalidActionGroup(Vec<String>),
    #[error("action group '{0}' does not exist")]
    NoSuchActionGroup(String),
    #[error("the query of rule '{rule}' failed: {message}")]
    Query { rule: String, message: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AlertingError {
    let what = what.into();
    move |source| AlertingError::Io { what, source }
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub window_start_us: i64,
    pub window_end_us: i64,
    pub rows: u64,
    pub fired: usize,
    pub resolved: usize,
    pub notifications: usize,
    pub deferred: usize,
    pub skipped: Option<(i64, i64)>,
}

/// What the rule's query gave: its columns (the wire shape, for notifications), how many rows,
/// and the alerts they raise.
#[derive(Default)]
struct QueryOutcome {
    columns: Vec<Value>,
    rows: usize,
    events: Vec<Event>,
    truncated: bool,
}

pub(crate) struct Slot {
    pub(crate) rule: Arc<Rule>,
    file: PathBuf,
    pub(crate) state: Arc<tokio::sync::Mutex<RuleState>>,
    /// Tells the rule's schedule loop to stop (the rule was replaced or deleted).
    cancel: Option<tokio::sync::watch::Sender<bool>>,
}

pub struct Alerting {
    cfg: AlertingConfig,
    pub(crate) rules_dir: PathBuf,
    storage: Arc<Storage>,
    engine: Arc<QueryEngine>,
    outbox: Arc<Outbox>,
    deliverer: Arc<Deliverer>,
    /// Shared with the deliverer: closed, neither rules nor deliveries run.
    gate: crate::gate::Gate,
    audit: Audit,
    metrics: Metrics,
    pub(crate) states: StateStore,
    /// By name; replaced as a whole by the action-group API (`action_groups.rs`).
    pub(crate) groups: std::sync::RwLock<BTreeMap<String, ActionGroup>>,
    /// One change of the action groups at a time (each rewrites the whole file).
    pub(crate) group_changes: tokio::sync::Mutex<()>,
    pub(crate) slots: Mutex<BTreeMap<String, Slot>>,
    stop: tokio::sync::watch::Sender<bool>,
    running: std::sync::atomic::AtomicBool,
}

/// A rule with how it is doing, as `GET /v1/alert-rules` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    pub rule: Rule,
    pub healthy: bool,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub last_run: Option<String>,
    pub next_run: Option<String>,
    /// The end of the last evaluated window.
    pub evaluated_until: String,
    pub active_alerts: usize,
    pub muted_until: Option<String>,
    pub deferred_alerts: u64,
}

impl Alerting {
    /// Loads the rules (every problem is an error), their states and the outbox. Nothing runs
    /// until [`Alerting::start`].
    pub async fn open(
        cfg: AlertingConfig,
        data_dir: &Path,
        storage: Arc<Storage>,
        engine: Arc<QueryEngine>,
        tenant_id: String,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Alerting>, AlertingError> {
        let place = Place::Dir(data_dir.join("alerting"));
        Alerting::open_in(cfg, data_dir, place, storage, engine, tenant_id, registry).await
    }

    /// [`Alerting::open`] with the rules' states and the outbox in `place` (`state/`,
    /// `outbox/`): the data directory's `alerting/`, or a cluster's bucket, so that the next
    /// leader resumes each rule where this one left it and delivers what it had not.
    pub async fn open_in(
        cfg: AlertingConfig,
        data_dir: &Path,
        place: Place,
        storage: Arc<Storage>,
        engine: Arc<QueryEngine>,
        tenant_id: String,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Alerting>, AlertingError> {
        let rules_dir = cfg.rules_dir.clone().unwrap_or_else(|| data_dir.join("rules"));
        std::fs::create_dir_all(&rules_dir).map_err(io(format!("creating {}", rules_dir.display())))?;
        let set = load_dir(&rules_dir)?;
        let (outbox_place, described) = (place.child("outbox"), place.describe("outbox"));
        let outbox = tokio::task::spawn_blocking(move || Outbox::open(outbox_place))
            .await
            .expect("outbox open panicked")
            .map_err(io(format!("opening the outbox in {described}")))?;
        let outbox = Arc::new(outbox);
        let states = StateStore::new(place.child("state"));
        let metrics = Metrics::new(registry)?;
        let audit = Audit::new(storage.clone(), tenant_id, metrics.clone());
        let gate = crate::gate::Gate::default();
        let deliverer =
            Deliverer::new(outbox.clone(), cfg.delivery.clone(), metrics.clone(), audit.clone(), gate.clone());
        let (stop, _) = tokio::sync::watch::channel(false);
        let me = Alerting {
            cfg,
            rules_dir,
            storage,
            engine,
            outbox,
            deliverer,
            gate,
            audit,
            metrics,
            states,
            groups: std::sync::RwLock::new(set.action_groups),
            group_changes: tokio::sync::Mutex::new(()),
            slots: Mutex::default(),
            stop,
            running: Default::default(),
        };
        for rule in set.rules {
            let file = set.files[&rule.name].clone();
            me.install(rule, file).await?;
        }
        me.hold_uncommitted().await;
        Ok(Arc::new(me))
    }

    /// Holds the outbox entries of evaluations that a crash interrupted before their rule's
    /// state was saved: raised later than the rule's last saved run. The rule's next evaluation
    /// raises them again (kept once) and releases them.
    async fn hold_uncommitted(&self) {
        let slots: Vec<_> =
            self.slots.lock().expect("slots lock").iter().map(|(name, s)| (name.clone(), s.state.clone())).collect();
        let mut last_runs = BTreeMap::new();
        for (name, state) in slots {
            last_runs.insert(name, state.lock().await.last_run_us);
        }
        let held =
            self.outbox.hold(|e| last_runs.get(&e.rule).is_some_and(|last| last.is_none_or(|r| r < e.created_us)));
        if held > 0 {
            tracing::warn!(held, "notifications of evaluations interrupted by a crash wait for their rules' next run");
        }
    }

    /// Starts delivering the outbox and running every rule on its schedule.
    pub fn start(self: &Arc<Self>) {
        self.start_delivery();
        self.running.store(true, std::sync::atomic::Ordering::SeqCst);
        let names: Vec<String> = self.slots.lock().expect("slots lock").keys().cloned().collect();
        for name in names {
            self.schedule(&name);
        }
    }

    /// Starts delivering the outbox only (rules run when [`Alerting::evaluate`] is called).
    pub fn start_delivery(&self) {
        tokio::spawn(self.deliverer.clone().run(self.stop.subscribe()));
    }

    /// Runs rules and deliveries only while `leads` says this node leads (a cluster's leader).
    pub fn run_while(&self, leads: crate::gate::LeaderCheck) {
        self.gate.set(leads);
    }

    /// Stops the schedules and deliveries (what is pending stays in the outbox).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The writer of fimlake's internal tables (also used by the server for `AuditLog`).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    pub(crate) fn query_engine(&self) -> &Arc<QueryEngine> {
        &self.engine
    }

    pub(crate) fn query_timeout(&self) -> std::time::Duration {
        self.cfg.query_timeout
    }

    /// How long deliveries are retried (`[alerting.delivery] retry_for`).
    pub fn delivery_retry_for(&self) -> std::time::Duration {
        self.cfg.delivery.retry_for
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Adds or replaces a rule in memory, with its saved state or a new one whose watermark is
    /// now (a new rule alerts on what arrives from now on). A new state is saved at once, so
    /// records received before a crash that follows are still evaluated after it.
    async fn install(&self, rule: Rule, file: PathBuf) -> Result<(), AlertingError> {
        let states = self.states.clone();
        let name = rule.name.clone();
        let saved = tokio::task::spawn_blocking(move || states.load(&name))
            .await
            .expect("state load panicked")
            .map_err(io(format!("reading the state of rule '{}'", rule.name)))?;
        let state = match saved {
            Some(s) => s,
            None => {
                let now = self.storage.visible_before();
                let s = RuleState { watermark_us: now, last_run_us: Some(now), ..RuleState::default() };
                self.save_state(&rule.name, &s).await?;
                s
            }
        };
        let mut slots = self.slots.lock().expect("slots lock");
        let old = slots.insert(
            rule.name.clone(),
            Slot { rule: Arc::new(rule), file, state: Arc::new(tokio::sync::Mutex::new(state)), cancel: None },
        );
        if let Some(Slot { cancel: Some(c), .. }) = old {
            let _ = c.send(true);
        }
        Ok(())
    }

    async fn save_state(&self, rule: &str, state: &RuleState) -> Result<(), AlertingError> {
        let states = self.states.clone();
        let (name, state) = (rule.to_string(), state.clone());
        tokio::task::spawn_blocking(move || states.save(&name, &state))
            .await
            .expect("state save panicked")
            .map_err(io(format!("saving the state of rule '{rule}'")))
    }

    /// Runs `name` on its schedule until it is replaced, deleted or the engine stops.
    fn schedule(self: &Arc<Self>, name: &str) {
        let (cancel, mut cancelled) = tokio::sync::watch::channel(false);
        {
            let mut slots = self.slots.lock().expect("slots lock");
            let Some(slot) = slots.get_mut(name) else { return };
            if let Some(old) = slot.cancel.replace(cancel) {
                let _ = old.send(true);
            }
        }
        let me = self.clone();
        let name = name.to_string();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            loop {
                let Some((rule, state)) = me.slot(&name) else { return };
                if !rule.enabled {
                    return;
                }
                let last = state.lock().await.last_run_us.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
                let due = crate::schedule::next_run(&rule, last);
                let wait = Duration::from_micros((due - chrono::Utc::now().timestamp_micros()).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancelled.changed() => return,
                    _ = stop.changed() => return,
                }
                if !me.gate.open() {
                    // Not leading: the rule waits; its window stays where it was.
                    tokio::time::sleep(crate::gate::CLOSED_WAIT).await;
                    continue;
                }
                if let Err(e) = me.evaluate(&name, chrono::Utc::now().timestamp_micros()).await {
                    tracing::warn!(rule = %name, error = %e, "alert rule evaluation failed");
                }
            }
        });
    }

    pub(crate) fn slot(&self, name: &str) -> Option<(Arc<Rule>, Arc<tokio::sync::Mutex<RuleState>>)> {
        self.slots.lock().expect("slots lock").get(name).map(|s| (s.rule.clone(), s.state.clone()))
    }

    /// Evaluates rule `name` as of `now_us` (µs since the epoch). The schedule calls this with
    /// the current time; tests call it with chosen times.
    pub async fn evaluate(&self, name: &str, now_us: i64) -> Result<Report, AlertingError> {
        let (rule, state) = self.slot(name).ok_or_else(|| AlertingError::NoSuchRule(name.to_string()))?;
        let mut guard = state.lock().await;
        let mut st = guard.clone();
        let started = Instant::now();
        let window = evaluation::window(&rule, &st, now_us, self.window_end(&rule, &st).await, self.cfg.max_catch_up);
        if let Some((from, to)) = window.skipped {
            tracing::warn!(rule = %rule.name, from = %notify::datetime(from), to = %notify::datetime(to),
                "records received in this range are not evaluated: more than max_catch_up behind");
        }
        st.last_run_us = Some(now_us);
        let mut report = Report {
            window_start_us: window.start,
            window_end_us: window.end.max(window.start),
            skipped: window.skipped,
            ..Report::default()
        };
        let (outcome, result) = self.run_query(&rule, &window, &mut st, now_us).await;
        report.rows = result.rows as u64;
        let mut notes: Vec<Notification> =
            evaluation::health(&rule, &mut st, &outcome, &window, now_us).into_iter().collect();
        let limit = self.cfg.max_notifications_per_evaluation;
        let routed = evaluation::route(&rule, &mut st, &result.events, &result.columns, &window, now_us, limit);
        report.deferred = routed.deferred;
        notes.extend(routed.notifications);
        for (a, _) in &result.events {
            report.fired += usize::from(a.monitor_condition == MonitorCondition::Fired);
            report.resolved += usize::from(a.monitor_condition == MonitorCondition::Resolved);
            st.remember(a.clone());
        }
        report.notifications = self.store_notifications(&rule, &notes).await?;
        if outcome.is_ok() {
            st.watermark_us = report.window_end_us;
        }
        let took = started.elapsed();
        self.record_evaluation(&rule, &report, &outcome, result.truncated, took).await;
        self.audit.record("AlertEvent", routed.event_rows).await;
        *guard = st.clone();
        self.save_state(&rule.name, &st).await?;
        self.outbox.release(&rule.name);
        self.count_evaluation(&rule, &st, &report, outcome.is_ok(), took);
        match outcome {
            Ok(()) => Ok(report),
            Err(message) => Err(AlertingError::Query { rule: rule.name.clone(), message }),
        }
    }

    /// Where the rule's window may end ([`Storage::window_end`]); where it starts (nothing new)
    /// when the tables could not be read.
    async fn window_end(&self, rule: &Rule, state: &RuleState) -> i64 {
        match self.storage.window_end().await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(rule = %rule.name, error = %e, "reading the tables failed; this evaluation looks at nothing new");
                state.watermark_us
            }
        }
    }

    /// Runs the rule's query over the window and turns its rows into alerts (updating the
    /// state of an aggregate rule's series). An empty per-row window runs nothing.
    async fn run_query(
        &self,
        rule: &Rule,
        window: &evaluation::Window,
        st: &mut RuleState,
        now_us: i64,
    ) -> (Result<(), String>, QueryOutcome) {
        let mut out = QueryOutcome::default();
        let Some(options) = evaluation::plan_options(rule, window) else { return (Ok(()), out) };
        let result = match self.engine.run_with(&rule.query, options, self.cfg.query_timeout).await {
            Ok(result) => result,
            Err(e) => return (Err(e.to_string()), out),
        };
        out.truncated = result.truncated;
        let table = Table::of(&result);
        out.events = match &rule.condition {
            Condition::PerRow { key } => per_row_alerts(rule, key, &table, window.start, now_us),
            Condition::Aggregate { .. } => aggregate_alerts(rule, st, &table, now_us),
        };
        out.rows = table.rows.len();
        out.columns = table.columns_json();
        (Ok(()), out)
    }

    /// Writes the notifications' outbox entries (durably) and returns how many there are.
    async fn store_notifications(&self, rule: &Rule, notes: &[Notification]) -> Result<usize, AlertingError> {
        let entries: Vec<Entry> = notes.iter().flat_map(|n| self.entries(rule, n)).collect();
        let count = entries.len();
        let outbox = self.outbox.clone();
        let stored = tokio::task::spawn_blocking(move || outbox.put(entries)).await.expect("outbox put panicked");
        if let Err(e) = stored {
            self.metrics.evaluations.with_label_values(&[&rule.name, "error"]).inc();
            return Err(AlertingError::Io { what: "writing notifications to the outbox".into(), source: e });
        }
        self.metrics.outbox_depth.set(self.outbox.depth() as i64);
        Ok(count)
    }

    /// The evaluation's `AlertEvaluation` audit row.
    async fn record_evaluation(
        &self,
        rule: &Rule,
        report: &Report,
        outcome: &Result<(), String>,
        truncated: bool,
        took: Duration,
    ) {
        let per_row = evaluation::is_per_row(rule);
        let row = json!({
            "RuleName": rule.name,
            "Severity": rule.severity,
            "ConditionKind": if per_row { "per_row" } else { "aggregate" },
            "WindowStart": notify::datetime(report.window_start_us),
            "WindowEnd": notify::datetime(report.window_end_us),
            "WindowColumn": if per_row { "_TimeReceived" } else { "TimeGenerated" },
            "Status": if outcome.is_ok() { "Succeeded" } else { "Failed" },
            "Error": outcome.as_ref().err(),
            "Rows": report.rows,
            "RowsTruncated": truncated,
            "AlertsFired": report.fired,
            "AlertsResolved": report.resolved,
            "NotificationsQueued": report.notifications,
            "NotificationsDeferred": report.deferred,
            "SkippedStart": report.skipped.map(|s| notify::datetime(s.0)),
            "SkippedEnd": report.skipped.map(|s| notify::datetime(s.1)),
            "DurationMs": took.as_secs_f64() * 1000.0,
        });
        self.audit.record("AlertEvaluation", vec![row]).await;
    }

    fn count_evaluation(&self, rule: &Rule, st: &RuleState, report: &Report, succeeded: bool, took: Duration) {
        let name = rule.name.as_str();
        let result = if succeeded { "ok" } else { "error" };
        self.metrics.evaluations.with_label_values(&[name, result]).inc();
        self.metrics.evaluation_seconds.with_label_values(&[name]).observe(took.as_secs_f64());
        self.metrics.rule_unhealthy.with_label_values(&[name]).set(i64::from(!st.health.healthy));
        let lag = (chrono::Utc::now().timestamp_micros() - st.watermark_us) / 1_000_000;
        self.metrics.rule_lag_seconds.with_label_values(&[name]).set(lag);
        self.metrics.alerts.with_label_values(&[name, "fired"]).inc_by(report.fired as u64);
        self.metrics.alerts.with_label_values(&[name, "resolved"]).inc_by(report.resolved as u64);
    }

    /// One outbox entry per target of each of the rule's action groups.
    fn entries(&self, rule: &Rule, n: &Notification) -> Vec<Entry> {
        let max_rows = self.cfg.max_rows_per_notification;
        let deadline = n.at_us + self.cfg.delivery.retry_for.as_micros() as i64;
        // Rendered once per notification, for however many targets.
        let (mut body, mut email) = (None, None);
        let mut out = Vec::new();
        let groups = self.action_groups();
        for group in &rule.actions {
            let Some(g) = groups.get(group) else { continue };
            let entry = |kind: &str, i: usize, target: Target| Entry {
                id: stable_id(&[&n.id, group, kind, &i.to_string()]),
                notification_id: n.id.clone(),
                rule: rule.name.clone(),
                kind: n.kind.as_str().to_string(),
                group: group.clone(),
                target,
                created_us: n.at_us,
                deadline_us: deadline,
                attempts: 0,
                next_attempt_us: 0,
                last_error: None,
                last_status: None,
            };
            for (i, w) in g.webhooks.iter().enumerate() {
                let body = body.get_or_insert_with(|| notify::webhook_body(rule, n, max_rows)).clone();
                out.push(entry("webhook", i, Target::Webhook { webhook: w.clone(), body }));
            }
            for (i, e) in g.emails.iter().enumerate() {
                let content = email.get_or_insert_with(|| notify::email(rule, n, max_rows)).clone();
                out.push(entry("email", i, Target::Email { email: e.clone(), content }));
            }
        }
        out
    }

    /// Every rule with its status.
    pub async fn rules(&self) -> Vec<RuleStatus> {
        let slots: Vec<(Arc<Rule>, Arc<tokio::sync::Mutex<RuleState>>)> =
            self.slots.lock().expect("slots lock").values().map(|s| (s.rule.clone(), s.state.clone())).collect();
        let mut out = Vec::new();
        for (rule, state) in slots {
            let st = state.lock().await.clone();
            out.push(status(&rule, &st));
        }
        out
    }

    pub async fn rule(&self, name: &str) -> Option<RuleStatus> {
        let (rule, state) = self.slot(name)?;
        let st = state.lock().await.clone();
        Some(status(&rule, &st))
    }

    /// Creates or replaces a rule: validated like a rule file, written to the rules directory
    /// (its own file if it came from one, else `<name>.toml`), then scheduled. Returns whether
    /// it is new. A replaced rule keeps its state (watermark, active alerts).
    pub async fn put_rule(self: &Arc<Self>, rule: Rule) -> Result<bool, AlertingError> {
        let problems = check_rule(&rule, &self.action_groups());
        if !problems.is_empty() {
            return Err(AlertingError::Invalid(problems));
        }
        let existing = self.slots.lock().expect("slots lock").get(&rule.name).map(|s| s.file.clone());
        let created = existing.is_none();
        let file = existing.unwrap_or_else(|| self.rules_dir.join(format!("{}.toml", rule.name)));
        let text = toml::to_string(&rule).map_err(|e| AlertingError::Invalid(vec![e.to_string()]))?;
        let path = file.clone();
        tokio::task::spawn_blocking(move || crate::store::write_atomic(&path, text.as_bytes()))
            .await
            .expect("rule write panicked")
            .map_err(io(format!("writing {}", file.display())))?;
        let name = rule.name.clone();
        if created {
            self.install(rule, file).await?;
        } else {
            let mut slots = self.slots.lock().expect("slots lock");
            let slot = slots.get_mut(&name).expect("checked above");
            slot.rule = Arc::new(rule);
        }
        if self.running.load(std::sync::atomic::Ordering::SeqCst) {
            self.schedule(&name);
        }
        Ok(created)
    }

    /// Deletes a rule: its file, its schedule and its state. Pending notifications are still
    /// delivered.
    pub async fn delete_rule(&self, name: &str) -> Result<(), AlertingError> {
        let slot = self.slots.lock().expect("slots lock").remove(name);
        let Some(slot) = slot else { return Err(AlertingError::NoSuchRule(name.to_string())) };
        if let Some(c) = slot.cancel {
            let _ = c.send(true);
        }
        // No evaluation of it will release them.
        self.outbox.release(name);
        let states = self.states.clone();
        let (file, rule) = (slot.file.clone(), name.to_string());
        tokio::task::spawn_blocking(move || {
            crate::store::remove_durable(&file)?;
            states.remove(&rule)
        })
        .await
        .expect("rule delete panicked")
        .map_err(io(format!("deleting rule '{name}'")))
    }

    /// Active alerts (aggregate rules' fired and not yet resolved) and the latest fired and
    /// resolved ones, newest first.
    pub async fn alerts(&self) -> (Vec<AlertRecord>, Vec<AlertRecord>) {
        let states: Vec<_> = self.slots.lock().expect("slots lock").values().map(|s| s.state.clone()).collect();
        let (mut active, mut recent) = (Vec::new(), Vec::new());
        for s in states {
            let st = s.lock().await;
            active.extend(st.series.values().filter_map(|s| s.active.clone()));
            recent.extend(st.recent.iter().cloned());
        }
        active.sort_by_key(|a| std::cmp::Reverse(a.fired_us));
        recent.sort_by_key(|a| std::cmp::Reverse(a.resolved_us.unwrap_or(a.fired_us)));
        (active, recent)
    }
}

fn status(rule: &Rule, st: &RuleState) -> RuleStatus {
    RuleStatus {
        rule: rule.clone(),
        healthy: st.health.healthy,
        last_error: st.health.last_error.clone(),
        consecutive_failures: st.health.consecutive_failures,
        last_run: st.last_run_us.map(notify::datetime),
        next_run: st.last_run_us.filter(|_| rule.enabled).map(|l| notify::datetime(crate::schedule::next_run(rule, l))),
        evaluated_until: notify::datetime(st.watermark_us),
        active_alerts: st.series.values().filter(|s| s.active.is_some()).count(),
        muted_until: st.muted_until_us.map(notify::datetime),
        deferred_alerts: st.deferred.total,
    }
}
