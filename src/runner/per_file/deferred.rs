//! A per-file task with no record (a first run, or a record lost, corrupt or of another
//! format): every file runs, so the command does not wait for their digests.
//!
//! The per-file set is walked. In a directory whose entries changed within the racy window
//! (a fresh clone, an editor's rename-save), each file's stat stamp (size, mtime, ctime,
//! inode) is read; one changed (mtime or ctime) within the window is read at once, as any
//! check reads it (its stamp alone cannot vouch for its content). In a directory that
//! settled before the window, files are only listed: 2,000 stats before the command took
//! ~3.5 ms of a 35 ms ruff run. The command then starts with every file; the others are read
//! after it ended (by `settle`'s process, off the run's time). Such a file passes only when
//! its stamp, read after its digest, is the one that vouches for its content before the
//! command started: for a stamped file, the stamp taken before the walk; for a listed one,
//! a stamp taken after the run whose ctime is older than the walk by the racy window (a
//! write, chmod, link or rename moves a ctime, and nothing sets one back) and whose device
//! and inode are the ones the listing gave (only on local filesystems whose times this
//! kernel sets: `own_walk`'s `LOCAL_TIMES`). Its content did not change from before the run to the reading,
//! so the digest is the content the command saw. A file that was not vouched for, or that
//! could not be read, does not pass, and is left out of the stat table, so the next check
//! reads it again (a file edited in place within 2 s before a first run, say).

use rayon::prelude::*;

use super::select::{self, Current, Unpassed, Why, unchanged_since};
use crate::fingerprint::{
    Digest, Entry, EntryKind, Filter, RACY_WINDOW_NS, Scanned, Stat, Table, Walking, hash_all,
    hash_entry, now_ns,
};
use crate::runner::spec::{PerFile, RunSpec};

/// The files whose digest is read after the command ran.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Deferred {
    /// When the walk started, ns since the epoch.
    pub scanned_at: i64,
    /// The same moment on the boot clock, which no one sets: the wall clock stepped back
    /// across the run leaves no stamp taken after it to vouch by its ctime.
    scanned_at_boot: i64,
    /// Per entry listed without its stamp (a settled directory), its directory's device:
    /// its stamp is taken after the run.
    listed_on: Vec<Option<u64>>,
    /// Per entry of the set (and of the unpassed files, the same list): read after the run.
    read_later: Vec<bool>,
    /// Per entry: could not be read after the run, or (read before) changed across it.
    unread: Vec<bool>,
    /// Per entry read before the run: found holding that content once the run ended.
    held: Vec<bool>,
}

/// How a file's content after its batch is vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouch {
    /// Read before the run: it must still hold that content.
    ReadBefore,
    /// Read after the run: its stamp must be the one from before the run.
    Stamp,
    /// Read before the run, and found holding that content when it ended.
    Held,
    /// Never read: it cannot pass.
    Unread,
}

impl Deferred {
    /// True when it describes a set of `n` files.
    pub fn fits(&self, n: usize) -> bool {
        let flags = [&self.read_later, &self.unread, &self.held];
        flags.iter().all(|f| f.len() == n) && self.listed_on.len() == n
    }

    /// How many files are read after the run.
    pub fn read_after(&self) -> usize {
        self.read_later.iter().filter(|d| **d).count()
    }

    /// How the file at `index` is vouched for.
    pub fn vouch(&self, index: usize) -> Vouch {
        let flag = |flags: &[bool]| flags.get(index).copied();
        match (flag(&self.read_later), flag(&self.unread), flag(&self.held)) {
            (Some(_), Some(true), _) | (None, ..) | (_, None, _) => Vouch::Unread,
            (Some(false), _, Some(true)) => Vouch::Held,
            (Some(false), ..) => Vouch::ReadBefore,
            (Some(true), ..) => Vouch::Stamp,
        }
    }

    /// Once the run ended: whether each file read before it (of `entries`, walked at
    /// `scanned_at`) still holds that content, so that an edit made after zccache returned
    /// does not undo what the run passed. Files read after the run are vouched for later.
    pub fn check_read_before(&mut self, spec: &RunSpec, entries: &[Entry], scanned_at: i64) {
        let read_before: Vec<usize> = (0..entries.len())
            .filter(|i| self.vouch(*i) == Vouch::ReadBefore)
            .collect();
        let held: Vec<bool> = read_before
            .par_iter()
            .map(|i| unchanged_since(spec, &entries[*i], scanned_at))
            .collect();
        for (i, held) in read_before.into_iter().zip(held) {
            self.held[i] = held;
            self.unread[i] = !held;
        }
    }
}

/// Walks the per-file set of `spec`: its entries (racily new files read, the others' digests
/// left to [`read`]), every one of them unpassed (`why`), and what was deferred.
pub fn current(
    spec: &RunSpec,
    per_file: &PerFile,
    why: Why,
) -> Result<(Current, Vec<Unpassed>, Deferred), String> {
    let filter = Filter::compiled(&per_file.filter).map_err(|e| e.to_string())?;
    let scanned_at_boot = crate::os::boot_clock_ns();
    let scanned_at = now_ns();
    let settled_before = scanned_at - RACY_WINDOW_NS;
    let walked = select::walk(spec, filter, Walking::OwnUnstamped { settled_before })?;
    let racy =
        |s: &Scanned| s.listed_on.is_none() && s.stat.changed_ns() + RACY_WINDOW_NS >= scanned_at;
    let (entries, read_later, listed_on, rehashed) = match walked.files.iter().any(racy) {
        // The usual first run: every file is read after it, in one pass over the walk's.
        false => {
            let n = walked.files.len();
            let (entries, listed_on) = walked.files.into_iter().map(read_after).unzip();
            (entries, vec![true; n], listed_on, 0)
        }
        true => {
            let (racy, later): (Vec<_>, Vec<_>) = walked.files.into_iter().partition(racy);
            let read = vec![None; racy.len()];
            let rehashed = read.len();
            let racy = hash_all(&spec.root, racy, read, None).map_err(|e| e.to_string())?;
            let (entries, read_later, listed_on) = merged(racy, later.into_iter().map(read_after));
            (entries, read_later, listed_on, rehashed)
        }
    };
    let unpassed = select::all_unpassed(&entries, why);
    let deferred = Deferred {
        scanned_at,
        scanned_at_boot,
        unread: vec![false; read_later.len()],
        held: vec![false; read_later.len()],
        read_later,
        listed_on,
    };
    let current = Current {
        entries,
        table: None,
        rehashed,
    };
    Ok((current, unpassed, deferred))
}

/// The entry of a file read after the run (its digest a placeholder until then), and the
/// device it was listed on.
fn read_after(s: Scanned) -> (Entry, Option<u64>) {
    let entry = Entry {
        path: s.rel,
        kind: s.kind,
        exec: s.exec,
        stat: s.stat,
        // Replaced by `settle` before anything is judged or saved by it.
        hash: Digest([0; 32]),
    };
    (entry, s.listed_on)
}

/// The entries read before the run and those to read after it (each in path order, as the
/// walk gave them, the latter with the device of each that was only listed) in one path
/// order; per entry, whether it is read after the run, and that device.
fn merged(
    before: Vec<Entry>,
    after: impl Iterator<Item = (Entry, Option<u64>)>,
) -> (Vec<Entry>, Vec<bool>, Vec<Option<u64>>) {
    let mut entries = Vec::with_capacity(before.len() + after.size_hint().0);
    let mut flags = Vec::with_capacity(entries.capacity());
    let mut before = before.into_iter().peekable();
    for (later, listed_on) in after {
        while let Some(read) = before.next_if(|read| read.path < later.path) {
            entries.push(read);
            flags.push((false, None));
        }
        entries.push(later);
        flags.push((true, listed_on));
    }
    for read in before {
        entries.push(read);
        flags.push((false, None));
    }
    let (read_later, listed_on) = flags.into_iter().unzip();
    (entries, read_later, listed_on)
}

/// Once the run ended: the stamps of the files only listed (their directories had settled
/// before the walk). Such a file's stamp vouches that it did not change from before the
/// command started only when its ctime is older than the walk's start by the racy window
/// (no one sets a ctime back; a write, chmod, link or rename moves it, to a time no coarser
/// than that window) and its device and inode are those its directory's listing gave (a
/// snapshot or mount swapped in may hold an old file of the same inode number). Any
/// other file, or all of them when the wall clock stepped back meanwhile, is unread: it does
/// not pass and stays out of the stat table. The content is read next, and this stamp must
/// hold across that read (`stamp_unchanged`).
pub fn stamp_listed(
    spec: &RunSpec,
    entries: &mut [Entry],
    unpassed: &mut [Unpassed],
    deferred: &mut Deferred,
) {
    let stepped =
        (now_ns() - deferred.scanned_at) - (crate::os::boot_clock_ns() - deferred.scanned_at_boot);
    let clock_held = stepped.abs() < RACY_WINDOW_NS / 2;
    let stamps: Vec<Option<(Stat, bool)>> = entries
        .par_iter()
        .zip(&deferred.listed_on)
        .map(|(entry, listed_on)| match listed_on {
            Some(dev) if clock_held => vouching_stamp(spec, entry, (*dev, deferred.scanned_at)),
            _ => None,
        })
        .collect();
    for (i, stamp) in stamps.into_iter().enumerate() {
        if deferred.listed_on[i].is_none() {
            continue;
        }
        let Some((stat, exec)) = stamp else {
            deferred.unread[i] = true;
            continue;
        };
        for entry in
            std::iter::once(&mut entries[i]).chain(unpassed.get_mut(i).map(|u| &mut u.entry))
        {
            entry.stat = stat;
            entry.exec = exec;
        }
    }
}

/// The stamp (and execute bit) of `entry`'s file now, if it vouches for the file as it was
/// before the run (see [`stamp_listed`]).
fn vouching_stamp(
    spec: &RunSpec,
    entry: &Entry,
    (dev, scanned_at): (u64, i64),
) -> Option<(Stat, bool)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(crate::relpath::join(&spec.root, &entry.path)).ok()?;
    let stat = Stat::of(&meta);
    let kind_held = match entry.kind {
        EntryKind::File => meta.file_type().is_file(),
        EntryKind::Symlink => meta.file_type().is_symlink(),
    };
    let same = meta.dev() == dev && stat.inode == entry.stat.inode;
    let settled = same && stat.ctime_ns + RACY_WINDOW_NS < scanned_at;
    let exec = entry.kind == EntryKind::File && meta.permissions().mode() & 0o111 != 0;
    (kind_held && settled).then_some((stat, exec))
}

/// Reads the deferred files of `entries` (in parallel): their digests, `None` where a file
/// could not be read.
pub fn read(spec: &RunSpec, entries: &[Entry], deferred: &Deferred) -> Vec<Option<Digest>> {
    entries
        .par_iter()
        .zip(&deferred.read_later)
        .zip(&deferred.unread)
        .map(|((entry, later), unread)| {
            let path = crate::relpath::join(&spec.root, &entry.path);
            match (later, unread) {
                (true, true) => None,
                (true, false) => hash_entry(&path, entry.kind, entry.stat.size).ok(),
                (false, _) => Some(entry.hash),
            }
        })
        .collect()
}

/// Puts the digests read after the run into the set and the unpassed files, and makes the
/// stat table of the files that were read.
pub fn settle(
    current: &mut Current,
    unpassed: &mut [Unpassed],
    deferred: &mut Deferred,
    digests: &[Option<Digest>],
) {
    let mut read = Vec::with_capacity(current.entries.len());
    for (i, entry) in current.entries.iter_mut().enumerate() {
        match digests.get(i).copied().flatten() {
            Some(digest) => {
                entry.hash = digest;
                if let Some(u) = unpassed.get_mut(i) {
                    u.entry.hash = digest;
                }
                read.push(entry.clone());
            }
            None => deferred.unread[i] = true,
        }
    }
    current.rehashed += deferred.read_after();
    current.table = Some(Table {
        scanned_at_ns: deferred.scanned_at,
        entries: read,
    });
}

/// True when `entry`'s file still has the stamp it had before the run (a new file under its
/// name, a chmod or any write moves its inode or its ctime).
pub fn stamp_unchanged(spec: &RunSpec, entry: &Entry) -> bool {
    let path = crate::relpath::join(&spec.root, &entry.path);
    std::fs::symlink_metadata(&path).is_ok_and(|meta| Stat::of(&meta) == entry.stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry::plain_file(path, Digest([0; 32]))
    }

    #[test]
    fn files_read_before_and_after_keep_one_path_order() {
        let before = ["a/b.py", "a/c.py", "z.py"].map(entry).to_vec();
        let after = ["a.py", "a/b/c.py", "a/d.py"].map(entry).into_iter();
        let after = after.zip([Some(7), None, None]);
        let (entries, read_later, listed_on) = merged(before, after);
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["a.py", "a/b.py", "a/b/c.py", "a/c.py", "a/d.py", "z.py"]
        );
        assert_eq!(read_later, [true, false, true, false, true, false]);
        assert_eq!(listed_on, [Some(7), None, None, None, None, None]);
        let (only_before, flags, _) = merged(vec![entry("x")], std::iter::empty());
        assert_eq!((only_before.len(), flags), (1, vec![false]));
    }
}
