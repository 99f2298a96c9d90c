//! Action groups changed at runtime (`/v1/action-groups`): checked as at start, written to the
//! rules directory's `action-groups.toml` (atomically) before they take effect, effective for the
//! next notification. A group that a rule names cannot be deleted.

use std::collections::BTreeMap;

use crate::engine::{Alerting, AlertingError};
use crate::rule::{ActionGroup, check_group};

const FILE: &str = "action-groups.toml";

impl Alerting {
    /// The action groups in effect.
    pub fn action_groups(&self) -> BTreeMap<String, ActionGroup> {
        self.groups.read().expect("action groups lock").clone()
    }

    /// Creates or replaces action group `name`; whether it is new.
    pub async fn put_action_group(&self, name: &str, group: ActionGroup) -> Result<bool, AlertingError> {
        let problems = check_group(name, &group);
        if !problems.is_empty() {
            return Err(AlertingError::InvalidActionGroup(problems));
        }
        let _one_at_a_time = self.group_changes.lock().await;
        let mut groups = self.action_groups();
        let created = groups.insert(name.to_string(), group).is_none();
        self.save_groups(groups).await?;
        Ok(created)
    }

    /// Deletes action group `name`, unless a rule names it.
    pub async fn delete_action_group(&self, name: &str) -> Result<(), AlertingError> {
        let _one_at_a_time = self.group_changes.lock().await;
        let mut groups = self.action_groups();
        if groups.remove(name).is_none() {
            return Err(AlertingError::NoSuchActionGroup(name.to_string()));
        }
        let users: Vec<String> = {
            let slots = self.slots.lock().expect("slots lock");
            slots.values().filter(|s| s.rule.actions.iter().any(|a| a == name)).map(|s| s.rule.name.clone()).collect()
        };
        if !users.is_empty() {
            return Err(AlertingError::Refused(format!(
                "action group '{name}' is used by the rules {}; change them first",
                users.join(", ")
            )));
        }
        self.save_groups(groups).await
    }

    /// Writes `groups` to the rules directory, then puts them in effect.
    async fn save_groups(&self, groups: BTreeMap<String, ActionGroup>) -> Result<(), AlertingError> {
        let text = toml::to_string(&groups).map_err(|e| AlertingError::InvalidActionGroup(vec![e.to_string()]))?;
        let path = self.rules_dir.join(FILE);
        let target = path.clone();
        tokio::task::spawn_blocking(move || crate::store::write_atomic(&target, text.as_bytes()))
            .await
            .expect("action group write panicked")
            .map_err(|source| AlertingError::Io { what: format!("writing {}", path.display()), source })?;
        *self.groups.write().expect("action groups lock") = groups;
        Ok(())
    }
}

/// An action group as listed: secrets (webhook secrets and header values, SMTP passwords) are
/// write-only and shown as `(set)`.
pub fn redacted(group: &ActionGroup) -> ActionGroup {
    let hidden = || "(set)".to_string();
    let mut group = group.clone();
    for webhook in &mut group.webhooks {
        webhook.secret = webhook.secret.as_ref().map(|_| hidden());
        webhook.headers.values_mut().for_each(|v| *v = hidden());
    }
    for email in &mut group.emails {
        email.password = email.password.as_ref().map(|_| hidden());
    }
    group
}
