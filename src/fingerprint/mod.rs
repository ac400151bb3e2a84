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
pub use state::{MAX_SUCCESSES, now_ms};

use decision::decide;
use scan::{OwnState, scan};
use state::{Loaded, Pending, StatePaths, Success};
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
    /// Decide only: write no pending record and no state.
    pub dry_run: bool,
}

/// Checks the inputs against the state in `req.cache_file`.
pub fn check(req: &CheckRequest) -> Result<Decision, FpError> {
    let paths = StatePaths::new(&req.cache_file)?;
    let root = resolve_root(&req.root)?;
    let filter = Arc::new(Filter::new(&req.filter)?);
    let _lock = paths.lock()?;
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
    if !req.dry_run {
        record_check(
            &paths,
            loaded,
            req.cache_type,
            &decision,
            parts,
            table,
            rehashed,
        )?;
    }
    Ok(decision)
}

/// Leaves the pending record; on a skip, also refreshes the stat table and moves the matched
/// success to the front when either changed, so the next check reads nothing again.
fn record_check(
    paths: &StatePaths,
    loaded: Loaded,
    cache_type: CacheType,
    decision: &Decision,
    parts: BTreeMap<String, Digest>,
    table: Table,
    rehashed: usize,
) -> Result<(), FpError> {
    let keep_table = cache_type == CacheType::TwoLayer;
    if decision.verdict == Verdict::Run {
        let pending = Pending::new(decision.key, parts, keep_table.then_some(table));
        return paths.save_pending(&pending);
    }
    paths.save_pending(&Pending::new(decision.key, parts, None))?;
    let mut state = loaded.into_state();
    let table_moved = keep_table
        && (rehashed > 0
            || state.table.as_ref().map(|t| t.entries.len()) != Some(table.entries.len()));
    let at_front = state.successes.first().map(|s| s.key) == Some(decision.key);
    if !table_moved && at_front {
        return Ok(());
    }
    if let Some(pos) = state.successes.iter().position(|s| s.key == decision.key) {
        let hit = state.successes.remove(pos);
        state.successes.insert(0, hit);
    }
    if table_moved {
        state.table = Some(table);
    }
    paths.save(&state)
}

/// Records that the task succeeded on the inputs of the last check.
pub fn mark_success(cache_file: &Path) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    let pending = paths
        .load_pending()
        .ok_or_else(|| FpError::NoPending(paths.file.clone()))?;
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
    paths.save(&state)?;
    paths.remove_pending()
}

/// Records that the task failed on the inputs of the last check: the next check runs it.
pub fn mark_failure(cache_file: &Path) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    let pending = paths
        .load_pending()
        .ok_or_else(|| FpError::NoPending(paths.file.clone()))?;
    let mut state = paths.load().into_state();
    state.successes.retain(|s| s.key != pending.key);
    state.last_failure = Some(pending.key);
    paths.save(&state)?;
    paths.remove_pending()
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
