//! The shared remote tier of the artifact store, on Redis (`ZCCACHE_REMOTE=redis://host:port/db`)
//! or an S3-compatible bucket (`s3://bucket/prefix`); see `remote_backends`.
//!
//! Read-through: a local miss asks the remote, and what comes back is verified (each blob's
//! blake3 against its name, the entry's key against the one asked) before it is stored
//! locally and delivered. Write-behind: a local store is queued for upload (bounded in bytes,
//! dropped when full) and sent by one background thread, so a build never waits on the
//! network. Every remote error or timeout (2 s) turns the remote off for a while with one
//! warning: the cache degrades to local-only, never fails a build.
//!
//! Keys (under the namespace): `entry:<store key>` (the entry JSON) and `blob:<blake3>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::remote_backends::{self, Backend};
use crate::fingerprint::now_ms;

/// Env var naming the remote (`redis://host:port/db`).
pub const REMOTE_ENV: &str = "ZCCACHE_REMOTE";
/// Env var set to `1` for pull-only use (CI readers, developers not pushing).
pub const READONLY_ENV: &str = "ZCCACHE_REMOTE_READONLY";
/// Env var prefixing every remote key, so projects and toolchains do not mix.
pub const NAMESPACE_ENV: &str = "ZCCACHE_REMOTE_NAMESPACE";
/// How long the remote stays off after an error.
const BACK_OFF_MS: u64 = 30_000;
/// Bytes waiting for upload at most; past it, stores are not uploaded.
const QUEUE_BYTES: u64 = 256 << 20;
/// Uploads waiting at most.
const QUEUE_LEN: usize = 4096;

/// What to upload for one stored key: its blobs (by hex digest) and then its entry.
#[derive(Debug)]
pub struct Upload {
    /// The store key.
    pub key: String,
    /// The entry JSON.
    pub entry: Vec<u8>,
    /// (blake3 hex, bytes) of every blob the entry names.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Upload {
    fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, b)| b.len() as u64).sum::<u64>() + self.entry.len() as u64
    }
}

/// Counters of the remote tier, for `zccache status`.
#[derive(Debug, Default)]
pub struct RemoteCounts {
    /// Entries found remotely (and verified).
    pub hits: AtomicU64,
    /// Entries asked for and not found.
    pub misses: AtomicU64,
    /// Entries uploaded.
    pub uploads: AtomicU64,
    /// Entries not uploaded (queue full).
    pub dropped: AtomicU64,
    /// Remote entries or blobs refused by verification.
    pub refused: AtomicU64,
    /// Errors and timeouts.
    pub errors: AtomicU64,
}

/// The remote tier of one daemon.
pub struct Remote {
    backend: Arc<dyn Backend>,
    namespace: String,
    readonly: bool,
    queue: Mutex<Option<SyncSender<Upload>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    health: Arc<Health>,
    /// What it did so far.
    pub counts: Arc<RemoteCounts>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("namespace", &self.namespace)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// The remote the environment names, if any; an unusable URL is an error message.
    pub fn from_env() -> Option<Result<Arc<Remote>, String>> {
        let url = std::env::var(REMOTE_ENV).ok().filter(|u| !u.is_empty())?;
        let readonly = std::env::var(READONLY_ENV).is_ok_and(|v| v == "1" || v == "true");
        let namespace = std::env::var(NAMESPACE_ENV)
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "zccache".to_string());
        Some(Remote::new(&url, &namespace, readonly))
    }

    /// A remote at `url` (not contacted until first used).
    pub fn new(url: &str, namespace: &str, readonly: bool) -> Result<Arc<Remote>, String> {
        let backend: Arc<dyn Backend> = remote_backends::open(url, namespace)
            .map_err(|e| format!("{REMOTE_ENV}={url}: {e}"))?
            .into();
        let remote = Arc::new(Remote {
            backend,
            namespace: namespace.to_string(),
            readonly,
            queue: Mutex::new(None),
            uploader: Mutex::new(None),
            health: Arc::default(),
            counts: Arc::default(),
        });
        if !readonly {
            let (sender, receiver) = sync_channel(QUEUE_LEN);
            let worker = Worker {
                backend: remote.backend.clone(),
                health: remote.health.clone(),
                counts: remote.counts.clone(),
            };
            let handle = std::thread::Builder::new()
                .name("zccache-upload".into())
                .spawn(move || worker.run(receiver))
                .map_err(|e| format!("start the upload thread: {e}"))?;
            *lock(&remote.queue) = Some(sender);
            *lock(&remote.uploader) = Some(handle);
        }
        Ok(remote)
    }

    /// True when nothing is ever written to the remote.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The value of `key` (`entry:...`, `blob:...`); `None` when absent, off or failing.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        if self.health.is_off() {
            return None;
        }
        match self.backend.get(key) {
            Ok(value) => value,
            Err(err) => {
                self.health.failed(&self.counts, &err);
                None
            }
        }
    }

    /// Queues an upload; never waits (dropped when the queue is full or the remote is off).
    pub fn upload(&self, upload: Upload) {
        if self.readonly || self.health.is_off() {
            return;
        }
        let size = upload.bytes();
        let queued = &self.health.queued_bytes;
        if queued.load(Ordering::Relaxed) + size > QUEUE_BYTES {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queue = lock(&self.queue);
        let Some(sender) = queue.as_ref() else {
            return;
        };
        queued.fetch_add(size, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(upload)
        {
            queued.fetch_sub(size, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what is queued (waiting at most `limit`), then stops the upload thread.
    pub fn drain(&self, limit: Duration) {
        drop(lock(&self.queue).take());
        let Some(handle) = lock(&self.uploader).take() else {
            return;
        };
        let deadline = std::time::Instant::now() + limit;
        while !handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// Whether the remote is usable, shared by lookups and the upload thread.
#[derive(Debug, Default)]
struct Health {
    queued_bytes: AtomicU64,
    off_until_ms: AtomicU64,
    last_warning_ms: AtomicU64,
}

impl Health {
    fn is_off(&self) -> bool {
        now_ms() < self.off_until_ms.load(Ordering::Relaxed)
    }

    /// Turns the remote off for a while; warns at most once per back-off period.
    fn failed(&self, counts: &RemoteCounts, err: &str) {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        self.off_until_ms
            .store(now + BACK_OFF_MS, Ordering::Relaxed);
        if now.saturating_sub(self.last_warning_ms.swap(now, Ordering::Relaxed)) >= BACK_OFF_MS {
            tracing::warn!("remote cache unavailable ({err}); local only for 30 s");
        }
    }
}

/// The upload thread.
struct Worker {
    backend: Arc<dyn Backend>,
    health: Arc<Health>,
    counts: Arc<RemoteCounts>,
}

impl Worker {
    fn run(self, uploads: Receiver<Upload>) {
        for upload in uploads {
            self.health
                .queued_bytes
                .fetch_sub(upload.bytes(), Ordering::Relaxed);
            if self.health.is_off() {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match self.send(&upload) {
                Ok(()) => {
                    self.counts.uploads.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => self.health.failed(&self.counts, &err),
            }
        }
    }

    /// Blobs the remote lacks first, then the entry, so a reader never finds an entry
    /// whose blobs are missing.
    fn send(&self, upload: &Upload) -> Result<(), String> {
        for (hex, bytes) in &upload.blobs {
            let key = format!("blob:{hex}");
            if !self.backend.exists(&key)? {
                self.backend.put(&key, bytes)?;
            }
        }
        self.backend
            .put(&format!("entry:{}", upload.key), &upload.entry)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_and_s3_urls_only() {
        assert!(Remote::new("http://cache/x", "ns", true).is_err());
        assert!(Remote::new("s3:///x", "ns", true).is_err());
        assert!(Remote::new("redis://127.0.0.1:1/0", "ns", true).is_ok());
        assert!(Remote::new("s3://bucket/prefix", "ns", true).is_ok());
    }

    #[test]
    fn an_unreachable_remote_is_a_quiet_miss_then_off() {
        let remote = Remote::new("redis://127.0.0.1:1/0", "ns", true).unwrap();
        assert_eq!(remote.get("entry:x"), None);
        assert!(remote.health.is_off());
        assert_eq!(remote.counts.errors.load(Ordering::Relaxed), 1);
        assert_eq!(remote.get("entry:x"), None);
        assert_eq!(
            remote.counts.errors.load(Ordering::Relaxed),
            1,
            "off: not asked again"
        );
    }
}
