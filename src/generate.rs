//! `fimlake gen` (`generate`): deterministic test data. The same seed, computers, days and end give the same
//! bytes: realistic `ConfigurationChange`, `ConfigurationData` and `Heartbeat` rows as NDJSON
//! files, one per table and day (`<out>/<Table>/<YYYY-MM-DD>.ndjson`).
//!
//! - `Heartbeat`: one per computer and minute.
//! - `ConfigurationChange`: `changes_per_day` per computer on average (day-to-day varying),
//!   mostly files under the recommended Linux paths and typical application paths, a skewed mix
//!   of Modified (70 %), Added (20 %) and Removed (10 %), with checksums, sizes, owners and ACLs
//!   before and after as a fleet has them ([`fleet_files`]: a file at a version hashes the same
//!   on every machine, updates roll over the fleet, local edits are a minority); a few software
//!   (package versions moving every few days) and daemon changes.
//! - `ConfigurationData`: each computer's inventory of its files once a day.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

mod fleet_files;

use fleet_files::{acl, content, fleet_version, local_content, owner, package_version, path};

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

const PACKAGES: &[&str] = &["openssl", "openssh-server", "nginx", "curl", "sudo", "bash", "python3", "libc6"];
const DAEMONS: &[&str] = &["sshd.service", "nginx.service", "cron.service", "auditd.service", "app.service"];

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
            let machine = Machine::new(c, day_start);
            for m in 0..1440 {
                let t = day_start + Duration::minutes(m) + Duration::milliseconds(rng.random_range(0..1000));
                line(&mut beats, &machine.heartbeat(t))?;
                counts.heartbeats += 1;
            }
            // A day's changes: the average, varied ±50 %.
            let n = (f64::from(opts.changes_per_day) * rng.random_range(0.5..1.5)).round() as u32;
            for _ in 0..n {
                let t = day_start + Duration::milliseconds(rng.random_range(0..86_400_000));
                let record = machine.change(&mut rng, t);
                line(&mut changes, &record)?;
                counts.changes += 1;
            }
            for i in 0..FILES_PER_COMPUTER {
                line(&mut data, &machine.inventory(&mut rng, i))?;
                counts.data += 1;
            }
        }
        for w in [&mut changes, &mut beats, &mut data] {
            w.flush()?;
        }
    }
    Ok(counts)
}

/// One machine on one day.
struct Machine {
    index: usize,
    computer: String,
    ip: String,
    source_id: String,
    day_start: DateTime<Utc>,
    /// Days since 1970 of `day_start` (package versions move by day).
    day: i64,
}

impl Machine {
    fn new(index: usize, day_start: DateTime<Utc>) -> Machine {
        Machine {
            index,
            computer: format!("vm-{index:04}"),
            ip: format!("10.{}.{}.{}", index / 65536 % 256, index / 256 % 256, index % 256),
            source_id: format!("{index:08x}-0000-4000-8000-000000000000"),
            day_start,
            day: day_start.timestamp().div_euclid(86_400),
        }
    }

    fn heartbeat(&self, t: DateTime<Utc>) -> Value {
        json!({
            "TimeGenerated": iso(t), "Computer": self.computer, "Category": "Direct Agent", "OSType": "Linux",
            "OSName": "Ubuntu", "OSMajorVersion": "22", "OSMinorVersion": "04", "Version": "1.0.0",
            "ComputerIP": self.ip, "ComputerPrivateIPs": [self.ip], "SourceComputerId": self.source_id,
            "Solutions": "changeTracking", "ComputerEnvironment": "Non-Azure",
        })
    }

    /// One change at `t`: 3 % software, 2 % daemons, the rest files.
    fn change(&self, rng: &mut ChaCha8Rng, t: DateTime<Utc>) -> Value {
        let roll: f64 = rng.random();
        if roll < 0.03 {
            let p = PACKAGES[rng.random_range(0..PACKAGES.len())];
            return json!({"TimeGenerated": iso(t), "Computer": self.computer, "ConfigChangeType": "Software",
                "ChangeCategory": "Modified", "SoftwareName": p, "SoftwareType": "Package", "Publisher": "Ubuntu",
                "PreviousVersion": package_version(p, self.day - 1), "CurrentVersion": package_version(p, self.day),
                "FieldsChanged": "Version"});
        }
        if roll < 0.05 {
            let d = DAEMONS[rng.random_range(0..DAEMONS.len())];
            let (prev, cur) = if rng.random_bool(0.5) { ("Running", "Stopped") } else { ("Stopped", "Running") };
            return json!({"TimeGenerated": iso(t), "Computer": self.computer, "ConfigChangeType": "Daemons",
                "ChangeCategory": "Modified", "SvcName": d, "SvcState": cur, "SvcPreviousState": prev,
                "SvcStartupType": "enabled", "FieldsChanged": "State"});
        }
        // A skewed choice of file: a few change most often.
        let i = ((rng.random::<f64>().powi(3)) * FILES_PER_COMPUTER as f64) as usize;
        self.file_change(rng, t, i, fleet_version(i, t.timestamp_millis()))
    }

    /// A change of the machine's `i`-th file to fleet `version`: Modified (70 %: mostly from
    /// the version before, as the fleet's update reaches the machine; 10 % local edits; 10 %
    /// permission changes), Added (20 %), Removed (10 %).
    fn file_change(&self, rng: &mut ChaCha8Rng, t: DateTime<Utc>, i: usize, version: u64) -> Value {
        let path = path(self.index, i);
        let category = match rng.random::<f64>() {
            x if x < 0.7 => "Modified",
            x if x < 0.9 => "Added",
            _ => "Removed",
        };
        let mut r = json!({"TimeGenerated": iso(t), "Computer": self.computer, "ConfigChangeType": "Files",
            "ChangeCategory": category, "FileSystemPath": path, "SourceComputerId": self.source_id});
        let before = content(&path, version);
        let kind: f64 = rng.random();
        let (after, acl_before, fields) = match category {
            "Modified" if kind < 0.1 => (before.clone(), 1, "Acls"),
            "Modified" if kind < 0.25 => {
                (local_content(&path, self.index, t.timestamp_millis()), 0, "Checksum,Size,DateModified")
            }
            "Modified" => (content(&path, version + 1), 0, "Checksum,Size,DateModified"),
            _ => (before.clone(), 0, ""),
        };
        if category != "Removed" {
            r["FileContentChecksum"] = json!(after.0);
            r["Size"] = json!(after.1);
            r["Acls"] = json!(acl(&path, 0));
            r["Owner"] = json!(owner(i));
            r["DateModified"] = json!(iso(t - Duration::seconds(rng.random_range(0..60))));
        }
        if category != "Added" {
            r["PreviousFileContentChecksum"] = json!(before.0);
            r["PreviousSize"] = json!(before.1);
            r["PreviousAcls"] = json!(acl(&path, acl_before));
        }
        if category == "Modified" {
            r["FieldsChanged"] = json!(fields);
        }
        r
    }

    /// The daily inventory row of the machine's `i`-th file, at the fleet's version of the day.
    fn inventory(&self, rng: &mut ChaCha8Rng, i: usize) -> Value {
        let at = self.day_start + Duration::hours(3) + Duration::seconds(self.index as i64 % 3600);
        let path = path(self.index, i);
        let (checksum, size) = content(&path, fleet_version(i, at.timestamp_millis()));
        json!({"TimeGenerated": iso(at), "Computer": self.computer, "ConfigDataType": "Files",
            "FileSystemPath": path, "FileContentChecksum": checksum, "Size": size,
            "Acls": acl(&path, 0), "Owner": owner(i), "DateModified": iso(at - Duration::days(rng.random_range(0..400)))})
    }
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
