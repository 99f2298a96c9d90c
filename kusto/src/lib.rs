//! The Kusto vocabulary every fimlake crate speaks: the scalar types and the Arrow types they are
//! held in ([`KustoType`]), the field metadata key that tells `dynamic` and `guid` from `string`,
//! and the text forms of `datetime` ([`datetime`]) and `timespan` ([`timespan`]) values.
//!
//! One definition each, so ingest, storage, the KQL planner and the query API cannot disagree
//! (a date such as 2024-02-31 is an error in all of them).

pub mod datetime;
pub mod timespan;
mod types;

pub use types::{KUSTO_TYPE_KEY, KustoType, timestamp_type};
