//! Beyond files, what Change Tracking also tracks on Linux: daemons (systemd service units:
//! state and startup type) and software (dpkg or rpm packages: installs, removals, upgrades).
//! Each inventory is compared with the previous one, kept in the data directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A systemd service: `active/sub` state (`active/running`) and startup type (`enabled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    pub state: String,
    pub startup: String,
    pub description: String,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub version: String,
    pub architecture: String,
    pub publisher: String,
    pub description: String,
}

/// The service units `systemctl` reports, or an error saying why there are none to read.
pub fn daemons(systemctl: &str) -> Result<BTreeMap<String, Daemon>, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(systemctl).args(args).output().map_err(|e| format!("running {systemctl}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{systemctl} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let units = run(&["list-units", "--type=service", "--all", "--no-legend", "--plain", "--no-pager"])?;
    let files = run(&["list-unit-files", "--type=service", "--no-legend", "--plain", "--no-pager"])?;
    let startup: BTreeMap<&str, &str> = files
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .collect();
    let mut out = BTreeMap::new();
    for l in units.lines() {
        // UNIT LOAD ACTIVE SUB DESCRIPTION...
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 || !f[0].ends_with(".service") {
            continue;
        }
        out.insert(
            f[0].to_string(),
            Daemon {
                state: format!("{}/{}", f[2], f[3]),
                startup: startup.get(f[0]).copied().unwrap_or("static").to_string(),
                description: f[4..].join(" "),
            },
        );
    }
    Ok(out)
}

/// The installed packages of a dpkg status file (`/var/lib/dpkg/status`).
pub fn dpkg_packages(status: &Path) -> Result<BTreeMap<String, Package>, String> {
    let text = std::fs::read_to_string(status).map_err(|e| format!("{}: {e}", status.display()))?;
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        let mut last = "";
        for line in stanza.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field
            }
            if let Some((k, v)) = line.split_once(':') {
                last = k;
                fields.insert(k, v.trim().to_string());
            }
        }
        let _ = last;
        let installed = fields.get("Status").is_some_and(|s| s.ends_with(" installed"));
        let Some(name) = fields.get("Package").filter(|_| installed) else { continue };
        let arch = fields.get("Architecture").cloned().unwrap_or_default();
        let key = if arch.is_empty() || arch == "all" { name.clone() } else { format!("{name}:{arch}") };
        out.insert(
            key,
            Package {
                version: fields.get("Version").cloned().unwrap_or_default(),
                architecture: arch,
                publisher: fields.get("Maintainer").cloned().unwrap_or_default(),
                description: fields.get("Description").cloned().unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The installed packages `rpm -qa` lists.
pub fn rpm_packages() -> Result<BTreeMap<String, Package>, String> {
    let out = Command::new("rpm")
        .args(["-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{VENDOR}\\t%{SUMMARY}\\n"])
        .output()
        .map_err(|e| format!("running rpm: {e}"))?;
    let mut pkgs = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() == 5 {
            pkgs.insert(
                format!("{}:{}", f[0], f[2]),
                Package {
                    version: f[1].into(),
                    architecture: f[2].into(),
                    publisher: f[3].into(),
                    description: f[4].into(),
                },
            );
        }
    }
    Ok(pkgs)
}

/// Added, Removed and Modified entries between two inventories.
pub fn diff<'a, T: PartialEq>(
    old: &'a BTreeMap<String, T>,
    new: &'a BTreeMap<String, T>,
) -> Vec<(&'static str, &'a str, Option<&'a T>, Option<&'a T>)> {
    let mut out = Vec::new();
    for (k, n) in new {
        match old.get(k) {
            None => out.push(("Added", k.as_str(), None, Some(n))),
            Some(o) if o != n => out.push(("Modified", k.as_str(), Some(o), Some(n))),
            Some(_) => {}
        }
    }
    for (k, o) in old {
        if !new.contains_key(k) {
            out.push(("Removed", k.as_str(), Some(o), None));
        }
    }
    out
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A `ConfigurationChange` row (`ConfigChangeType = Daemons`).
pub fn daemon_change(
    computer: &str,
    (category, name, old, new): (&str, &str, Option<&Daemon>, Option<&Daemon>),
    now: DateTime<Utc>,
) -> Value {
    let mut what = Vec::new();
    if let (Some(o), Some(n)) = (old, new) {
        if o.state != n.state {
            what.push("State");
        }
        if o.startup != n.startup {
            what.push("StartupType");
        }
        if o.description != n.description {
            what.push("Description");
        }
    }
    json!({
        "TimeGenerated": ts(now),
        "Computer": computer,
        "ConfigChangeType": "Daemons",
        "ChangeCategory": category,
        "SvcName": name,
        "Name": name,
        "SvcChangeType": what.join(", "),
        "FieldsChanged": what.join(", "),
        "SvcState": new.map(|d| d.state.clone()).unwrap_or_default(),
        "SvcPreviousState": old.map(|d| d.state.clone()).unwrap_or_default(),
        "SvcStartupType": new.map(|d| d.startup.clone()).unwrap_or_default(),
        "SvcPreviousStartupType": old.map(|d| d.startup.clone()).unwrap_or_default(),
        "SvcDisplayName": new.or(old).map(|d| d.description.clone()).unwrap_or_default(),
        "SvcController": "systemd",
        "SourceSystem": "Linux",
    })
}

/// A `ConfigurationChange` row (`ConfigChangeType = Software`).
pub fn software_change(
    computer: &str,
    (category, name, old, new): (&str, &str, Option<&Package>, Option<&Package>),
    now: DateTime<Utc>,
) -> Value {
    let p = new.or(old).expect("one side exists");
    json!({
        "TimeGenerated": ts(now),
        "Computer": computer,
        "ConfigChangeType": "Software",
        "ChangeCategory": category,
        "SoftwareName": name.split(':').next().unwrap_or(name),
        "Name": name,
        "SoftwareType": "Package",
        "Publisher": p.publisher,
        "SoftwareDescription": p.description,
        "Architecture": p.architecture,
        "Current": new.map(|p| p.version.clone()).unwrap_or_default(),
        "Previous": old.map(|p| p.version.clone()).unwrap_or_default(),
        "FieldsChanged": if category == "Modified" { "Version" } else { "" },
        "SourceSystem": "Linux",
    })
}

/// The last line of the package manager's log when it was written in the last `window`
/// seconds: file changes made meanwhile are most likely the package manager's, and their
/// records say so (`PackageManagerActivity`).
pub fn package_activity(logs: &[&Path], window_secs: u64) -> Option<String> {
    for log in logs {
        let Ok(md) = std::fs::metadata(log) else { continue };
        let recent = md.modified().ok()?.elapsed().map(|e| e.as_secs() <= window_secs).unwrap_or(true);
        if !recent {
            continue;
        }
        let text = std::fs::read_to_string(log).ok()?;
        if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
            return Some(format!("{}: {}", log.display(), line.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.11-1\nMaintainer: Debian OpenSSL Team\nDescription: Secure Sockets Layer toolkit\n more text\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a\n";

    #[test]
    fn dpkg_status_lists_installed_packages_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status");
        std::fs::write(&p, STATUS).unwrap();
        let pkgs = dpkg_packages(&p).unwrap();
        assert_eq!(pkgs.keys().collect::<Vec<_>>(), ["openssl:amd64", "tzdata"]);
        assert_eq!(pkgs["openssl:amd64"].version, "3.0.11-1");
        assert_eq!(pkgs["openssl:amd64"].description, "Secure Sockets Layer toolkit");
    }

    #[test]
    fn upgrades_installs_and_removals() {
        let pkg = |v: &str| Package {
            version: v.into(),
            architecture: "amd64".into(),
            publisher: String::new(),
            description: String::new(),
        };
        let old = BTreeMap::from([("a".to_string(), pkg("1")), ("b".to_string(), pkg("1"))]);
        let new = BTreeMap::from([("a".to_string(), pkg("2")), ("c".to_string(), pkg("1"))]);
        let d = diff(&old, &new);
        let kinds: Vec<(&str, &str)> = d.iter().map(|(c, n, _, _)| (*c, *n)).collect();
        assert_eq!(kinds, [("Modified", "a"), ("Added", "c"), ("Removed", "b")]);
        let row = software_change("h", d[0], Utc::now());
        assert_eq!((row["Previous"].as_str(), row["Current"].as_str()), (Some("1"), Some("2")));
        assert_eq!(row["ConfigChangeType"], "Software");
    }
}
