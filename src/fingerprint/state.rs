//! State files: `F` (the successes and the stat table), `F.pending` (what the last check saw),
//! `F.zccache-lock` (an advisory lock serializing processes on one cache file, created
//! before anything else of `F` and never removed: it marks `F` as state, see `companions`),
//! `F.blobs` (the staged blobs' digests, see `blobs`).
//!
//! Writes are atomic (temp file, fsync, rename). Reads open the file without following a
//! symlink and read it only when it is a regular file ([`read_state_file`]): a link planted
//! there is never followed, a FIFO never hangs the check. Anything unreadable — a link, a
//! FIFO, empty, truncated, corrupt, another format or version — loads as
//! [`Loaded::Unreadable`], never a panic.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::FpError;
use super::companions::MARKER;
use super::hash::Digest;
use super::table::Table;
use crate::paths::with_suffix;

const FORMAT: &str = "zccache-fp";
const VERSION: u32 = 1;
/// How many successful keys are remembered (branch switches and stash round trips still skip).
pub const MAX_SUCCESSES: usize = 8;

/// One recorded success.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Success {
    /// The full key.
    pub key: Digest,
    /// The digest of each key part, to name what changed later.
    pub parts: BTreeMap<String, Digest>,
    /// When it was recorded, ms since the epoch.
    pub at_ms: u64,
}

/// The content of `F`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    format: String,
    version: u32,
    /// Successes, most recent first, at most [`MAX_SUCCESSES`].
    pub successes: Vec<Success>,
    /// The key of the last failed run, if it failed after the last success.
    pub last_failure: Option<Digest>,
    /// The stat table of the latest success or skip (`two-layer` only).
    pub table: Option<Table>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: FORMAT.to_string(),
            version: VERSION,
            successes: Vec::new(),
            last_failure: None,
            table: None,
        }
    }
}

/// The content of `F.pending`: what a check saw before the task ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    format: String,
    version: u32,
    /// The full key seen by the check.
    pub key: Digest,
    /// Its parts.
    pub parts: BTreeMap<String, Digest>,
    /// The table to keep if the run succeeds (absent on a skip or for `hash` caches).
    pub table: Option<Table>,
}

impl Pending {
    /// A pending record for `key`.
    pub fn new(key: Digest, parts: BTreeMap<String, Digest>, table: Option<Table>) -> Self {
        Pending {
            format: FORMAT.to_string(),
            version: VERSION,
            key,
            parts,
            table,
        }
    }
}

/// How `F` loaded.
#[derive(Debug)]
pub enum Loaded {
    /// No state yet.
    Fresh,
    /// A valid state.
    Ok(State),
    /// A state that cannot be used, and why.
    Unreadable(String),
}

impl Loaded {
    /// The state, or a fresh one when there is none usable.
    pub fn into_state(self) -> State {
        match self {
            Loaded::Ok(state) => state,
            _ => State::default(),
        }
    }
}

/// The files that belong to one cache file.
#[derive(Debug, Clone)]
pub struct StatePaths {
    /// `F`, absolute.
    pub file: PathBuf,
    /// `F.pending`.
    pub pending: PathBuf,
    /// `F.blobs`.
    pub blobs: PathBuf,
    lock: PathBuf,
}

impl StatePaths {
    /// Resolves `file` against the current directory and creates its parent directory.
    pub fn new(file: &Path) -> Result<Self, FpError> {
        Self::resolve(file, true)
    }

    /// Resolves `file` without creating anything (for read-only checks).
    pub fn existing(file: &Path) -> Result<Self, FpError> {
        Self::resolve(file, false)
    }

    fn resolve(file: &Path, create: bool) -> Result<Self, FpError> {
        let cwd = std::env::current_dir().map_err(|e| FpError::io("read cwd", ".", e))?;
        let file = cwd.join(file);
        let name = file
            .file_name()
            .ok_or_else(|| FpError::io("use", &file, io::Error::other("not a file name")))?
            .to_os_string();
        let parent = file.parent().unwrap_or(Path::new("/"));
        if create {
            std::fs::create_dir_all(parent).map_err(|e| FpError::io("create", parent, e))?;
        }
        let parent = match std::fs::canonicalize(parent) {
            Ok(resolved) => resolved,
            Err(e) if create || e.kind() != io::ErrorKind::NotFound => {
                return Err(FpError::io("resolve", parent, e));
            }
            Err(_) => parent.to_path_buf(),
        };
        let file = parent.join(&name);
        Ok(StatePaths {
            pending: with_suffix(&file, ".pending"),
            blobs: with_suffix(&file, ".blobs"),
            lock: with_suffix(&file, MARKER),
            file,
        })
    }

    /// Takes the advisory lock; it is released when the guard drops.
    pub fn lock(&self) -> Result<File, FpError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.lock)
            .map_err(|e| FpError::io("open", &self.lock, e))?;
        wait_for_lock(&file, true).map_err(|e| FpError::io("lock", &self.lock, e))?;
        Ok(file)
    }

    /// Takes the lock if its file exists, creating nothing (`None`: there is no state yet).
    pub fn lock_existing(&self) -> Result<Option<File>, FpError> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.lock);
        match opened {
            Ok(file) => {
                wait_for_lock(&file, false).map_err(|e| FpError::io("lock", &self.lock, e))?;
                Ok(Some(file))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FpError::io("open", &self.lock, e)),
        }
    }

    /// Loads `F`.
    pub fn load(&self) -> Loaded {
        match read_json::<State>(&self.file) {
            Ok(None) => Loaded::Fresh,
            Ok(Some(state)) if state.format == FORMAT && state.version == VERSION => {
                Loaded::Ok(state)
            }
            Ok(Some(_)) => Loaded::Unreadable("another format or version".to_string()),
            Err(why) => Loaded::Unreadable(why),
        }
    }

    /// Loads `F.pending`; `None` when there is none (or it is unusable).
    pub fn load_pending(&self) -> Option<Pending> {
        match read_json::<Pending>(&self.pending) {
            Ok(Some(p)) if p.format == FORMAT && p.version == VERSION => Some(p),
            _ => None,
        }
    }

    /// Writes `F` atomically.
    pub fn save(&self, state: &State) -> Result<(), FpError> {
        write_json_atomic(&self.file, state, true)
    }

    /// Writes `F.pending` atomically.
    pub fn save_pending(&self, pending: &Pending) -> Result<(), FpError> {
        // Not fsynced: it lives for one task run, and losing it costs a rerun, never a skip.
        write_json_atomic(&self.pending, pending, false)
    }

    /// Removes `F.pending` if present.
    pub fn remove_pending(&self) -> Result<(), FpError> {
        remove_if_present(&self.pending)
    }

    /// Removes `F` and `F.pending`.
    pub fn remove_all(&self) -> Result<(), FpError> {
        remove_if_present(&self.file)?;
        remove_if_present(&self.pending)?;
        // A per-file task's passes (`F.files`, `F.files.all`) and its stat table.
        for suffix in PER_FILE_RECORDS {
            remove_if_present(&crate::paths::with_suffix(&self.file, suffix))?;
        }
        Ok(())
    }
}

/// What a per-file task records beside its state file, forgotten with it.
const PER_FILE_RECORDS: [&str; 3] = [".files", ".files.all", ".files.table"];

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let bytes = match read_state_file(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if bytes.is_empty() {
        return Err("empty file".to_string());
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("corrupt file ({e})"))
}

/// The bytes of the state file `path` (`None`: there is none), opened without following a
/// symlink and without blocking, and read only when it is a regular file. A symlink, FIFO,
/// socket or device there is an error: never followed, waited on or read.
pub fn read_state_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    read_state_file_at_most(path, u64::MAX)
}

/// `read_state_file` of a file of at most `max` bytes: a larger one is an error before
/// anything is read (and a file growing while read is not read past it).
pub fn read_state_file_at_most(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let opened = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(e.kind(), "a symlink (never followed)"));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), FpError> {
    let bytes = serde_json::to_vec(value).map_err(|e| FpError::io("encode", path, e.into()))?;
    write_file_atomic(path, &bytes, durable).map_err(|e| FpError::io("write", path, e))
}

/// Numbers this process's temporary files.
static TMP_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long a state file's lock is waited for: its holder keeps it for one check; one that
/// keeps it longer is stopped or hung (a daemon under SIGSTOP), and the check fails instead
/// (the task then runs: never skip on doubt).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes `file`'s lock (exclusive or shared), waiting at most [`LOCK_WAIT`].
fn wait_for_lock(file: &File, exclusive: bool) -> io::Result<()> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let tried = match exclusive {
            true => file.try_lock(),
            false => file.try_lock_shared(),
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "held by another process for more than 5 s",
                ));
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically (temp file beside it, then rename); `durable` adds
/// an fsync before the rename for state whose loss would cost more than a rerun.
pub fn write_file_atomic(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    write_atomic(path, bytes, durable, None)
}

/// `write_file_atomic` (not durable) giving the new file exactly `mode` (set on the temp
/// file before the rename, whatever this process's umask), when one is given.
pub fn write_file_atomic_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    write_atomic(path, bytes, false, mode)
}

fn write_atomic(path: &Path, bytes: &[u8], durable: bool, mode: Option<u32>) -> io::Result<()> {
    let (mut file, tmp) = create_temp_beside(path)?;
    let mut write = || -> io::Result<()> {
        file.write_all(bytes)?;
        if let Some(mode) = mode {
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        }
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A new file beside `path` under a name unique per write (threads of one process, the
/// daemon, may write the same file at once), created exclusively and never through a
/// symlink: a name someone planted in a shared directory is skipped, never followed.
fn create_temp_beside(path: &Path) -> io::Result<(File, PathBuf)> {
    let mut attempts = 0;
    loop {
        let n = TMP_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = with_suffix(path, &format!(".tmp.{}.{n}", std::process::id()));
        let created = File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp);
        match created {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => attempts += 1,
            other => return other.map(|file| (file, tmp)),
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), FpError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FpError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    u64::try_from(now_ns() / 1_000_000).unwrap_or(0)
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
