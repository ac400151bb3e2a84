//! One run of a task at a time: `F.task.lock` beside the task's state file `F`, held from
//! the task's check to its recorded result. A second `zccache run` of the same task waits
//! for the first (saying so once), then checks again, and skips where the first succeeded,
//! instead of running the command at the same time into the same outputs. (`F.zccache-lock`
//! only spans each update of the state files.)
//!
//! The lock is an advisory `flock`: the kernel drops it when its holder exits, however it
//! exits. The file holds the holder's pid, for the waiting message only, or `settling` while
//! a first run's record is being written after its command ended (see `per_file::settle`,
//! which passes the lock on): a run waits for that silently, looking every millisecond.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::paths::with_suffix;
use crate::ui::Ui;

/// How often a waiting run looks whether the lock is free (and whether it was interrupted).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// How often a run looks while a record is being settled (which takes some milliseconds).
const LOOK_SOON: Duration = Duration::from_millis(1);

/// How long a run waits silently for a record being settled before it says it waits.
const SETTLE_PATIENCE: Duration = Duration::from_secs(3);

/// What the lock file holds while the lock is passed on to settle a record.
const SETTLING: &str = "settling";

/// A held task lock; released when dropped.
#[derive(Debug)]
pub struct TaskLock {
    file: File,
    /// Passed on (or taken over from another process): its file says `settling`, and is
    /// left so.
    passed: bool,
}

impl Drop for TaskLock {
    fn drop(&mut self) {
        // No pid of a finished run is left for the next waiter to name.
        if !self.passed {
            let _ = self.file.set_len(0);
        }
    }
}

impl TaskLock {
    /// The lock file, open, for another process to hold the lock with beside this one (the
    /// file still names this process, until [`TaskLock::passed_on`]).
    pub fn share(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Lets go of this process's hold, leaving the lock to the process it was shared with;
    /// the file says `settling` from now on, and is left so.
    pub fn passed_on(mut self) {
        let _ = say_holder(&self.file, SETTLING);
        self.passed = true;
    }

    /// Lets the lock go now, whatever other descriptor of its open file this process keeps
    /// (the record writer's standard output, taken, until it exits).
    pub fn release(self) {
        let _ = self.file.unlock();
    }

    /// The lock of the task whose state file is `cache_file`, held through `file`, which
    /// another process passed on ([`TaskLock::pass_on`]): refused unless `file` is that
    /// task's lock file.
    pub fn adopt(cache_file: &Path, file: File) -> io::Result<TaskLock> {
        use std::os::unix::fs::MetadataExt;
        let path = with_suffix(cache_file, ".task.lock");
        let (held, named) = (file.metadata()?, std::fs::symlink_metadata(&path)?);
        if (held.dev(), held.ino()) != (named.dev(), named.ino()) || !named.is_file() {
            return Err(io::Error::other(format!(
                "the lock passed on is not {}",
                path.display()
            )));
        }
        // Held through this very open file, taking it again is a no-op; through another, it
        // is taken here, or refused while someone else holds it.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::other(
                    "the lock passed on is held by another process",
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let _ = say_holder(&file, &format!("{SETTLING} {}", std::process::id()));
        // Its file keeps saying `settling` to the end: a run that looks in the moment
        // before the lock is free is not told that another run holds it.
        Ok(TaskLock { file, passed: true })
    }
}

/// How taking the lock went.
#[derive(Debug)]
pub enum Taken {
    /// Held; `waited` when another run held it first (an earlier check is stale now).
    Held {
        /// The lock.
        lock: TaskLock,
        /// Whether another run had to be waited for.
        waited: bool,
    },
    /// zccache was interrupted while waiting.
    Interrupted,
}

/// Takes the lock of the task named `name` whose state file is `cache_file`, waiting while
/// another process holds it (`zccache: waiting for another run of NAME (pid N)`, once).
pub fn take(cache_file: &Path, ui: &Ui, name: &str) -> Result<Taken, String> {
    let path = with_suffix(cache_file, ".task.lock");
    let file = open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut waited = false;
    let mut settling_since = None;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        if crate::os::interrupted().is_some() {
            return Ok(Taken::Interrupted);
        }
        let holder = holder(&file);
        if matches!(holder, Holder::Settling(_))
            && settling_since.get_or_insert_with(Instant::now).elapsed() < SETTLE_PATIENCE
        {
            std::thread::sleep(LOOK_SOON);
            continue;
        }
        if !waited {
            ui.say(waiting_for(holder, name));
            waited = true;
        }
        std::thread::sleep(LOOK_AGAIN);
    }
    let _ = say_holder(&file, &std::process::id().to_string());
    Ok(Taken::Held {
        lock: TaskLock {
            file,
            passed: false,
        },
        waited,
    })
}

/// `waiting for another run of NAME (pid N)`, or for the record of its last run.
fn waiting_for(holder: Holder, name: &str) -> String {
    match holder {
        Holder::Pid(pid) => format!("waiting for another run of {name} (pid {pid})"),
        Holder::Settling(Some(pid)) => {
            format!("waiting for the record of the last run of {name} (pid {pid})")
        }
        Holder::Settling(None) => format!("waiting for the record of the last run of {name}"),
        Holder::Unknown => format!("waiting for another run of {name}"),
    }
}

/// Opens (creating, private to this user) the lock file; never through a symlink.
fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// A run, with this pid.
    Pid(u32),
    /// The process settling a first run's record (with its pid once it said it).
    Settling(Option<u32>),
    /// Not said (yet).
    Unknown,
}

/// Writes who holds the lock into its file: over what it said, then cut to length, so that
/// a run waiting meanwhile never reads an empty file (and says an unknown run holds it,
/// where `settling` turning into `settling PID` means a record being written).
fn say_holder(file: &File, text: &str) -> io::Result<()> {
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)
}

/// Who holds the lock, as the holder wrote.
fn holder(file: &File) -> Holder {
    let mut buf = [0u8; 16];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return Holder::Unknown;
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or_default().trim();
    if let Some(rest) = text.strip_prefix(SETTLING) {
        return Holder::Settling(rest.trim().parse().ok());
    }
    match text.parse() {
        Ok(pid) => Holder::Pid(pid),
        Err(_) => Holder::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_on_lock_is_taken_only_through_the_task_lock_file_and_never_from_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let cache_file = dir.path().join("t.json");
        let path = with_suffix(&cache_file, ".task.lock");
        // Another file, even one with the lock's bytes, is not the lock.
        std::fs::write(dir.path().join("other"), "").unwrap();
        let other = File::open(dir.path().join("other")).unwrap();
        assert!(TaskLock::adopt(&cache_file, other).is_err());
        // The lock file, held through another open file (another run), is refused.
        let running = open(&path).unwrap();
        running.try_lock().unwrap();
        assert!(TaskLock::adopt(&cache_file, open(&path).unwrap()).is_err());
        // Through the open file that holds it, it is taken over, and the file says so.
        let passed = running.try_clone().unwrap();
        let adopted = TaskLock::adopt(&cache_file, passed).unwrap();
        let said = std::fs::read_to_string(&path).unwrap();
        assert_eq!(said, format!("{SETTLING} {}", std::process::id()));
        assert_eq!(
            holder(&adopted.file),
            Holder::Settling(Some(std::process::id()))
        );
        drop(running);
        drop(adopted);
        // Let go, the file still says settling (a run looking then is not told otherwise),
        // and the lock is free.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with(SETTLING)
        );
        assert!(open(&path).unwrap().try_lock().is_ok());
    }
}
