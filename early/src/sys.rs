//! Raw Linux x86_64 system calls. The early client runs before the C library has set up
//! errno, thread-locals or its function table, so nothing here goes through libc: each call
//! returns the kernel's value, a negative errno on failure.

use core::arch::asm;

/// `EINTR`: the call was interrupted by a signal before doing anything.
pub const EINTR: isize = -4;
/// `EAGAIN`: a socket's timeout passed with nothing sent or received.
pub const EAGAIN: isize = -11;
/// `ENOENT`: no such file.
pub const ENOENT: isize = -2;
/// `AT_FDCWD`: a path relative to the working directory.
const AT_FDCWD: isize = -100;
/// `AT_SYMLINK_NOFOLLOW`: describe a symlink itself.
pub const NOFOLLOW: usize = 0x100;
/// File-type bits of `st_mode`, and the regular-file and directory types.
pub const S_IFMT: u32 = 0o170_000;
/// A regular file.
pub const S_IFREG: u32 = 0o100_000;
/// A directory.
pub const S_IFDIR: u32 = 0o040_000;

/// The kernel's `struct stat` on x86_64 (`newfstatat`).
#[repr(C)]
struct Stat {
    dev: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    pad: i32,
    rdev: u64,
    size: i64,
    blksize: i64,
    blocks: i64,
    times: [i64; 6],
    unused: [i64; 3],
}

/// One system call with up to six arguments.
///
/// # Safety
/// The arguments must be what call `n` expects (valid pointers of the right sizes).
#[inline(always)]
unsafe fn call(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes what the kernel expects; `syscall` clobbers rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `read(2)`.
pub fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: the buffer is valid for its length.
    unsafe {
        call(
            0,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// `write(2)`.
pub fn write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: the buffer is valid for its length.
    unsafe { call(1, [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0]) }
}

/// `close(2)`.
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor this client opened.
    unsafe { call(3, [fd as usize, 0, 0, 0, 0, 0]) };
}

/// What the early client needs of a file's status (small: a whole `struct stat` returned by
/// value would be copied with `memcpy`).
#[derive(Clone, Copy)]
pub struct Status {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Last modification, seconds since the epoch.
    pub mtime: i64,
}

/// `newfstatat(2)` of a NUL-terminated `path` (`flags` 0 follows a symlink); the negative
/// errno on failure.
pub fn stat(path: &[u8], flags: usize) -> Result<Status, isize> {
    if path.last() != Some(&0) {
        return Err(ENOENT);
    }
    let mut out = core::mem::MaybeUninit::<Stat>::uninit();
    // SAFETY: a NUL-terminated path and room for one `struct stat`.
    let ret = unsafe {
        call(
            262,
            [
                AT_FDCWD as usize,
                path.as_ptr() as usize,
                out.as_mut_ptr() as usize,
                flags,
                0,
                0,
            ],
        )
    };
    if ret != 0 {
        return Err(ret);
    }
    let st = out.as_ptr();
    // SAFETY: the kernel filled the struct; the fields are read in place.
    unsafe {
        Ok(Status {
            dev: (*st).dev,
            ino: (*st).ino,
            mode: (*st).mode,
            uid: (*st).uid,
            mtime: (*st).times[2],
        })
    }
}

/// Opens a NUL-terminated `path`: for reading, or (`write`) created or truncated for
/// writing (mode 0666 less the umask), never through a symlink; the descriptor, or the
/// negative errno.
pub fn open(path: &[u8], write: bool) -> Result<i32, isize> {
    const O_WRONLY_CREAT_TRUNC: usize = 0o1 | 0o100 | 0o1000;
    const O_NOFOLLOW_CLOEXEC: usize = 0o400_000 | 0o2_000_000;
    if path.last() != Some(&0) {
        return Err(ENOENT);
    }
    let flags = O_NOFOLLOW_CLOEXEC | if write { O_WRONLY_CREAT_TRUNC } else { 0 };
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        call(
            257,
            [
                AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags,
                0o666,
                0,
                0,
            ],
        )
    };
    i32::try_from(fd).ok().filter(|fd| *fd >= 0).ok_or(fd)
}

/// Restores SIGPIPE's default action (ending the process quietly), as the wrapper does
/// before it writes the compiler's output.
pub fn default_sigpipe() {
    const SIGPIPE: usize = 13;
    // A `struct sigaction` of the kernel's layout, all zero: SIG_DFL, no flags, no mask.
    let action: [u64; 4] = [0; 4];
    // SAFETY: a valid action of 32 bytes, an 8-byte signal set.
    unsafe { call(13, [SIGPIPE, action.as_ptr() as usize, 0, 8, 0, 0]) };
}

/// Seconds since the epoch (`clock_gettime(CLOCK_REALTIME)`, as a system call).
pub fn epoch_secs() -> i64 {
    let mut ts: [i64; 2] = [0, 0];
    // SAFETY: a `struct timespec` of 16 bytes.
    unsafe { call(228, [0, ts.as_mut_ptr() as usize, 0, 0, 0, 0]) };
    ts[0]
}

/// `mmap(2)` of `len` private, anonymous, writable bytes.
pub fn map(len: usize) -> Option<*mut u8> {
    const PROT_READ_WRITE: usize = 3;
    const MAP_PRIVATE_ANONYMOUS: usize = 0x22;
    // SAFETY: an anonymous mapping touches nothing that exists.
    let ret = unsafe {
        call(
            9,
            [
                0,
                len,
                PROT_READ_WRITE,
                MAP_PRIVATE_ANONYMOUS,
                usize::MAX,
                0,
            ],
        )
    };
    (ret > 0).then_some(ret as *mut u8)
}

/// `munmap(2)` of a mapping [`map`] made.
///
/// # Safety
/// Nothing may use the mapping afterwards.
pub unsafe fn unmap(at: *mut u8, len: usize) {
    // SAFETY: the caller's mapping, no longer used.
    unsafe { call(11, [at as usize, len, 0, 0, 0, 0]) };
}

/// Whether `fd` is a terminal (`ioctl(TCGETS)` succeeds, as `isatty` asks).
pub fn is_terminal(fd: i32) -> bool {
    const TCGETS: usize = 0x5401;
    let mut termios = core::mem::MaybeUninit::<[u8; 64]>::uninit();
    // SAFETY: room for a `struct termios` (60 bytes).
    unsafe {
        call(
            16,
            [fd as usize, TCGETS, termios.as_mut_ptr() as usize, 0, 0, 0],
        ) == 0
    }
}

/// Whether `fd` is open (`fcntl(F_GETFD)`).
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { call(72, [fd as usize, 1, 0, 0, 0, 0]) >= 0 }
}

/// `getpid(2)`.
pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { call(39, [0; 6]) as u32 }
}

/// `geteuid(2)`.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { call(107, [0; 6]) as u32 }
}

/// The umask, read by setting it and setting it back (this process has one thread).
pub fn umask() -> u32 {
    // SAFETY: umask cannot fail; the old value is restored at once.
    unsafe {
        let mask = call(95, [0o077, 0, 0, 0, 0, 0]) as usize;
        call(95, [mask, 0, 0, 0, 0, 0]);
        mask as u32
    }
}

/// `getcwd(2)` into `buf`; the path's length (without its NUL), if it fits and is reachable.
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: the buffer is valid for its length.
    let ret = unsafe { call(79, [buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0, 0]) };
    let len = usize::try_from(ret).ok()?.checked_sub(1)?;
    (buf.first() == Some(&b'/')).then_some(len)
}

/// A Unix stream socket (close-on-exec).
pub fn unix_socket() -> Option<i32> {
    const AF_UNIX: usize = 1;
    const SOCK_STREAM_CLOEXEC: usize = 1 | 0o2_000_000;
    // SAFETY: plain socket(2).
    let fd = unsafe { call(41, [AF_UNIX, SOCK_STREAM_CLOEXEC, 0, 0, 0, 0]) };
    i32::try_from(fd).ok().filter(|fd| *fd >= 0)
}

/// Sets a socket's send (`SO_SNDTIMEO`) or receive (`SO_RCVTIMEO`) timeout in seconds.
pub fn set_timeout(fd: i32, receive: bool, secs: i64) -> bool {
    const SOL_SOCKET: usize = 1;
    let option = if receive { 20 } else { 21 };
    let timeval: [i64; 2] = [secs, 0];
    // SAFETY: a `struct timeval` of 16 bytes.
    unsafe {
        call(
            54,
            [
                fd as usize,
                SOL_SOCKET,
                option,
                timeval.as_ptr() as usize,
                16,
                0,
            ],
        ) == 0
    }
}

/// `connect(2)` to the Unix socket at `path` (no NUL); false when it is too long or refused.
pub fn connect_unix(fd: i32, path: &[u8]) -> bool {
    const AF_UNIX: u8 = 1;
    let mut addr = core::mem::MaybeUninit::<[u8; 110]>::uninit();
    let base = addr.as_mut_ptr().cast::<u8>();
    if path.len() >= 108 {
        return false;
    }
    // SAFETY: family (2 bytes), then the path and its NUL, all within the 110 bytes.
    unsafe {
        base.write(AF_UNIX);
        base.add(1).write(0);
        crate::bytes::copy(base.add(2), path);
        base.add(2 + path.len()).write(0);
    }
    let len = 2 + path.len() + 1;
    loop {
        // SAFETY: `len` bytes of `addr` are written.
        let ret = unsafe { call(42, [fd as usize, base as usize, len, 0, 0, 0]) };
        if ret != EINTR {
            return ret == 0;
        }
    }
}

/// `sendto(2)` without SIGPIPE (`MSG_NOSIGNAL`).
pub fn send(fd: i32, buf: &[u8]) -> isize {
    const MSG_NOSIGNAL: usize = 0x4000;
    // SAFETY: the buffer is valid for its length.
    unsafe {
        call(
            44,
            [
                fd as usize,
                buf.as_ptr() as usize,
                buf.len(),
                MSG_NOSIGNAL,
                0,
                0,
            ],
        )
    }
}

/// Monotonic nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`, as a system call).
pub fn now_ns() -> u64 {
    let mut ts: [i64; 2] = [0, 0];
    // SAFETY: a `struct timespec` of 16 bytes.
    unsafe { call(228, [1, ts.as_mut_ptr() as usize, 0, 0, 0, 0]) };
    (ts[0] as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts[1] as u64)
}

/// `exit_group(2)`.
pub fn exit(code: u8) -> ! {
    loop {
        // SAFETY: ends the process.
        unsafe { call(231, [usize::from(code), 0, 0, 0, 0, 0]) };
    }
}
