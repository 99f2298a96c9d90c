//! Alert latency: from the acknowledgement of a posted record to the webhook delivery of the
//! alert it raises, through a per-row rule on the real server and a receiver in this process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::server::ServerProcess;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertResult {
    pub rule_frequency_s: u64,
    /// One per record, in the order posted.
    pub latencies_ms: Vec<f64>,
    pub max_ms: f64,
    /// The target: 2 s plus the rule's frequency.
    pub bound_ms: f64,
}

/// A webhook receiver on 127.0.0.1: every body it is posted, with the instant it arrived.
pub async fn receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<(Instant, String)>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((Instant::now(), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, rx))
}

/// Writes the rules directory of the alert server: one action group posting to `hook`, and a
/// per-row rule on changes under `/bench/alert/` evaluated every `frequency_s`.
pub fn write_rules(dir: &Path, hook: &str, frequency_s: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("action-groups.toml"), format!("[bench]\nwebhooks = [{{ url = \"{hook}\" }}]\n"))?;
    std::fs::write(
        dir.join("bench-change.toml"),
        format!(
            r#"name = "bench-change"
severity = 1
query = '''
ConfigurationChange
| where FileSystemPath startswith "/bench/alert/"
| project TimeGenerated, Computer, FileSystemPath, ChangeCategory
'''
frequency = "{frequency_s}s"
condition = {{ kind = "per_row", key = ["FileSystemPath"] }}
actions = ["bench"]
"#
        ),
    )?;
    Ok(())
}

/// Posts `samples` records at spread points of the rule's period and times each one's webhook.
pub async fn measure(
    server: &ServerProcess,
    rx: &mut mpsc::UnboundedReceiver<(Instant, String)>,
    frequency_s: u64,
    samples: usize,
) -> anyhow::Result<AlertResult> {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/tables/ConfigurationChange/records", server.url);
    let mut latencies = Vec::new();
    for i in 0..samples {
        // Spread the posts over the period: the latency depends on where in it a record lands.
        let offset = Duration::from_millis(frequency_s * 1000 * (i as u64 * 7 % 10) / 10 + 137);
        tokio::time::sleep(offset).await;
        let marker = format!("/bench/alert/{i}-{}", chrono::Utc::now().timestamp_micros());
        let record = json!([{
            "TimeGenerated": chrono::Utc::now().to_rfc3339(), "Computer": "bench-alert",
            "ConfigChangeType": "Files", "ChangeCategory": "Modified", "FileSystemPath": marker,
        }]);
        let resp = client.post(&url).header("content-type", "application/json").body(record.to_string()).send().await?;
        let acked = Instant::now();
        if !resp.status().is_success() {
            bail!("posting the alert record: {}", resp.status());
        }
        let deadline = acked + Duration::from_secs(frequency_s + 60);
        let arrived = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, body) = tokio::time::timeout(left, rx.recv())
                .await
                .with_context(|| format!("no webhook for {marker} within {} s", frequency_s + 60))?
                .context("the webhook receiver stopped")?;
            if body.contains(&marker) {
                break at;
            }
        };
        latencies.push((arrived - acked).as_secs_f64() * 1e3);
    }
    let max = latencies.iter().copied().fold(0.0, f64::max);
    Ok(AlertResult {
        rule_frequency_s: frequency_s,
        latencies_ms: latencies,
        max_ms: max,
        bound_ms: 2000.0 + frequency_s as f64 * 1000.0,
    })
}
