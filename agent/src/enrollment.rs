//! Enrollment: `fimlake-agent enroll` trades an enrollment token for the host's own ingest key
//! (bound on the server to this `Computer` and the agent's tables) and keeps it, with the server
//! and the `Computer`, in `<data_dir>/enrollment.json`, readable by its owner only. `run` uses it
//! when the configuration has no `api_key`, and reads it again when the server refuses the key
//! (a re-enrolled host picks its new key up without a restart).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;

/// What enrolling gave this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub server: String,
    pub key: String,
    pub key_name: String,
    pub computer: String,
    pub group: String,
    /// The CA file the server's certificate was checked with, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an enrollment file ({message}); enroll again")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Client(#[from] fimlake_client::ClientError),
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the server refused the enrollment ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the configuration names this host '{configured}' but it enrolled as '{enrolled}'; its key is bound to \
         '{enrolled}': remove `computer` from the configuration or enroll with --computer {configured}"
    )]
    ComputerMismatch { configured: String, enrolled: String },
}

/// `<data_dir>/enrollment.json`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("enrollment.json")
}

/// The host's enrollment, if it enrolled.
pub fn load(data_dir: &Path) -> Result<Option<Enrollment>, EnrollmentError> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EnrollmentError::Io { path, source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| EnrollmentError::Corrupt { path, message: e.to_string() })
}

/// When the enrollment file last changed (none: it does not exist).
pub fn modified(data_dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(path(data_dir)).and_then(|m| m.modified()).ok()
}

/// Keeps the enrollment, readable by its owner only, written atomically.
pub fn save(data_dir: &Path, enrollment: &Enrollment) -> Result<(), EnrollmentError> {
    let bytes = serde_json::to_vec_pretty(enrollment).expect("serialises");
    crate::durable::write_private(data_dir, "enrollment.json", &bytes)
        .map_err(|source| EnrollmentError::Io { path: path(data_dir), source })
}

/// Asks `server` for this host's key with `token`.
pub async fn enroll(
    server: &str,
    token: &str,
    computer: &str,
    ca_file: Option<&Path>,
) -> Result<Enrollment, EnrollmentError> {
    let client = fimlake_client::client_builder(ca_file)?.build().map_err(fimlake_client::ClientError::from)?;
    let url = format!("{}/v1/enroll", server.trim_end_matches('/'));
    let body = serde_json::json!({"token": token, "computer": computer});
    let response = client
        .post(&url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| EnrollmentError::Unreachable { url: url.clone(), message: e.to_string() })?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if !(200..300).contains(&status) {
        let message = value["error"]["message"].as_str().unwrap_or(&text).to_string();
        return Err(EnrollmentError::Refused { status, message });
    }
    let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
    Ok(Enrollment {
        server: server.trim_end_matches('/').to_string(),
        key: field("key"),
        key_name: field("key_name"),
        computer: field("computer"),
        group: field("group"),
        ca_file: ca_file.map(Path::to_path_buf),
    })
}

/// Uses the enrollment when the configuration has no `api_key`: its server, key and
/// `Computer` (a different configured `computer` is refused: the key is bound to the other).
pub fn apply(cfg: &mut AgentConfig) -> Result<Option<Enrollment>, EnrollmentError> {
    if cfg.api_key.is_some() {
        return Ok(None);
    }
    let Some(enrollment) = load(&cfg.data_dir)? else { return Ok(None) };
    if let Some(configured) = cfg.computer.as_ref().filter(|c| **c != enrollment.computer) {
        return Err(EnrollmentError::ComputerMismatch {
            configured: configured.clone(),
            enrolled: enrollment.computer.clone(),
        });
    }
    cfg.server = enrollment.server.clone();
    cfg.api_key = Some(enrollment.key.clone());
    cfg.computer = Some(enrollment.computer.clone());
    if cfg.ca_file.is_none() {
        cfg.ca_file = enrollment.ca_file.clone();
    }
    Ok(Some(enrollment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_is_kept_owner_only_and_applied_without_an_api_key() {
        let dir = tempfile::tempdir().unwrap();
        let enrollment = Enrollment {
            server: "https://fim.example:8443".into(),
            key: "flk_x".into(),
            key_name: "agent-web1".into(),
            computer: "web1".into(),
            group: "linux".into(),
            ca_file: None,
        };
        save(dir.path(), &enrollment).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path(dir.path())).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), Some(enrollment));
        let mut cfg = AgentConfig { data_dir: dir.path().into(), ..AgentConfig::default() };
        apply(&mut cfg).unwrap();
        assert_eq!((cfg.server.as_str(), cfg.api_key.as_deref()), ("https://fim.example:8443", Some("flk_x")));
        let mut other =
            AgentConfig { data_dir: dir.path().into(), computer: Some("db1".into()), ..AgentConfig::default() };
        assert!(matches!(apply(&mut other), Err(EnrollmentError::ComputerMismatch { .. })));
        let mut keyed =
            AgentConfig { data_dir: dir.path().into(), api_key: Some("flk_own".into()), ..AgentConfig::default() };
        assert!(apply(&mut keyed).unwrap().is_none());
        assert_eq!(keyed.api_key.as_deref(), Some("flk_own"));
    }
}
