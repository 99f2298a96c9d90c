/// What went wrong talking to the shared object store.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("the object store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{path} in the bucket is not a valid {what}: {source}")]
    Corrupt { path: String, what: &'static str, source: serde_json::Error },
}

pub type Result<T> = std::result::Result<T, ClusterError>;
