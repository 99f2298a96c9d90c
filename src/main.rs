//! The `fimlake` command: the server and its tools.

mod auth;
mod bulk;
mod client_profile;
mod cluster;
mod config;
mod fleet_cli;
mod generate;
mod limits;
mod machines;
mod memory;
mod query_cli;
mod roles;
mod server;
mod tls;

/// mimalloc returns freed memory to the system and to other threads' allocations; glibc's
/// per-thread arenas kept the request buffers decoded on the blocking pool (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fimlake_storage::TableRegistry;

use crate::config::Config;

#[derive(Parser)]
#[command(name = "fimlake", version, about = "Self-hosted file integrity monitoring backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Remove a node's registration, for a machine taken out of the cluster for good (refused
    /// while the node is alive).
    Forget {
        /// The node's id.
        node_id: String,
        /// A node's TOML configuration file (or FIMLAKE_* variables).
        #[arg(long, env = "FIMLAKE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The leader, its lease, and every node with its role and when it was last seen, read
    /// from the bucket with a node's configuration (works while no node serves).
    Status {
        /// The node's TOML configuration file (or FIMLAKE_* variables).
        #[arg(long, env = "FIMLAKE_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON (what GET /v1/cluster answers) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: ingestion API, storage, health and metrics.
    Serve {
        /// TOML configuration file (settings can also come from FIMLAKE_* variables).
        #[arg(long, env = "FIMLAKE_CONFIG")]
        config: Option<PathBuf>,
        /// Local data directory [default: ./fimlake-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Listen on a non-loopback address without API keys (anyone who reaches it can post
        /// and read).
        #[arg(long)]
        insecure: bool,
        /// In a cluster: what this node does, `all` (the default) or some of `ingest`, `query`,
        /// `leader` separated by commas (`[cluster] roles`).
        #[arg(long, value_name = "ROLES")]
        role: Option<fimlake_cluster::Roles>,
    },
    /// A cluster's nodes and leader, as the shared bucket shows them.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Generate deterministic test data (ConfigurationChange, ConfigurationData, Heartbeat) as
    /// NDJSON files, or straight into a server.
    Gen {
        /// Monitored computers.
        #[arg(long, default_value_t = 10)]
        computers: usize,
        /// Days of data, ending at --end.
        #[arg(long, default_value_t = 1)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The end of the period (RFC 3339) [default: the current hour]; fix it for identical output.
        #[arg(long)]
        end: Option<chrono::DateTime<chrono::Utc>>,
        /// File changes per computer and day, on average.
        #[arg(long, default_value_t = 100)]
        changes_per_day: u32,
        /// Write NDJSON files here (<out>/<Table>/<day>.ndjson).
        #[arg(long, required_unless_present = "server")]
        out: Option<PathBuf>,
        /// Post the records to this server instead (through a temporary directory).
        #[arg(long, conflicts_with = "out")]
        server: Option<String>,
        /// An ingest API key for --server.
        #[arg(long, env = "FIMLAKE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// PEM CA certificates to trust for an https --server.
        #[arg(long, env = "FIMLAKE_CA_FILE")]
        ca_file: Option<PathBuf>,
    },
    /// TLS certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// API keys: create (offline, or on a running server), list, revoke, rotate.
    Keys {
        #[command(subcommand)]
        command: fleet_cli::KeysCommand,
    },
    /// Enrollment tokens for `fimlake-agent enroll`: create, list, revoke.
    EnrollTokens {
        #[command(subcommand)]
        command: fleet_cli::TokensCommand,
    },
    /// The fleet's machines: last heartbeat, agent version, group, configuration applied, key
    /// state; flags the ones behind their group, outdated, silent or never seen.
    Machines {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: fleet_cli::Remote,
    },
    /// Central agent configuration per group: get, set (effective on the agents without a restart).
    AgentConfig {
        #[command(subcommand)]
        command: fleet_cli::AgentConfigCommand,
    },
    /// Bulk-load JSON or NDJSON files of records into a running server.
    Ingest {
        /// The table the records go to.
        #[arg(long)]
        table: String,
        /// The server's base URL [default: the client profile's, else http://127.0.0.1:8080].
        #[arg(long, env = "FIMLAKE_SERVER")]
        server: Option<String>,
        /// Uncompressed bytes per request at most; requests also stay under the limits the
        /// server names (a chunk over them, or answered 413, is split).
        #[arg(long, default_value_t = 4 << 20)]
        chunk_bytes: usize,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
        /// An ingest API key, sent as `Authorization: Bearer`.
        #[arg(long, env = "FIMLAKE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// PEM CA certificates to trust for an https server (besides the system's).
        #[arg(long, env = "FIMLAKE_CA_FILE")]
        ca_file: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a KQL query, on a running server or straight on a data directory, and print the result.
    Query {
        /// The server's base URL [default: the client profile's, else http://127.0.0.1:8080;
        /// none with --data-dir].
        #[arg(long, env = "FIMLAKE_SERVER", conflicts_with = "data_dir")]
        server: Option<String>,
        /// Read this data directory directly, read-only (committed tables and the WAL), without
        /// a server; safe while a server runs on it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A configuration file (for storage.table_url and object store settings with --data-dir).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The workspace id [default: the server's, asked at GET /v1/workspace].
        #[arg(long)]
        workspace: Option<String>,
        /// A query or admin API key for --server, sent as `Authorization: Bearer`.
        #[arg(long, env = "FIMLAKE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// PEM CA certificates to trust for an https server (besides the system's).
        #[arg(long, env = "FIMLAKE_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// ISO 8601 duration back from now (PT1H, P7D) or start/end interval.
        #[arg(long)]
        timespan: Option<String>,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
        /// Print the physical plan (files read, filters pushed down) instead of running the query.
        #[arg(long)]
        explain: bool,
        /// The query; '@FILE' reads it from a file, '-' or nothing from standard input.
        query: Option<String>,
    },
    /// Alert rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// List the tables and their columns.
    Tables {
        /// Show the columns of this table only.
        table: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA (ca.pem) and a server certificate signed by it (server.pem,
    /// server-key.pem) for testing TLS; give clients ca.pem.
    SelfSigned {
        /// The directory to write to.
        #[arg(long)]
        out: PathBuf,
        /// Names and addresses the certificate is for (repeat).
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check a rules directory (rule files and action-groups.toml) without starting the server:
    /// formats, ranges, action groups, and that every query compiles.
    Validate { dir: PathBuf },
}

fn main() -> anyhow::Result<()> {
    #[allow(clippy::disallowed_methods, reason = "the binary's entry point reads the environment")]
    memory::tune_allocator(|name| std::env::var_os(name).is_some());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIMLAKE_LOG")
                .unwrap_or_else(|_| "info,buoyant_kernel=warn,deltalake_core=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The one place the server's settings are read from the environment (FIMLAKE_*).
    #[allow(clippy::disallowed_methods, reason = "the binary's entry point reads the environment")]
    let environment: Vec<(String, String)> = std::env::vars().collect();
    let profile = client_profile::ProfileFile::from_environment(&environment);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { config, data_dir, listen, insecure, role } => {
            let cfg = serve_config(config.as_deref(), environment, data_dir, listen, role)?;
            match cfg.cluster.enabled() {
                true => rt.block_on(cluster::serve(cfg, insecure)),
                false => rt.block_on(server::serve(cfg, insecure)),
            }
        }
        Command::Cluster { command } => cluster_command(command, environment, &rt),
        Command::Gen { computers, days, seed, end, changes_per_day, out, server, api_key, ca_file } => {
            let end = end.unwrap_or_else(|| {
                let now = chrono::Utc::now().timestamp();
                chrono::DateTime::from_timestamp(now - now % 3600, 0).expect("a valid time")
            });
            let tmp;
            let dir = match &out {
                Some(d) => d.clone(),
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let opts = generate::GenOptions { computers, days, seed, end, changes_per_day, out: dir };
            generate_and_load(&rt, &opts, server, api_key, ca_file)
        }
        Command::Certs { command: CertsCommand::SelfSigned { out, hosts } } => {
            tls::self_signed(&out, &hosts)?;
            println!("wrote {0}/ca.pem, {0}/server.pem, {0}/server-key.pem for {1}", out.display(), hosts.join(", "));
            println!("server: [tls] cert_file = \"{0}/server.pem\", key_file = \"{0}/server-key.pem\"", out.display());
            println!(
                "clients: --ca-file {0}/ca.pem (fimlake query, fimlake ingest), ca_file in fimlake-agent.toml",
                out.display()
            );
            Ok(())
        }
        Command::Keys { command } => rt.block_on(fleet_cli::keys(command, &profile)),
        Command::EnrollTokens { command } => rt.block_on(fleet_cli::tokens(command, &profile)),
        Command::AgentConfig { command } => rt.block_on(fleet_cli::agent_config(command, &profile)),
        Command::Machines { json, remote } => rt.block_on(fleet_cli::machines(json, remote, &profile)),
        Command::Ingest { table, server, chunk_bytes, quiet, files, api_key, ca_file } => {
            let connection = profile.load()?.connect(server, api_key, ca_file);
            let n = rt.block_on(bulk::run(bulk::BulkOptions {
                server: connection.server,
                table: table.clone(),
                files,
                chunk_bytes,
                progress: !quiet,
                api_key: connection.api_key,
                ca_file: connection.ca_file,
            }))?;
            println!("{n} records accepted into {table}");
            Ok(())
        }
        Command::Tables { table, json } => print_tables(table.as_deref(), json),
        Command::Rules { command: RulesCommand::Validate { dir } } => validate_rules(&dir),
        Command::Query { server, data_dir, config, workspace, api_key, ca_file, timespan, format, explain, query } => {
            let target = match (server, data_dir) {
                (_, Some(dir)) => {
                    let mut cfg = Config::load(config.as_deref(), environment.into_iter())?;
                    cfg.data_dir = dir.clone();
                    cfg.storage.data_dir = dir;
                    query_cli::Target::DataDir { storage: cfg.storage, query: cfg.query }
                }
                (server, None) => query_cli::Target::Server {
                    connection: profile.load()?.connect(server, api_key, ca_file),
                    workspace,
                },
            };
            let out =
                rt.block_on(query_cli::run(query_cli::QueryOptions { target, timespan, format, explain, query }))?;
            println!("{out}");
            Ok(())
        }
    }
}

/// `fimlake rules validate DIR`: every rule and action group, or every problem with its file.
fn validate_rules(dir: &std::path::Path) -> anyhow::Result<()> {
    let set = fimlake_alerting::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in &set.rules {
        let every = fimlake_settings::duration::format(r.frequency);
        println!("ok  {} (severity {}, every {every})", r.name, r.severity);
    }
    println!("{} rules and {} action groups are valid", set.rules.len(), set.action_groups.len());
    Ok(())
}

/// `fimlake gen`: writes the data set, then posts it to `server` when one is given.
fn generate_and_load(
    rt: &tokio::runtime::Runtime,
    opts: &generate::GenOptions,
    server: Option<String>,
    api_key: Option<String>,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let counts = generate::generate(opts)?;
    println!(
        "generated {} ConfigurationChange, {} ConfigurationData, {} Heartbeat rows ending {}",
        counts.changes,
        counts.data,
        counts.heartbeats,
        opts.end.to_rfc3339()
    );
    let Some(server) = server else {
        println!("written to {}", opts.out.display());
        return Ok(());
    };
    for table in ["ConfigurationChange", "ConfigurationData", "Heartbeat"] {
        let n = rt.block_on(bulk::run(bulk::BulkOptions {
            server: server.clone(),
            table: table.to_string(),
            files: generate::files(&opts.out, table)?,
            chunk_bytes: 4 << 20,
            progress: false,
            api_key: api_key.clone(),
            ca_file: ca_file.clone(),
        }))?;
        println!("{n} records accepted into {table}");
    }
    Ok(())
}

/// `fimlake keys create` without `--server`: a new key and the configuration snippet that
/// installs it.
fn create_key_offline(
    role: auth::Role,
    name: String,
    computer: Option<String>,
    tables: Option<Vec<String>>,
    requests_per_second: Option<u32>,
) -> anyhow::Result<()> {
    let reg = TableRegistry::builtin();
    let postable: Vec<&str> = reg.tables().iter().filter(|t| !t.is_internal()).map(|t| t.name()).collect();
    fimlake_fleet::keys::check_scope(role, computer.as_deref(), tables.as_deref(), &postable)?;
    let (key, mut entry) = auth::create(&name, role, computer, tables);
    entry.requests_per_second = requests_per_second;
    let snippet = toml::to_string(&serde_json::json!({"auth": {"keys": [entry]}}))?;
    println!("key: {key}");
    println!();
    println!("Keep the key now: it is stored nowhere. Add this to the server's configuration file:");
    println!();
    print!("{snippet}");
    Ok(())
}

fn print_tables(only: Option<&str>, json: bool) -> anyhow::Result<()> {
    let reg = TableRegistry::builtin();
    let tables: Vec<_> = match only {
        Some(name) => vec![
            reg.get(name)
                .with_context(|| format!("table '{name}' does not exist; tables are: {}", reg.names().join(", ")))?,
        ],
        None => reg.tables().iter().collect(),
    };
    if json {
        let v: Vec<_> = tables
            .iter()
            .map(|t| serde_json::json!({"name": t.name(), "description": t.description(), "columns": t.columns()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "tables": v }))?);
        return Ok(());
    }
    for t in tables {
        println!("{} ({} columns): {}", t.name(), t.columns().len(), t.description());
        if only.is_some() {
            for c in t.columns() {
                println!("  {:<28} {:<9} {}", c.name, c.ty.name(), c.description);
            }
        }
    }
    Ok(())
}

/// `fimlake serve`'s configuration: the file and the environment, then the flags.
fn serve_config(
    file: Option<&std::path::Path>,
    environment: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    role: Option<fimlake_cluster::Roles>,
) -> anyhow::Result<Config> {
    let mut cfg = Config::load(file, environment.into_iter())?;
    if let Some(d) = data_dir {
        cfg.data_dir = d.clone();
        cfg.storage.data_dir = d;
    }
    cfg.listen = listen.unwrap_or(cfg.listen);
    if let Some(roles) = role {
        cfg.cluster.roles = roles;
        cfg.cluster.validate().map_err(anyhow::Error::msg)?;
    }
    Ok(cfg)
}

/// `fimlake cluster ...`, with a node's configuration.
fn cluster_command(
    command: ClusterCommand,
    environment: Vec<(String, String)>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { config, json } => {
            let cfg = Config::load(config.as_deref(), environment.into_iter())?;
            rt.block_on(cluster::print_status(&cfg, json))
        }
        ClusterCommand::Forget { node_id, config } => {
            let cfg = Config::load(config.as_deref(), environment.into_iter())?;
            rt.block_on(cluster::forget(&cfg, &node_id))
        }
    }
}
