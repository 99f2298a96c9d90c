//! A table's side of [`crate::staging`]: an ingest node stages its flushes and waits for
//! them to be committed; the leader commits what the ingest nodes staged.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::delta;
use crate::error::{Result, StorageError};
use crate::sorted::SortedRows;
use crate::staging::{self, StagedFlush, Staging};
use crate::table::Table;
use crate::wal::Sealed;

/// How often a waiting node says what it waits for.
const SAY_EVERY: Duration = Duration::from_secs(10);

/// Whether a waiting loop should log what it waits for now: at once, then every [`SAY_EVERY`].
pub(crate) fn time_to_say(said: &mut Option<Instant>) -> bool {
    if said.is_some_and(|t| t.elapsed() < SAY_EVERY) {
        return false;
    }
    *said = Some(Instant::now());
    true
}

/// Before an ingest node replays its WAL: waits until the leader has committed (or set aside)
/// every flush the node staged before it stopped, so that none of their rows is staged twice.
pub(crate) async fn wait_until_unstaged(staging: &Staging, table: &str, node_id: &str, poll: Duration) -> Result<()> {
    let mut said = None;
    loop {
        let waiting = staging.count_of(table, node_id).await?;
        if waiting == 0 {
            return Ok(());
        }
        if time_to_say(&mut said) {
            tracing::info!(
                table,
                waiting,
                "waiting for the cluster's leader to commit the flushes this node staged before it stopped"
            );
        }
        tokio::time::sleep(poll).await;
    }
}

impl Table {
    fn poll_interval(&self) -> Duration {
        self.config.refresh.unwrap_or(Duration::from_secs(2))
    }

    /// An ingest node's flush: writes the files, stages them and returns once the leader's
    /// commit of them shows in the table (the rows then leave the buffer, [`Table::refresh`]).
    /// Returns the table's version then, and the file count.
    pub(crate) async fn stage_sorted(&self, sorted: &SortedRows, sealed: &Sealed) -> Result<(Option<u64>, usize)> {
        let staging = self.staging.clone().expect("a staged table has its staging area");
        let node_id = self.config.node_id.clone().expect("a staged table belongs to a cluster node");
        let after = self.staged.lock().expect("staged state lock").committed;
        let adds = {
            let mut delta = self.delta.lock().await;
            delta.update_state().await.map_err(|e| StorageError::delta(self.name(), e))?;
            let recorded = delta::committed_wal_segment(&delta, self.name(), &self.wal_app_id).await?;
            // An earlier attempt was committed after this node stopped waiting for it.
            if recorded.is_some_and(|r| r >= sealed.upto) {
                Vec::new()
            } else {
                delta::write_files(&delta, &self.def, sorted, self.props.clone()).await?
            }
        };
        let files = adds.len();
        self.staged.lock().expect("staged state lock").waiting_upto = Some(sealed.upto);
        if !adds.is_empty() {
            let rows = sorted.rows();
            let flush = StagedFlush {
                node_id: node_id.clone(),
                wal_app_id: self.wal_app_id.clone(),
                after,
                upto: sealed.upto,
                rows,
                staged_at: chrono::Utc::now(),
                adds,
            };
            if let Err(e) = staging.put(self.name(), &flush).await {
                self.staged.lock().expect("staged state lock").waiting_upto = None;
                return Err(e);
            }
        }
        self.wait_for_commit(&staging, &node_id, sealed.upto).await?;
        Ok((self.delta.lock().await.version(), files))
    }

    /// Reads the table until it records `upto` for this node. Errors only when the leader set
    /// the staged flush aside; an unreachable bucket or an absent leader is waited out.
    async fn wait_for_commit(&self, staging: &Staging, node_id: &str, upto: u64) -> Result<()> {
        // Said once the wait has lasted SAY_EVERY, not at once.
        let mut said = Some(Instant::now());
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(table = self.name(), error = %e, "reading the table for the leader's commit failed");
            }
            if self.staged.lock().expect("staged state lock").waiting_upto.is_none() {
                return Ok(());
            }
            match staging.exists(self.name(), node_id, upto).await {
                // Gone and not committed: read once more (the leader deletes after committing).
                Ok(false) => {
                    self.refresh().await?;
                    let mut staged = self.staged.lock().expect("staged state lock");
                    if staged.waiting_upto.take().is_none() {
                        return Ok(());
                    }
                    return Err(StorageError::StagedNotCommitted {
                        table: self.name().to_string(),
                        upto,
                        reason: "the leader set it aside (see its log); it is staged again".to_string(),
                    });
                }
                Ok(true) => {}
                Err(e) => tracing::warn!(table = self.name(), error = %e, "looking for the staged flush failed"),
            }
            if time_to_say(&mut said) {
                tracing::info!(table = self.name(), upto, "a staged flush waits for the cluster's leader to commit it");
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    /// The leader's round: commits every staged flush of this table that follows its node's
    /// committed segment, in one commit, then deletes what it committed or found committed.
    /// Returns the rows committed.
    pub async fn commit_staged(&self) -> Result<usize> {
        let Some(staging) = self.staging.clone() else { return Ok(0) };
        let found = staging.list(self.name()).await?;
        if found.is_empty() {
            return Ok(0);
        }
        let mut delta = self.delta.lock().await;
        delta.update_state().await.map_err(|e| StorageError::delta(self.name(), e))?;
        let mut committed = HashMap::new();
        for (_, flush) in &found {
            if !committed.contains_key(&flush.wal_app_id) {
                let recorded = delta::committed_wal_segment(&delta, self.name(), &flush.wal_app_id).await?;
                committed.insert(flush.wal_app_id.clone(), recorded);
            }
        }
        let plan = staging::plan(found, &committed);
        for (path, reason) in &plan.discard {
            tracing::error!(table = self.name(), staged = %path, reason, "set a staged flush aside; its node stages its rows again");
        }
        let rows: usize = plan.commit.iter().map(|(_, f)| f.rows).sum();
        if !plan.commit.is_empty() {
            let adds = plan.commit.iter().flat_map(|(_, f)| f.adds.iter().cloned()).collect();
            let segments = plan.commit.iter().map(|(_, f)| (f.wal_app_id.clone(), f.upto)).collect();
            if let Err(e) = delta::commit_staged(&mut delta, &self.def, adds, segments, self.fence.as_deref()).await {
                let _ = delta.update_state().await;
                return Err(e);
            }
        }
        // Also when nothing was committed: the log read may have brought other commits (the
        // previous leader's last, landing late).
        self.show_files_of(&delta)?;
        drop(delta);
        self.update_gauges();
        self.metrics.staged_rows.inc_by(rows as u64);
        let committed_paths = plan.commit.iter().map(|(p, _)| p);
        let discarded = plan.discard.iter().map(|(p, _)| p);
        for path in committed_paths.chain(&plan.done).chain(discarded) {
            staging.delete(path).await?;
        }
        Ok(rows)
    }
}
