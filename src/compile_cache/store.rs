//! The artifact store: content-addressed blobs under `ZCCACHE_DIR/artifacts/blobs/` and one
//! entry file per key under `artifacts/entries/` naming the blobs of an artifact.
//!
//! Every write is atomic (temp file + rename), so a reader sees a whole entry or none; an
//! entry is written only after all its blobs. Every blob is verified against its name when
//! read: a corrupted one is removed and the lookup is a miss, never a bad delivery. Entry
//! files' mtimes record use, and the store is trimmed least recently used first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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
    /// Bytes of blobs.
    pub bytes: u64,
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
}

impl Store {
    /// The store under the state directory `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        let root = dir.join("artifacts");
        Store {
            blobs: root.join("blobs"),
            entries: root.join("entries"),
            remote: None,
        }
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
            remote.upload(upload(key, entry, artifact, remote)?);
        }
        Ok(written)
    }

    fn put_local(&self, key: &str, artifact: &Artifact) -> io::Result<(u64, Entry)> {
        let mut written = 0;
        let mut blob = |name: &str, bytes: &[u8]| -> io::Result<OutputRef> {
            let (digest, fresh) = self.write_blob(bytes)?;
            if fresh {
                written += bytes.len() as u64;
            }
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
                uploads.push(upload(key, entry, artifact, remote)?);
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
                return Ok(Some(Vec::new()).filter(|b| blob.holds(b)));
            }
            let bytes = remote.get(&format!("blob:{}", blob.blob.to_hex()), blob.size);
            Ok(bytes.filter(|b| blob.holds(b)))
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
        let mut total: u64 = self.blob_files().iter().map(|(_, size)| size).sum();
        let mut trimmed = Trimmed::default();
        let mut kept: Vec<PathBuf> = Vec::new();
        for (_, path) in entries {
            if total > max_bytes {
                let named = read_entry(&path).map(|e| entry_size(&e)).unwrap_or(0);
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

    /// Deletes blobs not named by the entries in `kept`; returns the bytes freed.
    fn sweep(&self, kept: &[PathBuf]) -> io::Result<u64> {
        let live: std::collections::HashSet<Digest> = kept
            .iter()
            .filter_map(|p| read_entry(p))
            .flat_map(|e| {
                let mut refs: Vec<Digest> = e.outputs.iter().map(|o| o.blob).collect();
                refs.push(e.stdout.blob);
                refs.push(e.stderr.blob);
                refs
            })
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

    fn blob_files(&self) -> Vec<(PathBuf, u64)> {
        list(&self.blobs)
            .into_iter()
            .flat_map(|shard| list(&shard))
            .filter_map(|p| fs::metadata(&p).ok().map(|m| (p, m.len())))
            .collect()
    }

    /// Writes a blob unless an intact one is there; returns its digest and whether it was new.
    fn write_blob(&self, bytes: &[u8]) -> io::Result<(Digest, bool)> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(digest);
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok((digest, false));
        }
        if let Some(shard) = path.parent() {
            fs::create_dir_all(shard)?;
        }
        write_file_atomic(&path, bytes, false)?;
        Ok((digest, true))
    }

    /// A blob's bytes if it is intact; a corrupted blob is removed.
    fn read_blob(&self, output: &OutputRef) -> io::Result<Option<Vec<u8>>> {
        if output.size == 0 && output.blob == Digest::of(b"") {
            return Ok(Some(Vec::new()));
        }
        let path = self.blob_path(output.blob);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !output.holds(&bytes) {
            let _ = fs::remove_file(&path);
            return Ok(None);
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
fn upload(key: &str, mut entry: Entry, artifact: &Artifact, remote: &Remote) -> io::Result<Upload> {
    let mut blobs: Vec<(String, Vec<u8>)> = entry
        .outputs
        .iter()
        .zip(&artifact.outputs)
        .map(|(r, (_, bytes))| (r.blob.to_hex(), bytes.clone()))
        .collect();
    blobs.push((entry.stdout.blob.to_hex(), artifact.stdout.clone()));
    blobs.push((entry.stderr.blob.to_hex(), artifact.stderr.clone()));
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);
    entry.mac = remote.sign(&serde_json::to_vec(&entry).map_err(io::Error::other)?);
    Ok(Upload {
        key: key.to_string(),
        entry: serde_json::to_vec(&entry).map_err(io::Error::other)?,
        blobs,
    })
}

impl OutputRef {
    /// True when `bytes` are this blob: its size, and blake3 matching its name.
    fn holds(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.size && Digest::of(bytes) == self.blob
    }
}

impl Entry {
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

fn entry_size(entry: &Entry) -> u64 {
    entry.outputs.iter().map(|o| o.size).sum::<u64>() + entry.stdout.size + entry.stderr.size
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
        let store = Store::new(dir.path());
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
}
