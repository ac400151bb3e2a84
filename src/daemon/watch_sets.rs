//! The engine behind `zccache watch`: follows input sets through the watcher and tells which
//! ones changed content. Each set is an [`Index`] of its own, refreshed from the watcher's
//! events the way a check refreshes its index, so a touch that leaves the bytes alone, a file
//! that the ignore rules or the filters leave out, `.git/`, `.zccache/` and the task's state
//! files never count as a change. The daemon serves it to `Watch` connections; a client
//! without a daemon runs it in process with a watcher of its own: one implementation.
//!
//! Events that arrive while a refresh runs wake the engine once more, so a burst costs a few
//! refreshes, not one per event; and what is handed out is bounded (at most
//! `MAX_CHANGED_PATHS` paths per set, the rest counted).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::index::{IGNORE_FILES, Index};
use super::protocol::{MAX_CHANGED_PATHS, SetChange, WatchSet};
use super::watcher::{Wake, Watcher};
use crate::fingerprint::{Digest, Filter, FilterSpec, OwnState, diff, resolve_root};

/// Watcher subscriber ids of watches start here, far above the check indexes' counter.
const FIRST_ID: u64 = 1 << 62;
static NEXT_ID: AtomicU64 = AtomicU64::new(FIRST_ID);

/// What one set follows.
enum Followed {
    /// A task's input set.
    Set(Box<Index>),
    /// One file, by the digest of its content (`None`: absent).
    File {
        path: PathBuf,
        digest: Option<Digest>,
    },
}

/// One followed set with its watcher subscription.
struct Follower {
    root: PathBuf,
    id: u64,
    followed: Followed,
}

/// The longest a burst that never goes quiet holds its push back.
const LONGEST_SETTLE: std::time::Duration = std::time::Duration::from_millis(1000);
/// A burst that goes on for longer than this is a tree being rewritten (a checkout, a
/// generator), not a save: it must then stay quiet for `BURST_QUIET`.
const LONG_BURST: std::time::Duration = std::time::Duration::from_millis(30);
/// The quiet period of a long burst: a `git checkout` pauses between its phases for longer
/// than an editor's save takes.
const BURST_QUIET: std::time::Duration = std::time::Duration::from_millis(100);

/// The engine thread's doorbell.
#[derive(Default)]
struct Bell {
    rung: Mutex<bool>,
    rang: Condvar,
    stop: AtomicBool,
}

impl Bell {
    fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.rang.notify_one();
    }

    /// Waits for a ring, then for the rings to stop for `settle` — for `BURST_QUIET` once
    /// the burst went on past `LONG_BURST` — at most `LONGEST_SETTLE` in all: a save is
    /// reported within `settle`, and a `git checkout` writing 500 files is one refresh and
    /// one push, not a push per batch the watcher read. False once the subscription is
    /// dropped.
    fn wait(&self, settle: std::time::Duration) -> bool {
        let mut rung = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        while !*rung && !self.stop.load(Ordering::SeqCst) {
            rung = self.rang.wait(rung).unwrap_or_else(|p| p.into_inner());
        }
        let began = std::time::Instant::now();
        while *rung && began.elapsed() < LONGEST_SETTLE && !self.stop.load(Ordering::SeqCst) {
            *rung = false;
            let quiet = match began.elapsed() > LONG_BURST {
                true => settle.max(BURST_QUIET),
                false => settle,
            };
            rung = self
                .rang
                .wait_timeout(rung, quiet)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *rung = false;
        !self.stop.load(Ordering::SeqCst)
    }
}

/// Live while the sets are followed; dropping it stops the engine and unsubscribes.
pub struct Subscription {
    watcher: Arc<Watcher>,
    ids: Vec<(PathBuf, u64)>,
    bell: Arc<Bell>,
}

impl Subscription {
    /// Subscribes every set to `watcher`, then, on a thread of its own, fills the sets and
    /// calls `deliver` with what changed after each wake-up, until `deliver` returns false
    /// or the subscription is dropped.
    pub fn start(
        watcher: Arc<Watcher>,
        sets: &[WatchSet],
        settle: std::time::Duration,
        deliver: impl FnMut(Vec<SetChange>) -> bool + Send + 'static,
    ) -> Result<Subscription, String> {
        let bell = Arc::new(Bell::default());
        let mut subscription = Subscription {
            watcher: Arc::clone(&watcher),
            ids: Vec::new(),
            bell: Arc::clone(&bell),
        };
        let mut followers = Vec::with_capacity(sets.len());
        for set in sets {
            let follower = follower(set)?;
            let ringer = Arc::clone(&bell);
            let wake: Wake = Arc::new(move || ringer.ring());
            let own = OwnState::of(&own_state(set, &follower.root));
            watcher.subscribe_waking(&follower.root, follower.id, own, Some(wake))?;
            subscription.ids.push((follower.root.clone(), follower.id));
            followers.push(follower);
        }
        // Each set's first state is taken before this returns: an edit made once the caller
        // goes on (its first round, `Watching`) is compared with what came before it. Taken
        // later, on the engine's thread, a busy machine let that pass read the edited file
        // already, and the edit looked like no change at all.
        for follower in &mut followers {
            follower.fill();
        }
        std::thread::spawn(move || follow(followers, (&watcher, settle), &bell, deliver));
        Ok(subscription)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bell.stop.store(true, Ordering::SeqCst);
        self.bell.ring();
        for (root, id) in &self.ids {
            self.watcher.unsubscribe(root, *id);
        }
    }
}

/// The set's state file, or a name under `.zccache/` (never an input anyway).
fn own_state(set: &WatchSet, root: &Path) -> PathBuf {
    match &set.state_file {
        Some(file) => file.as_path().to_path_buf(),
        None => root.join(".zccache").join("watch"),
    }
}

fn follower(set: &WatchSet) -> Result<Follower, String> {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if let Some(file) = &set.file {
        let path = file.as_path().to_path_buf();
        let root = path
            .parent()
            .ok_or_else(|| format!("{} has no directory", path.display()))?;
        let root = resolve_root(root).map_err(|e| e.to_string())?;
        let path = root.join(path.file_name().unwrap_or_default());
        return Ok(Follower {
            root,
            id,
            followed: Followed::File { path, digest: None },
        });
    }
    let root = resolve_root(set.root.as_path()).map_err(|e| e.to_string())?;
    let spec = FilterSpec {
        extensions: set.extensions.clone(),
        include: set.include_globs.clone(),
        exclude: set.exclude.clone(),
    };
    let filter = Filter::compiled(&spec).map_err(|e| e.to_string())?;
    let own = OwnState::of(&own_state(set, &root));
    let index = Index::new(root.clone(), filter, own);
    Ok(Follower {
        root,
        id,
        followed: Followed::Set(Box::new(index)),
    })
}

/// The engine thread: refreshes every set on each wake-up.
fn follow(
    mut followers: Vec<Follower>,
    (watcher, settle): (&Watcher, std::time::Duration),
    bell: &Bell,
    mut deliver: impl FnMut(Vec<SetChange>) -> bool,
) {
    while bell.wait(settle) {
        let changed: Vec<SetChange> = followers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, f)| {
                let paths = f.refresh(watcher)?;
                Some(change(u32::try_from(i).ok()?, paths))
            })
            .collect();
        if !changed.is_empty() && !deliver(changed) {
            return;
        }
    }
}

/// A set's change, its paths cut to `MAX_CHANGED_PATHS`.
fn change(set: u32, mut paths: Vec<String>) -> SetChange {
    let more = paths.len().saturating_sub(MAX_CHANGED_PATHS);
    paths.truncate(MAX_CHANGED_PATHS);
    SetChange {
        set,
        paths,
        more: u32::try_from(more).unwrap_or(u32::MAX),
    }
}

impl Follower {
    fn fill(&mut self) {
        match &mut self.followed {
            Followed::Set(index) => {
                if let Err(e) = index.full_pass(None) {
                    tracing::warn!("watch: cannot walk {}: {e}", self.root.display());
                }
            }
            Followed::File { path, digest } => *digest = digest_of(path),
        }
    }

    /// The paths (relative to the root) whose change altered the set since the last call;
    /// `None` when its content is as it was.
    fn refresh(&mut self, watcher: &Watcher) -> Option<Vec<String>> {
        let changes = watcher.take(&self.root, self.id);
        if changes.paths.is_empty() && changes.distrust.is_none() {
            return None;
        }
        match &mut self.followed {
            Followed::File { path, digest } => {
                let named = changes.paths.iter().any(|p| p == path);
                let now = (named || changes.distrust.is_some())
                    .then(|| digest_of(path))
                    .filter(|now| now != digest)?;
                *digest = now;
                let name = path.file_name().unwrap_or_default();
                Some(vec![name.to_string_lossy().into_owned()])
            }
            Followed::Set(index) => {
                let paths = match changes.distrust {
                    None if index.filled => applied(index, &changes.paths),
                    // A walk or an application failed before: only a walk can tell now.
                    None => walked_again(index),
                    Some(why) => {
                        tracing::info!("watch: {why}; walking {}", self.root.display());
                        walked_again(index)
                    }
                };
                Some(paths).filter(|p| !p.is_empty())
            }
        }
    }
}

/// Applies the watcher's paths; the set's paths whose entry changed (when applying them
/// fails partway, those it changed and those a walk finds).
fn applied(index: &mut Index, paths: &[PathBuf]) -> Vec<String> {
    index.mark_base();
    let failed = index.apply(paths).is_err();
    let changes = index.changes_since_base().unwrap_or_default();
    let mut changed: Vec<String> = changes.into_iter().map(|c| c.path).collect();
    // Files an ignore file's edit let in or left out keep their old times, by which a watch
    // would take them as seen by the last check: it is told the rules changed.
    let rules_changed = paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| IGNORE_FILES.iter().any(|f| n == *f))
    });
    if rules_changed && !changed.is_empty() {
        changed.push(RULES_CHANGED.to_string());
    }
    if failed {
        changed.extend(walked_again(index));
        changed.sort_unstable();
        changed.dedup();
    }
    changed
}

/// What a watch is told besides the paths when an ignore file's edit changed the set (not a
/// path: no file by that name is judged by its time).
const RULES_CHANGED: &str = "(ignore rules changed)";

/// What a watch is told changed when its set cannot be walked: no path, and the task runs
/// (its check says why); the next report walks again.
const UNWALKABLE: &str = "(the set, which cannot be walked)";

/// Walks the whole set again (the watcher lost events); the paths that differ.
fn walked_again(index: &mut Index) -> Vec<String> {
    let before = index.table();
    if let Err(e) = index.full_pass(Some(&before)) {
        tracing::warn!("watch: cannot walk a watched set: {e}");
        return vec![UNWALKABLE.to_string()];
    }
    let after = index.entries();
    diff(&before.entries, &after)
        .into_iter()
        .map(|c| c.path)
        .collect()
}

fn digest_of(path: &Path) -> Option<Digest> {
    let bytes = std::fs::read(path).ok()?;
    Some(Digest::from(blake3::hash(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_rings_wakes_once_it_goes_quiet() {
        let bell = Arc::new(Bell::default());
        let ringer = Arc::clone(&bell);
        let started = std::time::Instant::now();
        let rings = std::thread::spawn(move || {
            for _ in 0..25 {
                ringer.ring();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        assert!(bell.wait(std::time::Duration::from_millis(100)));
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(50),
            "woke during the burst"
        );
        rings.join().unwrap();
    }

    /// Issue N: an edit made the moment `start` returns is delivered, however long the
    /// sets' first pass takes (it ran on the engine's thread, and read the edited files
    /// already on a busy machine).
    #[test]
    fn every_edit_made_once_start_returns_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4000 {
            std::fs::write(dir.path().join(format!("f{i}.txt")), "1\n").unwrap();
        }
        let root = crate::daemon::protocol::NormalizedPath::new(dir.path(), ".".as_ref());
        let set = WatchSet {
            label: "t".to_string(),
            root,
            extensions: Vec::new(),
            include_globs: Vec::new(),
            exclude: Vec::new(),
            state_file: None,
            file: None,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = Arc::new(Watcher::new());
        let settle = std::time::Duration::from_millis(20);
        let _subscription =
            Subscription::start(watcher, &[set], settle, move |c| tx.send(c).is_ok()).unwrap();
        let edited: std::collections::BTreeSet<String> =
            (0..10).map(|k| format!("f{}.txt", k * 397)).collect();
        for name in &edited {
            std::fs::write(dir.path().join(name), "2\n").unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen != edited && std::time::Instant::now() < deadline {
            if let Ok(changes) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                seen.extend(changes.into_iter().flat_map(|c| c.paths));
            }
        }
        assert_eq!(seen, edited);
    }

    #[test]
    fn a_change_lists_at_most_the_cap_and_counts_the_rest() {
        let paths: Vec<String> = (0..25).map(|i| format!("f{i}")).collect();
        let change = change(3, paths);
        assert_eq!(change.set, 3);
        assert_eq!(change.paths.len(), MAX_CHANGED_PATHS);
        assert_eq!(change.more, 5);
    }
}
