//! What the compile cache is asked and what it answers: one compile or link (`Request`, as
//! the daemon builds it from a wrapper's message) and its `Outcome` (what the wrapper
//! replays, and how it was served). Shared by the C, Rust and link paths and the daemon.

use std::os::fd::{BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::profile::Profile;

/// A compile to serve.
#[derive(Debug, Clone)]
pub struct Request {
    /// The compiler (resolved path).
    pub compiler: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs.
    pub cwd: PathBuf,
    /// Its exact environment.
    pub env: Vec<(String, String)>,
    /// Bytes for its stdin (a `-` source).
    pub stdin: Vec<u8>,
    /// The client's umask: the tool runs with it and delivered files get modes under it.
    pub umask: u32,
    /// The client can compile a miss itself (`CompileHere`) and report back.
    pub can_compile_here: bool,
    /// The client's stderr is a terminal (it shows coloured diagnostics).
    pub stderr_is_terminal: bool,
    /// The connection it came on, to tell whether its client still waits.
    pub peer: Peer,
}

/// The connection a request came on. A client that gave up waiting (the daemon was stopped
/// past its patience) has compiled by itself: nothing may be written over its outputs now.
/// `Peer::default()`: no connection, the client counts as waiting.
#[derive(Debug, Clone, Default)]
pub struct Peer(Option<Arc<Mutex<Option<RawFd>>>>);

impl Peer {
    /// The connection on `fd`; call [`Peer::close`] before `fd` is closed.
    pub fn new(fd: RawFd) -> Self {
        Peer(Some(Arc::new(Mutex::new(Some(fd)))))
    }

    /// The connection is closing: from now on the client counts as gone (and `fd` is no
    /// longer looked at, so it may be closed and reused).
    pub fn close(&self) {
        if let Some(conn) = &self.0 {
            *conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Whether the client hung up.
    pub fn hung_up(&self) -> bool {
        let Some(conn) = &self.0 else {
            return false;
        };
        let fd = conn.lock().unwrap_or_else(|p| p.into_inner());
        match *fd {
            // SAFETY: the fd stays open while it is recorded here (`close` comes first), and
            // the lock is held while it is polled.
            Some(fd) => crate::os::peer_hung_up(unsafe { BorrowedFd::borrow_raw(fd) }),
            None => true,
        }
    }
}

/// The variable a wrapper adds to a request's environment to carry its umask (the daemon
/// takes it out before anything sees the environment).
pub const UMASK_ENV: &str = "ZCCACHE_CLIENT_UMASK";
/// The variable a wrapper adds to a request's environment when its stderr is a terminal
/// (taken out like `UMASK_ENV`).
pub const TERMINAL_ENV: &str = "ZCCACHE_CLIENT_STDERR_TTY";
/// The umask assumed when a request carries none.
pub const DEFAULT_UMASK: u32 = 0o022;

impl Request {
    /// A request whose umask comes out of `env` (`UMASK_ENV`, octal), default 022, and
    /// whose terminal flag is `TERMINAL_ENV` there.
    pub fn new(
        compiler: PathBuf,
        args: Vec<String>,
        cwd: PathBuf,
        mut env: Vec<(String, String)>,
        stdin: Vec<u8>,
    ) -> Self {
        let mut umask = DEFAULT_UMASK;
        let mut stderr_is_terminal = false;
        env.retain(|(name, value)| match name.as_str() {
            UMASK_ENV => {
                umask = u32::from_str_radix(value, 8).map_or(DEFAULT_UMASK, |m| m & 0o777);
                false
            }
            TERMINAL_ENV => {
                stderr_is_terminal = value == "1";
                false
            }
            _ => true,
        });
        Request {
            compiler,
            args,
            cwd,
            env,
            stdin,
            umask,
            can_compile_here: false,
            stderr_is_terminal,
            peer: Peer::default(),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Delivered from the store.
    Hit,
    /// Compiled and stored (or not stored when it failed).
    Miss,
    /// Run uncached; the reason.
    Passthrough(&'static str),
    /// A link or archive delivered from the store.
    LinkHit,
    /// A link or archive run and stored (or not stored when it failed).
    LinkMiss,
    /// A miss the wrapper compiles itself and reports back under this token.
    Delegated(u64),
}

/// The result the wrapper replays.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The compiler's exit status.
    pub exit_code: i32,
    /// Its stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// Its stderr, byte for byte.
    pub stderr: Vec<u8>,
    /// How it was served.
    pub served: Served,
    /// Bytes of new blobs it added to the store.
    pub stored_bytes: u64,
    /// Why a miss missed (the key parts that differ from the last compile of its output;
    /// empty for hits, passthroughs and misses that do not say yet).
    pub why: Vec<String>,
    /// What a profiled session's journal adds (phase times are filled in by the daemon).
    pub profile: Profile,
}

impl Outcome {
    /// One outcome of several parts served as `served`: the first failing status (else 0),
    /// their stdout and stderr in order, the bytes they stored; `why` and `profile` as given.
    pub fn joined(parts: &[&Outcome], served: Served, why: Vec<String>, profile: Profile) -> Self {
        Outcome {
            exit_code: parts
                .iter()
                .map(|o| o.exit_code)
                .find(|c| *c != 0)
                .unwrap_or(0),
            stdout: parts.iter().flat_map(|o| o.stdout.clone()).collect(),
            stderr: parts.iter().flat_map(|o| o.stderr.clone()).collect(),
            served,
            stored_bytes: parts.iter().map(|o| o.stored_bytes).sum(),
            why,
            profile,
        }
    }

    /// How `served` ended with `(exit status, stdout, stderr)`: nothing stored yet, no miss
    /// reason, no profile.
    pub fn new(served: Served, (exit_code, stdout, stderr): (i32, Vec<u8>, Vec<u8>)) -> Self {
        Outcome {
            exit_code,
            stdout,
            stderr,
            served,
            stored_bytes: 0,
            why: Vec::new(),
            profile: Profile::default(),
        }
    }
}
