//! The Unix calls zccache makes outside the standard library: forwarding SIGINT/SIGTERM to a
//! child, turning an exit status into a shell-style code, and local time for messages.

use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use std::os::unix::process::ExitStatusExt;

/// The child that receives forwarded signals (0: none yet).
static CHILD_PID: AtomicI32 = AtomicI32::new(0);
/// The last forwarded signal (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

const FORWARDED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

extern "C" fn forward(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
    let pid = CHILD_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; pid is a child we spawned.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// While alive, SIGINT and SIGTERM sent to zccache are passed on to the child instead of
/// killing zccache; dropping it restores the previous handlers.
pub struct SignalForwarding {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalForwarding {
    /// Installs the forwarding handlers (before the child exists, so no signal is lost).
    pub fn install() -> Self {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for signal in FORWARDED {
            // SAFETY: a zeroed sigaction with a plain handler is valid; `old` receives the
            // previous action, restored in Drop.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = forward as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) == 0 {
                    previous.push((signal, old));
                }
            }
        }
        SignalForwarding { previous }
    }

    /// Names the child to forward to; a signal that came before it existed is sent now.
    pub fn set_child(&self, pid: u32) {
        let pid = i32::try_from(pid).unwrap_or(0);
        CHILD_PID.store(pid, Ordering::SeqCst);
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

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        CHILD_PID.store(0, Ordering::SeqCst);
        for (signal, old) in &self.previous {
            // SAFETY: restores the action saved in `install`.
            unsafe {
                libc::sigaction(*signal, old, std::ptr::null_mut());
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
