//! The fingerprint engine: decide whether a task's inputs changed since its last success.
//!
//! `check` scans the root, reuses or computes content hashes, builds the key, decides, and
//! leaves `F.pending` behind; `mark_success` promotes it, `mark_failure` discards it and
//! records the failure, `invalidate` forgets everything. All of it is synchronous and shared
//! by the CLI, `zccache run` and (later) the daemon.

mod decision;
mod error;
mod filter;
mod hash;
mod scan;
mod state;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use decision::{
    Change, ChangeKind, Decision, FILES_PART, Reason, Verdict, plural_files, thousands,
};
pub use error::FpError;
pub use filter::{Filter, FilterSpec};
pub use hash::{Digest, hash_entry};
pub use scan::EntryKind;
pub use state::{MAX_SUCCESSES, Pending, now_ms, write_file_atomic};

use decision::decide;
use scan::{OwnState, scan};
use state::{Loaded, StatePaths, Success};
use table::{Refreshed, Table, input_key, refresh};

/// How a cache file remembers the input set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheType {
    /// Per-file stat table plus content hashes: unchanged files are not read again.
    #[default]
    TwoLayer,
    /// Only the aggregate key: smaller state, every check reads every file.
    Hash,
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

/// A decision and the record to keep if the task then succeeds or fails.
#[derive(Debug)]
pub struct Checked {
    /// Skip or run, and why.
    pub decision: Decision,
    /// What the check saw.
    pub pending: Pending,
}

/// Checks the inputs against the state in `req.cache_file`.
pub fn check(req: &CheckRequest) -> Result<Checked, FpError> {
    let root = resolve_root(&req.root)?;
    let filter = Arc::new(Filter::new(&req.filter)?);
    let (paths, _lock) = if req.writes == CheckWrites::Nothing {
        let paths = StatePaths::existing(&req.cache_file)?;
        let lock = paths.lock_existing()?;
        (paths, lock)
    } else {
        let paths = StatePaths::new(&req.cache_file)?;
        let lock = paths.lock()?;
        (paths, Some(lock))
    };
    let scanned_at_ns = state::now_ns();
    // Parsing a large stat table overlaps with the walk.
    let (loaded, scanned) = std::thread::scope(|s| {
        let loading = s.spawn(|| paths.load());
        let scanned = scan(&root, filter, OwnState::of(&paths.file));
        let loaded = loading
            .join()
            .unwrap_or_else(|_| Loaded::Unreadable("state loader panicked".to_string()));
        (loaded, scanned)
    });
    let scanned = scanned?;
    let previous = match (&loaded, req.cache_type) {
        (Loaded::Ok(state), CacheType::TwoLayer) => state.table.as_ref(),
        _ => None,
    };
    let Refreshed { table, rehashed } = refresh(&root, scanned, previous, scanned_at_ns)?;
    let mut parts = req.extra_parts.clone();
    parts.insert(FILES_PART.to_string(), input_key(&table.entries));
    let key = combined_key(&parts);
    let judged = decide(&loaded, key, &parts);
    let changes = match (
        previous,
        judged.changed_parts.iter().any(|p| p == FILES_PART),
    ) {
        (Some(old), true) => table::diff(&old.entries, &table.entries),
        _ => Vec::new(),
    };
    let decision = Decision {
        verdict: judged.verdict,
        reason: judged.reason,
        files: table.entries.len(),
        changes,
        changed_parts: judged.changed_parts,
        hashed: rehashed,
        last_success_ms: judged.last_success_ms,
        key,
    };
    let keep_table = req.cache_type == CacheType::TwoLayer;
    let pending_table = (keep_table && decision.verdict == Verdict::Run).then_some(table.clone());
    let pending = Pending::new(key, parts, pending_table);
    if req.writes == CheckWrites::StateAndPendingFile {
        paths.save_pending(&pending)?;
    }
    if req.writes != CheckWrites::Nothing && decision.verdict == Verdict::Skip && keep_table {
        refresh_on_skip(&paths, loaded, key, table, rehashed)?;
    }
    Ok(Checked { decision, pending })
}

/// On a skip, stores the refreshed stat table and moves the matched success to the front when
/// either changed, so the next check reads nothing again.
fn refresh_on_skip(
    paths: &StatePaths,
    loaded: Loaded,
    key: Digest,
    table: Table,
    rehashed: usize,
) -> Result<(), FpError> {
    let mut state = loaded.into_state();
    let table_moved =
        rehashed > 0 || state.table.as_ref().map(|t| t.entries.len()) != Some(table.entries.len());
    let at_front = state.successes.first().map(|s| s.key) == Some(key);
    if !table_moved && at_front {
        return Ok(());
    }
    if let Some(pos) = state.successes.iter().position(|s| s.key == key) {
        let hit = state.successes.remove(pos);
        state.successes.insert(0, hit);
    }
    if table_moved {
        state.table = Some(table);
    }
    paths.save(&state)
}

/// Records that the task succeeded on the inputs of the last check (`F.pending`).
pub fn mark_success(cache_file: &Path) -> Result<(), FpError> {
    mark_from_pending_file(cache_file, record_success_locked)
}

/// Records that the task failed on the inputs of the last check: the next check runs it.
pub fn mark_failure(cache_file: &Path) -> Result<(), FpError> {
    mark_from_pending_file(cache_file, record_failure_locked)
}

/// Records that the task succeeded on the inputs `pending` describes.
pub fn record_success(cache_file: &Path, pending: Pending) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    record_success_locked(&paths, pending)
}

/// Records that the task failed on the inputs `pending` describes.
pub fn record_failure(cache_file: &Path, pending: Pending) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    record_failure_locked(&paths, pending)
}

fn mark_from_pending_file(
    cache_file: &Path,
    record: fn(&StatePaths, Pending) -> Result<(), FpError>,
) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    let pending = paths
        .load_pending()
        .ok_or_else(|| FpError::NoPending(paths.file.clone()))?;
    record(&paths, pending)?;
    paths.remove_pending()
}

fn record_success_locked(paths: &StatePaths, pending: Pending) -> Result<(), FpError> {
    let mut state = paths.load().into_state();
    state.successes.retain(|s| s.key != pending.key);
    state.successes.insert(
        0,
        Success {
            key: pending.key,
            parts: pending.parts,
            at_ms: now_ms(),
        },
    );
    state.successes.truncate(MAX_SUCCESSES);
    if state.last_failure == Some(pending.key) {
        state.last_failure = None;
    }
    if pending.table.is_some() {
        state.table = pending.table;
    }
    paths.save(&state)
}

fn record_failure_locked(paths: &StatePaths, pending: Pending) -> Result<(), FpError> {
    let mut state = paths.load().into_state();
    state.successes.retain(|s| s.key != pending.key);
    state.last_failure = Some(pending.key);
    paths.save(&state)
}

/// Forgets every recorded result for `cache_file`.
pub fn invalidate(cache_file: &Path) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    paths.remove_all()
}

/// The key over all parts, in name order.
fn combined_key(parts: &BTreeMap<String, Digest>) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache key v1\0");
    for (name, digest) in parts {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&digest.0);
    }
    hasher.finalize().into()
}

fn resolve_root(root: &Path) -> Result<PathBuf, FpError> {
    match std::fs::canonicalize(root) {
        Ok(path) if path.is_dir() => Ok(path),
        _ => Err(FpError::BadRoot(root.to_path_buf())),
    }
}
