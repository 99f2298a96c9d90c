//! Fleet onboarding end to end, with the real server and real `fimlake-agent` processes: keys
//! made, rotated and revoked at runtime; hosts enrolled with one token; expired, used-up and
//! stolen-token enrollments refused; a revoked agent keeps its records until it is enrolled
//! again, then delivers them once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, agent_binary, create_key, fimlake, http};
use serde_json::{Value, json};

/// One host: its configuration (its own data directory and a watched folder, until its group's
/// configuration replaces the items), its agent process.
struct Host {
    name: String,
    config: PathBuf,
    data_dir: PathBuf,
    agent: Option<Child>,
}

impl Host {
    fn new(root: &Path, name: &str, server: &Server) -> Host {
        let dir = root.join(name);
        let watched = dir.join("etc");
        std::fs::create_dir_all(&watched).unwrap();
        std::fs::write(watched.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let data_dir = dir.join("state");
        let config = dir.join("fimlake-agent.toml");
        let text = format!(
            "server = \"{}\"\ndata_dir = \"{}\"\nscan_interval = \"1h\"\ndebounce = \"50ms\"\nheartbeat_interval = \"1s\"\n\
             config_poll = \"1s\"\ntrack_daemons = false\ntrack_software = false\n\n[[items]]\nname = \"etc\"\npath = \"{}\"\n",
            server.url,
            data_dir.display(),
            watched.display()
        );
        std::fs::write(&config, text).unwrap();
        Host { name: name.to_string(), config, data_dir, agent: None }
    }

    /// `fimlake-agent enroll`: its output, and whether it succeeded.
    fn enroll(&self, server: &Server, token: &str) -> (bool, String) {
        let out = Command::new(agent_binary())
            .args(["--config", self.config.to_str().unwrap(), "enroll", "--server", &server.url, "--token", token])
            .args(["--computer", &self.name])
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn start(&mut self) {
        let child = Command::new(agent_binary())
            .args(["--config", self.config.to_str().unwrap(), "run"])
            .env("FIMLAKE_AGENT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn rows(server: &Server, admin: &str, ws: &str, kql: &str) -> Vec<Value> {
    let (status, v) =
        server.call("POST", &format!("/v1/workspaces/{ws}/query"), Some(admin), &json!({"query": kql}).to_string());
    assert_eq!(status, 200, "{v}");
    v["tables"][0]["rows"].as_array().cloned().unwrap_or_default()
}

/// Waits (60 s at most) until `kql` answers `expected`.
fn wait_for(server: &Server, admin: &str, ws: &str, kql: &str, expected: Value) {
    let start = Instant::now();
    loop {
        let got = Value::Array(rows(server, admin, ws, kql));
        if got == expected {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{kql}: {got} after 60 s, expected {expected}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn keys_change_at_runtime_without_a_restart() {
    let mut ops = Ops::start();
    let (server, admin, ws) = (&ops.server, ops.admin.as_str(), ops.ws.as_str());
    let query =
        |key: &str| server.call("POST", &format!("/v1/workspaces/{ws}/query"), Some(key), r#"{"query": "print 1"}"#).0;
    let remote = ["--server", server.url.as_str(), "--api-key", admin];

    let out = fimlake(&[&["keys", "create", "--role", "query", "--name", "analyst"], &remote[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let analyst =
        String::from_utf8(out.stdout).unwrap().lines().next().unwrap().strip_prefix("key: ").unwrap().to_string();
    assert_eq!(query(&analyst), 200, "a key made through the API works at once");
    assert_eq!(server.call("GET", "/v1/keys", Some(&analyst), "").0, 403, "only admins manage keys");

    let listed = fimlake(&[&["keys", "list", "--json"], &remote[..]].concat());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<(&str, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["source"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("ops", "configuration", "active"), ("analyst", "api", "active")]);
    assert!(
        !listed.to_string().contains(&analyst[4..]) && !listed.to_string().contains("sha256"),
        "no secret, no hash"
    );
    assert!(listed[1]["last_used"].is_string(), "the analyst's query counts as a use: {listed}");

    let rotated = fimlake(&[&["keys", "rotate", "analyst"], &remote[..]].concat());
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let new_key =
        String::from_utf8(rotated.stdout).unwrap().lines().next().unwrap().strip_prefix("key: ").unwrap().to_string();
    assert_eq!((query(&analyst), query(&new_key)), (401, 200), "rotation retires the old secret at once");

    assert!(fimlake(&[&["keys", "revoke", "analyst"], &remote[..]].concat()).status.success());
    assert_eq!(query(&new_key), 401, "a revoked key is refused on its next request");
    let refused = fimlake(&[&["keys", "revoke", "ops"], &remote[..]].concat());
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("configuration file"));

    // What the API made survives a restart; the audit log has each change.
    ops.server.stop();
    ops.server.restart();
    let (_, keys) = ops.server.call("GET", "/v1/keys", Some(&ops.admin), "");
    assert_eq!(keys["keys"][1]["state"], "revoked", "{keys}");
    ops.wait_for(
        "AuditLog | where Route startswith '/v1/keys' and Method != 'GET' and Status < 300 | order by TimeGenerated asc | project Detail",
        json!([["created key 'analyst' (Query)"], ["rotated key 'analyst'"], ["revoked key 'analyst'"]]),
    );
}

/// A server with an admin key in its configuration file, driven as an admin would.
struct Ops {
    dir: tempfile::TempDir,
    server: Server,
    admin: String,
    ws: String,
}

impl Ops {
    fn start() -> Ops {
        let (admin, admin_cfg) = create_key(&["--role", "admin", "--name", "ops"]);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("fimlake.toml");
        std::fs::write(&config, admin_cfg).unwrap();
        let server = Server::start(&dir.path().join("data"), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);
        let ws = std::fs::read_to_string(dir.path().join("data/workspace-id")).unwrap().trim().to_string();
        Ops { dir, server, admin, ws }
    }

    /// `fimlake <args> --server <url> --api-key <admin>`.
    fn fimlake(&self, args: &[&str]) -> Output {
        fimlake(&[args, &["--server", self.server.url.as_str(), "--api-key", self.admin.as_str()][..]].concat())
    }

    fn token(&self, group: &str, extra: &[&str]) -> String {
        let out = self.fimlake(&[&["enroll-tokens", "create", "--group", group], extra].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().next().unwrap().strip_prefix("token: ").unwrap().to_string()
    }

    /// `fimlake agent-config set <group>` with `settings` as the file.
    fn set_group(&self, group: &str, settings: &str) -> Output {
        let file = self.dir.path().join(format!("{group}.toml"));
        std::fs::write(&file, settings).unwrap();
        self.fimlake(&["agent-config", "set", group, file.to_str().unwrap()])
    }

    /// A folder under the test's directory, made now.
    fn folder(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path.display().to_string()
    }

    fn rows(&self, kql: &str) -> Vec<Value> {
        rows(&self.server, &self.admin, &self.ws, kql)
    }

    fn wait_for(&self, kql: &str, expected: Value) {
        wait_for(&self.server, &self.admin, &self.ws, kql, expected)
    }
}

/// Group settings that watch `folders`, nothing else.
fn watching(folders: &[&str]) -> String {
    let items: String = folders
        .iter()
        .enumerate()
        .map(|(i, path)| format!("[[items]]\nname = \"shared-{i}\"\npath = \"{path}\"\n"))
        .collect();
    format!("scan_interval = \"1h\"\ntrack_daemons = false\ntrack_software = false\n{items}")
}

const APPLIED: &str = "Heartbeat | summarize arg_max(TimeGenerated, ConfigurationGroup, ConfigurationVersion) by Computer \
                       | project Computer, ConfigurationGroup, ConfigurationVersion | order by Computer asc";

fn running(version: i64) -> Value {
    json!(["web-1", "web-2", "web-3"].map(|c| json!([c, "linux-web", version])))
}

#[test]
fn a_fleet_enrolls_with_one_token_runs_its_group_configuration_and_a_revoked_host_loses_nothing() {
    let ops = Ops::start();
    // The group's configuration, set before the hosts start: a folder every host watches.
    let (shared_a, shared_b) = (ops.folder("shared-a"), ops.folder("shared-b"));
    let set = ops.set_group("linux-web", &watching(&[&shared_a]));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let invalid = ops.set_group("linux-web", "scan_interval = \"0s\"\n[[items]]\nname = \"x\"\npath = \"relative\"\n");
    let text = String::from_utf8_lossy(&invalid.stderr);
    assert!(!invalid.status.success() && text.contains("scan_interval") && text.contains("not absolute"), "{text}");

    // Three hosts, one token; each runs the group's configuration from its start.
    let fleet_token = ops.token("linux-web", &["--expires", "1h", "--max-uses", "4"]);
    let mut hosts: Vec<Host> =
        ["web-1", "web-2", "web-3"].iter().map(|n| Host::new(ops.dir.path(), n, &ops.server)).collect();
    for host in &mut hosts {
        let (ok, text) = host.enroll(&ops.server, &fleet_token);
        assert!(ok && text.contains("group 'linux-web'"), "{text}");
        let file = host.data_dir.join("enrollment.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        host.start();
    }
    ops.wait_for(APPLIED, running(1));

    a_new_path_reaches_every_host(&ops, &hosts, &shared_a, &shared_b);
    tokens_past_their_limits_and_stolen_tokens_are_refused(&ops, &hosts, &fleet_token);
    a_revoked_host_keeps_its_changes_until_it_enrolls_again(&ops, &hosts, &fleet_token, &shared_a);

    // Every enrollment and refusal is in the audit log.
    ops.wait_for(
        "AuditLog | where Route == '/v1/enroll' | summarize n = count() by Status | order by Status asc",
        json!([[201, 5], [403, 2], [409, 1]]),
    );
    // The agents' polls (one a second each here) are not: only refusals would be.
    assert_eq!(ops.rows("AuditLog | where Route == '/v1/agent-config' and Status < 400 | count"), [json!([0])]);
}

/// The admin adds a folder that already holds a file: each agent applies the new version
/// within a poll, without a restart; the existing file is baselined, not "Added"; a new one
/// arrives from every host.
fn a_new_path_reaches_every_host(ops: &Ops, hosts: &[Host], shared_a: &str, shared_b: &str) {
    std::fs::write(Path::new(shared_b).join("existing.conf"), "before\n").unwrap();
    let set = ops.set_group("linux-web", &watching(&[shared_a, shared_b]));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    ops.wait_for(APPLIED, running(2));
    let machines = ops.fimlake(&["machines", "--json"]);
    assert!(machines.status.success(), "{}", String::from_utf8_lossy(&machines.stderr));
    let machines: Value = serde_json::from_slice(&machines.stdout).unwrap();
    let health: Vec<Value> = machines
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!([
                m["computer"],
                m["group"],
                m["configuration_version"],
                m["group_version"],
                m["key_state"],
                m["flags"]
            ])
        })
        .collect();
    let healthy = |c: &str| json!([c, "linux-web", 2, 2, "active", []]);
    assert_eq!(health, [healthy("web-1"), healthy("web-2"), healthy("web-3")], "the fleet is on version 2");

    // What an agent's poll costs when nothing changed: a 304 without a body.
    let enrollment: Value =
        serde_json::from_slice(&std::fs::read(hosts[1].data_dir.join("enrollment.json")).unwrap()).unwrap();
    let bearer = format!("Bearer {}", enrollment["key"].as_str().unwrap());
    let url = format!("{}/v1/agent-config", ops.server.url);
    let (status, headers, body) = http("GET", &url, &[("Authorization", &bearer)], b"").unwrap();
    let etag = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("etag")).map(|(_, v)| v.clone()).unwrap();
    let config: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, etag.as_str(), &config["version"]), (200, "\"linux-web.2\"", &json!(2)));
    let (status, _, body) = http("GET", &url, &[("Authorization", &bearer), ("If-None-Match", &etag)], b"").unwrap();
    assert_eq!((status, body.len()), (304, 0));

    std::fs::write(Path::new(shared_b).join("new.conf"), "after\n").unwrap();
    let added = format!(
        "ConfigurationChange | where FileSystemPath startswith '{shared_b}' | summarize count() by Computer, \
         FileSystemPath, ChangeCategory | order by Computer asc"
    );
    let new_conf = format!("{shared_b}/new.conf");
    ops.wait_for(&added, json!(["web-1", "web-2", "web-3"].map(|c| json!([c, new_conf, "Added", 1]))));
}

/// An expired token, a used-up token, a stolen token for an enrolled host.
fn tokens_past_their_limits_and_stolen_tokens_are_refused(ops: &Ops, hosts: &[Host], fleet_token: &str) {
    let spare = Host::new(ops.dir.path(), "db-1", &ops.server);
    let short = ops.token("linux-web", &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, text) = spare.enroll(&ops.server, &short);
    assert!(!ok && text.contains("expired"), "{text}");
    let once = ops.token("linux-web", &["--max-uses", "1"]);
    assert!(spare.enroll(&ops.server, &once).0);
    let other = Host::new(ops.dir.path(), "db-2", &ops.server);
    let (ok, text) = other.enroll(&ops.server, &once);
    assert!(!ok && text.contains("used 1 times"), "{text}");
    let (ok, text) = hosts[0].enroll(&ops.server, fleet_token);
    assert!(!ok && text.contains("already enrolled") && text.contains("allow-reenrollment"), "{text}");
}

/// web-1's key is revoked: its posts get 401, its changes wait in its spool; enrolled again
/// (the admin allows it first), the agent picks up its new key and delivers what waited, once.
fn a_revoked_host_keeps_its_changes_until_it_enrolls_again(ops: &Ops, hosts: &[Host], token: &str, watched: &str) {
    assert!(ops.fimlake(&["keys", "revoke", "agent-web-1"]).status.success());
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        std::fs::write(Path::new(watched).join(format!("while-revoked-{i}")), "x\n").unwrap();
    }
    let spool = hosts[0].data_dir.join("spool");
    let start = Instant::now();
    while std::fs::read_dir(&spool).unwrap().filter(|e| e.as_ref().unwrap().path().is_file()).count() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "the changes were not spooled");
        std::thread::sleep(Duration::from_millis(100));
    }
    let revoked_paths = "ConfigurationChange | where Computer == 'web-1' and FileSystemPath contains 'while-revoked' | summarize count()";
    assert_eq!(ops.rows(revoked_paths), [json!([0])]);

    let allowed = ops.fimlake(&["keys", "allow-reenrollment", "web-1"]);
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    let (ok, text) = hosts[0].enroll(&ops.server, token);
    assert!(ok, "{text}");
    let delivered = "ConfigurationChange | where Computer == 'web-1' and FileSystemPath contains 'while-revoked' \
                     | summarize n = count() by FileSystemPath | summarize paths = count(), rows = sum(n)";
    ops.wait_for(delivered, json!([[3, 3]]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ops.rows(delivered), [json!([3, 3])], "each change arrives exactly once");
}

/// An analyst configures the server and key once, in the client profile; the CLI asks the
/// server for its workspace id.
#[test]
fn a_client_profile_and_workspace_discovery_spare_the_flags() {
    let ops = Ops::start();
    let elsewhere = tempfile::tempdir().unwrap();
    let profile = elsewhere.path().join("client.toml");
    std::fs::write(&profile, format!("server = \"{}\"\napi_key = \"{}\"\n", ops.server.url, ops.admin)).unwrap();
    std::fs::set_permissions(&profile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fimlake"))
            .args(args)
            .current_dir(elsewhere.path())
            .env("FIMLAKE_CLIENT_CONFIG", &profile)
            .env_remove("FIMLAKE_SERVER")
            .env_remove("FIMLAKE_API_KEY")
            .output()
            .unwrap()
    };
    let (status, v) = ops.server.call("GET", "/v1/workspace", Some(&ops.admin), "");
    assert_eq!((status, v["workspaceId"].as_str()), (200, Some(ops.ws.as_str())));
    assert_eq!(ops.server.call("GET", "/v1/workspace", None, "").0, 401, "any valid key, not none");

    let out = run(&["query", "--format", "csv", "print answer = 42"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "answer\n42");
    let out = run(&["keys", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ops\""));

    // A flag wins over the profile.
    let out = run(&["query", "--api-key", "flk_wrong", "print 1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"));
    // A misspelt key in the profile is named.
    std::fs::write(&profile, "sever = \"http://x\"\n").unwrap();
    let out = run(&["machines"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("sever"));
}

/// The console's machine list shows each machine's configuration and flags the ones behind
/// their group's (a server without keys: no sign-in).
#[test]
fn the_console_flags_machines_behind_their_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Without keys an agent belongs to the group `default`, which has no configuration yet.
    assert_eq!(server.call("GET", "/v1/agent-config", None, "").0, 204);
    assert_eq!(server.call("PUT", "/v1/agent-config/web", None, "realtime = true\n").0, 200);
    assert_eq!(server.call("PUT", "/v1/agent-config/web", None, "realtime = false\n").0, 200);
    let heartbeats = r#"[
        {"Computer": "web-1", "Version": "0.2.0", "ConfigurationGroup": "web", "ConfigurationVersion": 1},
        {"Computer": "web-2", "Version": "0.3.0", "ConfigurationGroup": "web", "ConfigurationVersion": 2}
    ]"#;
    assert_eq!(server.call("POST", "/v1/tables/Heartbeat/records", None, heartbeats).0, 200);
    let start = Instant::now();
    let row = |page: &str, computer: &str| {
        let at = page.find(&format!(">{computer}</a>"))?;
        Some(page[at..at + page[at..].find("</tr>")?].to_string())
    };
    loop {
        let (_, _, body) = http("GET", &format!("{}/machines", server.url), &[], b"").unwrap();
        let page = String::from_utf8(body).unwrap();
        if let (Some(web1), Some(web2)) = (row(&page, "web-1"), row(&page, "web-2")) {
            assert!(web1.contains("web v1") && web1.contains(">behind<") && web1.contains(">outdated<"), "{web1}");
            assert!(web2.contains("web v2") && !web2.contains(">behind<") && !web2.contains(">outdated<"), "{web2}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the machines never showed: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Action groups are managed at runtime like keys: no restart, secrets never listed.
#[test]
fn action_groups_change_at_runtime() {
    let ops = Ops::start();
    let admin = Some(ops.admin.as_str());
    let group = r#"{"webhooks": [{"url": "https://hooks.example.com/fim", "secret": "s3cret"}]}"#;
    let (status, created) = ops.server.call("PUT", "/v1/action-groups/soc", admin, group);
    assert_eq!((status, created["webhooks"][0]["secret"].as_str()), (201, Some("(set)")), "{created}");
    let (_, listed) = ops.server.call("GET", "/v1/action-groups", admin, "");
    assert_eq!(listed["value"]["soc"]["webhooks"][0]["url"], "https://hooks.example.com/fim");
    assert!(!listed.to_string().contains("s3cret"));

    let rule = r#"{"severity": 1, "query": "ConfigurationChange", "frequency": "1m", "condition": {"kind": "per_row"}, "actions": ["soc"]}"#;
    assert_eq!(ops.server.call("PUT", "/v1/alert-rules/changes", admin, rule).0, 201, "a rule may name it at once");
    let (status, e) = ops.server.call("DELETE", "/v1/action-groups/soc", admin, "");
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("Conflict")), "{e}");
    let (status, e) = ops.server.call("PUT", "/v1/action-groups/bad", admin, r#"{"webhooks": [{"url": "ftp://x"}]}"#);
    assert!(status == 400 && e["error"]["message"].as_str().unwrap().contains("ftp://x"), "{e}");
    assert_eq!(ops.server.call("DELETE", "/v1/alert-rules/changes", admin, "").0, 204);
    assert_eq!(ops.server.call("DELETE", "/v1/action-groups/soc", admin, "").0, 204);
    assert_eq!(ops.server.call("GET", "/v1/action-groups/soc", admin, "").0, 404);
}
