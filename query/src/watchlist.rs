//! Watchlists, what Sentinel's `_GetWatchlist('name')` reads: CSV files in
//! `<data_dir>/watchlists/<name>.csv` (a header row, then one row per item; every column is a
//! string). The result has `SearchKey` (the column of that name, else the first column) and
//! the file's columns. Files are read at each query, so editing one takes effect at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use fimlake_kql::{Catalog, TableList};

/// Watchlist files larger than this are refused (they are read while a query is planned).
pub const MAX_WATCHLIST_BYTES: u64 = 16 << 20;

/// The tables of a workspace and its watchlists.
pub struct WorkspaceCatalog {
    pub tables: TableList,
    /// `<data_dir>/watchlists`, when there is a data directory.
    pub watchlists: Option<PathBuf>,
}

impl Catalog for WorkspaceCatalog {
    fn table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.tables.table(name)
    }
    fn table_names(&self) -> Vec<String> {
        self.tables.table_names()
    }
    fn watchlist(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, String> {
        match &self.watchlists {
            Some(dir) => load(dir, name),
            None => Ok(None),
        }
    }
}

/// Reads `<dir>/<name>.csv`; `Ok(None)` when there is none.
pub fn load(dir: &Path, name: &str) -> Result<Option<Arc<dyn TableProvider>>, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err("a watchlist name has letters, digits, '_' and '-' only".into());
    }
    let path = dir.join(format!("{name}.csv"));
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if size > MAX_WATCHLIST_BYTES {
        return Err(format!("{} is larger than {MAX_WATCHLIST_BYTES} bytes", path.display()));
    }
    let mut reader =
        csv::ReaderBuilder::new().flexible(false).from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers: Vec<String> =
        reader.headers().map_err(|e| format!("{}: {e}", path.display()))?.iter().map(str::to_string).collect();
    if headers.is_empty() || headers.iter().any(String::is_empty) {
        return Err(format!("{}: the header row must name every column", path.display()));
    }
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{} row {}: {e}", path.display(), i + 2))?;
        for (c, v) in record.iter().enumerate() {
            columns[c].push(v.to_string());
        }
    }
    let key = headers.iter().position(|h| h == "SearchKey").unwrap_or(0);
    let mut fields = vec![Field::new("SearchKey", DataType::Utf8, true)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(columns[key].clone()))];
    for (h, values) in headers.iter().zip(&columns) {
        if h == "SearchKey" {
            continue;
        }
        fields.push(Field::new(h, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(values.clone())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
    let table = MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(table)))
}
