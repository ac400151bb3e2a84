//! The artifact store: content-addressed blobs under `ZCCACHE_DIR/artifacts/blobs/` and one
//! entry file per key under `artifacts/entries/` naming the blobs of an artifact. Blobs are
//! zstd-compressed when that pays (`blob_codec`; level from `limits::compression`), here and
//! on the remote tier, and always named by the blake3 of their uncompressed bytes.
//!
//! Every write is atomic (temp file + rename), so a reader sees a whole entry or none; an
//! entry is written only after all its blobs. Every blob is verified against its name when
//! read: a corrupted one is removed and the lookup is a miss, never a bad delivery. Entry
//! files' mtimes record use, and the store is trimmed least recently used first.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::blob_codec;
use super::blob_memo::{BlobMemo, MEMO_BYTES};
use super::limits;
use super::profile::{Phase, timed};
use super::remote::{Remote, Upload};
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::{Digest, write_file_atomic};

const ENTRY_VERSION: u32 = 1;
/// Largest entry file read (its JSON names blobs; real ones are a few hundred bytes).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;
/// Largest blob an entry may name, and largest sum of an entry's blobs.
const MAX_BLOB_BYTES: u64 = 1 << 30;
const MAX_ARTIFACT_BYTES: u64 = 2 << 30;

/// One output of an artifact in an entry file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutputRef {
    name: String,
    blob: Digest,
    size: u64,
}

/// An entry file: the blobs that make up one key's artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    version: u32,
    key: String,
    outputs: Vec<OutputRef>,
    stdout: OutputRef,
    stderr: OutputRef,
    exit_code: i32,
    /// On the remote only: keyed blake3 of the entry without this field, when uploads are
    /// signed (`ZCCACHE_REMOTE_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// Sizes after a trim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Entries removed.
    pub entries: u64,
    /// Bytes of blobs removed.
    pub bytes: u64,
}

/// What the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Entries.
    pub entries: u64,
    /// Bytes of blobs on disk.
    pub bytes: u64,
}

/// What the store holds, on disk and uncompressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packed {
    /// Entries.
    pub entries: u64,
    /// Bytes of blobs on disk.
    pub on_disk: u64,
    /// Their uncompressed size.
    pub raw: u64,
}

/// One entry as `entries_under` lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its outputs: name and size.
    pub outputs: Vec<(String, u64)>,
    /// When it was last stored or read.
    pub last_use: SystemTime,
}

/// A store rooted at `ZCCACHE_DIR/artifacts`, with a remote tier when one is configured.
#[derive(Debug, Clone)]
pub struct Store {
    blobs: PathBuf,
    entries: PathBuf,
    remote: Option<Arc<Remote>>,
    /// zstd level of new blobs (`None`: raw).
    level: Option<i32>,
    /// Blobs kept decoded in memory (the daemon's store only).
    memo: Option<Arc<BlobMemo>>,
}

impl Store {
    /// The store under the state directory `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        let root = dir.join("artifacts");
        Store {
            blobs: root.join("blobs"),
            entries: root.join("entries"),
            remote: None,
            level: limits::compression(),
            memo: None,
        }
    }

    /// This store keeping recently stored or read blobs decoded in memory (up to
    /// [`MEMO_BYTES`]), for a long-lived process: the daemon.
    pub fn with_memo(mut self) -> Self {
        self.memo = Some(Arc::new(BlobMemo::new(MEMO_BYTES)));
        self
    }

    /// This store writing new blobs at zstd `level` (`None`: raw).
    pub fn with_compression(mut self, level: Option<i32>) -> Self {
        self.level = level;
        self
    }

    /// The zstd level new blobs are written at (`None`: raw).
    pub fn compression(&self) -> Option<i32> {
        self.level
    }

    /// This store reading through to `remote` on a miss and uploading what it stores.
    pub fn with_remote(mut self, remote: Arc<Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The remote tier, if any.
    pub fn remote(&self) -> Option<&Arc<Remote>> {
        self.remote.as_ref()
    }

    /// Stores `artifact` under `key`, replacing what was there, and queues it for the
    /// remote tier.
    pub fn put(&self, key: &str, artifact: &Artifact) -> io::Result<u64> {
        timed(Phase::Store, || self.put_untimed(key, artifact))
    }

    fn put_untimed(&self, key: &str, artifact: &Artifact) -> io::Result<u64> {
        let (written, entry) = self.put_local(key, artifact)?;
        if let Some(remote) = self.remote.as_ref().filter(|r| !r.readonly()) {
            remote.upload(upload(key, entry, artifact, remote, self.level)?);
        }
        Ok(written)
    }

    fn put_local(&self, key: &str, artifact: &Artifact) -> io::Result<(u64, Entry)> {
        let mut written = 0;
        let mut blob = |name: &str, bytes: &[u8]| -> io::Result<OutputRef> {
            let (digest, on_disk) = self.write_blob(bytes)?;
            written += on_disk;
            Ok(OutputRef {
                name: name.to_string(),
                blob: digest,
                size: bytes.len() as u64,
            })
        };
        let outputs = artifact
            .outputs
            .iter()
            .map(|(name, bytes)| blob(name, bytes))
            .collect::<io::Result<Vec<_>>>()?;
        let entry = Entry {
            version: ENTRY_VERSION,
            key: key.to_string(),
            outputs,
            stdout: blob("stdout", &artifact.stdout)?,
            stderr: blob("stderr", &artifact.stderr)?,
            exit_code: artifact.exit_code,
            mac: None,
        };
        fs::create_dir_all(&self.entries)?;
        let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        write_file_atomic(&self.entry_path(key), &bytes, false)?;
        Ok((written, entry))
    }

    /// Stores `artifact` under `key` in this machine's store only (never uploaded).
    pub fn put_here(&self, key: &str, artifact: &Artifact) -> io::Result<u64> {
        timed(Phase::Store, || self.put_local(key, artifact)).map(|(written, _)| written)
    }

    /// The artifact of `key`, verified; `None` on a miss (or a corrupted entry, removed).
    pub fn get(&self, key: &str) -> io::Result<Option<Artifact>> {
        timed(Phase::Lookup, || self.get_untimed(key, true))
    }

    /// `get` from this machine's store only.
    pub fn get_here(&self, key: &str) -> io::Result<Option<Artifact>> {
        timed(Phase::Lookup, || self.get_untimed(key, false))
    }

    /// The output names of `key`'s entry in this machine's store, read without its blobs
    /// (unverified: for deciding whether to `get_here` it).
    pub fn names_here(&self, key: &str) -> Option<Vec<String>> {
        let entry = read_entry(&self.entry_path(key))?;
        Some(entry.outputs.into_iter().map(|o| o.name).collect())
    }

    fn get_untimed(&self, key: &str, remote: bool) -> io::Result<Option<Artifact>> {
        let path = self.entry_path(key);
        let entry: Entry = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(entry) => entry,
                Err(_) => return self.drop_entry(&path),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound && remote => {
                return self.fetch_remote(key);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !entry.is_for(key) {
            return self.drop_entry(&path);
        }
        let Some(artifact) = entry.assemble(|blob| self.read_blob(blob))? else {
            return self.drop_entry(&path);
        };
        // Mark as recently used for the trim.
        let _ = fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Ok(Some(artifact))
    }

    /// The artifacts of `keys`, in order, each verified as `get`'s: this machine's store
    /// first, then the entries it lacks asked of the remote tier in one batch (one round
    /// trip on Redis), whose blobs are fetched after (none for empty ones).
    pub fn get_many(&self, keys: &[String]) -> io::Result<Vec<Option<Artifact>>> {
        let mut found = keys
            .iter()
            .map(|key| self.get_untimed(key, false))
            .collect::<io::Result<Vec<_>>>()?;
        let Some(remote) = &self.remote else {
            return Ok(found);
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|i| found[*i].is_none()).collect();
        let asked: Vec<String> = missing
            .iter()
            .map(|i| format!("entry:{}", keys[*i]))
            .collect();
        let values = remote.get_many(&asked, MAX_ENTRY_BYTES);
        for (i, value) in missing.into_iter().zip(values) {
            found[i] = match value {
                Some(bytes) => self.take_remote(remote, &keys[i], &bytes)?,
                None => {
                    remote.counts.misses.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
        }
        Ok(found)
    }

    /// Stores each artifact under its key here, then sends them all to the remote tier at
    /// once, waiting (each remote call bounded): many small entries at a command's end.
    pub fn put_many(&self, items: &[(String, Artifact)]) -> io::Result<()> {
        let mut uploads = Vec::new();
        for (key, artifact) in items {
            let (_, entry) = self.put_local(key, artifact)?;
            if let Some(remote) = self.remote.as_ref().filter(|r| !r.readonly()) {
                uploads.push(upload(key, entry, artifact, remote, self.level)?);
            }
        }
        if let Some(remote) = &self.remote {
            remote.send_now(&uploads);
        }
        Ok(())
    }

    /// `key` from the remote tier, verified (the entry names `key`, every blob hashes to
    /// its name) and then stored locally; `None` when absent, unreachable or refused.
    fn fetch_remote(&self, key: &str) -> io::Result<Option<Artifact>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let Some(bytes) = remote.get(&format!("entry:{key}"), MAX_ENTRY_BYTES) else {
            remote.counts.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        self.take_remote(remote, key, &bytes)
    }

    /// The remote entry `bytes` given for `key`, verified (it names `key`, is signed when
    /// the remote signs, every blob hashes to its name) and then stored locally; `None`
    /// when refused.
    fn take_remote(
        &self,
        remote: &Remote,
        key: &str,
        bytes: &[u8],
    ) -> io::Result<Option<Artifact>> {
        let counts = &remote.counts;
        let refuse = |why: &str| {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("remote entry {key:?} refused: {why}");
            Ok(None)
        };
        let Some(mut entry) = serde_json::from_slice::<Entry>(bytes)
            .ok()
            .filter(|e| e.is_for(key))
        else {
            return refuse("not an entry for this key, or names that are not plain file names");
        };
        let mac = entry.mac.take();
        if remote.signs() {
            let unsigned = serde_json::to_vec(&entry).map_err(io::Error::other)?;
            if !remote.signature_holds(&unsigned, mac.as_deref()) {
                return refuse("unsigned or badly signed (ZCCACHE_REMOTE_KEY is set)");
            }
        }
        let fetched = entry.assemble(|blob| {
            if blob.size == 0 {
                return Ok(blob_codec::decode(Vec::new(), 0, blob.blob));
            }
            let stored = remote.get(&format!("blob:{}", blob.blob.to_hex()), blob.size);
            Ok(stored.and_then(|bytes| blob_codec::decode(bytes, blob.size, blob.blob)))
        })?;
        let Some(artifact) = fetched else {
            return refuse("a blob is missing or not what its name says");
        };
        self.put_local(key, &artifact)?;
        counts.hits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(artifact))
    }

    /// What the store holds now (walks it).
    pub fn usage(&self) -> Usage {
        let entries = list(&self.entries).len() as u64;
        let bytes = self.blob_files().iter().map(|(_, size)| size).sum();
        Usage { entries, bytes }
    }

    /// Removes least recently used entries until the blobs fit in `max_bytes`, then every
    /// blob no entry names.
    pub fn trim(&self, max_bytes: u64) -> io::Result<Trimmed> {
        let mut entries: Vec<(SystemTime, PathBuf)> = list(&self.entries)
            .into_iter()
            .map(|p| {
                (
                    fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    p,
                )
            })
            .collect();
        entries.sort();
        let on_disk = self.blob_sizes();
        let mut total: u64 = on_disk.values().sum();
        let mut trimmed = Trimmed::default();
        let mut kept: Vec<PathBuf> = Vec::new();
        for (_, path) in entries {
            if total > max_bytes {
                let named = read_entry(&path)
                    .map(|e| e.blobs().filter_map(|d| on_disk.get(&d)).sum())
                    .unwrap_or(0);
                let _ = fs::remove_file(&path);
                trimmed.entries += 1;
                total = total.saturating_sub(named);
            } else {
                kept.push(path);
            }
        }
        trimmed.bytes = self.sweep(&kept)?;
        Ok(trimmed)
    }

    /// The entries whose key starts with `prefix`: key, outputs (name, size) and last use.
    pub fn entries_under(&self, prefix: &str) -> Vec<Listed> {
        list(&self.entries)
            .into_iter()
            .filter_map(|path| {
                let entry = read_entry(&path).filter(|e| e.key.starts_with(prefix))?;
                let last_use = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                Some(Listed {
                    outputs: entry
                        .outputs
                        .iter()
                        .map(|o| (o.name.clone(), o.size))
                        .collect(),
                    key: entry.key,
                    last_use,
                })
            })
            .collect()
    }

    /// Removes everything.
    pub fn clear(&self) -> io::Result<Trimmed> {
        if let Some(memo) = &self.memo {
            memo.clear();
        }
        let usage = self.usage();
        for dir in [&self.entries, &self.blobs] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(Trimmed {
            entries: usage.entries,
            bytes: usage.bytes,
        })
    }

    /// What the store holds, with the uncompressed size of the blobs its entries name, in
    /// one walk (reads every entry: for `status`).
    pub fn packed(&self) -> Packed {
        let on_disk = self.blob_sizes();
        let entries = list(&self.entries);
        let mut raw: HashMap<Digest, u64> = HashMap::new();
        for entry in entries.iter().filter_map(|p| read_entry(p)) {
            for o in entry.outputs.iter().chain([&entry.stdout, &entry.stderr]) {
                raw.insert(o.blob, o.size);
            }
        }
        Packed {
            entries: entries.len() as u64,
            on_disk: on_disk.values().sum(),
            raw: raw
                .iter()
                .filter(|(d, _)| on_disk.contains_key(d))
                .map(|(_, size)| size)
                .sum(),
        }
    }

    /// Deletes blobs not named by the entries in `kept`; returns the bytes freed.
    fn sweep(&self, kept: &[PathBuf]) -> io::Result<u64> {
        let live: HashSet<Digest> = kept
            .iter()
            .filter_map(|p| read_entry(p))
            .flat_map(|e| e.blobs().collect::<Vec<_>>())
            .collect();
        let mut freed = 0;
        for (path, size) in self.blob_files() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Digest::from_hex);
            if name.is_none_or(|d| !live.contains(&d)) {
                fs::remove_file(&path)?;
                freed += size;
            }
        }
        Ok(freed)
    }

    /// Each blob's size on disk, by name.
    fn blob_sizes(&self) -> HashMap<Digest, u64> {
        self.blob_files()
            .into_iter()
            .filter_map(|(path, size)| {
                let name = path.file_name()?.to_str()?;
                Some((Digest::from_hex(name)?, size))
            })
            .collect()
    }

    fn blob_files(&self) -> Vec<(PathBuf, u64)> {
        list(&self.blobs)
            .into_iter()
            .flat_map(|shard| list(&shard))
            .filter_map(|p| fs::metadata(&p).ok().map(|m| (p, m.len())))
            .collect()
    }

    /// Writes a blob unless one is there (a stored form is never larger than the blob, and
    /// every read verifies it); returns its digest and the bytes written to disk.
    fn write_blob(&self, bytes: &[u8]) -> io::Result<(Digest, u64)> {
        let digest = Digest::of(bytes);
        if let Some(memo) = &self.memo {
            memo.put(digest, bytes);
        }
        let path = self.blob_path(digest);
        let there = |len: u64| len <= bytes.len() as u64 && (len > 0 || bytes.is_empty());
        if fs::metadata(&path).is_ok_and(|m| there(m.len())) {
            return Ok((digest, 0));
        }
        if let Some(shard) = path.parent() {
            fs::create_dir_all(shard)?;
        }
        let stored = blob_codec::encode(bytes, self.level);
        write_file_atomic(&path, &stored, false)?;
        Ok((digest, stored.len() as u64))
    }

    /// A blob's bytes if it is intact; a corrupted blob is removed.
    fn read_blob(&self, output: &OutputRef) -> io::Result<Option<Vec<u8>>> {
        if output.size == 0 && output.blob == Digest::of(b"") {
            return Ok(Some(Vec::new()));
        }
        let memo = self.memo.as_deref();
        if let Some(bytes) = memo.and_then(|m| m.get(output.blob))
            && bytes.len() as u64 == output.size
        {
            return Ok(Some(bytes.to_vec()));
        }
        let path = self.blob_path(output.blob);
        let stored = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(bytes) = blob_codec::decode(stored, output.size, output.blob) else {
            let _ = fs::remove_file(&path);
            return Ok(None);
        };
        if let Some(memo) = memo {
            memo.put(output.blob, &bytes);
        }
        Ok(Some(bytes))
    }

    fn drop_entry(&self, path: &Path) -> io::Result<Option<Artifact>> {
        let _ = fs::remove_file(path);
        Ok(None)
    }

    fn blob_path(&self, digest: Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.entries
            .join(format!("{}.json", Digest::of(key.as_bytes()).to_hex()))
    }
}

/// The upload of a stored entry: every blob it names, then the entry (signed when the
/// remote signs).
fn upload(
    key: &str,
    mut entry: Entry,
    artifact: &Artifact,
    remote: &Remote,
    level: Option<i32>,
) -> io::Result<Upload> {
    let stored = |r: &OutputRef, bytes: &[u8]| {
        (
            r.blob.to_hex(),
            blob_codec::encode(bytes, level).into_owned(),
        )
    };
    let mut blobs: Vec<(String, Vec<u8>)> = entry
        .outputs
        .iter()
        .zip(&artifact.outputs)
        .map(|(r, (_, bytes))| stored(r, bytes))
        .collect();
    blobs.push(stored(&entry.stdout, &artifact.stdout));
    blobs.push(stored(&entry.stderr, &artifact.stderr));
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);
    entry.mac = remote.sign(&serde_json::to_vec(&entry).map_err(io::Error::other)?);
    Ok(Upload {
        key: key.to_string(),
        entry: serde_json::to_vec(&entry).map_err(io::Error::other)?,
        blobs,
    })
}

impl Entry {
    /// The blobs this entry names.
    fn blobs(&self) -> impl Iterator<Item = Digest> + '_ {
        self.outputs
            .iter()
            .chain([&self.stdout, &self.stderr])
            .map(|o| o.blob)
    }

    /// True when this entry is of this format, was written for `key`, and is sound: every
    /// output name a plain file name (names are data: `side:../../x` or `/etc/x` never
    /// become paths) and every size within the caps.
    fn is_for(&self, key: &str) -> bool {
        let plain = |name: &str| {
            let last = name.rsplit(':').next().unwrap_or(name);
            !name.is_empty() && !name.contains(['/', '\0']) && !matches!(last, "" | "." | "..")
        };
        let sizes: Vec<u64> = self
            .outputs
            .iter()
            .chain([&self.stdout, &self.stderr])
            .map(|o| o.size)
            .collect();
        self.version == ENTRY_VERSION
            && self.key == key
            && self.outputs.iter().all(|o| plain(&o.name))
            && sizes.iter().all(|s| *s <= MAX_BLOB_BYTES)
            && sizes.iter().sum::<u64>() <= MAX_ARTIFACT_BYTES
    }

    /// The artifact this entry names, each blob from `read` (`None`: one is missing or
    /// not what its name says).
    fn assemble(
        &self,
        mut read: impl FnMut(&OutputRef) -> io::Result<Option<Vec<u8>>>,
    ) -> io::Result<Option<Artifact>> {
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for output in &self.outputs {
            let Some(bytes) = read(output)? else {
                return Ok(None);
            };
            outputs.push((output.name.clone(), bytes));
        }
        let (Some(stdout), Some(stderr)) = (read(&self.stdout)?, read(&self.stderr)?) else {
            return Ok(None);
        };
        Ok(Some(Artifact {
            outputs,
            stdout,
            stderr,
            exit_code: self.exit_code,
        }))
    }
}

fn read_entry(path: &Path) -> Option<Entry> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn list(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(data: &[u8]) -> Artifact {
        Artifact {
            outputs: vec![("a.o".into(), data.to_vec())],
            stdout: b"out".to_vec(),
            stderr: vec![],
            exit_code: 0,
        }
    }

    #[test]
    fn put_get_round_trip_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.put("k1", &artifact(b"same")).unwrap() > 0);
        assert_eq!(store.put("k2", &artifact(b"same")).unwrap(), 0);
        assert_eq!(store.get("k1").unwrap(), Some(artifact(b"same")));
        assert_eq!(store.get("nope").unwrap(), None);
    }

    #[test]
    fn corrupted_blob_is_a_miss_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.put("k", &artifact(b"object bytes")).unwrap();
        let blob = store.blob_path(Digest::of(b"object bytes"));
        fs::write(&blob, b"object bytez").unwrap();
        assert_eq!(store.get("k").unwrap(), None);
        assert!(!blob.exists());
        assert_eq!(store.get("k").unwrap(), None);
    }

    #[test]
    fn trim_drops_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).with_compression(None);
        for (key, byte) in [("old", b'a'), ("mid", b'b'), ("new", b'c')] {
            store.put(key, &artifact(&[byte; 1000])).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        store.get("old").unwrap();
        let trimmed = store.trim(2100).unwrap();
        assert_eq!(trimmed.entries, 1);
        assert!(store.get("mid").unwrap().is_none());
        assert!(store.get("old").unwrap().is_some());
        assert!(store.get("new").unwrap().is_some());
        assert!(store.usage().bytes <= 2100);
    }

    #[test]
    fn the_bound_counts_bytes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).with_compression(Some(1));
        for (key, byte) in [("a", b'a'), ("b", b'b'), ("c", b'c')] {
            store.put(key, &artifact(&[byte; 100_000])).unwrap();
        }
        let packed = store.packed();
        assert_eq!(packed.raw, 300_000 + b"out".len() as u64);
        assert!(packed.on_disk < 3_000, "{packed:?}");
        assert_eq!(store.trim(10_000).unwrap().entries, 0);
        for key in ["a", "b", "c"] {
            assert!(store.get(key).unwrap().is_some());
        }
    }
}
