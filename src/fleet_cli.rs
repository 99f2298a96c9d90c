//! `fimlake keys`, `fimlake enroll-tokens` and `fimlake agent-config`: keys, enrollment tokens
//! and group configurations of a running server, through its admin API (`/v1/keys`,
//! `/v1/enroll-tokens`, `/v1/agent-config`); `keys create` without `--server` prints a
//! configuration entry instead (the offline mode).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::auth;
use crate::client_profile::ProfileFile;

/// Which server, as whom; what no flag or variable gives comes from the client profile
/// (`~/.config/fimlake/client.toml`).
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// The server's base URL [default: the client profile's, else http://127.0.0.1:8080].
    #[arg(long, env = "FIMLAKE_SERVER")]
    pub server: Option<String>,
    /// An admin API key, sent as `Authorization: Bearer`.
    #[arg(long, env = "FIMLAKE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// PEM CA certificates to trust for an https server (besides the system's).
    #[arg(long, env = "FIMLAKE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key. With a server (--server or the client profile's): on that server,
    /// effective at once. Without: prints the
    /// key (shown once, stored nowhere) and the [[auth.keys]] entry, with the key's SHA-256, to
    /// add to the server's configuration.
    Create {
        /// ingest (post records), query (read), admin (read, manage rules, keys and enrollment).
        #[arg(long, value_enum)]
        role: auth::Role,
        /// Who holds the key [default: the computer, or the role].
        #[arg(long)]
        name: Option<String>,
        /// Ingest keys: records must have this Computer.
        #[arg(long)]
        computer: Option<String>,
        /// Ingest keys: the tables it may post to, comma-separated [default: all].
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Requests per second the key may make [default: no limit]; past it, 429 (offline
        /// mode only).
        #[arg(long)]
        requests_per_second: Option<u32>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a server's keys: name, role, bindings, group, created, last used, state; never a
    /// secret.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key: its next request gets 401.
    Revoke {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Give a key a new secret (printed once); the old one stops working at once.
    Rotate {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Let an enrolled computer enroll once more (a reinstalled host); its old key is revoked
    /// when it does.
    AllowReenrollment {
        computer: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make an enrollment token for a group (printed once): `fimlake-agent enroll --token`.
    Create {
        /// The group the enrolled hosts join.
        #[arg(long)]
        group: String,
        /// How long the token is valid (7d, 12h) [default: no expiry].
        #[arg(long)]
        expires: Option<String>,
        /// How many hosts may enroll with it [default: no limit].
        #[arg(long)]
        max_uses: Option<u32>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the enrollment tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke an enrollment token (the keys it gave stay).
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum AgentConfigCommand {
    /// Print a group's central configuration (TOML), with its version as a comment.
    Get {
        group: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set a group's central configuration from a TOML file: the monitoring settings of the
    /// agent's file (items, scan_interval, realtime, max_hash_bytes, max_events_per_second,
    /// track_daemons, track_software, ...). Checked with the agent's rules (every problem is
    /// listed); the group's agents apply it within their config_poll, without a restart.
    Set {
        group: String,
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A server's admin API.
struct Admin {
    client: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Admin {
    fn new(remote: &Remote, profile: &ProfileFile) -> anyhow::Result<Admin> {
        let connection = profile.load()?.connect(remote.server.clone(), remote.api_key.clone(), remote.ca_file.clone());
        let client = fimlake_client::client_builder(connection.ca_file.as_deref())?.build()?;
        let base = connection.server.trim_end_matches('/').to_string();
        Ok(Admin { client, base, api_key: connection.api_key })
    }

    /// One call with a JSON body (or none); a refusal is an error with the server's message.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request, &method, path).await
    }

    /// One call with a text body (a TOML file).
    async fn call_text(&self, method: reqwest::Method, path: &str, text: String) -> anyhow::Result<Value> {
        let request = self.request(method.clone(), path).header("content-type", "application/toml").body(text);
        Self::answer(request, &method, path).await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    async fn answer(request: reqwest::RequestBuilder, method: &reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let url = response.url().to_string();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let message = value["error"]["message"].as_str().unwrap_or(&text);
            let details: Vec<&str> = value["error"]["details"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["message"].as_str())
                .collect();
            if !details.is_empty() {
                bail!("{method} {url}: {status}: the settings are not valid:\n  {}", details.join("\n  "));
            }
            bail!("{method} {url}: {status}: {message}");
        }
        Ok(value)
    }
}

pub async fn keys(command: KeysCommand, profile: &ProfileFile) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, name, computer, tables, requests_per_second, remote } => {
            let name = name.or_else(|| computer.clone()).unwrap_or_else(|| format!("{role:?}").to_lowercase());
            if remote.server.is_none() && profile.load()?.server.is_none() {
                return crate::create_key_offline(role, name, computer, tables, requests_per_second);
            }
            if requests_per_second.is_some() {
                bail!("--requests-per-second is a setting of the configuration file's keys; leave out --server");
            }
            let body = json!({"name": name, "role": role, "computer": computer, "tables": tables});
            let created = Admin::new(&remote, profile)?.call(reqwest::Method::POST, "/v1/keys", Some(body)).await?;
            print_secret("key", &created["key"], "it is shown once; the server keeps only its hash");
            Ok(())
        }
        KeysCommand::List { json, remote } => {
            let listed = Admin::new(&remote, profile)?.call(reqwest::Method::GET, "/v1/keys", None).await?;
            print_list(&listed["keys"], json, &KEY_COLUMNS)
        }
        KeysCommand::Revoke { name, remote } => {
            let path = format!("/v1/keys/{}", encode(&name));
            Admin::new(&remote, profile)?.call(reqwest::Method::DELETE, &path, None).await?;
            println!("revoked key '{name}': its next request gets 401");
            Ok(())
        }
        KeysCommand::Rotate { name, remote } => {
            let path = format!("/v1/keys/{}/rotate", encode(&name));
            let rotated = Admin::new(&remote, profile)?.call(reqwest::Method::POST, &path, None).await?;
            print_secret("key", &rotated["key"], "the old key stopped working; this one is shown once");
            Ok(())
        }
        KeysCommand::AllowReenrollment { computer, remote } => {
            let path = format!("/v1/machines/{}/reenrollment", encode(&computer));
            Admin::new(&remote, profile)?.call(reqwest::Method::POST, &path, None).await?;
            println!("'{computer}' may enroll once more; its old key is revoked when it does");
            Ok(())
        }
    }
}

pub async fn tokens(command: TokensCommand, profile: &ProfileFile) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { group, expires, max_uses, remote } => {
            let body = json!({"group": group, "expires": expires, "max_uses": max_uses});
            let created =
                Admin::new(&remote, profile)?.call(reqwest::Method::POST, "/v1/enroll-tokens", Some(body)).await?;
            print_secret("token", &created["token"], "it is shown once; the server keeps only its hash");
            println!("id: {}", created["id"].as_str().unwrap_or_default());
            if let Some(at) = created["expires"].as_str() {
                println!("expires: {at}");
            }
            println!("on each host: fimlake-agent enroll --server <URL> --token <token>");
            Ok(())
        }
        TokensCommand::List { json, remote } => {
            let listed = Admin::new(&remote, profile)?.call(reqwest::Method::GET, "/v1/enroll-tokens", None).await?;
            print_list(&listed["tokens"], json, &TOKEN_COLUMNS)
        }
        TokensCommand::Revoke { id, remote } => {
            let path = format!("/v1/enroll-tokens/{}", encode(&id));
            Admin::new(&remote, profile)?.call(reqwest::Method::DELETE, &path, None).await?;
            println!("revoked enrollment token {id}");
            Ok(())
        }
    }
}

pub async fn agent_config(command: AgentConfigCommand, profile: &ProfileFile) -> anyhow::Result<()> {
    match command {
        AgentConfigCommand::Get { group, remote } => {
            let path = format!("/v1/agent-config/{}", encode(&group));
            let config = Admin::new(&remote, profile)?.call(reqwest::Method::GET, &path, None).await?;
            println!(
                "# group '{group}', version {}, set {}",
                config["version"],
                config["updated"].as_str().unwrap_or("-")
            );
            print!("{}", config["settings"].as_str().unwrap_or_default());
            Ok(())
        }
        AgentConfigCommand::Set { group, file, remote } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let path = format!("/v1/agent-config/{}", encode(&group));
            let config = Admin::new(&remote, profile)?.call_text(reqwest::Method::PUT, &path, text).await?;
            println!(
                "group '{group}' is at version {}; its agents apply it within their config_poll",
                config["version"]
            );
            Ok(())
        }
    }
}

pub async fn machines(json: bool, remote: Remote, profile: &ProfileFile) -> anyhow::Result<()> {
    let listed = Admin::new(&remote, profile)?.call(reqwest::Method::GET, "/v1/machines", None).await?;
    print_list(&listed["machines"], json, &MACHINE_COLUMNS)
}

fn print_secret(what: &str, secret: &Value, note: &str) {
    println!("{what}: {}", secret.as_str().unwrap_or_default());
    println!("Keep the {what} now: {note}.");
}

const KEY_COLUMNS: [&str; 9] =
    ["name", "role", "source", "state", "computer", "group", "created", "last_used", "tables"];
const MACHINE_COLUMNS: [&str; 9] = [
    "computer",
    "group",
    "configuration_version",
    "group_version",
    "agent_version",
    "last_heartbeat",
    "key",
    "key_state",
    "flags",
];
const TOKEN_COLUMNS: [&str; 7] = ["id", "group", "created", "expires", "max_uses", "uses", "revoked"];

/// The rows as JSON, or as a table of `columns` (an absent value is `-`).
fn print_list(rows: &Value, json: bool, columns: &[&str]) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    let cell = |row: &Value, column: &str| match &row[column] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or_default()).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> =
        rows.as_array().into_iter().flatten().map(|r| columns.iter().map(|c| cell(r, c)).collect()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    println!("{}", line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for row in rows {
        println!("{}", line(row));
    }
    Ok(())
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}
