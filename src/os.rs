//! The Unix calls zccache makes outside the standard library: forwarding SIGINT/SIGTERM to a
//! child, turning an exit status into a shell-style code, and local time for messages.

use std::process::ExitStatus;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use std::os::unix::process::ExitStatusExt;

/// Most children that receive forwarded signals at once (`zccache run -j` is capped to it).
pub const MAX_CHILDREN: usize = 256;
/// The children that receive forwarded signals (0: a free slot).
static CHILDREN: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];
/// The last forwarded signal (0: none) since the handlers were installed.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Whether any signal was forwarded during this process's life.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// How many forwardings are alive, and the actions they replaced.
static INSTALLED: Mutex<(usize, Vec<(libc::c_int, libc::sigaction)>)> = Mutex::new((0, Vec::new()));

const FORWARDED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

extern "C" fn forward(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    for child in &CHILDREN {
        let pid = child.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill is async-signal-safe; pid is a child we spawned.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// True once zccache received SIGINT or SIGTERM while a child ran (no new task starts).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// While alive, SIGINT and SIGTERM sent to zccache are passed on to the child (to every
/// child of the live forwardings) instead of killing zccache; when the last one is dropped
/// the previous handlers come back.
pub struct SignalForwarding {
    /// The index in `CHILDREN` of this forwarding's child.
    slot: AtomicUsize,
}

impl SignalForwarding {
    /// Installs the forwarding handlers (before the child exists, so no signal is lost).
    pub fn install() -> Self {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if installed.0 == 0 {
            RECEIVED.store(0, Ordering::SeqCst);
            installed.1 = FORWARDED
                .iter()
                .filter_map(|&s| replace_action(s))
                .collect();
        }
        installed.0 += 1;
        SignalForwarding {
            slot: AtomicUsize::new(usize::MAX),
        }
    }

    /// Names the child to forward to; a signal that came before it existed is sent now.
    pub fn set_child(&self, pid: u32) {
        let pid = i32::try_from(pid).unwrap_or(0);
        let free = CHILDREN.iter().position(|child| {
            child
                .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if let Some(slot) = free {
            self.slot.store(slot, Ordering::SeqCst);
        }
        let early = RECEIVED.load(Ordering::SeqCst);
        if early != 0 && pid > 0 {
            // SAFETY: see `forward`.
            unsafe {
                libc::kill(pid, early);
            }
        }
    }

    /// The signal forwarded last, if any.
    pub fn received(&self) -> Option<i32> {
        Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

/// Points `signal` at `forward`; returns the action it replaced.
fn replace_action(signal: libc::c_int) -> Option<(libc::c_int, libc::sigaction)> {
    // SAFETY: a zeroed sigaction with a plain handler is valid; `old` receives the previous
    // action, restored when the last forwarding is dropped.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = forward as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(signal, &action, &mut old) == 0).then_some((signal, old))
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        if let Some(child) = CHILDREN.get(self.slot.load(Ordering::SeqCst)) {
            child.store(0, Ordering::SeqCst);
        }
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        installed.0 = installed.0.saturating_sub(1);
        if installed.0 > 0 {
            return;
        }
        for (signal, old) in installed.1.drain(..) {
            // SAFETY: restores the action saved when the first forwarding was installed.
            unsafe {
                libc::sigaction(signal, &old, std::ptr::null_mut());
            }
        }
    }
}

/// The shell's view of an exit status: the code, or 128 + N when killed by signal N.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// A moment in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Calendar year.
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
    /// Day of month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
}

/// Converts milliseconds since the epoch to local time.
pub fn local_time(ms: u64) -> Option<LocalTime> {
    let secs = libc::time_t::try_from(ms / 1000).ok()?;
    // SAFETY: localtime_r writes only into the tm we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
    })
}

/// Hands freed heap memory back to the OS (glibc keeps it otherwise): the daemon calls this
/// after large transient allocations (full walks, state writes) so its RSS reflects what it
/// holds.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether process `pid` still exists.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This process's umask (read by setting it and putting it straight back; call it before
/// threads that create files start).
pub fn current_umask() -> u32 {
    // SAFETY: umask cannot fail; the old value is restored at once.
    let mask = unsafe {
        let mask = libc::umask(0o077);
        libc::umask(mask);
        mask
    };
    // mode_t is u32 on Linux and u16 on macOS.
    #[allow(clippy::useless_conversion)]
    u32::from(mask)
}

/// The soft limit on open file descriptors, if it can be read.
pub fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    known.then_some(limit.rlim_cur)
}

/// Whether the other end of the connected socket `fd` has closed it (both directions: a
/// client that only shut down its writing half still waits for the answer).
pub fn peer_hung_up(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd on a descriptor the caller keeps open; zero timeout.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// Bytes an unprivileged process may still write on the filesystem holding `path`.
pub fn free_space(path: &std::path::Path) -> Option<u64> {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(name.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    // The field widths differ between platforms.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// Connects to the Unix socket at `path`, waiting at most `timeout` for a place in its
/// listen queue (std's connect would wait without end when the listener does not accept).
pub fn connect_unix(
    path: &std::path::Path,
    timeout: std::time::Duration,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let bytes = path.as_os_str().as_encoded_bytes();
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below, NUL kept.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("socket path too long: {}", path.display()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, byte) in addr.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = std::os::unix::net::UnixStream::from(socket);
    // A Unix socket's connect waits for room in the listen queue at most its send timeout.
    stream.set_write_timeout(Some(timeout))?;
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    let connected = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            len,
        )
    };
    if connected != 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EINPROGRESS) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the daemon's listen queue stayed full",
            ),
            _ => err,
        });
    }
    Ok(stream)
}
