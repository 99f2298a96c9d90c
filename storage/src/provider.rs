//! The DataFusion [`TableProvider`] of a table: the committed Parquet files of its Delta
//! snapshot, pruned by the query's time range, unioned with the rows still in the buffer.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::delta::DataFile;
use crate::schema::TIME_COLUMN;
use crate::wal::conform;
use object_store::ObjectStore;

use crate::schema::TableDef;
use crate::table::{Table, TableSnapshot};

/// What a scan reads: a live [`Table`] (a fresh snapshot per scan) or a frozen one
/// ([`crate::ReadOnlyTable`], for reading a data directory without a server).
pub trait ScanSource: Send + Sync {
    fn def(&self) -> &Arc<TableDef>;
    fn store(&self) -> Arc<dyn ObjectStore>;
    fn snapshot(&self) -> TableSnapshot;
    /// Whether the files are in an object store, whose reads wait on the network.
    fn remote(&self) -> bool;
}

impl ScanSource for Table {
    fn def(&self) -> &Arc<TableDef> {
        Table::def(self)
    }
    fn store(&self) -> Arc<dyn ObjectStore> {
        self.loc.store.clone()
    }
    fn snapshot(&self) -> TableSnapshot {
        Table::snapshot(self)
    }
    fn remote(&self) -> bool {
        self.loc.remote
    }
}

/// Query access to one table. Cheap to create; every scan takes a fresh snapshot.
pub struct TableScanProvider {
    table: Arc<dyn ScanSource>,
}

impl TableScanProvider {
    pub fn new(table: Arc<dyn ScanSource>) -> Self {
        TableScanProvider { table }
    }

    fn object_store_url(&self) -> ObjectStoreUrl {
        ObjectStoreUrl::parse(format!("fimlake://{}", self.table.def().name().to_ascii_lowercase()))
            .expect("table names are valid URL hosts")
    }

    /// Lower bounds of `TimeGenerated`, tightest first, each with at least `rows` of the
    /// committed files' rows at or after it by the files' statistics: the first from the newest
    /// files that hold `rows` rows, each next from four times as many files. A search for the
    /// newest rows (a top-k) looks that far back first. Empty when a file lacks statistics or
    /// the files hold fewer rows.
    pub fn newest_rows_bounds(&self, rows: usize) -> Vec<i64> {
        newest_rows_bounds(&self.table.snapshot().files, rows)
    }

    /// Whether its files are in an object store, where every read waits on the network: a
    /// query engine then reads more files at once than it has cores (`fimlake_query`'s
    /// `REMOTE_PARTITIONS_PER_CORE`).
    pub fn remote(&self) -> bool {
        self.table.remote()
    }

    /// Where its scans read files from: the URL its plans name and the store behind it (a node
    /// running another node's plan fragment registers them to read the same files).
    pub fn object_store(&self) -> (ObjectStoreUrl, Arc<dyn ObjectStore>) {
        (self.object_store_url(), self.table.store())
    }
}

impl std::fmt::Debug for TableScanProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableScanProvider").field("table", &self.table.def().name()).finish()
    }
}

#[async_trait]
impl TableProvider for TableScanProvider {
    /// Strings as `Utf8View` ([`TableDef::scan_schema`]).
    fn schema(&self) -> SchemaRef {
        self.table.def().scan_schema().clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter is used to prune (files by time, row groups and pages by statistics) and is
    /// applied again above the scan, so none is `Exact`.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let snapshot = self.table.snapshot();
        let (lo, hi) = time_bounds(filters);
        let files: Vec<&DataFile> = snapshot.files.iter().filter(|f| f.overlaps(lo, hi)).collect();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        if !files.is_empty() {
            let url = self.object_store_url();
            let env = state.runtime_env();
            if env.object_store(&url).is_err() {
                env.register_object_store(url.as_ref(), self.table.store());
            }
            // Row-filter pushdown as the session says (`QueryConfig::parquet_pushdown_filters`).
            let options = state.config_options().execution.parquet.clone();
            // Footers and page indexes parsed once per file and kept in the runtime's metadata
            // cache (files never change once written): a query over 700 hourly files parsed
            // every footer again.
            let metadata_cache = env.cache_manager.get_file_metadata_cache();
            let readers = CachedParquetFileReaderFactory::new(self.table.store(), metadata_cache);
            let mut source = ParquetSource::new(schema.clone())
                .with_table_parquet_options(datafusion::config::TableParquetOptions {
                    global: options,
                    ..Default::default()
                })
                .with_parquet_file_reader_factory(Arc::new(readers));
            if let Some(pred) = conjunction(filters.to_vec()) {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                let physical = state.create_physical_expr(pred, &df_schema)?;
                source = source.with_predicate(physical);
            }
            let partitions = state.config_options().execution.target_partitions;
            let groups = file_groups(&files, &schema, partitions);
            let config = FileScanConfigBuilder::new(url, Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        let projected = match projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => schema,
        };
        if !snapshot.batches.is_empty() {
            let batches = as_scanned(&snapshot.batches, projection, &projected)?;
            let mem = MemorySourceConfig::try_new(&[batches], projected.clone(), None)?.with_limit(limit);
            inputs.push(DataSourceExec::from_data_source(mem));
        }
        if inputs.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

/// The buffered rows' `projection` in the scan's schema (`projected`): only the columns the
/// query reads, their `Utf8` columns as views of the same bytes (a view per row is made, no
/// string is copied).
fn as_scanned(
    batches: &[RecordBatch],
    projection: Option<&Vec<usize>>,
    projected: &SchemaRef,
) -> DfResult<Vec<RecordBatch>> {
    batches
        .iter()
        .map(|batch| {
            let batch = match projection {
                Some(p) => batch.project(p)?,
                None => batch.clone(),
            };
            conform(&batch, projected).map_err(|e| DataFusionError::External(Box::new(e)))
        })
        .collect()
}

/// [`TableScanProvider::newest_rows_bounds`] of `files`.
fn newest_rows_bounds(files: &[DataFile], rows: usize) -> Vec<i64> {
    let mut newest_first: Vec<(i64, i64, u64)> = Vec::with_capacity(files.len());
    for file in files {
        let ((Some(min), Some(max)), Some(count)) = (file.time_bounds(), file.rows) else { return Vec::new() };
        newest_first.push((min, max, u64::try_from(count).unwrap_or(0)));
    }
    newest_first.sort_by_key(|(_, max, _)| std::cmp::Reverse(*max));
    let wanted = u64::try_from(rows).unwrap_or(u64::MAX);
    let (mut seen, mut lowest, mut next_at) = (0u64, i64::MAX, None);
    let mut bounds = Vec::new();
    for (index, (min, _, count)) in newest_first.iter().enumerate() {
        seen += count;
        lowest = lowest.min(*min);
        let files_taken = index + 1;
        let take = match next_at {
            None => seen >= wanted,
            Some(at) => files_taken == at,
        };
        if take {
            bounds.push(lowest);
            next_at = Some(files_taken * 4);
        }
    }
    bounds
}

/// Spreads files over up to `n` groups of similar total size (largest first), each group
/// read newest first: a query for the latest rows (`top 100 by TimeGenerated`, `sort by
/// TimeGenerated desc | take 10`) finds them in the first files, and DataFusion's dynamic filter
/// then skips older files by their statistics (not all: files are prepared ahead of the
/// filter, their first batch read; `fimlake_query`'s `topk.rs` bounds such a query up front).
fn file_groups(files: &[&DataFile], schema: &SchemaRef, n: usize) -> Vec<FileGroup> {
    let n = n.max(1).min(files.len());
    let mut sorted: Vec<&&DataFile> = files.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.size));
    let mut groups: Vec<(u64, Vec<&DataFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for f in sorted {
        let g = groups.iter_mut().min_by_key(|g| g.0).expect("n >= 1");
        g.0 += f.size;
        g.1.push(f);
    }
    groups
        .into_iter()
        .map(|(_, mut files)| {
            files.sort_by_key(|f| std::cmp::Reverse(f.time_bounds().1));
            FileGroup::new(files.iter().map(|f| partitioned_file(f, schema)).collect())
        })
        .collect()
}

/// A file to scan, with what the Delta log knows of it as inexact statistics (its rows, its
/// `TimeGenerated` bounds): DataFusion skips a file whose bounds a dynamic filter (of a join or a
/// top-k) excludes without opening it. Inexact, so never used as an answer.
fn partitioned_file(file: &DataFile, schema: &SchemaRef) -> PartitionedFile {
    let mut statistics = Statistics::new_unknown(schema);
    if let Some(rows) = file.rows.and_then(|r| usize::try_from(r).ok()) {
        statistics.num_rows = Precision::Inexact(rows);
    }
    if let Ok(index) = schema.index_of(TIME_COLUMN)
        && let DataType::Timestamp(TimeUnit::Microsecond, zone) = schema.field(index).data_type()
    {
        let bound = |micros: Option<i64>| match micros {
            Some(m) => Precision::Inexact(ScalarValue::TimestampMicrosecond(Some(m), zone.clone())),
            None => Precision::Absent,
        };
        let (min, max) = file.time_bounds();
        let column = &mut statistics.column_statistics[index];
        column.min_value = bound(min);
        column.max_value = bound(max);
    }
    PartitionedFile::new(file.path.to_string(), file.size).with_statistics(Arc::new(statistics))
}

/// The `TimeGenerated` range, in microseconds and inclusive, that `filters` (a conjunction)
/// allow. Filters this cannot read leave the range open; they still apply above the scan.
pub fn time_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut tighten_lo = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
    let mut tighten_hi = |v: i64| hi = Some(hi.map_or(v, |h| h.min(v)));
    let mut stack: Vec<&Expr> = filters.iter().collect();
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                stack.push(left);
                stack.push(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (is_time_column(left), is_time_column(right)) {
                    (true, false) => (*op, micros(right)),
                    (false, true) => (op.swap().unwrap_or(*op), micros(left)),
                    _ => continue,
                };
                let Some(v) = value else { continue };
                match op {
                    Operator::Gt => tighten_lo(v.saturating_add(1)),
                    Operator::GtEq => tighten_lo(v),
                    Operator::Lt => tighten_hi(v.saturating_sub(1)),
                    Operator::LtEq => tighten_hi(v),
                    Operator::Eq => {
                        tighten_lo(v);
                        tighten_hi(v)
                    }
                    _ => {}
                }
            }
            Expr::Between(Between { expr, negated: false, low, high }) if is_time_column(expr) => {
                if let Some(v) = micros(low) {
                    tighten_lo(v)
                }
                if let Some(v) = micros(high) {
                    tighten_hi(v)
                }
            }
            _ => {}
        }
    }
    (lo, hi)
}

fn is_time_column(e: &Expr) -> bool {
    match e {
        Expr::Column(c) => c.name == TIME_COLUMN,
        Expr::Cast(c) => is_time_column(&c.expr),
        Expr::TryCast(c) => is_time_column(&c.expr),
        _ => false,
    }
}

/// A timestamp literal in microseconds (rounded outward is not needed: callers use it as an
/// inclusive bound and sub-microsecond precision does not exist in stored data).
fn micros(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{ident as col, lit};

    fn ts(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into())))
    }

    #[test]
    fn time_bounds_read_comparisons_between_and_conjunctions() {
        let t = || col(TIME_COLUMN);
        type Bounds = (Option<i64>, Option<i64>);
        let cases: Vec<(Vec<Expr>, Bounds)> = vec![
            (vec![], (None, None)),
            (vec![t().gt_eq(ts(100))], (Some(100), None)),
            (vec![t().gt(ts(100))], (Some(101), None)),
            (vec![t().lt(ts(200))], (None, Some(199))),
            (vec![ts(200).gt(t())], (None, Some(199))),
            (vec![t().gt_eq(ts(100)).and(t().lt_eq(ts(200)))], (Some(100), Some(200))),
            (vec![t().gt_eq(ts(100)), t().gt_eq(ts(150))], (Some(150), None)),
            (vec![t().between(ts(10), ts(20))], (Some(10), Some(20))),
            (vec![t().eq(ts(5))], (Some(5), Some(5))),
            (vec![t().gt_eq(ts(100)).or(t().lt(ts(5)))], (None, None)),
            (vec![col("Computer").gt_eq(lit("a"))], (None, None)),
            (vec![t().not_between(ts(10), ts(20))], (None, None)),
            (vec![t().gt_eq(lit(ScalarValue::TimestampNanosecond(Some(1_500), None)))], (Some(1), None)),
        ];
        for (filters, expected) in cases {
            assert_eq!(time_bounds(&filters), expected, "{filters:?}");
        }
    }

    #[test]
    fn newest_rows_bounds_widen_four_times_as_many_files_at_a_time() {
        let file = |hour: i64, rows: i64| DataFile {
            path: format!("h{hour}").as_str().into(),
            action_path: format!("h{hour}"),
            size: 1,
            rows: Some(rows),
            min_time: Some(hour * 100),
            max_time: Some(hour * 100 + 50),
            date: None,
            hour: None,
        };
        // Ten files of 10 rows, hours 0..10, listed in no order.
        let files: Vec<DataFile> = [3, 9, 0, 5, 7, 1, 8, 2, 6, 4].iter().map(|h| file(*h, 10)).collect();
        assert_eq!(newest_rows_bounds(&files, 25), [700], "the 3 newest files hold 25 rows; 12 is more than there are");
        assert_eq!(newest_rows_bounds(&files, 5), [900, 600], "1 file, then 4; 16 is more than there are");
        assert_eq!(newest_rows_bounds(&files, 101), Vec::<i64>::new(), "fewer rows than wanted");
        let mut unknown = files.clone();
        unknown[4].rows = None;
        assert_eq!(newest_rows_bounds(&unknown, 5), Vec::<i64>::new(), "a file without statistics");
    }

    #[test]
    fn file_groups_balance_sizes_and_read_newest_first() {
        let file = |name: &str, size: u64, max_time: i64| DataFile {
            path: name.into(),
            action_path: name.into(),
            size,
            rows: None,
            min_time: Some(max_time - 10),
            max_time: Some(max_time),
            date: None,
            hour: None,
        };
        let files = [file("old", 50, 1_000), file("new", 10, 9_000), file("mid", 40, 5_000), file("big", 90, 2_000)];
        let refs: Vec<&DataFile> = files.iter().collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            TIME_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        let groups = file_groups(&refs, &schema, 2);
        let names: Vec<Vec<String>> =
            groups.iter().map(|g| g.iter().map(|f| f.object_meta.location.to_string()).collect()).collect();
        assert_eq!(names, [vec!["new", "big"], vec!["mid", "old"]]);
        let newest = groups[0].iter().next().and_then(|f| f.statistics.clone()).expect("statistics");
        let time = &newest.column_statistics[0];
        let micros = |v: i64| Precision::Inexact(ScalarValue::TimestampMicrosecond(Some(v), Some("UTC".into())));
        assert_eq!(time.min_value, micros(8_990));
        assert_eq!(time.max_value, micros(9_999), "the millisecond statistics widened by 999 us");
    }

    #[test]
    fn files_overlap_by_stats_or_partition_hour() {
        let f = DataFile {
            path: "a".into(),
            action_path: "a".into(),
            size: 1,
            rows: None,
            min_time: Some(100_000),
            max_time: Some(200_000),
            date: None,
            hour: None,
        };
        assert!(f.overlaps(None, None));
        assert!(f.overlaps(Some(200_000), None));
        // Statistics are milliseconds, truncated: the file may hold rows up to 200_999 µs.
        assert!(f.overlaps(Some(200_999), None));
        assert!(!f.overlaps(Some(201_000), None));
        assert!(!f.overlaps(None, Some(99_999)));
        assert!(f.overlaps(Some(150_000), Some(160_000)));
        let p = DataFile { min_time: None, max_time: None, date: Some(1), hour: Some(2), ..f };
        let start = 86_400_000_000 + 2 * 3_600_000_000;
        assert!(p.overlaps(Some(start), Some(start)));
        assert!(!p.overlaps(Some(start + 3_600_000_000), None));
    }
}
