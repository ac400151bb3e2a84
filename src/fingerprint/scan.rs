//! The parallel walk of a root: every file git would not ignore, filtered, with its metadata.
//!
//! Paths are relative to the root, `/`-separated, encoded losslessly (`relpath`) and sorted
//! by those strings. Symlinks are never followed; they are recorded as links and later hashed
//! by their target text. zccache's own state files, any task's, are left out (`companions`).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FpError;
use super::companions::{self, OwnState};
use super::filter::Filter;
use super::own_walk;
use crate::relpath::relative;

/// What kind of entry a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file, hashed by content.
    File,
    /// A symbolic link, hashed by its target text.
    Symlink,
}

/// The metadata that decides whether a file must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// One entry found by [`scan`].
#[derive(Debug, Clone)]
pub struct Scanned {
    /// Path relative to the root, `/`-separated.
    pub rel: String,
    /// File or symlink.
    pub kind: EntryKind,
    /// Whether any execute bit is set.
    pub exec: bool,
    /// Metadata at scan time (for a file `listed_on` a device, only the inode its
    /// directory's listing gave).
    pub stat: Stat,
    /// `None` when `stat` was read; for a file `Walking::OwnUnstamped` listed without reading
    /// it (nor its execute bit), the device of its directory.
    pub listed_on: Option<u64>,
}

impl Stat {
    /// When the file last changed as far as its stamp says: the later of its mtime (which
    /// `touch -d`, `cp -p` or `tar x` set back) and its ctime (which nothing sets back).
    pub fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// The stamp of `meta` (read without following a link).
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            size: meta.size(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
        }
    }
}

impl Scanned {
    /// The entry `rel` of kind `kind`, whose metadata are `meta`.
    pub(super) fn of(rel: String, kind: EntryKind, meta: &std::fs::Metadata) -> Scanned {
        Scanned {
            rel,
            kind,
            exec: kind == EntryKind::File && meta.mode() & 0o111 != 0,
            stat: Stat::of(meta),
            listed_on: None,
        }
    }

    /// The entry `rel` of kind `kind` as its directory (on device `dev`) listed it, with
    /// inode `inode`, its metadata not read.
    pub(super) fn listed(rel: String, kind: EntryKind, (dev, inode): (u64, u64)) -> Scanned {
        Scanned {
            rel,
            kind,
            exec: false,
            stat: Stat {
                size: 0,
                mtime_ns: 0,
                ctime_ns: 0,
                inode,
            },
            listed_on: Some(dev),
        }
    }
}

/// What a walk found: the selected files and every directory it entered.
#[derive(Debug, Default)]
pub struct Walked {
    /// Selected files and symlinks, sorted by path.
    pub files: Vec<Scanned>,
    /// Directories walked (relative to the root, `""` for the root itself), unsorted.
    pub dirs: Vec<String>,
}

/// How a walk goes through the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walking {
    /// On a thread per CPU: faster from some thousands of files (a 100,000-file tree, 2
    /// CPUs: half the time), slower below (starting the threads costs ~2 ms).
    Parallel,
    /// zccache's own walk (`own_walk`): each directory listed once, its files' metadata
    /// read through it, subdirectories side by side (unless the depth is bounded); for
    /// small sets (a per-file set of 2,000 files: 3.5 ms in a fresh process, against 5.4 ms
    /// for the `ignore` walker with a stat per path; one directory level: no threads).
    Own,
    /// The own walk, reading no file's metadata in a directory whose entries last changed
    /// before `settled_before` (ns since the epoch), on a filesystem whose file times this
    /// kernel sets: such files are only listed (`listed_on`). (A
    /// first run's per-file set, whose files are stamped after its command, see
    /// `runner::per_file::deferred`: 2,000 stats before the command cost ~3.5 ms of it.)
    OwnUnstamped {
        /// Directories whose mtime is older than this are settled.
        settled_before: i64,
    },
}

/// Walks `start` (the root, or a directory below it, down to `max_depth` levels) and returns
/// the selected entries, paths relative to `root`: by the `ignore` crate's parallel
/// walker, unless `filter` names only single files (which zccache's own walk finds in a
/// few directories).
///
/// A file that vanishes during the walk is simply not in the set; any other io error is
/// returned, since an unreadable directory could hide a change.
pub fn scan(
    root: &Path,
    start: &Path,
    max_depth: Option<usize>,
    filter: Arc<Filter>,
    own: OwnState,
) -> Result<Walked, FpError> {
    let walking = match filter.names_single_files() {
        true => Walking::Own,
        false => Walking::Parallel,
    };
    scan_with(root, start, max_depth, (filter, own), walking)
}

/// [`scan`], walking as `walking` says.
pub fn scan_with(
    root: &Path,
    start: &Path,
    max_depth: Option<usize>,
    (filter, own): (Arc<Filter>, OwnState),
    walking: Walking,
) -> Result<Walked, FpError> {
    if start != root && companions::inside_marked_dir(root, start) {
        return Ok(Walked::default());
    }
    let settled_before = match walking {
        Walking::Parallel => None,
        Walking::Own => Some(None),
        Walking::OwnUnstamped { settled_before } => Some(Some(settled_before)),
    };
    if let Some(settled_before) = settled_before {
        let found = own_walk::walk(root, start, max_depth, (&filter, &own), settled_before)?;
        return Ok(finish(found.walked, &found.states));
    }
    let root = root.to_path_buf();
    let prune_root = root.clone();
    let prune_filter = Arc::clone(&filter);
    let mut walker = WalkBuilder::new(start);
    walker
        .hidden(false)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .max_depth(max_depth)
        .filter_entry(move |entry| !prunes(&prune_root, &prune_filter, &own, entry));
    let shared = Arc::new(Mutex::new(Collected::default()));
    let mut builder = CollectorBuilder {
        root,
        filter,
        shared: Arc::clone(&shared),
    };
    walker.build_parallel().visit(&mut builder);
    drop(builder);
    let collected = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(err) = collected.error {
        return Err(err);
    }
    Ok(finish(collected.walked, &collected.states))
}

/// A walk's entries sorted by path, with the state files named by `states` (and their
/// companions) left out.
fn finish(mut walked: Walked, states: &[String]) -> Walked {
    walked.files.par_sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    let Walked { files, dirs } = &mut walked;
    companions::drop_marked(files, |f| f.rel.as_str(), dirs, states);
    walked
}

/// The part of the filter applied while walking: exclusions and directories no `--include`
/// glob can reach (which prune whole directories) and zccache's own state. Selection by
/// `--ext`/`--include` happens per file in the visitor.
fn prunes(root: &Path, filter: &Filter, own: &OwnState, entry: &DirEntry) -> bool {
    if entry.depth() == 0 && entry.path() == root {
        return false;
    }
    let name = entry.file_name();
    if own.contains(entry.path(), name) {
        return true;
    }
    let rel = relative(root, entry.path());
    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
    filter.excludes(&rel, &name.to_string_lossy()) || (is_dir && !filter.may_hold(&rel))
}

/// A file's modification time in nanoseconds since the epoch.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

#[derive(Default)]
struct Collected {
    walked: Walked,
    /// State files whose marker the walk met (see `companions`).
    states: Vec<String>,
    error: Option<FpError>,
}

struct CollectorBuilder {
    root: PathBuf,
    filter: Arc<Filter>,
    shared: Arc<Mutex<Collected>>,
}

impl<'s> ParallelVisitorBuilder<'s> for CollectorBuilder {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Collector {
            root: self.root.clone(),
            filter: Arc::clone(&self.filter),
            local: Walked::default(),
            states: Vec::new(),
            error: None,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// One walker thread's visitor: collects locally, hands its batch over when dropped.
struct Collector {
    root: PathBuf,
    filter: Arc<Filter>,
    local: Walked,
    states: Vec<String>,
    error: Option<FpError>,
    shared: Arc<Mutex<Collected>>,
}

impl ParallelVisitor for Collector {
    fn visit(&mut self, result: Result<DirEntry, ignore::Error>) -> WalkState {
        let entry = match result {
            Ok(entry) => entry,
            Err(err) => return self.walk_error(err),
        };
        match self.record(&entry) {
            Ok(()) => WalkState::Continue,
            Err(err) if err.kind() == io::ErrorKind::NotFound => WalkState::Continue,
            Err(err) => {
                self.error = Some(FpError::io("stat", entry.path(), err));
                WalkState::Quit
            }
        }
    }
}

impl Collector {
    fn record(&mut self, entry: &DirEntry) -> io::Result<()> {
        let file_type = match entry.file_type() {
            Some(t) if t.is_dir() => {
                self.local.dirs.push(relative(&self.root, entry.path()));
                return Ok(());
            }
            Some(t) if t.is_symlink() => EntryKind::Symlink,
            Some(t) if t.is_file() => EntryKind::File,
            // Sockets, fifos and devices have no content to fingerprint.
            _ => return Ok(()),
        };
        let rel = relative(&self.root, entry.path());
        // Before selection: a marker names a state file whatever the filters pick.
        let dir = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
        if let Some(state) = companions::marked_state_at(dir, entry.file_name().as_bytes()) {
            self.states.push(state);
            return Ok(());
        }
        if !self.filter.selects(&rel) {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        self.local.files.push(Scanned::of(rel, file_type, &meta));
        Ok(())
    }

    fn walk_error(&mut self, err: ignore::Error) -> WalkState {
        match err.io_error() {
            // A vanished entry is simply not in the set.
            Some(io) if io.kind() == io::ErrorKind::NotFound => WalkState::Continue,
            Some(io) => {
                let path = error_path(&err).unwrap_or_else(|| self.root.clone());
                self.error = Some(FpError::io(
                    "read",
                    path,
                    io::Error::new(io.kind(), io.to_string()),
                ));
                WalkState::Quit
            }
            // A malformed ignore file is not a reason to fail the check.
            None => WalkState::Continue,
        }
    }
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.walked.files.append(&mut self.local.files);
        shared.walked.dirs.append(&mut self.local.dirs);
        shared.states.append(&mut self.states);
        if shared.error.is_none() {
            shared.error = self.error.take();
        }
    }
}
