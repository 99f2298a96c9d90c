//! How fimlake talks HTTP as a client: the agent sending its spool, `fimlake ingest`/`gen`/
//! `query` posting to a server, and the alerting deliverer calling webhooks.
//!
//! - [`client_builder`]: a reqwest client that also trusts the CA certificates of a PEM file.
//! - [`retry`]: one rule for what is worth retrying ([`retry::transient`]: connection errors,
//!   timeouts, 408, 429, 5xx), one reader of `Retry-After` (seconds or an HTTP date) and one
//!   backoff policy (backon, exponential with jitter).
//! - [`records`]: posting records gzipped to `/v1/tables/{table}/records`, once
//!   ([`records::post`]) or until accepted or refused for good ([`records::post_until_accepted`]).

mod ca;
pub mod records;
pub mod retry;

pub use ca::{ClientError, client_builder};
