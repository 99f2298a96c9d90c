//! What the agent keeps about one path, in the baseline (one entry per monitored path, so kept
//! compact: the kind as an enum, checksums as bytes, what most paths lack behind one pointer)
//! and as the baseline file writes it (unchanged since the first release).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

/// What a path is, named as in the baseline and in `FileType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Block,
    Char,
}

impl FileKind {
    pub fn of(ft: std::fs::FileType) -> FileKind {
        if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else if ft.is_block_device() {
            FileKind::Block
        } else {
            FileKind::Char
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::Block => "block",
            FileKind::Char => "char",
        }
    }

    /// The type letter `ls -l` prints.
    pub fn letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
            FileKind::Block => 'b',
            FileKind::Char => 'c',
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest of `N` bytes, kept as bytes (the baseline holds one per file) and written as
/// lowercase hex, as the baseline and the records always have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Checksum<const N: usize>(pub [u8; N]);

impl<const N: usize> Checksum<N> {
    /// Writes the lowercase hex into `buffer` (twice `N` bytes; `N` is 32 at most) and returns it.
    fn hex<'b>(&self, buffer: &'b mut [u8; 64]) -> &'b str {
        let out = &mut buffer[..2 * N];
        hex::encode_to_slice(self.0, out).expect("twice the bytes");
        std::str::from_utf8(out).expect("hex digits are ASCII")
    }
}

impl<const N: usize> std::fmt::Display for Checksum<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.hex(&mut [0; 64]))
    }
}

impl<const N: usize> std::fmt::Debug for Checksum<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl<const N: usize> Serialize for Checksum<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex(&mut [0; 64]))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Checksum<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        let mut bytes = [0u8; N];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(|e| {
            serde::de::Error::custom(format!("a checksum of {N} bytes in hex expected, found {text:?}: {e}"))
        })?;
        Ok(Checksum(bytes))
    }
}

/// The state of one path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Stored")]
pub struct FileState {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits and the setuid/setgid/sticky bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    /// SHA-256 of the content; `None` for non-files, files above the hashing cap, and files
    /// that could not be read (then `hash_error` says why).
    pub sha256: Option<Checksum<32>>,
    pub md5: Option<Checksum<16>>,
    /// What most paths have none of; `None` when all of it is empty (see [`FileState::rare`]).
    pub rare: Option<Box<Rare>>,
}

/// The attributes most paths do not have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rare {
    pub link_target: Option<String>,
    pub hash_error: Option<String>,
    /// The extended POSIX ACL entries (`user:alice:r--,mask::r--`), empty when there are none.
    pub acl: String,
    /// `security.selinux`, `security.capability` and other `security.*` xattrs, as text or hex.
    pub xattrs: BTreeMap<String, String>,
    /// The content (as text, lossily), for items that upload it and files allowed to.
    pub content: Option<String>,
}

static NOTHING_RARE: Rare =
    Rare { link_target: None, hash_error: None, acl: String::new(), xattrs: BTreeMap::new(), content: None };

impl FileState {
    /// The rare attributes (all empty for most paths).
    pub fn rare(&self) -> &Rare {
        self.rare.as_deref().unwrap_or(&NOTHING_RARE)
    }

    pub fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Drops the rare attributes when all are empty, so that equal states compare equal.
    pub fn settle(mut self) -> FileState {
        if self.rare.as_deref() == Some(&NOTHING_RARE) {
            self.rare = None;
        }
        self
    }
}

/// A baseline entry as the baseline file holds it: flat, checksums in hex.
#[derive(Deserialize)]
struct Stored {
    kind: FileKind,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    dev: u64,
    nlink: u64,
    link_target: Option<String>,
    sha256: Option<Checksum<32>>,
    md5: Option<Checksum<16>>,
    hash_error: Option<String>,
    acl: String,
    xattrs: BTreeMap<String, String>,
    #[serde(default)]
    content: Option<String>,
}

impl From<Stored> for FileState {
    fn from(s: Stored) -> FileState {
        let rare = Rare {
            link_target: s.link_target,
            hash_error: s.hash_error,
            acl: s.acl,
            xattrs: s.xattrs,
            content: s.content,
        };
        FileState {
            kind: s.kind,
            size: s.size,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
            inode: s.inode,
            dev: s.dev,
            nlink: s.nlink,
            sha256: s.sha256,
            md5: s.md5,
            rare: Some(Box::new(rare)),
        }
        .settle()
    }
}

impl Serialize for FileState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let rare = self.rare();
        let mut out = serializer.serialize_struct("FileState", 17)?;
        out.serialize_field("kind", &self.kind)?;
        out.serialize_field("size", &self.size)?;
        out.serialize_field("mode", &self.mode)?;
        out.serialize_field("uid", &self.uid)?;
        out.serialize_field("gid", &self.gid)?;
        out.serialize_field("mtime_ns", &self.mtime_ns)?;
        out.serialize_field("ctime_ns", &self.ctime_ns)?;
        out.serialize_field("inode", &self.inode)?;
        out.serialize_field("dev", &self.dev)?;
        out.serialize_field("nlink", &self.nlink)?;
        out.serialize_field("link_target", &rare.link_target)?;
        out.serialize_field("sha256", &self.sha256)?;
        out.serialize_field("md5", &self.md5)?;
        out.serialize_field("hash_error", &rare.hash_error)?;
        out.serialize_field("acl", &rare.acl)?;
        out.serialize_field("xattrs", &rare.xattrs)?;
        match &rare.content {
            Some(content) => out.serialize_field("content", content)?,
            None => out.skip_field("content")?,
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_entry_reads_and_writes_as_earlier_releases_wrote_it() {
        // An entry of a baseline.json written before kinds and checksums were kept compactly.
        let earlier = r#"{"kind":"file","size":4,"mode":420,"uid":0,"gid":0,"mtime_ns":1,"ctime_ns":2,"inode":3,"dev":4,"nlink":1,"link_target":null,"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","md5":"098f6bcd4621d373cade4e832627b4f6","hash_error":null,"acl":"","xattrs":{}}"#;
        let state: FileState = serde_json::from_str(earlier).unwrap();
        assert_eq!(state.kind, FileKind::File);
        assert_eq!(
            state.sha256.unwrap().to_string(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(serde_json::to_string(&state).unwrap(), earlier);
        let bad = earlier.replace("\"sha256\":\"9f", "\"sha256\":\"zz");
        let error = serde_json::from_str::<FileState>(&bad).unwrap_err().to_string();
        assert!(error.contains("a checksum of 32 bytes in hex expected"), "{error}");
    }
}
