//! Outputs restored instead of rebuilt: after a success the content of every file the
//! declared outputs hold goes into the artifact store (content-addressed, so unchanged files
//! cost nothing), and a skip whose outputs are missing or edited writes them back from there.
//!
//! What to restore — paths, kinds, modes, symlink targets, digests — comes from the task's
//! own record (`F.run`); the store gives only bytes, each checked against its digest. Every
//! file's bytes are in hand before the first one is written, the record's entries are
//! checked (`output_rules`) and written whole or not at all (`restore`), and nothing else is
//! touched: a file in an output directory that the run did not make is left as it is. Any
//! failure means the task runs.

use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::output_entry::{OutputDigests, OutputEntry, OutputKind};
use super::outputs::{changed_outputs, digest_outputs, holds};
use super::spec::RunSpec;
use super::{artifacts, output_rules, restore};
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::Digest;

/// The store key of the outputs of a success with fingerprint `key`.
fn store_key(spec: &RunSpec, key: Digest) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache run outputs v1\0");
    hasher.update(&key.0);
    hasher.update(spec.cwd.as_os_str().as_encoded_bytes());
    for (shown, _) in &spec.outputs {
        hasher.update(b"\0");
        hasher.update(shown.as_bytes());
    }
    format!("run-outputs/{}", hasher.finalize().to_hex())
}

/// Stores the content of every file `outputs` lists (as the run left them).
pub fn save(
    spec: &RunSpec,
    key: Digest,
    outputs: &OutputDigests,
    use_daemon: bool,
) -> io::Result<()> {
    let artifact = Artifact {
        outputs: blobs(spec, outputs)?,
        ..Artifact::default()
    };
    artifacts::store(&store_key(spec, key), &artifact, use_daemon)
}

/// The content of every file `outputs` lists, once per digest, named by its hex digest.
pub fn blobs(spec: &RunSpec, outputs: &OutputDigests) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut blobs: HashMap<Digest, Vec<u8>> = HashMap::new();
    for (shown, base) in &spec.outputs {
        let Some(Some(entries)) = outputs.get(shown) else {
            continue;
        };
        for entry in entries.iter().filter(|e| e.kind == OutputKind::File) {
            let (Some(digest), Ok(path)) = (entry.digest, entry_path(base, entry)) else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            if Digest::of(&bytes) != digest {
                return Err(io::Error::other(format!(
                    "{} changed while it was stored",
                    path.display()
                )));
            }
            blobs.insert(digest, bytes);
        }
    }
    Ok(blobs.into_iter().map(|(d, b)| (d.to_hex(), b)).collect())
}

/// What the outputs should hold and what they hold now.
pub struct Restore<'a> {
    /// The listing of the success.
    pub recorded: &'a OutputDigests,
    /// The listing now.
    pub now: &'a OutputDigests,
    /// The outputs that differ.
    pub changed: &'a [String],
}

/// Writes back what the record says the changed outputs held (entries already as recorded
/// are left alone); nothing is written unless the store has every file's bytes, and nothing
/// at all when `dry_run` (then it only tells whether it could). Err: why not (the task then
/// runs).
pub fn restore(
    spec: &RunSpec,
    key: Digest,
    restore: &Restore<'_>,
    use_daemon: bool,
    dry_run: bool,
) -> Result<(), String> {
    let artifact = artifacts::lookup(&store_key(spec, key), use_daemon)
        .ok_or("the outputs are not in the cache")?;
    write_back(spec, &artifact, restore, dry_run)
}

/// Writes back the `changed` outputs as `recorded` says, with the bytes `artifact` holds (its
/// outputs named by hex digest). The record may come from another machine or a hand edit:
/// each output's entries must pass `output_rules::check`, and the write goes through
/// `restore` (whole or not at all, never through a symlink the record did not make). Ok only
/// when the outputs then hold what was recorded (with `dry_run`: when everything could be
/// written, nothing written).
pub fn write_back(
    spec: &RunSpec,
    artifact: &Artifact,
    restore: &Restore<'_>,
    dry_run: bool,
) -> Result<(), String> {
    let Restore {
        recorded,
        now,
        changed,
    } = restore;
    let blobs: HashMap<Digest, &[u8]> = artifact
        .outputs
        .iter()
        .filter_map(|(name, bytes)| Some((Digest::from_hex(name)?, bytes.as_slice())))
        .filter(|(digest, bytes)| Digest::of(bytes) == *digest)
        .collect();
    let mut wanted = Vec::new();
    for (shown, base) in spec.outputs.iter().filter(|(s, _)| changed.contains(s)) {
        let Some(Some(entries)) = recorded.get(shown) else {
            return Err(format!("{shown} did not exist after the last success"));
        };
        output_rules::check(shown, entries)?;
        let present = now.get(shown).cloned().flatten().unwrap_or_default();
        let needed: Vec<&OutputEntry> = entries
            .iter()
            .filter(|e| !holds(&present, std::slice::from_ref(e)))
            .collect();
        if let Some(missing) = needed.iter().find(|e| {
            e.kind == OutputKind::File && !e.digest.is_some_and(|d| blobs.contains_key(&d))
        }) {
            return Err(format!("{shown}: {:?} is not in the cache", missing.path));
        }
        wanted.push(restore::Wanted {
            shown,
            base,
            entries,
            needed,
        });
    }
    if dry_run {
        return Ok(());
    }
    restore::write(&spec.cwd, &wanted, &blobs)?;
    let again = digest_outputs(&spec.outputs).map_err(|e| e.to_string())?;
    match changed_outputs(recorded, &again).is_empty() {
        true => Ok(()),
        false => Err("the restored files differ from the record".to_string()),
    }
}

/// Where an entry of the output at `base` lives; its recorded path must stay inside.
fn entry_path(base: &Path, entry: &OutputEntry) -> Result<PathBuf, String> {
    let rel = Path::new(&entry.path);
    if entry.path.is_empty() {
        Ok(base.to_path_buf())
    } else if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(base.join(rel))
    } else {
        Err(format!("{:?} is not a path inside the output", entry.path))
    }
}
