//! The nodes' registrations: `_cluster/nodes/<node_id>.json`, each written only by its node,
//! every heartbeat. A registration older than three heartbeats means the node is gone (or cut
//! off from the bucket).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{ClusterError, Result};
use crate::roles::{Role, Roles};

/// What a node does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Committing what it replayed from its WAL before it joins (after a restart).
    Starting,
    /// Holds the lease: takes records, commits, maintains the tables, evaluates alert rules.
    Leader,
    /// Waits for the lease; refuses writes, naming the leader.
    Standby,
    /// Serves its roles without the leader's: an ingest or query node.
    Serving,
    /// Stopped cleanly (a registration left by a node that died keeps its last role).
    Stopped,
}

/// One node's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub role: NodeRole,
    /// What it does (registrations written before roles existed read as `all`).
    #[serde(default)]
    pub roles: Roles,
    pub advertise_url: Option<String>,
    /// The lease epoch it leads in, when it is the leader.
    pub epoch: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The fimlake release it runs.
    pub version: String,
    /// An ingest node: every record it received before this instant (µs since the epoch, by
    /// its clock) is committed. `None`: it holds no uncommitted record (not an ingest node, or
    /// stopped cleanly with everything committed). A node that died keeps its last value, and
    /// so holds the leader's alert windows back until it returns or is forgotten.
    #[serde(default)]
    pub committed_before: Option<i64>,
    /// A query node: where its worker takes plan fragments from the other query nodes
    /// (registrations written before distributed queries have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_url: Option<String>,
}

impl NodeRecord {
    /// Seconds between `now` and the registration's last writing (0 if written later).
    pub fn seconds_since_seen(&self, now: DateTime<Utc>) -> f64 {
        (now - self.last_seen).num_milliseconds().max(0) as f64 / 1000.0
    }

    /// Whether the node wrote its registration within the last three `heartbeat`s.
    pub fn alive(&self, now: DateTime<Utc>, heartbeat: std::time::Duration) -> bool {
        self.seconds_since_seen(now) <= 3.0 * heartbeat.as_secs_f64()
    }
}

/// A node an operator declared gone (`fimlake cluster forget`): its last registration, kept.
/// Its `committed_before` says from when on its acknowledged records may be missing from the
/// tables (they are in its WAL) and from the leader's alert windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgottenNode {
    pub registration: NodeRecord,
    pub forgotten_at: DateTime<Utc>,
}

/// Reads and writes the registrations; `store` is rooted at the cluster directory.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn ObjectStore>,
}

impl Registry {
    pub fn new(store: Arc<dyn ObjectStore>) -> Registry {
        Registry { store }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes this node's registration (stamping `last_seen`).
    pub async fn publish(&self, record: &mut NodeRecord) -> Result<()> {
        record.last_seen = Utc::now();
        let body = serde_json::to_vec(record).expect("a node record serializes");
        self.store.put(&node_path(&record.node_id), PutPayload::from(body)).await?;
        Ok(())
    }

    /// Removes a node's registration (a machine taken out of the cluster for good), first
    /// recording it under `forgotten/<node_id>.json` (what it was, when it was forgotten);
    /// `None` when there was none.
    pub async fn forget(&self, node_id: &str) -> Result<Option<ForgottenNode>> {
        let path = node_path(node_id);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let registration: NodeRecord = serde_json::from_slice(&bytes).map_err(|source| ClusterError::Corrupt {
            path: format!("_cluster/{path}"),
            what: "node registration",
            source,
        })?;
        let forgotten = ForgottenNode { registration, forgotten_at: Utc::now() };
        let body = serde_json::to_vec(&forgotten).expect("a forgotten node serializes");
        self.store.put(&Path::from(format!("forgotten/{node_id}.json")), PutPayload::from(body)).await?;
        self.store.delete(&path).await?;
        Ok(Some(forgotten))
    }

    /// The nodes forgotten so far (the latest time for each), by node id.
    pub async fn forgotten(&self) -> Result<Vec<ForgottenNode>> {
        let mut nodes: Vec<ForgottenNode> = self.read_all("forgotten", "forgotten node").await?;
        nodes.sort_by(|a, b| a.registration.node_id.cmp(&b.registration.node_id));
        Ok(nodes)
    }

    /// Every registration, by node id.
    pub async fn list(&self) -> Result<Vec<NodeRecord>> {
        let mut nodes: Vec<NodeRecord> = self.read_all("nodes", "node registration").await?;
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    /// Every object under `dir`, read as JSON (`what` names them in errors); one removed
    /// between the listing and its read is left out.
    async fn read_all<T: serde::de::DeserializeOwned>(&self, dir: &str, what: &'static str) -> Result<Vec<T>> {
        let metas: Vec<_> = self.store.list(Some(&Path::from(dir))).try_collect().await?;
        let mut read = Vec::with_capacity(metas.len());
        for meta in metas {
            let bytes = match self.store.get(&meta.location).await {
                Ok(got) => got.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let value = serde_json::from_slice(&bytes).map_err(|source| ClusterError::Corrupt {
                path: format!("_cluster/{}", meta.location),
                what,
                source,
            })?;
            read.push(value);
        }
        Ok(read)
    }
}

/// The `committed_before` mark a node writes in its registration, given the mark its open
/// storage gives (`None` while it is not open). A node taking records (serving, or leading with
/// the ingest role) publishes its storage's mark; until its storage is open it keeps the mark
/// it had (a restarted node holds the windows where its last life left them); a clean stop
/// publishes none.
pub fn mark_to_publish(record: &NodeRecord, storage_mark: Option<i64>) -> Option<i64> {
    match record.role {
        NodeRole::Stopped => None,
        NodeRole::Serving | NodeRole::Leader if record.roles.has(Role::Ingest) => {
            storage_mark.or(record.committed_before)
        }
        _ => record.committed_before,
    }
}

/// The workers a query may fan out over: the worker URLs of the query nodes serving now whose
/// registration was written within the last three `heartbeat`s (as `fimlake cluster status`
/// counts a node alive), sorted.
pub fn query_workers(nodes: &[NodeRecord], now: DateTime<Utc>, heartbeat: std::time::Duration) -> Vec<String> {
    let mut urls: Vec<String> = nodes
        .iter()
        .filter(|n| matches!(n.role, NodeRole::Serving | NodeRole::Leader) && n.roles.has(Role::Query))
        .filter(|n| n.alive(now, heartbeat))
        .filter_map(|n| n.worker_url.clone())
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Where the leader's per-row alert windows may end for the other nodes' records: the lowest
/// `committed_before` of the registered nodes other than `leader`; `None` when none holds any.
pub fn commit_floor(nodes: &[NodeRecord], leader: &str) -> Option<i64> {
    nodes.iter().filter(|n| n.node_id != leader).filter_map(|n| n.committed_before).min()
}

fn node_path(node_id: &str) -> Path {
    Path::from(format!("nodes/{node_id}.json"))
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn record(id: &str, role: NodeRole) -> NodeRecord {
        NodeRecord {
            node_id: id.to_string(),
            role,
            roles: Roles::default(),
            advertise_url: None,
            epoch: None,
            started_at: Utc::now(),
            last_seen: DateTime::<Utc>::MIN_UTC,
            version: "0.1.0".to_string(),
            committed_before: None,
            worker_url: None,
        }
    }

    #[test]
    fn queries_fan_out_over_the_query_nodes_serving_now_and_seen_lately() {
        let now = Utc::now();
        let node = |id: &str, role: NodeRole, roles: &str, seen_secs_ago: i64| NodeRecord {
            roles: roles.parse().unwrap(),
            last_seen: now - chrono::Duration::seconds(seen_secs_ago),
            worker_url: Some(format!("http://{id}:7070")),
            ..record(id, role)
        };
        let nodes = vec![
            node("q2", NodeRole::Serving, "query", 1),
            node("q1", NodeRole::Serving, "query", 0),
            node("all", NodeRole::Leader, "all", 2),
            node("ingest", NodeRole::Serving, "ingest", 0),
            node("standby", NodeRole::Standby, "all", 0),
            node("stopped", NodeRole::Stopped, "query", 0),
            node("silent", NodeRole::Serving, "query", 7),
            NodeRecord { worker_url: None, ..node("old", NodeRole::Serving, "query", 0) },
        ];
        let workers = query_workers(&nodes, now, std::time::Duration::from_secs(2));
        assert_eq!(workers, vec!["http://all:7070", "http://q1:7070", "http://q2:7070"]);
    }

    #[test]
    fn the_commit_floor_is_the_lowest_other_nodes_mark_and_a_dead_nodes_mark_holds_it() {
        let with =
            |id: &str, role: NodeRole, mark: Option<i64>| NodeRecord { committed_before: mark, ..record(id, role) };
        let nodes = vec![
            with("leader", NodeRole::Leader, Some(10)),
            with("ingest-1", NodeRole::Serving, Some(500)),
            with("ingest-2", NodeRole::Serving, Some(300)),
            with("query", NodeRole::Serving, None),
        ];
        assert_eq!(commit_floor(&nodes, "leader"), Some(300), "the leader's own mark does not count");
        let mut gone = nodes.clone();
        gone[2].role = NodeRole::Stopped;
        gone[2].committed_before = None;
        assert_eq!(commit_floor(&gone, "leader"), Some(500), "a clean stop holds nothing");
        assert_eq!(commit_floor(&gone[..1], "leader"), None);
    }

    #[tokio::test]
    async fn each_node_sees_every_registration_with_its_latest_role() {
        let registry = Registry::new(Arc::new(InMemory::new()));
        let mut b = record("b", NodeRole::Standby);
        registry.publish(&mut b).await.unwrap();
        registry.publish(&mut record("a", NodeRole::Leader)).await.unwrap();
        assert!(b.last_seen > DateTime::<Utc>::MIN_UTC, "publishing stamps last_seen");
        b.role = NodeRole::Leader;
        registry.publish(&mut b).await.unwrap();
        let nodes = registry.list().await.unwrap();
        let seen: Vec<(&str, NodeRole)> = nodes.iter().map(|n| (n.node_id.as_str(), n.role)).collect();
        assert_eq!(seen, vec![("a", NodeRole::Leader), ("b", NodeRole::Leader)]);
        let forgotten = registry.forget("b").await.unwrap().expect("b was registered");
        assert_eq!(forgotten.registration.node_id, "b");
        assert!(registry.forget("b").await.unwrap().is_none(), "forgotten already");
        assert_eq!(registry.forgotten().await.unwrap(), vec![forgotten], "the forgetting is recorded");
        let left: Vec<String> = registry.list().await.unwrap().into_iter().map(|n| n.node_id).collect();
        assert_eq!(left, vec!["a"]);
    }

    #[test]
    fn a_node_taking_records_publishes_its_storages_mark_and_keeps_its_last_until_it_has_one() {
        let with = |role: NodeRole, roles: &str, mark: Option<i64>| NodeRecord {
            roles: roles.parse().unwrap(),
            committed_before: mark,
            ..record("n", role)
        };
        assert_eq!(mark_to_publish(&with(NodeRole::Serving, "ingest", Some(5)), Some(9)), Some(9));
        assert_eq!(mark_to_publish(&with(NodeRole::Serving, "ingest", Some(5)), None), Some(5), "restarting");
        assert_eq!(mark_to_publish(&with(NodeRole::Starting, "ingest", Some(5)), Some(9)), Some(5));
        assert_eq!(mark_to_publish(&with(NodeRole::Leader, "all", None), Some(9)), Some(9), "a leader taking records");
        assert_eq!(mark_to_publish(&with(NodeRole::Leader, "leader", None), Some(9)), None);
        assert_eq!(
            mark_to_publish(&with(NodeRole::Serving, "query", None), Some(9)),
            None,
            "a query node takes no records"
        );
        assert_eq!(mark_to_publish(&with(NodeRole::Stopped, "ingest", Some(5)), Some(9)), None, "a clean stop");
    }

    #[test]
    fn a_registration_written_before_roles_reads_as_a_node_doing_everything_and_holding_nothing() {
        // As the release before roles wrote it.
        let old = r#"{"node_id":"a","role":"leader","advertise_url":null,"epoch":3,
            "started_at":"2026-12-01T10:00:00Z","last_seen":"2026-12-01T10:05:00Z","version":"0.1.0"}"#;
        let record: NodeRecord = serde_json::from_str(old).unwrap();
        assert!(record.roles.is_all());
        assert_eq!((record.role, record.epoch, record.committed_before), (NodeRole::Leader, Some(3), None));
    }

    #[tokio::test]
    async fn a_damaged_registration_is_an_error_naming_its_object() {
        let store = Arc::new(InMemory::new());
        store.put(&Path::from("nodes/x.json"), PutPayload::from_static(b"{not json")).await.unwrap();
        let e = Registry::new(store).list().await.unwrap_err().to_string();
        assert!(e.contains("_cluster/nodes/x.json") && e.contains("node registration"), "{e}");
    }
}
