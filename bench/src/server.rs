//! A `fimlake serve` child process on a fresh data directory, and what `/proc` says about it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The workspace id every benchmark server uses (queries go to `/v1/workspaces/bench/query`).
pub const WORKSPACE: &str = "bench";

pub struct ServerProcess {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts `bin serve` with `config` (TOML, without `listen`, `data_dir` or `workspace_id`,
    /// which this sets) on `data_dir`, and waits until `/readyz` answers.
    pub async fn start(bin: &Path, data_dir: &Path, config: &str) -> anyhow::Result<ServerProcess> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let file = data_dir.with_extension("toml");
        let full = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nworkspace_id = \"{WORKSPACE}\"\n{config}",
            data_dir.display().to_string()
        );
        std::fs::write(&file, full).with_context(|| format!("writing {}", file.display()))?;
        let mut cmd = Command::new(bin);
        // The configuration file alone decides (the harness's own FIMLAKE_BENCH_* variables would
        // be unknown settings to the server).
        #[allow(clippy::disallowed_methods, reason = "clears the harness's variables from the server's environment")]
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FIMLAKE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .env("FIMLAKE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(Ok(l)) => l,
            _ => bail!("{} serve printed nothing (see its errors above)", bin.display()),
        };
        let Some(url) = first.strip_prefix("fimlake listening on ") else {
            bail!("unexpected first line from the server: {first}");
        };
        let url = url.to_string();
        // Keep draining stdout so that the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let server = ServerProcess { child: Some(child), url, data_dir: data_dir.to_path_buf() };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", server.url)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the server at {} did not become ready within 120 s", server.url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|k| k * 1024)
    }

    /// The resident set size now (`VmRSS`), in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmRSS:").map(|k| k * 1024)
    }

    /// User plus system CPU seconds the server has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// The server's Prometheus text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let r = reqwest::get(format!("{}/metrics", self.url)).await?;
        Ok(r.error_for_status()?.text().await?)
    }

    /// SIGTERM (which flushes every buffer), then waits for the exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().context("sending SIGTERM")?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the server did not stop within 300 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} in {path}"))?;
    let kib = line[field.len()..].trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("reading {field} in {path}"))
}

/// User plus system CPU seconds of the process whose `stat` file this is (`/proc/self/stat`).
pub fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state (3), ..., utime (14), stime (15).
    let rest = &text[text.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The sum of every sample of `name` in Prometheus text whose labels contain `label` (all
/// samples when `label` is empty).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| label.is_empty() || l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_the_matching_samples() {
        let text = "# HELP x\nfimlake_table_files{table=\"A\"} 3\nfimlake_table_files{table=\"B\"} 4\nfimlake_table_files_x 9\n";
        assert_eq!(metric_sum(text, "fimlake_table_files", ""), 7.0);
        assert_eq!(metric_sum(text, "fimlake_table_files", "table=\"B\""), 4.0);
        assert_eq!(metric_sum(text, "missing", ""), 0.0);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let spent = cpu_seconds("/proc/self/stat").unwrap();
        assert!(spent >= 0.0);
    }
}
