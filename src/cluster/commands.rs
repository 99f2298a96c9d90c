//! `fimlake cluster status` and `fimlake cluster forget`: the cluster as the bucket shows it,
//! read with a node's configuration (so they work while no node serves).

use anyhow::Context;
use fimlake_cluster::{CLUSTER_DIR, ClusterStatus, NodeRole, Registry};

use crate::config::Config;

/// `fimlake cluster status`: the cluster as the bucket shows it, read with this node's
/// configuration (so it works while no node serves).
pub async fn print_status(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let (_, status) = read_status(cfg).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print!("{}", render(&status));
    Ok(())
}

/// The cluster as the bucket shows it, read with a node's configuration.
async fn read_status(cfg: &Config) -> anyhow::Result<(Registry, ClusterStatus)> {
    anyhow::ensure!(cfg.cluster.enabled(), "cluster.node_id is not set: this configuration is not a cluster node's");
    let registry = Registry::new(fimlake_storage::store_beside_tables(&cfg.storage, CLUSTER_DIR)?);
    let me = cfg.cluster.node_id.clone().unwrap_or_default();
    let status = ClusterStatus::read(&registry, &me, cfg.cluster.heartbeat)
        .await
        .context("reading the cluster's state from the bucket")?;
    Ok((registry, status))
}

/// `fimlake cluster forget NODE`: removes the registration of a node that is gone for good.
pub async fn forget(cfg: &Config, node_id: &str) -> anyhow::Result<()> {
    let (registry, status) = read_status(cfg).await?;
    let Some(node) = status.nodes.iter().find(|n| n.record.node_id == node_id) else {
        anyhow::bail!("no node '{node_id}' is registered (fimlake cluster status lists them)");
    };
    anyhow::ensure!(
        !node.alive || node.record.role == NodeRole::Stopped,
        "node '{node_id}' was seen {:.1} s ago: stop it before forgetting it",
        node.seconds_since_seen
    );
    let forgotten = registry.forget(node_id).await.context("removing the registration from the bucket")?;
    tracing::info!(node = node_id, "forgot a node's registration (recorded in _cluster/forgotten/)");
    println!("forgot node {node_id}");
    if let Some(mark) = forgotten.and_then(|f| f.registration.committed_before) {
        println!(
            "node {node_id} held records received from {} on that were not committed: they stay in its WAL, and the leader's alert rules no longer wait for them",
            fimlake_alerting::notify::datetime(mark)
        );
    }
    Ok(())
}

fn render(status: &ClusterStatus) -> String {
    let mut out = String::new();
    match &status.leader {
        Some(l) if l.released => {
            out.push_str(&format!("leader: none (node {} released the lease, epoch {})\n", l.node_id, l.epoch))
        }
        Some(l) => out.push_str(&format!(
            "leader: {} (epoch {}, lease renewed {}, expires {}{})\n",
            l.node_id,
            l.epoch,
            l.renewed_at.format("%Y-%m-%dT%H:%M:%SZ"),
            l.lease_expires_at.format("%Y-%m-%dT%H:%M:%SZ"),
            l.advertise_url.as_ref().map(|u| format!(", {u}")).unwrap_or_default()
        )),
        None => out.push_str("leader: none yet\n"),
    }
    out.push_str(&format!(
        "{:<24} {:<9} {:<20} {:<6} {:>10} {:>10}  {}\n",
        "NODE", "STATE", "ROLES", "ALIVE", "SEEN (s)", "LAG (s)", "URL"
    ));
    for n in &status.nodes {
        let role = match n.record.role {
            NodeRole::Starting => "starting",
            NodeRole::Leader => "leader",
            NodeRole::Standby => "standby",
            NodeRole::Serving => "serving",
            NodeRole::Stopped => "stopped",
        };
        out.push_str(&format!(
            "{:<24} {:<9} {:<20} {:<6} {:>10.1} {:>10}  {}\n",
            n.record.node_id,
            role,
            n.record.roles.to_string(),
            if n.alive { "yes" } else { "NO" },
            n.seconds_since_seen,
            n.commit_lag_seconds.map_or("-".to_string(), |lag| format!("{lag:.1}")),
            n.record.advertise_url.as_deref().unwrap_or("-")
        ));
    }
    for f in &status.forgotten {
        let held = f
            .registration
            .committed_before
            .map(|mark| format!("; it held records from {}", fimlake_alerting::notify::datetime(mark)));
        out.push_str(&format!(
            "forgotten: {} at {}{}\n",
            f.registration.node_id,
            f.forgotten_at.format("%Y-%m-%dT%H:%M:%SZ"),
            held.unwrap_or_default()
        ));
    }
    out
}
