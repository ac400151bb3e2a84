//! A watched task's input set kept in memory: every selected file with its metadata and hash,
//! and every directory the walk entered. Changes reported by the watcher are applied by
//! re-listing the directory that holds them, so ignore rules and filters stay exactly those
//! of a full walk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fingerprint::{
    Change, ChangeKind, Digest, Entry, Filter, FpError, OwnState, RulesStamp, Scanned, Table,
    Walking, hash_all, key_of_leaves, leaf, now_ns, relative, reusable, scan, scan_with,
};
use crate::relpath;

/// Names whose change alters the ignore rules of their whole directory.
pub const IGNORE_FILES: [&str; 2] = [".gitignore", ".ignore"];

#[derive(Debug, Clone)]
struct Indexed {
    entry: Entry,
    /// The entry's part of the key, kept so a change costs one leaf, not a rehash of all.
    leaf: Digest,
    /// Scan start time when the hash was last confirmed.
    verified_at_ns: i64,
}

/// One task's input set in memory.
#[derive(Debug)]
pub struct Index {
    root: PathBuf,
    filter: Arc<Filter>,
    own: OwnState,
    entries: BTreeMap<String, Indexed>,
    dirs: BTreeSet<String>,
    key: Option<Digest>,
    /// Original entries of the paths changed since the diff base (`None` inside: the path
    /// did not exist then); `None`: no base, callers diff whole tables.
    base_log: Option<BTreeMap<String, Option<Indexed>>>,
    /// Whether a full walk has filled it, and every change reported since was applied (a
    /// walk or an application that failed partway leaves it unfilled: only a full walk
    /// can be trusted again).
    pub filled: bool,
    /// The ignore rules the watch cannot see, as the last full walk found them.
    rules: RulesStamp,
}

/// How much work a refresh took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Work {
    /// Files whose content was read.
    pub rehashed: usize,
}

impl Index {
    /// An empty index for `root`; fill it with [`Index::full_pass`].
    pub fn new(root: PathBuf, filter: Arc<Filter>, own: OwnState) -> Self {
        Index {
            root,
            filter,
            own,
            entries: BTreeMap::new(),
            dirs: BTreeSet::new(),
            key: None,
            base_log: None,
            filled: false,
            rules: RulesStamp::default(),
        }
    }

    /// Whether an ignore rule the watch cannot see (outside the root, or in `.git/`)
    /// changed since the last full walk: only a full walk can be trusted then.
    pub fn rules_moved(&self) -> bool {
        self.rules.moved()
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no file is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The input-set key, computed once per change.
    pub fn key(&mut self) -> Digest {
        if let Some(key) = self.key {
            return key;
        }
        let leaves: Vec<Digest> = self.entries.values().map(|i| i.leaf).collect();
        let key = key_of_leaves(&leaves);
        self.key = Some(key);
        key
    }

    /// The key if it is already computed and nothing changed since.
    pub fn cached_key(&self) -> Option<Digest> {
        self.key
    }

    /// Makes the current content the diff base: [`Index::changes_since_base`] reports
    /// against it from now on.
    pub fn mark_base(&mut self) {
        self.base_log = Some(BTreeMap::new());
    }

    /// The changes since the base, in path order; `None` when there is no base.
    pub fn changes_since_base(&self) -> Option<Vec<Change>> {
        let log = self.base_log.as_ref()?;
        let changes = log
            .iter()
            .filter_map(|(path, original)| {
                let kind = match (original, self.entries.get(path)) {
                    (None, Some(_)) => ChangeKind::Added,
                    (Some(_), None) => ChangeKind::Removed,
                    (Some(o), Some(c)) if o.leaf != c.leaf => ChangeKind::Modified,
                    _ => return None,
                };
                Some(Change {
                    path: path.clone(),
                    kind,
                })
            })
            .collect();
        Some(changes)
    }

    /// Remembers a path's original entry the first time it changes after the base.
    fn log_change(&mut self, path: &str, original: Option<&Indexed>) {
        if let Some(log) = &mut self.base_log
            && !log.contains_key(path)
        {
            log.insert(path.to_string(), original.cloned());
        }
    }

    /// The entries in path order.
    pub fn entries(&self) -> Vec<&Entry> {
        self.entries.values().map(|i| &i.entry).collect()
    }

    /// The set as a table (for the state's stat cache).
    pub fn table(&self) -> Table {
        Table {
            scanned_at_ns: self
                .entries
                .values()
                .map(|i| i.verified_at_ns)
                .min()
                .unwrap_or(0),
            entries: self.entries.values().map(|i| i.entry.clone()).collect(),
        }
    }

    /// Walks the whole root again, reusing hashes from memory, else from `seed` (a state
    /// file's table) when the index is empty.
    pub fn full_pass(&mut self, seed: Option<&Table>) -> Result<Work, FpError> {
        let mut previous = std::mem::take(&mut self.entries);
        if let (true, Some(seed)) = (previous.is_empty(), seed) {
            previous = seed
                .entries
                .iter()
                .map(|e| (e.path.clone(), indexed(e.clone(), seed.scanned_at_ns)))
                .collect();
        }
        let before = RulesStamp::of(&self.root, self.dirs.iter().map(String::as_str));
        self.dirs.clear();
        self.base_log = None;
        self.filled = false;
        self.key = None;
        let work = self.walk_into("", None, &previous)?;
        let after = RulesStamp::of(&self.root, self.dirs.iter().map(String::as_str));
        self.rules = after.since(&before);
        self.filled = true;
        Ok(work)
    }

    /// Applies the paths a watcher reported: each one's directory is listed again, a new
    /// directory walked whole, a vanished one dropped with everything below it. A failure
    /// leaves the index unfilled: the reports it did not get to are gone.
    pub fn apply(&mut self, changed: &[PathBuf]) -> Result<Work, FpError> {
        let applied = self.apply_each(changed);
        if applied.is_err() {
            self.filled = false;
            self.key = None;
        }
        applied
    }

    fn apply_each(&mut self, changed: &[PathBuf]) -> Result<Work, FpError> {
        let mut shallow = BTreeSet::new();
        let mut deep = BTreeSet::new();
        for path in changed {
            let Ok(rel) = path.strip_prefix(&self.root) else {
                continue;
            };
            let rel = relative(Path::new(""), rel);
            if rel.is_empty() {
                continue;
            }
            let (parent, name) = split_parent(&rel);
            if name == ".git" {
                // A repository made or removed: its `info/exclude` is stamped by a full walk.
                self.filled = false;
                self.key = None;
            }
            if IGNORE_FILES.contains(&name) {
                deep.insert(parent.to_string());
            } else if self.filter.excludes(&rel, name) {
                // An excluded entry (a task's `dist/`, say) and all below it are outside the
                // set whatever happened to it: its directory need not be listed again.
                continue;
            } else {
                shallow.insert(parent.to_string());
            }
        }
        let mut work = Work::default();
        for dir in &deep {
            work.rehashed += self.rescan_deep(dir)?.rehashed;
        }
        for dir in shallow
            .iter()
            .filter(|d| !deep.iter().any(|p| is_within(d, p)))
        {
            work.rehashed += self.rescan_shallow(dir)?.rehashed;
        }
        Ok(work)
    }

    /// True when the watcher's path belongs to zccache's own state (never an input).
    pub fn is_own_state(&self, path: &Path) -> bool {
        path.file_name()
            .is_some_and(|name| self.own.contains(path, name))
    }

    fn rescan_shallow(&mut self, dir: &str) -> Result<Work, FpError> {
        if !self.dirs.contains(dir) {
            // Outside the set: an ignored or excluded directory, or one not walked yet.
            return Ok(Work::default());
        }
        let old_files = self.take_children(dir);
        let old_dirs: Vec<String> = self.child_dirs(dir);
        let start = relpath::join(&self.root, dir);
        let started = now_ns();
        // One directory's listing: the parallel walker's threads would cost more than it
        // (~1.3 ms a directory, paid for each directory an edit touched).
        let filter = (Arc::clone(&self.filter), self.own.clone());
        let walked = scan_with(&self.root, &start, Some(1), filter, Walking::Own)?;
        if !walked.dirs.iter().any(|d| d == dir) {
            self.remove_subtree(dir);
            return Ok(Work::default());
        }
        let new_dirs: BTreeSet<String> = walked.dirs.into_iter().filter(|d| d != dir).collect();
        let work = self.insert_scanned(walked.files, &old_files, started)?;
        for gone in old_dirs.iter().filter(|d| !new_dirs.contains(*d)) {
            self.remove_subtree(gone);
        }
        let mut rehashed = work.rehashed;
        for added in new_dirs.iter().filter(|d| !old_dirs.contains(d)) {
            rehashed += self.rescan_deep(added)?.rehashed;
        }
        Ok(Work { rehashed })
    }

    fn rescan_deep(&mut self, dir: &str) -> Result<Work, FpError> {
        let previous = self.remove_subtree(dir);
        self.walk_into(dir, None, &previous)
    }

    /// Walks `dir` (relative; `""` is the root) and inserts what it finds.
    fn walk_into(
        &mut self,
        dir: &str,
        depth: Option<usize>,
        previous: &BTreeMap<String, Indexed>,
    ) -> Result<Work, FpError> {
        let start = relpath::join(&self.root, dir);
        let started = now_ns();
        let walked = scan(
            &self.root,
            &start,
            depth,
            Arc::clone(&self.filter),
            self.own.clone(),
        )?;
        self.dirs.extend(walked.dirs);
        self.insert_scanned(walked.files, previous, started)
    }

    fn insert_scanned(
        &mut self,
        files: Vec<Scanned>,
        previous: &BTreeMap<String, Indexed>,
        started: i64,
    ) -> Result<Work, FpError> {
        let known: Vec<Option<Digest>> = files
            .iter()
            .map(|s| {
                let old = previous.get(&s.rel)?;
                reusable(&old.entry, old.verified_at_ns, s).then_some(old.entry.hash)
            })
            .collect();
        let rehashed = known.iter().filter(|k| k.is_none()).count();
        for entry in hash_all(&self.root, files, known, None)? {
            let path = entry.path.clone();
            let replaced = self.entries.insert(path.clone(), indexed(entry, started));
            self.log_change(&path, replaced.as_ref());
        }
        self.key = None;
        Ok(Work { rehashed })
    }

    /// Removes the files directly in `dir`, returning them.
    fn take_children(&mut self, dir: &str) -> BTreeMap<String, Indexed> {
        let children: Vec<String> = self
            .under(dir)
            .filter(|path| split_parent(path).0 == dir)
            .collect();
        self.remove_logged(children)
    }

    fn child_dirs(&self, dir: &str) -> Vec<String> {
        self.dirs
            .iter()
            .filter(|d| !d.is_empty() && *d != dir && split_parent(d).0 == dir)
            .cloned()
            .collect()
    }

    /// Removes `dir` and everything below it, returning the files.
    fn remove_subtree(&mut self, dir: &str) -> BTreeMap<String, Indexed> {
        let files: Vec<String> = self.under(dir).collect();
        self.dirs.retain(|d| !is_within(d, dir));
        self.remove_logged(files)
    }

    /// Removes `paths`, logging each for the diff base; returns what was removed.
    fn remove_logged(&mut self, paths: Vec<String>) -> BTreeMap<String, Indexed> {
        self.key = None;
        let removed: BTreeMap<String, Indexed> = paths
            .into_iter()
            .filter_map(|p| self.entries.remove_entry(&p))
            .collect();
        for (path, old) in &removed {
            self.log_change(path, Some(old));
        }
        removed
    }

    /// Paths of indexed files below `dir`.
    fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = String> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
    }
}

fn indexed(entry: Entry, verified_at_ns: i64) -> Indexed {
    Indexed {
        leaf: leaf(&entry),
        entry,
        verified_at_ns,
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
fn split_parent(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// True when `path` is `dir` or below it (`""` contains everything).
fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_containment() {
        assert_eq!(split_parent("a/b/c"), ("a/b", "c"));
        assert_eq!(split_parent("c"), ("", "c"));
        assert!(is_within("a/b", "a"));
        assert!(is_within("a", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", ""));
    }
}
