use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::roles::Roles;

/// `distribute_above_bytes` when unset: about five days of the benchmark's 100 busy machines'
/// changes (12 MiB of Parquet a day), so a week's hunt fans out and the last hours' do not.
pub const DEFAULT_DISTRIBUTE_ABOVE_BYTES: u64 = 64 << 20;

/// `[cluster]`: several nodes on one shared `storage.table_url`. Off unless `node_id` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (letters, digits, `.`, `_`, `-`; at most 64).
    /// Setting it turns cluster mode on.
    pub node_id: Option<String>,
    /// The URL operators and other nodes reach this node at, shown by `fimlake cluster status`
    /// and in a standby's answers (where to send writes).
    pub advertise_url: Option<String>,
    /// A leader whose lease has not been renewed for this long has lost it: a standby takes
    /// over after seeing it unchanged this long.
    #[serde(with = "fimlake_settings::duration")]
    pub lease_ttl: Duration,
    /// How often each node writes its registration (and a standby looks at the lease).
    #[serde(with = "fimlake_settings::duration")]
    pub heartbeat: Duration,
    /// What this node does: `all` (the default), or some of `ingest`, `query`, `leader`
    /// (`fimlake serve --role`).
    pub roles: Roles,
    /// A query node fans a query out over the cluster's query nodes when its scans read more
    /// files than this or more bytes than `distribute_above_bytes` (and more than one query
    /// node is alive); smaller queries run locally.
    pub distribute_above_files: usize,
    /// See `distribute_above_files`: a closed day is one file, so a month's scan is a few dozen
    /// large files.
    pub distribute_above_bytes: u64,
    /// Where a query node's worker (the gRPC endpoint other query nodes send plan fragments
    /// to) listens. Port 0 picks a free port. Keep it on a private network: it is guarded by
    /// the cluster's worker token only, without TLS.
    pub worker_listen: SocketAddr,
    /// The URL other query nodes reach this node's worker at; by default `http://` and the
    /// address `worker_listen` bound (which must then not be a wildcard address).
    pub worker_advertise_url: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            advertise_url: None,
            lease_ttl: Duration::from_secs(15),
            heartbeat: Duration::from_secs(2),
            roles: Roles::default(),
            distribute_above_files: 64,
            distribute_above_bytes: DEFAULT_DISTRIBUTE_ABOVE_BYTES,
            worker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            worker_advertise_url: None,
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        self.node_id.is_some()
    }

    /// `Err` with what is wrong, for the server's configuration check.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(id) = &self.node_id {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
                return Err(format!(
                    "cluster.node_id '{id}' must be 1 to 64 letters, digits, '.', '_' or '-' (it names an object in the bucket)"
                ));
            }
        }
        if self.node_id.is_none() && !self.roles.is_all() {
            return Err(format!(
                "cluster.roles is '{}' but cluster.node_id is not set: a node with some roles only is part of a cluster",
                self.roles
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err("cluster.lease_ttl must be at least 1s".to_string());
        }
        if self.heartbeat.is_zero() || self.heartbeat > self.lease_ttl {
            return Err("cluster.heartbeat must be above 0 and at most cluster.lease_ttl".to_string());
        }
        self.validate_worker()
    }

    /// The worker's address must be one other nodes can reach.
    fn validate_worker(&self) -> Result<(), String> {
        match &self.worker_advertise_url {
            Some(url) if !(url.starts_with("http://") && url.len() > "http://".len()) => Err(format!(
                "cluster.worker_advertise_url '{url}' must be an http:// URL (the worker port has no TLS: keep it on a private network)"
            )),
            None if self.worker_listen.ip().is_unspecified() => Err(format!(
                "cluster.worker_listen is {} (every interface): set cluster.worker_advertise_url to the address other query nodes reach this one at",
                self.worker_listen
            )),
            _ => Ok(()),
        }
    }

    /// How often the holder renews the lease: four times per `lease_ttl`.
    pub fn renew_every(&self) -> Duration {
        self.lease_ttl / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_name_objects_so_only_safe_characters_are_allowed() {
        let with = |id: &str| ClusterConfig { node_id: Some(id.to_string()), ..ClusterConfig::default() };
        assert!(with("fim-1.eu_west").validate().is_ok());
        for bad in ["", "a/b", "node 1", "../x", &"n".repeat(65)] {
            let e = with(bad).validate().unwrap_err();
            assert!(e.contains("cluster.node_id"), "{bad}: {e}");
        }
        let slow = ClusterConfig { heartbeat: Duration::from_secs(30), ..ClusterConfig::default() };
        assert!(slow.validate().unwrap_err().contains("cluster.heartbeat"));
        let alone = ClusterConfig { roles: "ingest".parse().unwrap(), ..ClusterConfig::default() };
        assert!(alone.validate().unwrap_err().contains("cluster.node_id is not set"));
        let wildcard = ClusterConfig { worker_listen: "0.0.0.0:7070".parse().unwrap(), ..ClusterConfig::default() };
        assert!(wildcard.validate().unwrap_err().contains("cluster.worker_advertise_url"));
        let advertised = ClusterConfig { worker_advertise_url: Some("http://10.0.0.5:7070".into()), ..wildcard };
        assert!(advertised.validate().is_ok());
        let tls = ClusterConfig { worker_advertise_url: Some("https://q1:7070".into()), ..advertised };
        assert!(tls.validate().unwrap_err().contains("must be an http:// URL"));
    }
}
