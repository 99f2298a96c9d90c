//! The agent's configuration (TOML), modelled on the Change Tracking data collection rule for
//! Linux files: a list of items, each a file, a folder or a glob in its last segment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

pub use fimlake_agent_settings::{
    CONTENT_DENY_LIST, Item, Monitoring, RECOMMENDED_PATHS, Setting, content_allowed, wildcard,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The name records carry in `Computer` [default: the host name].
    pub computer: Option<String>,
    /// The fimlake server's base URL.
    pub server: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// PEM CA certificates to trust for an https server (a private CA), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Baseline and spool.
    pub data_dir: PathBuf,
    /// How often a full scan runs (a change seen in real time is reported at once).
    #[serde(with = "fimlake_settings::duration")]
    pub scan_interval: Duration,
    /// Watch the items with inotify and report changes as they happen.
    pub realtime: bool,
    /// Changes to one path within this window are reported once.
    #[serde(with = "fimlake_settings::duration")]
    pub debounce: Duration,
    /// Real-time events waiting to be checked at most (~150 bytes each). Past it, events are
    /// dropped and a full scan runs at once, so a burst's memory does not follow its size.
    pub realtime_queue_events: usize,
    #[serde(with = "fimlake_settings::duration")]
    pub heartbeat_interval: Duration,
    /// A `ConfigurationData` snapshot of every monitored file at least this often.
    #[serde(with = "fimlake_settings::duration")]
    pub snapshot_interval: Duration,
    /// Files larger than this are not hashed (their other attributes still are).
    pub max_hash_bytes: u64,
    /// Also compute MD5 (kept in `AdditionalFields.Md5`).
    pub md5: bool,
    /// Records sent per second at most; a burst is delivered in full, spread out.
    pub max_events_per_second: u32,
    /// Records per request to the server.
    pub batch_records: usize,
    /// The spool stops accepting new records past this size (and says so in the log and a
    /// coverage record); records already spooled are kept.
    pub max_spool_bytes: u64,
    /// Bytes hashed per second at most (0: no limit), to bound the IO of a scan.
    pub max_hash_bytes_per_second: u64,
    /// Threads that read and hash files during a scan (its CPU bound).
    pub scan_threads: usize,
    /// Track systemd service units (`ConfigChangeType = Daemons`).
    pub track_daemons: bool,
    /// Track installed packages (`ConfigChangeType = Software`), from dpkg or rpm.
    pub track_software: bool,
    /// How often daemons and software are compared (also at every full scan).
    #[serde(with = "fimlake_settings::duration")]
    pub inventory_interval: Duration,
    pub systemctl: String,
    pub dpkg_status: PathBuf,
    /// Package manager logs: file changes made while one was just written carry its last line
    /// (`PackageManagerActivity`), so that a patch run is told apart from an intrusion.
    pub package_logs: Vec<PathBuf>,
    #[serde(rename = "items")]
    pub items: Vec<Item>,
    /// How often the group's configuration is fetched from the server (`0s`: never; the
    /// agent then runs on this file alone).
    #[serde(with = "fimlake_settings::duration")]
    pub config_poll: Duration,
    /// The monitoring settings this file keeps over its group's configuration (`["items",
    /// "scan_interval"]`); the others come from the group once the server has one.
    pub local_overrides: Vec<Setting>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            computer: None,
            server: "http://127.0.0.1:8080".into(),
            api_key: None,
            ca_file: None,
            data_dir: PathBuf::from("/var/lib/fimlake-agent"),
            scan_interval: Duration::from_secs(15 * 60),
            realtime: true,
            debounce: Duration::from_millis(200),
            realtime_queue_events: 16_384,
            heartbeat_interval: Duration::from_secs(60),
            snapshot_interval: Duration::from_secs(24 * 3600),
            max_hash_bytes: 1 << 30,
            md5: false,
            max_events_per_second: 1000,
            batch_records: 1000,
            max_spool_bytes: 256 << 20,
            max_hash_bytes_per_second: 0,
            scan_threads: 1,
            track_daemons: true,
            track_software: true,
            inventory_interval: Duration::from_secs(300),
            systemctl: "systemctl".into(),
            dpkg_status: PathBuf::from("/var/lib/dpkg/status"),
            package_logs: ["/var/log/dpkg.log", "/var/log/dnf.rpm.log", "/var/log/yum.log"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            items: Monitoring::default().items,
            config_poll: Duration::from_secs(60),
            local_overrides: Vec::new(),
        }
    }
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.into(), source: e })?;
        let cfg: AgentConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), source: e })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The rules of the monitoring settings (shared with the server's group configurations)
    /// and of this file's own; every problem is listed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.monitoring().problems();
        if self.batch_records == 0 {
            problems.push("batch_records must be above 0".into());
        }
        if self.realtime_queue_events == 0 {
            problems.push("realtime_queue_events must be above 0".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems.join("; "))) }
    }

    /// The monitoring settings in effect.
    pub fn monitoring(&self) -> Monitoring {
        Monitoring {
            scan_interval: self.scan_interval,
            realtime: self.realtime,
            max_hash_bytes: self.max_hash_bytes,
            max_hash_bytes_per_second: self.max_hash_bytes_per_second,
            md5: self.md5,
            max_events_per_second: self.max_events_per_second,
            track_daemons: self.track_daemons,
            track_software: self.track_software,
            inventory_interval: self.inventory_interval,
            items: self.items.clone(),
        }
    }

    /// This file with a group's settings in effect, except those it keeps (`local_overrides`).
    pub fn with_central(&self, central: &Monitoring) -> AgentConfig {
        let mut merged = self.clone();
        for setting in Setting::ALL.into_iter().filter(|s| !self.local_overrides.contains(s)) {
            merged.take(central, setting);
        }
        merged
    }

    fn take(&mut self, from: &Monitoring, setting: Setting) {
        match setting {
            Setting::ScanInterval => self.scan_interval = from.scan_interval,
            Setting::Realtime => self.realtime = from.realtime,
            Setting::MaxHashBytes => self.max_hash_bytes = from.max_hash_bytes,
            Setting::MaxHashBytesPerSecond => self.max_hash_bytes_per_second = from.max_hash_bytes_per_second,
            Setting::Md5 => self.md5 = from.md5,
            Setting::MaxEventsPerSecond => self.max_events_per_second = from.max_events_per_second,
            Setting::TrackDaemons => self.track_daemons = from.track_daemons,
            Setting::TrackSoftware => self.track_software = from.track_software,
            Setting::InventoryInterval => self.inventory_interval = from.inventory_interval,
            Setting::Items => self.items = from.items.clone(),
        }
    }

    /// The `Computer` of records.
    pub fn computer_name(&self) -> String {
        self.computer.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_the_monitoring_ones_are_the_shared_defaults() {
        let cfg = AgentConfig::default();
        assert_eq!(cfg.monitoring(), Monitoring::default(), "the recommended set, as the server's groups have it");
        cfg.validate().unwrap();
    }

    #[test]
    fn a_glob_outside_the_last_segment_is_refused() {
        let cfg = AgentConfig {
            items: vec![Item { name: "x".into(), path: "/etc/*/x.conf".into(), ..Item::default() }],
            ..AgentConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("last segment only"));
    }

    #[test]
    fn the_group_wins_except_where_the_file_keeps_its_own() {
        let local = AgentConfig {
            scan_interval: Duration::from_secs(30),
            realtime: false,
            local_overrides: vec![Setting::Realtime],
            ..AgentConfig::default()
        };
        let central = Monitoring {
            scan_interval: Duration::from_secs(600),
            realtime: true,
            items: vec![Item { name: "app".into(), path: "/srv/app".into(), ..Item::default() }],
            ..Monitoring::default()
        };
        let merged = local.with_central(&central);
        assert_eq!(merged.scan_interval, Duration::from_secs(600));
        assert!(!merged.realtime, "kept by local_overrides");
        assert_eq!(merged.items, central.items);
        assert_eq!(merged.server, local.server, "connection settings are never central");
    }

    #[test]
    fn local_overrides_name_settings() {
        let cfg: AgentConfig = toml::from_str("local_overrides = [\"items\", \"scan_interval\"]").unwrap();
        assert_eq!(cfg.local_overrides, [Setting::Items, Setting::ScanInterval]);
        assert!(toml::from_str::<AgentConfig>("local_overrides = [\"server\"]").is_err());
    }
}
