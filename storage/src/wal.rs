//! The write-ahead log of one table, with group commit.
//!
//! A table's WAL is a directory of segment files `<id:020>.wal`. Each entry is one acknowledged
//! append: `u32 length | u32 crc32 | Arrow IPC stream of the rows`, exactly the rows the buffer
//! holds, server-assigned columns included. A column null in every row of the entry is left out
//! (most of a wide table's columns, in most appends); replay restores it as nulls by name, as it
//! restores a column added to the table since ([`conform`]), so the rows come back equal.
//!
//! One OS thread per table owns the open segment ([`WalWriter`]). Appends queue on a channel; the
//! thread takes every append waiting, writes them, calls `fsync` once for all of them and only
//! then makes the rows visible in the buffer and acknowledges each caller. A flush *seals* the
//! segment through the same channel, so the rows it takes from the buffer are exactly the rows of
//! the segments it seals: no append can fall between the two.
//!
//! **Invariant:** a segment is deleted only after the Delta commit that holds its rows; the commit
//! records the highest sealed segment id as a Delta `txn` action (app id [`WAL_APP_ID`]), and
//! replay skips every segment at or below it. So a crash between commit and delete neither loses
//! nor duplicates a row.
//!
//! **Failures:** a group whose `write` fails for lack of space is cut back to the last
//! acknowledged entry and refused ([`StorageError::DiskFull`]); the WAL goes on, so writes resume
//! once space is freed. Any other failed write, and any failed `fsync`, stops the WAL until a
//! restart. The next segment is created ahead of time, so a seal needs no space.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StorageError};
use crate::metrics::TableMetrics;
use crate::reuse::{self, ReusedBuffer};
use crate::table::TableState;

/// The Delta `txn` application id under which each flush records the last WAL segment it holds.
pub const WAL_APP_ID: &str = "fimlake-wal";

const SEGMENT_MAGIC: &[u8; 8] = b"FLWAL\0\0\x01";
const ENTRY_HEADER: usize = 8;
/// A group stops taking appends past this many bytes, so one fsync never waits on a huge write.
const MAX_GROUP_BYTES: usize = 16 << 20;

/// Encodes rows as one WAL entry (header included), without the columns null in every row.
pub(crate) fn encode_entry(batch: &RecordBatch) -> Result<ReusedBuffer> {
    let batch = &without_null_columns(batch)?;
    // Room for the whole entry at once: grown by doubling, the buffer would be copied and its
    // fresh pages faulted in again at every step (a fifth of the server's page faults at ingest).
    let mut out = reuse::take(ENTRY_HEADER + encoded_size_estimate(batch));
    write_entry(&mut out, batch)?;
    Ok(out)
}

/// Writes `batch` as one entry into `out`, which is empty.
fn write_entry(out: &mut Vec<u8>, batch: &RecordBatch) -> Result<()> {
    assert!(out.is_empty(), "an entry is written into an empty buffer");
    out.resize(ENTRY_HEADER, 0);
    {
        let mut w = StreamWriter::try_new(&mut *out, batch.schema_ref())?;
        w.write(batch)?;
        w.finish()?;
    }
    let payload_len = out.len() - ENTRY_HEADER;
    let len = u32::try_from(payload_len)
        .map_err(|_| StorageError::Config(format!("WAL entry of {payload_len} bytes is too large")))?;
    let crc = crc32fast::hash(&out[ENTRY_HEADER..]);
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// `batch` without its columns that hold no value (all of them kept if none holds one, so the
/// entry still has a column to count its rows by).
fn without_null_columns(batch: &RecordBatch) -> Result<RecordBatch> {
    let holding: Vec<usize> =
        (0..batch.num_columns()).filter(|&index| batch.column(index).logical_null_count() < batch.num_rows()).collect();
    if holding.len() == batch.num_columns() || holding.is_empty() {
        return Ok(batch.clone());
    }
    Ok(batch.project(&holding)?)
}

/// About the bytes of `batch` as an IPC stream: its buffers (with their spare capacity, which
/// covers the padding) and the schema and batch headers, a few hundred bytes per column.
fn encoded_size_estimate(batch: &RecordBatch) -> usize {
    batch.get_array_memory_size() + 512 * batch.num_columns() + 1024
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// Segment ids present in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name.strip_suffix(".wal").and_then(|s| s.parse::<u64>().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StorageError::io(dir, e))
}

/// Deletes segments `<= upto` (they are committed to the Delta table).
pub(crate) fn delete_segments_upto(dir: &Path, upto: u64) -> Result<usize> {
    let mut n = 0;
    for id in list_segments(dir)? {
        if id <= upto {
            let p = segment_path(dir, id);
            match fs::remove_file(&p) {
                Ok(()) => n += 1,
                // Trimmed at the same time by another commit's reader (an ingest node).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&p, e)),
            }
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

/// What replay found in a table's WAL.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// The id the next segment must take.
    pub next_id: u64,
    /// Segments whose tail was torn (a crash during a write that was never acknowledged).
    pub torn: Vec<String>,
    /// Segments deleted because the Delta table already holds them.
    pub deleted: usize,
}

/// Reads every segment not yet committed (`> committed`), deleting those that are.
pub(crate) fn replay(dir: &Path, schema: &SchemaRef, committed: Option<u64>) -> Result<Replay> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    let mut out = Replay { next_id: committed.map_or(1, |c| c + 1), ..Default::default() };
    if let Some(c) = committed {
        out.deleted = delete_segments_upto(dir, c)?;
    }
    for id in list_segments(dir)? {
        out.next_id = out.next_id.max(id + 1);
        let path = segment_path(dir, id);
        let mut data = Vec::new();
        File::open(&path).and_then(|mut f| f.read_to_end(&mut data)).map_err(|e| StorageError::io(&path, e))?;
        let (batches, torn) = read_segment(&data, schema);
        if let Some(why) = torn {
            out.torn.push(format!("{}: {why}", path.display()));
        }
        out.rows += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        out.batches.extend(batches);
    }
    Ok(out)
}

/// The acknowledged rows of the segments after `committed`, read without changing anything
/// (for a read-only view of a data directory a server may be writing).
pub(crate) fn read_uncommitted(dir: &Path, schema: &SchemaRef, committed: Option<u64>) -> Result<Vec<RecordBatch>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for id in list_segments(dir)? {
        if committed.is_some_and(|c| id <= c) {
            continue;
        }
        let path = segment_path(dir, id);
        let data = match fs::read(&path) {
            Ok(d) => d,
            // Trimmed by the server after a flush that committed it: its rows are in the table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        out.extend(read_segment(&data, schema).0);
    }
    Ok(out)
}

/// Decodes a segment's entries; stops at the first entry that is incomplete or corrupt and says
/// why. Only the tail of a segment can be torn: every acknowledged entry was synced before the
/// next one was written.
fn read_segment(data: &[u8], schema: &SchemaRef) -> (Vec<RecordBatch>, Option<String>) {
    let mut batches = Vec::new();
    if data.len() < SEGMENT_MAGIC.len() {
        return (batches, (!data.is_empty()).then(|| "truncated segment header".to_string()));
    }
    if &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return (batches, Some("not a fimlake WAL segment (bad magic)".to_string()));
    }
    let mut pos = SEGMENT_MAGIC.len();
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < ENTRY_HEADER {
            return (batches, Some(format!("{} trailing bytes at offset {pos}", rest.len())));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        if rest.len() < ENTRY_HEADER + len {
            return (batches, Some(format!("entry at offset {pos} truncated")));
        }
        let payload = &rest[ENTRY_HEADER..ENTRY_HEADER + len];
        if crc32fast::hash(payload) != crc {
            return (batches, Some(format!("checksum mismatch at offset {pos}")));
        }
        match decode_payload(payload, schema) {
            Ok(b) => batches.extend(b),
            Err(e) => return (batches, Some(format!("undecodable entry at offset {pos}: {e}"))),
        }
        pos += ENTRY_HEADER + len;
    }
    (batches, None)
}

fn decode_payload(payload: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(payload, None)?;
    reader.map(|b| conform(&b?, schema)).collect()
}

/// Adapts a batch written under an older schema (a WAL entry, a Parquet file), or buffered rows
/// to a scan's schema, to `schema`, by column name: columns the batch lacks become nulls,
/// columns of another type are cast, and a value that cannot be cast is an error, never a silent
/// null. The row count is kept when `schema` has no column (a scan that only counts rows).
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let cols = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast_with_options(
                c,
                f.data_type(),
                &arrow::compute::CastOptions { safe: false, ..Default::default() },
            ),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), cols, &rows)?)
}

pub(crate) enum WalOp {
    Append { entry: ReusedBuffer, batch: RecordBatch, reply: oneshot::Sender<Result<()>> },
    Seal { reply: oneshot::Sender<Result<Sealed>> },
}

/// Rows taken from the buffer for a flush, and the highest segment id that holds them.
pub(crate) struct Sealed {
    pub upto: u64,
    pub batches: Vec<RecordBatch>,
}

/// The thread that owns a table's open segment.
pub(crate) struct WalWriter {
    table: String,
    dir: PathBuf,
    id: u64,
    file: File,
    /// Bytes of the open segment that hold acknowledged entries (and the header): where a group
    /// that failed half-written is cut back to.
    len: u64,
    /// Segment `id + 1`, created ahead of time, so that a flush can seal the open segment even
    /// on a full file system (and free the space of the segments it commits).
    spare: Option<File>,
    state: Arc<Mutex<TableState>>,
    metrics: TableMetrics,
    poisoned: Option<String>,
}

impl WalWriter {
    /// Opens segment `id` (new) and starts the writer thread.
    pub(crate) fn spawn(
        table: &str,
        dir: &Path,
        id: u64,
        state: Arc<Mutex<TableState>>,
        metrics: TableMetrics,
    ) -> Result<mpsc::Sender<WalOp>> {
        let file = create_segment(dir, id)?;
        let spare = create_spare(table, dir, id + 1);
        let (tx, rx) = mpsc::channel(1024);
        let writer = WalWriter {
            table: table.to_string(),
            dir: dir.to_path_buf(),
            id,
            file,
            len: SEGMENT_MAGIC.len() as u64,
            spare,
            state,
            metrics,
            poisoned: None,
        };
        std::thread::Builder::new()
            .name(format!("wal-{table}"))
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::io(dir, e))?;
        Ok(tx)
    }

    fn run(mut self, mut rx: mpsc::Receiver<WalOp>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = Vec::new();
            let mut seal = None;
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    WalOp::Append { entry, batch, reply } => {
                        bytes += entry.len();
                        group.push((entry, batch, reply));
                    }
                    WalOp::Seal { reply } => seal = Some(reply),
                }
                if seal.is_none() && bytes < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(reply) = seal {
                let _ = reply.send(self.seal());
            }
        }
    }

    fn commit_group(&mut self, group: Group) {
        if let Some(detail) = self.poisoned.clone() {
            refuse(group, || StorageError::WalPoisoned { table: self.table.clone(), detail: detail.clone() });
            return;
        }
        let started = Instant::now();
        let written = group.iter().try_for_each(|(entry, _, _)| self.file.write_all(entry));
        if let Err(e) = written {
            self.write_failed(group, e);
            return;
        }
        let synced = self.file.sync_data();
        self.metrics.wal_sync_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(e) = synced {
            self.poison(group, &format!("fsync: {e}"));
            return;
        }
        self.len += group.iter().map(|(entry, _, _)| entry.len() as u64).sum::<u64>();
        let batches: Vec<RecordBatch> = group.iter().map(|(_, b, _)| b.clone()).collect();
        let merged = match batches.as_slice() {
            [one] => one.clone(),
            many => arrow::compute::concat_batches(many[0].schema_ref(), many)
                .expect("batches of one table share its schema"),
        };
        self.state.lock().expect("table state lock").buffer.push(merged);
        for (_, _, reply) in group {
            let _ = reply.send(Ok(()));
        }
    }

    /// A `write` of the group failed, so none of it was acknowledged. On a full file system the
    /// segment is cut back to its acknowledged entries and the group refused: the next group
    /// tries again, so writes resume by themselves once space is freed. Any other failure, or a
    /// failed cut, stops the WAL.
    fn write_failed(&mut self, group: Group, e: std::io::Error) {
        if !is_disk_full(&e) {
            return self.poison(group, &format!("write: {e}"));
        }
        if let Err(cut) = self.file.set_len(self.len) {
            return self.poison(group, &format!("write: {e}; cutting back the partial write: {cut}"));
        }
        self.metrics.wal_disk_full.inc();
        let path = segment_path(&self.dir, self.id);
        tracing::warn!(table = %self.table, path = %path.display(), "WAL file system full; refusing writes until space is freed");
        let detail = format!("{}: {e}", path.display());
        refuse(group, || StorageError::DiskFull { table: self.table.clone(), detail: detail.clone() });
    }

    /// Stops the WAL for good (until a restart): after a failed `fsync` the file's contents are
    /// unknown, so no later acknowledgement could be trusted (PostgreSQL does the same).
    fn poison(&mut self, group: Group, failure: &str) {
        let detail = format!("{}: {failure}", segment_path(&self.dir, self.id).display());
        tracing::error!(table = %self.table, error = %detail, "WAL write failed; refusing further writes");
        self.poisoned = Some(detail.clone());
        self.state.lock().expect("table state lock").wal_failure = Some(detail.clone());
        refuse(group, || StorageError::Wal { table: self.table.clone(), detail: detail.clone() });
    }

    /// Starts a new segment and hands over the buffered rows, which are exactly the rows of
    /// every segment up to the one just closed.
    fn seal(&mut self) -> Result<Sealed> {
        let mut state = self.state.lock().expect("table state lock");
        if state.buffer.active_rows() == 0 {
            return Ok(Sealed { upto: self.id.saturating_sub(1), batches: Vec::new() });
        }
        let next = self.id + 1;
        self.file = match self.spare.take() {
            Some(f) => f,
            None => create_segment(&self.dir, next)?,
        };
        self.spare = create_spare(&self.table, &self.dir, next + 1);
        let upto = self.id;
        self.id = next;
        self.len = SEGMENT_MAGIC.len() as u64;
        Ok(Sealed { upto, batches: state.buffer.seal(upto) })
    }
}

type Group = Vec<(ReusedBuffer, RecordBatch, oneshot::Sender<Result<()>>)>;

/// Answers every append of a group with the same refusal.
fn refuse(group: Group, error: impl Fn() -> StorageError) {
    for (_, _, reply) in group {
        let _ = reply.send(Err(error()));
    }
}

/// Whether a write failed for lack of space (or quota), a condition that passes when space is freed.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Creates segment `id` ahead of time; on failure (a full disk) there is simply no spare, and
/// the next seal creates the segment itself.
fn create_spare(table: &str, dir: &Path, id: u64) -> Option<File> {
    match create_segment(dir, id) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(table, error = %e, "could not create the next WAL segment ahead of time");
            None
        }
    }
}

/// Creates segment `id` with its header, durably. A segment that could not be completed is
/// removed again, so that a later attempt can create it.
fn create_segment(dir: &Path, id: u64) -> Result<File> {
    let path = segment_path(dir, id);
    let mut f = OpenOptions::new().create_new(true).append(true).open(&path).map_err(|e| StorageError::io(&path, e))?;
    if let Err(e) = f.write_all(SEGMENT_MAGIC).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(&path);
        return Err(StorageError::io(&path, e));
    }
    sync_dir(dir)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TableRegistry;
    use arrow::array::{ArrayRef, StringArray};

    fn batch(schema: &SchemaRef, computers: &[&str]) -> RecordBatch {
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == "Computer" {
                    Arc::new(StringArray::from(computers.to_vec())) as ArrayRef
                } else {
                    new_null_array(f.data_type(), computers.len())
                }
            })
            .collect();
        RecordBatch::try_new(schema.clone(), cols).unwrap()
    }

    fn write_segment(dir: &Path, id: u64, entries: &[ReusedBuffer]) {
        let mut f = create_segment(dir, id).unwrap();
        for e in entries {
            f.write_all(e).unwrap();
        }
    }

    #[test]
    fn an_entry_is_encoded_into_the_room_reserved_for_it() {
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let names: Vec<String> = (0..5_000).map(|i| format!("computer-{i}")).collect();
        let one = batch(&schema, &["a"]);
        let many = batch(&schema, &names.iter().map(String::as_str).collect::<Vec<_>>());
        for b in [one, many.clone(), many.slice(10, 100)] {
            let b = without_null_columns(&b).unwrap();
            let reserved = ENTRY_HEADER + encoded_size_estimate(&b);
            let mut entry = Vec::with_capacity(reserved);
            write_entry(&mut entry, &b).unwrap();
            assert!(entry.len() <= reserved, "{} bytes encoded, {reserved} reserved", entry.len());
            assert_eq!(entry.capacity(), reserved, "never grown");
        }
    }

    #[test]
    fn an_entry_leaves_out_the_columns_null_in_every_row_and_replays_to_the_rows_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let rows = batch(&schema, &["a", "b"]);
        let entry = encode_entry(&rows).unwrap();
        let payload = &entry[ENTRY_HEADER..];
        let written = StreamReader::try_new(payload, None).unwrap().schema();
        let names: Vec<&str> = written.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["Computer"], "the one column holding a value");
        write_segment(dir.path(), 1, &[entry]);
        let replayed = replay(dir.path(), &schema, None).unwrap();
        assert_eq!(replayed.batches, [rows], "every column back, in the table's schema");
    }

    #[test]
    fn an_entry_of_rows_without_any_value_keeps_its_columns_to_count_them_by() {
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let columns = schema.fields().iter().map(|f| new_null_array(f.data_type(), 3)).collect();
        let rows = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let entry = encode_entry(&rows).unwrap();
        let decoded = decode_payload(&entry[ENTRY_HEADER..], &schema).unwrap();
        assert_eq!(decoded, [rows]);
    }

    #[test]
    fn replay_returns_every_entry_of_uncommitted_segments() {
        let dir = tempfile::tempdir().unwrap();
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let e1 = encode_entry(&batch(&schema, &["a", "b"])).unwrap();
        let e2 = encode_entry(&batch(&schema, &["c"])).unwrap();
        write_segment(dir.path(), 3, std::slice::from_ref(&e1));
        write_segment(dir.path(), 4, &[e1, e2]);
        let r = replay(dir.path(), &schema, Some(3)).unwrap();
        assert_eq!(r.rows, 3, "segment 3 is committed and skipped");
        assert_eq!(r.deleted, 1);
        assert_eq!(r.next_id, 5);
        assert!(r.torn.is_empty());
        assert_eq!(list_segments(dir.path()).unwrap(), vec![4]);
    }

    #[test]
    fn replay_tolerates_a_torn_tail_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let e1 = encode_entry(&batch(&schema, &["a"])).unwrap();
        let e2 = encode_entry(&batch(&schema, &["b", "c"])).unwrap();
        let mut full = SEGMENT_MAGIC.to_vec();
        full.extend_from_slice(&e1);
        let first_end = full.len();
        full.extend_from_slice(&e2);
        for cut in 0..full.len() {
            let (batches, torn) = read_segment(&full[..cut], &schema);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let expect = if cut >= first_end { 1 } else { 0 };
            assert_eq!(rows, expect, "cut at {cut}");
            let clean = cut == 0 || cut == SEGMENT_MAGIC.len() || cut == first_end;
            assert_eq!(torn.is_none(), clean, "cut at {cut}");
        }
        let (batches, torn) = read_segment(&full, &schema);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
        assert!(torn.is_none());
        let mut flipped = full.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        let (batches, torn) = read_segment(&flipped, &schema);
        assert_eq!(batches.len(), 1);
        assert!(torn.unwrap().contains("checksum"));
        drop(dir);
    }

    #[test]
    fn conform_fills_missing_columns_with_nulls() {
        let schema = TableRegistry::builtin().get("Heartbeat").unwrap().schema().clone();
        let old = Arc::new(arrow::datatypes::Schema::new(vec![schema.field_with_name("Computer").unwrap().clone()]));
        let b = RecordBatch::try_new(old, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap();
        let c = conform(&b, &schema).unwrap();
        assert_eq!(c.num_columns(), schema.fields().len());
        assert_eq!(c.column_by_name("Computer").unwrap().null_count(), 0);
        assert_eq!(c.column_by_name("OSType").unwrap().null_count(), 1);
    }
}
