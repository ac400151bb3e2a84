//! Declared outputs (`--output PATH`): the files each one held after a success, compared
//! before a skip (a deleted or edited file the run made means the output changed; a file in
//! an output directory that the run did not make is the user's and does not count).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// Lists every output: a file, a symlink (not followed), or a directory and all below it.
pub fn digest_outputs(outputs: &[(String, std::path::PathBuf)]) -> io::Result<OutputDigests> {
    outputs
        .iter()
        .map(|(shown, path)| Ok((shown.clone(), list_output(path)?)))
        .collect()
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
