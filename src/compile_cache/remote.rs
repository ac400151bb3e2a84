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

use super::remote_backends::{self, Backend, Fetched};
use crate::fingerprint::now_ms;

/// Env var naming the remote (`redis://host:port/db`).
pub const REMOTE_ENV: &str = "ZCCACHE_REMOTE";
/// Env var set to `1` for pull-only use (CI readers, developers not pushing).
pub const READONLY_ENV: &str = "ZCCACHE_REMOTE_READONLY";
/// Env var prefixing every remote key, so projects and toolchains do not mix.
pub const NAMESPACE_ENV: &str = "ZCCACHE_REMOTE_NAMESPACE";
/// Env var holding the secret that signs uploaded entries and is required of fetched ones.
pub const KEY_ENV: &str = "ZCCACHE_REMOTE_KEY";
/// Env var naming a file that holds that secret.
pub const KEY_FILE_ENV: &str = "ZCCACHE_REMOTE_KEY_FILE";
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

/// How the remote tier is configured (resolved by `user_config::remote_settings` from the
/// environment or the user's own config file).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// `redis://host:port/db` or `s3://bucket/prefix`.
    pub url: String,
    /// Key prefix.
    pub namespace: String,
    /// Pull only.
    pub readonly: bool,
    /// Signs uploads and is required of fetched entries (derived from the secret).
    pub signing_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .field("readonly", &self.readonly)
            .field("signed", &self.signing_key.is_some())
            .finish()
    }
}

/// Shortest secret taken, in bytes (surrounding whitespace aside): a key short enough to
/// guess would let anyone sign.
pub const MIN_KEY_BYTES: usize = 32;

/// The entry-signing key of a secret (surrounding whitespace ignored); Err for one shorter
/// than [`MIN_KEY_BYTES`], saying how to make a good one.
pub fn signing_key(secret: &[u8]) -> Result<[u8; 32], String> {
    let secret = secret.trim_ascii();
    if secret.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes; a remote key needs at least {MIN_KEY_BYTES} (make one with \
             `head -c 32 /dev/urandom | base64 > remote.key`)",
            secret.len()
        ));
    }
    Ok(blake3::derive_key(
        "zccache 2026 remote entry signature",
        secret,
    ))
}

/// The remote tier of one daemon.
pub struct Remote {
    backend: Arc<dyn Backend>,
    namespace: String,
    readonly: bool,
    signing_key: Option<[u8; 32]>,
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
    /// The remote `settings` name (not contacted until first used).
    pub fn new(settings: &RemoteSettings) -> Result<Arc<Remote>, String> {
        let RemoteSettings {
            url,
            namespace,
            readonly,
            signing_key,
        } = settings;
        let readonly = *readonly;
        let backend: Arc<dyn Backend> = remote_backends::open(url, namespace)
            .map_err(|e| format!("{REMOTE_ENV}={url}: {e}"))?
            .into();
        let remote = Arc::new(Remote {
            backend,
            namespace: namespace.to_string(),
            readonly,
            signing_key: *signing_key,
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

    /// True when uploads are signed and fetched entries must carry a valid signature.
    pub fn signs(&self) -> bool {
        self.signing_key.is_some()
    }

    /// The signature (hex keyed blake3) of an unsigned entry's bytes, when signing.
    pub fn sign(&self, unsigned_entry: &[u8]) -> Option<String> {
        let key = self.signing_key.as_ref()?;
        Some(blake3::keyed_hash(key, unsigned_entry).to_hex().to_string())
    }

    /// True when an entry may be used: no key configured, or `mac` is its valid signature
    /// (compared in constant time).
    pub fn signature_holds(&self, unsigned_entry: &[u8], mac: Option<&str>) -> bool {
        let Some(key) = &self.signing_key else {
            return true;
        };
        let Some(given) = mac.and_then(|m| blake3::Hash::from_hex(m).ok()) else {
            return false;
        };
        blake3::keyed_hash(key, unsigned_entry) == given
    }

    /// The value of `key` (`entry:...`, `blob:...`) if it is at most `limit` bytes (read no
    /// further); `None` when absent, larger, off or failing.
    pub fn get(&self, key: &str, limit: u64) -> Option<Vec<u8>> {
        if self.health.is_off() {
            return None;
        }
        match self.backend.get(key, limit) {
            Ok(Fetched::TooLarge) => {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("remote value {key:?} is over {limit} bytes: refused");
                None
            }
            Ok(Fetched::Absent) => None,
            Ok(Fetched::Value(value)) => Some(value),
            Err(err) => {
                self.health.failed(&self.counts, &err);
                None
            }
        }
    }

    /// The values of `keys` as `get` reads each, asked in one batch (one round trip on
    /// Redis); all `None` when the remote is off or failing.
    pub fn get_many(&self, keys: &[String], limit: u64) -> Vec<Option<Vec<u8>>> {
        if self.health.is_off() || keys.is_empty() {
            return vec![None; keys.len()];
        }
        match self.backend.get_many(keys, limit) {
            Ok(values) => values
                .into_iter()
                .zip(keys)
                .map(|(value, key)| match value {
                    Fetched::Value(value) => Some(value),
                    Fetched::Absent => None,
                    Fetched::TooLarge => {
                        self.counts.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("remote value {key:?} is over {limit} bytes: refused");
                        None
                    }
                })
                .collect(),
            Err(err) => {
                self.health.failed(&self.counts, &err);
                vec![None; keys.len()]
            }
        }
    }

    /// Sends `uploads` now, in a few batches (their distinct blobs the remote lacks, then
    /// every entry at once), waiting for them: for many small entries at the end of a
    /// command, where the one-at-a-time queue would take a round trip or two each.
    pub fn send_now(&self, uploads: &[Upload]) {
        if self.readonly || self.health.is_off() || uploads.is_empty() {
            return;
        }
        match send_batch(self.backend.as_ref(), uploads) {
            Ok(()) => {
                let n = uploads.len() as u64;
                self.counts.uploads.fetch_add(n, Ordering::Relaxed);
            }
            Err(err) => self.health.failed(&self.counts, &err),
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

/// The blobs of `uploads` the remote lacks (each once), then all their entries in one batch,
/// so a reader never finds an entry whose blobs are missing.
fn send_batch(backend: &dyn Backend, uploads: &[Upload]) -> Result<(), String> {
    let blobs: std::collections::BTreeMap<&str, &[u8]> = uploads
        .iter()
        .flat_map(|u| {
            u.blobs
                .iter()
                .map(|(hex, bytes)| (hex.as_str(), &bytes[..]))
        })
        .collect();
    for (hex, bytes) in blobs {
        let key = format!("blob:{hex}");
        if !backend.exists(&key)? {
            backend.put(&key, bytes)?;
        }
    }
    let entries: Vec<(String, Vec<u8>)> = uploads
        .iter()
        .map(|u| (format!("entry:{}", u.key), u.entry.clone()))
        .collect();
    backend.put_many(&entries)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str) -> RemoteSettings {
        RemoteSettings {
            url: url.to_string(),
            namespace: "ns".to_string(),
            readonly: true,
            signing_key: None,
        }
    }

    #[test]
    fn redis_and_s3_urls_only() {
        assert!(Remote::new(&at("http://cache/x")).is_err());
        assert!(Remote::new(&at("s3:///x")).is_err());
        assert!(Remote::new(&at("redis://127.0.0.1:1/0")).is_ok());
        assert!(Remote::new(&at("s3://bucket/prefix")).is_ok());
    }

    #[test]
    fn signatures_need_the_key() {
        let unsigned = Remote::new(&at("redis://127.0.0.1:1/0")).unwrap();
        assert!(unsigned.signature_holds(b"entry", None));
        let keyed = |secret: &[u8]| {
            let mut settings = at("redis://127.0.0.1:1/0");
            settings.signing_key = Some(signing_key(secret).unwrap());
            Remote::new(&settings).unwrap()
        };
        let (ours, theirs) = (
            keyed(b"team secret, long enough to sign\n"),
            keyed(b"another secret of 32 bytes or more"),
        );
        let mac = ours.sign(b"entry").unwrap();
        assert!(ours.signature_holds(b"entry", Some(&mac)));
        assert!(!ours.signature_holds(b"entry!", Some(&mac)));
        assert!(!ours.signature_holds(b"entry", None));
        assert!(!ours.signature_holds(b"entry", Some("zz")));
        assert!(!theirs.signature_holds(b"entry", Some(&mac)));
        assert!(signing_key(b" \n").is_err());
        let short = signing_key(b"  these 31 bytes are one too few.\n").unwrap_err();
        assert!(
            short.contains("31 bytes") && short.contains("at least 32"),
            "{short}"
        );
    }

    #[test]
    fn an_unreachable_remote_is_a_quiet_miss_then_off() {
        let remote = Remote::new(&at("redis://127.0.0.1:1/0")).unwrap();
        assert_eq!(remote.get("entry:x", 100), None);
        assert!(remote.health.is_off());
        assert_eq!(remote.counts.errors.load(Ordering::Relaxed), 1);
        assert_eq!(remote.get("entry:x", 100), None);
        assert_eq!(
            remote.counts.errors.load(Ordering::Relaxed),
            1,
            "off: not asked again"
        );
    }
}
