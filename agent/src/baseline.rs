//! The baseline: the last known state of every monitored path, persisted crash-safely as a
//! snapshot (`baseline.json`, replaced atomically) plus a journal of later updates
//! (`baseline.journal`, one JSON line per path, fsynced). Loading applies the journal to the
//! snapshot; a torn last line (a crash mid-write) is ignored, so that path is checked again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::FileState;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a baseline: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BaselineError + '_ {
    move |source| BaselineError::Io { path: path.to_path_buf(), source }
}

#[derive(Serialize, Deserialize)]
struct JournalEntry {
    path: String,
    state: Option<FileState>,
}

pub struct Baseline {
    dir: PathBuf,
    pub files: BTreeMap<String, FileState>,
    /// Whether a baseline existed when loaded (else the first scan builds it and reports nothing).
    pub existed: bool,
    journal: Option<File>,
    /// Entries appended to the journal since the last snapshot.
    journaled: usize,
}

impl Baseline {
    pub fn load(dir: &Path) -> Result<Baseline, BaselineError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let snap = dir.join("baseline.json");
        let journal = dir.join("baseline.journal");
        let mut files = BTreeMap::new();
        let mut existed = false;
        // Parsed as it is read: the file is not held in memory beside what it holds.
        match File::open(&snap) {
            Ok(f) => {
                files = serde_json::from_reader(BufReader::with_capacity(1 << 20, f))
                    .map_err(|e| BaselineError::Corrupt { path: snap.clone(), source: e })?;
                existed = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snap)(e)),
        }
        if let Ok(f) = File::open(&journal) {
            existed = true;
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line is an update that never completed: the next scan redoes it.
                let Ok(e) = serde_json::from_str::<JournalEntry>(&line) else { break };
                match e.state {
                    Some(s) => files.insert(e.path, s),
                    None => files.remove(&e.path),
                };
            }
        }
        let journaled = std::fs::metadata(&journal).map(|m| m.len() as usize).unwrap_or(0);
        Ok(Baseline { dir: dir.to_path_buf(), files, existed, journal: None, journaled })
    }

    /// Records the new state of some paths (`None`: removed), durably, before returning.
    pub fn update(&mut self, entries: &[(String, Option<FileState>)]) -> Result<(), BaselineError> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("baseline.journal");
        if self.journal.is_none() {
            self.journal = Some(OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?);
        }
        let mut buf = Vec::new();
        for (p, s) in entries {
            serde_json::to_writer(&mut buf, &JournalEntry { path: p.clone(), state: s.clone() })
                .expect("a baseline entry serializes");
            buf.push(b'\n');
        }
        let f = self.journal.as_mut().expect("opened above");
        f.write_all(&buf).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))?;
        self.apply(entries);
        self.journaled += entries.len();
        self.existed = true;
        Ok(())
    }

    /// Applies updates in memory only: durable at the next [`Baseline::compact`].
    pub fn apply(&mut self, entries: &[(String, Option<FileState>)]) {
        for (p, s) in entries {
            match s {
                Some(s) => self.files.insert(p.clone(), s.clone()),
                None => self.files.remove(p),
            };
        }
    }

    /// Writes the whole baseline as the new snapshot (temporary file, fsync, rename) and
    /// empties the journal.
    pub fn compact(&mut self) -> Result<(), BaselineError> {
        let snap = self.dir.join("baseline.json");
        let tmp = self.dir.join("baseline.json.tmp");
        let f = File::create(&tmp).map_err(io(&tmp))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        serde_json::to_writer(&mut w, &self.files).map_err(|e| io(&tmp)(e.into()))?;
        let f = w.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &snap).map_err(io(&snap))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        self.journal = None;
        self.journaled = 0;
        let journal = self.dir.join("baseline.journal");
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&journal)(e)),
        }
        self.existed = true;
        Ok(())
    }

    /// Whether updates were journaled since the last snapshot (a non-zero count).
    pub fn journal_entries(&self) -> usize {
        self.journaled
    }

    /// Forgets everything: the next scan builds a new baseline.
    pub fn reset(dir: &Path) -> Result<(), BaselineError> {
        for name in ["baseline.json", "baseline.journal", "baseline.json.tmp"] {
            let p = dir.join(name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: u64) -> FileState {
        let mut s = crate::state::capture(
            Path::new("/"),
            None,
            crate::state::CaptureOptions { max_hash_bytes: 0, md5: false, content_max: None },
        )
        .unwrap();
        s.size = size;
        s
    }

    #[test]
    fn updates_survive_a_reload_and_a_torn_journal_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::load(dir.path()).unwrap();
        assert!(!b.existed);
        b.update(&[("/a".into(), Some(state(1))), ("/b".into(), Some(state(2)))]).unwrap();
        b.compact().unwrap();
        b.update(&[("/a".into(), None), ("/c".into(), Some(state(3)))]).unwrap();
        // A crash in the middle of the next update.
        let mut j = OpenOptions::new().append(true).open(dir.path().join("baseline.journal")).unwrap();
        j.write_all(b"{\"path\":\"/d\",\"sta").unwrap();
        let b = Baseline::load(dir.path()).unwrap();
        assert!(b.existed);
        assert_eq!(b.files.keys().collect::<Vec<_>>(), ["/b", "/c"]);
        assert_eq!(b.files["/c"].size, 3);
    }
}
