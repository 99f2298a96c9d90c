//! What the agent reports for each kind of change of a watched tree, in scheduled scans and in
//! real time, and across a restart: the records it would send (`ChangeCategory`,
//! `FieldsChanged`, current and `Previous*` values).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fimlake_agent::agent::{self, Agent};
use fimlake_agent::config::{AgentConfig, Item};
use serde_json::Value;

fn config(watched: &Path, data: &Path) -> AgentConfig {
    AgentConfig {
        computer: Some("test-host".into()),
        // Nothing listens there: records stay in the spool, where the tests read them.
        server: "http://127.0.0.1:9".into(),
        data_dir: data.to_path_buf(),
        scan_interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
        md5: true,
        items: vec![Item {
            name: "tree".into(),
            group: "Test".into(),
            path: watched.to_string_lossy().into(),
            ..Item::default()
        }],
        ..AgentConfig::default()
    }
}

/// The changes of one scan, by path.
fn scan(agent: &Agent) -> Vec<Value> {
    let mut rows = Vec::new();
    agent.full_scan(true, &mut |batch| rows.extend_from_slice(batch)).unwrap();
    rows
}

fn one<'a>(changes: &'a [Value], path: &Path) -> &'a Value {
    let p = path.to_string_lossy();
    let hits: Vec<&Value> =
        changes.iter().filter(|c| c["FileSystemPath"] == *p && c["ConfigChangeType"] == "Files").collect();
    assert_eq!(hits.len(), 1, "one change of {p} expected in {changes:#?}");
    hits[0]
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("etc");
    let data = dir.path().join("agent");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("sub/app.conf"), "a=1\n").unwrap();
    Tree { _dir: dir, root, data }
}

#[test]
fn every_kind_of_change_in_a_scheduled_scan() {
    let t = tree();
    let agent = Agent::open(config(&t.root, &t.data)).unwrap();
    let first = agent.full_scan(true, &mut |_| {}).unwrap();
    assert!(first.first && first.changes == 0, "the first scan builds the baseline");
    assert_eq!(first.files, 4, "the root, passwd, sub and sub/app.conf");
    assert!(scan(&agent).is_empty(), "nothing changed");

    // Added
    let new = t.root.join("sub/new.conf");
    std::fs::write(&new, "x").unwrap();
    let c = scan(&agent);
    let added = one(&c, &new);
    assert_eq!(added["ChangeCategory"], "Added");
    assert_eq!(added["ConfigChangeType"], "Files");
    assert_eq!(added["Computer"], "test-host");
    assert_eq!(added["Size"], 1);
    assert_eq!(added["FileContentChecksum"], "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    assert_eq!(added["Md5"], "9dd4e461268c8034f5c8564e155c67a6");
    assert_eq!(c.len(), 1, "{c:#?}");

    // Content
    let passwd = t.root.join("passwd");
    std::thread::sleep(Duration::from_millis(10));
    std::fs::write(&passwd, "root:x:0:0::/root:/bin/bash\n").unwrap();
    let c = scan(&agent);
    let m = one(&c, &passwd);
    assert_eq!(m["ChangeCategory"], "Modified");
    assert_eq!(m["FieldsChanged"], "Size, FileContentChecksum, DateModified");
    assert_eq!((m["PreviousSize"].as_u64(), m["Size"].as_u64()), (Some(26), Some(28)));
    assert_ne!(m["PreviousFileContentChecksum"], m["FileContentChecksum"]);
    assert_ne!(m["PreviousDateModified"], m["DateModified"]);

    // chmod
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = scan(&agent);
    let m = one(&c, &passwd);
    assert_eq!(m["FieldsChanged"], "Mode");
    assert_eq!((m["PreviousMode"].as_str(), m["Mode"].as_str()), (Some("0644"), Some("0600")));
    assert!(m["Acls"].as_str().unwrap().starts_with("-rw-------"), "{m}");
    assert!(m["PreviousAcls"].as_str().unwrap().starts_with("-rw-r--r--"), "{m}");

    // chown, where permitted (root)
    if std::os::unix::fs::chown(&passwd, Some(1), Some(1)).is_ok() {
        let c = scan(&agent);
        let m = one(&c, &passwd);
        assert_eq!(m["FieldsChanged"], "Owner, Group");
        assert_eq!(m["PreviousOwner"], "root");
    }

    // An extended ACL entry, where the file system supports them.
    let acl = fimlake_agent::state::acl_xattr(&[
        (1, 6, u32::MAX),
        (2, 4, 0),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    match xattr_set(&passwd, &acl) {
        Ok(()) => {
            let c = scan(&agent);
            let m = one(&c, &passwd);
            assert!(m["FieldsChanged"].as_str().unwrap().contains("Acls"), "{m}");
            assert!(m["Acls"].as_str().unwrap().ends_with("user:root:r--,mask::r--"), "{m}");
        }
        Err(e) => eprintln!("skipping the ACL case: this file system refuses POSIX ACLs ({e})"),
    }

    // rename: the old path is Removed, the new one Added.
    let moved = t.root.join("sub/app.conf.bak");
    std::fs::rename(t.root.join("sub/app.conf"), &moved).unwrap();
    let c = scan(&agent);
    assert_eq!(one(&c, &t.root.join("sub/app.conf"))["ChangeCategory"], "Removed");
    assert_eq!(one(&c, &t.root.join("sub/app.conf"))["PreviousSize"], 4);
    assert_eq!(one(&c, &moved)["ChangeCategory"], "Added");

    // delete
    std::fs::remove_file(&new).unwrap();
    let c = scan(&agent);
    assert_eq!(one(&c, &new)["ChangeCategory"], "Removed");

    // A file replaced by a symlink.
    std::fs::remove_file(&moved).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &moved).unwrap();
    let c = scan(&agent);
    let m = one(&c, &moved);
    assert_eq!(m["ChangeCategory"], "Modified");
    let fields = m["FieldsChanged"].as_str().unwrap();
    assert!(fields.starts_with("FileType, Size, FileContentChecksum"), "{fields}");
    assert!(fields.contains("LinkTarget"), "{fields}");
    assert_eq!((m["PreviousFileType"].as_str(), m["FileType"].as_str()), (Some("file"), Some("symlink")));
    assert_eq!(m["LinkTarget"], "/etc/shadow");
    assert_eq!(m["FileContentChecksum"], "", "a link has no content of its own");
}

fn xattr_set(path: &Path, value: &[u8]) -> std::io::Result<()> {
    xattr::set(path, "system.posix_acl_access", value)
}

#[test]
fn changes_made_while_the_agent_was_stopped_are_reported_at_start() {
    let t = tree();
    {
        let agent = Agent::open(config(&t.root, &t.data)).unwrap();
        agent.full_scan(true, &mut |_| {}).unwrap();
    }
    std::fs::write(t.root.join("passwd"), "changed while stopped\n").unwrap();
    std::fs::remove_file(t.root.join("sub/app.conf")).unwrap();
    let agent = Agent::open(config(&t.root, &t.data)).unwrap();
    let mut changes = Vec::new();
    let c = agent.full_scan(true, &mut |batch| changes.extend_from_slice(batch)).unwrap();
    assert!(!c.first);
    assert_eq!(c.changes, 2);
    assert_eq!(one(&changes, &t.root.join("passwd"))["ChangeCategory"], "Modified");
    assert_eq!(one(&changes, &t.root.join("sub/app.conf"))["ChangeCategory"], "Removed");
}

#[test]
fn files_the_agent_cannot_hash_are_reported_not_fatal() {
    let t = tree();
    let mut cfg = config(&t.root, &t.data);
    cfg.max_hash_bytes = 8;
    let agent = Agent::open(cfg).unwrap();
    agent.full_scan(true, &mut |_| {}).unwrap();
    // Above the hashing cap: its other attributes are still tracked, and the gap is reported.
    let big = t.root.join("sub/big.conf");
    std::fs::write(&big, "more than eight bytes").unwrap();
    let c = scan(&agent);
    let added = one(&c, &big);
    assert!(added["ChecksumError"].as_str().unwrap().contains("larger than max_hash_bytes"), "{added}");
    let lost: Vec<&Value> = c.iter().filter(|r| r["ChangeCategory"] == "CoverageLost").collect();
    assert_eq!(lost.len(), 1, "{c:#?}");
    assert_eq!(lost[0]["ConfigChangeType"], "AgentCoverage");
    assert!(scan(&agent).is_empty(), "reported once, not at every scan");
    if unsafe_is_root() {
        eprintln!("skipping the permission case: root reads everything");
        return;
    }
    let secret = t.root.join("sub/secret.conf");
    std::fs::write(&secret, "s").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let c = scan(&agent);
    assert!(one(&c, &secret)["ChecksumError"].as_str().unwrap().contains("cannot read"));
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The ConfigurationChange records spooled so far.
fn spooled(data: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("spool"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-ConfigurationChange.json"))
        .collect();
    files.sort();
    for f in files {
        let v: Vec<Value> = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        out.extend(v);
    }
    out
}

/// `fimlake-agent run` in the test, started and past its first scan (the baseline is built).
struct Running {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn run_agent(t: &Tree) -> Running {
    run_agent_with(t, config(&t.root, &t.data))
}

fn run_agent_with(t: &Tree, cfg: AgentConfig) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let agent = Arc::new(Agent::open(cfg).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = rt.spawn(agent::run(agent, stopped));
    let start = Instant::now();
    while !t.data.join("baseline/baseline.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no baseline");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running { rt, stop, handle }
}

impl Running {
    /// Stops the agent; it must end without an error.
    fn stop(self) {
        let _ = self.stop.send(true);
        self.rt.block_on(self.handle).unwrap().unwrap();
    }
}

#[test]
fn real_time_mode_reports_changes_within_moments() {
    let t = tree();
    let running = run_agent(&t);
    let wait_for = |what: &str, f: &dyn Fn(&[Value]) -> bool| {
        let start = Instant::now();
        loop {
            let recs = spooled(&t.data);
            if f(&recs) {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{what} not reported: {recs:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let passwd = t.root.join("passwd");
    std::fs::write(&passwd, "edited live\n").unwrap();
    let latency = wait_for("the edit", &|r| r.iter().any(|c| c["FileSystemPath"] == *passwd.to_string_lossy()));
    eprintln!("real-time detection latency: {latency:?} (debounce 50 ms)");
    // A new directory with a file, then its removal.
    let dir = t.root.join("cron.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("job"), "* * * * * root true\n").unwrap();
    let job = dir.join("job").to_string_lossy().into_owned();
    wait_for("the new file in a new directory", &|r| {
        r.iter().any(|c| c["FileSystemPath"] == *job && c["ChangeCategory"] == "Added")
    });
    std::fs::remove_dir_all(&dir).unwrap();
    wait_for("the removal", &|r| r.iter().any(|c| c["FileSystemPath"] == *job && c["ChangeCategory"] == "Removed"));
    running.stop();
    let all = spooled(&t.data);
    let edits = all.iter().filter(|c| c["FileSystemPath"] == *passwd.to_string_lossy()).count();
    assert_eq!(edits, 1, "one record per change: {all:#?}");
}

#[test]
fn content_is_uploaded_for_items_that_ask_but_never_for_secrets() {
    let t = tree();
    let mut cfg = config(&t.root, &t.data);
    cfg.items[0].upload_content = true;
    let agent = Agent::open(cfg).unwrap();
    agent.full_scan(true, &mut |_| {}).unwrap();
    let conf = t.root.join("sub/app.conf");
    std::fs::write(&conf, "a=2\n").unwrap();
    let key = t.root.join("sub/server.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let c = scan(&agent);
    let m = one(&c, &conf);
    assert_eq!((m["Previous"].as_str(), m["Current"].as_str()), (Some("a=1\n"), Some("a=2\n")));
    let k = one(&c, &key);
    assert!(k.get("Current").is_none(), "a *.key file's content is never sent: {k}");
}

#[test]
fn daemons_and_software_changes_are_reported() {
    let t = tree();
    let dir = t.data.parent().unwrap().to_path_buf();
    let units = dir.join("units.txt");
    let systemctl = dir.join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n list-units) cat {} ;;\n list-unit-files) printf 'ssh.service enabled enabled\\ncron.service enabled enabled\\n' ;;\nesac\n",
            units.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&units, "ssh.service loaded active running OpenBSD Secure Shell server\ncron.service loaded active running Regular background program processing daemon\n").unwrap();
    let status = dir.join("status");
    let pkg = |name: &str, v: &str| {
        format!(
            "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\nMaintainer: Debian\nDescription: {name}\n\n"
        )
    };
    std::fs::write(&status, pkg("openssl", "3.0.11-1") + &pkg("curl", "7.88")).unwrap();
    let mut cfg = config(&t.root, &t.data);
    cfg.systemctl = systemctl.to_string_lossy().into_owned();
    cfg.dpkg_status = status.clone();
    let agent = Agent::open(cfg).unwrap();
    assert_eq!(agent.inventory().unwrap(), 0, "the first inventory only records");

    std::fs::write(&units, "ssh.service loaded inactive dead OpenBSD Secure Shell server\ncron.service loaded active running Regular background program processing daemon\n").unwrap();
    std::fs::write(&status, pkg("openssl", "3.0.13-1") + &pkg("netcat", "1.10")).unwrap();
    assert_eq!(agent.inventory().unwrap(), 4);
    let rows = spooled(&t.data);
    let ssh = rows.iter().find(|r| r["SvcName"] == "ssh.service").unwrap();
    assert_eq!(ssh["ConfigChangeType"], "Daemons");
    assert_eq!(
        (ssh["SvcPreviousState"].as_str(), ssh["SvcState"].as_str()),
        (Some("active/running"), Some("inactive/dead"))
    );
    assert_eq!(ssh["SvcChangeType"], "State");
    let sw = |name: &str| rows.iter().find(|r| r["SoftwareName"] == name).unwrap().clone();
    assert_eq!(sw("openssl")["ChangeCategory"], "Modified");
    assert_eq!(
        (sw("openssl")["Previous"].as_str(), sw("openssl")["Current"].as_str()),
        (Some("3.0.11-1"), Some("3.0.13-1"))
    );
    assert_eq!(sw("netcat")["ChangeCategory"], "Added");
    assert_eq!(sw("curl")["ChangeCategory"], "Removed");
    assert_eq!(agent.inventory().unwrap(), 0, "reported once");
}

#[test]
fn file_changes_during_package_manager_activity_say_so() {
    let t = tree();
    let log = t.data.parent().unwrap().join("dpkg.log");
    std::fs::write(&log, "2026-11-23 10:00:00 upgrade openssl:amd64 3.0.11-1 3.0.13-1\n").unwrap();
    let mut cfg = config(&t.root, &t.data);
    cfg.package_logs = vec![log];
    let agent = Agent::open(cfg).unwrap();
    agent.full_scan(true, &mut |_| {}).unwrap();
    std::fs::write(t.root.join("passwd"), "changed by a package\n").unwrap();
    let c = scan(&agent);
    let m = one(&c, &t.root.join("passwd"));
    assert!(m["PackageManagerActivity"].as_str().unwrap().ends_with("upgrade openssl:amd64 3.0.11-1 3.0.13-1"), "{m}");
}

#[test]
fn every_kind_of_change_in_real_time() {
    let t = tree();
    let running = run_agent(&t);
    // Waits for the next record of `path` with `category`, and returns it.
    let mut seen = 0;
    let mut expect = |path: &Path, category: &str| -> Value {
        let p = path.to_string_lossy().into_owned();
        let start = Instant::now();
        loop {
            let recs: Vec<Value> = spooled(&t.data).into_iter().filter(|r| r["ConfigChangeType"] == "Files").collect();
            let from = seen.min(recs.len());
            if let Some(i) =
                recs[from..].iter().position(|r| r["FileSystemPath"] == *p && r["ChangeCategory"] == category)
            {
                seen = from + i + 1;
                return recs[from + i].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no {category} record of {p}: {recs:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let new = t.root.join("sub/new.conf");
    std::fs::write(&new, "x").unwrap();
    assert_eq!(expect(&new, "Added")["Size"], 1);
    std::fs::write(&new, "xy").unwrap();
    assert_eq!(expect(&new, "Modified")["FieldsChanged"], "Size, FileContentChecksum, DateModified");
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(expect(&new, "Modified")["FieldsChanged"], "Mode");
    if std::os::unix::fs::chown(&new, Some(1), Some(1)).is_ok() {
        assert_eq!(expect(&new, "Modified")["FieldsChanged"], "Owner, Group");
    }
    let acl = fimlake_agent::state::acl_xattr(&[
        (1, 6, u32::MAX),
        (2, 4, 0),
        (4, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    if xattr_set(&new, &acl).is_ok() {
        assert!(expect(&new, "Modified")["FieldsChanged"].as_str().unwrap().contains("Acls"));
    }
    let moved = t.root.join("sub/moved.conf");
    std::fs::rename(&new, &moved).unwrap();
    // One check sees both ends of the rename; its records come in path order.
    expect(&moved, "Added");
    expect(&new, "Removed");
    std::fs::remove_file(&moved).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &moved).unwrap();
    // The removal and the new link may fall in one debounce window (Modified) or two.
    let start = Instant::now();
    loop {
        let recs = spooled(&t.data);
        let link = recs.iter().rev().find(|r| r["FileSystemPath"] == *moved.to_string_lossy());
        if let Some(r) = link.filter(|r| r["FileType"] == "symlink") {
            assert_eq!(r["LinkTarget"], "/etc/shadow");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the symlink was not reported: {recs:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(t.root.join("passwd")).unwrap();
    expect(&t.root.join("passwd"), "Removed");
    running.stop();
}

/// Without its server, an agent runs on the group configuration it fetched last (kept on disk);
/// a configuration it cannot validate is never put in effect.
#[test]
fn an_agent_without_its_server_runs_on_its_last_fetched_configuration() {
    let t = tree();
    let other = t.root.join("sub");
    let fetched = fimlake_agent::central::Central {
        group: "web".into(),
        version: 4,
        settings: format!("scan_interval = \"2m\"\n[[items]]\nname = \"sub\"\npath = \"{}\"\n", other.display()),
        etag: "\"web.4\"".into(),
    };
    fimlake_agent::central::save(&t.data, &fetched).unwrap();
    let agent = Agent::open(config(&t.root, &t.data)).unwrap();
    assert_eq!(agent.cfg().items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["sub"]);
    assert_eq!(agent.cfg().scan_interval, Duration::from_secs(120));
    assert_eq!(agent.applied().map(|a| (a.group, a.version)), Some(("web".to_string(), 4)));
    drop(agent);

    let broken = fimlake_agent::central::Central { settings: "scan_interval = \"0s\"\n".into(), ..fetched };
    fimlake_agent::central::save(&t.data, &broken).unwrap();
    let agent = Agent::open(config(&t.root, &t.data)).unwrap();
    assert_eq!(agent.cfg().items[0].name, "tree", "the configuration file's, not one that fails the rules");
    assert_eq!(agent.applied(), None);
}

#[test]
fn a_scan_of_more_paths_than_one_step_reports_each_change_once_in_bounded_batches() {
    let t = tree();
    let agent = Agent::open(config(&t.root, &t.data)).unwrap();
    agent.full_scan(true, &mut |_| {}).unwrap();
    let many = t.root.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..5000 {
        std::fs::write(many.join(format!("f{i:04}.conf")), "x").unwrap();
    }
    let mut batches: Vec<Vec<Value>> = Vec::new();
    let out = agent.full_scan(true, &mut |batch| batches.push(batch.to_vec())).unwrap();
    assert_eq!(out.changes, 5001, "the folder and its 5,000 files");
    let paths: std::collections::BTreeSet<&str> =
        batches.iter().flatten().filter_map(|r| r["FileSystemPath"].as_str()).collect();
    assert_eq!(paths.len(), 5001, "each path once");
    assert!(batches.iter().all(|b| b.len() <= 1000), "records go out a batch (batch_records) at a time");
    assert_eq!(agent.full_scan(true, &mut |_| {}).unwrap().changes, 0, "every one of them is in the baseline");
}

#[test]
fn a_file_written_continuously_does_not_hold_back_the_changes_of_others() {
    let t = tree();
    let running = run_agent(&t);
    // A log written every 10 ms (well within the 50 ms debounce) for as long as the test runs.
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let busy = t.root.join("busy.log");
    let writer = {
        let (writing, busy) = (writing.clone(), busy.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                std::fs::write(&busy, n.to_string()).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let passwd = t.root.join("passwd");
    std::fs::write(&passwd, "edited while another file is busy\n").unwrap();
    let start = Instant::now();
    let reported = |path: &Path| spooled(&t.data).iter().any(|c| c["FileSystemPath"] == *path.to_string_lossy());
    while !reported(&passwd) {
        // Before, each event restarted the debounce: nothing was checked while the log was written.
        assert!(start.elapsed() < Duration::from_secs(20), "the edit is not reported while another file is written");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(reported(&busy), "the busy file is reported too, at most a debounce after its first write");
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    running.stop();
}

#[test]
fn a_burst_larger_than_the_event_queue_is_found_by_a_full_scan_each_file_once() {
    let t = tree();
    let mut cfg = config(&t.root, &t.data);
    cfg.realtime_queue_events = 8;
    let running = run_agent_with(&t, cfg);
    // Files written outside the tree and moved in: each arrives whole, so one Added record each.
    let staging = t.data.parent().unwrap().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let burst = t.root.join("burst");
    std::fs::create_dir(&burst).unwrap();
    let names: Vec<String> = (0..2000).map(|i| format!("f{i:04}.conf")).collect();
    for name in &names {
        std::fs::write(staging.join(name), name).unwrap();
    }
    for name in &names {
        std::fs::rename(staging.join(name), burst.join(name)).unwrap();
    }
    let added = |records: &[Value]| -> Vec<String> {
        let mut paths: Vec<String> = records
            .iter()
            .filter(|r| r["ChangeCategory"] == "Added" && r["ConfigChangeType"] == "Files")
            .filter_map(|r| {
                r["FileSystemPath"].as_str()?.strip_prefix(&format!("{}/", burst.display())).map(String::from)
            })
            .collect();
        paths.sort();
        paths
    };
    let start = Instant::now();
    while added(&spooled(&t.data)).len() < names.len() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of 2,000 files reported",
            added(&spooled(&t.data)).len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running.stop();
    let records = spooled(&t.data);
    assert_eq!(added(&records), names, "each file reported once");
    let lost: Vec<&str> = records
        .iter()
        .filter(|r| r["ChangeCategory"] == "CoverageLost")
        .filter_map(|r| r["Current"].as_str())
        .collect();
    assert!(lost.iter().any(|m| m.contains("event queue full")), "the dropped events are said: {lost:?}");
}
