//! Recording a task's outcome: promote or discard what a check saw, or forget everything.
//! Each record returns the state it saved, so a caller that caches states stays current.

use std::path::Path;

use super::FpError;
use super::state::{MAX_SUCCESSES, Pending, State, StatePaths, Success, now_ms};
use super::table::Table;

/// Records that the task succeeded on the inputs of the last check (`F.pending`).
pub fn mark_success(cache_file: &Path) -> Result<State, FpError> {
    mark_success_with(cache_file, &|| None)
}

/// Like [`mark_success`]; when the pending record carries no stat table (the daemon keeps
/// it in memory), `table` supplies one.
pub fn mark_success_with(
    cache_file: &Path,
    table: &dyn Fn() -> Option<Table>,
) -> Result<State, FpError> {
    mark_from_pending_file(cache_file, |paths, mut pending| {
        if pending.table.is_none() {
            pending.table = table();
        }
        record_success_locked(paths, pending)
    })
}

/// Records that the task failed on the inputs of the last check: the next check runs it.
pub fn mark_failure(cache_file: &Path) -> Result<State, FpError> {
    mark_from_pending_file(cache_file, record_failure_locked)
}

/// Records that the task succeeded on the inputs `pending` describes.
pub fn record_success(cache_file: &Path, pending: Pending) -> Result<State, FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    record_success_locked(&paths, pending)
}

/// Records that the task failed on the inputs `pending` describes.
pub fn record_failure(cache_file: &Path, pending: Pending) -> Result<State, FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    record_failure_locked(&paths, pending)
}

fn mark_from_pending_file(
    cache_file: &Path,
    record: impl FnOnce(&StatePaths, Pending) -> Result<State, FpError>,
) -> Result<State, FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    let pending = paths
        .load_pending()
        .ok_or_else(|| FpError::NoPending(paths.file.clone()))?;
    let state = record(&paths, pending)?;
    paths.remove_pending()?;
    Ok(state)
}

fn record_success_locked(paths: &StatePaths, pending: Pending) -> Result<State, FpError> {
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
    Ok(state)
}

fn record_failure_locked(paths: &StatePaths, pending: Pending) -> Result<State, FpError> {
    let mut state = paths.load().into_state();
    state.successes.retain(|s| s.key != pending.key);
    state.last_failure = Some(pending.key);
    paths.save(&state)?;
    Ok(state)
}

/// Forgets every recorded result for `cache_file`.
pub fn invalidate(cache_file: &Path) -> Result<(), FpError> {
    let paths = StatePaths::new(cache_file)?;
    let _lock = paths.lock()?;
    paths.remove_all()
}
