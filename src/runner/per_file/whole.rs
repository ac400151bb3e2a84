//! A per-file task's check through the daemon, in one round trip: the skip where nothing
//! changed (without reading the per-file record), else the per-file set as the daemon
//! holds it (no walk or stat of it here).
//!
//! After a check or run in which every per-file file passed, `F.files.all` remembers the
//! pair (task key, per-file set key): the task's key (command, tool, env, shared inputs) and
//! the input-set key of the per-file files (their paths and contents), made from the very
//! entries that were judged. The next check asks the daemon (`PerFileCheck`) for the task's
//! check and for the per-file set as it watches it (under a state name of its own,
//! `F.files.set`, which a dry check never writes), passing the remembered pairs: a pair it
//! finds is a skip; otherwise its answer carries the set's table, whose digests the files
//! are judged by. Both keys name contents, not times: a file edited and back again still
//! skips, and a file edited while its batch ran never enters a pair with bytes that did
//! not pass.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::daemon::client;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Request, Response};
use crate::fingerprint::{
    Digest, MAX_SUCCESSES, Table, decode_table, read_state_file, write_file_atomic,
};
use crate::paths::with_suffix;
use crate::runner::check::{self, Answer};
use crate::runner::spec::{PerFile, RunSpec};

const MAGIC: &[u8] = b"zccache per-file all v2\n";

/// The daemon's answers for the task's check (`shared`) and for its per-file set (`set`),
/// and the set's table; `None` where it could not answer (no daemon running: the task
/// checks by itself).
#[derive(Default)]
pub struct Asked {
    /// The task's check: its key and how to record it.
    pub shared: Option<Answer>,
    /// The per-file set's check: its `files_key` and `files` count serve.
    pub set: Option<Answer>,
    /// The per-file set's table, unless every file passed.
    pub table: Option<Table>,
    /// Whether a daemon answered at all.
    pub running: bool,
    /// The remembered (task key, set key) pairs under which every file passed, as read for
    /// the question.
    passed: Vec<(Digest, Digest)>,
}

impl Asked {
    /// True when every per-file file passed with the task's and the set's keys as checked.
    pub fn all_passed(&self) -> bool {
        match (&self.shared, &self.set) {
            (Some(shared), Some(set)) => self
                .passed
                .contains(&(shared.decision.key, set.decision.files_key)),
            _ => false,
        }
    }
}

/// A connection to the running daemon; `None` when none runs (or it is disabled).
pub fn running_daemon() -> Option<client::Client> {
    let paths = DaemonPaths::from_env().ok()?;
    client::Client::connect(&paths).ok()
}

/// Asks the daemon `daemon`, in one round trip, for the task's check with `parts` and for
/// the per-file set (its key, and its table unless a remembered pair says every file
/// passed).
pub fn ask(
    mut daemon: client::Client,
    spec: &RunSpec,
    per_file: &PerFile,
    parts: &BTreeMap<String, Digest>,
    dry_run: bool,
) -> Asked {
    let mut set = spec.clone();
    set.cache_file = set_state(&spec.cache_file);
    set.filter = per_file.filter.clone();
    let passed = load(&spec.cache_file);
    let request = Request::PerFileCheck {
        task: check::daemon_spec(spec, parts, dry_run),
        set: check::daemon_spec(&set, &BTreeMap::new(), true),
        passed: passed
            .iter()
            .map(|(task, set)| (task.to_hex(), set.to_hex()))
            .collect(),
    };
    match daemon.request(&request) {
        Ok(Response::PerFileChecked { task, set, table }) => Asked {
            shared: check::answer_of(task),
            set: check::answer_of(set),
            // Bytes that do not decode are no table: the set is walked here.
            table: table.and_then(|blob| decode_table(&blob.0)),
            running: true,
            passed,
        },
        // A daemon answered otherwise (another version, say): the task's check asks again.
        Ok(_) | Err(_) => Asked {
            running: true,
            ..Asked::default()
        },
    }
}

/// A daemon a run starts for the checks after it (the run does not wait on its start and
/// first walks, only joins it before exiting; a first run's is started by the process that
/// writes its record).
#[derive(Debug, Default)]
pub enum DaemonStart {
    /// None: one runs, or none is to start.
    #[default]
    None,
    /// To start once a first run's record is written: started earlier, it would take CPU
    /// from the walk of the set and from the command (1.5-2.5 ms of a 30 ms ruff run on 2
    /// CPUs).
    AfterRecord,
    /// Starting in a thread of its own.
    Starting(std::thread::JoinHandle<()>),
}

impl DaemonStart {
    /// Starts one now, in a thread of its own.
    pub fn now() -> Self {
        let Ok(paths) = DaemonPaths::from_env() else {
            return DaemonStart::None;
        };
        let start = move || drop(client::Client::start_unless_starting(&paths));
        let thread = std::thread::Builder::new()
            .name("daemon-start".into())
            .spawn(start);
        thread.map_or(DaemonStart::None, DaemonStart::Starting)
    }

    /// Starts it now if it was to start once the record is written.
    pub fn after_record(&mut self) {
        if matches!(self, DaemonStart::AfterRecord) {
            *self = DaemonStart::now();
        }
    }

    /// Waits until one that is starting is up; true if there was one.
    pub fn join(&mut self) -> bool {
        match std::mem::take(self) {
            DaemonStart::Starting(thread) => {
                let _ = thread.join();
                true
            }
            _ => false,
        }
    }
}

/// Remembers that every file of the per-file set keyed `set_key` passed under `task_key`
/// (the last few such pairs are kept, most recent first).
pub fn remember(cache_file: &Path, task_key: Digest, set_key: Digest) -> io::Result<()> {
    let new = (task_key, set_key);
    let mut pairs = load(cache_file);
    if pairs.first() == Some(&new) {
        return Ok(());
    }
    pairs.retain(|p| *p != new);
    pairs.insert(0, new);
    pairs.truncate(MAX_SUCCESSES);
    let mut bytes = MAGIC.to_vec();
    for (task, set) in &pairs {
        bytes.extend_from_slice(&task.0);
        bytes.extend_from_slice(&set.0);
    }
    write_file_atomic(&path_of(cache_file), &bytes, false)
}

/// `F.files.all`.
fn path_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.all")
}

/// `F.files.set`: the daemon's name for the per-file set's index.
fn set_state(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.set")
}

/// The remembered pairs (task key, set key); anything unreadable is none (a miss, never a
/// false skip).
fn load(cache_file: &Path) -> Vec<(Digest, Digest)> {
    let Ok(Some(bytes)) = read_state_file(&path_of(cache_file)) else {
        return Vec::new();
    };
    let Some(body) = bytes.strip_prefix(MAGIC) else {
        return Vec::new();
    };
    if !body.len().is_multiple_of(64) {
        return Vec::new();
    }
    body.chunks_exact(64)
        .filter_map(|c| {
            let (task, set) = c.split_at(32);
            Some((Digest(task.try_into().ok()?), Digest(set.try_into().ok()?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_remembered_most_recent_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.json");
        let (a, b) = (Digest([1; 32]), Digest([2; 32]));
        assert!(load(&file).is_empty());
        remember(&file, a, b).unwrap();
        assert_eq!(load(&file), [(a, b)]);
        for i in 0..(MAX_SUCCESSES as u8 + 3) {
            remember(&file, Digest([i + 10; 32]), b).unwrap();
        }
        assert_eq!(load(&file).len(), MAX_SUCCESSES);
        assert!(
            !load(&file).contains(&(a, b)),
            "the oldest pair is forgotten"
        );
        std::fs::write(path_of(&file), b"garbage").unwrap();
        assert!(load(&file).is_empty());
        let mut cut = MAGIC.to_vec();
        cut.extend_from_slice(&[0; 40]);
        std::fs::write(path_of(&file), cut).unwrap();
        assert!(load(&file).is_empty(), "a cut pair is no pair");
    }
}
