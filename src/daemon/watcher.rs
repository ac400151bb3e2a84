//! File watching for the daemon's indexes: notify (inotify on Linux) → per-index sets of
//! changed paths, plus Watchman-style cookies so a check knows every earlier change arrived.
//!
//! Trust is dropped — the next check does a full stat pass and says why — when the kernel
//! queue overflows, the watcher reports an error, or a root cannot be watched at all.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::fingerprint::OwnState;

/// How long a check waits for its cookie before distrusting the watcher.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);
/// Directory under a root that holds cookies (never an input).
const COOKIE_DIR: &str = ".zccache";
const COOKIE_PREFIX: &str = "zccache-cookie-";

/// What changed for one index since it last asked.
#[derive(Debug, Default)]
pub struct Changes {
    /// Paths reported changed (absolute).
    pub paths: Vec<PathBuf>,
    /// Why the index may not trust these paths alone (then it walks everything).
    pub distrust: Option<String>,
}

#[derive(Debug)]
struct Subscriber {
    own: OwnState,
    dirty: HashSet<PathBuf>,
    distrust: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    roots: HashMap<PathBuf, HashMap<u64, Subscriber>>,
    awaited: HashSet<PathBuf>,
    arrived: HashSet<PathBuf>,
    next_cookie: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cookie_arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_event(&self, result: notify::Result<notify::Event>) {
        let mut state = self.lock();
        let event = match result {
            Ok(event) => event,
            Err(err) => return distrust_all(&mut state, &format!("watcher error: {err}")),
        };
        if event.need_rescan() {
            distrust_all(&mut state, "watcher queue overflowed");
        }
        // Reads (including our own hashing and walking) change nothing.
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if state.awaited.contains(&path) {
                state.arrived.insert(path);
                self.cookie_arrived.notify_all();
                continue;
            }
            mark_dirty(&mut state, path);
        }
    }
}

fn distrust_all(state: &mut State, why: &str) {
    log_trust_drop(why);
    for subscriber in state.roots.values_mut().flat_map(HashMap::values_mut) {
        subscriber.distrust.get_or_insert_with(|| why.to_string());
    }
}

fn mark_dirty(state: &mut State, path: PathBuf) {
    for (root, subscribers) in &mut state.roots {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let private = rel
            .components()
            .any(|c| matches!(c, Component::Normal(n) if n == ".git" || n == COOKIE_DIR));
        if private {
            continue;
        }
        let name = path.file_name().unwrap_or_default();
        for subscriber in subscribers.values_mut() {
            if !subscriber.own.contains(&path, name) {
                subscriber.dirty.insert(path.clone());
            }
        }
    }
}

/// The daemon logs to its log file through stderr; one line per trust drop.
fn log_trust_drop(why: &str) {
    eprintln!("zccache daemon: {why}; the next checks do a full stat pass");
}

/// The daemon's one watcher.
pub struct Watcher {
    shared: Arc<Shared>,
    notify: Mutex<Option<RecommendedWatcher>>,
}

impl Default for Watcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Watcher {
    /// A watcher with nothing watched yet.
    pub fn new() -> Self {
        Watcher {
            shared: Arc::new(Shared::default()),
            notify: Mutex::new(None),
        }
    }

    /// Starts delivering changes under `root` to index `id`; watches `root` if nobody did.
    pub fn subscribe(&self, root: &Path, id: u64, own: OwnState) -> Result<(), String> {
        let newly_watched = !self.shared.lock().roots.contains_key(root);
        if newly_watched {
            // The cookie directory must exist before the watch so its events are seen.
            let _ = std::fs::create_dir_all(root.join(COOKIE_DIR));
            self.watch(root)?;
        }
        let subscriber = Subscriber {
            own,
            dirty: HashSet::new(),
            distrust: None,
        };
        self.shared
            .lock()
            .roots
            .entry(root.to_path_buf())
            .or_default()
            .insert(id, subscriber);
        Ok(())
    }

    fn watch(&self, root: &Path) -> Result<(), String> {
        let mut notify = self.notify.lock().unwrap_or_else(|p| p.into_inner());
        if notify.is_none() {
            let shared = Arc::clone(&self.shared);
            let watcher = notify::recommended_watcher(move |event| shared.on_event(event))
                .map_err(|e| format!("cannot start the watcher: {e}"))?;
            *notify = Some(watcher);
        }
        let watcher = notify.as_mut().ok_or("no watcher")?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| watch_error(root, &e))
    }

    /// Waits until every change made under `root` before this call has been delivered.
    pub fn sync(&self, root: &Path) -> Result<(), String> {
        let cookie = {
            let mut state = self.shared.lock();
            state.next_cookie += 1;
            let name = format!(
                "{COOKIE_PREFIX}{}-{}",
                std::process::id(),
                state.next_cookie
            );
            let cookie = root.join(COOKIE_DIR).join(name);
            state.awaited.insert(cookie.clone());
            cookie
        };
        let written = std::fs::write(&cookie, b"");
        let arrived = written.is_ok() && self.wait_for(&cookie);
        let _ = std::fs::remove_file(&cookie);
        let mut state = self.shared.lock();
        state.awaited.remove(&cookie);
        state.arrived.remove(&cookie);
        match (written, arrived) {
            (Err(e), _) => Err(format!("cannot write a watcher cookie: {e}")),
            (_, false) => Err("the watcher did not deliver its cookie in time".to_string()),
            _ => Ok(()),
        }
    }

    fn wait_for(&self, cookie: &Path) -> bool {
        let deadline = Instant::now() + COOKIE_TIMEOUT;
        let mut state = self.shared.lock();
        while !state.arrived.contains(cookie) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .cookie_arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Takes what changed for index `id` since its last call.
    pub fn take(&self, root: &Path, id: u64) -> Changes {
        let mut state = self.shared.lock();
        let Some(subscriber) = state.roots.get_mut(root).and_then(|s| s.get_mut(&id)) else {
            return Changes {
                paths: Vec::new(),
                distrust: Some("not subscribed".to_string()),
            };
        };
        Changes {
            paths: subscriber.dirty.drain().collect(),
            distrust: subscriber.distrust.take(),
        }
    }

    /// How many changes wait for index `id`, and whether it lost trust.
    pub fn peek(&self, root: &Path, id: u64) -> (usize, bool) {
        let state = self.shared.lock();
        state
            .roots
            .get(root)
            .and_then(|s| s.get(&id))
            .map_or((0, true), |s| (s.dirty.len(), s.distrust.is_some()))
    }

    /// Stops watching everything.
    pub fn clear(&self) {
        let roots: Vec<PathBuf> = self.shared.lock().roots.drain().map(|(r, _)| r).collect();
        let mut notify = self.notify.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watcher) = notify.as_mut() {
            for root in roots {
                let _ = watcher.unwatch(&root);
            }
        }
    }
}

/// Turns a watch failure into an actionable message (inotify limits above all).
fn watch_error(root: &Path, err: &notify::Error) -> String {
    let limit = matches!(err.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&err.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC));
    if limit {
        format!(
            "cannot watch {}: the inotify watch limit is reached (raise fs.inotify.max_user_watches)",
            root.display()
        )
    } else {
        format!("cannot watch {}: {err}", root.display())
    }
}
