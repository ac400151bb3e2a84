//! One run of a task at a time: `F.task.lock` beside the task's state file `F`, held from
//! the task's check to its recorded result. A second `zccache run` of the same task waits
//! for the first (saying so once), then checks again, and skips where the first succeeded,
//! instead of running the command at the same time into the same outputs. (`F.zccache-lock`
//! only spans each update of the state files.)
//!
//! The lock is an advisory `flock`: the kernel drops it when its holder exits, however it
//! exits. The file holds the holder's pid, for the waiting message only.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use crate::paths::with_suffix;
use crate::ui::Ui;

/// How often a waiting run looks whether the lock is free (and whether it was interrupted).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// A held task lock; released when dropped.
#[derive(Debug)]
pub struct TaskLock {
    file: File,
}

impl Drop for TaskLock {
    fn drop(&mut self) {
        // No pid of a finished run is left for the next waiter to name.
        let _ = self.file.set_len(0);
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
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        if !waited {
            let pid = holder(&file).map(|p| format!(" (pid {p})"));
            ui.say(format_args!(
                "waiting for another run of {name}{}",
                pid.unwrap_or_default()
            ));
            waited = true;
        }
        if crate::os::interrupted().is_some() {
            return Ok(Taken::Interrupted);
        }
        std::thread::sleep(LOOK_AGAIN);
    }
    let pid = std::process::id().to_string();
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0));
    Ok(Taken::Held {
        lock: TaskLock { file },
        waited,
    })
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

/// The pid the lock's holder wrote, if it wrote one yet.
fn holder(file: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}
