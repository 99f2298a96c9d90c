//! What `GET /v1/cluster` answers and `fimlake cluster status` prints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lease::{Lease, LeaseRecord};
use crate::nodes::{ForgottenNode, NodeRecord, Registry};

/// The cluster as the bucket shows it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub answered_by: String,
    pub leader: Option<LeaderView>,
    pub nodes: Vec<NodeView>,
    /// Nodes an operator declared gone (`fimlake cluster forget`).
    #[serde(default)]
    pub forgotten: Vec<ForgottenNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderView {
    pub node_id: String,
    pub epoch: u64,
    pub advertise_url: Option<String>,
    pub renewed_at: DateTime<Utc>,
    /// `renewed_at` + the holder's TTL, by the holder's clock: when standbys may take over if
    /// it renews no more.
    pub lease_expires_at: DateTime<Utc>,
    /// The holder stopped cleanly and gave the lease up.
    pub released: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub record: NodeRecord,
    /// Seconds since its registration was last written.
    pub seconds_since_seen: f64,
    /// Written within the last three heartbeats.
    pub alive: bool,
    /// An ingest node: seconds between now and its `committed_before` (how far its
    /// acknowledged records are behind being committed, as of its last registration).
    pub commit_lag_seconds: Option<f64>,
}

impl LeaderView {
    fn of(record: LeaseRecord) -> LeaderView {
        let ttl = chrono::Duration::milliseconds(record.ttl_ms as i64);
        LeaderView {
            node_id: record.holder,
            epoch: record.epoch,
            advertise_url: record.advertise_url,
            renewed_at: record.renewed_at,
            lease_expires_at: record.renewed_at + ttl,
            released: record.released,
        }
    }
}

impl ClusterStatus {
    /// Reads the lease and every registration; `heartbeat` decides who counts as alive.
    pub async fn read(registry: &Registry, answered_by: &str, heartbeat: Duration) -> Result<ClusterStatus> {
        let leader = Lease::read(registry.store().as_ref()).await?.map(LeaderView::of);
        let now = Utc::now();
        let nodes = registry.list().await?.into_iter().map(|record| NodeView::of(record, now, heartbeat)).collect();
        let forgotten = registry.forgotten().await?;
        Ok(ClusterStatus { answered_by: answered_by.to_string(), leader, nodes, forgotten })
    }
}

impl NodeView {
    fn of(record: NodeRecord, now: DateTime<Utc>, heartbeat: Duration) -> NodeView {
        let lag = record.committed_before.map(|mark| (now.timestamp_micros() - mark).max(0) as f64 / 1e6);
        NodeView {
            seconds_since_seen: record.seconds_since_seen(now),
            alive: record.alive(now, heartbeat),
            commit_lag_seconds: lag,
            record,
        }
    }
}
