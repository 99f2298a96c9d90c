//! One table at run time: its write buffer, WAL writer, Delta table and flush loop.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use deltalake_core::DeltaTable;
use parquet::file::properties::WriterProperties;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::budget::BufferBudget;
use crate::buffer::Buffer;
use crate::config::{CommitMode, StorageConfig};
use crate::delta::{self, CommitFence, Committer, DataFile, Location};
use crate::error::{Result, StorageError};
use crate::metrics::TableMetrics;
use crate::schema::TableDef;
use crate::sorted::SortedRows;
use crate::staging::Staging;
use crate::wal::{self, Sealed, WalOp, WalWriter};

impl TableState {
    /// Makes `files`, read at table `version`, the live files.
    fn show_files(&mut self, files: Vec<DataFile>, version: Option<u64>) {
        self.files = Arc::new(files);
        self.files_version = version;
    }
}

pub(crate) struct TableState {
    pub(crate) buffer: Buffer,
    pub(crate) files: Arc<Vec<DataFile>>,
    /// The table version `files` were read at: a commit whose outcome was an error may still
    /// have landed, and the next read of the log must then show its files.
    pub(crate) files_version: Option<u64>,
    /// Set when the WAL failed: the table takes no more writes until a restart.
    pub(crate) wal_failure: Option<String>,
}

/// What a query sees of a table: the committed files and the buffered rows, taken together
/// under one lock, so that no row is seen twice or missed while a flush completes.
#[derive(Clone)]
pub struct TableSnapshot {
    pub files: Arc<Vec<DataFile>>,
    pub batches: Vec<RecordBatch>,
}

impl TableSnapshot {
    pub fn buffered_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Outcome of one flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushOutcome {
    pub rows: usize,
    pub files: usize,
    pub version: Option<u64>,
}

pub struct Table {
    pub(crate) def: Arc<TableDef>,
    pub(crate) config: Arc<StorageConfig>,
    pub(crate) loc: Location,
    pub(crate) state: Arc<Mutex<TableState>>,
    wal_tx: mpsc::Sender<WalOp>,
    wal_dir: PathBuf,
    /// The Delta table; its lock is the commit lock: every commit and every vacuum holds it.
    pub(crate) delta: tokio::sync::Mutex<DeltaTable>,
    /// Why the last flush failed, until one succeeds: named in the refusals it causes.
    pub(crate) flush_failure: Mutex<Option<String>>,
    /// A sealed flush whose write or commit failed, to be retried before anything else.
    pub(crate) flush_lock: tokio::sync::Mutex<Option<Sealed>>,
    /// Serialises compaction, retention and vacuum.
    pub(crate) maintenance: tokio::sync::Mutex<()>,
    pub(crate) metrics: TableMetrics,
    pub(crate) props: WriterProperties,
    flush_wanted: Notify,
    /// The buffer budget all tables share (their buffers count in it).
    budget: Arc<BufferBudget>,
    /// In a cluster, the leader lease every commit is fenced with; `None` on a single node and
    /// while a node commits its own WAL before it joins.
    pub(crate) fence: Option<Arc<dyn CommitFence>>,
    pub(crate) wal_app_id: String,
    /// In a cluster: the staged flushes (an ingest node's own, all of them for the leader).
    pub(crate) staging: Option<Staging>,
    /// Staged mode: the flushes waiting for the leader's commit and the last segment committed.
    pub(crate) staged: Mutex<StagedState>,
}

/// An ingest node's view of its staged flushes ([`crate::handoff`]).
#[derive(Debug, Default)]
pub(crate) struct StagedState {
    /// The last WAL segment of each staged flush waiting for the leader's commit, oldest first.
    pub(crate) waiting: VecDeque<u64>,
    /// The last WAL segment the table records for this node.
    pub(crate) committed: Option<u64>,
    /// The leader set a staged flush aside: the rows of every flush in progress are staged
    /// again, as one, before anything else.
    pub(crate) restage: bool,
}

impl Table {
    /// Opens (or creates) the Delta table, replays the WAL into the buffer and starts the WAL
    /// writer on a fresh segment.
    pub(crate) async fn open(
        def: Arc<TableDef>,
        config: Arc<StorageConfig>,
        loc: Location,
        metrics: TableMetrics,
        budget: Arc<BufferBudget>,
        fence: Option<Arc<dyn CommitFence>>,
        staging: Option<Staging>,
    ) -> Result<Arc<Table>> {
        let wal_app_id = config.wal_app_id();
        let delta = match (config.commits, &staging) {
            (CommitMode::Own, _) => delta::open_or_create(&def, &loc).await?,
            (CommitMode::Staged, Some(staging)) => {
                let poll = config.refresh.unwrap_or(Duration::from_secs(2));
                let node_id = config.node_id.as_deref().expect("a staged table belongs to a cluster node");
                crate::handoff::wait_until_unstaged(staging, def.name(), node_id, poll).await?;
                delta::open_existing(&def, &loc, poll).await?
            }
            (CommitMode::Staged, None) => {
                return Err(StorageError::Config("staged commits need a cluster node's staging area".into()));
            }
        };
        let committed = delta::committed_wal_segment(&delta, def.name(), &wal_app_id).await?;
        let files = delta::live_files(&delta, def.name())?;
        let wal_dir = config.wal_dir().join(def.name());
        let schema = def.schema().clone();
        let dir = wal_dir.clone();
        let replay = tokio::task::spawn_blocking(move || wal::replay(&dir, &schema, committed))
            .await
            .expect("WAL replay panicked")?;
        for torn in &replay.torn {
            tracing::warn!(table = def.name(), "WAL segment ends in an unacknowledged partial write, ignored: {torn}");
        }
        if replay.rows > 0 {
            tracing::info!(table = def.name(), rows = replay.rows, "replayed acknowledged rows from the WAL");
        }
        let mut buffer = Buffer::new(budget.clone());
        for b in replay.batches {
            buffer.push(b);
        }
        let files_version = delta.version();
        let state =
            Arc::new(Mutex::new(TableState { buffer, files: Arc::new(files), files_version, wal_failure: None }));
        let wal_tx = WalWriter::spawn(def.name(), &wal_dir, replay.next_id, state.clone(), metrics.clone())?;
        let props = delta::writer_properties(&def, config.row_group_rows, config.zstd_level)?;
        let table = Arc::new(Table {
            def,
            config,
            loc,
            state,
            wal_tx,
            wal_dir,
            delta: tokio::sync::Mutex::new(delta),
            flush_failure: Mutex::new(None),
            flush_lock: tokio::sync::Mutex::new(None),
            maintenance: tokio::sync::Mutex::new(()),
            metrics,
            props,
            flush_wanted: Notify::new(),
            budget,
            fence,
            wal_app_id,
            staging,
            staged: Mutex::new(StagedState { waiting: VecDeque::new(), committed, restage: false }),
        });
        table.update_gauges();
        Ok(table)
    }

    pub fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    pub fn name(&self) -> &str {
        self.def.name()
    }

    /// Appends rows; returns once they are durable in the WAL and visible to queries.
    ///
    /// `batch` must have exactly the table's schema. A full buffer is refused with
    /// [`StorageError::Backpressure`] before anything is written.
    pub async fn append(&self, batch: RecordBatch) -> Result<()> {
        if batch.schema_ref() != self.def.schema() {
            return Err(StorageError::SchemaMismatch {
                table: self.name().to_string(),
                detail: "the batch's columns differ from the table's".to_string(),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.check_capacity()?;
        let entry = wal::encode_entry(&batch)?;
        let (reply, rx) = oneshot::channel();
        self.wal_tx.try_send(WalOp::Append { entry, batch, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => self.backpressure(),
            mpsc::error::TrySendError::Closed(_) => StorageError::ShuttingDown,
        })?;
        rx.await.map_err(|_| StorageError::ShuttingDown)??;
        let active_bytes = self.update_gauges();
        if active_bytes >= self.config.flush_bytes {
            self.flush_wanted.notify_one();
        }
        Ok(())
    }

    /// [`StorageError::Backpressure`] when the buffers of all tables together are full: what
    /// `append` would answer now. Callers check it before reading a request, so that a full
    /// server does not decode bodies it will refuse.
    /// The server's own tables (the audit trails) are never refused: their rows are few, and
    /// losing them to a burst of records would hide who did what during it.
    pub fn check_capacity(&self) -> Result<()> {
        if self.budget.full() && !self.def.is_internal() {
            // Full: make sure a flush of this table is on its way, whatever the size threshold
            // (the other tables' flush loops see the full budget on their next tick).
            self.flush_wanted.notify_one();
            return Err(self.backpressure());
        }
        Ok(())
    }

    /// Like [`Table::check_capacity`], but a full buffer is first given up to `timeout` to
    /// drain: the flush it asks for usually makes room well before a refused client would
    /// retry.
    pub async fn wait_for_capacity(&self, timeout: Duration) -> Result<()> {
        if self.check_capacity().is_ok() {
            return Ok(());
        }
        self.budget.wait_for_room(timeout).await;
        self.check_capacity()
    }

    /// Like [`Table::wait_for_capacity`] for a decoded write of `bytes` (Arrow), after waiting
    /// for its turn when the buffers are past half full ([`BufferBudget::pace`]); `timeout`
    /// bounds both waits together.
    pub async fn wait_for_turn(&self, bytes: usize, timeout: Duration) -> Result<()> {
        let started = tokio::time::Instant::now();
        if !self.def.is_internal() {
            self.budget.pace(bytes, timeout).await;
        }
        self.wait_for_capacity(timeout.saturating_sub(started.elapsed())).await
    }

    fn backpressure(&self) -> StorageError {
        let buffered_bytes = self.budget.used();
        StorageError::Backpressure {
            table: self.name().to_string(),
            buffered_bytes,
            retry_after: Duration::from_secs(1),
            flush_failure: self.flush_failure.lock().expect("flush failure lock").clone(),
            awaiting_leader: !self.staged.lock().expect("staged state lock").waiting.is_empty(),
        }
    }

    /// Publishes the buffer and file gauges; returns the active buffer's bytes.
    pub(crate) fn update_gauges(&self) -> usize {
        let st = self.state.lock().expect("table state lock");
        self.metrics.buffered_rows.set(st.buffer.total_rows() as i64);
        self.metrics.buffered_bytes.set(st.buffer.total_bytes() as i64);
        self.metrics.files.set(st.files.len() as i64);
        self.metrics.bytes.set(st.files.iter().map(|f| f.size as i64).sum());
        st.buffer.active_bytes
    }

    /// `Err` with the reason when the table cannot take writes (its WAL failed).
    pub fn health(&self) -> std::result::Result<(), String> {
        match &self.state.lock().expect("table state lock").wal_failure {
            Some(e) => Err(format!("table {}: {e}", self.name())),
            None => Ok(()),
        }
    }

    /// The committed files and buffered rows, consistently.
    pub fn snapshot(&self) -> TableSnapshot {
        let st = self.state.lock().expect("table state lock");
        TableSnapshot { files: st.files.clone(), batches: st.buffer.batches() }
    }

    /// The oldest `_TimeReceived` (µs) among the rows not committed yet, if any.
    pub fn oldest_uncommitted_receipt(&self) -> Option<i64> {
        self.state.lock().expect("table state lock").buffer.oldest_received()
    }

    /// Whether the flush loop should flush now.
    /// (A flush that failed is retried; the rows of staged flushes wait for the leader.)
    pub(crate) fn flush_due(&self) -> bool {
        let failed = self.flush_failure.lock().expect("flush failure lock").is_some();
        let st = self.state.lock().expect("table state lock");
        let b = &st.buffer;
        b.active_rows > 0
            && (b.active_bytes >= self.config.flush_bytes
                || b.budget.full()
                || b.oldest.is_some_and(|t| t.elapsed() >= self.config.flush_age))
            || failed
    }

    pub(crate) async fn flush_requested(&self) {
        self.flush_wanted.notified().await
    }

    /// Writes the buffered rows to Parquet and commits them to the Delta table (on an ingest
    /// node: stages them and waits for the leader's commit, [`crate::handoff`]), then trims the
    /// WAL. A failed flush keeps its rows (buffered and in the WAL) and is retried by the next
    /// call before any newer rows.
    pub async fn flush(&self) -> Result<FlushOutcome> {
        match self.config.commits {
            CommitMode::Own => self.flush_own().await,
            CommitMode::Staged => self.flush_staged().await,
        }
    }

    /// What the flush loop runs: a flush, except that an ingest node does not wait for the
    /// leader's commit of what it staged (up to [`crate::handoff::STAGED_IN_FLIGHT`] flushes).
    pub(crate) async fn flush_step(&self) -> Result<FlushOutcome> {
        match self.config.commits {
            CommitMode::Own => self.flush_own().await,
            CommitMode::Staged => self.stage_flush().await,
        }
    }

    /// Takes the active rows from the WAL writer, for a flush.
    pub(crate) async fn seal(&self) -> Result<Sealed> {
        let (reply, rx) = oneshot::channel();
        self.wal_tx.send(WalOp::Seal { reply }).await.map_err(|_| StorageError::ShuttingDown)?;
        rx.await.map_err(|_| StorageError::ShuttingDown)?
    }

    async fn flush_own(&self) -> Result<FlushOutcome> {
        let mut pending = self.flush_lock.lock().await;
        let retry = pending.is_some();
        let sealed = match pending.take() {
            Some(s) => s,
            None => self.seal().await?,
        };
        if sealed.batches.is_empty() {
            return Ok(FlushOutcome::default());
        }
        let result = self.write_and_commit(&sealed, retry).await;
        *self.flush_failure.lock().expect("flush failure lock") = result.as_ref().err().map(|e| e.to_string());
        match result {
            Ok(outcome) => {
                self.trim_wal(sealed.upto).await?;
                Ok(outcome)
            }
            Err(e) => {
                self.metrics.flush_failures.inc();
                *pending = Some(sealed);
                Err(e)
            }
        }
    }

    /// Flushes until no acknowledged row is left buffered: a flush that failed earlier is
    /// retried first, with only its own rows, so the rows that came after it need one more.
    pub async fn flush_all_rows(&self) -> Result<()> {
        self.flush().await?;
        let left = self.state.lock().expect("table state lock").buffer.active_rows();
        if left > 0 {
            self.flush().await?;
        }
        Ok(())
    }

    async fn write_and_commit(&self, sealed: &Sealed, retry: bool) -> Result<FlushOutcome> {
        let started = Instant::now();
        let sorted = self.sort(sealed).await?;
        let (version, files) = self.commit_sorted(&sorted, sealed, retry).await?;
        Ok(self.record_flush(sorted.rows(), files, version, started))
    }

    /// A sealed flush's rows in the order its files take, sorted on a blocking thread.
    pub(crate) async fn sort(&self, sealed: &Sealed) -> Result<SortedRows> {
        let def = self.def.clone();
        let batches = sealed.batches.clone();
        tokio::task::spawn_blocking(move || SortedRows::new(&def, batches)).await.expect("sort panicked")
    }

    /// Counts a flush written (on an ingest node: staged) in the metrics.
    pub(crate) fn record_flush(
        &self,
        rows: usize,
        files: usize,
        version: Option<u64>,
        started: Instant,
    ) -> FlushOutcome {
        self.update_gauges();
        self.metrics.flushes.inc();
        self.metrics.flushed_rows.inc_by(rows as u64);
        self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(table = self.name(), rows, files, "flushed");
        FlushOutcome { rows, files, version }
    }

    /// Commits a flush's sorted rows itself; returns the commit's version and its file count.
    async fn commit_sorted(&self, sorted: &SortedRows, sealed: &Sealed, retry: bool) -> Result<(Option<u64>, usize)> {
        let mut delta = self.delta.lock().await;
        if retry || self.config.refresh.is_some() {
            // An earlier attempt may have committed and then failed to say so; in a cluster,
            // other nodes commit too (their WALs, after a restart).
            delta.update_state().await.map_err(|e| StorageError::delta(self.name(), e))?;
        }
        let already = retry
            && delta::committed_wal_segment(&delta, self.name(), &self.wal_app_id)
                .await?
                .is_some_and(|c| c >= sealed.upto);
        let (version, nfiles) = if already {
            (delta.version(), 0)
        } else {
            let adds = delta::write_files(&delta, &self.def, sorted, self.props.clone()).await?;
            let n = adds.len();
            let v = match delta::commit_append(&mut delta, &self.def, adds, sealed.upto, self.committer()).await {
                Ok(v) => v,
                Err(e) => {
                    let _ = delta.update_state().await;
                    return Err(e);
                }
            };
            (Some(v), n)
        };
        let files = delta::live_files(&delta, self.name())?;
        {
            let mut st = self.state.lock().expect("table state lock");
            st.show_files(files, delta.version());
            st.buffer.finish_flush(sealed.upto);
        }
        Ok((version, nfiles))
    }

    pub(crate) fn committer(&self) -> Committer<'_> {
        Committer { wal_app_id: &self.wal_app_id, fence: self.fence.as_deref() }
    }

    /// Reads the Delta log again for commits made by other nodes and publishes the live files.
    /// Under the commit lock, so the file list and the buffer stay consistent.
    /// On an ingest node, the commits of its staged flushes show here: their rows then leave
    /// the buffer in the same step as their files join the live files, and the WAL is trimmed.
    pub async fn refresh(&self) -> Result<()> {
        let mut delta = self.delta.lock().await;
        delta.update_state().await.map_err(|e| StorageError::delta(self.name(), e))?;
        self.metrics.log_read_timestamp.set(chrono::Utc::now().timestamp());
        let oldest_waiting = self.staged.lock().expect("staged state lock").waiting.front().copied();
        let recorded = match oldest_waiting {
            Some(_) => delta::committed_wal_segment(&delta, self.name(), &self.wal_app_id).await?,
            None => None,
        };
        let finished = recorded.filter(|r| oldest_waiting.is_some_and(|upto| *r >= upto));
        let shown = self.state.lock().expect("table state lock").files_version;
        if delta.version() == shown && finished.is_none() {
            return Ok(());
        }
        let files = delta::live_files(&delta, self.name())?;
        {
            let mut st = self.state.lock().expect("table state lock");
            st.show_files(files, delta.version());
            if let Some(upto) = finished {
                st.buffer.finish_flush(upto);
                let mut staged = self.staged.lock().expect("staged state lock");
                staged.waiting.retain(|w| *w > upto);
                staged.committed = Some(upto);
            }
        }
        drop(delta);
        self.update_gauges();
        if let Some(upto) = finished {
            self.trim_wal(upto).await?;
        }
        Ok(())
    }

    /// Deletes the WAL segments up to `upto`, whose rows are committed.
    pub(crate) async fn trim_wal(&self, upto: u64) -> Result<()> {
        let dir = self.wal_dir.clone();
        tokio::task::spawn_blocking(move || wal::delete_segments_upto(&dir, upto)).await.expect("WAL trim panicked")?;
        Ok(())
    }

    /// Replaces the live file list with that of the version `delta` has now, after a commit
    /// (maintenance, the leader's of staged flushes) or a read of the log; nothing to do when
    /// that version is shown already.
    pub(crate) fn show_files_of(&self, delta: &DeltaTable) -> Result<()> {
        if self.state.lock().expect("table state lock").files_version == delta.version() {
            return Ok(());
        }
        let files = delta::live_files(delta, self.name())?;
        self.state.lock().expect("table state lock").show_files(files, delta.version());
        self.update_gauges();
        Ok(())
    }
}
