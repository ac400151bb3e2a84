//! zccache's own walk of a root, for small sets (a per-file set, single named files, one
//! directory level). Each directory is listed once, its ignore files are read only when
//! the listing names them, and its files' metadata are read through its descriptor
//! (`DirEntry::metadata`), not by a path looked up from `/` per file. The subdirectories
//! of a directory are walked side by side on rayon's threads when there are two or more
//! (near the top, and when the depth is not bounded: the daemon's one-level listings start
//! no threads); below, each thread walks from a stack of its own, and a listing is let go
//! before its subdirectories are walked. A per-file set of 2,000 files in a fresh process:
//! 3.5 ms, where the `ignore` crate's walker and a stat per path took 5.4 ms.
//!
//! The rules are those the parallel walk gets from `ignore` with zccache's options, applied
//! the same way: in every directory from `/` down to the file's, `.ignore`, `.gitignore`
//! and the `info/exclude` of a `.git` there (a worktree's `.git` file leads to its common
//! directory), the nearest match of each kind deciding, `.ignore` before `.gitignore` before
//! `exclude`, and git's global excludes file (matched from the current directory) last. A
//! differential test holds both walks to the same result on generated trees.

use std::ffi::OsStr;
use std::fs::{self, FileType};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;

use super::FpError;
use super::companions::{self, OwnState};
use super::filter::Filter;
use super::scan::{EntryKind, Scanned, Walked};
use crate::relpath::{self, relative};

/// What the walk found: the entries, and the state files whose markers it met.
#[derive(Default)]
pub(super) struct Found {
    pub walked: Walked,
    pub states: Vec<String>,
}

impl Found {
    /// Adds what a branch of the walk found.
    fn absorb(&mut self, mut branch: Found) {
        self.walked.files.append(&mut branch.walked.files);
        self.walked.dirs.append(&mut branch.walked.dirs);
        self.states.append(&mut branch.states);
    }
}

/// How many levels below `start` a directory's subdirectories are walked side by side
/// (below, each branch walks its part alone).
const PARALLEL_DEPTH: usize = 4;

/// Walks `start` (an absolute path under `root`, down to `max_depth` levels). With
/// `settled_before`, the files of a directory whose mtime is older are listed unstamped.
pub(super) fn walk(
    root: &Path,
    start: &Path,
    max_depth: Option<usize>,
    (filter, own): (&Filter, &OwnState),
    settled_before: Option<i64>,
) -> Result<Found, FpError> {
    let outer = Outer::of(start);
    let mut walk = Walk {
        start,
        filter,
        own,
        max_depth,
        settled_before,
        outer: &outer,
        levels: Vec::new(),
        local: Vec::new(),
        found: Found::default(),
    };
    walk.tree(Pending {
        path: start.to_path_buf(),
        rel: relative(root, start),
        depth: 0,
        levels: Vec::new(),
    })?;
    Ok(walk.found)
}

/// The ignore rules of one directory, rooted there.
struct Rules {
    ignore: Rule,
    git: Rule,
    exclude: Rule,
}

/// The rules of one ignore file.
enum Rule {
    /// Each line names a file or directory by its bare name (`target`, `.venv/`, no glob
    /// character, no `/` but a last one, no `!`): a path matches by its last component, as
    /// `ignore` matches such a line (`**/name`). No glob set is built: its build read the
    /// cgroup files (for the size of its match pool), ~0.1 ms of the walk before the command
    /// starts.
    Names {
        /// The names of files and directories.
        any: Vec<String>,
        /// The names of directories only (`name/`).
        dirs: Vec<String>,
    },
    /// Any other: `ignore`'s rules, and whether each line names directories only
    /// (`target/`): such rules never match a file, which is then not matched against them
    /// (~0.1 µs a file).
    Globs { set: Gitignore, dirs_only: bool },
}

impl Rule {
    fn none() -> Rule {
        Rule::Names {
            any: Vec::new(),
            dirs: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Rule::Names { any, dirs } => any.is_empty() && dirs.is_empty(),
            Rule::Globs { set, .. } => set.is_empty(),
        }
    }

    /// The match of `path` (named `name`; a directory when `is_dir`), if any. (The name is
    /// the caller's: taking it from the path again cost more than the rest of the match.)
    fn matched(&self, path: &Path, name: &[u8], is_dir: bool) -> Match<()> {
        match self {
            Rule::Names { any, dirs } => {
                let named = |names: &[String]| names.iter().any(|n| n.as_bytes() == name);
                match named(any) || (is_dir && named(dirs)) {
                    true => Match::Ignore(()),
                    false => Match::None,
                }
            }
            Rule::Globs {
                dirs_only: true, ..
            } if !is_dir => Match::None,
            Rule::Globs { set, .. } => set.matched(path, is_dir).map(|_| ()),
        }
    }
}

/// The name a line of an ignore file names a file or directory by, and whether only a
/// directory: `None` unless it is a bare name (see [`Rule::Names`]).
fn bare_name(line: &str) -> Option<(&str, bool)> {
    let (name, dir_only) = match line.strip_suffix('/') {
        Some(name) => (name, true),
        None => (line, false),
    };
    let special = |c: char| "/*?[]{}\\!#".contains(c) || c.is_whitespace() || c.is_control();
    let bare = !name.is_empty() && name != "." && name != ".." && !name.contains(special);
    bare.then_some((name, dir_only))
}

/// Which ignore files a directory's listing names.
#[derive(Default)]
struct Named {
    ignore: bool,
    git: bool,
    dot_git: bool,
}

impl Named {
    /// For a directory not listed (above the walk): each file is looked for.
    const PROBED: Named = Named {
        ignore: true,
        git: true,
        dot_git: true,
    };

    fn note(&mut self, name: &[u8]) {
        match name {
            b".ignore" => self.ignore = true,
            b".gitignore" => self.git = true,
            b".git" => self.dot_git = true,
            _ => {}
        }
    }
}

impl Rules {
    /// The rules of `dir`, whose listing named `named`; `None` when it has none.
    fn of(dir: &Path, named: &Named) -> Option<Rules> {
        let ignore = named.ignore.then(|| rooted(dir, &dir.join(".ignore")));
        let git = named.git.then(|| rooted(dir, &dir.join(".gitignore")));
        let exclude = named
            .dot_git
            .then(|| exclude_file(dir))
            .flatten()
            .map(|file| rooted(dir, &file));
        let rules = Rules {
            ignore: ignore.unwrap_or_else(Rule::none),
            git: git.unwrap_or_else(Rule::none),
            exclude: exclude.unwrap_or_else(Rule::none),
        };
        let none = rules.ignore.is_empty() && rules.git.is_empty() && rules.exclude.is_empty();
        (!none).then_some(rules)
    }

    /// Fills each kind of `found` not decided yet with this directory's match for `path`
    /// (named `name`).
    fn decide(&self, path: &Path, name: &[u8], is_dir: bool, found: &mut [Match<()>; 3]) {
        for (slot, rules) in found
            .iter_mut()
            .zip([&self.ignore, &self.git, &self.exclude])
        {
            if slot.is_none() {
                *slot = rules.matched(path, name, is_dir);
            }
        }
    }
}

/// The rules of the ignore file `file`, rooted at `dir`: none when it does not exist, and
/// what could be read of it when some of it could not. Its lines are taken as `ignore`
/// takes a file's (a byte-order mark before the first is dropped, a line that is no UTF-8
/// is left out, a read that fails ends the file).
fn rooted(dir: &Path, file: &Path) -> Rule {
    let Ok(bytes) = fs::read(file) else {
        return Rule::none();
    };
    let mut lines = Vec::new();
    for (i, line) in io::BufRead::lines(bytes.as_slice()).enumerate() {
        match line {
            Ok(line) if i == 0 => lines.push(line.trim_start_matches('\u{feff}').to_string()),
            Ok(line) => lines.push(line),
            Err(err) if err.kind() == io::ErrorKind::InvalidData => continue,
            Err(_) => break,
        }
    }
    let rules = lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (mut any, mut dirs) = (Vec::new(), Vec::new());
    for line in rules {
        match bare_name(line) {
            Some((name, false)) => any.push(name.to_string()),
            Some((name, true)) => dirs.push(name.to_string()),
            None => return globs(dir, file, &lines),
        }
    }
    Rule::Names { any, dirs }
}

/// The rules of `lines` (of the ignore file `file`, rooted at `dir`) by `ignore`'s builder.
fn globs(dir: &Path, file: &Path, lines: &[String]) -> Rule {
    let mut builder = GitignoreBuilder::new(dir);
    let mut dirs_only = true;
    for line in lines {
        // A line ending in `/` names directories only (or, a bare `/` or `!/`, nothing).
        dirs_only &= line.is_empty() || line.starts_with('#') || line.ends_with('/');
        let _partial = builder.add_line(Some(file.to_path_buf()), line);
    }
    Rule::Globs {
        set: builder.build().unwrap_or_else(|_| Gitignore::empty()),
        dirs_only,
    }
}

/// The ignore files a walk of `root` reads that lie outside it, where no watch of `root`
/// sees them: the `.ignore` and `.gitignore` of each directory above, and the `info/exclude`
/// of each repository whose `.git` is in `root`, above it, or in `nested` (directories
/// under `root`).
pub(super) fn rule_files_outside<'a>(
    root: &'a Path,
    nested: impl Iterator<Item = &'a Path>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in root.ancestors().skip(1) {
        files.push(dir.join(".ignore"));
        files.push(dir.join(".gitignore"));
    }
    let repos = root.ancestors().chain(nested);
    files.extend(repos.filter_map(exclude_file));
    files
}

/// The `info/exclude` file of the repository whose `.git` is in `dir`: in `.git` itself,
/// or for a `.git` file (a worktree) in the common directory it leads to (a submodule's
/// git directory names none: it has no exclude file here, as with `ignore`).
fn exclude_file(dir: &Path) -> Option<PathBuf> {
    let dot_git = dir.join(".git");
    let kind = fs::metadata(&dot_git).ok()?.file_type();
    if !kind.is_file() {
        return Some(dot_git.join("info/exclude"));
    }
    let git_dir = PathBuf::from(first_line(&dot_git)?.strip_prefix("gitdir: ")?);
    let common = first_line(&git_dir.join("commondir"))?;
    let common = match common.starts_with('.') {
        true => git_dir.join(common),
        false => PathBuf::from(common),
    };
    Some(common.join("info/exclude"))
}

/// The first line of `file`, read only from a regular file (a FIFO a `.git` file leads to
/// would hang the walk), and of a file no larger than git's own pointers need.
fn first_line(file: &Path) -> Option<String> {
    let bytes = super::state::read_state_file_at_most(file, POINTER_FILE_MAX).ok()??;
    let text = String::from_utf8(bytes).ok()?;
    text.lines().next().map(str::to_string)
}

/// The most bytes of a `.git` file or a `commondir` file read.
const POINTER_FILE_MAX: u64 = 64 << 10;

/// The rules from outside the walk: the directories above `start` and git's global
/// excludes file.
struct Outer {
    /// `start` resolved, to match the rules of the directories above it.
    start: Option<PathBuf>,
    /// The rules of the directories above `start`, from `/` down.
    above: Vec<Rules>,
    global: Gitignore,
}

impl Outer {
    fn of(start: &Path) -> Outer {
        let global = match std::env::current_dir() {
            Ok(cwd) => super::global_excludes::rules(&cwd),
            Err(_) => Gitignore::empty(),
        };
        let Ok(resolved) = start.canonicalize() else {
            return Outer {
                start: None,
                above: Vec::new(),
                global,
            };
        };
        let mut above: Vec<Rules> = resolved
            .ancestors()
            .skip(1)
            .filter_map(|dir| Rules::of(dir, &Named::PROBED))
            .collect();
        above.reverse();
        Outer {
            start: Some(resolved),
            above,
            global,
        }
    }
}

/// One walk in progress (or one branch of it: the subdirectories of a directory are
/// walked side by side, on rayon's threads, when there are two or more).
struct Walk<'w> {
    start: &'w Path,
    filter: &'w Filter,
    own: &'w OwnState,
    max_depth: Option<usize>,
    /// Directories whose mtime is older have their files listed unstamped.
    settled_before: Option<i64>,
    outer: &'w Outer,
    /// The directories entered that have ignore rules, from `start` down to the one
    /// being listed.
    levels: Vec<Arc<Level>>,
    /// Per device met, whether its filesystem's times are the kernel's (`LOCAL_TIMES`):
    /// asked once a device, not once a directory.
    local: Vec<(u64, bool)>,
    found: Found,
}

/// A directory entered that has ignore rules: they, and where the paths below it start in
/// a path relative to the walk's start.
struct Level {
    rules: Rules,
    from: usize,
}

/// An entry met: its name, its path as walked, relative to the root (encoded) and to the
/// start.
struct Met<'m> {
    name: &'m [u8],
    path: &'m Path,
    rel: &'m str,
    below_start: &'m [u8],
    is_dir: bool,
}

/// A directory to walk: its path, its path from the root, its depth below `start`, and the
/// rules of the directories from `start` down to its parent.
struct Pending {
    path: PathBuf,
    rel: String,
    depth: usize,
    levels: Vec<Arc<Level>>,
}

impl Walk<'_> {
    /// Walks the directory `first` and everything below it: depth first from a stack of
    /// its own (no recursion a deep tree could overflow), the subdirectories of a
    /// directory side by side when there are two or more, down to `PARALLEL_DEPTH` levels.
    fn tree(&mut self, first: Pending) -> Result<(), FpError> {
        let mut pending = vec![first];
        while let Some(Pending {
            path,
            rel,
            depth,
            levels,
        }) = pending.pop()
        {
            self.levels = levels;
            let subdirs = self.dir(&path, &rel, depth)?;
            let side_by_side =
                subdirs.len() >= 2 && depth < PARALLEL_DEPTH && self.max_depth.is_none();
            if !side_by_side {
                pending.extend(subdirs.into_iter().rev().map(|(path, rel)| Pending {
                    path,
                    rel,
                    depth: depth + 1,
                    levels: self.levels.clone(),
                }));
                continue;
            }
            let branches: Vec<Found> = subdirs
                .into_par_iter()
                .map(|(path, rel)| {
                    let mut branch = self.branch();
                    let levels = self.levels.clone();
                    let walked = branch.tree(Pending {
                        path,
                        rel,
                        depth: depth + 1,
                        levels,
                    });
                    walked.map(|()| branch.found)
                })
                .collect::<Result<_, FpError>>()?;
            for found in branches {
                self.found.absorb(found);
            }
        }
        Ok(())
    }

    /// The device of `dir` when its entries last changed (its mtime) before
    /// `settled_before` and it lies on a filesystem whose file times this kernel sets
    /// (`LOCAL_TIMES`).
    fn settled_on(&mut self, dir: &Path, settled_before: i64) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(dir).ok()?;
        if super::mtime_ns(&meta) >= settled_before {
            return None;
        }
        let dev = meta.dev();
        let local = match self.local.iter().find(|(known, _)| *known == dev) {
            Some((_, local)) => *local,
            None => {
                let local = local_times(dir);
                self.local.push((dev, local));
                local
            }
        };
        local.then_some(dev)
    }

    /// A walk of a part of the tree, by a thread of its own.
    fn branch(&self) -> Walk<'_> {
        Walk {
            start: self.start,
            filter: self.filter,
            own: self.own,
            max_depth: self.max_depth,
            settled_before: self.settled_before,
            outer: self.outer,
            levels: Vec::new(),
            local: self.local.clone(),
            found: Found::default(),
        }
    }

    /// Records the directory `dir` (`rel` from the root, at `depth` below `start`) and,
    /// unless that is the deepest level walked, its entries (its rules pushed on
    /// `levels`); the subdirectories to walk. Its listing is let go before any is walked,
    /// so that a deep tree does not hold a descriptor per level.
    fn dir(
        &mut self,
        dir: &Path,
        rel: &str,
        depth: usize,
    ) -> Result<Vec<(PathBuf, String)>, FpError> {
        if self.max_depth.is_some_and(|max| depth >= max) {
            self.found.walked.dirs.push(rel.to_string());
            return Ok(Vec::new());
        }
        // Looked at before the listing: an entry added after it makes the directory newer.
        let settled = self.settled_before.and_then(|t| self.settled_on(dir, t));
        let entries = match list(dir) {
            Ok(entries) => entries,
            // A directory that vanished, or is no directory any more, is not in the set.
            Err(err) if gone(&err) => return Ok(Vec::new()),
            Err(err) => return Err(FpError::io("read", dir, err)),
        };
        self.found.walked.dirs.push(rel.to_string());
        let mut named = Named::default();
        for entry in &entries {
            named.note(entry.file_name().as_bytes());
        }
        if let Some(rules) = Rules::of(dir, &named) {
            let from = below(self.start, dir).map_or(0, |b| b.len() + usize::from(!b.is_empty()));
            self.levels.push(Arc::new(Level { rules, from }));
        }
        let mut subdirs = Vec::new();
        for entry in &entries {
            if let Some(subdir) = self.entry((dir, rel, settled), entry)? {
                subdirs.push(subdir);
            }
        }
        Ok(subdirs)
    }

    /// Records one entry of `dir` (`dir_rel` from the root; `settled`: its files are only
    /// listed, on that device); a directory to walk is given back (its path and its path from
    /// the root).
    fn entry(
        &mut self,
        (dir, dir_rel, settled): (&Path, &str, Option<u64>),
        entry: &fs::DirEntry,
    ) -> Result<Option<(PathBuf, String)>, FpError> {
        let name = entry.file_name();
        let path = child(dir, &name);
        let Some(kind) = file_type(entry, &path)? else {
            return Ok(None);
        };
        let rel = relpath::child(dir_rel, relpath::encode(name.as_bytes()));
        let met = Met {
            name: name.as_bytes(),
            path: &path,
            rel: &rel,
            below_start: below(self.start, &path).unwrap_or_default(),
            is_dir: kind.is_dir(),
        };
        if self.ignored(&met) || self.pruned(&met, &name) {
            return Ok(None);
        }
        if met.is_dir {
            return Ok(Some((path, rel)));
        }
        let kind = match kind {
            k if k.is_symlink() => EntryKind::Symlink,
            k if k.is_file() => EntryKind::File,
            // Sockets, fifos and devices have no content to fingerprint.
            _ => return Ok(None),
        };
        // Before selection: a marker names a state file whatever the filters pick.
        if let Some(state) = companions::marked_state_at(dir_rel, name.as_bytes()) {
            self.found.states.push(state);
            return Ok(None);
        }
        if !self.filter.selects(&rel) {
            return Ok(None);
        }
        if let Some(dev) = settled {
            let inode = std::os::unix::fs::DirEntryExt::ino(entry);
            let listed = Scanned::listed(rel, kind, (dev, inode));
            self.found.walked.files.push(listed);
            return Ok(None);
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(FpError::io("stat", &path, err)),
        };
        self.found.walked.files.push(Scanned::of(rel, kind, &meta));
        Ok(None)
    }

    /// Whether the ignore rules leave out the entry `met`. Each directory's rules see its
    /// path relative to that directory, as `ignore` gives them (it strips their directory
    /// from the path as walked).
    fn ignored(&self, met: &Met) -> bool {
        let mut found = [Match::None, Match::None, Match::None];
        for level in self.levels.iter().rev() {
            let below = met.below_start.get(level.from..).unwrap_or_default();
            let below = Path::new(OsStr::from_bytes(below));
            level.rules.decide(below, met.name, met.is_dir, &mut found);
        }
        if let (Some(start), false) = (&self.outer.start, self.outer.above.is_empty()) {
            let resolved = start.join(OsStr::from_bytes(met.below_start));
            for rules in self.outer.above.iter().rev() {
                rules.decide(&resolved, met.name, met.is_dir, &mut found);
            }
        }
        let [ignore, git, exclude] = found;
        let global = match self.outer.global.is_empty() {
            true => Match::None,
            false => self.outer.global.matched(met.path, met.is_dir).map(|_| ()),
        };
        ignore.or(git).or(exclude).or(global).is_ignore()
    }

    /// Whether the walk's own filter leaves out the entry `met` (named `name`): zccache's
    /// state, excluded names and globs, directories no include can reach.
    fn pruned(&self, met: &Met, name: &OsStr) -> bool {
        self.own.contains(met.path, name)
            || self.filter.excludes(met.rel, &name.to_string_lossy())
            || (met.is_dir && !self.filter.may_hold(met.rel))
    }
}

/// `dir/name` for a name a listing gave (one component): what `Path::join` gives, without
/// its parsing of both paths, paid for each entry.
fn child(dir: &Path, name: &OsStr) -> PathBuf {
    let dir = dir.as_os_str().as_bytes();
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    path.extend_from_slice(dir);
    if !dir.is_empty() && !dir.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(name.as_bytes());
    PathBuf::from(std::ffi::OsString::from_vec(path))
}

/// The part of `path` (a path the walk made from `start`) below `start`, without its `/`.
fn below<'p>(start: &Path, path: &'p Path) -> Option<&'p [u8]> {
    let rest = path
        .as_os_str()
        .as_bytes()
        .strip_prefix(start.as_os_str().as_bytes())?;
    Some(rest.strip_prefix(b"/").unwrap_or(rest))
}

/// Filesystems whose ctimes this kernel sets from its own clock, and moves on every write,
/// chmod, link and rename (not a network or FUSE filesystem, whose times may come from
/// another clock, nor one rolled back in place: ZFS).
const LOCAL_TIMES: [i64; 6] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x794C_7630, // overlayfs
    0xF2F5_2010, // f2fs
];

/// Whether `dir` lies on one of the `LOCAL_TIMES` filesystems.
fn local_times(dir: &Path) -> bool {
    crate::os::filesystem_kind(dir).is_some_and(|kind| LOCAL_TIMES.contains(&kind))
}

/// Whether `err`, listing a directory, says it is gone: vanished, or no directory any more.
fn gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ENOTDIR)
}

/// The entries of `dir`, as listed.
fn list(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    fs::read_dir(dir)?.collect()
}

/// `entry`'s type (not following a link); `None` when it vanished.
fn file_type(entry: &fs::DirEntry, path: &Path) -> Result<Option<FileType>, FpError> {
    match entry.file_type() {
        Ok(kind) => Ok(Some(kind)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(FpError::io("stat", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::super::filter::FilterSpec;
    use super::super::scan::{Walking, scan_with};
    use super::*;

    /// A small deterministic generator (xorshift), so a failing tree can be made again.
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.roll(from.len())]
        }

        fn lines(&mut self, from: &[&str]) -> String {
            (0..1 + self.roll(4))
                .map(|_| format!("{}\n", self.pick(from)))
                .collect()
        }
    }

    const DIRS: &[&str] = &["a", "b", "build", "src", ".hidden", "deep", "node_modules"];
    const FILES: &[&str] = &[
        "x.py",
        "y.log",
        "keep.log",
        "z.txt",
        ".env",
        "data.bin",
        "deep",
        "t.json.zccache-lock",
        "t.json",
        "[x].py",
    ];
    const RULES: &[&str] = &[
        "*.log",
        "!keep.log",
        "build/",
        "/z.txt",
        "a/**/y.*",
        "src/",
        "!src/",
        "*.txt",
        "b",
        "**/deep",
        "# comment",
        "x.py",
        "a/x.py",
        ".hidden/",
        "!*.py",
        "/a",
        "*",
        "!b/",
        "deep/",
        "[",
        "node_modules",
        "deep/ ",
        "!deep/",
        "\u{feff}x.py/",
    ];

    /// Fills `dir` with a random tree, `depth` levels at most (names the dice repeat, or
    /// that are taken by an entry of the other kind, are left as they are).
    fn tree(dice: &mut Dice, dir: &Path, depth: usize, worktree_git: &Path) {
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        for _ in 0..1 + dice.roll(4) {
            let file = dir.join(dice.pick(FILES));
            if fs::write(&file, b"content").is_ok() && dice.roll(5) == 0 {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        for name in [".gitignore", ".ignore"] {
            if dice.roll(3) == 0 {
                fs::write(dir.join(name), dice.lines(RULES)).unwrap();
            }
        }
        match dice.roll(8) {
            0 => {
                let _ = fs::create_dir_all(dir.join(".git/info"));
                let _ = fs::write(dir.join(".git/info/exclude"), dice.lines(RULES));
            }
            1 => {
                let line = format!("gitdir: {}\n", worktree_git.display());
                let _ = fs::write(dir.join(".git"), line);
            }
            _ => {}
        }
        if dice.roll(6) == 0 {
            // A name that is not UTF-8.
            let _ = fs::write(dir.join(OsStr::from_bytes(b"bad\xff.py")), b"x");
        }
        if dice.roll(4) == 0 {
            let _ = symlink(dice.pick(FILES), dir.join("link"));
        }
        if dice.roll(6) == 0 {
            let _ = symlink(".", dir.join("loop"));
        }
        if depth > 0 {
            for _ in 0..dice.roll(4) {
                let sub = dir.join(dice.pick(DIRS));
                tree(dice, &sub, depth - 1, worktree_git);
            }
        }
    }

    /// Both walks of `start` under `root`: files (path, kind, mode, stamp) and directories.
    fn both(
        root: &Path,
        start: &Path,
        max_depth: Option<usize>,
        spec: &FilterSpec,
    ) -> [(Vec<String>, Vec<String>); 2] {
        [Walking::Parallel, Walking::Own].map(|walking| {
            let filter = Filter::compiled(spec).unwrap();
            let own = OwnState::of(&root.join(".zccache/run/t.json"));
            let walked = scan_with(root, start, max_depth, (filter, own), walking).unwrap();
            let files = walked.files.iter().map(|f| format!("{f:?}")).collect();
            let mut dirs = walked.dirs;
            dirs.sort();
            (files, dirs)
        })
    }

    #[test]
    fn a_fifo_where_a_worktrees_pointer_file_was_is_no_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, git) = (dir.path().join("tree"), dir.path().join("git"));
        fs::create_dir_all(&tree).unwrap();
        fs::create_dir_all(&git).unwrap();
        fs::write(tree.join(".git"), format!("gitdir: {}\n", git.display())).unwrap();
        let fifo = std::ffi::CString::new(git.join("commondir").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let (sent, got) = std::sync::mpsc::channel();
        std::thread::spawn(move || sent.send(exclude_file(&tree)).unwrap());
        let found = got.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(found, Ok(None));
    }

    #[test]
    fn a_child_path_is_what_join_gives() {
        for dir in ["/", "/r", "/r/", "r", "", "/r/."] {
            for name in ["a", "a.py", ".git"] {
                let (dir, name) = (Path::new(dir), OsStr::new(name));
                assert_eq!(super::child(dir, name), dir.join(name), "{dir:?} {name:?}");
            }
        }
    }

    #[test]
    fn the_own_walk_finds_what_the_parallel_walk_finds() {
        let specs = [
            FilterSpec::default(),
            FilterSpec {
                include: vec!["**/*.py".into(), "a/**".into()],
                ..FilterSpec::default()
            },
            FilterSpec {
                extensions: vec!["log".into()],
                exclude: vec!["b".into(), "src/**".into()],
                ..FilterSpec::default()
            },
            // Single named files: the walk is pruned to the directories that can hold them.
            FilterSpec {
                include: vec!["a/x.py".into(), "z.txt".into()],
                ..FilterSpec::default()
            },
        ];
        for seed in 1..=60u64 {
            let base = tempfile::tempdir().unwrap();
            let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // A worktree's git directory, its common directory holding `info/exclude`.
            let common = base.path().join("gitdirs/common");
            let worktree_git = base.path().join("gitdirs/worktrees/w");
            fs::create_dir_all(common.join("info")).unwrap();
            fs::create_dir_all(&worktree_git).unwrap();
            fs::write(common.join("info/exclude"), dice.lines(RULES)).unwrap();
            fs::write(worktree_git.join("commondir"), "../../common\n").unwrap();
            // Rules above the walked root apply too.
            let outer = base.path().join("outer");
            fs::create_dir_all(&outer).unwrap();
            if dice.roll(2) == 0 {
                fs::write(outer.join(".gitignore"), dice.lines(RULES)).unwrap();
            }
            let root = outer.join("repo");
            tree(&mut dice, &root, 3, &worktree_git);
            let subdirs: Vec<PathBuf> = fs::read_dir(&root)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            for spec in &specs {
                let [parallel, serial] = both(&root, &root, None, spec);
                assert_eq!(parallel, serial, "seed {seed}, {spec:?}");
                let [parallel, serial] = both(&root, &root, Some(2), spec);
                assert_eq!(parallel, serial, "seed {seed}, {spec:?}, two levels");
                for sub in &subdirs {
                    let [parallel, serial] = both(&root, sub, None, spec);
                    assert_eq!(parallel, serial, "seed {seed}, {spec:?}, {sub:?}");
                    let [parallel, serial] = both(&root, sub, Some(1), spec);
                    assert_eq!(parallel, serial, "seed {seed}, {spec:?}, {sub:?}");
                }
            }
        }
    }
}
