//! File watching where zccache has no watcher backend (every Unix but Linux, whose inotify
//! backend is `watcher.rs`): the same interface, never trusted, so each check of a watched
//! root does a full stat pass and says why. Correct, only slower.

use std::path::{Path, PathBuf};

use crate::fingerprint::OwnState;

/// Why nothing is watched here (shown by checks and `zccache status`).
const UNAVAILABLE: &str = "no file watching on this platform (inotify is Linux-only)";

/// Called when a subscriber's changes go from none to some (never, here).
pub type Wake = std::sync::Arc<dyn Fn() + Send + Sync>;

/// What changed for one index since it last asked: here, never trustworthy.
#[derive(Debug, Default)]
pub struct Changes {
    /// Paths reported changed (absolute): none.
    pub paths: Vec<PathBuf>,
    /// Why the index may not trust these paths alone: always set.
    pub distrust: Option<String>,
}

/// A watcher that watches nothing.
#[derive(Default)]
pub struct Watcher;

impl Watcher {
    /// The (empty) watcher.
    pub fn new() -> Self {
        Watcher
    }

    /// Refuses: nothing can be watched.
    pub fn subscribe(&self, _root: &Path, _id: u64, _own: OwnState) -> Result<(), String> {
        Err(UNAVAILABLE.to_string())
    }

    /// Refuses: nothing can be watched, so a `zccache watch` cannot be woken.
    pub fn subscribe_waking(
        &self,
        _root: &Path,
        _id: u64,
        _own: OwnState,
        _wake: Option<Wake>,
    ) -> Result<(), String> {
        Err(UNAVAILABLE.to_string())
    }

    /// Nothing to stop.
    pub fn unsubscribe(&self, _root: &Path, _id: u64) {}

    /// No time passes for a watcher that sees nothing.
    pub fn sync_point(&self) -> u64 {
        0
    }

    /// Refuses: no events arrive.
    pub fn sync(&self, _root: &Path, _as_of: u64) -> Result<(), String> {
        Err(UNAVAILABLE.to_string())
    }

    /// No changes, and the reason not to trust that.
    pub fn take(&self, _root: &Path, _id: u64) -> Changes {
        Changes {
            paths: Vec::new(),
            distrust: Some(UNAVAILABLE.to_string()),
        }
    }

    /// Always: nothing is watched.
    pub fn distrusted(&self, _root: &Path, _id: u64) -> bool {
        true
    }

    /// Nothing to stop.
    pub fn clear(&self) {}

    /// How checks learn of changes: never from events here.
    pub fn describe(&self) -> String {
        UNAVAILABLE.to_string()
    }
}
