use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fimlake_agent::agent::{self, Agent};
use fimlake_agent::baseline::Baseline;
use fimlake_agent::config::AgentConfig;
use fimlake_agent::enrollment;

/// fimlake's file integrity monitoring agent.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The configuration file [default: /etc/fimlake-agent/fimlake-agent.toml, where the
    /// packages put it; else /etc/fimlake-agent.toml, where earlier releases documented it].
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch and report until stopped (SIGTERM or Ctrl-C).
    Run,
    /// Scan once and print the changes as JSON lines.
    Scan {
        /// Required: one scan (`run` is the continuous mode).
        #[arg(long)]
        once: bool,
        /// Print only: leave the baseline and the spool as they are.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the baseline (JSON lines of path and state), or reset it.
    Baseline {
        #[arg(long)]
        reset: bool,
    },
    /// Obtain this host's own key from the server with an enrollment token (`fimlake
    /// enroll-tokens create`); kept, owner-only, in the data directory and used by `run`.
    Enroll {
        /// The server's base URL.
        #[arg(long)]
        server: String,
        /// The enrollment token.
        #[arg(long, env = "FIMLAKE_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// PEM CA certificates to trust for an https server (besides the system's).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// The name records carry in `Computer` [default: the configuration's, else the host name].
        #[arg(long)]
        computer: Option<String>,
        /// The agent's data directory [default: the configuration's, else /var/lib/fimlake-agent].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// One malloc arena for the whole agent. glibc gives a thread that finds the arenas busy one of
/// its own (up to eight per core), and memory freed into an arena stays with it: a burst handled
/// on the loop's, the watcher's and the blocking pool's threads thus kept several copies of its
/// peak. The agent's threads seldom allocate at once, so one arena costs little waiting
/// (measured in BENCHMARKS.md: a 100,000-file burst peaked 10-25 MiB lower).
#[allow(unsafe_code, reason = "glibc's mallopt has no safe binding")]
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes a setting of glibc's allocator; it takes any value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The packages' configuration file, else the one earlier releases documented, if only it exists.
fn default_config() -> PathBuf {
    let packaged = PathBuf::from("/etc/fimlake-agent/fimlake-agent.toml");
    let legacy = PathBuf::from("/etc/fimlake-agent.toml");
    if !packaged.exists() && legacy.exists() { legacy } else { packaged }
}

fn main() -> anyhow::Result<()> {
    one_malloc_arena();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIMLAKE_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = cli.config.unwrap_or_else(default_config);
    if let Command::Enroll { server, token, ca_file, computer, data_dir } = cli.command {
        return enroll(&config, &server, &token, ca_file, computer, data_dir);
    }
    let mut cfg = if config.exists() {
        AgentConfig::load(&config)?
    } else {
        anyhow::bail!(
            "configuration file {} does not exist (see examples/fimlake-agent.toml; enroll first with \
             `fimlake-agent enroll`)",
            config.display()
        );
    };
    if let Some(enrollment) = fimlake_agent::enrollment::apply(&mut cfg)? {
        tracing::info!(key = %enrollment.key_name, group = %enrollment.group, "using this host's enrollment");
    }
    match cli.command {
        Command::Enroll { .. } => unreachable!("handled above"),
        Command::Run => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async {
                let agent = Arc::new(Agent::open(cfg)?);
                tracing::info!(computer = %agent.computer, server = %agent.cfg().server, items = agent.cfg().items.len(), "fimlake-agent started");
                let (stop_tx, stop) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    let _ = stop_tx.send(true);
                });
                agent::run(agent, stop).await
            })
        }
        Command::Scan { once, dry_run } => {
            anyhow::ensure!(once, "scan needs --once (the continuous mode is `run`)");
            let agent = Agent::open(cfg)?;
            let out = agent.full_scan(!dry_run, &mut |rows| {
                for r in rows {
                    println!("{r}");
                }
            })?;
            if !dry_run {
                agent.inventory()?;
            }
            if out.first {
                eprintln!("baseline built: {} paths (changes are reported from the next scan)", out.files);
            }
            Ok(())
        }
        Command::Baseline { reset } => {
            let dir = cfg.data_dir.join("baseline");
            if reset {
                Baseline::reset(&dir).with_context(|| format!("resetting {}", dir.display()))?;
                eprintln!("baseline reset; the next scan builds a new one");
                return Ok(());
            }
            let b = Baseline::load(&dir)?;
            for (p, s) in &b.files {
                println!("{}", serde_json::json!({"path": p, "state": s}));
            }
            Ok(())
        }
    }
}

/// `fimlake-agent enroll`: trades the token for this host's key and keeps it.
fn enroll(
    config: &std::path::Path,
    server: &str,
    token: &str,
    ca_file: Option<PathBuf>,
    computer: Option<String>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = if config.exists() { AgentConfig::load(config)? } else { AgentConfig::default() };
    let data_dir = data_dir.unwrap_or_else(|| cfg.data_dir.clone());
    let computer = computer.unwrap_or_else(|| cfg.computer_name());
    let ca_file = ca_file.or_else(|| cfg.ca_file.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let enrollment = rt.block_on(enrollment::enroll(server, token, &computer, ca_file.as_deref()))?;
    enrollment::save(&data_dir, &enrollment)?;
    println!(
        "enrolled '{}' in group '{}' (key '{}'), kept in {}",
        enrollment.computer,
        enrollment.group,
        enrollment.key_name,
        enrollment::path(&data_dir).display()
    );
    if cfg.api_key.is_some() {
        println!("note: {} sets api_key, which the agent uses instead of this enrollment", config.display());
    }
    Ok(())
}
