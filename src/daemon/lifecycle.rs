//! Where the daemon lives and how it comes and goes: the state directory, the lock that lets
//! exactly one daemon serve it, starting a detached daemon and waiting for its ready byte
//! (no polling), and stopping one of another version.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::private_dir::DIR_ENV;

/// Seconds of inactivity after which the daemon exits.
pub const IDLE_ENV: &str = "ZCCACHE_IDLE_TIMEOUT";
/// Set to `1` to keep every command in-process.
pub const NO_DAEMON_ENV: &str = "ZCCACHE_NO_DAEMON";
/// The fd on which a starting daemon reports readiness.
const READY_FD_ENV: &str = "ZCCACHE_READY_FD";
/// The fd number the ready pipe gets in the daemon.
const READY_FD: i32 = 3;
/// How long a client waits for a daemon it started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ready byte: serving.
pub const READY: u8 = b'R';
/// Ready byte: another daemon already serves this directory.
pub const BUSY: u8 = b'B';

/// The files of one state directory.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    /// The state directory (`ZCCACHE_DIR`).
    pub dir: PathBuf,
    /// The Unix socket.
    pub socket: PathBuf,
    /// Held (flock) by the serving daemon for its whole life.
    pub lock: PathBuf,
    /// The serving daemon's pid.
    pub pid: PathBuf,
    /// The daemon's log (its stderr).
    pub log: PathBuf,
    /// Serializes clients that start a daemon.
    start_lock: PathBuf,
}

impl DaemonPaths {
    /// From `ZCCACHE_DIR`, else `$XDG_CACHE_HOME/zccache`, else `~/.cache/zccache`.
    pub fn from_env() -> io::Result<Self> {
        let dir = crate::private_dir::state_dir()?;
        Ok(DaemonPaths {
            socket: dir.join("daemon.sock"),
            lock: dir.join("daemon.lock"),
            pid: dir.join("daemon.pid"),
            log: dir.join("daemon.log"),
            start_lock: dir.join("daemon.start.lock"),
            dir,
        })
    }

    /// Creates the directory (mode 0700), or checks that the one there is this user's and
    /// writable by nobody else (see `private_dir`).
    pub fn ensure_dir(&self) -> io::Result<()> {
        crate::private_dir::ensure(&self.dir)
    }

    /// The pid the serving daemon wrote, if any.
    pub fn read_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid).ok()?.trim().parse().ok()
    }
}

/// Whether commands should stay in-process (`ZCCACHE_NO_DAEMON=1`).
pub fn daemon_disabled() -> bool {
    std::env::var_os(NO_DAEMON_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Takes the start lock: one client at a time starts (or restarts) a daemon.
pub fn start_lock(paths: &DaemonPaths) -> io::Result<File> {
    let file = start_lock_file(paths)?;
    file.lock()?;
    Ok(file)
}

/// The start lock, unless another client holds it (`None`).
pub fn try_start_lock(paths: &DaemonPaths) -> io::Result<Option<File>> {
    let file = start_lock_file(paths)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn start_lock_file(paths: &DaemonPaths) -> io::Result<File> {
    paths.ensure_dir()?;
    open_lock_file(&paths.start_lock)
}

/// Opens (creating) a lock file.
pub fn open_lock_file(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a file of the state directory for writing, never through a symlink.
pub fn open_state_file(path: &std::path::Path, append: bool) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// How a start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The new daemon serves.
    Ready,
    /// Another daemon holds the lock (serving, or exiting).
    Busy,
}

/// Starts a detached daemon for `paths` and waits for it to be ready. Call with the start
/// lock held.
pub fn spawn_daemon(paths: &DaemonPaths) -> io::Result<Started> {
    paths.ensure_dir()?;
    let (read_end, write_end) = io::pipe()?;
    let log = open_state_file(&paths.log, true)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("daemon-serve")
        // Requests carry absolute paths; holding no directory busy is kinder.
        .current_dir("/")
        .env(DIR_ENV, &paths.dir)
        .env(READY_FD_ENV, READY_FD.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let write_fd = write_end.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 || libc::dup2(write_fd, READY_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()?;
    drop(write_end);
    match read_ready_byte(read_end.into(), START_TIMEOUT)? {
        Some(READY) => Ok(Started::Ready),
        Some(BUSY) => Ok(Started::Busy),
        Some(other) => Err(io::Error::other(format!(
            "daemon answered {other:?} when starting"
        ))),
        None => Err(io::Error::other(format!(
            "the daemon did not start (see {})",
            paths.log.display()
        ))),
    }
}

/// Tells the client that started this daemon how the start went (no-op when not started by
/// a client).
pub fn report_ready(byte: u8) {
    let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the fd was handed to us by the starting client for exactly this write.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let _ = io::Write::write_all(&mut file, &[byte]);
    // SAFETY: removing our own environment entry before any thread reads it concurrently.
    unsafe { std::env::remove_var(READY_FD_ENV) };
}

/// Stops the daemon whose pid is on file (SIGTERM) and waits until it released the lock.
/// For a daemon that just answered in zccache's frame format, so no further check.
pub fn stop_by_pid(paths: &DaemonPaths) -> io::Result<()> {
    if let Some(pid) = paths.read_pid() {
        // SAFETY: plain kill(2) on the pid the daemon recorded.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    wait_lock_free(paths, START_TIMEOUT)
}

/// The prefix of the marks of processes that start a daemon after their caller returned.
const START_MARK: &str = "daemon.starting.";

/// The subcommand of the processes that mark their daemon starts (`zccache settle-files`,
/// which writes a first per-file run's record): a marked pid running anything else is a
/// stale mark.
pub const MARKED_STARTER: &str = "settle-files";

/// Marks that process `pid` (a first per-file run's record writer) starts a daemon for
/// `paths` once its caller has returned: `zccache stop` waits for it (see
/// [`await_marked_starts`]), so that no daemon comes up unseen after a stop.
pub fn mark_start_by(paths: &DaemonPaths, pid: u32) -> io::Result<()> {
    paths.ensure_dir()?;
    // A mark a process of the same pid left is taken over, not refused.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(paths.dir.join(format!("{START_MARK}{pid}")))
        .map(drop)
}

/// Removes this process's mark (see [`mark_start_by`]), if it has one.
pub fn unmark_start(paths: &DaemonPaths) {
    let _ = std::fs::remove_file(
        paths
            .dir
            .join(format!("{START_MARK}{}", std::process::id())),
    );
}

/// Waits, up to `limit`, until no process marked to start a daemon for `paths` still runs
/// (calling `slow` once if that takes more than `SLOW_START_NOTE`); the marks of processes
/// gone are removed.
pub fn await_marked_starts(paths: &DaemonPaths, limit: Duration, slow: impl FnOnce()) {
    let started = std::time::Instant::now();
    let mut slow = Some(slow);
    loop {
        let Ok(entries) = std::fs::read_dir(&paths.dir) else {
            return;
        };
        let mut waiting = false;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(START_MARK))
                .and_then(|pid| pid.parse::<i32>().ok())
            else {
                continue;
            };
            match is_marked_starter(pid) {
                true => waiting = true,
                false => drop(std::fs::remove_file(entry.path())),
            }
        }
        if !waiting || started.elapsed() >= limit {
            return;
        }
        if started.elapsed() >= SLOW_START_NOTE
            && let Some(slow) = slow.take()
        {
            slow();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How long a wait for a marked start goes on before it is said.
const SLOW_START_NOTE: Duration = Duration::from_secs(2);

/// Whether process `pid` runs `zccache settle-files` (a zombie's command line is empty; a
/// reused pid, or one of another pid namespace, runs something else).
fn is_marked_starter(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|b| *b == 0).nth(1) == Some(MARKED_STARTER.as_bytes())
}

/// Tells the daemon serving `paths` to exit (SIGTERM, then SIGCONT should it be stopped) when
/// one holds the lock and the pid on file is a zccache daemon of this directory; its pid.
pub fn signal_daemon(paths: &DaemonPaths) -> Option<i32> {
    let pid = paths.read_pid()?;
    if !lock_held(paths) || !is_daemon_of(pid, &paths.dir) {
        return None;
    }
    // SAFETY: plain kill(2) on a process just checked to be our daemon.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGCONT);
    }
    Some(pid)
}

/// Ends a daemon that holds the lock while its socket is gone (removed by hand, or with a
/// cleaned temp dir): it serves no one, and would keep every later start waiting. A daemon
/// that still has its socket is left alone (it may be exiting, or just busy).
pub fn end_orphan(paths: &DaemonPaths) -> Option<i32> {
    let listening = std::fs::symlink_metadata(&paths.socket).is_ok();
    let pid = (!listening).then(|| signal_daemon(paths)).flatten()?;
    tracing::debug!(pid, "signalled a daemon whose socket was gone");
    Some(pid)
}

/// Whether some process holds the daemon lock.
fn lock_held(paths: &DaemonPaths) -> bool {
    let Ok(file) = open_lock_file(&paths.lock) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => file.unlock().is_err(),
        Err(_) => true,
    }
}

/// Whether `pid` is `zccache daemon-serve` for `dir` (its command line, and the
/// `ZCCACHE_DIR` every spawned daemon is given): a pid file can outlive its daemon, and the
/// pid go to another process. What cannot be read (another user's process) is not ours.
/// Only Linux tells; elsewhere no process is signalled.
fn is_daemon_of(pid: i32, dir: &std::path::Path) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    if cmdline.split(|b| *b == 0).nth(1) != Some(b"daemon-serve") {
        return false;
    }
    let Ok(environ) = std::fs::read(proc.join("environ")) else {
        return false;
    };
    let prefix = format!("{DIR_ENV}=");
    let given = environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(prefix.as_bytes()));
    given.is_some_and(|given| std::path::Path::new(std::ffi::OsStr::from_bytes(given)) == dir)
}

/// Waits (at most `timeout`) until process `pid` has exited; whether it did. A zombie
/// counts as exited: the daemon's parent is whoever started it, long gone.
pub fn wait_exited(pid: i32, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let zombie = stat
            .as_deref()
            .ok()
            .and_then(|s| s.rsplit_once(')'))
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
        let alive = u32::try_from(pid).is_ok_and(crate::os::process_alive);
        if !alive || zombie {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until no daemon holds the lock.
pub fn wait_lock_free(paths: &DaemonPaths, timeout: Duration) -> io::Result<()> {
    let file = open_lock_file(&paths.lock)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(file.lock().and_then(|()| file.unlock()));
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(io::Error::other("the old daemon did not exit in time")),
    }
}

/// Reads one byte with a timeout; `None` on EOF or timeout.
fn read_ready_byte(fd: OwnedFd, timeout: Duration) -> io::Result<Option<u8>> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    if ready <= 0 {
        return Ok(None);
    }
    let mut file = File::from(fd);
    let mut byte = [0u8; 1];
    match file.read(&mut byte)? {
        0 => Ok(None),
        _ => Ok(Some(byte[0])),
    }
}
