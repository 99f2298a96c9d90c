//! The console's pages on the loaded query server: for each page, the time to the response's
//! headers (the page is rendered whole before they are sent, so this is the server's time plus
//! a loopback round trip) and to its last byte, median of `rounds`; a change list 1,000 pages
//! deep (its keyset cursor found with KQL); the CSV export of about a million rows, its rate and
//! how much the server's resident memory grows while it streams.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::queries::median;
use crate::server::{ServerProcess, WORKSPACE};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageResult {
    pub name: String,
    pub path: String,
    /// The target: under this many milliseconds to the last byte.
    pub target_ms: f64,
    pub headers_median_ms: f64,
    pub last_byte_median_ms: f64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CsvResult {
    /// Lines after the header (a row whose text holds a line break counts more than once).
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_second: f64,
    pub rss_growth_mib: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UiResult {
    pub pages: Vec<PageResult>,
    pub csv: CsvResult,
}

/// One timed GET: (ms to headers, ms to last byte, bytes).
async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<(f64, f64, u64)> {
    let start = Instant::now();
    let resp = client.get(url).send().await?;
    let headers = start.elapsed().as_secs_f64() * 1e3;
    let status = resp.status();
    let body = resp.bytes().await?;
    let last = start.elapsed().as_secs_f64() * 1e3;
    if !status.is_success() {
        bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(500)]));
    }
    Ok((headers, last, body.len() as u64))
}

/// The keyset cursor of the change list's page `depth` (50 rows a page), from KQL.
async fn deep_cursor(client: &reqwest::Client, server: &ServerProcess, depth: u64) -> anyhow::Result<String> {
    let rows = depth * 50;
    let kql = format!(
        "ConfigurationChange | top {rows} by TimeGenerated desc | top 1 by TimeGenerated asc \
         | project TimeGenerated, _ItemId"
    );
    let v = query(client, server, &kql).await?;
    let row = &v["tables"][0]["rows"][0];
    let (time, id) = (row[0].as_str().context("no time")?, row[1].as_str().context("no id")?);
    Ok(format!("{time}|{id}"))
}

async fn query(client: &reqwest::Client, server: &ServerProcess, kql: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/v1/workspaces/{WORKSPACE}/query", server.url);
    let body = serde_json::json!({ "query": kql }).to_string();
    let resp = client.post(&url).header("content-type", "application/json").body(body).send().await?;
    let bytes = resp.error_for_status()?.bytes().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The pages measured: (name, path, target ms).
async fn pages(client: &reqwest::Client, server: &ServerProcess) -> anyhow::Result<Vec<(String, String, f64)>> {
    let v = query(
        client,
        server,
        "ConfigurationChange | top 1 by TimeGenerated desc | project Computer, TimeGenerated, _ItemId, FileSystemPath",
    )
    .await?;
    let row = &v["tables"][0]["rows"][0];
    let text = |i: usize| row[i].as_str().unwrap_or("").to_string();
    let (machine, time, id, path) = (text(0), text(1), text(2), text(3));
    let deep = deep_cursor(client, server, 1000).await?;
    let hunt = "ConfigurationChange | summarize count() by bin(TimeGenerated, 1h), ChangeCategory | render timechart";
    Ok(vec![
        ("overview 24h".into(), "/?range=24h".into(), 1000.0),
        ("overview 30d".into(), "/?range=30d".into(), 1000.0),
        ("machines".into(), "/machines?range=24h".into(), 500.0),
        ("machine".into(), format!("/machines/{}?range=7d", encode(&machine)), 500.0),
        ("changes".into(), "/changes?range=30d".into(), 500.0),
        ("changes filtered".into(), "/changes?range=30d&path=passwd&category=Modified".into(), 500.0),
        ("changes 1000 pages deep".into(), format!("/changes?range=30d&after={}", encode(&deep)), 500.0),
        ("change".into(), format!("/changes/{}?t={}", encode(&id), encode(&time)), 500.0),
        (
            "change: its history (loads after the page)".into(),
            format!("/changes/{}/history?computer={}&path={}", encode(&id), encode(&machine), encode(&path)),
            500.0,
        ),
        ("hunting 7d timechart".into(), format!("/hunt?range=7d&q={}", encode(hunt)), 500.0),
        ("alerts".into(), "/alerts".into(), 500.0),
        ("rules".into(), "/rules".into(), 500.0),
        ("audit".into(), "/audit?range=24h".into(), 500.0),
        ("report 7d".into(), "/report?range=7d".into(), 500.0),
    ])
}

pub async fn measure(server: &ServerProcess, rounds: usize, log: &dyn Fn(&str)) -> anyhow::Result<UiResult> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let mut out = UiResult::default();
    for (name, path, target_ms) in pages(&client, server).await? {
        let url = format!("{}{path}", server.url);
        let (_, _, bytes) = get(&client, &url).await.with_context(|| format!("page {name}"))?;
        let (mut headers, mut last) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (h, l, _) = get(&client, &url).await?;
            headers.push(h);
            last.push(l);
        }
        let result = PageResult {
            name,
            path,
            target_ms,
            headers_median_ms: median(headers),
            last_byte_median_ms: median(last),
            bytes,
        };
        log(&format!("  {}: {:.0} ms ({} bytes)", result.name, result.last_byte_median_ms, result.bytes));
        out.pages.push(result);
    }
    out.csv = csv(&client, server).await?;
    log(&format!(
        "  CSV export: {} rows, {:.0} MB/s, RSS +{:.0} MiB",
        out.csv.rows, out.csv.mb_per_second, out.csv.rss_growth_mib
    ));
    Ok(out)
}

/// The changes of the last three days (about a million rows in the full data set) as CSV,
/// streamed, while the server's resident memory is sampled.
async fn csv(client: &reqwest::Client, server: &ServerProcess) -> anyhow::Result<CsvResult> {
    let end = chrono::Utc::now() + chrono::Duration::minutes(2);
    let start = end - chrono::Duration::days(3);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let url = format!("{}/changes.csv?range=custom&from={}&to={}", server.url, fmt(start), fmt(end));
    let baseline = server.rss()?;
    let mut peak = baseline;
    let began = Instant::now();
    let mut resp = client.get(&url).send().await?.error_for_status()?;
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut sampled = Instant::now();
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if sampled.elapsed() > Duration::from_millis(50) {
            peak = peak.max(server.rss()?);
            sampled = Instant::now();
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    peak = peak.max(server.rss()?);
    Ok(CsvResult {
        rows: lines.saturating_sub(1),
        bytes,
        seconds,
        mb_per_second: bytes as f64 / seconds / 1e6,
        rss_growth_mib: peak.saturating_sub(baseline) as f64 / (1 << 20) as f64,
    })
}
