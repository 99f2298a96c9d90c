//! Flushes of a cluster's ingest nodes, committed by its leader.
//!
//! Several nodes committing every few seconds to one Delta table lose commits to conflicts
//! (delta-rs retries a conflict a few times without backoff), so in a cluster only the leader
//! commits. An ingest node writes each flush's Parquet files into the table's directory as any
//! flush does, then *stages* them: `<table_url>/_staged/<table>/<node>/<upto>.json` holds the
//! files' `add` actions and the WAL segments their rows come from (after segment `after`, up
//! to `upto`). The leader lists the staged flushes every refresh interval (sooner while
//! ingest nodes keep staging) and commits all it finds for a table in one Delta commit, recording under each node's WAL application id the
//! segment its files reach; then it deletes them. The node waits until the table records that
//! segment, and only then trims its WAL.
//!
//! Exactly once rests on those recorded segments, which the Delta log changes atomically with
//! the files: a staged flush is committed only when its node's recorded segment is exactly its
//! `after` (its rows follow the committed ones, no gap, no overlap), and deleted without a
//! commit once the recorded segment has reached its `upto` (committed already). A node that
//! starts again waits until none of its staged flushes is left before it reads which segments
//! are committed and replays the rest from its WAL, so what it staged before a crash is never
//! staged a second time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake_core::kernel::Add;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// Where staged flushes live, beside the tables.
pub const STAGED_DIR: &str = "_staged";

/// One flush of one ingest node, written to the bucket and waiting for the leader's commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedFlush {
    pub node_id: String,
    /// The Delta `txn` application id the node's committed segments are recorded under.
    pub wal_app_id: String,
    /// The last WAL segment of the node committed when it staged this (`None`: none yet).
    pub after: Option<u64>,
    /// The last WAL segment whose rows the files hold.
    pub upto: u64,
    pub rows: usize,
    pub staged_at: DateTime<Utc>,
    pub adds: Vec<Add>,
}

/// The staged flushes in the bucket; `store` is rooted at [`STAGED_DIR`].
#[derive(Clone)]
pub struct Staging {
    store: Arc<dyn ObjectStore>,
}

impl Staging {
    pub fn new(store: Arc<dyn ObjectStore>) -> Staging {
        Staging { store }
    }

    fn path(table: &str, node_id: &str, upto: u64) -> Path {
        Path::from(format!("{table}/{node_id}/{upto:020}.json"))
    }

    /// Writes (or rewrites, after a failed attempt) a staged flush.
    pub async fn put(&self, table: &str, flush: &StagedFlush) -> Result<()> {
        let body = serde_json::to_vec(flush).expect("a staged flush serializes");
        self.store.put(&Staging::path(table, &flush.node_id, flush.upto), PutPayload::from(body)).await?;
        Ok(())
    }

    /// Whether the staged flush of `node_id` up to `upto` is still waiting.
    pub async fn exists(&self, table: &str, node_id: &str, upto: u64) -> Result<bool> {
        match self.store.head(&Staging::path(table, node_id, upto)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How many staged flushes of `node_id` for `table` are waiting.
    pub async fn count_of(&self, table: &str, node_id: &str) -> Result<usize> {
        let prefix = Path::from(format!("{table}/{node_id}"));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas.len())
    }

    /// Every staged flush of `table`, read.
    pub async fn list(&self, table: &str) -> Result<Vec<(Path, StagedFlush)>> {
        let metas: Vec<_> = self.store.list(Some(&Path::from(table))).try_collect().await?;
        let mut found = Vec::with_capacity(metas.len());
        for meta in metas {
            let bytes = match self.store.get(&meta.location).await {
                Ok(got) => got.bytes().await?,
                // Deleted between the listing and the read (committed by an earlier round).
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let flush = serde_json::from_slice(&bytes).map_err(|e| {
                StorageError::Config(format!("staged flush {STAGED_DIR}/{} is damaged: {e}", meta.location))
            })?;
            found.push((meta.location, flush));
        }
        Ok(found)
    }

    /// Deletes a staged flush (gone already is fine).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What the leader does with the staged flushes it found for one table.
#[derive(Debug, Default)]
pub struct Plan {
    /// Commit these (at most one per node), then delete them.
    pub commit: Vec<(Path, StagedFlush)>,
    /// Committed before (the node's recorded segment reached their `upto`): delete.
    pub done: Vec<Path>,
    /// Neither: their rows do not follow the node's committed ones. Delete, so the node
    /// stages its rows again from what is committed.
    pub discard: Vec<(Path, String)>,
}

/// Decides, from each node's recorded WAL segment (`committed`, by application id), which
/// staged flushes to commit. A node's flushes are committed as a chain: the one that follows
/// its recorded segment, the one that follows that one, and so on; a flush after a break in the
/// chain waits for the next round (which sets it aside if it still does not follow).
pub fn plan(found: Vec<(Path, StagedFlush)>, committed: &HashMap<String, Option<u64>>) -> Plan {
    let mut by_node: BTreeMap<String, Vec<(Path, StagedFlush)>> = BTreeMap::new();
    for (path, flush) in found {
        by_node.entry(flush.wal_app_id.clone()).or_default().push((path, flush));
    }
    let mut plan = Plan::default();
    for (app_id, mut flushes) in by_node {
        flushes.sort_by_key(|(_, f)| f.upto);
        let recorded = committed.get(&app_id).copied().flatten();
        let mut chain_end = recorded;
        let mut taken = false;
        for (path, flush) in flushes {
            if recorded.is_some_and(|r| r >= flush.upto) {
                plan.done.push(path);
            } else if flush.after == chain_end {
                taken = true;
                chain_end = Some(flush.upto);
                plan.commit.push((path, flush));
            } else if taken {
                continue;
            } else {
                let reason = format!(
                    "its rows follow WAL segment {:?} but the table records {recorded:?} for {app_id}",
                    flush.after
                );
                plan.discard.push((path, reason));
            }
        }
    }
    plan
}

/// The WAL segment each node's committed flushes reach, by application id: what the commit
/// records.
pub fn segments_reached(commit: &[(Path, StagedFlush)]) -> Vec<(String, u64)> {
    let mut reached: BTreeMap<String, u64> = BTreeMap::new();
    for (_, flush) in commit {
        let upto = reached.entry(flush.wal_app_id.clone()).or_insert(flush.upto);
        *upto = (*upto).max(flush.upto);
    }
    reached.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn staged(node: &str, after: Option<u64>, upto: u64) -> StagedFlush {
        StagedFlush {
            node_id: node.to_string(),
            wal_app_id: format!("fimlake-wal/{node}"),
            after,
            upto,
            rows: 1,
            staged_at: Utc::now(),
            adds: vec![Add { path: format!("part-{node}-{upto}.parquet"), ..Add::default() }],
        }
    }

    fn found(flushes: &[StagedFlush]) -> Vec<(Path, StagedFlush)> {
        flushes.iter().map(|f| (Staging::path("T", &f.node_id, f.upto), f.clone())).collect()
    }

    #[test]
    fn a_staged_flush_is_committed_only_right_after_its_nodes_committed_segment() {
        let committed = HashMap::from([
            ("fimlake-wal/a".to_string(), Some(4)),
            ("fimlake-wal/b".to_string(), Some(9)),
            ("fimlake-wal/c".to_string(), Some(2)),
        ]);
        let plan = plan(
            found(&[
                staged("a", Some(4), 7),   // follows a's segment 4: commit
                staged("a", Some(7), 9),   // follows the one above: commit with it
                staged("a", Some(10), 12), // a break in a's chain: next round
                staged("b", Some(6), 9),   // b records 9 already: committed before
                staged("c", Some(1), 5),   // overlaps c's committed segment 2: set aside
                staged("d", None, 3),      // d has committed nothing yet: commit
            ]),
            &committed,
        );
        let uptos = |v: &[(Path, StagedFlush)]| v.iter().map(|(_, f)| (f.node_id.clone(), f.upto)).collect::<Vec<_>>();
        assert_eq!(uptos(&plan.commit), vec![("a".to_string(), 7), ("a".to_string(), 9), ("d".to_string(), 3)]);
        assert_eq!(plan.done, vec![Staging::path("T", "b", 9)]);
        assert_eq!(plan.discard.len(), 1);
        assert!(plan.discard[0].1.contains("records Some(2)"), "{}", plan.discard[0].1);
        assert_eq!(
            segments_reached(&plan.commit),
            vec![("fimlake-wal/a".to_string(), 9), ("fimlake-wal/d".to_string(), 3)]
        );
    }

    #[test]
    fn a_chain_is_set_aside_from_the_flush_that_does_not_follow_the_recorded_segment() {
        let committed = HashMap::from([("fimlake-wal/a".to_string(), Some(4))]);
        let plan = plan(found(&[staged("a", Some(5), 7), staged("a", Some(7), 9)]), &committed);
        assert!(plan.commit.is_empty());
        assert_eq!(plan.discard.len(), 2, "the second follows the first, which is set aside");
    }

    #[tokio::test]
    async fn staged_flushes_are_listed_per_table_and_counted_per_node() {
        let staging = Staging::new(Arc::new(InMemory::new()));
        staging.put("T", &staged("a", None, 3)).await.unwrap();
        staging.put("T", &staged("b", None, 1)).await.unwrap();
        staging.put("U", &staged("a", None, 2)).await.unwrap();
        assert_eq!(staging.list("T").await.unwrap().len(), 2);
        assert_eq!(staging.count_of("T", "a").await.unwrap(), 1);
        assert!(staging.exists("T", "a", 3).await.unwrap());
        staging.delete(&Staging::path("T", "a", 3)).await.unwrap();
        staging.delete(&Staging::path("T", "a", 3)).await.unwrap();
        assert!(!staging.exists("T", "a", 3).await.unwrap());
        assert_eq!(staging.count_of("T", "a").await.unwrap(), 0);
    }
}
