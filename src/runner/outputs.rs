//! Declared outputs (`--output PATH`): the files each one held after a success, compared
//! before a skip (a deleted or edited file the run made means the output changed; a file in
//! an output directory that the run did not make is the user's and does not count).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spec::is_glob;
use crate::fingerprint::{Digest, EntryKind, hash_entry};

/// What one entry of an output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A regular file (its content is in the artifact store under its digest).
    File,
    /// A symlink, with its target text.
    Symlink(String),
    /// A directory.
    Dir,
}

/// One file, symlink or directory an output held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEntry {
    /// Its path inside the output (`""`: the output itself).
    pub path: String,
    /// What it is.
    pub kind: OutputKind,
    /// Permission bits.
    pub mode: u32,
    /// The content digest (of a symlink: of its target; of a directory: none).
    pub digest: Option<Digest>,
}

/// Output (as given) → its entries, sorted by path (`None`: it did not exist).
pub type OutputDigests = BTreeMap<String, Option<Vec<OutputEntry>>>;

/// Lists every output: a file, a symlink (not followed), or a directory and all below it;
/// a glob, the files and symlinks it matches under its base (none matched: missing).
pub fn digest_outputs(outputs: &[(String, std::path::PathBuf)]) -> io::Result<OutputDigests> {
    outputs
        .iter()
        .map(|(shown, path)| {
            let listed = match is_glob(shown) {
                true => list_glob(path, shown)?,
                false => list_output(path)?,
            };
            Ok((shown.clone(), listed))
        })
        .collect()
}

/// The files and symlinks under `base` whose path relative to it matches `pattern`, walked
/// from the pattern's literal leading directories.
fn list_glob(base: &Path, pattern: &str) -> io::Result<Option<Vec<OutputEntry>>> {
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| io::Error::other(format!("bad --output glob {pattern:?}: {e}")))?
        .compile_matcher();
    let literal: Vec<&str> = pattern
        .split('/')
        .take_while(|part| !is_glob(part))
        .collect();
    let start = literal.join("/");
    let mut all = Vec::new();
    let root = base.join(&start);
    if std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
        list_tree(&root, &start, &mut all)?;
    }
    let mut entries: Vec<OutputEntry> = all
        .into_iter()
        .filter(|e| e.kind != OutputKind::Dir && matcher.is_match(&e.path))
        .filter(|e| {
            !e.path
                .split('/')
                .any(|part| part == ".git" || part == ".zccache")
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(entries).filter(|e| !e.is_empty()))
}

/// The outputs that do not hold what was recorded: missing now (or then), or one of the
/// recorded entries gone or different. Entries the record does not name are ignored.
pub fn changed_outputs(recorded: &OutputDigests, now: &OutputDigests) -> Vec<String> {
    now.iter()
        .filter(|(path, entries)| {
            let (Some(Some(was)), Some(is)) = (recorded.get(*path), entries) else {
                return true;
            };
            !holds(is, was)
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// True when `now` has every entry of `was`, identical.
pub fn holds(now: &[OutputEntry], was: &[OutputEntry]) -> bool {
    was.iter().all(|entry| {
        now.binary_search_by(|e| e.path.cmp(&entry.path))
            .is_ok_and(|at| now[at] == *entry)
    })
}

fn list_output(path: &Path) -> io::Result<Option<Vec<OutputEntry>>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut entries = vec![entry(path, String::new(), &meta)?];
    if meta.is_dir() {
        list_tree(path, "", &mut entries)?;
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(entries))
}

fn list_tree(dir: &Path, rel: &str, out: &mut Vec<OutputEntry>) -> io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(item.path())?;
        out.push(entry(&item.path(), rel.clone(), &meta)?);
        if meta.is_dir() {
            list_tree(&item.path(), &rel, out)?;
        }
    }
    Ok(())
}

fn entry(path: &Path, rel: String, meta: &std::fs::Metadata) -> io::Result<OutputEntry> {
    let (kind, digest) = if meta.is_symlink() {
        let target = std::fs::read_link(path)?.to_string_lossy().into_owned();
        let digest = hash_entry(path, EntryKind::Symlink, 0)?;
        (OutputKind::Symlink(target), Some(digest))
    } else if meta.is_dir() {
        (OutputKind::Dir, None)
    } else if meta.is_file() {
        (
            OutputKind::File,
            Some(hash_entry(path, EntryKind::File, meta.len())?),
        )
    } else {
        return Err(io::Error::other(format!(
            "{} is neither a file, a directory nor a symlink",
            path.display()
        )));
    };
    Ok(OutputEntry {
        path: rel,
        kind,
        mode: meta.permissions().mode() & 0o777,
        digest,
    })
}
