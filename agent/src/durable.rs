//! Small state files written so that a crash leaves the old or the new one, never a torn one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `<dir>/<name>`: a temporary file (mode 0600: state may hold secrets),
/// fsynced, renamed into place, the directory fsynced.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!("{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}
