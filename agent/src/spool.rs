//! The on-disk spool: every batch of records is written here (fsynced) before it is sent, and
//! deleted only once the server has acknowledged it. Records survive agent restarts and
//! server outages; a batch the server refuses for good is kept in `rejected/`, never dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fimlake_client::records::{self, Post, Sent};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the spool is full ({used} of {max} bytes); the changes stay pending and are found again by the next scan")]
    Full { used: u64, max: u64 },
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    next: AtomicU64,
    /// Bytes of the batches waiting: counted once at open, then kept up to date, so that a
    /// push does not list the directory.
    used: AtomicU64,
}

/// One spooled batch.
pub struct Batch {
    pub path: PathBuf,
    pub table: String,
    pub records: Vec<Value>,
}

impl Spool {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir.join("rejected")).map_err(io)?;
        let waiting = Self::list_in(dir).map_err(io)?;
        let last = waiting.last().map(|(seq, _, _)| *seq).unwrap_or(0);
        let used = waiting.iter().filter_map(|(_, _, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        Ok(Spool { dir: dir.to_path_buf(), max_bytes, next: AtomicU64::new(last + 1), used: AtomicU64::new(used) })
    }

    fn list_in(dir: &Path) -> std::io::Result<Vec<(u64, String, PathBuf)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else { continue };
            let Some((seq, table)) = stem.split_once('-') else { continue };
            let Ok(seq) = seq.parse::<u64>() else { continue };
            out.push((seq, table.to_string(), e.path()));
        }
        out.sort();
        Ok(out)
    }

    /// Bytes of batches waiting.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    fn release(&self, path: &Path) {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let _ = self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| Some(u.saturating_sub(len)));
    }

    /// Stores `records` for `table` durably (temporary file, fsync, rename, directory fsync).
    pub fn push(&self, table: &str, records: &[Value]) -> Result<(), SpoolError> {
        if records.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(records).expect("records serialize");
        let used = self.used_bytes();
        if used + body.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full { used, max: self.max_bytes });
        }
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}-{table}.json"));
        let tmp = self.dir.join(format!(".{seq:020}-{table}.tmp"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| SpoolError::Io { path: p, source }
        };
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        self.used.fetch_add(body.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// The oldest waiting batch.
    pub fn oldest(&self) -> Result<Option<Batch>, SpoolError> {
        let io = |source| SpoolError::Io { path: self.dir.clone(), source };
        let Some((_, table, path)) = Self::list_in(&self.dir).map_err(io)?.into_iter().next() else { return Ok(None) };
        let bytes = std::fs::read(&path).map_err(|source| SpoolError::Io { path: path.clone(), source })?;
        match serde_json::from_slice::<Vec<Value>>(&bytes) {
            Ok(records) => Ok(Some(Batch { path, table, records })),
            Err(e) => {
                // Only a complete file is ever renamed into place, so this is outside damage.
                tracing::error!(path = %path.display(), error = %e, "unreadable spool file moved to rejected/");
                self.reject(&path)?;
                self.oldest()
            }
        }
    }

    pub fn done(&self, batch: &Batch) -> Result<(), SpoolError> {
        self.release(&batch.path);
        std::fs::remove_file(&batch.path).map_err(|source| SpoolError::Io { path: batch.path.clone(), source })
    }

    pub fn reject(&self, path: &Path) -> Result<(), SpoolError> {
        self.release(path);
        let to = self.dir.join("rejected").join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &to).map_err(|source| SpoolError::Io { path: to, source })
    }
}

/// Posts one batch to `{server}/v1/tables/{table}/records`, gzipped: one attempt, classified
/// by the clients' one retry rule (`fimlake_client::retry`).
pub async fn send(client: &reqwest::Client, server: &str, api_key: Option<&str>, batch: &Batch) -> Sent {
    let body = serde_json::to_vec(&batch.records).expect("records serialize");
    let url = records::url(server, &batch.table);
    let post = Post { url: &url, api_key, content_type: "application/json", timeout: Duration::from_secs(30) };
    records::post(client, post, records::gzip(&body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_back_in_order_across_a_reopen_and_a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push("Heartbeat", &[serde_json::json!({"a": 1})]).unwrap();
        s.push("ConfigurationChange", &[serde_json::json!({"b": 2})]).unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push("Heartbeat", &[serde_json::json!({"c": 3})]).unwrap();
        let mut tables = Vec::new();
        while let Some(b) = s.oldest().unwrap() {
            tables.push((b.table.clone(), b.records[0].clone()));
            s.done(&b).unwrap();
        }
        assert_eq!(tables[0], ("Heartbeat".to_string(), serde_json::json!({"a": 1})));
        assert_eq!(tables[1].0, "ConfigurationChange");
        assert_eq!(tables[2].1, serde_json::json!({"c": 3}));
        let small = Spool::open(dir.path(), 10).unwrap();
        assert!(matches!(
            small.push("Heartbeat", &[serde_json::json!({"long": "x".repeat(20)})]),
            Err(SpoolError::Full { .. })
        ));
    }
}
