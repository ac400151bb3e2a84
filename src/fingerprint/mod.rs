//! The fingerprint engine: decide whether a task's inputs changed since its last success.
//!
//! `check` scans the root, reuses or computes content hashes, builds the key, decides, and
//! leaves `F.pending` behind; `mark_success` promotes it, `mark_failure` discards it and
//! records the failure, `invalidate` forgets everything. All of it is synchronous and shared
//! by the CLI, `zccache run` and (later) the daemon.

mod blobs;
mod change;
mod check;
mod companions;
mod decision;
mod error;
mod filter;
mod global_excludes;
mod globs;
mod hash;
mod marks;
mod progress;

mod own_walk;
mod rules_stamp;
mod scan;
mod staged;
mod state;
mod table;
mod table_bytes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use change::{Change, ChangeKind};
pub use decision::{Decision, FILES_PART, Reason, Verdict, plural_files, thousands};
pub use error::FpError;
pub use filter::{Filter, FilterSpec, KEEP};
pub use hash::{Digest, hash_entry};
pub use scan::EntryKind;
pub use state::{
    MAX_SUCCESSES, Pending, now_ms, now_ns, read_state_file, read_state_file_at_most,
    write_file_atomic, write_file_atomic_with_mode,
};

pub use crate::relpath::relative;
pub use check::{Checked, InputSet, check, conclude, open_state, previous_table};
pub use companions::{MARKER, OwnState};
pub use marks::{
    invalidate, mark_failure, mark_success, mark_success_with, record_failure, record_success,
};
pub use progress::Progress;
pub use rules_stamp::RulesStamp;
pub use scan::{Scanned, Stat, Walked, Walking, mtime_ns, scan, scan_with};
pub use staged::staged_entries;
pub use state::{Loaded, State, StatePaths};
pub use table::{
    Entry, RACY_WINDOW_NS, Table, diff, hash_all, key_of_leaves, leaf, refresh, reusable,
};
#[cfg(test)]
pub use table_bytes::assert_every_damage_refused;
pub use table_bytes::{
    Reader, decode_table, encode_entries, encode_table, open, put_len, put_str, seal,
};

/// How a cache file remembers the input set.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CacheType {
    /// Per-file stat table plus content hashes: unchanged files are not read again.
    #[default]
    TwoLayer,
    /// Only the aggregate key: smaller state, every check reads every file.
    Hash,
}

impl CacheType {
    /// The name on the command line and in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            CacheType::TwoLayer => "two-layer",
            CacheType::Hash => "hash",
        }
    }
}

/// Everything a check needs.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The state file `F`.
    pub cache_file: PathBuf,
    /// Two-layer or hash.
    pub cache_type: CacheType,
    /// The directory to scan.
    pub root: PathBuf,
    /// Which files under it count.
    pub filter: FilterSpec,
    /// Key parts besides the file set (`command`, `env`, `tool`, ...), by name.
    pub extra_parts: BTreeMap<String, Digest>,
    /// What the check may write.
    pub writes: CheckWrites,
    /// Fingerprint git's index (staged blobs) instead of the working tree.
    pub staged: bool,
    /// Counters to update while hashing, for a progress line.
    pub progress: Option<std::sync::Arc<Progress>>,
}

/// What a check leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckWrites {
    /// Nothing at all (`--dry-run`).
    Nothing,
    /// The state file's stat-table refresh on a skip; the pending record stays in memory
    /// and is passed to [`record_success`] / [`record_failure`] (`zccache run`).
    State,
    /// Also `F.pending`, for a later `mark-success` / `mark-failure` process (`zccache fp`).
    StateAndPendingFile,
}

/// The key over all parts, in name order.
pub fn combined_key(parts: &BTreeMap<String, Digest>) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache key v1\0");
    for (name, digest) in parts {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&digest.0);
    }
    hasher.finalize().into()
}

/// The root, canonical, or an error naming it when it is not a directory.
pub fn resolve_root(root: &Path) -> Result<PathBuf, FpError> {
    match std::fs::canonicalize(root) {
        Ok(path) if path.is_dir() => Ok(path),
        _ => Err(FpError::BadRoot(root.to_path_buf())),
    }
}
