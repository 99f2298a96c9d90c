//! Comparing covered paths with the baseline a step at a time: a step's paths are read
//! (stat, hash) and compared, their records spooled in batches and the baseline updated before
//! the next step is read. A scan, or a burst of real-time events, thus holds one step's states
//! and one batch of records, whatever the number of changes.

use std::cell::OnceCell;

use chrono::Utc;
use serde_json::Value;

use super::Agent;
use crate::baseline::Baseline;
use crate::config::AgentConfig;
use crate::records;
use crate::scan::{self, Category, Change, Covered, ScanError, Updates};

/// Paths read and compared per step: enough for the scan threads to share, few enough that a
/// step's states and changes stay a few MiB.
pub const STEP_PATHS: usize = 4096;

/// Receives the records of a comparison, one spooled batch at a time.
pub type Rows<'a> = &'a mut dyn FnMut(&[Value]);

/// Which changes a comparison reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Everything,
    /// All but `Added`: paths a new configuration covers are recorded, not announced.
    KnownPathsOnly,
    /// The first scan builds the baseline and reports no change.
    Nothing,
}

/// How a comparison's updates are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Each step's updates are journaled (fsynced) after its records are spooled.
    Journal,
    /// Applied in memory; the caller writes a snapshot of the baseline next.
    Snapshot,
    /// Nothing is spooled or kept (`scan --dry-run`).
    DryRun,
}

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Compared {
    pub changes: usize,
    /// Paths whose baseline entry changed (new state, or forgotten).
    pub updated: usize,
    pub errors: Vec<ScanError>,
}

impl Compared {
    fn add(&mut self, other: Compared) {
        self.changes += other.changes;
        self.updated += other.updated;
        self.errors.extend(other.errors);
    }
}

/// How a comparison reports and keeps what it finds.
#[derive(Clone, Copy)]
pub struct Mode {
    pub report: Report,
    pub persist: Persist,
    /// A full scan: the baseline's paths not covered any more are Removed (gone) or forgotten
    /// (no item covers them).
    pub full: bool,
}

/// What the steps of one comparison share.
struct Context<'r> {
    mode: Mode,
    /// The package manager's last log line, read once per comparison when a change needs it.
    activity: OnceCell<Option<String>>,
    rows: Rows<'r>,
}

impl Agent {
    /// Compares `covered` with the baseline, [`STEP_PATHS`] at a time, then (a full scan) what
    /// the baseline holds beyond it. `errors` (of the walk that found the paths) are reported
    /// first.
    pub(super) fn compare(
        &self,
        b: &mut Baseline,
        cfg: &AgentConfig,
        covered: &Covered,
        errors: Vec<ScanError>,
        mode: Mode,
        rows: Rows,
    ) -> anyhow::Result<Compared> {
        let mut context = Context { mode, activity: OnceCell::new(), rows };
        let mut out = self.record(b, Vec::new(), Vec::new(), errors, &mut context)?;
        for step in covered.entries().chunks(STEP_PATHS) {
            let mut errors = Vec::new();
            let (changes, updates) = scan::diff(cfg, &b.files, step, &mut errors);
            out.add(self.record(b, changes, updates, errors, &mut context)?);
        }
        if mode.full {
            let (changes, updates) = scan::vanished(cfg, &b.files, covered);
            out.add(self.record(b, changes, updates, Vec::new(), &mut context)?);
        }
        Ok(out)
    }

    /// Spools the records of `changes` and of new `errors` (a batch of `batch_records` at a
    /// time), then keeps `updates` as `mode` says: a crash in between reports again, never
    /// loses a change.
    fn record(
        &self,
        b: &mut Baseline,
        changes: Vec<Change>,
        updates: Updates,
        errors: Vec<ScanError>,
        context: &mut Context,
    ) -> anyhow::Result<Compared> {
        let mode = context.mode;
        let changes: Vec<Change> = match mode.report {
            Report::Everything => changes,
            Report::KnownPathsOnly => changes.into_iter().filter(|c| c.category != Category::Added).collect(),
            Report::Nothing => Vec::new(),
        };
        let now = Utc::now();
        let activity =
            if changes.is_empty() { &None } else { context.activity.get_or_init(|| self.package_activity()) };
        for part in changes.chunks(self.local.batch_records) {
            let mut batch: Vec<Value> = part.iter().map(|c| records::change(&self.computer, c, now)).collect();
            if let Some(activity) = activity {
                for r in &mut batch {
                    r["PackageManagerActivity"] = Value::String(activity.clone());
                }
            }
            self.deliver(&batch, mode.persist, context.rows)?;
        }
        let dry_run = mode.persist == Persist::DryRun;
        let new_errors: Vec<&ScanError> = {
            let mut reported = self.reported.lock().expect("reported lock");
            errors.iter().filter(|e| dry_run || reported.insert(e.path.clone())).collect()
        };
        let coverage: Vec<Value> = new_errors.iter().map(|e| records::coverage_lost(&self.computer, e, now)).collect();
        self.deliver(&coverage, mode.persist, context.rows)?;
        match mode.persist {
            Persist::Journal => b.update(&updates)?,
            Persist::Snapshot => b.apply(&updates),
            Persist::DryRun => {}
        }
        Ok(Compared { changes: changes.len(), updated: updates.len(), errors })
    }

    /// Spools one batch of `ConfigurationChange` records (unless a dry run) and hands it to `rows`.
    fn deliver(&self, batch: &[Value], persist: Persist, rows: Rows) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if persist != Persist::DryRun {
            self.spool.push("ConfigurationChange", batch)?;
            self.wake_sender.notify_one();
        }
        rows(batch);
        Ok(())
    }

    /// The package manager's last log line, if one was written in the last 10 minutes.
    fn package_activity(&self) -> Option<String> {
        let logs: Vec<&std::path::Path> = self.local.package_logs.iter().map(|p| p.as_path()).collect();
        crate::inventory::package_activity(&logs, 600)
    }
}
