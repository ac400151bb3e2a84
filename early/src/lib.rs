//! zccache's compile-hit client before the C library starts.
//!
//! A cached compile is answered by the daemon in one round trip, and the client's own share
//! is small — except starting: on a virtual machine most of a process's start is the C
//! library probing the CPU (glibc's cache-size detection runs `cpuid` dozens of times, and
//! each one traps to the hypervisor: ~0.6 ms of a ~1 ms start where this was measured). So
//! the static `zccache` binary starts here, at its ELF entry point: a plain C-compiler call
//! (`zccache gcc -c ...`) is sent to a running daemon and answered with raw system calls.
//! Anything else — another command, an argument this client does not send, no daemon, an
//! answer other than a compile's result — returns, and the usual start (`_start`, the C
//! library, Rust's `main`) takes over and does the whole job as if this never ran.
//!
//! Nothing here may use what the C library sets up: no allocation (buffers come from one
//! mapped arena), no thread-locals, no errno, no `mem*`/`str*` calls (the crate is
//! `no_builtins`, copies are `rep movsb`, and `tests/early.rs` reads the built code to check),
//! and no panics (every read is checked).

#![no_std]
#![no_builtins]

pub mod bytes;
mod plan;
mod process;
pub mod rules;
mod silent;
mod sys;
mod trace;
pub mod wire;

use bytes::Arena;
use plan::Plan;
use process::Process;
use wire::{ReplyKinds, Said, Sink};

/// Scratch memory for paths and small frames (mapped; only the pages written are touched).
const ARENA: usize = 64 << 10;

/// The names of the environment variables the wrapper reads.
pub struct Names {
    /// The state directory (`ZCCACHE_DIR`).
    pub dir: &'static str,
    /// In-process mode: no daemon (`ZCCACHE_NO_DAEMON`).
    pub no_daemon: &'static str,
    /// The client's phase times on stderr (`ZCCACHE_TRACE_TIMES`).
    pub trace: &'static str,
    /// The session a compile belongs to (`ZCCACHE_SESSION_ID`).
    pub session: &'static str,
    /// Sent: the client's umask.
    pub umask: &'static str,
    /// Sent: stderr is a terminal.
    pub terminal: &'static str,
    /// `0` turns this client off (`ZCCACHE_EARLY`).
    pub early: &'static str,
}

/// What this client must agree on with the main crate: the frame and the messages'
/// variant indexes, and the variables' names.
pub struct Setup {
    /// The frame's protocol version.
    pub protocol: u32,
    /// The binary's version, in every frame.
    pub version: &'static str,
    /// The largest frame body accepted.
    pub max_frame: u32,
    /// `Request::Compile` (in a session).
    pub compile: u32,
    /// `Request::CompileEphemeral`.
    pub compile_ephemeral: u32,
    /// `Response::Working`.
    pub working: u32,
    /// `Response::CompileResult`.
    pub compile_result: u32,
    /// How long connecting may wait for room in the daemon's queue, in seconds.
    pub connect_secs: u32,
    /// How long the daemon may leave a request untaken or stay silent, in seconds.
    pub silence_secs: u32,
    /// How long a daemon that stayed silent is not asked again, in seconds.
    pub silent_secs: u32,
    /// The variables.
    pub names: Names,
}

/// Serves this process's call if it is one this client takes, and exits; returns when the
/// usual start should serve it.
///
/// # Safety
/// `sp` must be the stack pointer the kernel started the process with, and the C library
/// must not have started (nothing here expects it to have).
pub unsafe fn serve(sp: *const usize, setup: &Setup) {
    // SAFETY: the caller's promise.
    let process = unsafe { Process::from_stack(sp) };
    let Some(shape) = plan::wanted(&process, setup) else {
        return;
    };
    let mut times = trace::Times::start(process.flag(setup.names.trace.as_bytes()));
    let Some(mut arena) = Arena::map(ARENA) else {
        return;
    };
    let Some(plan) = plan::plan(&process, setup, shape, &mut arena) else {
        return;
    };
    times.mark();
    let Some(fd) = connect(&plan, setup) else {
        return;
    };
    times.mark();
    let sent = send_request(fd, &process, &plan, setup);
    times.mark();
    let ended = match sent {
        Ok(()) => answer(fd, setup, &mut arena, &mut times),
        Err(errno) => errno,
    };
    sys::close(fd);
    if ended == sys::EAGAIN {
        // The daemon took no request, or sent nothing, for the whole timeout: stopped or
        // hung. Marked as the wrapper marks it, so the usual start (and every client for a
        // while) does not wait for it a second time.
        let Some(mut path) = arena.buf(4096) else {
            return;
        };
        silent::note(plan.dir.as_bytes(), &mut path);
    }
}

/// Connects to the daemon with the wrapper's timeouts: one for room in its queue, then one
/// of silence at most per read or write.
fn connect(plan: &Plan, setup: &Setup) -> Option<i32> {
    let fd = sys::unix_socket()?;
    let (connect, silence) = (i64::from(setup.connect_secs), i64::from(setup.silence_secs));
    let ready = sys::set_timeout(fd, false, connect)
        && sys::connect_unix(fd, plan.socket.as_bytes())
        && sys::set_timeout(fd, false, silence)
        && sys::set_timeout(fd, true, silence);
    if !ready {
        sys::close(fd);
        return None;
    }
    Some(fd)
}

/// Encodes the request (`Compile` in a session, else `CompileEphemeral`) as the wrapper
/// does, in one mapped buffer, and sends it; the negative errno of a failed send (0 for a
/// request that cannot be sent).
fn send_request(fd: i32, p: &Process, plan: &Plan, setup: &Setup) -> Result<(), isize> {
    let payload_len = payload_len(p, plan, setup);
    let mut header = Sink::counting();
    wire::frame_header(&mut header, payload_len, setup.protocol, setup.version);
    let total = header.len() + payload_len;
    if total - 4 > setup.max_frame as usize {
        return Err(0);
    }
    let Some(at) = sys::map(total) else {
        return Err(0);
    };
    // SAFETY: a fresh mapping of `total` bytes, unmapped below and used by nothing else.
    let out = unsafe { core::slice::from_raw_parts_mut(at, total) };
    let mut sink = Sink::into(out);
    frame(&mut sink, p, plan, setup, payload_len);
    let whole = sink.len() == total;
    // SAFETY: the mapping made above.
    let bytes = unsafe { core::slice::from_raw_parts(at, total) };
    let sent = if whole { send_all(fd, bytes) } else { Err(0) };
    // SAFETY: nothing uses the mapping after this.
    unsafe { sys::unmap(at, total) };
    sent
}

/// The frame this client sends for the process whose stack is at `sp`, given the working
/// directory, the compiler and the session it would have found: written into `out` as far
/// as it fits; its whole length. (The main crate's tests hold it against its own encoder.)
///
/// # Safety
/// `sp` must point at an `argc`, `argv` and `envp` laid out as the kernel lays them out.
pub unsafe fn request_frame(
    sp: *const usize,
    (cwd, compiler, session): (&[u8], &[u8], Option<&'static [u8]>),
    setup: &Setup,
    out: &mut [u8],
) -> usize {
    // SAFETY: the caller's promise.
    let p = unsafe { Process::from_stack(sp) };
    let Some(mut arena) = Arena::map(ARENA) else {
        return 0;
    };
    let Some(mut plan) = Plan::new(&mut arena) else {
        return 0;
    };
    plan.session = session;
    if let Some(shape) = plan::shape(&p) {
        plan.args_from = shape.args_from;
    }
    plan.cwd.push(cwd);
    plan.compiler.push(compiler);
    plan.client = plan::Client::now();
    let mut sink = Sink::into(out);
    frame(&mut sink, &p, &plan, setup, payload_len(&p, &plan, setup));
    sink.len()
}

/// The payload's length in bytes.
fn payload_len(p: &Process, plan: &Plan, setup: &Setup) -> usize {
    let mut count = Sink::counting();
    payload(&mut count, p, plan, setup);
    count.len()
}

/// The whole frame: header, then the payload (of `payload_len` bytes).
fn frame(sink: &mut Sink<'_>, p: &Process, plan: &Plan, setup: &Setup, payload_len: usize) {
    wire::frame_header(sink, payload_len, setup.protocol, setup.version);
    payload(sink, p, plan, setup);
}

/// The request's bincode payload.
fn payload(sink: &mut Sink<'_>, p: &Process, plan: &Plan, setup: &Setup) {
    let cwd = plan.cwd.as_bytes();
    match plan.session {
        Some(session) => {
            sink.varint(u64::from(setup.compile));
            sink.string(session);
            arguments(sink, p, plan.args_from);
            sink.string(cwd);
            sink.string(plan.compiler.as_bytes());
        }
        None => {
            sink.varint(u64::from(setup.compile_ephemeral));
            sink.varint(u64::from(sys::getpid()));
            sink.string(cwd);
            sink.string(plan.compiler.as_bytes());
            arguments(sink, p, plan.args_from);
            sink.string(cwd);
        }
    }
    // `env: Some(pairs)`, then an empty stdin.
    sink.bytes(&[1]);
    let mut pairs = 0;
    plan::each_env_pair(p, plan, setup, |_, _| pairs += 1);
    sink.varint(pairs);
    plan::each_env_pair(p, plan, setup, |key, value| {
        sink.string(key);
        sink.string(value);
    });
    sink.varint(0);
}

/// The compiler's arguments (`argv` from `from` on), as a sequence of strings.
fn arguments(sink: &mut Sink<'_>, p: &Process, from: usize) {
    sink.varint(p.argc().saturating_sub(from) as u64);
    let mut i = from;
    while let Some(arg) = p.arg(i) {
        sink.string(arg);
        i += 1;
    }
}

/// Writes all of `buf` to the socket; the negative errno of a failure.
fn send_all(fd: i32, mut buf: &[u8]) -> Result<(), isize> {
    while !buf.is_empty() {
        match sys::send(fd, buf) {
            n if n > 0 => buf = buf.get(n as usize..).unwrap_or(&[]),
            sys::EINTR => {}
            errno => return Err(errno),
        }
    }
    Ok(())
}

/// Reads frames until the compile's answer, then replays it and exits; returns on anything
/// else (the usual start asks again): the negative errno of a failed read, else 0.
fn answer(fd: i32, setup: &Setup, arena: &mut Arena, times: &mut trace::Times) -> isize {
    let kinds = ReplyKinds {
        protocol: setup.protocol,
        version: setup.version,
        working: setup.working,
        result: setup.compile_result,
    };
    let Some(mut small) = arena.buf(4097) else {
        return 0;
    };
    loop {
        let mut prefix = [0u8; 4];
        if let Err(errno) = read_exact(fd, &mut prefix) {
            return errno;
        }
        let len = u32::from_le_bytes(prefix);
        if !(5..=setup.max_frame).contains(&len) {
            return 0;
        }
        let len = len as usize;
        let (at, mapped) = if len < 4096 {
            (small.spare().as_mut_ptr(), false)
        } else {
            let Some(at) = sys::map(len) else { return 0 };
            (at, true)
        };
        // SAFETY: `len` bytes of arena memory or of a fresh mapping, this body's alone.
        let body = unsafe { core::slice::from_raw_parts_mut(at, len) };
        let (said, errno) = match read_exact(fd, body) {
            Ok(()) => (wire::read_reply(body, &kinds), 0),
            Err(errno) => (None, errno),
        };
        match said {
            Some(Said::Working) => {}
            Some(Said::Answer(a)) => {
                times.mark();
                sys::default_sigpipe();
                write_all(1, a.stdout);
                write_all(2, a.stderr);
                times.mark();
                times.report(arena);
                sys::exit(u8::try_from(a.exit_code).unwrap_or(1));
            }
            None => {
                if mapped {
                    // SAFETY: the mapping made above; nothing refers to it any more.
                    unsafe { sys::unmap(at, len) };
                }
                return errno;
            }
        }
        if mapped {
            // SAFETY: as above.
            unsafe { sys::unmap(at, len) };
        }
    }
}

/// Fills `buf` from `fd`; the negative errno of an error or a timeout, 0 at the end of the
/// stream.
fn read_exact(fd: i32, buf: &mut [u8]) -> Result<(), isize> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            return Err(0);
        };
        match sys::read(fd, rest) {
            n if n > 0 => done += n as usize,
            sys::EINTR => {}
            errno => return Err(errno),
        }
    }
    Ok(())
}

/// Writes all of `buf` to `fd`, as far as it goes (the wrapper ignores a closed stream too).
fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        match sys::write(fd, buf) {
            n if n > 0 => buf = buf.get(n as usize..).unwrap_or(&[]),
            sys::EINTR => {}
            _ => return,
        }
    }
}
