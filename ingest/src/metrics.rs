use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Ingestion metrics, per table.
#[derive(Clone)]
pub struct IngestMetrics {
    pub records: IntCounterVec,
    pub requests: IntCounterVec,
    pub bytes: IntCounterVec,
    pub latency: HistogramVec,
}

impl IngestMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = IngestMetrics {
            records: IntCounterVec::new(
                Opts::new(
                    "fimlake_ingest_records_total",
                    "Records by outcome: accepted, or refused after decoding (buffer full, WAL failure); \
                     records of bodies that fail validation are counted in fimlake_ingest_requests_total",
                ),
                &["table", "outcome"],
            )?,
            requests: IntCounterVec::new(
                Opts::new(
                    "fimlake_ingest_requests_total",
                    "Ingestion requests by outcome (accepted, rejected, throttled)",
                ),
                &["table", "outcome"],
            )?,
            bytes: IntCounterVec::new(
                Opts::new("fimlake_ingest_bytes_total", "Request body bytes on the wire, accepted or rejected"),
                &["table", "outcome"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new("fimlake_ingest_request_seconds", "Time from request to acknowledgement")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["table"],
            )?,
        };
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        Ok(m)
    }
}
