//! The ingest load: K concurrent HTTP clients posting prepared bodies of B records for a fixed
//! time, and the serde_json parse bound of the same bytes.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::server::{ServerProcess, cpu_seconds};

/// One load configuration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IngestCase {
    pub clients: usize,
    pub batch: usize,
    pub gzip: bool,
}

impl std::str::FromStr for IngestCase {
    type Err = String;
    /// `8x1000`, `8x1000gz`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (body, gzip) = match s.strip_suffix("gz") {
            Some(b) => (b, true),
            None => (s, false),
        };
        let (k, b) = body.split_once('x').ok_or_else(|| format!("'{s}': expected CLIENTSxBATCH[gz], e.g. 8x1000gz"))?;
        let clients = k.parse().map_err(|_| format!("'{s}': '{k}' is not a number of clients"))?;
        let batch = b.parse().map_err(|_| format!("'{s}': '{b}' is not a batch size"))?;
        if clients == 0 || batch == 0 {
            return Err(format!("'{s}': clients and batch must be at least 1"));
        }
        Ok(IngestCase { clients, batch, gzip })
    }
}

/// The request bodies of one case: B NDJSON lines each, gzipped or not.
pub struct Bodies {
    pub bodies: Vec<bytes::Bytes>,
    /// Records and uncompressed JSON bytes of each body.
    pub records: Vec<usize>,
    pub raw_bytes: Vec<usize>,
}

pub fn prepare(lines: &[&[u8]], batch: usize, gzip: bool) -> Bodies {
    let mut out = Bodies { bodies: Vec::new(), records: Vec::new(), raw_bytes: Vec::new() };
    for chunk in lines.chunks(batch) {
        let mut raw = Vec::with_capacity(chunk.iter().map(|l| l.len() + 1).sum());
        for l in chunk {
            raw.extend_from_slice(l);
            raw.push(b'\n');
        }
        out.records.push(chunk.len());
        out.raw_bytes.push(raw.len());
        let body = if gzip {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).expect("gzip into memory");
            e.finish().expect("gzip into memory")
        } else {
            raw
        };
        out.bodies.push(body.into());
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    pub case: IngestCase,
    pub seconds: f64,
    pub requests: u64,
    pub records: u64,
    pub records_per_second: f64,
    /// Uncompressed JSON megabytes (10^6) per second.
    pub json_mb_per_second: f64,
    /// Bytes on the wire per second (the gzipped bodies with gzip).
    pub wire_mb_per_second: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub ack_max_ms: f64,
    /// `503`/`429` answers (backpressure), each retried after its `Retry-After`, and requests
    /// cut off by a server refusing them before reading their body (retried after 200 ms).
    pub refused: u64,
    pub server_peak_rss_mib: f64,
    /// The server's CPU time over the measured period divided by its length: cores it used.
    pub server_cores: f64,
    /// The same for this load process.
    pub client_cores: f64,
    /// `records_per_second / server_cores` over the serde_json bound (records per second on one
    /// core): the fraction of the parse bound reached per core used.
    pub fraction_of_parse_bound_per_core: f64,
}

/// Where an ingest load goes: the servers it posts to (client `i` to server `i % n`), and the
/// other processes whose CPU time and memory count too (a cluster's leader).
pub struct Target<'a> {
    pub post_to: Vec<&'a ServerProcess>,
    pub also_measured: Vec<&'a ServerProcess>,
}

impl<'a> Target<'a> {
    pub fn one(server: &'a ServerProcess) -> Target<'a> {
        Target { post_to: vec![server], also_measured: Vec::new() }
    }

    fn measured(&self) -> impl Iterator<Item = &&'a ServerProcess> {
        self.post_to.iter().chain(&self.also_measured)
    }

    /// The CPU seconds of every measured process.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.measured().map(|s| s.cpu_seconds()).sum()
    }

    /// The highest peak RSS of the measured processes.
    fn peak_rss(&self) -> anyhow::Result<u64> {
        self.measured().map(|s| s.peak_rss()).try_fold(0, |max, rss| rss.map(|r| r.max(max)))
    }
}

/// Posts the bodies round-robin from `case.clients` tasks for `warmup + measure`, counting only
/// what is acknowledged within the measured period.
pub async fn drive(
    target: &Target<'_>,
    table: &str,
    case: IngestCase,
    bodies: &Bodies,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<IngestResult> {
    let urls: Vec<String> = target.post_to.iter().map(|s| format!("{}/v1/tables/{table}/records", s.url)).collect();
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(case.clients).timeout(Duration::from_secs(120)).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::new();
    let shared = Arc::new((bodies.bodies.clone(), bodies.records.clone(), bodies.raw_bytes.clone()));
    for task in 0..case.clients {
        let url = urls[task % urls.len()].clone();
        let (client, next, shared) = (client.clone(), next.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed) % shared.0.len();
                let body = shared.0[i].clone();
                let sent = Instant::now();
                match post_once(&client, &url, body.clone(), case.gzip).await? {
                    Posted::Accepted => {}
                    refused => {
                        t.refused += 1;
                        tokio::time::sleep(refused.wait()).await;
                        continue;
                    }
                }
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    t.requests += 1;
                    t.records += shared.1[i] as u64;
                    t.raw += shared.2[i] as u64;
                    t.wire += body.len() as u64;
                    t.latencies.push(done - sent);
                }
            }
            Ok::<_, anyhow::Error>(t)
        }));
    }
    // CPU time over the measured period only.
    tokio::time::sleep_until(measure_from.into()).await;
    let (server_cpu0, client_cpu0) = (target.cpu_seconds()?, cpu_seconds("/proc/self/stat")?);
    tokio::time::sleep_until(end.into()).await;
    let (server_cpu1, client_cpu1) = (target.cpu_seconds()?, cpu_seconds("/proc/self/stat")?);
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await.context("a load task panicked")??;
        total.requests += t.requests;
        total.records += t.records;
        total.raw += t.raw;
        total.wire += t.wire;
        total.refused += t.refused;
        total.latencies.extend(t.latencies);
    }
    let secs = measure.as_secs_f64();
    total.latencies.sort();
    let server_cores = (server_cpu1 - server_cpu0) / secs;
    let rps = total.records as f64 / secs;
    Ok(IngestResult {
        case,
        seconds: secs,
        requests: total.requests,
        records: total.records,
        records_per_second: rps,
        json_mb_per_second: total.raw as f64 / secs / 1e6,
        wire_mb_per_second: total.wire as f64 / secs / 1e6,
        ack_p50_ms: percentile_ms(&total.latencies, 0.50),
        ack_p99_ms: percentile_ms(&total.latencies, 0.99),
        ack_max_ms: total.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        refused: total.refused,
        server_peak_rss_mib: target.peak_rss()? as f64 / (1 << 20) as f64,
        server_cores,
        client_cores: (client_cpu1 - client_cpu0) / secs,
        fraction_of_parse_bound_per_core: 0.0,
    })
}

/// The outcome of one attempt at posting a body.
pub enum Posted {
    Accepted,
    /// `503`/`429`: post it again after this long (`Retry-After`).
    Refused(Duration),
    /// The connection was cut: a server refusing a request before reading its body (full
    /// buffer) closes it, which the client may see as a reset. An agent retries.
    Cut,
}

impl Posted {
    /// How long to wait before posting a refused body again.
    pub fn wait(&self) -> Duration {
        match self {
            Posted::Accepted => Duration::ZERO,
            Posted::Refused(wait) => *wait,
            Posted::Cut => Duration::from_millis(200),
        }
    }
}

/// Posts one NDJSON body (gzipped when `gzip`) and reads the whole answer; any other error
/// status is an error.
pub async fn post_once(client: &reqwest::Client, url: &str, body: bytes::Bytes, gzip: bool) -> anyhow::Result<Posted> {
    let mut req = client.post(url).header("content-type", "application/x-ndjson").body(body);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_request() || e.is_connect() || e.is_body() => return Ok(Posted::Cut),
        Err(e) => return Err(e).context("posting records"),
    };
    let status = resp.status();
    let retry_after =
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
    let text = resp.bytes().await.context("reading the answer")?;
    if status.as_u16() == 503 || status.as_u16() == 429 {
        return Ok(Posted::Refused(Duration::from_secs_f64(retry_after.unwrap_or(0.1).clamp(0.01, 5.0))));
    }
    if !status.is_success() {
        bail!("the server answered {status} to a batch posted to {url}: {}", String::from_utf8_lossy(&text));
    }
    Ok(Posted::Accepted)
}

/// The non-empty lines of an NDJSON file.
pub fn ndjson_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

#[derive(Default)]
struct Tally {
    requests: u64,
    records: u64,
    raw: u64,
    wire: u64,
    refused: u64,
    latencies: Vec<Duration>,
}

/// Nearest-rank percentile `p` (0 to 1) of sorted values; `None` for none.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// Nearest-rank percentile of sorted durations, in milliseconds (0 for none).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    nearest_rank(sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// A `ConfigurationChange` record as the generator writes it, typed: what a serde-based decoder
/// has to produce at the least.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct Change {
    time_generated: String,
    computer: String,
    config_change_type: String,
    change_category: String,
    file_system_path: Option<String>,
    source_computer_id: Option<String>,
    file_content_checksum: Option<String>,
    previous_file_content_checksum: Option<String>,
    size: Option<i64>,
    previous_size: Option<i64>,
    acls: Option<String>,
    previous_acls: Option<String>,
    owner: Option<String>,
    date_modified: Option<String>,
    fields_changed: Option<String>,
    software_name: Option<String>,
    software_type: Option<String>,
    publisher: Option<String>,
    previous_version: Option<String>,
    current_version: Option<String>,
    svc_name: Option<String>,
    svc_state: Option<String>,
    svc_previous_state: Option<String>,
    svc_startup_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParseBound {
    pub records: u64,
    pub mb: f64,
    /// Records per second on one core, into typed structs (owned strings).
    pub typed_records_per_second: f64,
    pub typed_mb_per_second: f64,
    /// The same bytes into `serde_json::Value` trees.
    pub value_records_per_second: f64,
}

/// Parses the NDJSON lines with serde_json on this thread, for at least `min_time`: once into
/// typed structs, once into `Value`s.
pub fn parse_bound(lines: &[&[u8]], min_time: Duration) -> anyhow::Result<ParseBound> {
    if lines.is_empty() {
        bail!("no records to parse");
    }
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let time = |f: &dyn Fn(&[u8]) -> anyhow::Result<()>| -> anyhow::Result<(u64, f64)> {
        let start = Instant::now();
        let mut passes = 0u64;
        while passes == 0 || start.elapsed() < min_time {
            for l in lines {
                f(l)?;
            }
            passes += 1;
        }
        Ok((passes, start.elapsed().as_secs_f64()))
    };
    let (typed_passes, typed_secs) = time(&|l| {
        std::hint::black_box(serde_json::from_slice::<Change>(l).context("a generated record")?);
        Ok(())
    })?;
    let (value_passes, value_secs) = time(&|l| {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(l)?);
        Ok(())
    })?;
    let n = lines.len() as f64;
    Ok(ParseBound {
        records: lines.len() as u64,
        mb: bytes as f64 / 1e6,
        typed_records_per_second: n * typed_passes as f64 / typed_secs,
        typed_mb_per_second: bytes as f64 * typed_passes as f64 / typed_secs / 1e6,
        value_records_per_second: n * value_passes as f64 / value_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_from_the_command_line_form() {
        assert_eq!("8x1000".parse(), Ok(IngestCase { clients: 8, batch: 1000, gzip: false }));
        assert_eq!("16x5000gz".parse(), Ok(IngestCase { clients: 16, batch: 5000, gzip: true }));
        assert!("8".parse::<IngestCase>().unwrap_err().contains("CLIENTSxBATCH"));
        assert!("0x10".parse::<IngestCase>().unwrap_err().contains("at least 1"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 50.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert_eq!(percentile_ms(&d[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn bodies_hold_every_line_once_and_gzip_round_trips() {
        let lines: Vec<&[u8]> = vec![b"{\"a\":1}", b"{\"a\":2}", b"{\"a\":3}"];
        let plain = prepare(&lines, 2, false);
        assert_eq!(plain.records, [2, 1]);
        assert_eq!(&plain.bodies[0][..], b"{\"a\":1}\n{\"a\":2}\n");
        let gz = prepare(&lines, 2, true);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz.bodies[1][..]), &mut out).unwrap();
        assert_eq!(out, "{\"a\":3}\n");
        assert_eq!(gz.raw_bytes, plain.raw_bytes);
    }
}
