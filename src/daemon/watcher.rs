//! File watching for the daemon's indexes: inotify → per-index sets of changed paths, plus
//! Watchman-style cookies so a check knows every earlier change has arrived.
//!
//! The mask leaves out opens and reads, so the daemon's own walking and hashing never floods
//! the kernel queue. Trust is dropped — the next check does a full stat pass and says why —
//! when the queue overflows, reading events fails, a new directory cannot be watched, or a
//! root cannot be watched at all.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};

use crate::fingerprint::OwnState;

/// How long a check waits for its cookie before distrusting the watcher.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);
/// Directory under a root that holds cookies (never an input).
const COOKIE_DIR: &str = ".zccache";
const COOKIE_PREFIX: &str = "zccache-cookie-";
/// Directories never watched: their churn never changes an input set.
const UNWATCHED: [&str; 1] = [".git"];

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

#[derive(Default)]
struct State {
    roots: HashMap<PathBuf, HashMap<u64, Subscriber>>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    awaited: HashSet<PathBuf>,
    arrived: HashSet<PathBuf>,
    next_cookie: u64,
    /// The highest cookie number that arrived: every event made before it was written has
    /// been handled.
    arrived_through: u64,
}

struct Shared {
    state: Mutex<State>,
    cookie_arrived: Condvar,
    watches: Mutex<Watches>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches `dir` and every directory below it (watch first, then list, so nothing created
    /// in between is missed).
    fn watch_tree(&self, dir: &Path) -> io::Result<()> {
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MODIFY
            | WatchMask::ATTRIB
            | WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR
            | WatchMask::DONT_FOLLOW
            | WatchMask::EXCL_UNLINK;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let added = self
                .watches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .add(&dir, mask);
            let wd = match added {
                Ok(wd) => wd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            self.lock().dirs.insert(wd, dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && is_watched(&dir, &entry.file_name()) {
                    pending.push(entry.path());
                }
            }
        }
        Ok(())
    }

    fn on_event(&self, wd: &WatchDescriptor, mask: EventMask, name: Option<&OsStr>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            return distrust_all(&mut self.lock(), "the inotify queue overflowed");
        }
        let Some(dir) = self.lock().dirs.get(wd).cloned() else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            self.lock().dirs.remove(wd);
            return;
        }
        let path = name.map_or_else(|| dir.clone(), |n| dir.join(n));
        if mask.contains(EventMask::ISDIR | EventMask::MOVED_FROM) {
            // Its watches keep reporting under the old path until it reappears (MOVED_TO
            // watches it again under the new one).
            self.lock().dirs.retain(|_, p| !p.starts_with(&path));
        }
        let new_dir = mask.contains(EventMask::ISDIR)
            && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
            && name.is_some_and(|n| is_watched(&dir, n));
        let watched = if new_dir {
            self.watch_tree(&path)
        } else {
            Ok(())
        };
        if let Err(e) = watched {
            distrust_all(&mut self.lock(), &watch_error(&path, &e));
        }
        let mut state = self.lock();
        if state.awaited.contains(&path) {
            state.arrived.insert(path);
            self.cookie_arrived.notify_all();
            return;
        }
        mark_dirty(&mut state, path);
    }
}

/// Whether the directory `name` in `parent` is watched: not `.git`, and not below the cookie
/// directory (`.zccache/run/` and the like hold zccache's own state, written on every run).
fn is_watched(parent: &Path, name: &OsStr) -> bool {
    !UNWATCHED.iter().any(|u| name == OsStr::new(u))
        && parent.file_name() != Some(OsStr::new(COOKIE_DIR))
}

fn distrust_all(state: &mut State, why: &str) {
    tracing::warn!("{why}; the next checks do a full stat pass");
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

/// The daemon's one inotify instance.
pub struct Watcher {
    shared: Option<Arc<Shared>>,
    start_error: Option<String>,
}

impl Default for Watcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Watcher {
    /// Starts the inotify instance and its reader thread.
    pub fn new() -> Self {
        match Inotify::init() {
            Ok(inotify) => {
                let shared = Arc::new(Shared {
                    state: Mutex::new(State::default()),
                    cookie_arrived: Condvar::new(),
                    watches: Mutex::new(inotify.watches()),
                });
                let reader = Arc::clone(&shared);
                std::thread::spawn(move || read_events(inotify, &reader));
                Watcher {
                    shared: Some(shared),
                    start_error: None,
                }
            }
            Err(e) => Watcher {
                shared: None,
                start_error: Some(format!("cannot start inotify: {e}")),
            },
        }
    }

    fn shared(&self) -> Result<&Shared, String> {
        self.shared
            .as_deref()
            .ok_or_else(|| self.start_error.clone().unwrap_or_default())
    }

    /// Starts delivering changes under `root` to index `id`; watches `root` if nobody did.
    pub fn subscribe(&self, root: &Path, id: u64, own: OwnState) -> Result<(), String> {
        let shared = self.shared()?;
        let newly_watched = !shared.lock().roots.contains_key(root);
        if newly_watched {
            // The cookie directory must exist before the watch so its events are seen.
            let _ = std::fs::create_dir_all(root.join(COOKIE_DIR));
            shared.watch_tree(root).map_err(|e| watch_error(root, &e))?;
        }
        let subscriber = Subscriber {
            own,
            dirty: HashSet::new(),
            distrust: None,
        };
        shared
            .lock()
            .roots
            .entry(root.to_path_buf())
            .or_default()
            .insert(id, subscriber);
        Ok(())
    }

    /// A point in the watcher's time: pass it to `sync` to wait for changes made before now.
    pub fn sync_point(&self) -> u64 {
        self.shared().map_or(0, |shared| shared.lock().next_cookie)
    }

    /// Waits until every change made under `root` before `as_of` (from `sync_point`) has been
    /// delivered. One inotify queue carries every root's events in order, so a cookie
    /// written after `as_of` under any root that has arrived already proves it (the checks
    /// of one batch share one cookie).
    pub fn sync(&self, root: &Path, as_of: u64) -> Result<(), String> {
        let shared = self.shared()?;
        let (cookie, number) = {
            let mut state = shared.lock();
            if state.arrived_through > as_of {
                return Ok(());
            }
            state.next_cookie += 1;
            let number = state.next_cookie;
            let name = format!("{COOKIE_PREFIX}{}-{number}", std::process::id());
            let cookie = root.join(COOKIE_DIR).join(name);
            state.awaited.insert(cookie.clone());
            (cookie, number)
        };
        let written = std::fs::write(&cookie, b"");
        let arrived = written.is_ok() && wait_for(shared, &cookie);
        let _ = std::fs::remove_file(&cookie);
        let mut state = shared.lock();
        state.awaited.remove(&cookie);
        state.arrived.remove(&cookie);
        if written.is_ok() && arrived {
            state.arrived_through = state.arrived_through.max(number);
        }
        match (written, arrived) {
            (Err(e), _) => Err(format!("cannot write a watcher cookie: {e}")),
            (_, false) => Err("the watcher did not deliver its cookie in time".to_string()),
            _ => Ok(()),
        }
    }

    /// Takes what changed for index `id` since its last call.
    pub fn take(&self, root: &Path, id: u64) -> Changes {
        let Ok(shared) = self.shared() else {
            return Changes::default();
        };
        let mut state = shared.lock();
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

    /// Whether index `id` lost trust in its changes (or is not subscribed).
    pub fn distrusted(&self, root: &Path, id: u64) -> bool {
        let Ok(shared) = self.shared() else {
            return true;
        };
        let state = shared.lock();
        state
            .roots
            .get(root)
            .and_then(|s| s.get(&id))
            .is_none_or(|s| s.distrust.is_some())
    }

    /// How checks learn of changes: `inotify`, or why it could not start.
    pub fn describe(&self) -> String {
        match &self.start_error {
            None => "inotify".to_string(),
            Some(why) => format!("full stat passes ({why})"),
        }
    }

    /// Stops watching everything.
    pub fn clear(&self) {
        let Ok(shared) = self.shared() else {
            return;
        };
        let wds: Vec<WatchDescriptor> = {
            let mut state = shared.lock();
            state.roots.clear();
            state.dirs.drain().map(|(wd, _)| wd).collect()
        };
        let mut watches = shared.watches.lock().unwrap_or_else(|p| p.into_inner());
        for wd in wds {
            let _ = watches.remove(wd);
        }
    }
}

fn wait_for(shared: &Shared, cookie: &Path) -> bool {
    let deadline = Instant::now() + COOKIE_TIMEOUT;
    let mut state = shared.lock();
    while !state.arrived.contains(cookie) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        state = shared
            .cookie_arrived
            .wait_timeout(state, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    true
}

/// The reader thread: blocks on the inotify fd and dispatches events until it fails.
fn read_events(mut inotify: Inotify, shared: &Shared) {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => {
                for event in events {
                    shared.on_event(&event.wd, event.mask, event.name);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                distrust_all(
                    &mut shared.lock(),
                    &format!("cannot read inotify events: {e}"),
                );
                return;
            }
        }
    }
}

/// Turns a watch failure into an actionable message (the inotify limit above all).
fn watch_error(path: &Path, err: &io::Error) -> String {
    if err.raw_os_error() == Some(libc::ENOSPC) {
        format!(
            "cannot watch {}: the inotify watch limit is reached (raise fs.inotify.max_user_watches)",
            path.display()
        )
    } else {
        format!("cannot watch {}: {err}", path.display())
    }
}
