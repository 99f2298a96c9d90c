//! Central agent configuration: each group of agents (the group of the enrollment token a host
//! enrolled with; `default` for keys of the configuration file) has at most one configuration,
//! the monitoring settings of the agent's TOML. A configuration is checked with the agent's own
//! rules ([`fimlake_agent_settings::Monitoring::problems`]) before it is stored, so every agent
//! can apply what the server accepted.
//!
//! Agents fetch it with `If-None-Match`: the [`GroupConfig::etag`] names group and version.

use chrono::{DateTime, Utc};
use fimlake_agent_settings::Monitoring;
use serde::{Deserialize, Serialize};

use crate::state::StoredGroup;
use crate::{Fleet, FleetError, check_name};

/// The group of agents whose keys do not name one.
pub const DEFAULT_GROUP: &str = "default";

/// A group's configuration as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupConfig {
    pub group: String,
    pub version: u64,
    pub updated: DateTime<Utc>,
    /// The settings (TOML), as the admin wrote them.
    pub settings: String,
}

impl GroupConfig {
    fn new(group: &str, stored: &StoredGroup) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            version: stored.version,
            updated: stored.updated,
            settings: stored.settings.clone(),
        }
    }

    /// The HTTP entity tag of this version: `"<group>.<version>"`.
    pub fn etag(&self) -> String {
        format!("\"{}.{}\"", self.group, self.version)
    }
}

impl Fleet {
    /// Sets the configuration of `group` to `settings` (TOML) once they pass the agent's
    /// rules; its version counts up, unless the text is unchanged.
    pub fn set_group_config(&self, group: &str, settings: &str) -> Result<GroupConfig, FleetError> {
        check_name("group name", group)?;
        Monitoring::parse(settings)
            .map_err(|problems| FleetError::InvalidSettings { group: group.to_string(), problems })?;
        self.change(|state| {
            let previous = state.groups.get(group);
            if let Some(same) = previous.filter(|p| p.settings == settings) {
                return Ok(GroupConfig::new(group, same));
            }
            let version = previous.map_or(1, |p| p.version + 1);
            let stored = StoredGroup { version, settings: settings.to_string(), updated: Utc::now() };
            let answer = GroupConfig::new(group, &stored);
            state.groups.insert(group.to_string(), stored);
            Ok(answer)
        })
    }

    /// The configuration of `group`, if it has one.
    pub fn group_config(&self, group: &str) -> Option<GroupConfig> {
        let state = self.state.read().expect("fleet state lock");
        state.groups.get(group).map(|stored| GroupConfig::new(group, stored))
    }

    /// Every group's configuration, by group name.
    pub fn group_configs(&self) -> Vec<GroupConfig> {
        let state = self.state.read().expect("fleet state lock");
        state.groups.iter().map(|(group, stored)| GroupConfig::new(group, stored)).collect()
    }

    /// The group of the key named `key_name`: its enrollment's, else [`DEFAULT_GROUP`].
    pub fn group_of_key(&self, key_name: &str) -> String {
        let state = self.state.read().expect("fleet state lock");
        let key = state.keys.iter().find(|k| k.name == key_name && k.revoked.is_none());
        key.and_then(|k| k.group.clone()).unwrap_or_else(|| DEFAULT_GROUP.to_string())
    }
}
