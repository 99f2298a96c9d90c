//! A table's side of [`crate::staging`]: an ingest node stages its flushes and waits for
//! them to be committed; the leader commits what the ingest nodes staged.
//!
//! An ingest node keeps up to [`STAGED_IN_FLIGHT`] staged flushes waiting, each following the
//! one before it (its `after` is that flush's `upto`); their rows stay in the buffer, one
//! generation per flush, until the commit that holds them shows ([`Table::refresh`] drops them
//! and trims the WAL). The leader commits a node's chain in order, one round at a time or
//! several in one commit ([`staging::plan`]). When the leader sets one aside, every later one
//! is set aside too; the node waits until none is left staged and stages the rows of all of
//! them again, as one flush after what the table records.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::delta;
use crate::error::{Result, StorageError};
use crate::staging::{self, StagedFlush, Staging};
use crate::table::{FlushOutcome, Table};
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

/// How many of a table's staged flushes may wait for the leader's commit at once: the next
/// flush is written and staged while the last one waits, so that an ingest node's rows do not
/// wait in its buffer for the commit of the flush before theirs.
pub(crate) const STAGED_IN_FLIGHT: usize = 2;

impl Table {
    fn poll_interval(&self) -> Duration {
        self.config.refresh.unwrap_or(Duration::from_secs(2))
    }

    /// How often an ingest node looks whether the leader committed a staged flush (one `HEAD`
    /// of the staged file; the log is read once the file is gone): a fifth of the refresh
    /// interval, so that a flush's rows leave the buffer soon after its commit.
    pub(crate) fn commit_poll_interval(&self) -> Duration {
        (self.poll_interval() / 5).max(Duration::from_millis(20))
    }

    fn staging_and_node(&self) -> (Staging, String) {
        let staging = self.staging.clone().expect("a staged table has its staging area");
        let node_id = self.config.node_id.clone().expect("a staged table belongs to a cluster node");
        (staging, node_id)
    }

    /// An ingest node's flush: stages the buffered rows, then returns once the leader's commit
    /// of every flush staged so far shows in the table (their rows then leave the buffer).
    pub(crate) async fn flush_staged(&self) -> Result<FlushOutcome> {
        let outcome = self.stage_flush().await?;
        let last = self.staged.lock().expect("staged state lock").waiting.back().copied();
        if let Some(upto) = last {
            self.wait_for_commit(upto).await?;
        }
        Ok(FlushOutcome { version: self.delta.lock().await.version(), ..outcome })
    }

    /// Writes the buffered rows' files and stages them, without waiting for the leader's
    /// commit, once fewer than [`STAGED_IN_FLIGHT`] flushes wait for it. After the leader set a
    /// flush aside, the rows of every flush in progress are staged again first, as one flush.
    /// A flush that fails keeps its rows (buffered and in the WAL) and is retried first.
    pub(crate) async fn stage_flush(&self) -> Result<FlushOutcome> {
        let mut pending = self.flush_lock.lock().await;
        self.wait_for_room_to_stage().await?;
        let restage = self.staged.lock().expect("staged state lock").restage;
        let sealed = if restage {
            pending.take();
            self.merge_for_restage().await?
        } else {
            match pending.take() {
                Some(sealed) => sealed,
                None => self.seal().await?,
            }
        };
        if sealed.batches.is_empty() {
            return Ok(FlushOutcome::default());
        }
        let result = self.stage_sealed(&sealed).await;
        *self.flush_failure.lock().expect("flush failure lock") = result.as_ref().err().map(|e| e.to_string());
        if result.is_err() {
            self.metrics.flush_failures.inc();
            *pending = Some(sealed);
        }
        result
    }

    /// Waits until fewer than [`STAGED_IN_FLIGHT`] staged flushes wait for the leader, or one
    /// was set aside (then they are all staged again).
    async fn wait_for_room_to_stage(&self) -> Result<()> {
        loop {
            let oldest = {
                let staged = self.staged.lock().expect("staged state lock");
                if staged.restage || staged.waiting.len() < STAGED_IN_FLIGHT {
                    return Ok(());
                }
                *staged.waiting.front().expect("waiting flushes")
            };
            match self.wait_for_commit(oldest).await {
                Ok(()) | Err(StorageError::StagedNotCommitted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// After the leader set a staged flush aside (and with it every later one of this node):
    /// once none of this node's is left staged, the rows not committed, as one flush.
    async fn merge_for_restage(&self) -> Result<Sealed> {
        let (staging, node_id) = self.staging_and_node();
        wait_until_unstaged(&staging, self.name(), &node_id, self.commit_poll_interval()).await?;
        self.refresh().await?;
        let merged = self.state.lock().expect("table state lock").buffer.merge_flushing();
        let mut staged = self.staged.lock().expect("staged state lock");
        staged.waiting.clear();
        staged.restage = false;
        let (upto, batches) = merged.unwrap_or((staged.committed.unwrap_or(0), Vec::new()));
        Ok(Sealed { upto, batches })
    }

    /// Writes a sealed flush's files and stages them after the flush before it.
    async fn stage_sealed(&self, sealed: &Sealed) -> Result<FlushOutcome> {
        let started = std::time::Instant::now();
        let (staging, node_id) = self.staging_and_node();
        let sorted = self.sort(sealed).await?;
        let adds = {
            let mut delta = self.delta.lock().await;
            delta.update_state().await.map_err(|e| StorageError::delta(self.name(), e))?;
            let recorded = delta::committed_wal_segment(&delta, self.name(), &self.wal_app_id).await?;
            // An earlier attempt was staged and committed, though its outcome was an error.
            if recorded.is_some_and(|r| r >= sealed.upto) {
                Vec::new()
            } else {
                delta::write_files(&delta, &self.def, &sorted, self.props.clone()).await?
            }
        };
        let files = adds.len();
        if !adds.is_empty() {
            let after = {
                let staged = self.staged.lock().expect("staged state lock");
                staged.waiting.back().copied().or(staged.committed)
            };
            let flush = StagedFlush {
                node_id,
                wal_app_id: self.wal_app_id.clone(),
                after,
                upto: sealed.upto,
                rows: sorted.rows(),
                staged_at: chrono::Utc::now(),
                adds,
            };
            staging.put(self.name(), &flush).await?;
        }
        self.staged.lock().expect("staged state lock").waiting.push_back(sealed.upto);
        Ok(self.record_flush(sorted.rows(), files, None, started))
    }

    /// Waits until the table records `upto` for this node. Errors only when the leader set
    /// the staged flush aside; an unreachable bucket or an absent leader is waited out.
    async fn wait_for_commit(&self, upto: u64) -> Result<()> {
        // Said once the wait has lasted SAY_EVERY, not at once.
        let mut said = Some(Instant::now());
        loop {
            {
                let staged = self.staged.lock().expect("staged state lock");
                if staged.committed.is_some_and(|c| c >= upto) {
                    return Ok(());
                }
                if staged.restage {
                    return Err(self.set_aside(upto));
                }
            }
            match self.check_staged().await {
                Ok(()) => {}
                Err(e @ StorageError::StagedNotCommitted { .. }) => return Err(e),
                Err(e) => tracing::warn!(table = self.name(), error = %e, "looking for the leader's commit failed"),
            }
            if time_to_say(&mut said) {
                tracing::info!(table = self.name(), upto, "a staged flush waits for the cluster's leader to commit it");
            }
            tokio::time::sleep(self.commit_poll_interval()).await;
        }
    }

    /// One look at the oldest staged flush still waiting: once its file is gone, the leader
    /// committed it (the table's log shows it then: the leader deletes after its commit) or set
    /// it aside, and with it every later flush of this node (their rows follow its rows).
    pub(crate) async fn check_staged(&self) -> Result<()> {
        let Some(oldest) = self.staged.lock().expect("staged state lock").waiting.front().copied() else {
            return Ok(());
        };
        let (staging, node_id) = self.staging_and_node();
        if staging.exists(self.name(), &node_id, oldest).await? {
            return Ok(());
        }
        self.refresh().await?;
        let mut staged = self.staged.lock().expect("staged state lock");
        if staged.waiting.front() != Some(&oldest) {
            return Ok(());
        }
        staged.restage = true;
        drop(staged);
        *self.flush_failure.lock().expect("flush failure lock") = Some(self.set_aside(oldest).to_string());
        Err(self.set_aside(oldest))
    }

    fn set_aside(&self, upto: u64) -> StorageError {
        StorageError::StagedNotCommitted {
            table: self.name().to_string(),
            upto,
            reason: "the leader set it aside (see its log); its rows are staged again".to_string(),
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
            let segments = staging::segments_reached(&plan.commit);
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
