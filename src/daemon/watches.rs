//! The daemon's list of active `zccache watch` streams (for `status`) and the switch that
//! ends them all when it stops.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::protocol::WatchStatus;

/// The active watches, for `status`, and the switch that ends them when the daemon stops.
pub struct Watches {
    list: Mutex<BTreeMap<u64, (WatchStatus, Instant)>>,
    next: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            list: Mutex::default(),
            next: AtomicU64::new(0),
            stop: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Watches {
    /// Ends every watch stream (the daemon is stopping; their clients see the connection
    /// close).
    pub fn stop_all(&self) {
        self.stop.send_replace(true);
    }

    /// Lists a watch until the returned guard is dropped.
    pub fn add(&self, status: WatchStatus) -> Listed<'_> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.insert(id, (status, Instant::now()));
        Listed(self, id)
    }

    /// Told `true` when the daemon stops.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The active watches, oldest first.
    pub fn status(&self) -> Vec<WatchStatus> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.values()
            .map(|(status, since)| WatchStatus {
                age_secs: since.elapsed().as_secs(),
                ..status.clone()
            })
            .collect()
    }
}

/// Removes its watch from the list when the stream ends.
pub struct Listed<'a>(&'a Watches, u64);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let mut list = self.0.list.lock().unwrap_or_else(|p| p.into_inner());
        list.remove(&self.1);
    }
}
