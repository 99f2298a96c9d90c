//! This node's registration in the bucket, and on the leader the other nodes' commit floor.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fimlake_cluster::{NodeRecord, NodeRole, Registry, commit_floor, mark_to_publish};
use fimlake_storage::Storage;

/// This node's registration, written at every change of role and every heartbeat.
#[derive(Clone)]
pub(crate) struct Membership {
    pub(super) registry: Registry,
    record: Arc<Mutex<NodeRecord>>,
    pub(super) heartbeat: Duration,
    /// The node's storage once open: an ingest node publishes what it has committed.
    storage: Arc<OnceLock<Arc<Storage>>>,
}

impl Membership {
    pub(super) fn new(registry: Registry, cfg: &fimlake_cluster::ClusterConfig, node_id: &str) -> Membership {
        let record = NodeRecord {
            node_id: node_id.to_string(),
            role: NodeRole::Starting,
            roles: cfg.roles,
            advertise_url: cfg.advertise_url.clone(),
            epoch: None,
            started_at: chrono::Utc::now(),
            last_seen: chrono::Utc::now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            committed_before: None,
            worker_url: None,
        };
        Membership { registry, record: Arc::new(Mutex::new(record)), heartbeat: cfg.heartbeat, storage: Arc::default() }
    }

    pub(super) async fn set(&self, role: NodeRole, epoch: Option<u64>) -> fimlake_cluster::error::Result<()> {
        {
            let mut record = self.record.lock().expect("node record lock");
            record.role = role;
            record.epoch = epoch;
        }
        self.publish().await
    }

    /// A query node's worker is up: other query nodes may send it plan fragments.
    pub(super) async fn set_worker_url(&self, url: String) -> fimlake_cluster::error::Result<()> {
        self.record.lock().expect("node record lock").worker_url = Some(url);
        self.publish().await
    }

    /// Writes the registration, with the node's commit mark ([`mark_to_publish`]).
    async fn publish(&self) -> fimlake_cluster::error::Result<()> {
        let mut record = self.record.lock().expect("node record lock").clone();
        record.committed_before = mark_to_publish(&record, self.storage.get().map(|s| s.committed_before()));
        self.record.lock().expect("node record lock").committed_before = record.committed_before;
        self.registry.publish(&mut record).await
    }

    /// Before this node's first registration: a node that died with records not committed
    /// keeps holding the leader's alert windows where its last registration held them, until
    /// its storage is open and says what it holds now.
    pub(super) async fn keep_previous_hold(&self) -> fimlake_cluster::error::Result<()> {
        let node_id = self.node_id();
        let previous = self.registry.list().await?.into_iter().find(|n| n.node_id == node_id);
        if let Some(hold) = previous.and_then(|n| n.committed_before) {
            self.record.lock().expect("node record lock").committed_before = Some(hold);
        }
        Ok(())
    }

    /// Once everything the node's WAL held is committed (a leader candidate commits it before
    /// it waits as a standby): it holds nothing back any more.
    pub(super) fn clear_hold(&self) {
        self.record.lock().expect("node record lock").committed_before = None;
    }

    /// Called once the node's storage is open. On the leader, the other nodes' commit floor
    /// bounds its alert windows from now on, read once before it returns and then every
    /// heartbeat.
    pub(crate) async fn track(&self, storage: &Arc<Storage>, leading: bool) {
        let _ = self.storage.set(storage.clone());
        if !leading {
            return;
        }
        // Until the nodes' marks are read, nothing another node received is known committed:
        // alert windows wait (the epoch, not `i64::MIN`: windows subtract from it). The
        // storage's own default says that no other node holds records.
        storage.set_cluster_floor(0);
        self.update_floor(storage).await;
        let (me, storage) = (self.clone(), storage.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(me.heartbeat).await;
                me.update_floor(&storage).await;
            }
        });
    }

    async fn update_floor(&self, storage: &Storage) {
        match self.registry.list().await {
            Ok(nodes) => storage.set_cluster_floor(commit_floor(&nodes, &self.node_id()).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!(error = %e, "reading the nodes' commit marks failed; alert windows wait"),
        }
    }

    pub(super) fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(me.heartbeat).await;
                if let Err(e) = me.publish().await {
                    tracing::warn!(error = %e, "writing this node's registration in the bucket failed");
                }
            }
        })
    }

    pub(super) fn node_id(&self) -> String {
        self.record.lock().expect("node record lock").node_id.clone()
    }
}
