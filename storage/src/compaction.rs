//! Compaction: fewer, larger files, each sorted by `TimeGenerated` then `Computer`.
//!
//! Two steps, in every maintenance pass:
//! 1. an hour partition with at least `compact_min_files` files (one per flush) becomes one
//!    file, its rows sorted in memory (an hour at most);
//! 2. a closed day (ended `compact_day_after` ago) with two hour files or more becomes one
//!    file of the day (partition hour null), written an hour at a time: hours do not overlap,
//!    so the hours sorted one after the other are the day sorted, and a day is never held in
//!    memory, only the file being written, encoded. A day heavier than [`DAY_FILE_BYTES`] of
//!    Parquet becomes several files of the day, each holding the rows after the last one's.
//!
//! A query opens each file's footer and builds a reader and a pruning predicate for it: 30
//! days of hourly files are 720 of those per table, 30 day files 30. Records arriving for a
//! closed day later land in hour files of that day, and a later pass merges those into another
//! file of the day once there are two or more.
//!
//! **Invariants:** the files merged and the file written are swapped in one Delta commit (see
//! [`crate::maintenance`]); the rows written are counted against the rows read, and a
//! difference aborts the commit.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use deltalake_core::kernel::Add;
use deltalake_core::protocol::DeltaOperation;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::delta::{self, DataFile, FileWriter, off_the_runtime};
use crate::error::{Result, StorageError};
use crate::maintenance::MaintenanceReport;
use crate::sorted::{Chunk, DAY_MICROS, Partition, SortedRows};
use crate::table::Table;
use crate::wal::conform;

/// The Parquet bytes of one file of a day, at most (and an hour's rows beyond): 128 MiB holds
/// about 3.5 million changes, a day of 1,000 machines changing a file every 25 seconds.
pub(crate) const DAY_FILE_BYTES: u64 = 128 << 20;

impl Table {
    /// Compacts every hour partition with at least `compact_min_files` files, then every day
    /// closed at `now` with two hour files or more.
    pub async fn compact(&self, now: DateTime<Utc>) -> Result<MaintenanceReport> {
        let _guard = self.maintenance.lock().await;
        let mut report = self.compact_hours().await?;
        let days = self.compact_days(now).await?;
        report.days_compacted = days.days_compacted;
        report.files_compacted += days.files_compacted;
        Ok(report)
    }

    async fn compact_hours(&self) -> Result<MaintenanceReport> {
        let mut partitions: BTreeMap<(i32, i32), Vec<DataFile>> = BTreeMap::new();
        for file in self.snapshot().files.iter() {
            if let (Some(date), Some(hour)) = (file.date, file.hour) {
                partitions.entry((date, hour)).or_default().push(file.clone());
            }
        }
        let mut report = MaintenanceReport::default();
        for (_, group) in partitions {
            if group.len() < self.config.compact_min_files.max(2) {
                continue;
            }
            let rows = self.read_sorted(&group).await?;
            let writer = {
                let delta_table = self.delta.lock().await;
                FileWriter::new(&delta_table, &self.def, self.props.clone())
            };
            let adds = delta::write_rows(writer, &rows).await?;
            self.swap(&group, adds).await?;
            report.partitions_compacted += 1;
            report.files_compacted += group.len();
        }
        Ok(report)
    }

    async fn compact_days(&self, now: DateTime<Utc>) -> Result<MaintenanceReport> {
        let closed_before = closed_days_before(now, self.config.compact_day_after);
        let mut days: BTreeMap<i32, Vec<DataFile>> = BTreeMap::new();
        for file in self.snapshot().files.iter() {
            if let (Some(date), Some(_)) = (file.date, file.hour)
                && date < closed_before
            {
                days.entry(date).or_default().push(file.clone());
            }
        }
        let mut report = MaintenanceReport::default();
        for (_, group) in days {
            if group.len() < 2 {
                continue;
            }
            self.compact_day(&group).await?;
            report.days_compacted += 1;
            report.files_compacted += group.len();
        }
        Ok(report)
    }

    /// Writes the hour files `group` of one day as one file of the day (or several, past
    /// [`DAY_FILE_BYTES`]), an hour at a time.
    async fn compact_day(&self, group: &[DataFile]) -> Result<()> {
        let mut hours: BTreeMap<i32, Vec<DataFile>> = BTreeMap::new();
        for file in group {
            hours.entry(file.hour.expect("hour files only")).or_default().push(file.clone());
        }
        let mut writer = {
            let delta_table = self.delta.lock().await;
            FileWriter::new(&delta_table, &self.def, self.props.clone()).with_target_file_size(DAY_FILE_BYTES)
        };
        for files in hours.values() {
            let rows = self.read_sorted(files).await?;
            let written = async {
                for chunk in rows.chunks() {
                    writer.write(without_hour(chunk?)).await?;
                }
                Ok::<_, StorageError>(())
            };
            off_the_runtime(written).await?;
        }
        let adds = off_the_runtime(writer.finish()).await?;
        self.swap(group, adds).await
    }

    /// The rows of `files`, sorted in file order.
    async fn read_sorted(&self, files: &[DataFile]) -> Result<SortedRows> {
        let mut batches = Vec::new();
        for file in files {
            batches.extend(self.read_file(file).await?);
        }
        let def = self.def.clone();
        tokio::task::spawn_blocking(move || SortedRows::new(&def, batches)).await.expect("sort panicked")
    }

    async fn read_file(&self, file: &DataFile) -> Result<Vec<RecordBatch>> {
        let bytes = self.loc.store.get(&file.path).await?.bytes().await?;
        let schema = self.def.schema().clone();
        tokio::task::spawn_blocking(move || {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
            reader.map(|b| conform(&b?, &schema)).collect::<Result<Vec<_>>>()
        })
        .await
        .expect("Parquet decode panicked")
    }

    /// Commits `adds` in place of `removed` and makes them the live files, once the rows
    /// written are checked equal to the rows read.
    async fn swap(&self, removed: &[DataFile], adds: Vec<Add>) -> Result<()> {
        let rows_in: i64 = removed.iter().filter_map(|f| f.rows).sum();
        let rows_out: i64 = adds.iter().filter_map(|a| a.get_stats().ok().flatten().map(|s| s.num_records)).sum();
        if removed.iter().all(|f| f.rows.is_some()) && rows_in != rows_out {
            return Err(StorageError::Config(format!(
                "compaction of {} read {rows_in} rows but wrote {rows_out}; aborted",
                self.name()
            )));
        }
        let mut delta_table = self.delta.lock().await;
        let op = DeltaOperation::Optimize { predicate: None, target_size: 0 };
        delta::commit_rewrite(&mut delta_table, &self.def, adds, removed, op, false, self.fence.as_deref()).await?;
        self.show_files_of(&delta_table)?;
        self.metrics.compactions.inc();
        Ok(())
    }
}

/// The first day (days since the epoch) not closed at `now`: days before it ended at least
/// `after` ago.
fn closed_days_before(now: DateTime<Utc>, after: std::time::Duration) -> i32 {
    let after = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    let ended_by = now.timestamp_micros().saturating_sub(after);
    i32::try_from(ended_by.div_euclid(DAY_MICROS)).unwrap_or(i32::MAX)
}

/// `chunk` as rows of a day's file: no hour partition.
fn without_hour(chunk: Chunk) -> Chunk {
    Chunk { partition: Partition { hour: None, ..chunk.partition }, ..chunk }
}

#[cfg(test)]
mod tests {
    use arrow::array::new_null_array;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_is_closed_once_it_ended_the_delay_ago() {
        let hour = std::time::Duration::from_secs(3600);
        let may_2 = i32::try_from(at("2024-05-02T00:00:00Z").timestamp() / 86_400).unwrap();
        assert_eq!(closed_days_before(at("2024-05-02T00:59:59Z"), hour), may_2 - 1, "May 1 ended 59 min ago");
        assert_eq!(closed_days_before(at("2024-05-02T01:00:00Z"), hour), may_2, "May 1 ended an hour ago");
        assert_eq!(closed_days_before(at("2024-05-02T23:59:59Z"), hour), may_2);
    }

    #[test]
    fn rows_of_a_day_have_no_hour() {
        let registry = crate::TableRegistry::builtin();
        let schema = registry.get("Heartbeat").unwrap().schema().clone();
        let columns = schema.fields().iter().map(|f| new_null_array(f.data_type(), 2)).collect();
        let rows = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let hour = Chunk { rows, partition: Partition { date: Some(19_000), hour: Some(5) } };
        let day = without_hour(hour);
        assert_eq!(day.partition, Partition { date: Some(19_000), hour: None });
        assert_eq!(day.rows.schema(), schema);
        assert_eq!(day.rows.num_rows(), 2);
    }
}
