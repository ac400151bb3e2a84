//! The two-layer stat table: per file (size, mtime, ctime, inode) → content hash.
//!
//! A file whose metadata match its entry is not read again; one whose metadata moved is
//! re-hashed. An entry whose mtime or ctime lies within [`RACY_WINDOW_NS`] of the scan that
//! recorded it is "racily clean" (the file may have changed again within the clock's
//! granularity) and is always re-hashed, as git does for its index. The ctime counts too: a
//! write that sets the mtime back (`touch -d`, `cp -p`) leaves a stamp that a second such
//! write in the same tick of a coarse clock (1 s on some filesystems) would not move.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FpError;
use super::change::{Change, ChangeKind};
use super::hash::{Digest, hash_entry};
use super::progress::Progress;
use super::scan::{EntryKind, Scanned, Stat};
use crate::relpath;

/// Entries modified this close to their scan are never trusted by metadata alone.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// One file of the input set: its identity, metadata and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the root.
    pub path: String,
    /// File or symlink.
    pub kind: EntryKind,
    /// Any execute bit set.
    pub exec: bool,
    /// Metadata when hashed.
    pub stat: Stat,
    /// Content (or link text) hash.
    pub hash: Digest,
}

/// A scanned and hashed input set, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Wall-clock time the scan started, nanoseconds since the epoch.
    pub scanned_at_ns: i64,
    /// Entries sorted by path.
    pub entries: Vec<Entry>,
}

/// A table produced by [`refresh`], with how much work it took.
#[derive(Debug)]
pub struct Refreshed {
    /// The new table.
    pub table: Table,
    /// Entries whose content was read (new, moved or racily clean).
    pub rehashed: usize,
}

/// Builds the table for `scanned`, reusing hashes from `previous` where metadata match.
/// A file that vanished since the walk is left out; other read errors are returned.
pub fn refresh(
    root: &Path,
    scanned: Vec<Scanned>,
    previous: Option<&Table>,
    scanned_at_ns: i64,
    progress: Option<&Progress>,
) -> Result<Refreshed, FpError> {
    let known = match_previous(&scanned, previous);
    let rehashed = known.iter().filter(|r| r.is_none()).count();
    Ok(Refreshed {
        table: Table {
            scanned_at_ns,
            entries: hash_all(root, scanned, known, progress)?,
        },
        rehashed,
    })
}

/// Turns scanned files into entries, reading (in parallel) those without a known hash.
/// A file that vanished since the walk is left out.
pub fn hash_all(
    root: &Path,
    scanned: Vec<Scanned>,
    known: Vec<Option<Digest>>,
    progress: Option<&Progress>,
) -> Result<Vec<Entry>, FpError> {
    if let Some(progress) = progress {
        progress.add_total(known.iter().filter(|k| k.is_none()).count());
    }
    let entries: Vec<Option<Entry>> = scanned
        .into_par_iter()
        .zip(known)
        .map(|(s, known)| hashed_entry(root, s, known, progress))
        .collect::<Result<_, _>>()?;
    Ok(entries.into_iter().flatten().collect())
}

/// True when `old`, verified at `verified_at_ns`, still describes `s` without reading it:
/// same kind, mode and metadata, and not racily clean.
pub fn reusable(old: &Entry, verified_at_ns: i64, s: &Scanned) -> bool {
    old.kind == s.kind
        && old.exec == s.exec
        && old.stat == s.stat
        && old.stat.changed_ns() + RACY_WINDOW_NS < verified_at_ns
}

fn hashed_entry(
    root: &Path,
    s: Scanned,
    known: Option<Digest>,
    progress: Option<&Progress>,
) -> Result<Option<Entry>, FpError> {
    let hash = match known {
        Some(hash) => hash,
        None => {
            let path = relpath::join(root, &s.rel);
            match hash_entry(&path, s.kind, s.stat.size) {
                Ok(hash) => {
                    if let Some(progress) = progress {
                        progress.hashed_one(s.stat.size);
                    }
                    hash
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(FpError::io("read", path, e)),
            }
        }
    };
    Ok(Some(Entry {
        path: s.rel,
        kind: s.kind,
        exec: s.exec,
        stat: s.stat,
        hash,
    }))
}

/// For each scanned entry, the previous hash when it can be trusted without reading the file.
fn match_previous(scanned: &[Scanned], previous: Option<&Table>) -> Vec<Option<Digest>> {
    let Some(previous) = previous else {
        return vec![None; scanned.len()];
    };
    let mut old = previous.entries.iter().peekable();
    scanned
        .iter()
        .map(|s| {
            while old.next_if(|e| e.path < s.rel).is_some() {}
            let e = old.next_if(|e| e.path == s.rel)?;
            reusable(e, previous.scanned_at_ns, s).then_some(e.hash)
        })
        .collect()
}

/// The input-set key: blake3 over every entry's [`leaf`], in path order. The path set,
/// modes and contents all count; counts and timestamps do not.
pub fn input_key(entries: &[Entry]) -> Digest {
    let leaves: Vec<Digest> = entries.par_iter().map(leaf).collect();
    key_of_leaves(&leaves)
}

/// One entry's part of the key: blake3 of (path, kind, exec bit, content hash).
pub fn leaf(e: &Entry) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(e.path.as_bytes());
    hasher.update(&[0, e.kind as u8, u8::from(e.exec)]);
    hasher.update(&e.hash.0);
    hasher.finalize().into()
}

/// The input-set key from the leaves of every entry, in path order.
pub fn key_of_leaves(leaves: &[Digest]) -> Digest {
    let mut bytes = Vec::with_capacity(leaves.len() * 32);
    for leaf in leaves {
        bytes.extend_from_slice(&leaf.0);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache input set v2\0");
    hasher.update_rayon(&bytes);
    hasher.finalize().into()
}

/// The paths added, removed or modified (content, kind or mode) from `old` to `new`.
pub fn diff(old: &[Entry], new: &[&Entry]) -> Vec<Change> {
    let mut changes = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) => o.path.cmp(&n.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (path, kind) = match order {
            std::cmp::Ordering::Less => (&old[i].path, Some(ChangeKind::Removed)),
            std::cmp::Ordering::Greater => (&new[j].path, Some(ChangeKind::Added)),
            std::cmp::Ordering::Equal => {
                let (o, n) = (&old[i], new[j]);
                let same = o.kind == n.kind && o.exec == n.exec && o.hash == n.hash;
                (&o.path, (!same).then_some(ChangeKind::Modified))
            }
        };
        if let Some(kind) = kind {
            changes.push(Change {
                path: path.clone(),
                kind,
            });
        }
        i += usize::from(order.is_le());
        j += usize::from(order.is_ge());
    }
    changes
}

#[cfg(test)]
impl Entry {
    /// A file entry with a fixed stamp (size 1, inode 1, times 0), for tests.
    pub fn plain_file(path: &str, hash: Digest) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            exec: false,
            stat: Stat {
                size: 1,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: 1,
            },
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> Entry {
        Entry::plain_file(path, Digest::of(content))
    }

    fn scanned(e: &Entry) -> Scanned {
        Scanned {
            rel: e.path.clone(),
            kind: e.kind,
            exec: e.exec,
            stat: e.stat,
            listed_on: None,
        }
    }

    #[test]
    fn matching_metadata_reuses_the_hash() {
        let old = entry("a", b"1");
        let table = Table {
            scanned_at_ns: old.stat.mtime_ns + 3 * RACY_WINDOW_NS,
            entries: vec![old.clone()],
        };
        assert_eq!(
            match_previous(&[scanned(&old)], Some(&table)),
            [Some(old.hash)]
        );
    }

    #[test]
    fn racily_clean_entries_are_rehashed() {
        let old = entry("a", b"1");
        let table = Table {
            scanned_at_ns: old.stat.mtime_ns + RACY_WINDOW_NS / 2,
            entries: vec![old.clone()],
        };
        assert_eq!(match_previous(&[scanned(&old)], Some(&table)), [None]);
    }

    #[test]
    fn an_old_mtime_with_a_recent_ctime_is_racily_clean() {
        let mut old = entry("a", b"1");
        old.stat.mtime_ns = 1_000_000_000;
        old.stat.ctime_ns = 50 * RACY_WINDOW_NS;
        let table = Table {
            scanned_at_ns: old.stat.ctime_ns + RACY_WINDOW_NS / 2,
            entries: vec![old.clone()],
        };
        assert_eq!(match_previous(&[scanned(&old)], Some(&table)), [None]);
        let later = Table {
            scanned_at_ns: old.stat.ctime_ns + 3 * RACY_WINDOW_NS,
            ..table
        };
        assert_eq!(
            match_previous(&[scanned(&old)], Some(&later)),
            [Some(old.hash)]
        );
    }

    #[test]
    fn moved_metadata_is_rehashed() {
        let old = entry("a", b"1");
        let table = Table {
            scanned_at_ns: old.stat.mtime_ns + 3 * RACY_WINDOW_NS,
            entries: vec![old.clone()],
        };
        let mut moved = scanned(&old);
        moved.stat.ctime_ns += 1;
        let mut other = scanned(&old);
        other.stat.inode += 1;
        assert_eq!(match_previous(&[moved], Some(&table)), [None]);
        assert_eq!(match_previous(&[other], Some(&table)), [None]);
    }

    #[test]
    fn diff_names_every_kind() {
        let old = [entry("a", b"1"), entry("b", b"1"), entry("c", b"1")];
        let new = [entry("b", b"2"), entry("c", b"1"), entry("d", b"1")];
        let got: Vec<_> = diff(&old, &new.iter().collect::<Vec<_>>())
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), ChangeKind::Removed),
                ("b".to_string(), ChangeKind::Modified),
                ("d".to_string(), ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn key_sees_a_rename() {
        assert_ne!(
            input_key(&[entry("a.rs", b"x")]),
            input_key(&[entry("c.rs", b"x")])
        );
    }

    #[test]
    fn key_sees_an_exec_bit() {
        let mut exec = entry("run.sh", b"x");
        exec.exec = true;
        assert_ne!(input_key(&[entry("run.sh", b"x")]), input_key(&[exec]));
    }
}
