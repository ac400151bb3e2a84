//! The runner's own files beside a cache file `F`: `F.run` (per successful key: output
//! digests and whether a replay was captured; the rustup memo), `F.replay/` (captured
//! stdout/stderr per key). Losing any of them costs a rerun, never a wrong skip. They are
//! read as the fingerprint state is (`read_state_file`): a symlink or FIFO planted in their
//! place is unreadable, never followed.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::output_entry::OutputDigests;
use super::outputs::Stamps;
use super::tool::RustupMemo;
use crate::fingerprint::{Digest, MAX_SUCCESSES, read_state_file, write_file_atomic};
use crate::paths::with_suffix;

const VERSION: u32 = 2;

/// What the runner remembers about one successful key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The fingerprint key of the successful run.
    pub key: Digest,
    /// Digests of the declared outputs right after it.
    pub outputs: OutputDigests,
    /// Whether its stdout/stderr were captured for replay.
    pub replay: bool,
    /// Whether the outputs' files went into the artifact store (so they can be restored).
    #[serde(default)]
    pub stored: bool,
    /// Stamps of settled output files, so a skip need not read them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamps: Stamps,
}

/// The content of `F.run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    version: u32,
    /// Most recent first, at most as many as the fingerprint state keeps.
    pub keys: Vec<KeyRecord>,
    /// The last `rustup which` answer.
    pub rustup: Option<RustupMemo>,
    /// The last `rustup which` answer for each program a `sh -c` script starts, by key part.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub script_rustup: BTreeMap<String, RustupMemo>,
}

impl Default for RunRecord {
    fn default() -> Self {
        RunRecord {
            version: VERSION,
            keys: Vec::new(),
            rustup: None,
            script_rustup: BTreeMap::new(),
        }
    }
}

impl RunRecord {
    /// The record of `key`, if any.
    pub fn get(&self, key: Digest) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.key == key)
    }

    /// Puts `record` first; returns the keys pushed out of the list.
    pub fn insert(&mut self, record: KeyRecord) -> Vec<Digest> {
        self.keys.retain(|k| k.key != record.key);
        self.keys.insert(0, record);
        let dropped = self.keys.split_off(self.keys.len().min(MAX_SUCCESSES));
        dropped.into_iter().map(|k| k.key).collect()
    }
}

/// Where the runner's files for one cache file live.
#[derive(Debug, Clone)]
pub struct RunFiles {
    record: PathBuf,
    replay_dir: PathBuf,
    /// The decision ledger, `F.log`.
    pub ledger: PathBuf,
}

impl RunFiles {
    /// The companions of cache file `cache` (absolute).
    pub fn new(cache: &Path) -> Self {
        RunFiles {
            record: with_suffix(cache, ".run"),
            replay_dir: with_suffix(cache, ".replay"),
            ledger: with_suffix(cache, ".log"),
        }
    }

    /// Loads `F.run`; anything unreadable is an empty record.
    pub fn load(&self) -> RunRecord {
        read_state_file(&self.record)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<RunRecord>(&bytes).ok())
            .filter(|r| r.version == VERSION)
            .unwrap_or_default()
    }

    /// Writes `F.run`.
    pub fn save(&self, record: &RunRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        write_file_atomic(&self.record, &bytes, false)
    }

    /// Stores the captured streams of a successful run.
    pub fn save_replay(&self, key: Digest, stdout: &[u8], stderr: &[u8]) -> io::Result<()> {
        std::fs::create_dir_all(&self.replay_dir)?;
        self.replay_dir_is_real()?;
        let (out, err) = self.replay_paths(key);
        write_file_atomic(&out, stdout, false)?;
        write_file_atomic(&err, stderr, false)
    }

    /// The captured streams of `key`, if both are there.
    pub fn load_replay(&self, key: Digest) -> Option<(Vec<u8>, Vec<u8>)> {
        self.replay_dir_is_real().ok()?;
        let (out, err) = self.replay_paths(key);
        let read = |path| read_state_file(path).ok().flatten();
        Some((read(&out)?, read(&err)?))
    }

    /// `F.replay` must be a directory itself, not a symlink to one elsewhere.
    fn replay_dir_is_real(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.replay_dir)?.is_dir() {
            true => Ok(()),
            false => Err(io::Error::other(format!(
                "{} is not a directory",
                self.replay_dir.display()
            ))),
        }
    }

    /// Deletes the captured streams of `key`.
    pub fn remove_replay(&self, key: Digest) {
        let (out, err) = self.replay_paths(key);
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
    }

    fn replay_paths(&self, key: Digest) -> (PathBuf, PathBuf) {
        let hex = key.to_hex();
        (
            self.replay_dir.join(format!("{hex}.stdout")),
            self.replay_dir.join(format!("{hex}.stderr")),
        )
    }
}
