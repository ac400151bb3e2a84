//! Writing a checked record back into the outputs, whole or not at all, never through a
//! symlink on disk that the record did not make.
//!
//! Every path is reached one component at a time from the task's directory (`O_NOFOLLOW`):
//! a symlink between it and an output, or inside an output where the record has a
//! directory or file, refuses the restore. Nothing takes the final names until everything
//! is prepared: a missing directory is built whole in a temporary directory beside it
//! (modes applied last, deepest first) and renamed into place; a file or symlink is written
//! to a temporary name in its directory, then renamed over the old one. A failure before
//! that removes every temporary and directory made, and puts back any mode widened to
//! write into a read-only directory. Temporaries are named `.zccache-tmp.<pid>.<random>`,
//! never listed as outputs, and removed once their process is gone: by the next listing
//! (inside an output), the next restore or run (a tree staged beside one).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::output_entry::{OutputEntry, OutputKind};
use super::output_rules::is_glob;
use crate::dir_fd::{DirFd, Found};
use crate::fingerprint::Digest;
use crate::paths::TEMP_PREFIX;

/// One output to write back.
pub struct Wanted<'a> {
    /// The output as given (a path or a glob).
    pub shown: &'a str,
    /// Its absolute path (a glob's: the task's directory).
    pub base: &'a Path,
    /// Every entry the record gives it (checked by `output_rules`).
    pub entries: &'a [OutputEntry],
    /// The entries that do not hold now, in the record's order.
    pub needed: Vec<&'a OutputEntry>,
}

/// Writes back every `wanted` output under the task directory `cwd`, with file bytes from
/// `blobs`; Err says why not, with nothing left changed.
pub fn write(
    cwd: &Path,
    wanted: &[Wanted<'_>],
    blobs: &HashMap<Digest, &[u8]>,
) -> Result<(), String> {
    let mut writer = Writer {
        umask: crate::os::umask(),
        blobs,
        undo: Vec::new(),
        commits: Vec::new(),
        modes: Vec::new(),
        writable: HashMap::new(),
        staged: HashMap::new(),
    };
    let prepared = wanted
        .iter()
        .try_for_each(|output| writer.prepare(cwd, output));
    match prepared.and_then(|()| writer.commit()) {
        Ok(()) => Ok(()),
        Err(why) => {
            writer.roll_back();
            Err(why)
        }
    }
}

/// Removes the temporaries `strays` (found by a listing) whose process is gone.
pub fn sweep(strays: &[PathBuf]) {
    for stray in strays {
        let (Some(dir), Some(name)) = (stray.parent(), stray.file_name()) else {
            continue;
        };
        if is_stale(name)
            && let Ok(dir) = DirFd::open(dir)
        {
            let _ = dir.remove_tree(name);
        }
    }
}

/// Removes the trees that restores now gone staged beside the plain `outputs` (in their
/// parent directories, which no listing walks): once such an output is made another way
/// (`--force`, a build by hand), no restore would look there again.
pub fn sweep_beside(outputs: &[(String, PathBuf)]) {
    let parents: std::collections::BTreeSet<&Path> = outputs
        .iter()
        .filter(|(shown, _)| !is_glob(shown))
        .filter_map(|(_, base)| base.parent())
        .collect();
    for dir in parents.into_iter().filter_map(|dir| DirFd::open(dir).ok()) {
        sweep_dir(&dir);
    }
}

/// Removes the temporaries in `dir` whose process is gone (a tree staged beside an output
/// by a restore that was killed).
fn sweep_dir(dir: &DirFd) {
    for name in dir.names().unwrap_or_default() {
        if is_stale(&name) {
            let _ = dir.remove_tree(&name);
        }
    }
}

/// True when `name` is a temporary of a process that is gone.
fn is_stale(name: &OsStr) -> bool {
    let pid = name.to_str().and_then(|n| {
        let rest = n.strip_prefix(TEMP_PREFIX)?;
        rest.split('.').next()?.parse::<u32>().ok()
    });
    pid.is_some_and(|pid| pid != std::process::id() && !crate::os::process_alive(pid))
}

/// What to do if the restore cannot be whole.
enum Undo {
    /// Remove a temporary (file, symlink or staged tree).
    Temp(Rc<DirFd>, OsString),
    /// Remove a directory made on the way to an output, if still empty.
    MadeDir(Rc<DirFd>, OsString),
    /// Put back a directory's mode (also done after a whole restore).
    Mode(Rc<DirFd>, u32),
}

/// A prepared temporary that takes its final name at commit.
struct Commit {
    dir: Rc<DirFd>,
    temp: OsString,
    name: OsString,
    /// A staged directory, which must not replace anything.
    new: bool,
}

struct Writer<'a> {
    umask: u32,
    blobs: &'a HashMap<Digest, &'a [u8]>,
    undo: Vec<Undo>,
    commits: Vec<Commit>,
    /// Recorded modes of directories that already existed, set last.
    modes: Vec<(Rc<DirFd>, u32)>,
    /// The directories made writable where needed so far.
    writable: HashMap<*const DirFd, Rc<DirFd>>,
    /// The trees staged so far, by the directory (device, inode) and name they will take:
    /// an output inside another one (`dist/sub` in `dist`) is written there, never staged
    /// twice.
    staged: HashMap<((u64, u64), OsString), Rc<DirFd>>,
}

/// The directories of one output opened so far, by path inside it.
type Opened = HashMap<String, Rc<DirFd>>;

impl Writer<'_> {
    fn prepare(&mut self, cwd: &Path, output: &Wanted<'_>) -> Result<(), String> {
        let start = Rc::new(DirFd::open(cwd).map_err(|e| format!("{}: {e}", cwd.display()))?);
        if is_glob(output.shown) {
            let mut opened = Opened::from([(String::new(), start)]);
            return output
                .needed
                .iter()
                .try_for_each(|entry| self.prepare_glob_entry(&mut opened, output, entry));
        }
        let (anchor, parts) = walk_from(cwd, output.base).ok_or_else(|| {
            format!(
                "{}: an output holding the task's directory is not restored",
                output.shown
            )
        })?;
        let mut dir =
            Rc::new(DirFd::open(&anchor).map_err(|e| format!("{}: {e}", anchor.display()))?);
        let (name, parents) = parts.split_last().ok_or("no output name")?;
        for part in parents {
            dir = self.enter(&dir, part, true, output.shown)?;
        }
        self.prepare_plain(dir, name, output)
    }

    /// A plain output named `name` in `parent`.
    fn prepare_plain(
        &mut self,
        parent: Rc<DirFd>,
        name: &OsStr,
        output: &Wanted<'_>,
    ) -> Result<(), String> {
        let shown = output.shown;
        let root = &output.entries[0];
        if root.kind != OutputKind::Dir {
            self.make_writable(&parent);
            return self.prepare_leaf(&parent, name, root, shown);
        }
        match self.found(&parent, name, shown)? {
            Found::Missing => {
                sweep_dir(&parent);
                self.make_writable(&parent);
                return self.stage_tree(&parent, name, output.entries, "");
            }
            Found::Dir => {}
            Found::Symlink => return Err(symlink_in_the_way(shown)),
            _ => return Err(format!("{shown} is in the way: not a directory")),
        }
        let top = self.enter(&parent, name, false, shown)?;
        let mut opened = Opened::from([(String::new(), top)]);
        // Staged trees hold everything below them (not always the entries right after:
        // `a-b/y` sorts between `a` and `a/x`).
        let mut staged: HashSet<&str> = HashSet::new();
        for entry in &output.needed {
            let path = entry.path.as_str();
            if path
                .match_indices('/')
                .any(|(at, _)| staged.contains(&path[..at]))
            {
                continue;
            }
            if path.is_empty() {
                self.modes.push((Rc::clone(&opened[""]), entry.mode));
                continue;
            }
            let (dir, name) = self.parent_of(&mut opened, path, false, shown)?;
            if entry.kind != OutputKind::Dir {
                self.prepare_leaf(&dir, &name, entry, &format!("{shown}/{path}"))?;
                continue;
            }
            match self.found(&dir, &name, shown)? {
                Found::Missing => {
                    self.stage_tree(&dir, &name, output.entries, path)?;
                    staged.insert(path);
                }
                Found::Dir => {
                    let opened_dir = self.enter(&dir, &name, false, shown)?;
                    self.modes.push((Rc::clone(&opened_dir), entry.mode));
                    opened.insert(path.to_string(), opened_dir);
                }
                Found::Symlink => return Err(symlink_in_the_way(&format!("{shown}/{path}"))),
                _ => return Err(format!("{shown}/{path} is in the way: not a directory")),
            }
        }
        Ok(())
    }

    /// A file or symlink matched by a glob output: its directories are made as needed.
    fn prepare_glob_entry(
        &mut self,
        opened: &mut Opened,
        output: &Wanted<'_>,
        entry: &OutputEntry,
    ) -> Result<(), String> {
        let (dir, name) = self.parent_of(opened, &entry.path, true, output.shown)?;
        self.prepare_leaf(&dir, &name, entry, &entry.path)
    }

    /// The open directory holding `path` (walked from `opened[""]`, each step without
    /// following a symlink; made when missing if `create`) and the entry's own name.
    fn parent_of(
        &mut self,
        opened: &mut Opened,
        path: &str,
        create: bool,
        shown: &str,
    ) -> Result<(Rc<DirFd>, OsString), String> {
        let (dir_path, name) = path.rsplit_once('/').unwrap_or(("", path));
        let mut at = String::new();
        for part in dir_path.split('/').filter(|p| !p.is_empty()) {
            let parent = Rc::clone(&opened[&at]);
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if !opened.contains_key(&at) {
                let dir = self.enter(&parent, OsStr::new(part), create, shown)?;
                opened.insert(at.clone(), dir);
            }
        }
        let dir = Rc::clone(&opened[&at]);
        self.make_writable(&dir);
        Ok((dir, OsString::from(name)))
    }

    /// Opens the directory `name` in `dir`, never through a symlink; made if missing and
    /// `create`.
    fn enter(
        &mut self,
        dir: &Rc<DirFd>,
        name: &OsStr,
        create: bool,
        shown: &str,
    ) -> Result<Rc<DirFd>, String> {
        if let Some(staged) = self.staged_at(dir, name) {
            return Ok(staged);
        }
        if create && found(dir, name, shown)? == Found::Missing {
            self.make_writable(dir);
            dir.mkdir(name, 0o777)
                .map_err(|e| io_error(shown, name, &e))?;
            self.undo
                .push(Undo::MadeDir(Rc::clone(dir), name.to_os_string()));
        }
        match dir.open_child(name) {
            Ok(opened) => Ok(Rc::new(opened)),
            Err(_) if found(dir, name, shown)? == Found::Symlink => Err(symlink_in_the_way(
                &format!("{shown} ({})", name.to_string_lossy()),
            )),
            Err(e) => Err(io_error(shown, name, &e)),
        }
    }

    /// What `name` in `dir` is; a tree staged for it counts as the directory it will be.
    fn found(&self, dir: &DirFd, name: &OsStr, shown: &str) -> Result<Found, String> {
        match self.staged_at(dir, name) {
            Some(_) => Ok(Found::Dir),
            None => found(dir, name, shown),
        }
    }

    /// The tree staged to become `name` in `dir`, if any.
    fn staged_at(&self, dir: &DirFd, name: &OsStr) -> Option<Rc<DirFd>> {
        if self.staged.is_empty() {
            return None;
        }
        let id = dir.id().ok()?;
        self.staged.get(&(id, name.to_os_string())).cloned()
    }

    /// Lets this process create names in `dir` when its mode forbids it (put back after).
    fn make_writable(&mut self, dir: &Rc<DirFd>) {
        // Kept alive in the map, a directory's address names it for the whole restore.
        if self
            .writable
            .insert(Rc::as_ptr(dir), Rc::clone(dir))
            .is_some()
        {
            return;
        }
        let Ok(mode) = dir.mode() else {
            return;
        };
        if mode & 0o300 != 0o300 && dir.set_mode(mode | 0o700).is_ok() {
            self.undo.push(Undo::Mode(Rc::clone(dir), mode));
        }
    }

    /// A file or symlink `entry` at `name` in `dir`, written under a temporary name.
    fn prepare_leaf(
        &mut self,
        dir: &Rc<DirFd>,
        name: &OsStr,
        entry: &OutputEntry,
        shown: &str,
    ) -> Result<(), String> {
        match (self.found(dir, name, shown)?, &entry.kind) {
            (Found::Dir, _) => return Err(format!("{shown} is in the way: a directory")),
            (Found::Symlink, OutputKind::File) => return Err(symlink_in_the_way(shown)),
            _ => {}
        }
        let temp = temp_name();
        self.put(dir, &temp, entry)
            .map_err(|e| format!("cannot restore {shown}: {e}"))?;
        self.commits.push(Commit {
            dir: Rc::clone(dir),
            temp,
            name: name.to_os_string(),
            new: false,
        });
        Ok(())
    }

    /// Builds the directory `top` of `entries` (with everything below it) under a temporary
    /// name in `dir`, modes last and deepest first.
    fn stage_tree(
        &mut self,
        dir: &Rc<DirFd>,
        name: &OsStr,
        entries: &[OutputEntry],
        top: &str,
    ) -> Result<(), String> {
        let temp = temp_name();
        let shown = name.to_string_lossy();
        dir.mkdir(&temp, 0o700)
            .map_err(|e| io_error(&shown, name, &e))?;
        self.undo.push(Undo::Temp(Rc::clone(dir), temp.clone()));
        let staged = Rc::new(
            dir.open_child(&temp)
                .map_err(|e| io_error(&shown, name, &e))?,
        );
        let id = dir.id().map_err(|e| io_error(&shown, name, &e))?;
        self.staged
            .insert((id, name.to_os_string()), Rc::clone(&staged));
        let mut opened = Opened::from([(String::new(), Rc::clone(&staged))]);
        let mut modes = Vec::new();
        for (rel, entry) in below(entries, top) {
            if rel.is_empty() {
                modes.push((Rc::clone(&staged), entry.mode));
                continue;
            }
            let (parent, child) = self.parent_of(&mut opened, rel, false, &shown)?;
            match entry.kind {
                OutputKind::Dir => {
                    parent
                        .mkdir(&child, 0o700)
                        .map_err(|e| io_error(&shown, &child, &e))?;
                    let made = Rc::new(
                        parent
                            .open_child(&child)
                            .map_err(|e| io_error(&shown, &child, &e))?,
                    );
                    modes.push((Rc::clone(&made), entry.mode));
                    opened.insert(rel.to_string(), made);
                }
                _ => self
                    .put(&parent, &child, entry)
                    .map_err(|e| io_error(&shown, &child, &e))?,
            }
        }
        for (made, mode) in modes.iter().rev() {
            set_recorded_mode(made, *mode, self.umask).map_err(|e| io_error(&shown, name, &e))?;
        }
        self.commits.push(Commit {
            dir: Rc::clone(dir),
            temp,
            name: name.to_os_string(),
            new: true,
        });
        Ok(())
    }

    /// Creates the file or symlink `entry` as `name` in `dir` (which must not exist).
    fn put(&mut self, dir: &Rc<DirFd>, name: &OsStr, entry: &OutputEntry) -> std::io::Result<()> {
        match (&entry.kind, entry.digest.and_then(|d| self.blobs.get(&d))) {
            (OutputKind::Symlink(target), _) => {
                dir.symlink(OsStr::new(target), name)?;
                self.undo
                    .push(Undo::Temp(Rc::clone(dir), name.to_os_string()));
                Ok(())
            }
            (OutputKind::File, Some(bytes)) => {
                let mut file = dir.create_file(name)?;
                self.undo
                    .push(Undo::Temp(Rc::clone(dir), name.to_os_string()));
                file.write_all(bytes)?;
                let mode = entry.mode & 0o777 & !self.umask;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
            }
            _ => Err(std::io::Error::other("no content in the cache")),
        }
    }

    /// Gives every prepared temporary its final name, then the directories their modes.
    fn commit(&mut self) -> Result<(), String> {
        for c in &self.commits {
            let moved = match c.new {
                true => c.dir.rename_new(&c.temp, &c.name),
                false => c.dir.rename(&c.temp, &c.name),
            };
            moved.map_err(|e| format!("cannot restore {}: {e}", c.name.to_string_lossy()))?;
        }
        self.commits.clear();
        for undo in std::mem::take(&mut self.undo).into_iter().rev() {
            if let Undo::Mode(dir, mode) = undo {
                let _ = dir.set_mode(mode);
            }
        }
        for (dir, mode) in &self.modes {
            set_recorded_mode(dir, *mode, self.umask)
                .map_err(|e| format!("cannot set a directory's mode: {e}"))?;
        }
        Ok(())
    }

    /// Removes what was made and puts back widened modes, newest first.
    fn roll_back(&mut self) {
        for undo in std::mem::take(&mut self.undo).into_iter().rev() {
            let _ = match undo {
                Undo::Temp(dir, name) => dir.remove_tree(&name),
                Undo::MadeDir(dir, name) => dir.remove_dir(&name),
                Undo::Mode(dir, mode) => dir.set_mode(mode),
            };
        }
    }
}

/// The entries (sorted) of the directory `top` and of everything below it, with their
/// paths inside it (`top` itself: `""`), found by binary search: a restore stages one tree
/// per missing directory, and thousands of them must not each scan the whole record.
fn below<'e>(
    entries: &'e [OutputEntry],
    top: &str,
) -> impl Iterator<Item = (&'e str, &'e OutputEntry)> {
    let prefix = match top {
        "" => String::new(),
        _ => format!("{top}/"),
    };
    let own = entries.binary_search_by(|e| e.path.as_str().cmp(top)).ok();
    let first = entries.partition_point(|e| e.path.as_str() < prefix.as_str());
    let inside = entries[first..]
        .iter()
        .map_while(move |e| Some((e.path.strip_prefix(prefix.as_str())?, e)));
    own.map(|at| ("", &entries[at]))
        .into_iter()
        .chain(inside.filter(|(rel, _)| !rel.is_empty()))
}

/// The deepest directory holding both `cwd` and `output`, and the parts from it to the
/// output (None when the output is that directory itself).
fn walk_from(cwd: &Path, output: &Path) -> Option<(PathBuf, Vec<OsString>)> {
    let mut anchor = PathBuf::new();
    let mut rest = Vec::new();
    let mut shared = true;
    let mut cwd_parts = cwd.components();
    for part in output.components() {
        shared = shared && cwd_parts.next() == Some(part);
        match (shared, part) {
            (true, _) => anchor.push(part),
            (false, Component::Normal(name)) => rest.push(name.to_os_string()),
            (false, _) => return None,
        }
    }
    (!rest.is_empty()).then_some((anchor, rest))
}

/// Gives `dir` the recorded permission bits under the umask, keeping its own setgid, sticky
/// and setuid bits: a record's never count, and a directory made in a setgid tree keeps the
/// bit it inherited, as `mkdir` leaves it.
fn set_recorded_mode(dir: &DirFd, mode: u32, umask: u32) -> std::io::Result<()> {
    let own = dir.mode()? & 0o7000;
    dir.set_mode(own | (mode & 0o777 & !umask))
}

fn found(dir: &DirFd, name: &OsStr, shown: &str) -> Result<Found, String> {
    dir.found(name)
        .map(|(found, _)| found)
        .map_err(|e| io_error(shown, name, &e))
}

fn symlink_in_the_way(shown: &str) -> String {
    format!("{shown} is a symlink the record did not make; a restore never writes through one")
}

fn io_error(shown: &str, name: &OsStr, e: &std::io::Error) -> String {
    format!("{shown}: {}: {e}", name.to_string_lossy())
}

/// A fresh temporary name: this process's id (so a later listing knows when its maker is
/// gone) and 64 bits nobody can guess.
fn temp_name() -> OsString {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(crate::fingerprint::now_ns());
    let name = format!(
        "{TEMP_PREFIX}{}.{:016x}",
        std::process::id(),
        hasher.finish()
    );
    OsString::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::is_temp;

    #[test]
    fn the_walk_starts_where_the_task_directory_and_the_output_part() {
        let walk = |cwd: &str, out: &str| walk_from(Path::new(cwd), Path::new(out));
        let parts = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            walk("/p/app", "/p/app/build/dist"),
            Some((PathBuf::from("/p/app"), parts(&["build", "dist"])))
        );
        assert_eq!(
            walk("/p/app", "/p/shared/x"),
            Some((PathBuf::from("/p"), parts(&["shared", "x"])))
        );
        assert_eq!(walk("/p/app", "/p/app"), None);
        assert_eq!(walk("/p/app", "/p"), None);
    }

    #[test]
    fn below_a_directory_are_its_entries_only() {
        let entry = |path: &str| OutputEntry {
            path: path.to_string(),
            kind: OutputKind::Dir,
            mode: 0o755,
            digest: None,
        };
        let entries: Vec<_> = ["", "a", "a-b", "a-b/y", "a/x", "a/x/z", "ab"]
            .into_iter()
            .map(entry)
            .collect();
        let rels = |top| below(&entries, top).map(|(rel, _)| rel).collect::<Vec<_>>();
        assert_eq!(rels("a"), ["", "x", "x/z"]);
        assert_eq!(rels("a-b"), ["", "y"]);
        assert_eq!(rels("ab"), [""]);
        assert_eq!(rels(""), ["", "a", "a-b", "a-b/y", "a/x", "a/x/z", "ab"]);
    }

    #[test]
    fn temporaries_are_recognised_and_unique() {
        let (a, b) = (temp_name(), temp_name());
        assert!(is_temp(&a) && is_temp(&b) && a != b);
        assert!(!is_temp(OsStr::new("big.bin.tmp.1.2")));
    }
}
