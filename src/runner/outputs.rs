//! Declared outputs (`--output PATH`): their digests after a success, compared before a skip
//! so that a deleted or edited output forces a run.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::fingerprint::{Digest, EntryKind, hash_entry};

/// Output path (as given) → digest of its content, `None` when it does not exist.
pub type OutputDigests = BTreeMap<String, Option<Digest>>;

/// Digests every output: a file by content, a directory by its sorted tree of names, kinds
/// and contents, a symlink by its target text.
pub fn digest_outputs(outputs: &[(String, std::path::PathBuf)]) -> io::Result<OutputDigests> {
    outputs
        .iter()
        .map(|(shown, path)| Ok((shown.clone(), digest_path(path)?)))
        .collect()
}

/// The outputs whose digest differs from the recorded one (or that were never recorded).
pub fn changed_outputs(recorded: &OutputDigests, now: &OutputDigests) -> Vec<String> {
    now.iter()
        .filter(|(path, digest)| recorded.get(*path) != Some(digest) || digest.is_none())
        .map(|(path, _)| path.clone())
        .collect()
}

fn digest_path(path: &Path) -> io::Result<Option<Digest>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = blake3::Hasher::new();
    if meta.is_dir() {
        hash_tree(path, Path::new(""), &mut hasher)?;
    } else {
        let kind = if meta.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::File
        };
        hasher.update(&hash_entry(path, kind, meta.len())?.0);
    }
    Ok(Some(hasher.finalize().into()))
}

fn hash_tree(dir: &Path, rel: &Path, hasher: &mut blake3::Hasher) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let file_type = entry.file_type()?;
        hasher.update(rel.as_os_str().as_bytes());
        hasher.update(&[0]);
        if file_type.is_dir() {
            hasher.update(b"d");
            hash_tree(&path, &rel, hasher)?;
        } else {
            let (tag, kind) = if file_type.is_symlink() {
                (b"l", EntryKind::Symlink)
            } else {
                (b"f", EntryKind::File)
            };
            hasher.update(tag);
            hasher.update(&hash_entry(&path, kind, entry.metadata()?.len())?.0);
        }
    }
    Ok(())
}
