//! Where a server's queries spill: a directory under its data directory, not the operating
//! system's temporary one (often memory-backed, and left holding files when a server is
//! killed while a query spills). What a previous run left there is removed when the engine
//! starts.

use std::path::Path;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};

/// The spill directory's name under the data directory.
pub const SPILL_DIR: &str = "spill";

/// A disk manager spilling under `data_dir`'s [`SPILL_DIR`], emptied first. When it cannot be
/// prepared (a read-only data directory), the operating system's temporary directory, said in
/// the log.
pub(crate) fn disk_manager(data_dir: &Path) -> DiskManagerBuilder {
    let dir = data_dir.join(SPILL_DIR);
    let mode = match empty_dir(&dir) {
        Ok(()) => DiskManagerMode::Directories(vec![dir]),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e,
                "cannot prepare the spill directory; queries spill to the system's temporary directory");
            DiskManagerMode::OsTmpDirectory
        }
    };
    DiskManagerBuilder::default().with_mode(mode)
}

/// Removes what `dir` holds (a run's spill files, kept by a kill) and makes sure it exists.
fn empty_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn spills_go_under_the_data_directory_and_what_a_killed_run_left_is_removed_at_start() {
        let data = tempfile::tempdir().unwrap();
        let left = data.path().join(SPILL_DIR).join("datafusion-killed");
        std::fs::create_dir_all(&left).unwrap();
        std::fs::write(left.join("sort.arrow"), b"spilled rows").unwrap();

        let manager = Arc::new(disk_manager(data.path()).build().unwrap());
        assert!(!left.exists(), "the killed run's spill files are gone");
        let file = manager.create_tmp_file("a sort that spills").unwrap();
        let path = file.path().expect("a local spill file").to_path_buf();
        assert!(path.starts_with(data.path().join(SPILL_DIR)), "{}", path.display());
    }

    #[test]
    fn a_spill_directory_that_cannot_be_made_falls_back_to_the_systems() {
        let data = tempfile::tempdir().unwrap();
        let not_a_dir = data.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let manager = Arc::new(disk_manager(&not_a_dir).build().unwrap());
        let file = manager.create_tmp_file("a sort that spills").unwrap();
        let path = file.path().expect("a local spill file").to_path_buf();
        assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    }
}
