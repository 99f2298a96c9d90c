//! `fimlake gen` (`generate`): deterministic test data. The same seed, computers, days and end give the same
//! bytes: realistic `ConfigurationChange`, `ConfigurationData` and `Heartbeat` rows as NDJSON
//! files, one per table and day (`<out>/<Table>/<YYYY-MM-DD>.ndjson`).
//!
//! - `Heartbeat`: one per computer and minute.
//! - `ConfigurationChange`: `changes_per_day` per computer on average (day-to-day varying),
//!   mostly files under the recommended Linux paths and typical application paths, a skewed mix
//!   of Modified (70 %), Added (20 %) and Removed (10 %), with hashes, sizes, modes and ACL
//!   strings before and after; a few software and daemon changes.
//! - `ConfigurationData`: each computer's inventory of its files once a day.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

pub struct GenOptions {
    pub computers: usize,
    pub days: u32,
    pub seed: u64,
    /// The end of the generated period (exclusive).
    pub end: DateTime<Utc>,
    pub changes_per_day: u32,
    pub out: PathBuf,
}

/// How many rows were written, by table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub changes: u64,
    pub data: u64,
    pub heartbeats: u64,
}

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
const OWNERS: &[&str] = &["root", "www-data", "app", "backup"];
const PACKAGES: &[&str] = &["openssl", "openssh-server", "nginx", "curl", "sudo", "bash", "python3", "libc6"];
const DAEMONS: &[&str] = &["sshd.service", "nginx.service", "cron.service", "auditd.service", "app.service"];

fn hash(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 32] = rng.random();
    hex::encode(bytes)
}

fn acl(rng: &mut ChaCha8Rng) -> String {
    let mode = ["rw-", "r--", "rwx", "r-x"];
    let mut s = format!(
        "user::{},group::{},other::{}",
        mode[rng.random_range(0..4)],
        mode[rng.random_range(1..4)],
        mode[rng.random_range(1..2)]
    );
    if rng.random_bool(0.2) {
        s.push_str(&format!(",user:{}:rw-", OWNERS[rng.random_range(0..OWNERS.len())]));
    }
    s
}

/// The file a computer's i-th monitored path is (stable per computer).
fn path(computer: usize, i: usize) -> String {
    let dirs = if i.is_multiple_of(3) { APP_DIRS } else { SYSTEM_DIRS };
    let dir = dirs[(i * 7 + computer) % dirs.len()];
    let name = NAMES[(i * 13 + computer * 3) % NAMES.len()];
    if i < NAMES.len() { format!("{dir}/{name}") } else { format!("{dir}/{name}.{i}") }
}

const FILES_PER_COMPUTER: usize = 60;

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn generate(opts: &GenOptions) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let start = opts.end - Duration::days(i64::from(opts.days));
    for table in ["ConfigurationChange", "ConfigurationData", "Heartbeat"] {
        std::fs::create_dir_all(opts.out.join(table)).with_context(|| format!("creating {}", opts.out.display()))?;
    }
    for day in 0..opts.days {
        let day_start = start + Duration::days(i64::from(day));
        let name = format!("{}.ndjson", day_start.format("%Y-%m-%d"));
        // One stream per day, so that days can be generated alone and still match.
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ (u64::from(day) << 32));
        let mut changes = writer(&opts.out, "ConfigurationChange", &name)?;
        let mut data = writer(&opts.out, "ConfigurationData", &name)?;
        let mut beats = writer(&opts.out, "Heartbeat", &name)?;
        for c in 0..opts.computers {
            let computer = format!("vm-{c:04}");
            let ip = format!("10.{}.{}.{}", c / 65536 % 256, c / 256 % 256, c % 256);
            for m in 0..1440 {
                let t = day_start + Duration::minutes(m) + Duration::milliseconds(rng.random_range(0..1000));
                line(
                    &mut beats,
                    &json!({
                        "TimeGenerated": iso(t), "Computer": computer, "Category": "Direct Agent", "OSType": "Linux",
                        "OSName": "Ubuntu", "OSMajorVersion": "22", "OSMinorVersion": "04", "Version": "1.0.0",
                        "ComputerIP": ip, "ComputerPrivateIPs": [ip], "SourceComputerId": format!("{c:08x}-0000-4000-8000-000000000000"),
                        "Solutions": "changeTracking", "ComputerEnvironment": "Non-Azure",
                    }),
                )?;
                counts.heartbeats += 1;
            }
            // A day's changes: the average, varied ±50 %.
            let n = (f64::from(opts.changes_per_day) * rng.random_range(0.5..1.5)).round() as u32;
            for _ in 0..n {
                let t = day_start + Duration::milliseconds(rng.random_range(0..86_400_000));
                let roll: f64 = rng.random();
                let record = if roll < 0.03 {
                    let p = PACKAGES[rng.random_range(0..PACKAGES.len())];
                    json!({"TimeGenerated": iso(t), "Computer": computer, "ConfigChangeType": "Software",
                        "ChangeCategory": "Modified", "SoftwareName": p, "SoftwareType": "Package", "Publisher": "Ubuntu",
                        "PreviousVersion": format!("1.{}.0", rng.random_range(0..9)), "CurrentVersion": format!("1.{}.1", rng.random_range(0..9)),
                        "FieldsChanged": "Version"})
                } else if roll < 0.05 {
                    let d = DAEMONS[rng.random_range(0..DAEMONS.len())];
                    let (prev, cur) =
                        if rng.random_bool(0.5) { ("Running", "Stopped") } else { ("Stopped", "Running") };
                    json!({"TimeGenerated": iso(t), "Computer": computer, "ConfigChangeType": "Daemons",
                        "ChangeCategory": "Modified", "SvcName": d, "SvcState": cur, "SvcPreviousState": prev,
                        "SvcStartupType": "enabled", "FieldsChanged": "State"})
                } else {
                    // A skewed choice of path: a few files change most often.
                    let i = ((rng.random::<f64>().powi(3)) * FILES_PER_COMPUTER as f64) as usize;
                    let category = match rng.random::<f64>() {
                        x if x < 0.7 => "Modified",
                        x if x < 0.9 => "Added",
                        _ => "Removed",
                    };
                    let size: i64 = rng.random_range(64..2_000_000);
                    let mut r = json!({"TimeGenerated": iso(t), "Computer": computer, "ConfigChangeType": "Files",
                        "ChangeCategory": category, "FileSystemPath": path(c, i), "SourceComputerId": format!("{c:08x}-0000-4000-8000-000000000000")});
                    if category != "Removed" {
                        r["FileContentChecksum"] = json!(hash(&mut rng));
                        r["Size"] = json!(size);
                        r["Acls"] = json!(acl(&mut rng));
                        r["Owner"] = json!(OWNERS[rng.random_range(0..OWNERS.len())]);
                        r["DateModified"] = json!(iso(t - Duration::seconds(rng.random_range(0..60))));
                    }
                    if category != "Added" {
                        r["PreviousFileContentChecksum"] = json!(hash(&mut rng));
                        r["PreviousSize"] = json!(size + rng.random_range(-500..500));
                        r["PreviousAcls"] = json!(acl(&mut rng));
                    }
                    if category == "Modified" {
                        let fields = [
                            "Checksum,Size,DateModified",
                            "Checksum,DateModified",
                            "Acls",
                            "Owner,Acls",
                            "Checksum,Size",
                        ];
                        r["FieldsChanged"] = json!(fields[rng.random_range(0..fields.len())]);
                    }
                    r
                };
                line(&mut changes, &record)?;
                counts.changes += 1;
            }
            // The daily inventory.
            let at = day_start + Duration::hours(3) + Duration::seconds(c as i64 % 3600);
            for i in 0..FILES_PER_COMPUTER {
                line(
                    &mut data,
                    &json!({"TimeGenerated": iso(at), "Computer": computer, "ConfigDataType": "Files",
                    "FileSystemPath": path(c, i), "FileContentChecksum": hash(&mut rng), "Size": rng.random_range(64..2_000_000),
                    "Acls": acl(&mut rng), "Owner": OWNERS[i % OWNERS.len()], "DateModified": iso(at - Duration::days(rng.random_range(0..400)))}),
                )?;
                counts.data += 1;
            }
        }
        for w in [&mut changes, &mut beats, &mut data] {
            w.flush()?;
        }
    }
    Ok(counts)
}

fn writer(out: &Path, table: &str, name: &str) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let p = out.join(table).join(name);
    Ok(std::io::BufWriter::new(std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?))
}

fn line(w: &mut impl Write, v: &Value) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")?;
    Ok(())
}

/// The NDJSON files of `table` in `out`, oldest first.
pub fn files(out: &Path, table: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join(table))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}
