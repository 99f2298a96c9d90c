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

/// Paths whose content is never uploaded, whatever an item says: secrets.
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
}

/// One monitored path.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.into(), source: e })?;
        let cfg: AgentConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), source: e })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.scan_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid("scan_interval must be at least 1s".into()));
        }
        if self.batch_records == 0 || self.max_events_per_second == 0 {
            return Err(ConfigError::Invalid("batch_records and max_events_per_second must be above 0".into()));
        }
        for item in &self.items {
            if !item.path.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "item '{}': path '{}' is not absolute",
                    item.name, item.path
                )));
            }
            let parent = Path::new(&item.path).parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
            if parent.contains(['*', '?']) {
                return Err(ConfigError::Invalid(format!(
                    "item '{}': a glob is allowed in the last segment only ('{}')",
                    item.name, item.path
                )));
            }
        }
        Ok(())
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

/// Whether the content of `path` may be uploaded: never for the deny list.
pub fn content_allowed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    !CONTENT_DENY_LIST.iter().any(|p| if p.starts_with('/') { *p == path } else { wildcard(p, name) })
}

/// `*` (any run) and `?` (one character) matching of a whole string.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_items_are_the_recommended_linux_set() {
        let cfg = AgentConfig::default();
        let paths: Vec<&str> = cfg.items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, RECOMMENDED_PATHS);
        cfg.validate().unwrap();
    }

    #[test]
    fn secrets_are_never_uploaded() {
        for p in ["/etc/shadow", "/etc/gshadow", "/srv/tls/server.key", "/etc/ssl/cert.pem"] {
            assert!(!content_allowed(p), "{p}");
        }
        assert!(content_allowed("/etc/ssh/sshd_config"));
    }

    #[test]
    fn wildcards_and_durations() {
        assert!(wildcard("*.conf", "resolv.conf"));
        assert!(!wildcard("*.conf", "resolv.conf.bak"));
        assert!(wildcard("cron.?aily", "cron.daily"));
        assert_eq!(fimlake_settings::duration::parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(fimlake_settings::duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert!(fimlake_settings::duration::parse("soon").is_err());
    }

    #[test]
    fn a_glob_outside_the_last_segment_is_refused() {
        let cfg = AgentConfig {
            items: vec![Item { name: "x".into(), path: "/etc/*/x.conf".into(), ..Item::default() }],
            ..AgentConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("last segment only"));
    }
}
