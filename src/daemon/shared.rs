//! What the daemon's connection tasks share, and the helpers every request handler uses
//! on it: running work on the blocking pool and counting what the store took in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

use super::background::Background;
use super::fingerprints::Fingerprints;
use super::lifecycle::DaemonPaths;
use super::protocol::Response;
use super::sessions::Sessions;
use crate::compile_cache::compile::CompileCache;
use crate::compile_cache::store::Store;

/// Everything the connection tasks share.
pub struct Shared {
    /// The state directory's files.
    pub paths: DaemonPaths,
    /// When the daemon started.
    pub started: Instant,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Set to stop the daemon.
    pub shutdown: Notify,
    /// Fingerprint indexes and watches.
    pub fingerprints: Fingerprints,
    /// The artifact store.
    pub store: Store,
    /// Its size bound.
    pub max_size: u64,
    /// Why the configured remote tier is off, if it is.
    pub remote_off: Option<String>,
    /// Bytes the store holds, as last counted plus writes since (`u64::MAX`: not counted).
    pub store_bytes: AtomicU64,
    /// The compile cache (over the same store).
    pub compiles: CompileCache,
    /// Compile counters: hits, misses, passthroughs, errors.
    pub compile_counts: [AtomicU64; 4],
    /// Compile sessions and the journal.
    pub sessions: Sessions,
    /// Work the build does not wait on, at a lower CPU priority.
    pub background: Background,
    /// When the last request came, in ms since `started`.
    pub(super) last_activity: AtomicU64,
    /// Requests being answered.
    pub(super) in_flight: AtomicU64,
    /// Told when `in_flight` drops.
    pub(super) drained: Notify,
    /// The `zccache watch` connections.
    pub watches: super::watches::Watches,
}

impl Shared {
    /// Notes a request now (the idle timeout counts from the last one).
    pub(super) fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_activity.store(now, Ordering::SeqCst);
    }
}

pub async fn blocking(
    shared: Arc<Shared>,
    work: impl FnOnce(&Shared) -> Response + Send + 'static,
) -> Response {
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .unwrap_or_else(|e| handler_failed(&e))
}

/// The answer when a handler panicked.
pub fn handler_failed(err: &tokio::task::JoinError) -> Response {
    Response::Error {
        message: format!("handler failed: {err}"),
    }
}

/// Counts `written` new bytes into the store's size and trims it (least recently used first,
/// to 90% of `ZCCACHE_MAX_SIZE`) when it outgrew the bound.
pub fn account_store(shared: &Shared, written: u64) {
    let counted = shared.store_bytes.load(Ordering::SeqCst);
    let total = if counted == u64::MAX {
        shared.store.usage().bytes
    } else {
        counted.saturating_add(written)
    };
    shared.store_bytes.store(total, Ordering::SeqCst);
    if total <= shared.max_size {
        return;
    }
    match shared.store.trim(shared.max_size / 10 * 9) {
        Ok(trimmed) => {
            tracing::info!(
                entries = trimmed.entries,
                bytes = trimmed.bytes,
                "trimmed the store"
            );
            shared
                .store_bytes
                .store(shared.store.usage().bytes, Ordering::SeqCst);
        }
        Err(e) => tracing::warn!("cannot trim the artifact store: {e}"),
    }
}
