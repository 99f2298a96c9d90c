//! The agent: full scans on a schedule, real-time checks of the paths inotify reports, a
//! heartbeat, a daily snapshot, and the sender that drains the spool to the server.
//!
//! Order of durability for a change: its record is spooled (fsynced) first, the baseline
//! updated second. A crash between the two reports the change again; nothing is lost.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::baseline::Baseline;
use crate::central::{self, Applied};
use crate::config::AgentConfig;
use crate::records;
use crate::scan::{self, ScanError};
use crate::spool::Spool;

mod compare;
mod events;
mod reconfigure;
mod run;

pub use compare::Rows;
use compare::{Mode, Persist, Report};
use fimlake_client::records::Sent;
use fimlake_client::retry::Backoff;
pub use run::run;

pub struct Agent {
    /// The configuration in effect: the file's, or the group's over it (replaced when the
    /// group's changes).
    cfg: RwLock<Arc<AgentConfig>>,
    /// The configuration file's settings (with the enrollment's key and server). What no group
    /// configuration changes (paths, server, batching, intervals of the heartbeat and snapshot)
    /// is read here; the monitoring settings from `cfg`.
    local: AgentConfig,
    /// The group configuration in effect, reported in every `Heartbeat`.
    applied: Mutex<Option<Applied>>,
    pub computer: String,
    baseline: Mutex<Baseline>,
    spool: Spool,
    /// Unreadable paths already reported (each is reported once until it is readable again).
    reported: Mutex<HashSet<String>>,
    wake_sender: Notify,
    /// The key posts are sent with: the configuration's, or the enrollment's (replaced when
    /// the host enrolls again).
    api_key: Mutex<Option<String>>,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Changes reported (their records went to the spool, and to the scan's `rows`).
    pub changes: usize,
    pub errors: Vec<ScanError>,
    pub files: usize,
    /// Whether this scan built the first baseline (then nothing is reported as Added).
    pub first: bool,
    /// Time spent in each phase: walk, compare (stat, hash, record), snapshot of the baseline.
    pub phases: Vec<(&'static str, Duration)>,
}

impl Agent {
    /// Opens the agent's state; it runs on its last fetched group configuration, if it has a
    /// valid one, else on `local` (the configuration file).
    pub fn open(local: AgentConfig) -> anyhow::Result<Agent> {
        let (cfg, applied) = match central::load(&local.data_dir).map(|c| (c.over(&local), c.applied())) {
            Some((Ok(merged), applied)) => (merged, Some(applied)),
            Some((Err(problems), applied)) => {
                tracing::error!(group = %applied.group, version = applied.version, %problems, "the last fetched configuration is not valid; running on the configuration file");
                (local.clone(), None)
            }
            None => (local.clone(), None),
        };
        crate::state::set_hash_rate(cfg.max_hash_bytes_per_second);
        let baseline = Baseline::load(&cfg.data_dir.join("baseline"))?;
        let spool = Spool::open(&cfg.data_dir.join("spool"), cfg.max_spool_bytes)?;
        let cfg_api_key = cfg.api_key.clone();
        Ok(Agent {
            computer: cfg.computer_name(),
            cfg: RwLock::new(Arc::new(cfg)),
            local,
            applied: Mutex::new(applied),
            baseline: Mutex::new(baseline),
            spool,
            reported: Mutex::new(HashSet::new()),
            wake_sender: Notify::new(),
            api_key: Mutex::new(cfg_api_key),
        })
    }

    /// The configuration in effect now.
    pub fn cfg(&self) -> Arc<AgentConfig> {
        self.cfg.read().expect("configuration lock").clone()
    }

    /// The group configuration in effect, if any.
    pub fn applied(&self) -> Option<Applied> {
        self.applied.lock().expect("applied lock").clone()
    }

    /// A full scan: every covered path against the baseline. `record`: spool the changes and
    /// update the baseline (else only report, for `scan --dry-run`). `rows` receives the
    /// records, a batch at a time.
    pub fn full_scan(&self, record: bool, rows: Rows) -> anyhow::Result<ScanOutcome> {
        let mut phases = Vec::new();
        let mut t = std::time::Instant::now();
        let mut lap = |name, phases: &mut Vec<(&'static str, Duration)>| {
            phases.push((name, t.elapsed()));
            t = std::time::Instant::now();
        };
        // The walk runs outside the baseline's lock; a configuration switched meanwhile (under
        // that lock) makes it walk again, so that the comparison covers what the baseline does.
        let (cfg, paths, errors, mut b) = loop {
            let cfg = self.cfg();
            let mut errors = Vec::new();
            let paths = scan::enumerate(&cfg, &mut errors);
            let b = self.baseline.lock().expect("baseline lock");
            if Arc::ptr_eq(&cfg, &self.cfg()) {
                break (cfg, paths, errors, b);
            }
        };
        lap("walk", &mut phases);
        let first = !b.existed;
        let report = if first { Report::Nothing } else { Report::Everything };
        // A full scan keeps its updates in memory and writes them as a new snapshot (one write)
        // rather than through the journal; only when something changed since the last one.
        let mode = Mode { report, persist: if record { Persist::Snapshot } else { Persist::DryRun }, full: true };
        let out = self.compare(&mut b, &cfg, &paths, errors, mode, rows)?;
        lap("compare", &mut phases);
        if record && (out.updated > 0 || first || b.journal_entries() > 0) {
            b.compact()?;
        }
        lap("baseline", &mut phases);
        Ok(ScanOutcome { changes: out.changes, errors: out.errors, files: paths.len(), first, phases })
    }

    /// Checks the paths real-time events named (and what is under them).
    pub fn check_paths(&self, changed: &BTreeSet<PathBuf>) -> anyhow::Result<ScanOutcome> {
        let mut errors = Vec::new();
        let mut b = self.baseline.lock().expect("baseline lock");
        let cfg = self.cfg();
        let paths = scan::affected(&cfg, &b.files, changed, &mut errors);
        let mode = Mode { report: Report::Everything, persist: Persist::Journal, full: false };
        let out = self.compare(&mut b, &cfg, &paths, errors, mode, &mut |_| {})?;
        Ok(ScanOutcome { changes: out.changes, errors: out.errors, files: paths.len(), ..ScanOutcome::default() })
    }

    /// A `ConfigurationData` row for every monitored path, spooled a batch at a time.
    pub fn snapshot(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let b = self.baseline.lock().expect("baseline lock");
        let cfg = self.cfg();
        let mut rows = 0;
        let mut batch = Vec::with_capacity(self.local.batch_records);
        for (path, state) in &b.files {
            if let Some(item) = scan::item_for(&cfg, path) {
                batch.push(records::data(&self.computer, path, state, &item, now));
            }
            if batch.len() == self.local.batch_records {
                self.spool.push("ConfigurationData", &batch)?;
                rows += batch.len();
                batch.clear();
            }
        }
        self.spool.push("ConfigurationData", &batch)?;
        rows += batch.len();
        drop(b);
        std::fs::write(self.local.data_dir.join("last-snapshot"), now.to_rfc3339())?;
        self.wake_sender.notify_one();
        Ok(rows)
    }

    fn snapshot_due(&self) -> bool {
        if !self.baseline.lock().expect("baseline lock").existed {
            return false;
        }
        let last = std::fs::read_to_string(self.local.data_dir.join("last-snapshot"))
            .ok()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok());
        last.is_none_or(|t| {
            (Utc::now() - t.with_timezone(&Utc)).to_std().unwrap_or_default() >= self.local.snapshot_interval
        })
    }

    /// Compares daemons and software with their last inventory and spools the changes; the
    /// first inventory only records. Returns the number of changes.
    pub fn inventory(&self) -> anyhow::Result<usize> {
        use crate::inventory::{daemon_change, daemons, dpkg_packages, rpm_packages, software_change};
        let now = Utc::now();
        let mut rows = Vec::new();
        let cfg = self.cfg();
        if cfg.track_daemons {
            let current = daemons(&self.local.systemctl);
            self.compare_inventory("daemons", "daemons are", current, &mut rows, |d| {
                daemon_change(&self.computer, d, now)
            })?;
        }
        if cfg.track_software {
            let current = if self.local.dpkg_status.exists() {
                dpkg_packages(&self.local.dpkg_status)
            } else if std::path::Path::new("/var/lib/rpm").exists() {
                rpm_packages()
            } else {
                Err("no dpkg status file and no rpm database".to_string())
            };
            self.compare_inventory("software", "software is", current, &mut rows, |d| {
                software_change(&self.computer, d, now)
            })?;
        }
        // Spool first, then move the new inventories into place: a crash in between reports again.
        for chunk in rows.chunks(self.local.batch_records) {
            self.spool.push("ConfigurationChange", chunk)?;
        }
        for name in ["daemons", "software"] {
            let tmp = self.local.data_dir.join(format!("{name}.json.tmp"));
            if tmp.exists() {
                std::fs::rename(&tmp, self.local.data_dir.join(format!("{name}.json")))?;
            }
        }
        self.wake_sender.notify_one();
        Ok(rows.len())
    }

    /// Rows for what changed between the last inventory `name` and `current`, which becomes the
    /// pending one; the first inventory only records. An inventory that cannot be read is a
    /// coverage loss, reported once.
    fn compare_inventory<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq>(
        &self,
        name: &str,
        what: &str,
        current: Result<std::collections::BTreeMap<String, T>, String>,
        rows: &mut Vec<Value>,
        row: impl Fn((&'static str, &str, Option<&T>, Option<&T>)) -> Value,
    ) -> anyhow::Result<()> {
        match current {
            Ok(current) => {
                if let Some(previous) = self.load_inventory::<std::collections::BTreeMap<String, T>>(name)? {
                    rows.extend(crate::inventory::diff(&previous, &current).into_iter().map(row));
                }
                self.pending_inventory(name, &current)
            }
            Err(e) => {
                self.coverage_once(name, &format!("{what} not tracked: {e}"));
                Ok(())
            }
        }
    }

    fn load_inventory<T: serde::de::DeserializeOwned>(&self, name: &str) -> anyhow::Result<Option<T>> {
        match std::fs::read(self.local.data_dir.join(format!("{name}.json"))) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn pending_inventory<T: serde::Serialize>(&self, name: &str, v: &T) -> anyhow::Result<()> {
        let tmp = self.local.data_dir.join(format!("{name}.json.tmp"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut w, v)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }

    /// A coverage record for `key`, once per run of the agent.
    fn coverage_once(&self, key: &str, message: &str) {
        if self.reported.lock().expect("reported lock").insert(format!("inventory:{key}")) {
            tracing::warn!("{message}");
            report_coverage(self, key, message);
        }
    }

    pub fn heartbeat(&self) -> anyhow::Result<()> {
        self.spool.push("Heartbeat", &[records::heartbeat(&self.computer, Utc::now(), self.applied().as_ref())])?;
        self.wake_sender.notify_one();
        Ok(())
    }

    /// The client for the server: trusts `ca_file` besides the system's roots.
    fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let builder = fimlake_client::client_builder(self.local.ca_file.as_deref()).context("ca_file")?;
        Ok(builder.build()?)
    }

    /// Sends spooled batches, oldest first, until `stop`; retries with backoff and keeps the
    /// record rate under `max_events_per_second`.
    pub async fn sender(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let client = match self.http_client() {
            Ok(c) => c,
            Err(e) => {
                // Records stay spooled; nothing is sent until the configuration is fixed.
                tracing::error!(error = %e, "cannot build the HTTP client; records stay in the spool");
                return;
            }
        };
        let backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(60) };
        let mut failed_attempts = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = match self.spool.oldest() {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading the spool");
                    None
                }
            };
            let Some(batch) = batch else {
                tokio::select! {
                    _ = self.wake_sender.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
                continue;
            };
            let api_key = self.api_key.lock().expect("api key lock").clone();
            let mut refused_key = false;
            let wait = match crate::spool::send(&client, &self.local.server, api_key.as_deref(), &batch).await {
                Sent::Accepted(_) => {
                    if let Err(e) = self.spool.done(&batch) {
                        tracing::error!(error = %e, "removing a sent batch");
                    }
                    failed_attempts = 0;
                    Duration::from_secs_f64(batch.records.len() as f64 / f64::from(self.cfg().max_events_per_second))
                }
                Sent::Retry { after, message } => {
                    failed_attempts += 1;
                    let wait = backoff.delay(failed_attempts, after);
                    tracing::warn!(error = %message, retry_in = ?wait, "sending failed; the batch stays spooled");
                    wait
                }
                Sent::Rejected { status: 401 | 403, message } => {
                    failed_attempts += 1;
                    refused_key = true;
                    tracing::error!(
                        error = %message,
                        "the server refused this agent's key; the records stay spooled until a valid key is in place \
                         (fimlake-agent enroll, or api_key in the configuration)"
                    );
                    backoff.delay(failed_attempts, None)
                }
                Sent::Rejected { message: msg, .. } => {
                    tracing::error!(error = %msg, path = %batch.path.display(), "the server refused a batch; kept in spool/rejected");
                    if let Err(e) = self.spool.reject(&batch.path) {
                        tracing::error!(error = %e, "moving a refused batch");
                    }
                    Duration::ZERO
                }
            };
            let wait = if refused_key { self.wait_for_new_key(wait) } else { Box::pin(tokio::time::sleep(wait)) };
            tokio::select! {
                _ = wait => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Waits `wait`, or less if the host enrolls again meanwhile (the enrollment file changes
    /// to a new key): then sends with the new key at once.
    fn wait_for_new_key(self: &Arc<Self>, wait: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let agent = self.clone();
        Box::pin(async move {
            let until = tokio::time::Instant::now() + wait;
            let seen = crate::enrollment::modified(&agent.local.data_dir);
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(1).min(wait)).await;
                if crate::enrollment::modified(&agent.local.data_dir) == seen {
                    continue;
                }
                match crate::enrollment::load(&agent.local.data_dir) {
                    Ok(Some(enrollment)) if enrollment.computer == agent.computer => {
                        tracing::info!(key = %enrollment.key_name, "using the key of the new enrollment");
                        *agent.api_key.lock().expect("api key lock") = Some(enrollment.key);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reading the enrollment"),
                }
            }
        })
    }
}

fn report_coverage(agent: &Agent, path: &str, message: &str) {
    let e = ScanError { path: path.to_string(), item: String::new(), message: message.to_string() };
    if let Err(err) =
        agent.spool.push("ConfigurationChange", &[records::coverage_lost(&agent.computer, &e, Utc::now())])
    {
        tracing::error!(error = %err, "spooling a coverage record");
    }
    agent.wake_sender.notify_one();
}
