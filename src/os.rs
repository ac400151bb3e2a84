//! The Unix calls zccache makes outside the standard library: catching SIGINT, SIGTERM and
//! SIGHUP for good (the first is remembered, each is passed on to every live command),
//! waiting for a child without reaping it, polling a pipe, turning an exit status into a
//! shell-style code, and local time for messages.
//!
//! Invariant: a command's pid (or process group) is signalled only while it is registered,
//! and it is unregistered before it is reaped, so a signal never reaches a process that
//! reused its pid.

use std::io;
use std::os::fd::RawFd;
use std::process::ExitStatus;
use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};

use std::os::unix::process::ExitStatusExt;

/// Most commands that receive forwarded signals at once (`zccache run -j` is capped to it).
pub const MAX_CHILDREN: usize = 256;

/// The signals that interrupt a run.
const INTERRUPTS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first interrupting signal received (0: none). Never reset: once it is set, no
/// command starts for the rest of the process.
static INTERRUPT: AtomicI32 = AtomicI32::new(0);
/// Where each live command's signals go.
static CHILDREN: Slots = Slots::new();
static CATCHING: Once = Once::new();

/// From now on SIGINT, SIGTERM and SIGHUP do not kill zccache: the first is remembered (see
/// [`interrupted`]) and each is passed on to every live command; a second one quits at once
/// with 128 + the first. A write past the file size limit fails with EFBIG instead of
/// killing zccache (SIGXFSZ). Commands started later get the default actions back (exec
/// resets caught signals).
pub fn catch_signals() {
    CATCHING.call_once(|| {
        for signal in INTERRUPTS {
            catch(signal, on_interrupt);
        }
        catch(libc::SIGXFSZ, on_file_too_big);
    });
}

/// The signal that interrupted this process (caught since [`catch_signals`]), if one did.
pub fn interrupted() -> Option<i32> {
    Some(INTERRUPT.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    let first = INTERRUPT.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    CHILDREN.signal_all(signal, send);
    if let Err(first) = first {
        // A second signal: whoever sent it will not wait for the run to wind down.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + first) }
    }
}

extern "C" fn on_file_too_big(_: libc::c_int) {}

/// Points `signal` at `handler`, with the interrupting signals blocked while it runs (so
/// handlers never nest on one thread). A signal zccache was started with ignored stays
/// ignored (`nohup`, a background job of a script).
fn catch(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: sigaction with a null new action only reads the current one into ours; a
    // zeroed sigaction with a plain handler and a filled-in mask is valid.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        let known = libc::sigaction(signal, std::ptr::null(), &mut current) == 0;
        if known && current.sa_sigaction == libc::SIG_IGN {
            return;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for blocked in INTERRUPTS {
            libc::sigaddset(&mut action.sa_mask, blocked);
        }
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// Sends `signal` to `target` (a pid, or minus a process group); a group also gets SIGCONT
/// after it, so a stopped command (one that read the terminal from the background) takes it.
fn send(target: i32, signal: libc::c_int) {
    // SAFETY: kill is async-signal-safe; target is a registered, unreaped command.
    unsafe {
        libc::kill(target, signal);
        if target < 0 {
            libc::kill(target, libc::SIGCONT);
        }
    }
}

/// A live command registered to receive the signals zccache catches; unregistered by
/// [`Forwarding::wait_exited`] (or when dropped).
#[derive(Debug)]
pub struct Forwarding {
    pid: libc::pid_t,
    /// The pid, or minus the process group the command leads.
    target: i32,
    slot: Option<usize>,
}

impl Forwarding {
    /// Registers child `pid` (with `own_group`, the leader of a process group of its own,
    /// signalled as a whole); a signal caught before is sent to it now.
    pub fn register(pid: u32, own_group: bool) -> Self {
        let pid = libc::pid_t::try_from(pid).unwrap_or(0);
        let target = if own_group { -pid } else { pid };
        let slot = (pid > 0).then(|| CHILDREN.claim(target)).flatten();
        if let Some(signal) = interrupted().filter(|_| pid > 0) {
            send(target, signal);
        }
        Forwarding { pid, target, slot }
    }

    /// Blocks until the command has exited, leaving it unreaped (its pid stays taken until
    /// the caller reaps it), then unregisters it: no signal goes to that pid after this.
    pub fn wait_exited(mut self) -> io::Result<()> {
        let waited = wait_exited(self.pid);
        self.unregister();
        waited
    }

    fn unregister(&mut self) {
        if let Some(slot) = self.slot.take() {
            CHILDREN.release(slot, self.target);
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Whether this process's child `pid` is still running (not exited, nor killed), leaving it
/// unreaped either way.
pub fn child_running(pid: u32) -> bool {
    // SAFETY: a zeroed siginfo is a valid one to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes only into the siginfo we own; WNOWAIT leaves the child as is.
    let waited = unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) };
    // SAFETY: waitid filled the siginfo; its pid is 0 while the child runs.
    waited == 0 && unsafe { info.si_pid() } == 0
}

/// Blocks until child `pid` has exited, without reaping it.
fn wait_exited(pid: libc::pid_t) -> io::Result<()> {
    let id = libc::id_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: waitid writes only into the siginfo we own; WNOWAIT leaves the child as is.
        let waited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if waited == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A slot that is free.
const FREE: i32 = 0;
/// A slot whose target a signal handler is sending to right now.
const SENDING: i32 = i32::MIN;

/// The targets of the live commands, one slot each; a signal handler reads them without
/// locks, and marks a slot while it sends to it so that [`Slots::release`] cannot return
/// in between (the caller reaps the command only after that).
struct Slots([AtomicI32; MAX_CHILDREN]);

impl Slots {
    const fn new() -> Self {
        Slots([const { AtomicI32::new(FREE) }; MAX_CHILDREN])
    }

    fn claim(&self, target: i32) -> Option<usize> {
        self.0.iter().position(|slot| {
            slot.compare_exchange(FREE, target, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })
    }

    /// Hands every registered target to `send` with `signal` (async-signal-safe: no locks,
    /// no allocation; waits only for another thread's handler, which never waits on us).
    fn signal_all(&self, signal: libc::c_int, send: impl Fn(i32, libc::c_int)) {
        for slot in &self.0 {
            loop {
                let target = slot.load(Ordering::SeqCst);
                if target == FREE {
                    break;
                }
                if target != SENDING
                    && slot
                        .compare_exchange(target, SENDING, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    send(target, signal);
                    slot.store(target, Ordering::SeqCst);
                    break;
                }
                std::hint::spin_loop();
            }
        }
    }

    /// Frees `slot`, which holds `target`, waiting while a handler sends to it.
    fn release(&self, slot: usize, target: i32) {
        let Some(slot) = self.0.get(slot) else { return };
        while slot
            .compare_exchange(target, FREE, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }
}

/// Waits up to `ms` for `fd` to have something to read (or to be at its end); `Ok(false)`
/// when nothing came (or a signal came first).
pub fn readable_within(fd: RawFd, ms: i32) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes only the one pollfd we own.
    match unsafe { libc::poll(&mut poll, 1, ms) } {
        -1 => match io::Error::last_os_error() {
            err if err.kind() == io::ErrorKind::Interrupted => Ok(false),
            err => Err(err),
        },
        n => Ok(n > 0),
    }
}

/// A descriptor that becomes readable once process `pid` has exited (`pidfd_open`); `None`
/// where the kernel has none (before Linux 5.3) or the process is gone.
pub fn pidfd(pid: libc::pid_t) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the descriptor returned is owned here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just opened and nothing else owns it.
    Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// How many bytes the pipe `fd` holds now (0 when that cannot be told).
pub fn bytes_waiting(fd: RawFd) -> usize {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the one we own.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut count) } != 0 {
        return 0;
    }
    usize::try_from(count).unwrap_or(0)
}

/// Whether this process has a controlling terminal (asked once: it does not come or go
/// during a run).
pub fn has_terminal() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::fs::File::open("/dev/tty").is_ok())
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

/// This process's umask, read by setting it and putting it straight back: two syscalls, for a
/// process with one thread (the compile wrapper), or before threads that create files start.
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

/// This process's umask, read once and without changing it (from `/proc/self/status` where
/// there is one, so threads creating files meanwhile never see another mask), else as
/// [`current_umask`] reads it.
pub fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            })
            .unwrap_or_else(current_umask)
    })
}

/// Lets SIGPIPE end this process quietly, as it ends `cat`, cargo or git when their reader
/// goes away (`zccache tasks | head -1`); Rust ignores it by default, which turns the next
/// print into a panic. Not for the daemon, whose clients may hang up at any time.
pub fn die_quietly_on_broken_pipe() {
    // SAFETY: restoring the default action of a signal is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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

/// The wall clock file timestamps come from: the kernel's coarse clock, which lags the
/// precise one by up to a tick, so a file written just after `SystemTime::now()` can carry
/// an earlier time.
pub fn file_clock_now() -> std::time::SystemTime {
    let now = clock(libc::CLOCK_REALTIME_COARSE);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos)
}

/// Nanoseconds on the boot clock: monotonic, suspend included, the same in every process,
/// and set by no one (the wall clock may step back).
pub fn boot_clock_ns() -> i64 {
    let now = clock(libc::CLOCK_BOOTTIME);
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

fn clock(id: libc::clockid_t) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec owned here.
    unsafe { libc::clock_gettime(id, &mut now) };
    now
}

/// The kind of filesystem holding `path` (`statfs`'s magic number: `0xEF53` for ext4).
pub fn filesystem_kind(path: &std::path::Path) -> Option<i64> {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct we own from a NUL-terminated path.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(name.as_ptr(), &mut fs) } != 0 {
        return None;
    }
    // (`f_type`'s integer type differs between targets.)
    #[allow(clippy::useless_conversion)]
    Some(i64::from(fs.f_type))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// A target is never handed to a signal after its slot was released (its command is
    /// reaped then, and its pid may be reused), however the two race.
    #[test]
    fn a_released_slot_is_never_signalled() {
        const ROUNDS: usize = 500;
        let slots = Slots::new();
        let released: Vec<AtomicBool> = (0..=ROUNDS).map(|_| AtomicBool::new(false)).collect();
        let (late, done) = (AtomicUsize::new(0), AtomicBool::new(false));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    slots.signal_all(libc::SIGINT, |target, _| {
                        // As long as a kill takes, and then some.
                        std::thread::sleep(std::time::Duration::from_micros(20));
                        let target = usize::try_from(target).unwrap();
                        if released[target].load(Ordering::SeqCst) {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
            for (target, released) in released.iter().enumerate().skip(1) {
                let target = i32::try_from(target).unwrap();
                let slot = slots.claim(target).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(10));
                slots.release(slot, target);
                released.store(true, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        });
        assert_eq!(late.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn slots_run_out_and_come_back() {
        let slots = Slots::new();
        let taken: Vec<usize> = (1..=MAX_CHILDREN)
            .map(|t| slots.claim(i32::try_from(t).unwrap()).unwrap())
            .collect();
        assert_eq!(slots.claim(-7), None);
        slots.release(taken[3], 4);
        assert_eq!(slots.claim(-7), Some(taken[3]));
    }
}
