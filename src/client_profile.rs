//! The client profile: where the CLI's remote commands (`query`, `ingest`, `keys`,
//! `enroll-tokens`, `agent-config`, `machines`) find their server, key and CA when no flag or
//! environment variable names them, so an analyst configures them once:
//!
//! ```toml
//! # ~/.config/fimlake/client.toml (or $FIMLAKE_CLIENT_CONFIG)
//! server = "https://fim.example.com:8443"
//! api_key = "flk_..."
//! ca_file = "/etc/fimlake/ca.pem"
//! ```
//!
//! A flag wins over its environment variable (`FIMLAKE_SERVER`, `FIMLAKE_API_KEY`,
//! `FIMLAKE_CA_FILE`), which wins over the profile.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The server when nothing names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub server: Option<String>,
    pub api_key: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Where a remote command connects, as whom.
#[derive(Debug, Clone)]
pub struct Connection {
    pub server: String,
    pub api_key: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// Where the profile is: `$FIMLAKE_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/fimlake/client.toml`,
/// else `~/.config/fimlake/client.toml`. Read only by the commands that connect somewhere.
#[derive(Debug, Clone)]
pub struct ProfileFile(Option<PathBuf>);

impl ProfileFile {
    /// From the process's environment variables (`main` reads them).
    pub fn from_environment(vars: &[(String, String)]) -> ProfileFile {
        let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| PathBuf::from(v));
        if let Some(explicit) = var("FIMLAKE_CLIENT_CONFIG") {
            return ProfileFile(Some(explicit));
        }
        let config_home = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")));
        ProfileFile(config_home.map(|dir| dir.join("fimlake").join("client.toml")))
    }

    /// The profile, or an empty one when its file does not exist.
    pub fn load(&self) -> anyhow::Result<Profile> {
        let Some(path) = &self.0 else { return Ok(Profile::default()) };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading the client profile {}", path.display())),
        };
        let profile: Profile =
            toml::from_str(&text).with_context(|| format!("the client profile {}", path.display()))?;
        if profile.api_key.is_some() && readable_by_others(path) {
            eprintln!("warning: {} holds an API key and others may read it (chmod 600 it)", path.display());
        }
        Ok(profile)
    }
}

impl Profile {
    /// The connection of a command given these flags (or environment variables).
    pub fn connect(&self, server: Option<String>, api_key: Option<String>, ca_file: Option<PathBuf>) -> Connection {
        Connection {
            server: server.or_else(|| self.server.clone()).unwrap_or_else(|| DEFAULT_SERVER.to_string()),
            api_key: api_key.or_else(|| self.api_key.clone()),
            ca_file: ca_file.or_else(|| self.ca_file.clone()),
        }
    }
}

fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_profile_which_wins_over_the_default() {
        let profile = Profile {
            server: Some("https://fim.example:8443".into()),
            api_key: Some("flk_profile".into()),
            ca_file: None,
        };
        let c = profile.connect(None, Some("flk_flag".into()), None);
        assert_eq!((c.server.as_str(), c.api_key.as_deref()), ("https://fim.example:8443", Some("flk_flag")));
        let c = Profile::default().connect(None, None, None);
        assert_eq!((c.server.as_str(), c.api_key), (DEFAULT_SERVER, None));
        assert!(toml::from_str::<Profile>("sever = \"x\"").is_err(), "a misspelt key is refused");
    }

    #[test]
    fn the_profile_is_found_where_the_environment_says() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let at = |pairs: &[(&str, &str)]| ProfileFile::from_environment(&vars(pairs)).0;
        assert_eq!(at(&[("HOME", "/home/a")]), Some(PathBuf::from("/home/a/.config/fimlake/client.toml")));
        assert_eq!(
            at(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "/cfg")]),
            Some(PathBuf::from("/cfg/fimlake/client.toml"))
        );
        assert_eq!(at(&[("HOME", "/home/a"), ("FIMLAKE_CLIENT_CONFIG", "/p.toml")]), Some(PathBuf::from("/p.toml")));
        assert_eq!(at(&[]), None);
    }
}
