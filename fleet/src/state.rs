//! The file `fleet.json`: its versioned shape and its atomic writing.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FleetError;
use crate::keys::Role;

/// The version this release writes; it opens this one and every earlier one.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetFile {
    pub version: u32,
    #[serde(default)]
    pub keys: Vec<StoredKey>,
    #[serde(default)]
    pub tokens: Vec<StoredToken>,
    /// Computers an admin allowed to enroll again (each allowance is used up by one enrollment).
    #[serde(default)]
    pub reenrollment: Vec<String>,
    /// Central agent configurations by group (added after version 1 was first written: a
    /// file without them has none).
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, StoredGroup>,
}

/// A group's central agent configuration: the settings as the admin wrote them (TOML, checked
/// when set), and their version, counted up by each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredGroup {
    pub version: u64,
    pub settings: String,
    pub updated: DateTime<Utc>,
}

/// A key made through the API or by enrollment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub name: String,
    /// `sha256:<hex>` of the secret.
    pub hash: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// The group of the enrollment token it was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<DateTime<Utc>>,
}

/// An enrollment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    /// Names the token in lists and the audit log (not secret).
    pub id: String,
    pub hash: String,
    pub group: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    #[serde(default)]
    pub uses: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<DateTime<Utc>>,
}

impl FleetFile {
    /// The file's state; none yet: empty.
    pub fn load(path: &Path) -> Result<FleetFile, FleetError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FleetFile { version: VERSION, ..FleetFile::default() });
            }
            Err(source) => return Err(FleetError::Io { path: path.into(), source }),
        };
        let state: FleetFile = serde_json::from_str(&text)
            .map_err(|e| FleetError::Corrupt { path: path.into(), message: e.to_string() })?;
        if state.version > VERSION {
            return Err(FleetError::Corrupt {
                path: path.into(),
                message: format!(
                    "version {} was written by a newer fimlake (this one reads up to {VERSION})",
                    state.version
                ),
            });
        }
        Ok(FleetFile { version: VERSION, ..state })
    }

    /// Writes the state: a temporary file beside it, fsynced, renamed over it, the directory
    /// fsynced. Readable by its owner only (it holds hashes, not secrets, but still).
    pub fn save(&self, path: &Path) -> Result<(), FleetError> {
        let io = |source| FleetError::Io { path: path.into(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let temporary = path.with_extension("json.tmp");
        let mut file = owner_only(&temporary).map_err(io)?;
        file.write_all(&serde_json::to_vec_pretty(self).expect("the state serialises")).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

/// A new file, mode 0600 where the platform has modes.
pub fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
