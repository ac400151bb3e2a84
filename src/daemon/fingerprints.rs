//! Fingerprints served by the daemon: the same engine (`conclude`) on input sets kept in
//! memory and refreshed from watcher events, so an unchanged check walks nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::index::Index;
use super::protocol::IndexStatus;
use super::watcher::Watcher;
use crate::fingerprint::{
    self, CacheType, CheckRequest, Checked, Digest, Filter, FilterSpec, FpError, InputSet, Loaded,
    OwnState, Pending, State, StatePaths, combined_key, conclude, open_state, previous_table,
    resolve_root,
};
use crate::os::release_free_memory;

/// The mode of a check whose input set came from the daemon's memory.
pub const WATCHED_MODE: &str = "watched";

/// How many `zccache run` pending records are kept for clients that have not reported back.
const MAX_PENDING_RUNS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndexKey {
    cache_file: PathBuf,
    root: PathBuf,
    filter: FilterSpec,
}

struct Slot {
    id: u64,
    /// The watcher was asked to watch the root (done on first use, outside the service lock).
    subscribed: bool,
    /// Order of last use, to find the freshest index of a cache file.
    last_used: u64,
    /// The cache type of the last check (a `hash` state keeps no table).
    cache_type: CacheType,
    index: Index,
    watch_error: Option<String>,
    /// Key parts besides the files at the last check (for `status`).
    last_parts: BTreeMap<String, Digest>,
    /// Identity of the state file whose stat table is the index's diff base.
    base_identity: Option<(u64, i64, u64)>,
    /// The index just gave its table to a success being recorded.
    base_awaits_save: bool,
}

impl Slot {
    /// A slot not yet watching its root (`check` subscribes it under the slot's own lock).
    fn new(id: u64, root: &Path, filter: Arc<Filter>, own: OwnState, req: &CheckRequest) -> Self {
        Slot {
            id,
            subscribed: false,
            last_used: id,
            cache_type: req.cache_type,
            index: Index::new(root.to_path_buf(), filter, own),
            watch_error: None,
            last_parts: BTreeMap::new(),
            base_identity: None,
            base_awaits_save: false,
        }
    }
}

/// A state file's parsed content and the identity of the file it came from.
struct CachedState {
    identity: Option<(u64, i64, u64)>,
    loaded: Loaded,
}

impl Default for CachedState {
    fn default() -> Self {
        CachedState {
            identity: None,
            loaded: Loaded::Fresh,
        }
    }
}

/// An index with its slot and its state file's cached state, as `status` lists them.
type Listed = (IndexKey, Arc<Mutex<Slot>>, Option<Arc<Mutex<CachedState>>>);

/// The service's maps; each slot and state has its own lock, so checks of different input
/// sets run at the same time and this lock is held only to find them.
#[derive(Default)]
struct Inner {
    slots: HashMap<IndexKey, Arc<Mutex<Slot>>>,
    states: HashMap<PathBuf, Arc<Mutex<CachedState>>>,
    pending_runs: BTreeMap<u64, (PathBuf, Pending)>,
    next_id: u64,
}

/// This daemon's part of every pending-run id, different in every daemon process, so an id
/// handed out before a restart never names a check of the new daemon.
fn daemon_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        seed.write_u128(now.as_nanos());
        format!("{:016x}", seed.finish())
    })
}

/// The fingerprint verbs that record or forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `mark-success`.
    Success,
    /// `mark-failure`.
    Failure,
    /// `invalidate`.
    Invalidate,
}

/// A check's outcome and how its input set was built.
#[derive(Debug)]
pub struct Served {
    /// The engine's result.
    pub checked: Checked,
    /// `watched`, or `full stat pass (why)`.
    pub mode: String,
    /// The input set as checked, when asked for.
    pub table: Option<fingerprint::Table>,
}

/// The daemon's fingerprint service.
#[derive(Default)]
pub struct Fingerprints {
    inner: Mutex<Inner>,
    watcher: Arc<Watcher>,
}

impl Fingerprints {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Checks `req` from the watched index (created and filled on first use). Checks of
    /// different input sets run concurrently; checks of one state file wait for each other.
    pub fn check(&self, req: &CheckRequest) -> Result<Served, FpError> {
        self.check_as_of(req, self.sync_point(), false)
    }

    /// The watcher's time now: checks made `as_of` it see every change made before it.
    pub fn sync_point(&self) -> u64 {
        self.watcher.sync_point()
    }

    /// Checks `req`, seeing every change made before `as_of` (from `sync_point`; the checks
    /// of one batch share one, so one watcher cookie serves them all); with the input set's
    /// table when `with_table`.
    pub fn check_as_of(
        &self,
        req: &CheckRequest,
        as_of: u64,
        with_table: bool,
    ) -> Result<Served, FpError> {
        let root = resolve_root(&req.root)?;
        let filter = Filter::compiled(&req.filter)?;
        let (paths, _lock) = open_state(req)?;
        let key = IndexKey {
            cache_file: paths.file.clone(),
            root: root.clone(),
            filter: req.filter.clone(),
        };
        let (slot, cached, last_used) = {
            let mut inner = self.lock();
            let last_used = id_after(&mut inner.next_id);
            let cached = Arc::clone(inner.states.entry(paths.file.clone()).or_default());
            let slot = inner.slots.entry(key).or_insert_with(|| {
                let own = OwnState::of(&paths.file);
                Arc::new(Mutex::new(Slot::new(last_used, &root, filter, own, req)))
            });
            (Arc::clone(slot), cached, last_used)
        };
        let mut cached = lock(&cached);
        let cached = refreshed(&mut cached, &paths);
        let mut slot = lock(&slot);
        if !slot.subscribed {
            slot.subscribed = true;
            let own = OwnState::of(&paths.file);
            slot.watch_error = self.watcher.subscribe(&root, slot.id, own).err();
        }
        let seed = previous_table(&cached.loaded, req.cache_type);
        let (mode, rehashed) = refresh(&self.watcher, (&root, as_of), &mut slot, seed)?;
        slot.last_parts = req.extra_parts.clone();
        slot.last_used = last_used;
        slot.cache_type = req.cache_type;
        let base_valid = slot.base_identity.is_some() && slot.base_identity == cached.identity;
        let files_key = slot.index.key();
        let index = &slot.index;
        let inputs = InputSet {
            key: files_key,
            files: index.len(),
            rehashed,
            changes: &|old| match index.changes_since_base().filter(|_| base_valid) {
                Some(changes) => changes,
                None => fingerprint::diff(old, &index.entries()),
            },
            table: None,
        };
        let checked = conclude(req, &paths, &mut cached.loaded, &inputs)?;
        let table = with_table.then(|| index.table());
        cached.identity = identity(&paths.file);
        // A state re-saved by the check keeps the daemon's table, so the base still holds.
        if base_valid {
            slot.base_identity = cached.identity;
        }
        Ok(Served {
            checked,
            mode,
            table,
        })
    }

    /// The slots of `cache_file` (their locks are taken one at a time by the caller).
    fn slots_of(&self, cache_file: &Path) -> Vec<Arc<Mutex<Slot>>> {
        let inner = self.lock();
        inner
            .slots
            .iter()
            .filter(|(key, _)| key.cache_file == cache_file)
            .map(|(_, slot)| Arc::clone(slot))
            .collect()
    }

    /// Keeps a `zccache run` pending record; returns its id (`<daemon nonce>-<counter>`).
    pub fn keep_pending(&self, cache_file: PathBuf, pending: Pending) -> String {
        let mut inner = self.lock();
        let id = id_after(&mut inner.next_id);
        inner.pending_runs.insert(id, (cache_file, pending));
        while inner.pending_runs.len() > MAX_PENDING_RUNS {
            inner.pending_runs.pop_first();
        }
        format!("{}-{id}", daemon_nonce())
    }

    /// Records the outcome of a `zccache run` whose check returned `id` for `cache_file` and
    /// `key`. An id of another daemon, or one kept for another file or key, is refused and
    /// nothing is recorded (the pending record stays for its own run).
    pub fn record_run(
        &self,
        cache_file: &Path,
        id: &str,
        key: &str,
        success: bool,
    ) -> Result<(), FpError> {
        let refuse = |why| FpError::ForeignRecord {
            path: cache_file.to_path_buf(),
            why,
        };
        let no_pending = || FpError::NoPending(cache_file.to_path_buf());
        let counter = match id.split_once('-') {
            Some((nonce, counter)) if nonce == daemon_nonce() => {
                counter.parse::<u64>().map_err(|_| no_pending())?
            }
            _ => return Err(refuse("its check was answered by an earlier daemon")),
        };
        let (file, mut pending) = {
            let mut inner = self.lock();
            let Some((file, pending)) = inner.pending_runs.get(&counter) else {
                return Err(no_pending());
            };
            if file != cache_file {
                return Err(refuse("its check was for another state file"));
            }
            if pending.key.to_hex() != key {
                return Err(refuse("its check saw other inputs"));
            }
            inner.pending_runs.remove(&counter).ok_or_else(no_pending)?
        };
        let state = if success {
            pending.table = self.table_of(&file);
            fingerprint::record_success(&file, pending)
        } else {
            fingerprint::record_failure(&file, pending)
        };
        let remembered = self.remember_state(&file, state.map(Some));
        release_free_memory();
        remembered
    }

    /// `fp mark-success | mark-failure | invalidate` for `cache_file`. A success stores the
    /// daemon's in-memory table of that task as the state's stat table.
    pub fn mark(&self, cache_file: &Path, verb: Mark) -> Result<(), FpError> {
        let state = match verb {
            Mark::Success => {
                let file = StatePaths::new(cache_file)?.file;
                fingerprint::mark_success_with(cache_file, &|| self.table_of(&file)).map(Some)
            }
            Mark::Failure => fingerprint::mark_failure(cache_file).map(Some),
            Mark::Invalidate => fingerprint::invalidate(cache_file).map(|()| None),
        };
        let remembered = self.remember_state(cache_file, state);
        release_free_memory();
        remembered
    }

    /// The in-memory table of the task most recently checked with `cache_file`; that
    /// index's diff base becomes this table once the state holding it is saved.
    /// Slots are locked one at a time (holding two could deadlock with another caller
    /// that met them in another order).
    fn table_of(&self, cache_file: &Path) -> Option<fingerprint::Table> {
        let freshest = self
            .slots_of(cache_file)
            .into_iter()
            .filter_map(|arc| {
                let slot = lock(&arc);
                let usable = slot.index.filled && slot.cache_type == CacheType::TwoLayer;
                let used = slot.last_used;
                drop(slot);
                usable.then_some((used, arc))
            })
            .max_by_key(|(used, _)| *used)?
            .1;
        let mut slot = lock(&freshest);
        slot.index.mark_base();
        slot.base_identity = None;
        slot.base_awaits_save = true;
        Some(slot.index.table())
    }

    /// Caches the state a record just saved (or forgets it), so the next check parses nothing.
    fn remember_state(
        &self,
        cache_file: &Path,
        saved: Result<Option<State>, FpError>,
    ) -> Result<(), FpError> {
        let Ok(paths) = StatePaths::existing(cache_file) else {
            return saved.map(drop);
        };
        let saved_identity = identity(&paths.file);
        for slot in self.slots_of(&paths.file) {
            let mut slot = lock(&slot);
            if slot.base_awaits_save {
                slot.base_awaits_save = false;
                slot.base_identity = saved.as_ref().ok().and(saved_identity);
            }
        }
        let mut inner = self.lock();
        match &saved {
            Ok(Some(state)) => {
                let cached = CachedState {
                    identity: saved_identity,
                    loaded: Loaded::Ok(state.clone()),
                };
                inner
                    .states
                    .insert(paths.file, Arc::new(Mutex::new(cached)));
            }
            _ => {
                inner.states.remove(&paths.file);
            }
        }
        saved.map(drop)
    }

    /// The watcher, for `zccache watch` subscriptions.
    pub fn watcher(&self) -> Arc<Watcher> {
        Arc::clone(&self.watcher)
    }

    /// How watched roots learn of changes (for `status`).
    pub fn watching(&self) -> String {
        self.watcher.describe()
    }

    /// Forgets every index and stops watching; returns how many indexes there were.
    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let count = inner.slots.len();
        inner.slots.clear();
        inner.states.clear();
        self.watcher.clear();
        count
    }

    /// Every index, answered from memory: pending watcher changes are applied to the index
    /// (as the next check would), then its key is compared with the recorded successes.
    pub fn status(&self) -> Vec<IndexStatus> {
        let listed: Vec<Listed> = {
            let inner = self.lock();
            inner
                .slots
                .iter()
                .map(|(key, slot)| {
                    let state = inner.states.get(&key.cache_file).map(Arc::clone);
                    (key.clone(), Arc::clone(slot), state)
                })
                .collect()
        };
        listed
            .into_iter()
            .map(|(key, slot, state)| {
                // A state's lock before its slot's, as a check takes them.
                let state = state.as_deref().map(lock);
                let mut slot = lock(&slot);
                let (would_skip, changed_files) =
                    self.judge_from_memory(&key.root, &mut slot, state.as_deref());
                IndexStatus {
                    cache_file: key.cache_file.display().to_string(),
                    root: key.root.display().to_string(),
                    mode: slot
                        .watch_error
                        .clone()
                        .unwrap_or_else(|| WATCHED_MODE.to_string()),
                    files: slot.index.len() as u64,
                    changed_files: changed_files.map(|n| n as u64),
                    would_skip,
                }
            })
            .collect()
    }

    /// Whether the slot would skip now and how many files changed since its last success;
    /// `(None, None)` when memory cannot tell (no trusted index, or no state seen).
    fn judge_from_memory(
        &self,
        root: &Path,
        slot: &mut Slot,
        state: Option<&CachedState>,
    ) -> (Option<bool>, Option<usize>) {
        let trusted = slot.index.filled
            && !slot.index.rules_moved()
            && !self.watcher.distrusted(root, slot.id)
            && slot.watch_error.is_none();
        if !trusted || self.watcher.sync(root, self.watcher.sync_point()).is_err() {
            return (None, None);
        }
        let changes = self.watcher.take(root, slot.id);
        if slot.index.apply(&changes.paths).is_err() {
            return (None, None);
        }
        let Some(CachedState {
            loaded: Loaded::Ok(state),
            ..
        }) = state
        else {
            return (Some(false), None);
        };
        let mut parts = slot.last_parts.clone();
        parts.insert(fingerprint::FILES_PART.to_string(), slot.index.key());
        let skip = state
            .successes
            .iter()
            .any(|s| s.key == combined_key(&parts));
        let changed = match (&state.table, skip) {
            (_, true) => Some(0),
            (Some(old), false) => {
                Some(fingerprint::diff(&old.entries, &slot.index.entries()).len())
            }
            (None, false) => None,
        };
        (Some(skip), changed)
    }
}

/// Brings the slot's index up to date: from watcher events when they can be trusted, else by
/// a full stat pass. Returns the mode and how many files were read.
fn refresh(
    watcher: &Watcher,
    (root, as_of): (&Path, u64),
    slot: &mut Slot,
    seed: Option<&fingerprint::Table>,
) -> Result<(String, usize), FpError> {
    let distrust = match &slot.watch_error {
        Some(why) => Some(why.clone()),
        None => match watcher.sync(root, as_of) {
            Err(why) => {
                watcher.take(root, slot.id);
                Some(why)
            }
            Ok(()) => {
                let changes = watcher.take(root, slot.id);
                match changes.distrust {
                    Some(why) => Some(why),
                    None if !slot.index.filled => Some("first check".to_string()),
                    None if slot.index.rules_moved() => {
                        Some("ignore rules outside the watch changed".to_string())
                    }
                    None => {
                        let work = slot.index.apply(&changes.paths)?;
                        return Ok((WATCHED_MODE.to_string(), work.rehashed));
                    }
                }
            }
        },
    };
    let why = distrust.unwrap_or_default();
    let work = slot.index.full_pass(seed)?;
    release_free_memory();
    Ok((format!("full stat pass ({why})"), work.rehashed))
}

/// A lock that a panicked holder did not poison for good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next id of the service's counter.
fn id_after(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter
}

/// The parsed state of `paths.file`, reloaded when the file changed on disk.
fn refreshed<'a>(cached: &'a mut CachedState, paths: &StatePaths) -> &'a mut CachedState {
    let now = identity(&paths.file);
    if cached.identity.is_none() || cached.identity != now {
        cached.loaded = paths.load();
        cached.identity = now;
    }
    cached
}

/// (inode, mtime ns, size) of a file itself (a symlink is not followed: one planted over the
/// state is another file, whose load refuses it), `None` when absent.
fn identity(path: &Path) -> Option<(u64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.ino(), fingerprint::mtime_ns(&meta), meta.size()))
}
