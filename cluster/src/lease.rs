//! The leader lease: one object, `_cluster/leader.json`, replaced only with conditional writes.
//!
//! - *Acquire*: create the object if there is none (`PutMode::Create`); else, once the version
//!   this node sees has stayed the same for `lease_ttl` on its own clock (the holder stopped
//!   renewing), or the holder released it, replace it with `epoch + 1` (`PutMode::Update` on
//!   that version). Of several standbys trying at once, the store lets exactly one succeed.
//! - *Renew*: the holder replaces its own version every `lease_ttl / 4`. It counts itself
//!   leader only until two thirds of `lease_ttl` after the start of its last successful renewal
//!   ([`LeaderGuard`]); a standby waits a whole `lease_ttl` after it first saw that version,
//!   which is later still, so the two never both act as leader.
//! - *Restart*: a lease stored in this node's own name is taken back at once, with a new epoch
//!   (node ids are unique, so the holder named there is this node's previous process).
//! - *Release*: at a clean stop the holder marks the record released, and a standby takes over
//!   at its next look instead of waiting out the TTL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{ClusterError, Result};

/// The content of `leader.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The node holding the lease.
    pub holder: String,
    /// Rises by one at every change of holder: the fencing token.
    pub epoch: u64,
    /// Where the holder is reached (its `cluster.advertise_url`).
    pub advertise_url: Option<String>,
    /// The holder's `lease_ttl`, in milliseconds (for display: standbys use their own).
    pub ttl_ms: u64,
    /// When the holder last renewed, by its clock (for display only).
    pub renewed_at: DateTime<Utc>,
    /// Set by a holder that stopped cleanly: the lease is free at once.
    pub released: bool,
}

/// Where this node stands after a [`Lease::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// This node holds the lease; leader work may go on until `valid_until`.
    Leader { epoch: u64, valid_until: Instant },
    /// This node held the lease and no longer does: all leader work must stop now.
    Lost { epoch: u64, reason: String },
    /// Another node holds the lease (or nobody could be read to).
    Follower { leader: Option<LeaseRecord> },
}

/// Shared with whatever does leader work: the epoch to fence commits with, while it is valid.
#[derive(Debug, Clone, Default)]
pub struct LeaderGuard {
    held: Arc<Mutex<Option<(u64, Instant)>>>,
}

impl LeaderGuard {
    /// The epoch this node leads in, or why it may not act as leader now.
    pub fn epoch(&self) -> std::result::Result<u64, String> {
        match *self.held.lock().expect("leader guard lock") {
            Some((epoch, until)) if Instant::now() < until => Ok(epoch),
            Some((epoch, _)) => Err(format!("the leader lease of epoch {epoch} could not be renewed in time")),
            None => Err("this node does not hold the leader lease".to_string()),
        }
    }

    fn set(&self, held: Option<(u64, Instant)>) {
        *self.held.lock().expect("leader guard lock") = held;
    }
}

#[derive(Debug, Clone)]
struct Held {
    epoch: u64,
    version: UpdateVersion,
    valid_until: Instant,
}

#[derive(Debug, Clone)]
struct Observed {
    version: UpdateVersion,
    since: Instant,
    record: LeaseRecord,
}

/// One node's side of the lease. Driven by one task calling [`Lease::step`] every
/// [`crate::ClusterConfig::renew_every`].
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    node_id: String,
    advertise_url: Option<String>,
    ttl: Duration,
    held: Option<Held>,
    observed: Option<Observed>,
    guard: LeaderGuard,
}

impl Lease {
    /// `store` is rooted at the cluster directory (`_cluster/`).
    pub fn new(store: Arc<dyn ObjectStore>, node_id: &str, advertise_url: Option<String>, ttl: Duration) -> Lease {
        assert!(!ttl.is_zero(), "a lease needs a TTL");
        Lease {
            store,
            path: Path::from("leader.json"),
            node_id: node_id.to_string(),
            advertise_url,
            ttl,
            held: None,
            observed: None,
            guard: LeaderGuard::default(),
        }
    }

    pub fn guard(&self) -> LeaderGuard {
        self.guard.clone()
    }

    /// Renews the lease if this node holds it, else tries to take it.
    pub async fn step(&mut self) -> Standing {
        let standing = match self.held.clone() {
            Some(held) => self.renew(held).await,
            None => self.try_acquire().await,
        };
        self.guard.set(match &standing {
            Standing::Leader { epoch, valid_until } => Some((*epoch, *valid_until)),
            _ => None,
        });
        standing
    }

    /// Marks the lease released (a clean stop), so that a standby need not wait out the TTL.
    pub async fn release(&mut self) -> Result<()> {
        self.guard.set(None);
        let Some(held) = self.held.take() else { return Ok(()) };
        let mut record = self.record(held.epoch);
        record.released = true;
        self.put(&record, PutMode::Update(held.version)).await?;
        Ok(())
    }

    /// The lease as stored, without taking part.
    pub async fn read(store: &dyn ObjectStore) -> Result<Option<LeaseRecord>> {
        Ok(read_versioned(store, &Path::from("leader.json")).await?.map(|(record, _)| record))
    }

    async fn renew(&mut self, held: Held) -> Standing {
        let started = Instant::now();
        let record = self.record(held.epoch);
        match self.put(&record, PutMode::Update(held.version.clone())).await {
            Ok(version) => {
                let valid_until = started + self.ttl * 2 / 3;
                self.held = Some(Held { epoch: held.epoch, version, valid_until });
                Standing::Leader { epoch: held.epoch, valid_until }
            }
            Err(ClusterError::Store(object_store::Error::Precondition { .. })) => {
                self.held = None;
                let reason = "another node replaced the lease (this node's renewals were too late)".to_string();
                Standing::Lost { epoch: held.epoch, reason }
            }
            Err(e) if started < held.valid_until => {
                tracing::warn!(error = %e, "renewing the leader lease failed; retrying");
                Standing::Leader { epoch: held.epoch, valid_until: held.valid_until }
            }
            Err(e) => {
                self.held = None;
                Standing::Lost { epoch: held.epoch, reason: format!("the lease could not be renewed in time: {e}") }
            }
        }
    }

    async fn try_acquire(&mut self) -> Standing {
        match self.acquire().await {
            Ok(standing) => standing,
            Err(e) => {
                tracing::warn!(error = %e, "reading the leader lease failed");
                Standing::Follower { leader: self.observed.as_ref().map(|o| o.record.clone()) }
            }
        }
    }

    async fn acquire(&mut self) -> Result<Standing> {
        let started = Instant::now();
        let (epoch, mode) = match self.read_current().await? {
            None => (1, PutMode::Create),
            Some((record, version)) => {
                if !self.expired(&record, &version, started) {
                    return Ok(Standing::Follower { leader: Some(record) });
                }
                (record.epoch + 1, PutMode::Update(version))
            }
        };
        match self.put(&self.record(epoch), mode).await {
            Ok(version) => {
                let valid_until = started + self.ttl * 2 / 3;
                self.held = Some(Held { epoch, version, valid_until });
                self.observed = None;
                tracing::info!(epoch, "this node took the leader lease");
                Ok(Standing::Leader { epoch, valid_until })
            }
            Err(ClusterError::Store(
                object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
            )) => Ok(Standing::Follower { leader: self.observed.as_ref().map(|o| o.record.clone()) }),
            Err(e) => Err(e),
        }
    }

    /// Whether the lease stored as `version` is free: released, seen unchanged for a TTL, or held
    /// in this node's name (by this node before a restart, or before renewals came too late:
    /// nobody acts on it, and the conditional write makes sure nobody took it meanwhile).
    fn expired(&mut self, record: &LeaseRecord, version: &UpdateVersion, now: Instant) -> bool {
        let same = self.observed.as_ref().is_some_and(|o| o.version == *version);
        if !same {
            self.observed = Some(Observed { version: version.clone(), since: now, record: record.clone() });
        }
        let since = self.observed.as_ref().map_or(now, |o| o.since);
        record.released || record.holder == self.node_id || now.duration_since(since) >= self.ttl
    }

    fn record(&self, epoch: u64) -> LeaseRecord {
        LeaseRecord {
            holder: self.node_id.clone(),
            epoch,
            advertise_url: self.advertise_url.clone(),
            ttl_ms: self.ttl.as_millis() as u64,
            renewed_at: Utc::now(),
            released: false,
        }
    }

    async fn put(&self, record: &LeaseRecord, mode: PutMode) -> Result<UpdateVersion> {
        let body = serde_json::to_vec(record).expect("a lease record serializes");
        let opts = PutOptions { mode, ..PutOptions::default() };
        let put = self.store.put_opts(&self.path, PutPayload::from(body), opts);
        let put = bounded(self.op_timeout(), put).await??;
        Ok(UpdateVersion { e_tag: put.e_tag, version: put.version })
    }

    /// How long one read or write of the lease may take: a renewal stuck on a dead connection
    /// must not outlast the lease (a write given up on that did land only makes the next
    /// renewal fail its condition, and this node take the lease back with a new epoch).
    fn op_timeout(&self) -> Duration {
        self.ttl / 4
    }

    async fn read_current(&self) -> Result<Option<(LeaseRecord, UpdateVersion)>> {
        bounded(self.op_timeout(), read_versioned(self.store.as_ref(), &self.path)).await?
    }
}

async fn bounded<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, work).await.map_err(|_| ClusterError::Timeout(limit))
}

async fn read_versioned(store: &dyn ObjectStore, path: &Path) -> Result<Option<(LeaseRecord, UpdateVersion)>> {
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
    let bytes = got.bytes().await?;
    let record = serde_json::from_slice(&bytes).map_err(|source| ClusterError::Corrupt {
        path: format!("_cluster/{path}"),
        what: "lease record",
        source,
    })?;
    Ok(Some((record, version)))
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
