//! Running a command for zccache (a task's, or a compile the wrapper runs itself): stdio
//! inherited untouched, or teed into a console (and captured); SIGINT/SIGTERM/SIGHUP
//! forwarded (to the command's whole process group when it has its own); the status mapped
//! the way a shell would. Once zccache was interrupted, no command starts.
//!
//! A command's run ends when the command exits: a background process it leaves behind
//! holding the output pipe does not keep the task open (what the command wrote before it
//! exited is read, then the pipe is let go).

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::console::{Console, Stream};
use crate::os::{self, Forwarding, exit_code};

/// Exit status when the command does not exist.
pub const NOT_FOUND: i32 = 127;
/// Exit status when the command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// How long a reader waits for output before looking again whether the command exited.
const LOOK_AGAIN_MS: i32 = 50;

/// How the command ended.
#[derive(Debug)]
pub struct Finished {
    /// The shell-style status: the exit code, or 128 + N when killed by signal N.
    pub code: i32,
    /// The streams, when captured.
    pub captured: Option<(Vec<u8>, Vec<u8>)>,
    /// Why it could not be started, if it could not.
    pub spawn_error: Option<String>,
    /// The signal that interrupted zccache by the time the command ended (it was passed on).
    pub forwarded_signal: Option<i32>,
}

/// The process group a command runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// zccache's own: the terminal's foreground when zccache is, so the command can read the
    /// terminal and the shell's job control (Ctrl-C, Ctrl-Z, `fg`) reaches it directly.
    Shared,
    /// A group of its own, signalled as a whole: the processes it starts stop with it.
    Own,
}

impl Group {
    /// A task's: its own, except for a command that has the terminal (its console is
    /// direct) while zccache has one: in a background group, reading the terminal would stop
    /// it (SIGTTIN).
    pub fn for_task(console: &Console) -> Self {
        match console.is_direct() && os::has_terminal() {
            true => Group::Shared,
            false => Group::Own,
        }
    }
}

/// Runs `argv` in `group` to completion, its output going to `console`. With `capture`,
/// stdout and stderr are also kept (separately, each in order). A command of a task that
/// shares the terminal with others writes through pipes and reads no stdin. `None`: zccache
/// was interrupted, so the command was not started.
pub fn run(
    argv: &[OsString],
    cwd: &Path,
    capture: bool,
    console: &Console,
    group: Group,
) -> Option<Finished> {
    Some(start(argv, cwd, capture, console, group)?.finish())
}

/// A command as [`start`] left it: running, or not started.
pub enum Started<'c> {
    /// Running: its end is waited for by [`Started::finish`].
    Running(Running<'c>),
    /// It could not be started.
    Failed(Finished),
}

/// A running command, its signals forwarded.
pub struct Running<'c> {
    child: Child,
    forwarding: Forwarding,
    piped: bool,
    capture: bool,
    console: &'c Console,
}

/// Starts `argv` as [`run`] does, leaving the caller free until it calls
/// [`Started::finish`] (its output, when piped, waits in the pipe meanwhile). `None`: zccache
/// was interrupted, so the command was not started.
pub fn start<'c>(
    argv: &[OsString],
    cwd: &Path,
    capture: bool,
    console: &'c Console,
    group: Group,
) -> Option<Started<'c>> {
    os::catch_signals();
    if os::interrupted().is_some() {
        return None;
    }
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    if group == Group::Own {
        command.process_group(0);
    }
    let piped = capture || !console.is_direct();
    if piped {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if !console.is_direct() {
        command.stdin(Stdio::null());
    }
    let child = match spawn_in(&mut command, cwd) {
        Ok(child) => child,
        Err(e) => return Some(Started::Failed(not_started(&argv[0], &e))),
    };
    let forwarding = Forwarding::register(child.id(), group == Group::Own);
    Some(Started::Running(Running {
        child,
        forwarding,
        piped,
        capture,
        console,
    }))
}

impl Started<'_> {
    /// Waits for the command to end, passing its output on (and keeping it, when captured).
    pub fn finish(self) -> Finished {
        let Running {
            mut child,
            forwarding,
            piped,
            capture,
            console,
        } = match self {
            Started::Running(running) => running,
            Started::Failed(finished) => return finished,
        };
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let exited = &AtomicBool::new(false);
        let (status, captured) = thread::scope(|scope| {
            let sink = |stream| Sink::new(console, stream, capture);
            let out = out.map(|s| scope.spawn(move || tee(s, sink(Stream::Out), exited)));
            let err = err.map(|s| scope.spawn(move || tee(s, sink(Stream::Err), exited)));
            // Unregistered before it is reaped: its pid is never signalled after it is free.
            let _ = forwarding.wait_exited();
            let status = child.wait();
            exited.store(true, Ordering::SeqCst);
            let captured = piped.then(|| (joined(out), joined(err)));
            (status, captured.filter(|_| capture))
        });
        Finished {
            code: status.map_or(1, exit_code),
            captured,
            spawn_error: None,
            forwarded_signal: os::interrupted(),
        }
    }
}

/// Starts `command` in `cwd`. The directory is changed only when it is not this process's
/// already: a change makes std start the command by `fork` (this binary is linked
/// statically, where std finds no `posix_spawn_file_actions_addchdir_np`), which copies
/// the page tables of a process holding a walked set (0.3 ms more than `posix_spawn` with
/// a set of 2,000 files). `posix_spawn` does not run a file without a `#!` line through
/// `/bin/sh` as a shell (and `execvp`) does: such a file is started again by `fork`.
fn spawn_in(command: &mut Command, cwd: &Path) -> io::Result<Child> {
    if !std::env::current_dir().is_ok_and(|here| here == cwd) {
        return command.current_dir(cwd).spawn();
    }
    match command.spawn() {
        Err(err) if err.raw_os_error() == Some(libc::ENOEXEC) => command.current_dir(cwd).spawn(),
        spawned => spawned,
    }
}

fn not_started(program: &OsString, err: &io::Error) -> Finished {
    let (code, what) = match err.kind() {
        io::ErrorKind::NotFound => (NOT_FOUND, "command not found"),
        _ => (NOT_EXECUTABLE, "cannot execute"),
    };
    Finished {
        code,
        captured: None,
        spawn_error: Some(format!("{what}: {} ({err})", program.to_string_lossy())),
        forwarded_signal: None,
    }
}

/// Where a stream goes: the console, and a copy when captured.
struct Sink<'a> {
    console: &'a Console,
    stream: Stream,
    kept: Option<Vec<u8>>,
}

impl<'a> Sink<'a> {
    fn new(console: &'a Console, stream: Stream, keep: bool) -> Self {
        Sink {
            console,
            stream,
            kept: keep.then(Vec::new),
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(bytes);
        }
        self.console.write(self.stream, bytes);
    }
}

/// Passes `source` on to `sink` as it comes until it ends or the command has `exited`; then
/// only what the pipe holds at that moment (a background process the command started may
/// hold the pipe open for ever). Returns what was kept.
fn tee(mut source: impl Read + AsRawFd, mut sink: Sink<'_>, exited: &AtomicBool) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let fd = source.as_raw_fd();
    while !exited.load(Ordering::SeqCst) {
        if os::readable_within(fd, LOOK_AGAIN_MS).is_ok_and(|ready| !ready) {
            continue;
        }
        match source.read(&mut buf) {
            Ok(0) => return sink.kept.unwrap_or_default(),
            Ok(n) => sink.take(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return sink.kept.unwrap_or_default(),
        }
    }
    let mut left = os::bytes_waiting(fd);
    while left > 0 {
        match source.read(&mut buf[..left.min(64 * 1024)]) {
            Ok(0) => break,
            Ok(n) => {
                sink.take(&buf[..n]);
                left = left.saturating_sub(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    sink.kept.unwrap_or_default()
}

fn joined(handle: Option<thread::ScopedJoinHandle<'_, Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}
