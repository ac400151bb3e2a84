//! The shared remote tier of the artifact store, on Redis (`ZCCACHE_REMOTE=redis://host:port/db`).
//!
//! Read-through: a local miss asks the remote, and what comes back is verified (each blob's
//! blake3 against its name, the entry's key against the one asked) before it is stored
//! locally and delivered. Write-behind: a local store is queued for upload (bounded in bytes,
//! dropped when full) and sent by one background thread, so a build never waits on the
//! network. Every remote error or timeout (2 s) turns the remote off for a while with one
//! warning: the cache degrades to local-only, never fails a build.
//!
//! Keys: `<namespace>:entry:<store key>` (the entry JSON) and `<namespace>:blob:<blake3>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::fingerprint::now_ms;

/// Env var naming the remote (`redis://host:port/db`).
pub const REMOTE_ENV: &str = "ZCCACHE_REMOTE";
/// Env var set to `1` for pull-only use (CI readers, developers not pushing).
pub const READONLY_ENV: &str = "ZCCACHE_REMOTE_READONLY";
/// Env var prefixing every remote key, so projects and toolchains do not mix.
pub const NAMESPACE_ENV: &str = "ZCCACHE_REMOTE_NAMESPACE";
/// Bound on every remote connect, read and write.
const TIMEOUT: Duration = Duration::from_secs(2);
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
    client: redis::Client,
    namespace: String,
    readonly: bool,
    reader: Mutex<Option<redis::Connection>>,
    queue: Mutex<Option<SyncSender<Upload>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    queued_bytes: Arc<AtomicU64>,
    off_until_ms: Arc<AtomicU64>,
    last_warning_ms: Arc<AtomicU64>,
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

    /// A remote at `url` (not connected until first used).
    pub fn new(url: &str, namespace: &str, readonly: bool) -> Result<Arc<Remote>, String> {
        if !url.starts_with("redis://") && !url.starts_with("rediss://") {
            return Err(format!(
                "{REMOTE_ENV}={url}: only redis:// URLs are supported"
            ));
        }
        let client = redis::Client::open(url).map_err(|e| format!("{REMOTE_ENV}={url}: {e}"))?;
        let remote = Arc::new(Remote {
            client,
            namespace: namespace.to_string(),
            readonly,
            reader: Mutex::new(None),
            queue: Mutex::new(None),
            uploader: Mutex::new(None),
            queued_bytes: Arc::default(),
            off_until_ms: Arc::default(),
            last_warning_ms: Arc::default(),
            counts: Arc::default(),
        });
        if !readonly {
            let (sender, receiver) = sync_channel(QUEUE_LEN);
            let worker = remote.worker();
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
        if self.is_off() {
            return None;
        }
        let mut reader = lock(&self.reader);
        let answer = connection(&self.client, &mut reader).and_then(|con| {
            redis::cmd("GET")
                .arg(format!("{}:{key}", self.namespace))
                .query::<Option<Vec<u8>>>(con)
        });
        match answer {
            Ok(value) => value,
            Err(err) => {
                *reader = None;
                self.failed(&err);
                None
            }
        }
    }

    /// Queues an upload; never waits (dropped when the queue is full or the remote is off).
    pub fn upload(&self, upload: Upload) {
        if self.readonly || self.is_off() {
            return;
        }
        let size = upload.bytes();
        if self.queued_bytes.load(Ordering::Relaxed) + size > QUEUE_BYTES {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queue = lock(&self.queue);
        let Some(sender) = queue.as_ref() else {
            return;
        };
        self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(upload)
        {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
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

    fn is_off(&self) -> bool {
        now_ms() < self.off_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, err: &redis::RedisError) {
        self.worker().failed(err);
    }

    fn worker(&self) -> Worker {
        Worker {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            queued_bytes: self.queued_bytes.clone(),
            off_until_ms: self.off_until_ms.clone(),
            last_warning_ms: self.last_warning_ms.clone(),
            counts: self.counts.clone(),
        }
    }
}

/// The upload thread's side: its own connection, the shared back-off and counters.
struct Worker {
    client: redis::Client,
    namespace: String,
    queued_bytes: Arc<AtomicU64>,
    off_until_ms: Arc<AtomicU64>,
    last_warning_ms: Arc<AtomicU64>,
    counts: Arc<RemoteCounts>,
}

impl Worker {
    fn run(self, uploads: Receiver<Upload>) {
        let mut con = None;
        for upload in uploads {
            self.queued_bytes
                .fetch_sub(upload.bytes(), Ordering::Relaxed);
            if now_ms() < self.off_until_ms.load(Ordering::Relaxed) {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match self.send(&mut con, &upload) {
                Ok(()) => {
                    self.counts.uploads.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    con = None;
                    self.failed(&err);
                }
            }
        }
    }

    /// Blobs the remote lacks first, then the entry, so a reader never finds an entry
    /// whose blobs are missing.
    fn send(&self, con: &mut Option<redis::Connection>, upload: &Upload) -> redis::RedisResult<()> {
        let con = connection(&self.client, con)?;
        for (hex, bytes) in &upload.blobs {
            let key = format!("{}:blob:{hex}", self.namespace);
            let present: bool = redis::cmd("EXISTS").arg(&key).query(con)?;
            if !present {
                redis::cmd("SET").arg(&key).arg(bytes).query::<()>(con)?;
            }
        }
        redis::cmd("SET")
            .arg(format!("{}:entry:{}", self.namespace, upload.key))
            .arg(&upload.entry)
            .query::<()>(con)
    }

    /// Turns the remote off for a while; warns at most once per back-off period.
    fn failed(&self, err: &redis::RedisError) {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        self.off_until_ms
            .store(now + BACK_OFF_MS, Ordering::Relaxed);
        if now.saturating_sub(self.last_warning_ms.swap(now, Ordering::Relaxed)) >= BACK_OFF_MS {
            tracing::warn!("remote cache unavailable ({err}); local only for 30 s");
        }
    }
}

/// The open connection in `slot`, connecting (with timeouts) when there is none.
fn connection<'a>(
    client: &redis::Client,
    slot: &'a mut Option<redis::Connection>,
) -> redis::RedisResult<&'a mut redis::Connection> {
    if slot.is_none() {
        let con = client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        *slot = Some(con);
    }
    Ok(slot.as_mut().expect("connected above"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_redis_urls() {
        assert!(Remote::new("s3://bucket/x", "ns", true).is_err());
        assert!(Remote::new("redis://127.0.0.1:1/0", "ns", true).is_ok());
    }

    #[test]
    fn an_unreachable_remote_is_a_quiet_miss_then_off() {
        let remote = Remote::new("redis://127.0.0.1:1/0", "ns", true).unwrap();
        assert_eq!(remote.get("entry:x"), None);
        assert!(remote.is_off());
        assert_eq!(remote.counts.errors.load(Ordering::Relaxed), 1);
        assert_eq!(remote.get("entry:x"), None);
        assert_eq!(
            remote.counts.errors.load(Ordering::Relaxed),
            1,
            "off: not asked again"
        );
    }
}
