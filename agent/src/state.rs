//! What the agent records about one file, read with `lstat` (links are not followed), the
//! POSIX ACL and security xattrs, and a streamed SHA-256 (and MD5 when configured).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use crate::file_state::{Checksum, FileKind, FileState, Rare};
use sha2::Digest;

/// Options of a capture.
#[derive(Debug, Clone, Copy)]
pub struct CaptureOptions {
    pub max_hash_bytes: u64,
    pub md5: bool,
    /// Keep the content of files up to this size (never for the deny list).
    pub content_max: Option<u64>,
}

/// Bytes per second that hashing may read (0: no limit), to bound a scan's IO.
static HASH_RATE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn set_hash_rate(bytes_per_second: u64) {
    HASH_RATE.store(bytes_per_second, std::sync::atomic::Ordering::Relaxed);
}

/// Reads the state of `path`. `previous` lets an unchanged file keep its hashes without being
/// read again: same inode, size, mtime and ctime.
pub fn capture(path: &Path, previous: Option<&FileState>, opts: CaptureOptions) -> std::io::Result<FileState> {
    let mut st = state_of(&std::fs::symlink_metadata(path)?);
    if st.kind == FileKind::Symlink {
        st.rare_mut().link_target = std::fs::read_link(path).ok().map(|t| t.to_string_lossy().into_owned());
    } else {
        // Setting an xattr or ACL moves the ctime: while it has not moved, they are as they were
        // (one system call less per unchanged file on a rescan).
        match previous.filter(|p| p.kind == st.kind && p.inode == st.inode && p.ctime_ns == st.ctime_ns) {
            Some(p) => keep_xattrs(p, &mut st),
            None => read_xattrs(xattr::list(path), |name| xattr::get(path, name), &mut st),
        }
    }
    if st.kind == FileKind::File {
        match unchanged(previous, &st, opts) {
            Some(p) => {
                st.sha256 = p.sha256;
                st.md5 = p.md5;
                // Most files keep no content: no `Rare` is made for them (an allocation per file).
                if let Some(content) = &p.rare().content {
                    st.rare_mut().content = Some(content.clone());
                }
            }
            None => read_content(path, None, opts, &mut st),
        }
    }
    Ok(st.settle())
}

/// Reads the state of a path its directory's listing showed as a regular file and that the
/// baseline does not hold yet (every file of a first scan): the file is opened first, and its
/// status, xattrs and checksums read through the descriptor, so the kernel looks the path up once
/// instead of three times. A path that is something else by now (a link, a FIFO, a directory)
/// or cannot be opened is read as [`capture`] reads it. Opening is safe only on the listing's
/// word: a device node made in its place in between (which takes root) would be opened.
pub fn capture_listed_file(path: &Path, opts: CaptureOptions) -> std::io::Result<FileState> {
    use xattr::FileExt;
    let file = match open_for_hash(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => return capture(path, None, opts),
    };
    let md = file.metadata()?;
    if !md.file_type().is_file() {
        return capture(path, None, opts);
    }
    let mut st = state_of(&md);
    read_xattrs(file.list_xattr(), |name| file.get_xattr(name), &mut st);
    read_content(path, Some(file), opts, &mut st);
    Ok(st.settle())
}

/// What `lstat` (or `fstat`) says of a path, before its xattrs and content are read.
fn state_of(md: &std::fs::Metadata) -> FileState {
    FileState {
        kind: FileKind::of(md.file_type()),
        size: md.size(),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        inode: md.ino(),
        dev: md.dev(),
        nlink: md.nlink(),
        sha256: None,
        md5: None,
        rare: None,
    }
}

/// The earlier capture of a file whose content cannot have changed since (same inode, size,
/// mtime and ctime) and that holds all `opts` asks for.
fn unchanged<'p>(previous: Option<&'p FileState>, st: &FileState, opts: CaptureOptions) -> Option<&'p FileState> {
    previous.filter(|p| {
        p.kind == FileKind::File
            && p.inode == st.inode
            && p.size == st.size
            && p.mtime_ns == st.mtime_ns
            && p.ctime_ns == st.ctime_ns
            && p.rare().hash_error.is_none()
            && (p.md5.is_some() || !opts.md5)
            && (opts.content_max.is_none() || p.rare().content.is_some())
    })
}

/// Hashes the file `st` describes (through `opened`, when it is open already) and keeps its
/// content where `opts` asks for it.
fn read_content(path: &Path, opened: Option<std::fs::File>, opts: CaptureOptions, st: &mut FileState) {
    if st.size > opts.max_hash_bytes {
        st.rare_mut().hash_error = Some(format!("larger than max_hash_bytes ({} bytes)", opts.max_hash_bytes));
        return;
    }
    let hashed = match opened {
        Some(file) => hash_open(file, opts.md5, st),
        None => hash(path, opts.md5, st),
    };
    match hashed {
        Ok((sha, md5)) => {
            st.sha256 = Some(sha);
            st.md5 = md5;
        }
        Err(e) => st.rare_mut().hash_error = Some(e),
    }
    if let Some(max) = opts.content_max
        && st.size <= max
        && crate::config::content_allowed(&path.to_string_lossy())
    {
        st.rare_mut().content = std::fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
    }
}

/// Streams the file through SHA-256 (and MD5); fails if the file is not the one `st` describes
/// (replaced, or modified since its `lstat`) once read.
fn hash(path: &Path, md5: bool, st: &FileState) -> Result<(Checksum<32>, Option<Checksum<16>>), String> {
    let file = open_for_hash(path).map_err(|e| format!("cannot read: {e}"))?;
    hash_open(file, md5, st)
}

/// [`hash`] of a file open already.
fn hash_open(mut f: std::fs::File, md5: bool, st: &FileState) -> Result<(Checksum<32>, Option<Checksum<16>>), String> {
    let mut sha = sha2::Sha256::new();
    let mut m5 = md5.then(md5::Md5::new);
    // A small file needs a small buffer (a large one would be mapped and unmapped per file).
    let mut buf = vec![0u8; usize::try_from(st.size).unwrap_or(usize::MAX).saturating_add(1).clamp(4096, 256 << 10)];
    let rate = HASH_RATE.load(std::sync::atomic::Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mut read = 0u64;
    // Reading stops at the size `lstat` gave (no read to find the end): a file that grew or
    // changed is caught by the `fstat` below.
    while read < st.size {
        let n = f.read(&mut buf).map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if rate > 0 {
            let due = std::time::Duration::from_secs_f64(read as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sha.update(&buf[..n]);
        if let Some(m) = m5.as_mut() {
            m.update(&buf[..n]);
        }
    }
    let after = f.metadata().map_err(|e| e.to_string())?;
    if after.ino() != st.inode || after.dev() != st.dev {
        return Err("replaced while being read".into());
    }
    let after_mtime_ns = after.mtime() * 1_000_000_000 + after.mtime_nsec();
    if after_mtime_ns != st.mtime_ns || after.size() != st.size || read != st.size {
        return Err("modified while being read".into());
    }
    Ok((Checksum(sha.finalize().into()), m5.map(|m| Checksum(m.finalize().into()))))
}

/// Opens a file to hash it: without following a link or waiting on a FIFO (either swapped in
/// since its `lstat`; the inode check after reading reports it), and without updating its access
/// time where the agent may (as the file's owner or root), so that scanning old files writes
/// nothing to their inodes.
fn open_for_hash(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW | libc::O_NONBLOCK),
        opened => opened,
    }
}

/// The ACL and security xattrs of an earlier capture of the same, unchanged inode.
fn keep_xattrs(previous: &FileState, st: &mut FileState) {
    let rare = previous.rare();
    if !rare.acl.is_empty() || !rare.xattrs.is_empty() {
        st.rare_mut().acl = rare.acl.clone();
        st.rare_mut().xattrs = rare.xattrs.clone();
    }
}

/// Records the ACL and the `security.*` xattrs among `names`, each value read by `get`.
fn read_xattrs(
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
    st: &mut FileState,
) {
    let Ok(names) = names else { return };
    for name in names {
        let name_text = name.to_string_lossy();
        let acl = name_text == "system.posix_acl_access";
        if !acl && !name_text.starts_with("security.") {
            continue;
        }
        let Ok(Some(value)) = get(&name) else { continue };
        if acl {
            st.rare_mut().acl = render_acl(&value);
        } else {
            let text = match std::str::from_utf8(&value) {
                Ok(s) if s.chars().all(|c| !c.is_control() || c == '\0') => s.trim_end_matches('\0').to_string(),
                _ => hex::encode(&value),
            };
            st.rare_mut().xattrs.insert(name_text.into_owned(), text);
        }
    }
}

/// The extended entries of a `system.posix_acl_access` value (version 2, then 8-byte entries
/// of tag, permissions and id), as `getfacl` prints them; the base entries (owner, group,
/// other) are the mode bits and are left out.
pub fn render_acl(v: &[u8]) -> String {
    if v.len() < 4 || u32::from_le_bytes([v[0], v[1], v[2], v[3]]) != 2 {
        return String::new();
    }
    let mut parts = Vec::new();
    for e in v[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let rwx = format!(
            "{}{}{}",
            if perm & 4 != 0 { 'r' } else { '-' },
            if perm & 2 != 0 { 'w' } else { '-' },
            if perm & 1 != 0 { 'x' } else { '-' }
        );
        match tag {
            0x02 => parts.push(format!("user:{}:{rwx}", crate::names::user(id))),
            0x08 => parts.push(format!("group:{}:{rwx}", crate::names::group(id))),
            0x10 => parts.push(format!("mask::{rwx}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// A `system.posix_acl_access` value of `(tag, permissions, id)` entries, the inverse of
/// [`render_acl`] (tags: 1 owner, 2 user, 4 owning group, 8 group, 0x10 mask, 0x20 other).
pub fn acl_xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

impl FileState {
    /// `rwxr-xr-x` style permissions with the type letter: `-rw-r--r--`.
    pub fn mode_string(&self) -> String {
        let t = self.kind.letter();
        let m = self.mode;
        let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
        let special = |x: bool, s: bool, lower: char, upper: char| match (x, s) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        };
        format!(
            "{t}{}{}{}{}{}{}{}{}{}",
            bit(0o400, 'r'),
            bit(0o200, 'w'),
            special(m & 0o100 != 0, m & 0o4000 != 0, 's', 'S'),
            bit(0o040, 'r'),
            bit(0o020, 'w'),
            special(m & 0o010 != 0, m & 0o2000 != 0, 's', 'S'),
            bit(0o004, 'r'),
            bit(0o002, 'w'),
            special(m & 0o001 != 0, m & 0o1000 != 0, 't', 'T'),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_as_ls_prints_them() {
        let mut st =
            capture(Path::new("/"), None, CaptureOptions { max_hash_bytes: 0, md5: false, content_max: None }).unwrap();
        st.mode = 0o4755;
        st.kind = FileKind::File;
        assert_eq!(st.mode_string(), "-rwsr-xr-x");
        st.mode = 0o1777;
        st.kind = FileKind::Dir;
        assert_eq!(st.mode_string(), "drwxrwxrwt");
    }

    #[test]
    fn acl_xattr_values_render_their_extended_entries() {
        // user::rw-, user:0:r--, group::r--, mask::r--, other::r--
        let v = acl_xattr(&[(1, 6, u32::MAX), (2, 4, 0), (4, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)]);
        assert_eq!(render_acl(&v), "user:root:r--,mask::r--");
    }

    #[test]
    fn hashing_a_file_leaves_its_access_time_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.conf");
        std::fs::write(&path, "content").unwrap();
        // An access time before the modification time: under `relatime` a plain read updates it.
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_times(std::fs::FileTimes::new().set_accessed(long_ago)).unwrap();
        drop(file);
        let opts = CaptureOptions { max_hash_bytes: 1 << 20, md5: false, content_max: None };
        let st = capture(&path, None, opts).unwrap();
        assert!(st.sha256.is_some(), "hashed");
        let accessed = std::fs::metadata(&path).unwrap().accessed().unwrap();
        assert_eq!(accessed, long_ago, "the scan updated the access time");
    }

    #[test]
    fn a_listed_file_read_through_its_descriptor_is_captured_as_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CaptureOptions { max_hash_bytes: 1 << 20, md5: true, content_max: None };
        let file = dir.path().join("app.conf");
        std::fs::write(&file, "content").unwrap();
        let acl = acl_xattr(&[(1, 6, u32::MAX), (2, 4, 0), (4, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 4, u32::MAX)]);
        let acl_set = xattr::set(&file, "system.posix_acl_access", &acl).is_ok();
        let label_set = xattr::set(&file, "security.fimlake-test", b"label").is_ok();
        let large = dir.path().join("large.bin");
        std::fs::write(&large, vec![b'x'; 2 << 20]).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("app.conf", &link).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // What a listing said was a regular file may be anything by the time it is read.
        for path in [&file, &large, &sub, &link, &fifo] {
            let listed = capture_listed_file(path, opts).unwrap();
            assert_eq!(listed, capture(path, None, opts).unwrap(), "{path:?}");
        }
        let read = capture_listed_file(&file, opts).unwrap();
        assert_eq!(
            read.sha256.unwrap().to_string(),
            "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73"
        );
        assert_eq!(read.md5.unwrap().to_string(), "9a0364b9e99bb480dd25e1f0284c8555");
        if acl_set {
            assert_eq!(read.rare().acl, "user:root:r--,mask::r--");
        }
        if label_set {
            assert_eq!(read.rare().xattrs["security.fimlake-test"], "label");
        }
        let large = capture_listed_file(&large, opts).unwrap();
        assert!(large.rare().hash_error.as_deref().unwrap().contains("max_hash_bytes"), "{large:?}");
        let missing = capture_listed_file(&dir.path().join("gone"), opts).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_fifo_swapped_in_after_lstat_is_reported_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.conf");
        std::fs::write(&path, "content").unwrap();
        let opts = CaptureOptions { max_hash_bytes: 1 << 20, md5: false, content_max: None };
        let st = capture(&path, None, opts).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        // Opening a FIFO without O_NONBLOCK would wait for a writer forever.
        let error = hash(&path, false, &st).unwrap_err();
        assert!(error.contains("replaced") || error.contains("modified"), "{error}");
    }
}
