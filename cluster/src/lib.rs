//! Coordination of the nodes of a fimlake cluster through the object store they share.
//!
//! There is no consensus protocol of our own: the bucket's conditional writes are the one
//! primitive (`If-None-Match: *` to create, `If-Match: <etag>` to replace, as the Delta log
//! itself uses them). On them sit two things, both objects under `<table_url>/_cluster/`:
//!
//! - [`lease`]: the leader lease, `leader.json`. At most one node holds it at a time; its
//!   *epoch* rises by one at every change of holder and is the fencing token the holder puts
//!   in every Delta commit it makes, so a node that lost the lease cannot commit over a newer
//!   leader's work.
//! - [`nodes`]: one registration per node, `nodes/<node_id>.json`, rewritten every heartbeat:
//!   what `GET /v1/cluster` and `fimlake cluster status` show.
//! - [`roles`]: what a node does (`ingest`, `query`, `leader`); only nodes with the leader role
//!   compete for the lease.
//! - [`shared`]: values all nodes must agree on (the workspace id), written once.
//!
//! Expiry never compares two machines' clocks: a standby takes the lease over only after it
//! has seen the same version of `leader.json` unchanged for a whole `lease_ttl` on its own
//! monotonic clock, and the holder stops acting as leader well before `lease_ttl` has passed
//! since its last successful renewal began.

pub mod config;
pub mod error;
pub mod lease;
pub mod nodes;
pub mod roles;
pub mod shared;
pub mod status;

pub use config::ClusterConfig;
pub use error::ClusterError;
pub use lease::{LeaderGuard, Lease, LeaseRecord, Standing};
pub use nodes::{ForgottenNode, NodeRecord, NodeRole, Registry, commit_floor, mark_to_publish, query_workers};
pub use roles::{Role, Roles};
pub use status::{ClusterStatus, LeaderView, NodeView};

/// Where the cluster's objects live, relative to the table root.
pub const CLUSTER_DIR: &str = "_cluster";
