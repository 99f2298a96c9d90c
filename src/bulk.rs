//! `fimlake ingest`: bulk-loads JSON or NDJSON files into a running server, in chunks under the
//! server's body limit, gzip-compressed, retrying while the server asks to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use fimlake_client::records;
use fimlake_client::retry::Backoff;
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

pub async fn run(opts: BulkOptions) -> anyhow::Result<u64> {
    let client = fimlake_client::client_builder(opts.ca_file.as_deref())?.build()?;
    let url = records::url(&opts.server, &opts.table);
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
            let n = post(&client, &url, opts.api_key.as_deref(), records::gzip(&body))
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

/// Posts one gzipped chunk until it is accepted: transient failures (no answer, 408, 429, 5xx)
/// are retried by the clients' one policy, 20 attempts at most; a refusal ends the run.
async fn post(client: &reqwest::Client, url: &str, api_key: Option<&str>, gzipped: Vec<u8>) -> anyhow::Result<u64> {
    let post = records::Post { url, api_key, content_type: "application/x-ndjson", timeout: Duration::from_secs(120) };
    let backoff = Backoff { min: Duration::from_millis(200), max: Duration::from_secs(10) };
    Ok(records::post_until_accepted(client, post, gzipped, 20, backoff).await?)
}
