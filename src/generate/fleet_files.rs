//! The files of a generated fleet and their content over time, as real fleets have them:
//!
//! - every machine monitors the same system paths; application paths depend on the machine's
//!   role (one of four), so a path repeats across the fleet;
//! - a file's content at a given version has one checksum and one size on every machine
//!   ([`content`]): the same file at the same version hashes the same everywhere;
//! - updates roll over the fleet: a file's fleet version moves on with time ([`fleet_version`]),
//!   and a machine that changes the file moves from the version before to the current one, as
//!   every other machine that changes it in that period does;
//! - a minority of changes are local edits ([`local_content`]), whose checksum is the machine's
//!   own;
//! - owners, modes and ACLs are those of the path ([`owner`], [`acl`]) and change rarely.
//!
//! Everything is a function of its arguments (SHA-256 of them): no state, so each day of data can
//! be generated alone.

use sha2::{Digest, Sha256};

const SYSTEM_DIRS: &[&str] = &[
    "/etc",
    "/etc/ssh",
    "/etc/cron.d",
    "/etc/sudoers.d",
    "/etc/systemd/system",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/bin",
    "/sbin",
    "/boot",
];
const APP_DIRS: &[&str] = &["/opt/app/config", "/opt/app/lib", "/var/www/html", "/srv/api/conf", "/etc/nginx/conf.d"];
const NAMES: &[&str] = &[
    "passwd",
    "shadow",
    "group",
    "hosts",
    "sshd_config",
    "crontab",
    "sudoers",
    "resolv.conf",
    "app.yaml",
    "nginx.conf",
    "index.php",
    "libssl.so.3",
    "python3",
    "bash",
    "vmlinuz",
    "backup.sh",
    "settings.json",
    "logrotate",
    "ld.so.preload",
    "authorized_keys",
];
pub const OWNERS: &[&str] = &["root", "www-data", "app", "backup"];
/// Machine roles: application paths differ by role.
const ROLES: usize = 4;

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn number(bytes: &[u8; 32]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"))
}

/// The path of a machine's `i`-th monitored file: system files alike on every machine,
/// application files alike within the machine's role.
pub fn path(computer: usize, i: usize) -> String {
    let role = computer % ROLES;
    let (dirs, salt) = if i.is_multiple_of(3) { (APP_DIRS, role) } else { (SYSTEM_DIRS, 0) };
    let dir = dirs[(i * 7 + salt) % dirs.len()];
    let name = NAMES[(i * 13 + salt * 3) % NAMES.len()];
    if i < NAMES.len() { format!("{dir}/{name}") } else { format!("{dir}/{name}.{i}") }
}

/// The fleet's version of a machine's `i`-th file at `at_ms` (Unix milliseconds): the files that
/// change most often (small `i`) move every 10 minutes, the others more slowly (10 minutes more
/// per rank). Every machine that changes the file in one period moves to the same version.
pub fn fleet_version(i: usize, at_ms: i64) -> u64 {
    let period_ms = 600_000 * (1 + i as i64);
    at_ms.max(0).div_euclid(period_ms) as u64
}

/// The checksum (SHA-256 hex) and size of `path` at `version`: the same on every machine.
/// Sizes of one path stay close across versions.
pub fn content(path: &str, version: u64) -> (String, i64) {
    let at = digest(&[path, &version.to_string()]);
    let base = 64 + (number(&digest(&[path])) % 2_000_000) as i64;
    let delta = (number(&at) % 1024) as i64 - 512;
    (hex::encode(at), (base + delta).max(1))
}

/// A local edit of `path` on one machine at one moment: a checksum no other machine has.
pub fn local_content(path: &str, computer: usize, at_ms: i64) -> (String, i64) {
    let at = digest(&[path, &computer.to_string(), &at_ms.to_string()]);
    let base = 64 + (number(&digest(&[path])) % 2_000_000) as i64;
    (hex::encode(at), base + (number(&at) % 4096) as i64)
}

/// The owner of a machine's `i`-th file.
pub fn owner(i: usize) -> &'static str {
    OWNERS[i % OWNERS.len()]
}

/// The POSIX ACL of `path`; `variant` 1 is the one a permission change leaves (or found).
pub fn acl(path: &str, variant: u8) -> String {
    let modes = ["rw-", "r--", "rwx", "r-x"];
    let n = number(&digest(&[path, "acl"])) as usize;
    // Others may read, never write.
    let mut acl =
        format!("user::{},group::{},other::{}", modes[n % 4], modes[1 + n / 4 % 3], modes[[1, 3][n / 12 % 2]]);
    if (n / 24).is_multiple_of(5) || variant == 1 {
        acl.push_str(&format!(",user:{}:rw-", OWNERS[n / 120 % OWNERS.len()]));
    }
    acl
}

/// A package's version on `day` (days since 1970): updates come every few days.
pub fn package_version(package: &str, day: i64) -> String {
    let cadence = 3 + (number(&digest(&[package])) % 5) as i64;
    let release = day.max(0) / cadence;
    format!("{}.{}.{}", 1 + release / 100 % 9, release / 10 % 10, release % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_at_a_version_is_the_same_everywhere_and_sizes_stay_close() {
        assert_eq!(content("/etc/hosts", 7), content("/etc/hosts", 7));
        assert_ne!(content("/etc/hosts", 7).0, content("/etc/hosts", 8).0);
        assert!((content("/usr/bin/bash", 7).1 - content("/usr/bin/bash", 8).1).abs() < 1024);
        assert_ne!(local_content("/etc/hosts", 1, 5).0, local_content("/etc/hosts", 2, 5).0);
        assert_eq!(path(1, 1), path(2, 1), "system paths are the fleet's");
        assert_eq!(path(1, 3), path(5, 3), "application paths are the role's");
    }
}
