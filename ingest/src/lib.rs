//! fimlake's ingestion API: agents post records for the tables of the registry, as JSON arrays
//! or NDJSON, optionally gzip-compressed, to the native endpoint or the Azure Logs Ingestion
//! endpoint. Records are validated and decoded here ([`decode`]), then appended to storage; the
//! answer comes only once they are durable.

pub mod admission;
pub mod api;
pub mod decode;
pub mod metrics;
pub mod sizing;

pub use api::{ApiError, BodyTimeout, IngestConfig, IngestGrant, IngestState, is_body_timeout, router, with_deadline};
pub use metrics::IngestMetrics;
