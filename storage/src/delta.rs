//! The Delta Lake side of a table: opening or creating it, turning buffered rows into sorted,
//! partitioned Parquet files, committing them, and reading the live file list back.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use delta_kernel::expressions::Scalar;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, DataType as KernelType, Remove, StructType, Transaction};
use deltalake_core::logstore::{LogStoreRef, StorageConfig as DeltaStorageConfig, default_logstore};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake_core::{DeltaTable, ObjectStore, TableProperty};
use indexmap::IndexMap;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::task::JoinHandle;
use url::Url;

use crate::error::{Result, StorageError};
use crate::schema::{PARTITION_DATE, PARTITION_HOUR, PageCodec, TIME_COLUMN, TableDef};
use crate::sorted::{Chunk, Partition, SortedRows};

/// One live Parquet file of a table, as its Delta `add` action describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Path relative to the table root.
    pub path: Path,
    /// The path exactly as the `add` action spells it (what a `remove` action must repeat).
    pub action_path: String,
    pub size: u64,
    pub rows: Option<i64>,
    /// Bounds of `TimeGenerated` in the file, microseconds since the epoch.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Partition values: days since the epoch and hour of day.
    pub date: Option<i32>,
    pub hour: Option<i32>,
}

impl DataFile {
    /// Whether the file may hold rows with `TimeGenerated` in `[lo, hi]` (either end open).
    pub fn overlaps(&self, lo: Option<i64>, hi: Option<i64>) -> bool {
        let (fmin, fmax) = self.time_bounds();
        !(matches!((hi, fmin), (Some(h), Some(m)) if m > h) || matches!((lo, fmax), (Some(l), Some(m)) if m < l))
    }

    /// `TimeGenerated` bounds from the statistics, or else from the partition (one hour, or
    /// one day for a day's file).
    /// Delta statistics hold timestamps to the millisecond, truncated: the true maximum may be
    /// up to 999 µs above the recorded one, so the upper bound is widened by that much (else a
    /// filter on the exact microsecond of a file's last row would skip the file).
    pub fn time_bounds(&self) -> (Option<i64>, Option<i64>) {
        const HOUR: i64 = 3_600_000_000;
        let part = match (self.date, self.hour) {
            (Some(d), Some(h)) => Some((i64::from(d) * 24 * HOUR + i64::from(h) * HOUR, HOUR)),
            (Some(d), None) => Some((i64::from(d) * 24 * HOUR, 24 * HOUR)),
            _ => None,
        };
        let (start, end) = (part.map(|(start, _)| start), part.map(|(start, width)| start + width - 1));
        (self.min_time.or(start), self.max_time.map(|m| m + 999).or(end))
    }
}

/// Where a table's Delta log and files live.
#[derive(Clone)]
pub(crate) struct Location {
    /// Object store rooted at the table directory.
    pub store: Arc<dyn ObjectStore>,
    pub log_store: LogStoreRef,
    /// Whether the files are in an object store (each read a request that waits on the
    /// network), not on a local file system.
    pub remote: bool,
}

impl Location {
    /// `root_store` has "/" at the root of its namespace (a bucket, or `/` of the file system);
    /// `url` is the table's location within it.
    pub fn new(root_store: Arc<dyn ObjectStore>, url: Url) -> Result<Location> {
        let prefix = Path::from_url_path(url.path())?;
        let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(root_store.clone(), prefix));
        let log_store = default_logstore(store.clone(), root_store, &url, &DeltaStorageConfig::default());
        Ok(Location { store, log_store, remote: url.scheme() != "file" })
    }
}

/// Loads the table, creating it with the registry's schema and day/hour partitions if it does
/// not exist yet.
pub(crate) async fn open_or_create(def: &TableDef, loc: &Location) -> Result<DeltaTable> {
    let mut table = DeltaTable::new(loc.log_store.clone());
    let exists = table.verify_deltatable_existence().await.map_err(|e| StorageError::delta(def.name(), e))?;
    if exists {
        table.load().await.map_err(|e| StorageError::delta(def.name(), e))?;
        return add_new_columns(def, table).await;
    }
    let schema: StructType =
        def.delta_schema().as_ref().try_into_kernel().map_err(|e| {
            StorageError::Config(format!("table {}: schema not representable in Delta: {e}", def.name()))
        })?;
    CreateBuilder::new()
        .with_log_store(loc.log_store.clone())
        .with_table_name(def.name())
        .with_comment(def.description())
        .with_columns(schema.fields().cloned())
        .with_partition_columns([PARTITION_DATE, PARTITION_HOUR])
        .with_configuration_property(TableProperty::CheckpointInterval, Some("20"))
        .with_save_mode(SaveMode::ErrorIfExists)
        .await
        .map_err(|e| StorageError::delta(def.name(), e))
}

/// Loads a table another node creates (a cluster's leader): waits, reading every `poll`,
/// until it exists. Its schema is the leader's to evolve; this node commits nothing.
pub(crate) async fn open_existing(def: &TableDef, loc: &Location, poll: std::time::Duration) -> Result<DeltaTable> {
    let mut table = DeltaTable::new(loc.log_store.clone());
    let mut said = None;
    while !table.verify_deltatable_existence().await.map_err(|e| StorageError::delta(def.name(), e))? {
        if crate::handoff::time_to_say(&mut said) {
            tracing::info!(table = def.name(), "waiting for the cluster's leader to create the table");
        }
        tokio::time::sleep(poll).await;
    }
    table.load().await.map_err(|e| StorageError::delta(def.name(), e))?;
    Ok(table)
}

/// Schema evolution on upgrade: columns this release's definition has and the stored table
/// lacks are added to the Delta schema (one metadata commit); files written before read them
/// as null. A column whose type changed, or a new column that may not be null, cannot be
/// evolved and stops the start with an error naming it.
async fn add_new_columns(def: &TableDef, table: DeltaTable) -> Result<DeltaTable> {
    let stored = table.snapshot().map_err(|e| StorageError::delta(def.name(), e))?.schema();
    let wanted: StructType =
        def.delta_schema().as_ref().try_into_kernel().map_err(|e| {
            StorageError::Config(format!("table {}: schema not representable in Delta: {e}", def.name()))
        })?;
    let mut missing = Vec::new();
    for field in wanted.fields() {
        match stored.field(field.name()) {
            Some(existing) if existing.data_type() == field.data_type() => {}
            Some(existing) => {
                return Err(StorageError::Config(format!(
                    "table {}: column {} is stored as {:?} but this release defines it as {:?}; \
                     changing a column's type is not supported",
                    def.name(),
                    field.name(),
                    existing.data_type(),
                    field.data_type()
                )));
            }
            None if field.is_nullable() => missing.push(field.clone()),
            None => {
                return Err(StorageError::Config(format!(
                    "table {}: new column {} may not be null, so rows written before cannot have it",
                    def.name(),
                    field.name()
                )));
            }
        }
    }
    if missing.is_empty() {
        return Ok(table);
    }
    let names: Vec<&str> = missing.iter().map(|f| f.name().as_str()).collect();
    tracing::info!(table = def.name(), columns = ?names, "adding this release's new columns to the stored table");
    table.add_columns().with_fields(missing).await.map_err(|e| StorageError::delta(def.name(), e))
}

/// The Delta `txn` application id under which a cluster's leader records its lease epoch in
/// every commit it makes (the fencing token, see [`CommitFence`]).
pub const LEADER_APP_ID: &str = "fimlake-leader";

/// Leader work in a cluster: every commit first asks the fence for the epoch of the lease this
/// node holds. The commit is refused when there is none, or when the table already records a
/// newer epoch; it then records its own (app id [`LEADER_APP_ID`]), so that of two nodes both
/// believing they lead, the Delta log's conflict check lets only one commit at a time through.
pub trait CommitFence: Send + Sync {
    /// The lease epoch, or why this node may not commit now.
    fn epoch(&self) -> std::result::Result<u64, String>;
}

/// The WAL segment id recorded under `app_id` by the last flush commit, if any.
pub(crate) async fn committed_wal_segment(table: &DeltaTable, name: &str, app_id: &str) -> Result<Option<u64>> {
    Ok(transaction_version(table, name, app_id).await?.map(|v| v as u64))
}

async fn transaction_version(table: &DeltaTable, name: &str, app_id: &str) -> Result<Option<i64>> {
    let snapshot = table.snapshot().map_err(|e| StorageError::delta(name, e))?;
    snapshot.transaction_version(table.log_store().as_ref(), app_id).await.map_err(|e| StorageError::delta(name, e))
}

/// The live files of the table's current snapshot.
pub(crate) fn live_files(table: &DeltaTable, name: &str) -> Result<Vec<DataFile>> {
    let snapshot = table.snapshot().map_err(|e| StorageError::delta(name, e))?;
    let batches = snapshot.add_actions_batches(true).map_err(|e| StorageError::delta(name, e))?;
    let mut files = Vec::new();
    for b in batches {
        let paths = b.column_by_name("path").map(|c| arrow::compute::cast(c, &DataType::Utf8)).transpose()?;
        let Some(paths) = paths else { continue };
        let paths = paths.as_string::<i32>();
        let int64 = |name: &str| -> Result<Option<ArrayRef>> {
            Ok(b.column_by_name(name).map(|c| arrow::compute::cast(c, &DataType::Int64)).transpose()?)
        };
        let micros = |name: &str| -> Result<Option<ArrayRef>> {
            Ok(b.column_by_name(name)
                .map(|c| {
                    arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .and_then(|c| arrow::compute::cast(&c, &DataType::Int64))
                })
                .transpose()?)
        };
        let size = int64("size_bytes")?;
        let rows = int64("num_records")?;
        let min = micros(&format!("min.{TIME_COLUMN}"))?;
        let max = micros(&format!("max.{TIME_COLUMN}"))?;
        let date = b
            .column_by_name(&format!("partition.{PARTITION_DATE}"))
            .map(|c| arrow::compute::cast(c, &DataType::Date32))
            .transpose()?;
        let hour = b
            .column_by_name(&format!("partition.{PARTITION_HOUR}"))
            .map(|c| arrow::compute::cast(c, &DataType::Int32))
            .transpose()?;
        let get_i64 = |a: &Option<ArrayRef>, i: usize| {
            a.as_ref().and_then(|a| (!a.is_null(i)).then(|| a.as_primitive::<Int64Type>().value(i)))
        };
        for i in 0..b.num_rows() {
            files.push(DataFile {
                path: Path::from_url_path(paths.value(i))?,
                action_path: paths.value(i).to_string(),
                size: get_i64(&size, i).unwrap_or(0) as u64,
                rows: get_i64(&rows, i),
                min_time: get_i64(&min, i),
                max_time: get_i64(&max, i),
                date: date
                    .as_ref()
                    .and_then(|a| (!a.is_null(i)).then(|| a.as_primitive::<arrow::datatypes::Date32Type>().value(i))),
                hour: hour
                    .as_ref()
                    .and_then(|a| (!a.is_null(i)).then(|| a.as_primitive::<arrow::datatypes::Int32Type>().value(i))),
            });
        }
    }
    Ok(files)
}

/// Parquet settings of every file fimlake writes: each column's codec ([`PageCodec`]),
/// page-level statistics (so the page index is written), row groups sized for scans, and the
/// sort order recorded in the footer.
pub(crate) fn writer_properties(def: &TableDef, row_group_rows: usize, zstd_level: i32) -> Result<WriterProperties> {
    let sorting: Vec<SortingColumn> = crate::sorted::sort_key_indices(def)
        .into_iter()
        .map(|i| SortingColumn { column_idx: i as i32, descending: false, nulls_first: true })
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_sorting_columns(Some(sorting));
    for column in def.columns().iter().filter(|c| c.page_codec() == PageCodec::Lz4) {
        builder = builder.set_column_compression(ColumnPath::from(column.name.as_str()), Compression::LZ4_RAW);
    }
    Ok(builder.build())
}

/// Writes `rows` as Parquet files (one per partition) to the table's storage; they are not
/// committed yet.
pub(crate) async fn write_files(
    table: &DeltaTable,
    def: &TableDef,
    rows: &SortedRows,
    props: WriterProperties,
) -> Result<Vec<Add>> {
    write_rows(FileWriter::new(table, def, props), rows).await
}

/// Writes `rows` with `writer`, which needs no lock on the table (made under one, the table's
/// configuration read): a compaction encodes while flushes commit.
pub(crate) async fn write_rows(mut writer: FileWriter, rows: &SortedRows) -> Result<Vec<Add>> {
    let work = async {
        for chunk in rows.chunks() {
            writer.write(chunk?).await?;
        }
        writer.finish().await
    };
    off_the_runtime(work).await
}

/// Partitions whose files may be closing at once, beside the one being written: a flush's
/// partitions come one after another (its rows are sorted by time), so a partition is finished
/// once the next one starts, and closing it (its last pages, the footer, the upload) overlaps the
/// next one's encoding. Each open writer holds a compressor and a dictionary per column and its
/// encoded row group: with every partition of a flush open until the end (a day of backfill is
/// ~25), they were ~170 MiB of loading's peak (BENCHMARKS.md, 2026-12-05 evening).
const MAX_CLOSING: usize = 2;

/// Parquet files being written from chunks of rows in the Delta schema, in file order: one
/// file per partition, each held encoded in memory until its partition is done.
pub(crate) struct FileWriter {
    /// Makes each partition's writer (the table's schema, storage and configuration).
    table: DeltaTable,
    props: WriterProperties,
    target_file_size: Option<u64>,
    /// The partition being written and its writer.
    open: Option<(Partition, RecordBatchWriter)>,
    /// Partitions done and closing, oldest first.
    closing: VecDeque<JoinHandle<Result<Vec<Add>>>>,
    adds: Vec<Add>,
    name: String,
}

impl FileWriter {
    /// Opens no file yet: each partition's writer is made when its first chunk comes, so a
    /// table delta-rs cannot write is refused by the first [`FileWriter::write`].
    pub(crate) fn new(table: &DeltaTable, def: &TableDef, props: WriterProperties) -> FileWriter {
        FileWriter {
            table: table.clone(),
            props,
            target_file_size: None,
            open: None,
            closing: VecDeque::new(),
            adds: Vec::new(),
            name: def.name().to_string(),
        }
    }

    /// Rolls to a new file of the partition once the one being written reaches `bytes`.
    pub(crate) fn with_target_file_size(mut self, bytes: u64) -> FileWriter {
        self.target_file_size = Some(bytes);
        self
    }

    /// Encodes `chunk` into the file being written for its partition; the Delta writer takes
    /// the rows as they are (it does not split them by partition: a copy of every row). A chunk
    /// of another partition than the last one's closes the last one's file in the background.
    pub(crate) async fn write(&mut self, chunk: Chunk) -> Result<()> {
        if self.open.as_ref().is_none_or(|(partition, _)| *partition != chunk.partition) {
            self.close_open().await?;
            self.open = Some((chunk.partition, self.partition_writer()?));
        }
        let (_, writer) = self.open.as_mut().expect("opened above");
        let values = partition_values(chunk.partition);
        writer
            .write_partition(chunk.rows, &values, WriteMode::Default)
            .await
            .map_err(|e| StorageError::delta(&self.name, e))?;
        Ok(())
    }

    /// Writes the files to storage and returns their `add` actions.
    pub(crate) async fn finish(mut self) -> Result<Vec<Add>> {
        self.close_open().await?;
        while let Some(closing) = self.closing.pop_front() {
            self.adds.extend(joined(closing).await?);
        }
        Ok(self.adds)
    }

    fn partition_writer(&self) -> Result<RecordBatchWriter> {
        let writer = RecordBatchWriter::for_table(&self.table)
            .map_err(|e| StorageError::delta(&self.name, e))?
            .with_writer_properties(self.props.clone());
        Ok(match self.target_file_size {
            Some(bytes) => writer.with_target_file_size(bytes),
            None => writer,
        })
    }

    /// Starts closing the open partition's file on the runtime, after waiting for the oldest
    /// closing one if [`MAX_CLOSING`] are.
    async fn close_open(&mut self) -> Result<()> {
        let Some((_, mut writer)) = self.open.take() else { return Ok(()) };
        if self.closing.len() >= MAX_CLOSING {
            let oldest = self.closing.pop_front().expect("MAX_CLOSING is above zero");
            self.adds.extend(joined(oldest).await?);
        }
        let name = self.name.clone();
        self.closing
            .push_back(tokio::spawn(async move { writer.flush().await.map_err(|e| StorageError::delta(&name, e)) }));
        debug_assert!(self.closing.len() <= MAX_CLOSING);
        Ok(())
    }
}

/// The files a background close wrote. A close that panicked panics here, as it would have
/// inline; one cancelled was cancelled by the runtime shutting down.
async fn joined(closing: JoinHandle<Result<Vec<Add>>>) -> Result<Vec<Add>> {
    match closing.await {
        Ok(adds) => adds,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StorageError::ShuttingDown),
    }
}

/// `partition` as the Delta writer names a file's partition (and as it would have read it from
/// the partition columns: a date, an integer, or a null of either type).
fn partition_values(partition: Partition) -> IndexMap<String, Scalar> {
    let date = partition.date.map_or(Scalar::Null(KernelType::DATE), Scalar::Date);
    let hour = partition.hour.map_or(Scalar::Null(KernelType::INTEGER), Scalar::Integer);
    IndexMap::from([(PARTITION_DATE.to_string(), date), (PARTITION_HOUR.to_string(), hour)])
}

/// Runs `work`, which holds the CPU (Parquet encoding and zstd take up to a second per flush),
/// so that requests are not held up behind it: on a multi-thread runtime the worker first hands
/// its other tasks to another thread (`block_in_place`); measured: 16x10000 ingest from ~80,000
/// to ~115,000 records/s, BENCHMARKS.md. Not to be nested.
pub(crate) async fn off_the_runtime<T>(work: impl Future<Output = T>) -> T {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(work))
    } else {
        work.await
    }
}

/// Who commits and on what authority: the WAL's application id, and the cluster's fence.
#[derive(Clone, Copy)]
pub(crate) struct Committer<'a> {
    pub wal_app_id: &'a str,
    pub fence: Option<&'a dyn CommitFence>,
}

/// Commits a flush: the new files and the WAL segment they hold, atomically.
pub(crate) async fn commit_append(
    table: &mut DeltaTable,
    def: &TableDef,
    adds: Vec<Add>,
    wal_upto: u64,
    committer: Committer<'_>,
) -> Result<u64> {
    let props = CommitProperties::default()
        .with_application_transaction(Transaction::new(committer.wal_app_id, wal_upto as i64))
        .with_metadata([("fimlake.operation".to_string(), serde_json::json!("flush"))]);
    commit(table, def, props, adds.into_iter().map(Action::Add).collect(), append(), committer.fence).await
}

/// Commits the flushes ingest nodes staged ([`crate::staging`]): their files, and for each
/// node the WAL segment they reach, under the node's application id, atomically.
pub(crate) async fn commit_staged(
    table: &mut DeltaTable,
    def: &TableDef,
    adds: Vec<Add>,
    segments: Vec<(String, u64)>,
    fence: Option<&dyn CommitFence>,
) -> Result<u64> {
    let transactions = segments.into_iter().map(|(app_id, upto)| Transaction::new(app_id, upto as i64)).collect();
    let props = CommitProperties::default()
        .with_application_transactions(transactions)
        .with_metadata([("fimlake.operation".to_string(), serde_json::json!("commit staged flushes"))]);
    commit(table, def, props, adds.into_iter().map(Action::Add).collect(), append(), fence).await
}

/// What a commit of new rows is in the Delta log: an append to the day/hour partitions.
fn append() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![PARTITION_DATE.to_string(), PARTITION_HOUR.to_string()]),
        predicate: None,
    }
}

/// Commits a rewrite (compaction or retention): files added and removed in one atomic step,
/// marked `dataChange=false` for compaction so streaming readers skip it.
pub(crate) async fn commit_rewrite(
    table: &mut DeltaTable,
    def: &TableDef,
    adds: Vec<Add>,
    removed: &[DataFile],
    op: DeltaOperation,
    data_change: bool,
    fence: Option<&dyn CommitFence>,
) -> Result<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut actions: Vec<Action> = adds
        .into_iter()
        .map(|mut a| {
            a.data_change = data_change;
            Action::Add(a)
        })
        .collect();
    for f in removed {
        // As the file's `add` spelled them: every partition column, null ones included (a
        // day's file has no hour).
        let day = f.date.and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)).map(|d| d.to_string());
        let partition_values = HashMap::from([
            (PARTITION_DATE.to_string(), day),
            (PARTITION_HOUR.to_string(), f.hour.map(|h| h.to_string())),
        ]);
        actions.push(Action::Remove(Remove {
            path: f.action_path.clone(),
            deletion_timestamp: Some(now),
            data_change,
            extended_file_metadata: Some(true),
            partition_values: Some(partition_values),
            size: Some(f.size as i64),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        }));
    }
    commit(table, def, CommitProperties::default(), actions, op, fence).await
}

async fn commit(
    table: &mut DeltaTable,
    def: &TableDef,
    mut props: CommitProperties,
    actions: Vec<Action>,
    op: DeltaOperation,
    fence: Option<&dyn CommitFence>,
) -> Result<u64> {
    if let Some(fence) = fence {
        let epoch = check_fence(table, def.name(), fence).await?;
        props = props.with_application_transaction(Transaction::new(LEADER_APP_ID, epoch as i64));
    }
    let snapshot = table.snapshot().map_err(|e| StorageError::delta(def.name(), e))?;
    let finalized =
        match CommitBuilder::from(props).with_actions(actions).build(Some(snapshot), table.log_store(), op).await {
            Ok(finalized) => finalized,
            Err(e) => {
                if let Some(fence) = fence {
                    // Refused by the log because a newer leader committed meanwhile: say so.
                    table.update_state().await.map_err(|e| StorageError::delta(def.name(), e))?;
                    check_fence(table, def.name(), fence).await?;
                }
                return Err(StorageError::delta(def.name(), e));
            }
        };
    let version = finalized.version();
    table.state = Some(finalized.snapshot());
    Ok(version)
}

/// The epoch to commit under, or [`StorageError::Fenced`].
pub(crate) async fn check_fence(table: &DeltaTable, name: &str, fence: &dyn CommitFence) -> Result<u64> {
    let fenced = |reason: String| StorageError::Fenced { table: name.to_string(), reason };
    let epoch = fence.epoch().map_err(fenced)?;
    match transaction_version(table, name, LEADER_APP_ID).await? {
        Some(recorded) if recorded > epoch as i64 => Err(fenced(format!(
            "the table records leader epoch {recorded}, newer than this node's {epoch}: another node leads now"
        ))),
        _ => Ok(epoch),
    }
}
