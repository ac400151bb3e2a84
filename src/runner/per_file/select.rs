//! Which of a per-file task's files have not passed: each file's content digest (from the
//! working tree through the engine's stat table, so an unchanged file is not read again; or
//! from git's index with `--staged`), its key under the task's key, and why it must run.

use std::sync::Arc;

use rayon::prelude::*;

use super::state::{FilesRecord, blobs_of, file_key};
use crate::fingerprint::{
    Digest, Entry, Filter, OwnState, RACY_WINDOW_NS, Stat, Table, Walked, Walking, hash_entry,
    now_ns, refresh, scan_with, staged_entries,
};
use crate::runner::spec::{PerFile, RunSpec};

/// Why a file is given to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// It never passed (a new file, or a new task).
    New,
    /// Its content is not what last passed.
    Edited,
    /// It failed last time with this very content.
    Failed,
    /// It passed with this content, but under other shared inputs, command, tool or env.
    SharedChanged,
    /// `--force`.
    Forced,
}

impl Why {
    /// The words for messages.
    pub fn text(self) -> &'static str {
        match self {
            Why::New => "new",
            Why::Edited => "edited",
            Why::Failed => "failed last time",
            Why::SharedChanged => "shared inputs changed",
            Why::Forced => "forced",
        }
    }
}

/// One file to give to the command: its entry (content before the run) and why.
#[derive(Debug, Clone)]
pub struct Unpassed {
    /// Path, metadata and content digest as the check saw them.
    pub entry: Entry,
    /// Why it runs.
    pub why: Why,
    /// Its pass key under the task's key, when the judgement worked it out (a pass records
    /// it, instead of working it out again for each of thousands of files).
    pub key: Option<Digest>,
}

impl Unpassed {
    /// Its pass key under `task_key`.
    pub fn key_under(&self, task_key: Digest) -> Digest {
        self.key
            .unwrap_or_else(|| file_key(task_key, &self.entry.path, self.entry.hash))
    }
}

/// The per-file set now: its entries (sorted by path), the stat table to keep (working tree
/// only) and when it was scanned.
pub struct Current {
    /// The files with their content digests.
    pub entries: Vec<Entry>,
    /// The table to store in `F.files` (`None` with `--staged`).
    pub table: Option<Table>,
    /// How many files were read.
    pub rehashed: usize,
}

/// Reads the per-file set of `spec`, reusing `previous`'s digests where the metadata match.
/// With `--staged`, the index's content; `save_blobs` lets the blob memo be written.
pub fn current(
    spec: &RunSpec,
    per_file: &PerFile,
    previous: Option<&Table>,
    save_blobs: bool,
) -> Result<Current, String> {
    let filter = Filter::compiled(&per_file.filter).map_err(|e| e.to_string())?;
    if spec.staged {
        let memo = blobs_of(&spec.cache_file);
        let (entries, rehashed) =
            staged_entries(&spec.root, &filter, &memo, save_blobs).map_err(|e| e.to_string())?;
        return Ok(Current {
            entries,
            table: None,
            rehashed,
        });
    }
    let scanned_at = now_ns();
    let walked = walk(spec, filter, Walking::Own)?;
    let refreshed = refresh(&spec.root, walked.files, previous, scanned_at, None);
    let refreshed = refreshed.map_err(|e| e.to_string())?;
    Ok(Current {
        entries: refreshed.table.entries.clone(),
        table: Some(refreshed.table),
        rehashed: refreshed.rehashed,
    })
}

/// Walks the per-file set of `spec` (`filter`, compiled) by zccache's own walk (`Own`, or
/// `OwnUnstamped` for a first run), as lint sets are some thousands of files at most.
pub fn walk(spec: &RunSpec, filter: Arc<Filter>, walking: Walking) -> Result<Walked, String> {
    let own = OwnState::of(&spec.cache_file);
    let filter = (filter, own);
    scan_with(&spec.root, &spec.root, None, filter, walking).map_err(|e| e.to_string())
}

/// Every file of `entries`, to run for the same reason `why`.
pub fn all_unpassed(entries: &[Entry], why: Why) -> Vec<Unpassed> {
    // Side by side: a first run's 2,000 copies took 0.2 ms before its command started.
    entries
        .par_iter()
        .map(|entry| Unpassed {
            entry: entry.clone(),
            why,
            key: None,
        })
        .collect()
}

/// The files of `entries` that have not passed under `task_key`, with why.
pub fn unpassed(record: &FilesRecord, task_key: Digest, entries: &[Entry]) -> Vec<Unpassed> {
    entries
        .iter()
        .filter_map(|entry| {
            let key = file_key(task_key, &entry.path, entry.hash);
            let known = record.paths.get(&entry.path);
            let why = match known {
                None => Why::New,
                Some(r) if r.keys.contains(&key) => return None,
                Some(r) if r.failed == Some(entry.hash) => Why::Failed,
                Some(r) if r.passed == Some(entry.hash) => Why::SharedChanged,
                Some(r) if r.passed.is_none() => Why::New,
                Some(_) => Why::Edited,
            };
            Some(Unpassed {
                entry: entry.clone(),
                why,
                key: Some(key),
            })
        })
        .collect()
}

/// True when `entry`'s file still holds the content the check saw, at `scanned_at` (ns):
/// the same metadata, and (unless they are older than the racy window) the same content
/// read again. Metadata that moved fail even with the same content: the file was written
/// meanwhile, so the command may have read other bytes (swapped in and back).
pub fn unchanged_since(spec: &RunSpec, entry: &Entry, scanned_at: i64) -> bool {
    let path = crate::relpath::join(&spec.root, &entry.path);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return false;
    };
    if Stat::of(&meta) != entry.stat {
        return false;
    }
    entry.stat.changed_ns() + RACY_WINDOW_NS < scanned_at
        || hash_entry(&path, entry.kind, meta.len()).is_ok_and(|hash| hash == entry.hash)
}
