//! A check: build the input table (by walking, or from a caller's index), decide against the
//! state, and record what the check saw.

use std::fs::File;

use super::companions::OwnState;
use super::decision::decide;
use super::scan::scan;
use super::staged::{staged_entries, staged_table};
use super::state::{self, Loaded, Pending, StatePaths};
use super::table::{self, Entry, Refreshed, Table, input_key, refresh};
use super::{
    CacheType, Change, CheckRequest, CheckWrites, Decision, Digest, FILES_PART, Filter, FpError,
    Verdict, combined_key, resolve_root,
};

/// A decision and the record to keep if the task then succeeds or fails.
#[derive(Debug)]
pub struct Checked {
    /// Skip or run, and why.
    pub decision: Decision,
    /// What the check saw.
    pub pending: Pending,
}

/// The input set as a caller built it, for [`conclude`].
pub struct InputSet<'a> {
    /// Key over the set (see `table::input_key`).
    pub key: Digest,
    /// Number of files.
    pub files: usize,
    /// Files whose content was read to build it.
    pub rehashed: usize,
    /// The changes from an old table (the last success's) to this set, computed only when a
    /// verdict needs them.
    pub changes: &'a dyn Fn(&[Entry]) -> Vec<Change>,
    /// The table to store in pending records and the state; `None` when the caller keeps
    /// it in memory and supplies it when a success is recorded (the daemon).
    pub table: Option<&'a dyn Fn() -> Table>,
}

/// Checks the inputs against the state in `req.cache_file`, walking the root.
pub fn check(req: &CheckRequest) -> Result<Checked, FpError> {
    let root = resolve_root(&req.root)?;
    let filter = Filter::compiled(&req.filter)?;
    let (paths, _lock) = open_state(req)?;
    if req.staged {
        return check_staged(req, &root, &filter, &paths);
    }
    let scanned_at_ns = state::now_ns();
    // Parsing a large stat table overlaps with the walk; beside a few files named one by
    // one, it is read in turn (a thread took longer to start than the walk).
    let beside = !filter.names_single_files();
    let (mut loaded, scanned) = std::thread::scope(|s| {
        let loading = beside.then(|| s.spawn(|| paths.load()));
        let scanned = scan(&root, &root, None, filter, OwnState::of(&paths.file));
        let loaded = match loading {
            Some(loading) => loading
                .join()
                .unwrap_or_else(|_| Loaded::Unreadable("state loader panicked".to_string())),
            None => paths.load(),
        };
        (loaded, scanned)
    });
    let previous = previous_table(&loaded, req.cache_type);
    let Refreshed { table, rehashed } = refresh(
        &root,
        scanned?.files,
        previous,
        scanned_at_ns,
        req.progress.as_deref(),
    )?;
    let built = InputSet {
        key: input_key(&table.entries),
        files: table.entries.len(),
        rehashed,
        changes: &|old| table::diff(old, &table.entries.iter().collect::<Vec<_>>()),
        table: Some(&|| table.clone()),
    };
    conclude(req, &paths, &mut loaded, &built)
}

/// A check of what git's index holds, keyed as the working tree would be. A success keeps
/// the old stat table's entries the staged content still matches (see `staged_table`); a
/// skip leaves the table alone.
fn check_staged(
    req: &CheckRequest,
    root: &std::path::Path,
    filter: &Filter,
    paths: &StatePaths,
) -> Result<Checked, FpError> {
    let save_blobs = req.writes != CheckWrites::Nothing;
    let (entries, read) = staged_entries(root, filter, &paths.blobs, save_blobs)?;
    let mut loaded = paths.load();
    let built = InputSet {
        key: input_key(&entries),
        files: entries.len(),
        rehashed: read,
        changes: &|old| table::diff(old, &entries.iter().collect::<Vec<_>>()),
        table: None,
    };
    let mut checked = conclude(req, paths, &mut loaded, &built)?;
    if checked.decision.verdict == Verdict::Run {
        checked.pending.table = (req.cache_type == CacheType::TwoLayer)
            .then(|| staged_table(previous_table(&loaded, req.cache_type), &entries));
        if req.writes == CheckWrites::StateAndPendingFile {
            paths.save_pending(&checked.pending)?;
        }
    }
    Ok(checked)
}

/// Opens the state files of a check: created and locked exclusively when the check may write,
/// else only looked at (a dry run creates nothing).
pub fn open_state(req: &CheckRequest) -> Result<(StatePaths, Option<File>), FpError> {
    if req.writes == CheckWrites::Nothing {
        let paths = StatePaths::existing(&req.cache_file)?;
        let lock = paths.lock_existing()?;
        Ok((paths, lock))
    } else {
        let paths = StatePaths::new(&req.cache_file)?;
        let lock = paths.lock()?;
        Ok((paths, Some(lock)))
    }
}

/// The stat table a two-layer check may reuse hashes from.
pub fn previous_table(loaded: &Loaded, cache_type: CacheType) -> Option<&Table> {
    match (loaded, cache_type) {
        (Loaded::Ok(state), CacheType::TwoLayer) => state.table.as_ref(),
        _ => None,
    }
}

/// Decides on `inputs` against `loaded` and records as `req.writes` allows. On a skip whose
/// table moved, the state is saved and `loaded` updated to match.
pub fn conclude(
    req: &CheckRequest,
    paths: &StatePaths,
    loaded: &mut Loaded,
    inputs: &InputSet<'_>,
) -> Result<Checked, FpError> {
    let mut parts = req.extra_parts.clone();
    parts.insert(FILES_PART.to_string(), inputs.key);
    let key = combined_key(&parts);
    let judged = decide(loaded, key, &parts);
    let keep_table = req.cache_type == CacheType::TwoLayer;
    let files_changed = judged.changed_parts.iter().any(|p| p == FILES_PART);
    let changes = match previous_table(loaded, req.cache_type) {
        Some(old) if files_changed => (inputs.changes)(&old.entries),
        _ => Vec::new(),
    };
    let decision = Decision {
        verdict: judged.verdict,
        reason: judged.reason,
        files: inputs.files,
        changes,
        changed_parts: judged.changed_parts,
        hashed: inputs.rehashed,
        last_success_ms: judged.last_success_ms,
        key,
        files_key: inputs.key,
    };
    let pending_table = inputs
        .table
        .filter(|_| keep_table && decision.verdict == Verdict::Run)
        .map(|table| table());
    let pending = Pending::new(key, parts, pending_table);
    if req.writes == CheckWrites::StateAndPendingFile {
        paths.save_pending(&pending)?;
    }
    if req.writes != CheckWrites::Nothing && decision.verdict == Verdict::Skip && keep_table {
        refresh_on_skip(paths, loaded, key, inputs)?;
    }
    Ok(Checked { decision, pending })
}

/// On a skip, stores the refreshed stat table and moves the matched success to the front when
/// either changed, so the next check reads nothing again.
fn refresh_on_skip(
    paths: &StatePaths,
    loaded: &mut Loaded,
    key: Digest,
    inputs: &InputSet<'_>,
) -> Result<(), FpError> {
    let mut state = std::mem::replace(loaded, Loaded::Fresh).into_state();
    // Without a table to store (the daemon keeps its own), only the order of successes can move.
    let table_moved = inputs.table.is_some()
        && (inputs.rehashed > 0
            || state.table.as_ref().map(|t| t.entries.len()) != Some(inputs.files));
    let at_front = state.successes.first().map(|s| s.key) == Some(key);
    if !table_moved && at_front {
        *loaded = Loaded::Ok(state);
        return Ok(());
    }
    if let Some(pos) = state.successes.iter().position(|s| s.key == key) {
        let hit = state.successes.remove(pos);
        state.successes.insert(0, hit);
    }
    if let (true, Some(table)) = (table_moved, inputs.table) {
        state.table = Some(table());
    }
    let saved = paths.save(&state);
    *loaded = Loaded::Ok(state);
    saved
}
