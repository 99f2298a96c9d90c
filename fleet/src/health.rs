//! Fleet health: per computer, what its last heartbeat says (agent version, the group
//! configuration it applied) joined with what the fleet knows (its key, the group's current
//! version), and flags for what needs a look. The caller reads the heartbeats (a query); the
//! server's `/v1/machines` and the console's machine list both use [`Fleet::machines`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Fleet;
use crate::keys::KeyState;

/// What a computer's last heartbeat says.
#[derive(Debug, Clone, Default)]
pub struct LastHeartbeat {
    pub computer: String,
    pub at: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    pub group: Option<String>,
    pub configuration_version: Option<i64>,
}

/// What is worth an operator's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// It runs an older version of its group's configuration than the group has.
    ConfigurationBehind,
    /// Its agent is older than the newest agent version seen.
    AgentOutdated,
    /// No heartbeat for the silence period.
    Silent,
    /// Enrolled, but no heartbeat among those given.
    NeverSeen,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub computer: String,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub agent_version: Option<String>,
    /// The group of its key (else the one its heartbeat names).
    pub group: Option<String>,
    /// The group configuration version it applied.
    pub configuration_version: Option<i64>,
    /// Its group's current configuration version.
    pub group_version: Option<u64>,
    pub key: Option<String>,
    pub key_state: Option<KeyState>,
    pub flags: Vec<Flag>,
}

impl Fleet {
    /// The machines of `heartbeats` and of the fleet's computer-bound keys, by name, flagged as
    /// of `now` (`silent_after`: how long without a heartbeat makes a machine silent).
    pub fn machines(&self, heartbeats: Vec<LastHeartbeat>, now: DateTime<Utc>, silent_after: Duration) -> Vec<Machine> {
        let mut by_computer: BTreeMap<String, Machine> = BTreeMap::new();
        for h in heartbeats {
            let machine = Machine {
                computer: h.computer.clone(),
                last_heartbeat: h.at,
                agent_version: h.agent_version,
                group: h.group,
                configuration_version: h.configuration_version,
                ..Machine::default()
            };
            by_computer.insert(h.computer, machine);
        }
        for key in self.list_keys().into_iter().filter(|k| k.computer.is_some()) {
            let computer = key.computer.clone().expect("filtered");
            let machine =
                by_computer.entry(computer.clone()).or_insert_with(|| Machine { computer, ..Machine::default() });
            // The active key wins over revoked ones of the same computer.
            if machine.key_state != Some(KeyState::Active) {
                machine.key = Some(key.name.clone());
                machine.key_state = Some(key.state);
                machine.group = key.group.clone().or(machine.group.take());
            }
        }
        let group_versions: BTreeMap<String, u64> =
            self.group_configs().into_iter().map(|g| (g.group, g.version)).collect();
        let newest = by_computer.values().filter_map(|m| m.agent_version.clone()).max_by(|a, b| compare_versions(a, b));
        let mut machines: Vec<Machine> = by_computer.into_values().collect();
        for machine in &mut machines {
            machine.group_version = machine.group.as_ref().and_then(|g| group_versions.get(g).copied());
            machine.flags = flags(machine, newest.as_deref(), now, silent_after);
        }
        machines
    }
}

fn flags(machine: &Machine, newest_agent: Option<&str>, now: DateTime<Utc>, silent_after: Duration) -> Vec<Flag> {
    let mut flags = Vec::new();
    if let Some(current) = machine.group_version
        && machine.last_heartbeat.is_some()
        && machine.configuration_version.is_none_or(|applied| applied < current as i64)
    {
        flags.push(Flag::ConfigurationBehind);
    }
    if let (Some(version), Some(newest)) = (machine.agent_version.as_deref(), newest_agent)
        && compare_versions(version, newest).is_lt()
    {
        flags.push(Flag::AgentOutdated);
    }
    match machine.last_heartbeat {
        None => flags.push(Flag::NeverSeen),
        Some(at) if (now - at).to_std().unwrap_or_default() > silent_after => flags.push(Flag::Silent),
        Some(_) => {}
    }
    flags
}

/// Dotted versions compared part by part, numerically where both parts are numbers
/// (`0.10.0` > `0.9.2`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| v.split(['.', '-', '+']).map(str::to_string).collect::<Vec<_>>();
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert!(compare_versions("0.10.0", "0.9.2").is_gt());
        assert!(compare_versions("0.1.0", "0.1.0").is_eq());
        assert!(compare_versions("1.2", "1.2.1").is_lt());
    }

    fn heartbeat(computer: &str, at: &str, version: &str, group: &str, applied: Option<i64>) -> LastHeartbeat {
        LastHeartbeat {
            computer: computer.into(),
            at: Some(at.parse().unwrap()),
            agent_version: Some(version.into()),
            group: Some(group.into()).filter(|g: &String| !g.is_empty()),
            configuration_version: applied,
        }
    }

    #[test]
    fn behind_outdated_silent_and_never_seen_machines_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(dir.path(), Vec::new(), vec!["Heartbeat".into()]).unwrap();
        fleet.set_group_config("web", "realtime = true\n").unwrap();
        fleet.set_group_config("web", "realtime = false\n").unwrap();
        let token =
            fleet.create_token(crate::enroll::NewToken { group: "web".into(), expires: None, max_uses: None }).unwrap();
        for computer in ["web-1", "web-2", "web-3"] {
            fleet.enroll(&token.token, computer).unwrap();
        }
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let heartbeats = vec![
            heartbeat("web-1", "2026-12-01T11:59:30Z", "0.2.0", "web", Some(2)),
            heartbeat("web-2", "2026-12-01T11:59:30Z", "0.1.0", "web", Some(1)),
            heartbeat("db-1", "2026-12-01T11:00:00Z", "0.2.0", "", None),
        ];
        let got: Vec<(String, Option<String>, Vec<Flag>)> = fleet
            .machines(heartbeats, now, Duration::from_secs(600))
            .into_iter()
            .map(|m| (m.computer, m.key_state.map(|s| format!("{s:?}")), m.flags))
            .collect();
        let active = Some("Active".to_string());
        assert_eq!(
            got,
            [
                ("db-1".into(), None, vec![Flag::Silent]),
                ("web-1".into(), active.clone(), vec![]),
                ("web-2".into(), active.clone(), vec![Flag::ConfigurationBehind, Flag::AgentOutdated]),
                ("web-3".into(), active, vec![Flag::NeverSeen]),
            ]
        );
    }
}
