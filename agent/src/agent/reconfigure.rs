//! A new configuration while the agent runs (its group's changed on the server): the new
//! settings take over without a restart. Paths the new configuration adds are baselined
//! silently (files that existed before are not "Added"); paths it drops leave the baseline
//! silently (they are no longer monitored, not removed).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::compare::{Mode, Persist, Report};
use super::{Agent, report_coverage};
use crate::central::{self, Central};
use crate::config::AgentConfig;
use crate::scan;

impl Agent {
    /// Applies a group configuration fetched from the server. `Ok(false)`: it was not applied,
    /// because it breaks the agent's rules (logged, and reported as a coverage record).
    pub fn apply_central(&self, fetched: Central) -> anyhow::Result<bool> {
        let merged = match fetched.over(&self.local) {
            Ok(merged) => merged,
            Err(problems) => {
                let message = format!(
                    "configuration version {} of group '{}' not applied: {problems}; the agent keeps the one it runs",
                    fetched.version, fetched.group
                );
                tracing::error!("{message}");
                report_coverage(self, "/", &message);
                return Ok(false);
            }
        };
        central::save(&self.local.data_dir, &fetched)?;
        self.switch_to(merged)?;
        *self.applied.lock().expect("applied lock") = Some(fetched.applied());
        tracing::info!(group = %fetched.group, version = fetched.version, "applied the group's configuration");
        Ok(true)
    }

    /// The group has no configuration any more: back to the configuration file.
    pub fn forget_central(&self) -> anyhow::Result<()> {
        central::remove(&self.local.data_dir)?;
        self.switch_to(self.local.clone())?;
        *self.applied.lock().expect("applied lock") = None;
        tracing::info!("the group has no central configuration; running on the configuration file");
        Ok(())
    }

    /// Makes `next` the configuration in effect, under the baseline's lock (a scan compares
    /// with one configuration, never half of each).
    fn switch_to(&self, next: AgentConfig) -> anyhow::Result<()> {
        let mut b = self.baseline.lock().expect("baseline lock");
        let previous = self.cfg();
        let known: BTreeSet<&str> = previous.items.iter().filter(|i| i.enabled).map(|i| i.path.as_str()).collect();
        let added: Vec<_> =
            next.items.iter().filter(|i| i.enabled && !known.contains(i.path.as_str())).cloned().collect();
        if b.existed && !added.is_empty() {
            // The new paths as they are now, without an "Added" row each; a covered file that
            // differs from its baseline is still a change.
            let scope = AgentConfig { items: added, ..next.clone() };
            let mut errors = Vec::new();
            let paths = scan::enumerate(&scope, &mut errors);
            let mode = Mode { report: Report::KnownPathsOnly, persist: Persist::Journal, full: false };
            self.compare(&mut b, &scope, &paths, errors, mode, &mut |_| {})?;
        }
        let dropped: Vec<_> = b
            .files
            .keys()
            .filter(|path| scan::item_for(&next, path).is_none())
            .map(|path| (path.clone(), None))
            .collect();
        if !dropped.is_empty() {
            b.update(&dropped)?;
        }
        crate::state::set_hash_rate(next.max_hash_bytes_per_second);
        *self.cfg.write().expect("configuration lock") = Arc::new(next);
        Ok(())
    }
}
