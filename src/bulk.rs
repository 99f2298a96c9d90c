//! `fimlake ingest`: bulk-loads JSON or NDJSON files into a running server, in chunks under the
//! server's body limit, gzip-compressed, retrying while the server asks to.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;

pub struct BulkOptions {
    pub server: String,
    pub table: String,
    pub files: Vec<PathBuf>,
    /// Uncompressed bytes per request.
    pub chunk_bytes: usize,
    pub progress: bool,
    /// Sent as `Authorization: Bearer` (an ingest key).
    pub api_key: Option<String>,
    /// PEM CA certificates to trust for an https server.
    pub ca_file: Option<PathBuf>,
}

/// Splits a file's records: a JSON array, or one JSON object per line.
fn records(text: &str) -> anyhow::Result<Vec<&str>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).context("parsing the JSON array")?;
        Ok(items.into_iter().map(RawValue::get).collect())
    } else {
        Ok(text.lines().filter(|l| !l.trim().is_empty()).collect())
    }
}

fn gzip(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body)?;
    Ok(enc.finish()?)
}

pub async fn run(opts: BulkOptions) -> anyhow::Result<u64> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = &opts.api_key {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {k}").parse().context("the API key")?);
    }
    let client = crate::tls::client_builder(opts.ca_file.as_deref())?
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()?;
    let url = format!("{}/v1/tables/{}/records", opts.server.trim_end_matches('/'), opts.table);
    let mut texts = Vec::new();
    for f in &opts.files {
        texts.push((f, std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?));
    }
    let mut all = Vec::new();
    for (f, text) in &texts {
        let recs = records(text).with_context(|| format!("in {}", f.display()))?;
        all.push((f, recs));
    }
    let total: u64 = all.iter().map(|(_, r)| r.len() as u64).sum();
    let bar = if opts.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec}, eta {eta})").expect("valid template"),
    );
    let mut accepted = 0u64;
    for (file, recs) in all {
        let mut start = 0;
        while start < recs.len() {
            let mut body = Vec::with_capacity(opts.chunk_bytes + 1024);
            let mut end = start;
            while end < recs.len() && (end == start || body.len() + recs[end].len() < opts.chunk_bytes) {
                body.extend_from_slice(recs[end].as_bytes());
                body.push(b'\n');
                end += 1;
            }
            let n = post(&client, &url, gzip(&body)?)
                .await
                .with_context(|| format!("{}: records {}..{}", file.display(), start, end))?;
            accepted += n;
            bar.inc((end - start) as u64);
            start = end;
        }
    }
    bar.finish();
    Ok(accepted)
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<u64> {
    let mut wait = Duration::from_millis(200);
    for _attempt in 0..20 {
        let resp = client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body(body.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let status = resp.status();
        if status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
            return v["accepted"].as_u64().context("the server's answer has no 'accepted' count");
        }
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 429 || status.as_u16() == 503 || status.is_server_error() {
            tokio::time::sleep(retry_after.map(Duration::from_secs).unwrap_or(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(10));
            continue;
        }
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("the server refused the records ({status}): {message}");
    }
    bail!("the server stayed busy; gave up after 20 attempts")
}
