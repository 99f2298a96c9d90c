//! The monitoring settings of an agent: what it watches and how hard it may work. The agent
//! reads them from its TOML; the server keeps them per group of agents (central configuration).
//! Both check them with [`Monitoring::problems`], so a group configuration the server accepted
//! is one every agent accepts.
//!
//! Modelled on the Change Tracking data collection rule for Linux files: a list of items, each
//! a file, a folder or a glob in its last segment.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod wildcard;

pub use wildcard::wildcard;

/// Paths whose content is never uploaded, whatever an item or a group configuration says: secrets.
pub const CONTENT_DENY_LIST: &[&str] =
    &["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "*.key", "*.pem"];

/// The recommended Linux items of Defender for Cloud FIM.
pub const RECOMMENDED_PATHS: &[&str] = &[
    "/bin",
    "/bin/passwd",
    "/boot",
    "/etc/*.conf",
    "/etc/cron.daily",
    "/etc/cron.hourly",
    "/etc/cron.monthly",
    "/etc/cron.weekly",
    "/etc/crontab",
    "/etc/init.d",
    "/opt/bin",
    "/opt/sbin",
    "/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/sbin",
];

/// What an agent monitors and its limits: the settings a group configuration holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Monitoring {
    /// How often a full scan runs (a change seen in real time is reported at once).
    #[serde(with = "fimlake_settings::duration")]
    pub scan_interval: Duration,
    /// Watch the items with inotify and report changes as they happen.
    pub realtime: bool,
    /// Files larger than this are not hashed (their other attributes still are).
    pub max_hash_bytes: u64,
    /// Bytes hashed per second at most (0: no limit), to bound the IO of a scan.
    pub max_hash_bytes_per_second: u64,
    /// Also compute MD5 (kept in `AdditionalFields.Md5`).
    pub md5: bool,
    /// Records sent per second at most; a burst is delivered in full, spread out.
    pub max_events_per_second: u32,
    /// Track systemd service units (`ConfigChangeType = Daemons`).
    pub track_daemons: bool,
    /// Track installed packages (`ConfigChangeType = Software`), from dpkg or rpm.
    pub track_software: bool,
    /// How often daemons and software are compared (also at every full scan).
    #[serde(with = "fimlake_settings::duration")]
    pub inventory_interval: Duration,
    pub items: Vec<Item>,
}

/// One monitored path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub group: String,
    /// A file, a folder, or a glob in the last segment (`/etc/*.conf`).
    pub path: String,
    pub recursive: bool,
    pub enabled: bool,
    /// File-name or path patterns (`*` and `?`) left out.
    pub exclude: Vec<String>,
    /// Attach the content of changed files (at most `max_content_bytes`), never for the deny list.
    pub upload_content: bool,
    pub max_content_bytes: u64,
}

/// One setting of [`Monitoring`], by its name in the files: what an agent's `local_overrides`
/// lists to keep its own value over its group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    ScanInterval,
    Realtime,
    MaxHashBytes,
    MaxHashBytesPerSecond,
    Md5,
    MaxEventsPerSecond,
    TrackDaemons,
    TrackSoftware,
    InventoryInterval,
    Items,
}

impl Setting {
    pub const ALL: [Setting; 10] = [
        Setting::ScanInterval,
        Setting::Realtime,
        Setting::MaxHashBytes,
        Setting::MaxHashBytesPerSecond,
        Setting::Md5,
        Setting::MaxEventsPerSecond,
        Setting::TrackDaemons,
        Setting::TrackSoftware,
        Setting::InventoryInterval,
        Setting::Items,
    ];
}

/// The largest upload of a changed file's content: a record must fit the server's default body limit (1 MiB).
pub const MAX_CONTENT_BYTES: u64 = 1 << 20;

impl Default for Item {
    fn default() -> Self {
        Item {
            name: String::new(),
            group: "Custom".into(),
            path: String::new(),
            recursive: true,
            enabled: true,
            exclude: Vec::new(),
            upload_content: false,
            max_content_bytes: 64 << 10,
        }
    }
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            scan_interval: Duration::from_secs(15 * 60),
            realtime: true,
            max_hash_bytes: 1 << 30,
            max_hash_bytes_per_second: 0,
            md5: false,
            max_events_per_second: 1000,
            track_daemons: true,
            track_software: true,
            inventory_interval: Duration::from_secs(300),
            items: RECOMMENDED_PATHS
                .iter()
                .map(|p| Item {
                    name: p.to_string(),
                    group: "Recommended".into(),
                    path: p.to_string(),
                    ..Item::default()
                })
                .collect(),
        }
    }
}

impl Monitoring {
    /// Reads settings from TOML (absent settings take their defaults) and checks them: `Err` is
    /// every problem found, one per line.
    pub fn parse(text: &str) -> Result<Monitoring, Vec<String>> {
        let settings: Monitoring = toml::from_str(text).map_err(|e| vec![e.message().to_string()])?;
        let problems = settings.problems();
        if problems.is_empty() { Ok(settings) } else { Err(problems) }
    }

    /// Every rule the settings break (none: they are valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.scan_interval < Duration::from_secs(1) {
            problems.push("scan_interval must be at least 1s".to_string());
        }
        if self.inventory_interval < Duration::from_secs(1) {
            problems.push("inventory_interval must be at least 1s".to_string());
        }
        if self.max_events_per_second == 0 {
            problems.push("max_events_per_second must be above 0".to_string());
        }
        let mut names = std::collections::HashSet::new();
        for item in &self.items {
            if !names.insert(item.name.as_str()) {
                problems.push(format!("item '{}': two items have this name", item.name));
            }
            problems.extend(item.problems());
        }
        problems
    }
}

impl Item {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.is_empty() {
            problems.push(format!("item with path '{}': name is empty", self.path));
        }
        if !self.path.starts_with('/') {
            problems.push(format!("item '{}': path '{}' is not absolute", self.name, self.path));
        }
        let parent = Path::new(&self.path).parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
        if parent.contains(['*', '?']) {
            problems
                .push(format!("item '{}': a glob is allowed in the last segment only ('{}')", self.name, self.path));
        }
        if self.upload_content && !content_allowed(&self.path) {
            problems.push(format!(
                "item '{}': the content of '{}' is never uploaded (the deny list of secrets cannot be overridden)",
                self.name, self.path
            ));
        }
        if self.max_content_bytes > MAX_CONTENT_BYTES {
            problems.push(format!(
                "item '{}': max_content_bytes {} is above the limit of {MAX_CONTENT_BYTES}",
                self.name, self.max_content_bytes
            ));
        }
        problems
    }
}

/// Whether the content of `path` may be uploaded: never for the deny list.
pub fn content_allowed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !CONTENT_DENY_LIST.iter().any(|p| if p.starts_with('/') { *p == path } else { wildcard(p, name) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_items_are_the_recommended_linux_set() {
        let settings = Monitoring::default();
        let paths: Vec<&str> = settings.items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, RECOMMENDED_PATHS);
        assert_eq!(settings.problems(), Vec::<String>::new());
    }

    #[test]
    fn secrets_are_never_uploaded() {
        for p in ["/etc/shadow", "/etc/gshadow", "/srv/tls/server.key", "/etc/ssl/cert.pem"] {
            assert!(!content_allowed(p), "{p}");
        }
        assert!(content_allowed("/etc/ssh/sshd_config"));
    }

    #[test]
    fn every_problem_is_listed() {
        let text = r#"
            scan_interval = "0s"
            max_events_per_second = 0
            [[items]]
            name = "relative"
            path = "etc/x"
            [[items]]
            name = "glob"
            path = "/etc/*/x.conf"
            [[items]]
            name = "shadow"
            path = "/etc/shadow"
            upload_content = true
        "#;
        let problems = Monitoring::parse(text).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains("scan_interval"));
        assert!(problems[1].contains("max_events_per_second"));
        assert!(problems[2].contains("not absolute"));
        assert!(problems[3].contains("last segment only"));
        assert!(problems[4].contains("deny list"));
    }

    #[test]
    fn an_unknown_setting_is_refused_by_name() {
        let problems = Monitoring::parse("scan_intervall = \"5m\"").unwrap_err();
        assert!(problems[0].contains("scan_intervall"), "{problems:?}");
    }

    #[test]
    fn absent_settings_take_their_defaults() {
        let settings = Monitoring::parse("realtime = false\n[[items]]\nname = \"app\"\npath = \"/srv/app\"\n").unwrap();
        assert!(!settings.realtime);
        assert_eq!(settings.scan_interval, Monitoring::default().scan_interval);
        assert_eq!(settings.items.len(), 1);
    }
}
