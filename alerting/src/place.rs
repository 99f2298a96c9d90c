//! Where the alerting engine keeps its files (rule states, the outbox): a directory of the
//! node (written atomically and fsynced, [`crate::store`]), or a cluster's bucket, so that the
//! next leader resumes the rules and delivers what the last one had not. Every call blocks:
//! call from a blocking thread (`spawn_blocking`).

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, Clone)]
pub enum Place {
    Dir(PathBuf),
    /// Objects under `prefix` in `store`; `runtime` runs the store's calls.
    Bucket {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        runtime: tokio::runtime::Handle,
    },
}

impl Place {
    /// Objects under `store`'s root; call from within the runtime that will run its calls.
    pub fn in_bucket(store: Arc<dyn ObjectStore>) -> Place {
        Place::Bucket { store, prefix: ObjectPath::default(), runtime: tokio::runtime::Handle::current() }
    }

    /// A place inside this one.
    pub fn child(&self, name: &str) -> Place {
        match self {
            Place::Dir(dir) => Place::Dir(dir.join(name)),
            Place::Bucket { store, prefix, runtime } => {
                Place::Bucket { store: store.clone(), prefix: prefix.clone().join(name), runtime: runtime.clone() }
            }
        }
    }

    /// Where `name` is, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            Place::Dir(dir) => dir.join(name).display().to_string(),
            Place::Bucket { prefix, .. } => format!("the bucket's {}", prefix.clone().join(name)),
        }
    }

    /// The content of `name`, `None` when there is none.
    pub fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            Place::Dir(dir) => match std::fs::read(dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Place::Bucket { store, prefix, runtime } => {
                let path = prefix.clone().join(name);
                match runtime.block_on(async { store.get(&path).await?.bytes().await }) {
                    Ok(bytes) => Ok(Some(bytes.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
        }
    }

    /// The contents of `names` (those that exist), read at once from a bucket.
    pub fn read_many(&self, names: &[String]) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        const AT_ONCE: usize = 32;
        let found: Vec<(String, Option<Vec<u8>>)> = match self {
            Place::Dir(_) => names.iter().map(|n| Ok((n.clone(), self.read(n)?))).collect::<std::io::Result<_>>()?,
            Place::Bucket { store, prefix, runtime } => runtime.block_on(async {
                futures::stream::iter(names.iter().cloned())
                    .map(|name| async move {
                        match store.get(&prefix.clone().join(name.as_str())).await {
                            Ok(got) => Ok((name, Some(got.bytes().await.map_err(std::io::Error::other)?.to_vec()))),
                            Err(object_store::Error::NotFound { .. }) => Ok((name, None)),
                            Err(e) => Err(std::io::Error::other(e)),
                        }
                    })
                    .buffered(AT_ONCE)
                    .try_collect()
                    .await
            })?,
        };
        Ok(found.into_iter().filter_map(|(name, bytes)| Some((name, bytes?))).collect())
    }

    /// Replaces `name` with `bytes`, atomically and durably.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Place::Dir(dir) => crate::store::write_atomic(&dir.join(name), bytes),
            Place::Bucket { store, prefix, runtime } => runtime
                .block_on(store.put(&prefix.clone().join(name), PutPayload::from(bytes.to_vec())))
                .map(|_| ())
                .map_err(std::io::Error::other),
        }
    }

    /// Removes `name`; none is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match self {
            Place::Dir(dir) => crate::store::remove_durable(&dir.join(name)),
            Place::Bucket { store, prefix, runtime } => {
                match runtime.block_on(store.delete(&prefix.clone().join(name))) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
        }
    }

    /// The names ending in `.json` directly in this place (not in places inside it).
    pub fn json_names(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        match self {
            Place::Dir(dir) => {
                std::fs::create_dir_all(dir)?;
                for entry in std::fs::read_dir(dir)? {
                    names.push(entry?.file_name().to_string_lossy().to_string());
                }
            }
            Place::Bucket { store, prefix, runtime } => {
                let listed =
                    runtime.block_on(store.list_with_delimiter(Some(prefix))).map_err(std::io::Error::other)?;
                names.extend(listed.objects.into_iter().filter_map(|o| o.location.filename().map(str::to_string)));
            }
        }
        names.retain(|n| n.ends_with(".json") && !n.starts_with('.'));
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn write_read_list_remove(place: Place) {
        assert_eq!(place.read("a.json").unwrap(), None);
        place.write("a.json", b"1").unwrap();
        place.write("a.json", b"2").unwrap();
        place.child("failed").write("b.json", b"3").unwrap();
        assert_eq!(place.read("a.json").unwrap().as_deref(), Some(&b"2"[..]));
        let many = place.read_many(&["a.json".to_string(), "gone.json".to_string()]).unwrap();
        assert_eq!(many, vec![("a.json".to_string(), b"2".to_vec())]);
        assert_eq!(place.json_names().unwrap(), vec!["a.json"], "not what is in a place inside it");
        assert_eq!(place.child("failed").json_names().unwrap(), vec!["b.json"]);
        place.remove("a.json").unwrap();
        place.remove("a.json").unwrap();
        assert!(place.json_names().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_bucket_and_a_directory_keep_files_alike() {
        let bucket = Place::in_bucket(Arc::new(InMemory::new())).child("alerting");
        tokio::task::spawn_blocking(move || write_read_list_remove(bucket)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_read_list_remove(Place::Dir(dir.path().join("alerting")));
    }
}
