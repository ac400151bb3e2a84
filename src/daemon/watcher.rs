//! File watching for the daemon's indexes: inotify → per-index sets of changed paths, plus
//! Watchman-style cookies so a check knows every earlier change has arrived.
//!
//! Cookies go in `<root>/.zccache/`, which anyone may delete (`rm -rf .zccache/`): before
//! each cookie the directory is made again if it is gone (mode 0700; a symlink there is
//! refused, never followed) and watched, so the cookie's event cannot be missed. A cookie
//! whose directory vanishes while it is awaited (its watch reports `DELETE_SELF` or
//! `IGNORED`) is written again at once instead of waiting out the timeout.
//!
//! The mask leaves out opens and reads, so the daemon's own walking and hashing never floods
//! the kernel queue. Trust is dropped — the next check does a full stat pass and says why —
//! when the queue overflows, reading events fails, a new directory cannot be watched, or a
//! root cannot be watched at all.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};

use crate::fingerprint::OwnState;

/// How long a check waits for its cookie before distrusting the watcher.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many cookies a check writes when their directory keeps vanishing under them.
const COOKIE_ATTEMPTS: usize = 3;
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

/// Called when a subscriber's changes go from none to some (a watch wakes its thread).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

struct Subscriber {
    own: OwnState,
    dirty: HashSet<PathBuf>,
    distrust: Option<String>,
    wake: Option<Wake>,
}

impl Subscriber {
    fn wake(&self) {
        if let Some(wake) = &self.wake {
            wake();
        }
    }
}

#[derive(Default)]
struct State {
    roots: HashMap<PathBuf, HashMap<u64, Subscriber>>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// Cookies being waited for, with the watch of the directory they were written in.
    awaited: HashMap<PathBuf, WatchDescriptor>,
    arrived: HashSet<PathBuf>,
    /// Awaited cookies whose event can no longer come (their directory's watch ended).
    lost: HashSet<PathBuf>,
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
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            match self.watch(&dir) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
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

    /// Watches the directory `dir` itself (again: the kernel then returns the same
    /// descriptor) and remembers it.
    fn watch(&self, dir: &Path) -> io::Result<WatchDescriptor> {
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
        let wd = self
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(dir, mask)?;
        self.lock().dirs.insert(wd.clone(), dir.to_path_buf());
        Ok(wd)
    }

    fn on_event(&self, wd: &WatchDescriptor, mask: EventMask, name: Option<&OsStr>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            // Cookie events may be among the lost ones: their waiters write new ones.
            let mut state = self.lock();
            lose_cookies(&mut state, |_| true);
            self.cookie_arrived.notify_all();
            return distrust_all(&mut state, "the inotify queue overflowed");
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::IGNORED) {
            let mut state = self.lock();
            if lose_cookies(&mut state, |armed| armed == wd) {
                self.cookie_arrived.notify_all();
            }
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
        if state.awaited.contains_key(&path) {
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

/// Marks the awaited cookies whose directory's watch matches `armed` as lost; true if any.
fn lose_cookies(state: &mut State, armed: impl Fn(&WatchDescriptor) -> bool) -> bool {
    let lost: Vec<PathBuf> = state
        .awaited
        .iter()
        .filter(|(_, wd)| armed(wd))
        .map(|(cookie, _)| cookie.clone())
        .collect();
    let any = !lost.is_empty();
    state.lost.extend(lost);
    any
}

fn distrust_all(state: &mut State, why: &str) {
    tracing::warn!("{why}; the next checks do a full stat pass");
    for subscriber in state.roots.values_mut().flat_map(HashMap::values_mut) {
        subscriber.distrust.get_or_insert_with(|| why.to_string());
        subscriber.wake();
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
                subscriber.wake();
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
        self.subscribe_waking(root, id, own, None)
    }

    /// As [`Watcher::subscribe`], calling `wake` whenever a change for `id` arrives (a
    /// `zccache watch` subscription; its ids must not collide with the indexes').
    pub fn subscribe_waking(
        &self,
        root: &Path,
        id: u64,
        own: OwnState,
        wake: Option<Wake>,
    ) -> Result<(), String> {
        let shared = self.shared()?;
        let newly_watched = !shared.lock().roots.contains_key(root);
        if newly_watched {
            // The cookie directory must exist before the watch so its events are seen.
            let _ = cookie_dir(root);
            shared.watch_tree(root).map_err(|e| watch_error(root, &e))?;
        }
        let subscriber = Subscriber {
            own,
            dirty: HashSet::new(),
            distrust: None,
            wake,
        };
        shared
            .lock()
            .roots
            .entry(root.to_path_buf())
            .or_default()
            .insert(id, subscriber);
        Ok(())
    }

    /// Stops delivering changes to `id` (the root stays watched for the others).
    pub fn unsubscribe(&self, root: &Path, id: u64) {
        if let Ok(shared) = self.shared()
            && let Some(subscribers) = shared.lock().roots.get_mut(root)
        {
            subscribers.remove(&id);
        }
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
        for _ in 0..COOKIE_ATTEMPTS {
            if shared.lock().arrived_through > as_of {
                return Ok(());
            }
            match shared.cookie(root)? {
                Waited::Arrived => return Ok(()),
                Waited::TimedOut => {
                    return Err("the watcher did not deliver its cookie in time".to_string());
                }
                Waited::Lost => {}
            }
        }
        Err("the watcher cookie directory kept vanishing".to_string())
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

/// How the wait for one cookie ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    /// Its event came: every earlier change has been delivered.
    Arrived,
    /// Its event cannot come (its directory went away): write another.
    Lost,
    /// Nothing came within [`COOKIE_TIMEOUT`].
    TimedOut,
}

impl Shared {
    /// Writes one cookie under `root` and waits for its event.
    fn cookie(&self, root: &Path) -> Result<Waited, String> {
        let cannot = |e: io::Error| format!("cannot write a watcher cookie: {e}");
        let dir = cookie_dir(root).map_err(cannot)?;
        // Watched before the cookie is written, so its event cannot be missed even when the
        // directory was just made (the reader thread would watch it only later).
        let wd = self.watch(&dir).map_err(cannot)?;
        let (cookie, number) = {
            let mut state = self.lock();
            state.next_cookie += 1;
            let number = state.next_cookie;
            let name = format!("{COOKIE_PREFIX}{}-{number}", std::process::id());
            let cookie = dir.join(name);
            state.awaited.insert(cookie.clone(), wd);
            (cookie, number)
        };
        let written = std::fs::File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&cookie);
        let waited = match written {
            Ok(_) => Ok(self.wait_for(&cookie)),
            // The directory went between the watch and the write.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Waited::Lost),
            Err(e) => Err(cannot(e)),
        };
        let _ = std::fs::remove_file(&cookie);
        let mut state = self.lock();
        state.awaited.remove(&cookie);
        state.arrived.remove(&cookie);
        state.lost.remove(&cookie);
        if waited == Ok(Waited::Arrived) {
            state.arrived_through = state.arrived_through.max(number);
        }
        waited
    }

    fn wait_for(&self, cookie: &Path) -> Waited {
        let deadline = Instant::now() + COOKIE_TIMEOUT;
        let mut state = self.lock();
        loop {
            if state.arrived.contains(cookie) {
                return Waited::Arrived;
            }
            if state.lost.contains(cookie) {
                return Waited::Lost;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::TimedOut;
            }
            state = self
                .cookie_arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// `<root>/.zccache`, made (mode 0700) when it is missing; a symlink or anything else there
/// that is not a directory is refused, never followed.
fn cookie_dir(root: &Path) -> io::Result<PathBuf> {
    let dir = root.join(COOKIE_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    if !std::fs::symlink_metadata(&dir)?.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    Ok(dir)
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
