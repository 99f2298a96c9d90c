//! The records the agent sends, with the columns of the Azure tables
//! (`ConfigurationChange`, `ConfigurationData`, `Heartbeat`); what those tables have no column
//! for (mode, owner, inode, link target...) goes in fields the server keeps in `AdditionalFields`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::names;
use crate::scan::{Category, Change, ScanError};
use crate::state::FileState;

pub const VERSION: &str = concat!("fimlake-agent ", env!("CARGO_PKG_VERSION"));

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn ns_time(ns: i64) -> Value {
    DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
        .map_or(Value::Null, |t| Value::String(ts(t)))
}

/// `type=file mode=0644 owner=root(0) group=root(0)` and the xattrs: what `Attributes` holds.
fn attributes(s: &FileState) -> String {
    let mut a = format!(
        "type={} mode={:04o} owner={}({}) group={}({}) inode={} links={}",
        s.kind,
        s.mode,
        names::user(s.uid),
        s.uid,
        names::group(s.gid),
        s.gid,
        s.inode,
        s.nlink
    );
    for (k, v) in &s.rare().xattrs {
        a.push_str(&format!(" {k}={v}"));
    }
    a
}

/// The mode string and extended ACL entries: what `Acls` holds (`-rw-r--r-- user:alice:r--`).
fn acls(s: &FileState) -> String {
    let acl = &s.rare().acl;
    if acl.is_empty() { s.mode_string() } else { format!("{} {acl}", s.mode_string()) }
}

fn file_fields(m: &mut Map<String, Value>, s: &FileState, prefix: &str) {
    let mut put = |k: &str, v: Value| {
        m.insert(format!("{prefix}{k}"), v);
    };
    put("Size", json!(s.size));
    put("FileContentChecksum", json!(s.sha256.map(|c| c.to_string()).unwrap_or_default()));
    put("DateModified", ns_time(s.mtime_ns));
    put("Acls", json!(acls(s)));
    put("Attributes", json!(attributes(s)));
}

/// Extra per-file fields, kept by the server in `AdditionalFields`.
fn extra_fields(m: &mut Map<String, Value>, s: &FileState, prefix: &str) {
    let mut put = |k: &str, v: Value| {
        m.insert(format!("{prefix}{k}"), v);
    };
    put("FileType", json!(s.kind.as_str()));
    put("Mode", json!(format!("{:04o}", s.mode)));
    put("Owner", json!(names::user(s.uid)));
    put("Group", json!(names::group(s.gid)));
    put("Inode", json!(s.inode));
    if let Some(t) = &s.rare().link_target {
        put("LinkTarget", json!(t));
    }
    if let Some(md5) = &s.md5 {
        put("Md5", json!(md5.to_string()));
    }
    if let Some(e) = &s.rare().hash_error {
        put("ChecksumError", json!(e));
    }
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A `ConfigurationChange` row (`ConfigChangeType = Files`) for one change.
pub fn change(computer: &str, c: &Change, now: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("TimeGenerated".into(), json!(ts(now)));
    m.insert("Computer".into(), json!(computer));
    m.insert("ConfigChangeType".into(), json!("Files"));
    m.insert(
        "ChangeCategory".into(),
        json!(match c.category {
            Category::Added => "Added",
            Category::Removed => "Removed",
            Category::Modified => "Modified",
        }),
    );
    m.insert("FieldsChanged".into(), json!(c.fields.join(", ")));
    m.insert("Name".into(), json!(name_of(&c.path)));
    m.insert("FileSystemPath".into(), json!(c.path));
    m.insert("SourceSystem".into(), json!("Linux"));
    m.insert("Location".into(), json!(c.item.0));
    m.insert("ItemGroup".into(), json!(c.item.1));
    if let Some(n) = &c.new {
        file_fields(&mut m, n, "");
        extra_fields(&mut m, n, "");
        if let Some(text) = &n.rare().content {
            m.insert("Current".into(), json!(text));
        }
    }
    if let Some(text) = c.old.as_ref().and_then(|o| o.rare().content.as_ref()) {
        m.insert("Previous".into(), json!(text));
    }
    // For Removed, the last known state is the previous one and there is no current one.
    if let Some(o) = &c.old {
        file_fields(&mut m, o, "Previous");
        extra_fields(&mut m, o, "Previous");
    }
    Value::Object(m)
}

/// A `ConfigurationData` row: the current state of one monitored file.
pub fn data(computer: &str, path: &str, s: &FileState, item: &(String, String), now: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("TimeGenerated".into(), json!(ts(now)));
    m.insert("Computer".into(), json!(computer));
    m.insert("ConfigDataType".into(), json!("Files"));
    m.insert("Name".into(), json!(name_of(path)));
    m.insert("FileSystemPath".into(), json!(path));
    m.insert("SourceSystem".into(), json!("Linux"));
    m.insert("Location".into(), json!(item.0));
    m.insert("ItemGroup".into(), json!(item.1));
    file_fields(&mut m, s, "");
    extra_fields(&mut m, s, "");
    Value::Object(m)
}

/// A `Heartbeat` row.
/// A `Heartbeat` row; `applied`: the group configuration the agent runs (none: its own file).
pub fn heartbeat(computer: &str, now: DateTime<Utc>, applied: Option<&crate::central::Applied>) -> Value {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let version = field("VERSION_ID");
    let (major, minor) = version.split_once('.').unwrap_or((&version, ""));
    json!({
        "TimeGenerated": ts(now),
        "Computer": computer,
        "Category": "Direct Agent",
        "OSType": "Linux",
        "OSName": field("NAME"),
        "OSMajorVersion": major,
        "OSMinorVersion": minor,
        "Version": VERSION,
        "ComputerEnvironment": "Non-Azure",
        "SourceSystem": "Linux",
        "Solutions": "changeTracking",
        "ConfigurationGroup": applied.map(|a| a.group.as_str()),
        "ConfigurationVersion": applied.map(|a| a.version),
    })
}

/// A `ConfigurationChange` row saying the agent cannot see part of what it should
/// (`ConfigChangeType = AgentCoverage`, `ChangeCategory = CoverageLost`), so that losing
/// coverage is never silent and can be alerted on.
pub fn coverage_lost(computer: &str, e: &ScanError, now: DateTime<Utc>) -> Value {
    json!({
        "TimeGenerated": ts(now),
        "Computer": computer,
        "ConfigChangeType": "AgentCoverage",
        "ChangeCategory": "CoverageLost",
        "FileSystemPath": e.path,
        "Name": name_of(&e.path),
        "Location": e.item,
        "Current": e.message,
        "SourceSystem": "Linux",
    })
}
