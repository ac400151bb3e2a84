//! Running the task's command: stdio inherited untouched, or teed and captured for
//! `--replay`; SIGINT/SIGTERM forwarded; the status mapped the way a shell would.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

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

/// Runs `argv` to completion. With `capture`, stdout and stderr are passed through live and
/// also kept (separately, each in order).
pub fn run(argv: &[OsString], cwd: &Path, capture: bool) -> Finished {
    let forwarding = SignalForwarding::install();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(cwd);
    if capture {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return not_started(&argv[0], &e),
    };
    forwarding.set_child(child.id());
    let tees = capture.then(|| {
        let out = child.stdout.take().map(|s| tee(s, io::stdout()));
        let err = child.stderr.take().map(|s| tee(s, io::stderr()));
        (out, err)
    });
    let status = child.wait();
    let captured = tees.map(|(out, err)| (joined(out), joined(err)));
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

fn tee(
    mut source: impl Read + Send + 'static,
    mut sink: impl Write + Send + 'static,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    // A closed terminal must not stop the capture.
                    let _ = sink.write_all(&buf[..n]).and_then(|()| sink.flush());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        kept
    })
}

fn joined(handle: Option<thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}
