//! A per-file task's record `F.files` beside its state file `F`: per path, the keys it
//! passed under (most recent first, as many as a task keeps successes: `git checkout` back
//! skips) and the content of its last failure; and `F.files.table`, the stat table of its
//! per-file set from the last walk here (so an unchanged file is not read again; a check
//! through the daemon takes the daemon's and leaves it be). Binary (see `codec`), written
//! atomically, read as the fingerprint state is (`read_state_file`: a symlink or FIFO
//! planted there is never followed); anything unreadable is no record, which costs a run,
//! never a false pass.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::codec;
use crate::fingerprint::{Digest, MAX_SUCCESSES, Table, read_state_file, write_file_atomic};
use crate::paths::with_suffix;

/// What is remembered of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRecord {
    /// The file keys it passed under, most recent first.
    pub keys: Vec<Digest>,
    /// Its content when it last passed.
    pub passed: Option<Digest>,
    /// Its content when a run of it last failed (cleared when it passes).
    pub failed: Option<Digest>,
}

/// The content of `F.files`.
#[derive(Debug, Clone, Default)]
pub struct FilesRecord {
    /// By path relative to the root.
    pub paths: BTreeMap<String, PathRecord>,
}

impl FilesRecord {
    /// Records that `path`, holding `content`, passed under `key`.
    pub fn pass(&mut self, path: &str, key: Digest, content: Digest) {
        let record = self.paths.entry(path.to_string()).or_default();
        record.keys.retain(|k| *k != key);
        record.keys.insert(0, key);
        record.keys.truncate(MAX_SUCCESSES);
        record.passed = Some(content);
        record.failed = None;
    }

    /// Records that a run of `path`, holding `content`, failed (its passes stay: another
    /// key, or its content of then, may come back).
    pub fn fail(&mut self, path: &str, content: Digest) {
        self.paths.entry(path.to_string()).or_default().failed = Some(content);
    }

    /// Forgets every path not in `present` (sorted): deleted files.
    pub fn forget_absent<'a>(&mut self, present: impl Iterator<Item = &'a str>) {
        let mut present = present.peekable();
        self.paths.retain(|path, _| {
            while present.next_if(|p| *p < path.as_str()).is_some() {}
            present.peek() == Some(&path.as_str())
        });
    }
}

/// The per-file record of the task whose state file is `cache_file`: `F.files`.
pub fn path_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files")
}

/// Where `--staged` remembers the digests of staged blobs it read: `F.files.blobs`.
pub fn blobs_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.blobs")
}

/// `F.files.table`.
fn table_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.table")
}

/// Loads `F.files`; `None` when there is none, or it is unreadable, corrupt or of another
/// format (as good as none: every file runs).
pub fn load(cache_file: &Path) -> Option<FilesRecord> {
    let bytes = read_state_file(&path_of(cache_file)).ok()??;
    codec::decode_paths(&bytes).map(|paths| FilesRecord { paths })
}

/// Writes `F.files` atomically.
pub fn save(cache_file: &Path, record: &FilesRecord) -> io::Result<()> {
    let bytes = codec::encode_paths(&record.paths);
    write_file_atomic(&path_of(cache_file), &bytes, false)
}

/// Loads `F.files.table`; `None` when there is none or it is not whole and intact.
pub fn load_table(cache_file: &Path) -> Option<Table> {
    let bytes = read_state_file(&table_of(cache_file)).ok()??;
    crate::fingerprint::decode_table(&bytes)
}

/// Writes `F.files.table` atomically.
pub fn save_table(cache_file: &Path, table: &Table) -> io::Result<()> {
    write_file_atomic(
        &table_of(cache_file),
        &crate::fingerprint::encode_table(table),
        false,
    )
}

/// The key of one file's result: the task's key (command, tool, env, shared inputs), the
/// file's path relative to the root and its content.
pub fn file_key(task_key: Digest, path: &str, content: Digest) -> Digest {
    const TAG: &[u8] = b"zccache per-file v1\0";
    // One buffer hashed at once: feeding the parts to a `Hasher` one by one cost twice as
    // much, and a run computes this twice for each of thousands of files.
    let mut bytes = Vec::with_capacity(TAG.len() + 32 + path.len() + 1 + 32);
    bytes.extend_from_slice(TAG);
    bytes.extend_from_slice(&task_key.0);
    bytes.extend_from_slice(path.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&content.0);
    blake3::hash(&bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_key_is_the_digest_of_its_parts_in_order() {
        let (task, content) = (Digest([7; 32]), Digest([9; 32]));
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"zccache per-file v1\0");
        hasher.update(&task.0);
        hasher.update("src/a.py".as_bytes());
        hasher.update(&[0]);
        hasher.update(&content.0);
        let parts: Digest = hasher.finalize().into();
        assert_eq!(file_key(task, "src/a.py", content), parts);
    }

    #[test]
    fn a_path_keeps_its_last_keys_most_recent_first() {
        let mut record = FilesRecord::default();
        for i in 0..(MAX_SUCCESSES as u8 + 2) {
            record.pass("a.py", Digest([i; 32]), Digest([i; 32]));
        }
        record.pass("a.py", Digest([3; 32]), Digest([3; 32]));
        let keys = &record.paths["a.py"].keys;
        assert_eq!(keys.len(), MAX_SUCCESSES);
        assert_eq!(keys[0], Digest([3; 32]));
        assert_eq!(keys.iter().filter(|k| **k == Digest([3; 32])).count(), 1);
    }

    #[test]
    fn a_pass_clears_the_failure_and_absent_paths_are_forgotten() {
        let mut record = FilesRecord::default();
        record.fail("a.py", Digest([1; 32]));
        record.fail("b.py", Digest([1; 32]));
        record.pass("a.py", Digest([2; 32]), Digest([1; 32]));
        assert_eq!(record.paths["a.py"].failed, None);
        record.pass("c.py", Digest([2; 32]), Digest([1; 32]));
        record.forget_absent(["a.py", "b0.py", "c.py"].into_iter());
        assert_eq!(record.paths.keys().collect::<Vec<_>>(), ["a.py", "c.py"]);
    }

    #[test]
    fn the_key_names_path_content_and_task() {
        let (t, c) = (Digest([1; 32]), Digest([2; 32]));
        let key = file_key(t, "a.py", c);
        assert_ne!(key, file_key(t, "b.py", c));
        assert_ne!(key, file_key(Digest([3; 32]), "a.py", c));
        assert_ne!(key, file_key(t, "a.py", Digest([3; 32])));
    }
}
