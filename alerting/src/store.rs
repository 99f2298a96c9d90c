//! Crash-safe files: what the alerting engine keeps in the data directory (rule state, the
//! outbox, rules written through the API) is written to a temporary file, fsynced, renamed over
//! the old one and the directory fsynced, so a crash leaves either the old or the new content.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a file path has a parent directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().expect("a file path has a file name").to_string_lossy()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Removes `path` durably; a missing file is not an error.
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().expect("a file path has a parent directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A stable id from parts: the first 128 bits of their SHA-256, written as a GUID.
pub fn stable_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let x = hex::encode(&h.finalize()[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_ids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
        remove_durable(&p).unwrap();
        remove_durable(&p).unwrap();
        assert_eq!(stable_id(&["a", "bc"]), stable_id(&["a", "bc"]));
        assert_ne!(stable_id(&["a", "bc"]), stable_id(&["ab", "c"]), "parts are length-prefixed");
        assert_eq!(stable_id(&["x"]).len(), 36);
    }
}
