//! Central configuration: the monitoring settings of this agent's group, fetched from the server
//! at start and every `config_poll` (with `If-None-Match`, so an unchanged configuration costs
//! one small request), kept in `<data_dir>/central-config.json` so that the agent runs on its last
//! fetched configuration while the server cannot be reached.
//!
//! An agent never runs on a configuration it could not validate: settings that fail the
//! agent's rules (the server checks them with the same rules, so this means a newer server or a
//! damaged file) are logged and reported as a coverage record, and the agent keeps what it runs.

use std::path::Path;

use fimlake_agent_settings::Monitoring;
use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;

const FILE: &str = "central-config.json";

/// A group's configuration as the server answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Central {
    pub group: String,
    pub version: u64,
    /// The settings, TOML.
    pub settings: String,
    /// The server's entity tag of this version, sent back as `If-None-Match`.
    #[serde(default)]
    pub etag: String,
}

/// The configuration an agent runs on: which group version it applied, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub group: String,
    pub version: u64,
    /// The server's entity tag of it, sent as `If-None-Match`.
    pub etag: String,
}

/// What a poll of the server found.
#[derive(Debug)]
pub enum Polled {
    /// The configuration the agent has is current (304).
    Unchanged,
    /// A new version.
    New(Central),
    /// The group has no central configuration (204): the agent runs on its own file.
    NoConfiguration,
    /// The server could not be asked, or refused: the agent keeps what it runs.
    Failed(String),
}

impl Central {
    /// This configuration applied over the agent's own file (what `local_overrides` keeps stays),
    /// checked with the agent's rules. `Err` lists every problem.
    pub fn over(&self, local: &AgentConfig) -> Result<AgentConfig, String> {
        let settings = Monitoring::parse(&self.settings).map_err(|problems| problems.join("; "))?;
        let merged = local.with_central(&settings);
        merged.validate().map_err(|e| e.to_string())?;
        Ok(merged)
    }

    pub fn applied(&self) -> Applied {
        Applied { group: self.group.clone(), version: self.version, etag: self.etag.clone() }
    }
}

/// The last fetched configuration, if the agent has one (an unreadable file is none, logged).
pub fn load(data_dir: &Path) -> Option<Central> {
    let path = data_dir.join(FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(central) => Some(central),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the last fetched configuration cannot be read; ignored");
            None
        }
    }
}

pub fn save(data_dir: &Path, central: &Central) -> std::io::Result<()> {
    crate::durable::write_private(data_dir, FILE, &serde_json::to_vec_pretty(central).expect("serialises"))
}

/// Forgets the last fetched configuration (the group has none any more).
pub fn remove(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Asks the server for this agent's group configuration; `etag` is the version it has.
pub async fn poll(client: &reqwest::Client, server: &str, api_key: Option<&str>, etag: Option<&str>) -> Polled {
    let url = format!("{}/v1/agent-config", server.trim_end_matches('/'));
    let mut request = client.get(&url).timeout(std::time::Duration::from_secs(30));
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    if let Some(etag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Polled::Failed(format!("GET {url}: {e}")),
    };
    let status = response.status().as_u16();
    let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    match status {
        304 => Polled::Unchanged,
        204 => Polled::NoConfiguration,
        200 => match response.json::<Central>().await {
            Ok(central) => Polled::New(Central { etag: etag.unwrap_or_default(), ..central }),
            Err(e) => Polled::Failed(format!("GET {url}: the answer is not a configuration: {e}")),
        },
        _ => Polled::Failed(format!("GET {url}: {status}: {}", response.text().await.unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn central(settings: &str) -> Central {
        Central { group: "linux".into(), version: 3, settings: settings.into(), etag: "\"linux.3\"".into() }
    }

    #[test]
    fn a_configuration_applies_over_the_file_and_is_kept_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let c = central("scan_interval = \"2m\"\n[[items]]\nname = \"app\"\npath = \"/srv/app\"\n");
        let cfg = c.over(&AgentConfig::default()).unwrap();
        assert_eq!(cfg.scan_interval, std::time::Duration::from_secs(120));
        assert_eq!(cfg.items.len(), 1);
        save(dir.path(), &c).unwrap();
        assert_eq!(load(dir.path()), Some(c));
        remove(dir.path()).unwrap();
        assert_eq!(load(dir.path()), None);
    }

    #[test]
    fn settings_the_agent_cannot_validate_are_refused_with_every_problem() {
        let problems = central("scan_interval = \"0s\"\n[[items]]\nname = \"x\"\npath = \"rel\"\n")
            .over(&AgentConfig::default())
            .unwrap_err();
        assert!(problems.contains("scan_interval") && problems.contains("not absolute"), "{problems}");
    }
}
