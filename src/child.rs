//! Running a command for zccache (a task's, or a compile the wrapper runs itself): stdio
//! inherited untouched, or teed into a console (and captured); SIGINT/SIGTERM forwarded; the
//! status mapped the way a shell would.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use crate::console::{Console, Stream};
use crate::os::{SignalForwarding, exit_code};

/// Exit status when the command does not exist.
pub const NOT_FOUND: i32 = 127;
/// Exit status when the command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;

/// How the command ended.
#[derive(Debug)]
pub struct Finished {
    /// The shell-style status: the exit code, or 128 + N when killed by signal N.
    pub code: i32,
    /// The streams, when captured.
    pub captured: Option<(Vec<u8>, Vec<u8>)>,
    /// Why it could not be started, if it could not.
    pub spawn_error: Option<String>,
    /// A signal zccache received and passed on while it ran.
    pub forwarded_signal: Option<i32>,
}

/// Runs `argv` to completion, its output going to `console`. With `capture`, stdout and
/// stderr are also kept (separately, each in order). A command of a task that shares the
/// terminal with others writes through pipes and reads no stdin.
pub fn run(argv: &[OsString], cwd: &Path, capture: bool, console: &Console) -> Finished {
    let forwarding = SignalForwarding::install();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(cwd);
    let piped = capture || !console.is_direct();
    if piped {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if !console.is_direct() {
        command.stdin(Stdio::null());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return not_started(&argv[0], &e),
    };
    forwarding.set_child(child.id());
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (status, captured) = thread::scope(|scope| {
        let out = out.map(|s| scope.spawn(move || tee(s, Stream::Out, console, capture)));
        let err = err.map(|s| scope.spawn(move || tee(s, Stream::Err, console, capture)));
        let status = child.wait();
        let captured = piped.then(|| (joined(out), joined(err)));
        (status, captured.filter(|_| capture))
    });
    let code = match status {
        Ok(status) => exit_code(status),
        Err(_) => 1,
    };
    Finished {
        code,
        captured,
        spawn_error: None,
        forwarded_signal: forwarding.received(),
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

/// Passes `source` on to `console` as it comes; returns what it read when `keep`.
fn tee(mut source: impl Read, stream: Stream, console: &Console, keep: bool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if keep {
                    kept.extend_from_slice(&buf[..n]);
                }
                console.write(stream, &buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    kept
}

fn joined(handle: Option<thread::ScopedJoinHandle<'_, Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}
