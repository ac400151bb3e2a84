//! `zccache mtimes save | restore`: keep a build cache fresh across checkouts. A CI job that
//! restores `target/` (or a C build tree) from a cache after a fresh checkout finds every
//! source newer than its outputs, since git writes checkout times, and the build tool rebuilds
//! everything. `save` records each file's path, size, mtime and blake3 under chosen roots
//! (the fingerprint engine's walk: ignore rules apply, zccache's own files are left out);
//! `restore`, after the checkout, sets each file's mtime back where its bytes still match.
//!
//! A file whose content differs, that is missing, or that is not a regular file is never
//! touched. The snapshot is data: its paths are relative, plain components only, opened
//! below the directory `restore` runs in without following a symlink anywhere.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dir_fd::DirFd;
use crate::fingerprint::{
    Digest, EntryKind, Filter, FilterSpec, OwnState, read_state_file_at_most, scan,
    write_file_atomic,
};
use crate::paths::lexically_absolute;
use crate::relpath;

/// The snapshot format this version writes and reads.
const FORMAT: &str = "zccache-mtimes/1";
/// Largest snapshot read (about four million files).
const MAX_SNAPSHOT: u64 = 512 << 20;

/// What `save` writes.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: String,
    files: Vec<Saved>,
}

/// One regular file as it was saved.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// Relative to the directory `save` ran in (`relpath` encoding).
    path: String,
    size: u64,
    mtime_ns: i64,
    blake3: Digest,
}

/// What `restore` did, file by file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Files whose mtime was set back.
    pub set_back: usize,
    /// Files whose mtime already was the saved one.
    pub already: usize,
    /// Files whose size or content differs: left alone.
    pub differ: usize,
    /// Files no longer there, or no longer a regular file: left alone.
    pub missing: usize,
}

impl Restored {
    /// Every file the snapshot holds.
    pub fn total(&self) -> usize {
        self.set_back + self.already + self.differ + self.missing
    }

    fn add(mut self, other: Restored) -> Restored {
        self.set_back += other.set_back;
        self.already += other.already;
        self.differ += other.differ;
        self.missing += other.missing;
        self
    }
}

/// Records the regular files under `roots` (inside `base`) into `snapshot`; returns how many.
pub fn save(base: &Path, snapshot: &Path, roots: &[PathBuf]) -> anyhow::Result<usize> {
    let snapshot = lexically_absolute(base, snapshot);
    let filter = Filter::compiled(&FilterSpec::default())?;
    let mut rels = Vec::new();
    for root in roots {
        let start = lexically_absolute(base, root);
        if !start.starts_with(base) {
            bail!(
                "{}: a root must be inside the current directory",
                root.display()
            );
        }
        let walked = scan(
            base,
            &start,
            None,
            Arc::clone(&filter),
            OwnState::of(&snapshot),
        )
        .with_context(|| format!("walk {}", root.display()))?;
        rels.extend(
            walked
                .files
                .into_iter()
                .filter(|f| f.kind == EntryKind::File)
                .map(|f| f.rel),
        );
    }
    rels.sort_unstable();
    rels.dedup();
    let dir = DirFd::open(base).context("open the current directory")?;
    let files: Vec<Saved> = rels
        .into_par_iter()
        .filter_map(|rel| saved(&dir, rel))
        .collect();
    let snap = Snapshot {
        format: FORMAT.to_string(),
        files,
    };
    let bytes = serde_json::to_vec(&snap)?;
    write_file_atomic(&snapshot, &bytes, false)
        .with_context(|| format!("write {}", snapshot.display()))?;
    Ok(snap.files.len())
}

/// The file `rel` as it is now; `None` when it vanished, is not a regular file, or changed
/// while it was read (a snapshot must never pair an mtime with bytes of another time).
fn saved(dir: &DirFd, rel: String) -> Option<Saved> {
    let path = decoded(&rel);
    let mut file = dir.open_file_beneath(&path).ok()?;
    let before = file.metadata().ok()?;
    if !before.is_file() {
        return None;
    }
    let digest = hash_open(&mut file).ok()?;
    let after = file.metadata().ok()?;
    if stamp(&before) != stamp(&after) {
        return None;
    }
    Some(Saved {
        path: rel,
        size: before.len(),
        mtime_ns: mtime_ns(&before),
        blake3: digest,
    })
}

/// Sets back the mtimes `snapshot` holds, for files below `base` whose bytes still match.
/// `None` when there is no snapshot (a CI job's first run).
pub fn restore(base: &Path, snapshot: &Path) -> anyhow::Result<Option<Restored>> {
    let Some(bytes) = read_state_file_at_most(snapshot, MAX_SNAPSHOT)
        .with_context(|| format!("read {}", snapshot.display()))?
    else {
        return Ok(None);
    };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a zccache mtimes snapshot ({e})",
            snapshot.display()
        )
    })?;
    if snap.format != FORMAT {
        bail!(
            "{}: format {:?}, this zccache reads {FORMAT:?}",
            snapshot.display(),
            snap.format
        );
    }
    let paths = snap
        .files
        .iter()
        .map(|f| plain_path(&f.path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|bad| anyhow::anyhow!("{}: {bad}", snapshot.display()))?;
    let dir = DirFd::open(base).context("open the current directory")?;
    Ok(Some(
        snap.files
            .par_iter()
            .zip(paths)
            .map(|(saved, path)| restore_one(&dir, &path, saved))
            .reduce(Restored::default, Restored::add),
    ))
}

/// `rel` as a path of plain components, or why it is refused.
fn plain_path(rel: &str) -> Result<PathBuf, String> {
    let path = decoded(rel);
    let plain = !rel.is_empty()
        && path.components().all(|c| matches!(c, Component::Normal(_)))
        && !rel.split('/').any(|part| part.is_empty() || part == ".");
    match plain {
        true => Ok(path),
        false => Err(format!(
            "refused: {} is not a plain relative path",
            crate::quote::path(rel)
        )),
    }
}

/// Sets back one file's mtime when its size and bytes are the saved ones.
fn restore_one(dir: &DirFd, path: &Path, saved: &Saved) -> Restored {
    let counted = |field: fn(&mut Restored)| {
        let mut r = Restored::default();
        field(&mut r);
        r
    };
    let Ok(mut file) = dir.open_file_beneath(path) else {
        return counted(|r| r.missing = 1);
    };
    let Ok(before) = file.metadata() else {
        return counted(|r| r.missing = 1);
    };
    if !before.is_file() {
        return counted(|r| r.missing = 1);
    }
    if before.len() != saved.size {
        return counted(|r| r.differ = 1);
    }
    if mtime_ns(&before) == saved.mtime_ns {
        return counted(|r| r.already = 1);
    }
    let same = hash_open(&mut file).is_ok_and(|d| d == saved.blake3)
        && file
            .metadata()
            .is_ok_and(|after| stamp(&after) == stamp(&before));
    if !same {
        return counted(|r| r.differ = 1);
    }
    match set_mtime(&file, saved.mtime_ns) {
        Ok(()) => counted(|r| r.set_back = 1),
        Err(_) => counted(|r| r.differ = 1),
    }
}

/// The path `rel` (`relpath` encoding) names.
fn decoded(rel: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(relpath::decode(rel).into_owned()))
}

/// The blake3 of an open file's bytes, as the fingerprint engine hashes a file.
fn hash_open(file: &mut File) -> io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize().into())
}

/// What tells a file changed between two looks.
fn stamp(meta: &std::fs::Metadata) -> (u64, i64, i64, i64, i64) {
    (
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    crate::fingerprint::mtime_ns(meta)
}

/// Sets the open file's mtime to `mtime_ns` (its atime untouched).
fn set_mtime(file: &File, mtime_ns: i64) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
        },
    ];
    // SAFETY: a valid open fd and an array of two timespecs.
    match unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_taken() {
        assert!(plain_path("src/main.rs").is_ok());
        assert!(plain_path("a/b/c.txt").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/./b",
            "a/",
            "..",
        ] {
            assert!(plain_path(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn counts_add_up() {
        let a = Restored {
            set_back: 2,
            already: 1,
            differ: 0,
            missing: 1,
        };
        let b = Restored {
            set_back: 1,
            already: 0,
            differ: 3,
            missing: 0,
        };
        assert_eq!(a.add(b).total(), 8);
    }
}
