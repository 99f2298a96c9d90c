//! `fimlake ingest`: bulk-loads JSON or NDJSON files into a running server, gzip-compressed, in
//! requests sized under the server's limits (it names them in `GET /v1/tables`): a chunk whose
//! compressed body is over the limit, or that the server answers `413`, is split in two and
//! sent again; transient failures (408, 429, 5xx, no answer) are retried.

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
    /// Uncompressed bytes per request at most (also kept under the server's limit).
    pub chunk_bytes: usize,
    pub progress: bool,
    /// Sent as `Authorization: Bearer` (an ingest key).
    pub api_key: Option<String>,
    /// PEM CA certificates to trust for an https server.
    pub ca_file: Option<PathBuf>,
}

/// What one request may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes on the wire (gzipped).
    pub max_body_bytes: usize,
    /// Bytes once inflated.
    pub max_decompressed_bytes: usize,
    pub max_records: usize,
}

impl Default for Limits {
    /// A server's defaults, for one that does not name its limits.
    fn default() -> Self {
        Limits { max_body_bytes: 1 << 20, max_decompressed_bytes: 8 << 20, max_records: 100_000 }
    }
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

/// The server's limits (`GET /v1/tables`), else a default server's.
async fn server_limits(client: &reqwest::Client, server: &str, api_key: Option<&str>) -> Limits {
    let url = format!("{}/v1/tables", server.trim_end_matches('/'));
    let mut request = client.get(&url).timeout(Duration::from_secs(30));
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let answer: Option<serde_json::Value> = match request.send().await {
        Ok(response) if response.status().is_success() => response.json().await.ok(),
        _ => None,
    };
    let limit = |name: &str| answer.as_ref().and_then(|v| v["limits"][name].as_u64()).map(|n| n as usize);
    let default = Limits::default();
    Limits {
        max_body_bytes: limit("max_body_bytes").unwrap_or(default.max_body_bytes),
        max_decompressed_bytes: limit("max_decompressed_bytes").unwrap_or(default.max_decompressed_bytes),
        max_records: limit("max_records").unwrap_or(default.max_records),
    }
}

/// Consecutive runs of `records` of at most `max_bytes` (one newline each) and `max_records`;
/// a record larger than `max_bytes` is a run of its own.
pub fn chunks(records: &[&str], max_bytes: usize, max_records: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < records.len()
            && end - start < max_records
            && (end == start || bytes + records[end].len() < max_bytes)
        {
            bytes += records[end].len() + 1;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

fn ndjson(records: &[&str]) -> Vec<u8> {
    let mut body = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for record in records {
        body.extend_from_slice(record.as_bytes());
        body.push(b'\n');
    }
    body
}

pub async fn run(opts: BulkOptions) -> anyhow::Result<u64> {
    let client = fimlake_client::client_builder(opts.ca_file.as_deref())?.build()?;
    let limits = server_limits(&client, &opts.server, opts.api_key.as_deref()).await;
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
    let sender = Sender {
        client,
        url: records::url(&opts.server, &opts.table),
        api_key: opts.api_key.clone(),
        limits,
        bar: bar.clone(),
    };
    // A tenth of headroom under the inflated limit, for the newlines and the server's counting.
    let max_bytes = opts.chunk_bytes.min(limits.max_decompressed_bytes / 10 * 9).max(1);
    let mut accepted = 0u64;
    for (file, recs) in all {
        for range in chunks(&recs, max_bytes, limits.max_records) {
            accepted += sender.send(file, &recs, range).await?;
        }
    }
    bar.finish();
    Ok(accepted)
}

struct Sender {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    limits: Limits,
    bar: ProgressBar,
}

impl Sender {
    /// Sends `records[range]`, in halves (and their halves) while the compressed body is over
    /// the server's limit or the server answers 413. Returns the records accepted.
    async fn send(
        &self,
        file: &std::path::Path,
        records: &[&str],
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<u64> {
        let mut pending = vec![range];
        let mut accepted = 0;
        while let Some(range) = pending.pop() {
            let gzipped = records::gzip(&ndjson(&records[range.clone()]));
            let too_large = gzipped.len() > self.limits.max_body_bytes;
            let answer = if too_large { None } else { Some(self.post(gzipped).await) };
            match answer {
                Some(Ok(n)) => {
                    accepted += n;
                    self.bar.inc(range.len() as u64);
                }
                None | Some(Err(fimlake_client::ClientError::Refused { status: 413, .. })) if range.len() > 1 => {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
                None => anyhow::bail!(
                    "{}: record {} alone is {} bytes gzipped, over the server's max_body_bytes ({})",
                    file.display(),
                    range.start,
                    records::gzip(records[range.start].as_bytes()).len(),
                    self.limits.max_body_bytes
                ),
                Some(Err(e)) => {
                    return Err(e)
                        .with_context(|| format!("{}: records {}..{}", file.display(), range.start, range.end));
                }
            }
        }
        Ok(accepted)
    }

    /// Posts one gzipped chunk until it is accepted: transient failures (no answer, 408, 429,
    /// 5xx) are retried by the clients' one policy, 20 attempts at most.
    async fn post(&self, gzipped: Vec<u8>) -> Result<u64, fimlake_client::ClientError> {
        let post = records::Post {
            url: &self.url,
            api_key: self.api_key.as_deref(),
            content_type: "application/x-ndjson",
            timeout: Duration::from_secs(120),
        };
        let backoff = Backoff { min: Duration::from_millis(200), max: Duration::from_secs(10) };
        records::post_until_accepted(&self.client, post, gzipped, 20, backoff).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_both_limits_and_keep_every_record_once() {
        let records = ["aaaa", "bb", "cccccc", "d", "eeeeeeeeeeee", "f"];
        let got = chunks(&records, 8, 2);
        assert_eq!(got, [0..2, 2..3, 3..4, 4..5, 5..6]);
        assert_eq!(chunks(&records, 100, 100).len(), 1, "one chunk of all six");
        assert!(chunks(&[], 8, 2).is_empty());
    }
}
