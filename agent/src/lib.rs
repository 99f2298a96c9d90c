//! fimlake-agent: watches the configured paths of a Linux host and reports every change of a
//! monitored file to a fimlake server, as `ConfigurationChange` records (with `Heartbeat` and
//! daily `ConfigurationData` snapshots), losing nothing across restarts or server outages.
//!
//! - [`config`]: the TOML configuration and its items (default: Defender for Cloud's Linux set).
//! - [`state`]: what is recorded about one file (`lstat`, hashes, ACL, security xattrs).
//! - [`scan`]: which paths items cover, and what changed against the baseline.
//! - [`baseline`]: the last known states, persisted crash-safely.
//! - [`records`]: the rows sent, with the Azure tables' columns.
//! - [`inventory`]: daemons (systemd) and software (dpkg, rpm).
//! - [`spool`]: batches on disk until the server acknowledges them.
//! - [`enrollment`]: the host's own key, obtained with an enrollment token.
//! - [`central`]: the group's configuration from the server, applied without a restart.
//! - [`agent`]: scheduled scans, real-time checks (inotify), heartbeat, snapshot, sender.

pub mod agent;
pub mod baseline;
pub mod central;
pub mod config;
pub mod durable;
pub mod enrollment;
pub mod file_state;
pub mod inventory;
pub mod names;
pub mod records;
pub mod scan;
pub mod spool;
pub mod state;
