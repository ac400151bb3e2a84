//! The skip of a per-file task where nothing changed, in one round trip to the daemon and
//! without reading the per-file record.
//!
//! After a check or run in which every per-file file passed, `F.files.all` remembers the
//! pair (task key, per-file set key): the task's key (command, tool, env, shared inputs) and
//! the input-set key of the per-file files (their paths and contents), made from the very
//! entries that were judged. The next check asks the daemon, in one batch, for the task's
//! check and for the key of the per-file set as it watches it (under a state name of its
//! own, `F.files.set`, which a dry check never writes); a pair it remembers is a skip. Both
//! keys name contents, not times: a file edited and back again still skips, and a file
//! edited while its batch ran never enters a pair with bytes that did not pass.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::fingerprint::{Digest, MAX_SUCCESSES, read_state_file, write_file_atomic};
use crate::paths::with_suffix;
use crate::runner::check::{self, Answer};
use crate::runner::spec::{PerFile, RunSpec};

const MAGIC: &[u8] = b"zccache per-file all v1\n";

/// The daemon's answers for the task's check (`shared`) and for its per-file set (`set`);
/// `None` where it could not answer (no daemon running: the task checks by itself).
pub struct Asked {
    /// The task's check: its key and how to record it.
    pub shared: Option<Answer>,
    /// The per-file set's check: its `files_key` and `files` count serve.
    pub set: Option<Answer>,
}

/// Asks a running daemon, in one round trip, for the task's check with `parts` and for the
/// per-file set's key.
pub fn ask(
    spec: &RunSpec,
    per_file: &PerFile,
    parts: &BTreeMap<String, Digest>,
    dry_run: bool,
) -> Asked {
    let mut set = spec.clone();
    set.cache_file = set_state(&spec.cache_file);
    set.filter = per_file.filter.clone();
    let specs = vec![
        check::daemon_spec(spec, parts, dry_run),
        check::daemon_spec(&set, &BTreeMap::new(), true),
    ];
    let mut answers = check::ask_batch(specs).into_iter();
    Asked {
        shared: answers.next().flatten(),
        set: answers.next().flatten(),
    }
}

/// True when every per-file file passed under `task_key` with the per-file set whose key
/// is `set_key`.
pub fn known(cache_file: &Path, task_key: Digest, set_key: Digest) -> bool {
    load(cache_file).contains(&pair(task_key, set_key))
}

/// Remembers that every file of the per-file set keyed `set_key` passed under `task_key`
/// (the last few such pairs are kept, most recent first).
pub fn remember(cache_file: &Path, task_key: Digest, set_key: Digest) -> io::Result<()> {
    let new = pair(task_key, set_key);
    let mut pairs = load(cache_file);
    if pairs.first() == Some(&new) {
        return Ok(());
    }
    pairs.retain(|p| *p != new);
    pairs.insert(0, new);
    pairs.truncate(MAX_SUCCESSES);
    let mut bytes = MAGIC.to_vec();
    for p in &pairs {
        bytes.extend_from_slice(&p.0);
    }
    write_file_atomic(&path_of(cache_file), &bytes, false)
}

/// `F.files.all`.
fn path_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.all")
}

/// `F.files.set`: the daemon's name for the per-file set's index.
fn set_state(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.set")
}

/// The remembered pairs; anything unreadable is none (a miss, never a false skip).
fn load(cache_file: &Path) -> Vec<Digest> {
    let Ok(Some(bytes)) = read_state_file(&path_of(cache_file)) else {
        return Vec::new();
    };
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        return Vec::new();
    };
    body.chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(Digest))
        .collect()
}

fn pair(task_key: Digest, set_key: Digest) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(MAGIC);
    hasher.update(&task_key.0);
    hasher.update(&set_key.0);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_remembered_most_recent_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.json");
        let (a, b) = (Digest([1; 32]), Digest([2; 32]));
        assert!(!known(&file, a, b));
        remember(&file, a, b).unwrap();
        assert!(known(&file, a, b));
        assert!(
            !known(&file, b, a),
            "the task key and the set key are not interchangeable"
        );
        for i in 0..(MAX_SUCCESSES as u8 + 3) {
            remember(&file, Digest([i + 10; 32]), b).unwrap();
        }
        assert_eq!(load(&file).len(), MAX_SUCCESSES);
        assert!(!known(&file, a, b), "the oldest pair is forgotten");
        std::fs::write(path_of(&file), b"garbage").unwrap();
        assert!(load(&file).is_empty());
    }
}
