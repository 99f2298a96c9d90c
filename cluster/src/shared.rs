//! Values every node of a cluster must agree on, kept once in the bucket: the first node to
//! write one wins (`PutMode::Create`), every other node reads it back.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::Result;

/// The cluster's value of `name` (an object under `_cluster/`): `proposed` if no node set it
/// before, else the value set first.
pub async fn agree(store: &dyn ObjectStore, name: &str, proposed: &str) -> Result<String> {
    let path = Path::from(name);
    let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    match store.put_opts(&path, PutPayload::from(proposed.to_string()), opts).await {
        Ok(_) => return Ok(proposed.to_string()),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let bytes = store.get(&path).await?.bytes().await?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn the_first_value_proposed_is_the_one_every_node_gets() {
        let store = InMemory::new();
        assert_eq!(agree(&store, "workspace-id", "ws-a").await.unwrap(), "ws-a");
        assert_eq!(agree(&store, "workspace-id", "ws-b").await.unwrap(), "ws-a");
        assert_eq!(agree(&store, "other", "x").await.unwrap(), "x", "values are kept apart by name");
    }
}
