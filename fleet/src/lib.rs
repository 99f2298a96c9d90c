//! Fleet management: API keys created at runtime, agent enrollment and central agent configuration.
//!
//! Everything here lives in one versioned file, `<data_dir>/fleet.json` ([`state`]), written
//! atomically (a temporary file, fsynced, renamed over the old one, the directory fsynced) before
//! a change is answered: a key the API created survives a crash the moment its secret is shown,
//! and a revoked key stays revoked. Secrets (keys, enrollment tokens) are stored only as their
//! SHA-256 and shown once, when made.
//!
//! - [`keys`]: create, list, rotate and revoke keys; the lookup the server's key check uses.
//! - [`enroll`]: enrollment tokens (for a group, expiring, with a maximum of uses) and the
//!   enrollment of a host, which gets its own ingest key bound to its `Computer`.
//! - [`groups`]: the central agent configuration of each group, which its agents fetch.
//! - [`health`]: each machine's last heartbeat joined with its key and group, flagged.
//! - [`api`]: the HTTP API over them (`/v1/keys`, `/v1/enroll-tokens`, `/v1/enroll`,
//!   `/v1/agent-config`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use sha2::{Digest, Sha256};

pub mod api;
pub mod enroll;
pub mod groups;
pub mod health;
pub mod keys;
pub mod state;

pub use keys::{Grant, KeyView, Role};
use state::FleetFile;

/// `[fleet]` in the server's configuration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Enrollment attempts allowed per client address and minute; past it, 429.
    pub enrollments_per_minute: std::num::NonZeroU32,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig { enrollments_per_minute: std::num::NonZeroU32::new(30).expect("not zero") }
    }
}

/// The tables an enrolled agent's key may post to.
pub const AGENT_TABLES: &[&str] = &["ConfigurationChange", "ConfigurationData", "Heartbeat"];

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The request is wrong: a bad name, an unknown table, a bad duration.
    #[error("{0}")]
    Invalid(String),
    /// A group configuration breaks the agent's rules: every problem.
    #[error("the settings of group '{group}' are not valid: {}", problems.join("; "))]
    InvalidSettings { group: String, problems: Vec<String> },
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists: a name taken, a key of the configuration file.
    #[error("{0}")]
    Conflict(String),
}

/// The fleet's keys and enrollment tokens.
pub struct Fleet {
    path: PathBuf,
    state: RwLock<FleetFile>,
    /// When each key was last used, by name; kept in memory, written with the next change
    /// and by [`Fleet::save_last_used`].
    last_used: Mutex<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// The keys of the configuration file: their names are taken, and they are listed.
    configured: Vec<KeyView>,
    /// The tables keys may be bound to.
    tables: Vec<String>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Fleet {
    /// Opens `<data_dir>/fleet.json` (none yet: no keys, no tokens). `configured` are the keys
    /// of the configuration file, `tables` the tables keys may be bound to.
    pub fn open(data_dir: &Path, configured: Vec<KeyView>, tables: Vec<String>) -> Result<Fleet, FleetError> {
        let path = data_dir.join("fleet.json");
        let state = FleetFile::load(&path)?;
        Ok(Fleet { path, state: RwLock::new(state), last_used: Mutex::new(Default::default()), configured, tables })
    }

    /// Applies `change` to a copy of the state, writes it, then makes it current: what is
    /// answered is on disk.
    /// A refused change (an error from `change`) writes nothing.
    fn change<T, E: From<FleetError>>(&self, change: impl FnOnce(&mut FleetFile) -> Result<T, E>) -> Result<T, E> {
        let mut current = self.state.write().expect("fleet state lock");
        let mut next = current.clone();
        let answer = change(&mut next)?;
        self.merge_last_used(&mut next);
        next.save(&self.path)?;
        *current = next;
        Ok(answer)
    }

    /// Writes the in-memory last-used times (called now and then by the server).
    pub fn save_last_used(&self) -> Result<(), FleetError> {
        if self.last_used.lock().expect("last used lock").is_empty() {
            return Ok(());
        }
        self.change(|_| Ok::<(), FleetError>(()))
    }

    fn merge_last_used(&self, state: &mut FleetFile) {
        let mut used = self.last_used.lock().expect("last used lock");
        for key in &mut state.keys {
            if let Some(at) = used.get(&key.name) {
                key.last_used = Some(key.last_used.map_or(*at, |before| before.max(*at)));
            }
        }
        used.clear();
    }
}

/// A new secret: `prefix` and 64 hex digits (256 random bits).
fn secret(prefix: &str) -> String {
    format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// `sha256:<hex>` of a secret, as stored.
pub fn hash_text(secret: &str) -> String {
    format!("sha256:{}", hex::encode(hash(secret)))
}

pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The 32 bytes of a stored `sha256:<hex>`.
fn stored_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.strip_prefix("sha256:")?).ok()?;
    bytes.try_into().ok()
}

/// A name for keys and groups: 1 to 128 letters, digits and `-_.@`.
fn check_name(what: &str, name: &str) -> Result<(), FleetError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if name.is_empty() || name.len() > 128 || !name.chars().all(allowed) {
        return Err(FleetError::Invalid(format!(
            "{what} '{name}' must be 1 to 128 letters, digits, '-', '_', '.' or '@'"
        )));
    }
    Ok(())
}
