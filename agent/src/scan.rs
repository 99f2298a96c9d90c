//! Which paths the items cover, and what changed between the baseline and the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{AgentConfig, Item, wildcard};
use crate::state::{CaptureOptions, FileKind, FileState, capture, capture_listed_file};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Category {
    Added,
    Removed,
    Modified,
}

/// One change of one path.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub category: Category,
    /// The Azure-style names of what changed (`Size`, `FileContentChecksum`...), for Modified.
    pub fields: Vec<&'static str>,
    pub old: Option<FileState>,
    pub new: Option<FileState>,
    /// The item (name, group) that covers the path.
    pub item: (String, String),
}

/// A path that could not be read (permission denied, vanished mid-walk, a link loop): the
/// agent cannot see it, and says so.
#[derive(Debug, Clone)]
pub struct ScanError {
    pub path: String,
    pub item: String,
    pub message: String,
}

/// What differs between two states of a path, by the names `FieldsChanged` uses. A
/// directory's size and mtime follow its entries, which are reported themselves, and a ctime
/// alone (with nothing else) is not a change anyone acts on.
pub fn fields_changed(old: &FileState, new: &FileState) -> Vec<&'static str> {
    let mut f = Vec::new();
    if old.kind != new.kind {
        f.push("FileType");
    }
    let dir = new.kind == FileKind::Dir && old.kind == FileKind::Dir;
    if old.size != new.size && !dir {
        f.push("Size");
    }
    if old.sha256 != new.sha256 && (old.sha256.is_some() || new.sha256.is_some()) {
        f.push("FileContentChecksum");
    }
    if old.mtime_ns != new.mtime_ns && !dir {
        f.push("DateModified");
    }
    if old.mode != new.mode {
        f.push("Mode");
    }
    if old.uid != new.uid {
        f.push("Owner");
    }
    if old.gid != new.gid {
        f.push("Group");
    }
    let (old_rare, new_rare) = (old.rare(), new.rare());
    if old_rare.acl != new_rare.acl {
        f.push("Acls");
    }
    if old_rare.xattrs != new_rare.xattrs {
        f.push("Xattrs");
    }
    if old_rare.link_target != new_rare.link_target {
        f.push("LinkTarget");
    }
    if old.inode != new.inode && old.kind == new.kind {
        f.push("Inode");
    }
    f
}

/// Whether `item` covers `path`.
pub fn in_scope(item: &Item, path: &str) -> bool {
    if !item.enabled || excluded(item, path) {
        return false;
    }
    let root = item.path.trim_end_matches('/');
    let (dir, glob) = split_glob(root);
    match glob {
        Some(pattern) => {
            let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else { return false };
            let name = rest.rsplit('/').next().unwrap_or(rest);
            (item.recursive || !rest.contains('/')) && wildcard(pattern, name)
        }
        None => {
            if path == root {
                return true;
            }
            let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) else { return false };
            item.recursive || !rest.contains('/')
        }
    }
}

fn excluded(item: &Item, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    item.exclude.iter().any(|p| wildcard(p, name) || wildcard(p, path))
}

/// `/etc/*.conf` → (`/etc`, Some(`*.conf`)); `/etc` → (`/etc`, None).
fn split_glob(path: &str) -> (&str, Option<&str>) {
    match path.rsplit_once('/') {
        Some((dir, last)) if last.contains(['*', '?']) => (if dir.is_empty() { "/" } else { dir }, Some(last)),
        _ => (path, None),
    }
}

/// The directory a watcher must watch for `item`, and whether recursively.
pub fn watch_root(item: &Item) -> (PathBuf, bool) {
    let root = item.path.trim_end_matches('/');
    match split_glob(root) {
        (dir, Some(_)) => (PathBuf::from(dir), item.recursive),
        (p, None) if Path::new(p).is_dir() => (PathBuf::from(p), item.recursive),
        (p, None) => (Path::new(p).parent().unwrap_or(Path::new("/")).to_path_buf(), false),
    }
}

/// Every path the enabled items cover now, with the item that covers it first.
pub fn enumerate(cfg: &AgentConfig, errors: &mut Vec<ScanError>) -> Covered {
    // Gathered in walk order, then sorted once and the map built from the sorted run (cheaper
    // than an insertion per path).
    let mut out: Vec<(String, Covering)> = Vec::new();
    for item in cfg.items.iter().filter(|i| i.enabled) {
        let (root, recursive) = watch_root(item);
        let glob = split_glob(item.path.trim_end_matches('/')).1.is_some();
        let covering_item: CoveringItem = Arc::new((item.name.clone(), item.group.clone()));
        let single_file = !glob && !Path::new(&item.path).is_dir();
        if single_file {
            if std::fs::symlink_metadata(&item.path).is_ok() && in_scope(item, &item.path) {
                out.push((item.path.clone(), Covering { item: covering_item.clone(), listed: None }));
            }
            continue;
        }
        let mut walk = walkdir::WalkDir::new(&root).follow_links(false);
        if !recursive {
            walk = walk.max_depth(1);
        }
        for entry in walk {
            match entry {
                Ok(e) => {
                    let (depth, listed) = (e.depth(), Some(FileKind::of(e.file_type())));
                    let p = path_text(e.into_path());
                    if (glob && depth == 0) || !in_scope(item, &p) {
                        continue;
                    }
                    out.push((p, Covering { item: covering_item.clone(), listed }));
                }
                Err(e) => {
                    // The root of an item that does not exist is not an error: it has no files.
                    if e.depth() == 0 && e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
                        continue;
                    }
                    let path = e.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| item.path.clone());
                    errors.push(ScanError { path, item: item.name.clone(), message: e.to_string() });
                }
            }
        }
    }
    // A path two items cover belongs to the first.
    Covered::from_unsorted(out)
}

/// A walked path as text: moved when it is UTF-8 (nearly always), lossily copied when not.
fn path_text(path: PathBuf) -> String {
    path.into_os_string().into_string().unwrap_or_else(|raw| raw.to_string_lossy().into_owned())
}

/// The item covering `path`, if any.
pub fn item_for(cfg: &AgentConfig, path: &str) -> Option<(String, String)> {
    cfg.items.iter().find(|i| in_scope(i, path)).map(|i| (i.name.clone(), i.group.clone()))
}

/// The item (name, group) covering a path, shared by all the paths it covers.
pub type CoveringItem = Arc<(String, String)>;

/// The item covering a path, and what the listing of the path's directory said it is (`None`
/// when the path was not found by listing its directory: an item's own path, a real-time event's).
#[derive(Debug, Clone)]
pub struct Covering {
    pub item: CoveringItem,
    pub listed: Option<FileKind>,
}

/// Every covered path and the item covering it: sorted by path, each path once. A sorted
/// vector, not a map: a full scan holds one entry per monitored path, and the comparison only
/// ever walks it in order.
#[derive(Debug, Default)]
pub struct Covered(Vec<(String, Covering)>);

impl Covered {
    /// Paths in any order; of equal paths, the first is kept (the sort is stable, `dedup_by`
    /// keeps the first of a run).
    pub fn from_unsorted(mut paths: Vec<(String, Covering)>) -> Covered {
        paths.sort_by(|(a, _), (b, _)| a.cmp(b));
        paths.dedup_by(|(later, _), (earlier, _)| later == earlier);
        Covered(paths)
    }

    /// The paths and their coverings, in order.
    pub fn entries(&self) -> &[(String, Covering)] {
        &self.0
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(path, _)| path)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The new state of paths to record (`None`: no longer in the baseline).
pub type Updates = Vec<(String, Option<FileState>)>;

/// Compares the current state of `entries` (some covered paths) with `baseline`. Returns the
/// changes and the new states to record. A path that no longer exists is Removed.
pub fn diff(
    cfg: &AgentConfig,
    baseline: &BTreeMap<String, FileState>,
    entries: &[(String, Covering)],
    errors: &mut Vec<ScanError>,
) -> (Vec<Change>, Updates) {
    let base = CaptureOptions { max_hash_bytes: cfg.max_hash_bytes, md5: cfg.md5, content_max: None };
    let mut changes = Vec::new();
    let mut updates = Vec::new();
    // Reading (stat, hash) is the costly part: `scan_threads` threads share it.
    let olds = baseline_entries(baseline, entries);
    let capture_one = |((path, covering), old): (&(String, Covering), &Option<&FileState>)| {
        let upload = cfg.items.iter().find(|i| i.name == covering.item.0 && i.upload_content);
        let opts = CaptureOptions { content_max: upload.map(|i| i.max_content_bytes), ..base };
        match (old, covering.listed) {
            (None, Some(FileKind::File)) => capture_listed_file(Path::new(path), opts),
            _ => capture(Path::new(path), *old, opts),
        }
    };
    let threads = cfg.scan_threads.clamp(1, 64);
    let captured: Vec<std::io::Result<FileState>> = if threads == 1 || entries.len() < 1024 {
        entries.iter().zip(&olds).map(capture_one).collect()
    } else {
        let chunk = entries.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .zip(olds.chunks(chunk))
                .map(|(part, olds)| scope.spawn(move || part.iter().zip(olds).map(capture_one).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("a scan thread panicked")).collect()
        })
    };
    for (((path, covering), old), result) in entries.iter().zip(olds).zip(captured) {
        let item = &covering.item;
        match result {
            Ok(new) => {
                if let Some(err) = &new.rare().hash_error
                    && old.and_then(|o| o.rare().hash_error.as_ref()) != Some(err)
                {
                    errors.push(ScanError { path: path.clone(), item: item.0.clone(), message: err.clone() });
                }
                let change = match old {
                    None => Some((Category::Added, Vec::new())),
                    Some(o) => Some((Category::Modified, fields_changed(o, &new))).filter(|(_, f)| !f.is_empty()),
                };
                if let Some((category, fields)) = change {
                    let new = Some(new.clone());
                    changes.push(Change {
                        path: path.clone(),
                        category,
                        fields,
                        old: old.cloned(),
                        new,
                        item: item.as_ref().clone(),
                    });
                }
                if old != Some(&new) {
                    updates.push((path.clone(), Some(new)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(o) = old {
                    changes.push(removed(path, o, item.as_ref().clone()));
                    updates.push((path.clone(), None));
                }
            }
            Err(e) => errors.push(ScanError { path: path.clone(), item: item.0.clone(), message: e.to_string() }),
        }
    }
    (changes, updates)
}

/// The paths of `baseline` a full scan did not find in `covered`: Removed if gone, forgotten
/// (not reported) if no item covers them any more.
pub fn vanished(
    cfg: &AgentConfig,
    baseline: &BTreeMap<String, FileState>,
    covered: &Covered,
) -> (Vec<Change>, Updates) {
    let mut changes = Vec::new();
    let mut updates = Vec::new();
    for (path, o) in not_in(baseline, covered) {
        match item_for(cfg, path) {
            Some(item) if std::fs::symlink_metadata(path).is_err() => {
                changes.push(removed(path, o, item));
                updates.push((path.clone(), None));
            }
            Some(_) => {}
            None => updates.push((path.clone(), None)),
        }
    }
    (changes, updates)
}

/// The baseline entry of each of `entries` (sorted by path, as a [`Covered`] iterates): one walk
/// over the baseline's range, not a lookup per path.
fn baseline_entries<'a>(
    baseline: &'a BTreeMap<String, FileState>,
    entries: &[(String, Covering)],
) -> Vec<Option<&'a FileState>> {
    debug_assert!(entries.is_sorted_by_key(|(path, _)| path), "entries sorted by path");
    let Some((first, _)) = entries.first() else { return Vec::new() };
    let mut walk =
        baseline.range::<str, _>((std::ops::Bound::Included(first.as_str()), std::ops::Bound::Unbounded)).peekable();
    entries
        .iter()
        .map(|(path, _)| {
            while walk.next_if(|(k, _)| *k < path).is_some() {}
            walk.peek().filter(|(k, _)| *k == path).map(|(_, state)| *state)
        })
        .collect()
}

/// The entries of `baseline` whose path is not a key of `covered`: one walk over both (sorted
/// the same way), not a lookup per path.
fn not_in<'a>(
    baseline: &'a BTreeMap<String, FileState>,
    covered: &'a Covered,
) -> impl Iterator<Item = (&'a String, &'a FileState)> {
    let mut keys = covered.keys().peekable();
    baseline.iter().filter(move |(path, _)| {
        while keys.next_if(|k| k < path).is_some() {}
        keys.peek() != Some(path)
    })
}

fn removed(path: &str, old: &FileState, item: (String, String)) -> Change {
    Change {
        path: path.to_string(),
        category: Category::Removed,
        fields: Vec::new(),
        old: Some(old.clone()),
        new: None,
        item,
    }
}

/// The paths to check after real-time events on `changed`: each path covered by an item, and,
/// for a path that is (or was) a directory, everything under it that is covered or in the
/// baseline.
pub fn affected(
    cfg: &AgentConfig,
    baseline: &BTreeMap<String, FileState>,
    changed: &BTreeSet<PathBuf>,
    errors: &mut Vec<ScanError>,
) -> Covered {
    let mut out = BTreeMap::new();
    for p in changed {
        let s = p.to_string_lossy().into_owned();
        if let Some(item) = item_for(cfg, &s) {
            out.insert(s.clone(), Covering { item: Arc::new(item), listed: None });
        }
        let prefix = format!("{}/", s.trim_end_matches('/'));
        for (b, _) in baseline.range(prefix.clone()..) {
            if !b.starts_with(&prefix) {
                break;
            }
            if let Some(item) = item_for(cfg, b) {
                out.insert(b.clone(), Covering { item: Arc::new(item), listed: None });
            }
        }
        if p.is_dir() {
            for entry in walkdir::WalkDir::new(p).min_depth(1).follow_links(false) {
                match entry {
                    Ok(e) => {
                        let listed = Some(FileKind::of(e.file_type()));
                        let ps = path_text(e.into_path());
                        if let Some(item) = item_for(cfg, &ps) {
                            out.insert(ps, Covering { item: Arc::new(item), listed });
                        }
                    }
                    Err(e) => errors.push(ScanError { path: s.clone(), item: String::new(), message: e.to_string() }),
                }
            }
        }
    }
    // The map's order and keys are the vector's invariant.
    Covered(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, recursive: bool) -> Item {
        Item { name: path.into(), path: path.into(), recursive, ..Item::default() }
    }

    #[test]
    fn scope_of_folders_files_and_globs() {
        assert!(in_scope(&item("/etc/*.conf", false), "/etc/resolv.conf"));
        assert!(!in_scope(&item("/etc/*.conf", false), "/etc/x/y.conf"));
        assert!(in_scope(&item("/etc/*.conf", true), "/etc/x/y.conf"));
        assert!(!in_scope(&item("/etc/*.conf", true), "/etc/passwd"));
        assert!(in_scope(&item("/usr/bin", true), "/usr/bin"));
        assert!(in_scope(&item("/usr/bin", true), "/usr/bin/x/y"));
        assert!(!in_scope(&item("/usr/bin", false), "/usr/bin/x/y"));
        assert!(!in_scope(&item("/usr/bin", true), "/usr/binx"));
        let mut i = item("/var/log", true);
        i.exclude = vec!["*.gz".into()];
        assert!(!in_scope(&i, "/var/log/syslog.1.gz"));
    }

    #[test]
    fn a_path_two_items_cover_belongs_to_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        for name in ["b.conf", "a.txt", "sub/c.conf", "sub/d.txt"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let confs = Item { name: "confs".into(), ..item(&format!("{root}/*.conf"), true) };
        let tree = Item { name: "tree".into(), ..item(&root, true) };
        let cfg = AgentConfig { items: vec![confs, tree], ..AgentConfig::default() };
        let mut errors = Vec::new();
        let covered = enumerate(&cfg, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let found: Vec<(String, &str, Option<FileKind>)> = covered
            .entries()
            .iter()
            .map(|(path, covering)| (path.replacen(&root, "", 1), covering.item.0.as_str(), covering.listed))
            .collect();
        let (file, folder) = (Some(FileKind::File), Some(FileKind::Dir));
        let expected = vec![
            (String::new(), "tree", folder),
            ("/a.txt".to_string(), "tree", file),
            ("/b.conf".to_string(), "confs", file),
            ("/sub".to_string(), "tree", folder),
            ("/sub/c.conf".to_string(), "confs", file),
            ("/sub/d.txt".to_string(), "tree", file),
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn walks_over_both_maps_find_what_lookups_find() {
        let state = FileState {
            kind: FileKind::File,
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            nlink: 1,
            sha256: None,
            md5: None,
            rare: None,
        };
        let baseline: BTreeMap<String, FileState> =
            ["/a", "/b", "/b/c", "/d", "/z"].iter().map(|p| (p.to_string(), state.clone())).collect();
        let covering = Covering { item: Arc::new(("etc".into(), String::new())), listed: None };
        for (covered, expected) in [
            (vec!["/b", "/d"], vec!["/a", "/b/c", "/z"]),
            (vec![], vec!["/a", "/b", "/b/c", "/d", "/z"]),
            (vec!["/0", "/a", "/b", "/b/c", "/c", "/d", "/z", "/zz"], vec![]),
            (vec!["/c"], vec!["/a", "/b", "/b/c", "/d", "/z"]),
        ] {
            let covered = Covered::from_unsorted(covered.iter().map(|p| (p.to_string(), covering.clone())).collect());
            let left: Vec<&str> = not_in(&baseline, &covered).map(|(p, _)| p.as_str()).collect();
            assert_eq!(left, expected, "covered {:?}", covered.keys().collect::<Vec<_>>());
            let entries = covered.entries();
            let found = baseline_entries(&baseline, entries);
            let looked_up: Vec<Option<&FileState>> = entries.iter().map(|(p, _)| baseline.get(p)).collect();
            assert_eq!(found, looked_up, "covered {:?}", covered.keys().collect::<Vec<_>>());
        }
    }
}
