//! Background upkeep of a table: compaction ([`crate::compaction`]: an hour's files into one
//! sorted file, a closed day's into one), retention (remove files whose rows are all older than
//! the retention period) and vacuum (delete from storage the files no longer in the table).
//!
//! **Invariants:** compaction and retention change the live file list in one Delta commit, and
//! the in-memory list is replaced in one step after it, so a query sees either the old files or
//! the new ones, never both. Removed files stay in storage for `vacuum_delay`, so a query that
//! took the old list can still read them. Vacuum holds the commit lock, so it never deletes the
//! files of a flush that is not committed yet.

use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::DeltaOperation;

use crate::delta::{self, DataFile};
use crate::error::{Result, StorageError};
use crate::table::Table;

/// What one maintenance pass did to a table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Hour partitions whose files became one.
    pub partitions_compacted: usize,
    /// Closed days whose hour files became one file of the day.
    pub days_compacted: usize,
    /// Files merged, by both.
    pub files_compacted: usize,
    pub files_expired: usize,
    pub files_vacuumed: usize,
}

impl Table {
    /// Removes the files whose rows are all older than `retention_days` before `now`.
    /// Retention works on whole files, so rows may outlive the period by up to one day (a
    /// closed day is one file, [`crate::compaction`]) and no file is rewritten.
    pub async fn expire(&self, now: chrono::DateTime<chrono::Utc>) -> Result<MaintenanceReport> {
        let _guard = self.maintenance.lock().await;
        let cutoff = now - chrono::Duration::days(i64::from(self.config.retention_days));
        let cutoff_us = cutoff.timestamp_micros();
        let expired: Vec<DataFile> = self
            .snapshot()
            .files
            .iter()
            .filter(|f| f.time_bounds().1.is_some_and(|max| max < cutoff_us))
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(MaintenanceReport::default());
        }
        let mut delta_table = self.delta.lock().await;
        let op = DeltaOperation::Delete { predicate: Some(format!("TimeGenerated < '{}'", cutoff.to_rfc3339())) };
        delta::commit_rewrite(&mut delta_table, &self.def, Vec::new(), &expired, op, true, self.fence.as_deref())
            .await?;
        self.show_files_of(&delta_table)?;
        self.metrics.retention_removed_files.inc_by(expired.len() as u64);
        Ok(MaintenanceReport { files_expired: expired.len(), ..Default::default() })
    }

    /// Deletes from storage the files removed from the table more than `vacuum_delay` ago, and
    /// files no commit references (left by a flush that failed before its commit).
    pub async fn vacuum(&self) -> Result<MaintenanceReport> {
        let _guard = self.maintenance.lock().await;
        let mut delta_table = self.delta.lock().await;
        if let Some(fence) = &self.fence {
            delta::check_fence(&delta_table, self.name(), fence.as_ref()).await?;
        }
        let retention = chrono::Duration::from_std(self.config.vacuum_delay)
            .map_err(|e| StorageError::Config(format!("vacuum_delay: {e}")))?;
        let (table, metrics) = delta_table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .await
            .map_err(|e| StorageError::delta(self.name(), e))?;
        *delta_table = table;
        Ok(MaintenanceReport { files_vacuumed: metrics.files_deleted.len(), ..Default::default() })
    }

    /// One maintenance pass: compaction, retention, vacuum.
    pub async fn maintain(&self, now: chrono::DateTime<chrono::Utc>) -> Result<MaintenanceReport> {
        let c = self.compact(now).await?;
        let e = self.expire(now).await?;
        let v = self.vacuum().await?;
        Ok(MaintenanceReport {
            partitions_compacted: c.partitions_compacted,
            days_compacted: c.days_compacted,
            files_compacted: c.files_compacted,
            files_expired: e.files_expired,
            files_vacuumed: v.files_vacuumed,
        })
    }
}
