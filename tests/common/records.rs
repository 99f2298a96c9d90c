//! Batches of uniquely named records posted to a server, and the checks that each acknowledged
//! one is stored exactly once.

use std::collections::HashSet;

use super::{Reply, http, http_get};

pub const BATCH: usize = 50;

/// Posts `BATCH` heartbeats with fresh `Computer` names; returns the answer and the names.
pub fn post_batch(url: &str, next: &mut usize) -> (Reply, Vec<String>) {
    let names: Vec<String> = (*next..*next + BATCH).map(|i| format!("host-{i:06}")).collect();
    *next += BATCH;
    let body: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"Computer":"{n}","TimeGenerated":"2026-12-01T10:00:00Z","Category":"Direct Agent"}}"#))
        .collect();
    let body = format!("[{}]", body.join(","));
    let reply = http(
        "POST",
        &format!("{url}/v1/tables/Heartbeat/records"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("the server answers");
    (reply, names)
}

pub fn body_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.2).to_string()
}

/// The value of a metric sample, e.g. `fimlake_buffered_rows{table="Heartbeat"}`.
pub fn metric(url: &str, sample: &str) -> f64 {
    metric_with_key(url, None, sample)
}

/// [`metric`] read with an API key (a server with keys answers `/metrics` to a key only).
pub fn metric_with_key(url: &str, key: Option<&str>, sample: &str) -> f64 {
    let (status, _, body) = match key {
        Some(key) => http("GET", &format!("{url}/metrics"), &[("Authorization", &format!("Bearer {key}"))], b""),
        None => http_get(&format!("{url}/metrics")),
    }
    .unwrap();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {sample}"))
}

/// Waits (30 s at most) until the server has compacted `table` once: a maintenance pass merged
/// an hour's or a closed day's files.
pub fn wait_compacted(url: &str, key: Option<&str>, table: &str) {
    let sample = format!("fimlake_compactions_total{{table=\"{table}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric_with_key(url, key, &sample) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "{table} was not compacted within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn computers(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter().map(|r| r["Computer"].as_str().unwrap().to_string()).collect()
}

/// Every acknowledged name stored exactly once, and nothing else.
pub fn assert_exactly_once(stored: Vec<String>, acked: &HashSet<String>) {
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "a record is stored twice");
    let missing: Vec<_> = acked.difference(&unique).take(5).collect();
    assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
    let extra: Vec<_> = unique.difference(acked).take(5).collect();
    assert!(extra.is_empty(), "refused records stored: {extra:?}");
}
