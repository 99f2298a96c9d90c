//! Saved hunting queries, shared by everyone who uses the console: one JSON file in the data
//! directory (`ui/saved-queries.json`), replaced atomically at each change.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SavedQuery {
    pub id: String,
    pub name: String,
    pub text: String,
    /// Who saved it; only they or an admin may delete it.
    pub owner: String,
    pub created: String,
}

/// Versioned, so that a later release can read what this one wrote.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    queries: Vec<SavedQuery>,
}

const VERSION: u32 = 1;
/// Names and texts longer than this are refused.
pub const MAX_NAME: usize = 200;
pub const MAX_TEXT: usize = 64 * 1024;
pub const MAX_QUERIES: usize = 10_000;

pub struct SavedQueries {
    path: PathBuf,
    queries: Mutex<Vec<SavedQuery>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("{0}")]
    Invalid(String),
    #[error("no saved query has the id '{0}'")]
    NotFound(String),
    #[error("only {owner} (who saved it) or an admin may change or delete '{name}'")]
    NotOwner { owner: String, name: String },
    #[error("writing the saved queries: {0}")]
    Io(#[from] std::io::Error),
}

impl SavedQueries {
    pub fn open(dir: &Path) -> std::io::Result<SavedQueries> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("saved-queries.json");
        let queries = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
                })?;
                if file.version > VERSION {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: version {} is newer than this release reads ({VERSION})",
                            path.display(),
                            file.version
                        ),
                    ));
                }
                file.queries
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(SavedQueries { path, queries: Mutex::new(queries) })
    }

    pub fn list(&self) -> Vec<SavedQuery> {
        self.queries.lock().expect("saved lock").clone()
    }

    pub fn get(&self, id: &str) -> Option<SavedQuery> {
        self.queries.lock().expect("saved lock").iter().find(|q| q.id == id).cloned()
    }

    /// Saves `text` as `name`. A query of that name already saved is replaced (keeping its id,
    /// so links to it show the new text) if `owner` saved it or `admin`; else refused.
    pub fn add(&self, name: &str, text: &str, owner: &str, admin: bool) -> Result<SavedQuery, SavedError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(SavedError::Invalid(format!("a saved query needs a name of 1 to {MAX_NAME} characters")));
        }
        if text.trim().is_empty() || text.len() > MAX_TEXT {
            return Err(SavedError::Invalid(format!("a saved query needs a text of 1 to {MAX_TEXT} bytes")));
        }
        let mut queries = self.queries.lock().expect("saved lock");
        if let Some(pos) = queries.iter().position(|q| q.name == name) {
            let existing = &queries[pos];
            if existing.owner != owner && !admin {
                return Err(SavedError::NotOwner { owner: existing.owner.clone(), name: name.to_string() });
            }
            let mut next = queries.clone();
            next[pos].text = text.to_string();
            self.write(&next)?;
            *queries = next;
            return Ok(queries[pos].clone());
        }
        if queries.len() >= MAX_QUERIES {
            return Err(SavedError::Invalid(format!("there are already {MAX_QUERIES} saved queries")));
        }
        let q = SavedQuery {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_string(),
            text: text.to_string(),
            owner: owner.to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let mut next = queries.clone();
        next.push(q.clone());
        self.write(&next)?;
        *queries = next;
        Ok(q)
    }

    pub fn delete(&self, id: &str, by: &str, admin: bool) -> Result<SavedQuery, SavedError> {
        let mut queries = self.queries.lock().expect("saved lock");
        let Some(pos) = queries.iter().position(|q| q.id == id) else {
            return Err(SavedError::NotFound(id.to_string()));
        };
        let q = queries[pos].clone();
        if q.owner != by && !admin {
            return Err(SavedError::NotOwner { owner: q.owner, name: q.name });
        }
        let mut next = queries.clone();
        next.remove(pos);
        self.write(&next)?;
        *queries = next;
        Ok(q)
    }

    fn write(&self, queries: &[SavedQuery]) -> std::io::Result<()> {
        let file = File { version: VERSION, queries: queries.to_vec() };
        let bytes = serde_json::to_vec_pretty(&file).expect("saved queries serialise");
        fimlake_alerting::store::write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_queries_persist_and_only_owners_or_admins_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = SavedQueries::open(dir.path()).unwrap();
        let first = s.add("Recent passwd", "ConfigurationChange | take 1", "ana", false).unwrap();
        assert!(s.add(" ", "x", "ana", false).is_err());
        // Saving under the same name replaces the text, for its owner or an admin only.
        assert!(matches!(s.add("Recent passwd", "Heartbeat", "bob", false), Err(SavedError::NotOwner { .. })));
        let q = s.add("Recent passwd", "ConfigurationChange | take 2", "ana", false).unwrap();
        assert_eq!(
            (s.list().len(), q.id.as_str(), q.text.as_str()),
            (1, first.id.as_str(), "ConfigurationChange | take 2")
        );
        let reopened = SavedQueries::open(dir.path()).unwrap();
        assert_eq!(reopened.list(), vec![q.clone()]);
        assert!(matches!(reopened.delete(&q.id, "bob", false), Err(SavedError::NotOwner { .. })));
        reopened.delete(&q.id, "bob", true).unwrap();
        assert!(SavedQueries::open(dir.path()).unwrap().list().is_empty());
    }

    #[test]
    fn reads_the_committed_version_1_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/saved-queries-v1.json"),
            dir.path().join("saved-queries.json"),
        )
        .unwrap();
        let s = SavedQueries::open(dir.path()).unwrap();
        assert_eq!(s.list()[0].name, "Changes under /etc");
    }
}
