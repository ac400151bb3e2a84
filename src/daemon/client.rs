//! The client side: plain blocking std I/O, no runtime, since it sits on every hot path.
//! Connects, starting the daemon when none answers, and replaces a daemon of another version.
//!
//! Every wait is bounded by progress, not by the whole answer: connecting waits for room in
//! the daemon's queue, sending for the daemon to take the bytes, and reading for the next
//! frame, where a daemon still working sends `Working` each second. A daemon that is stopped
//! or hung therefore costs one silence timeout, after which the caller falls back as for an
//! absent daemon; later calls of this process do not try it again.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::fingerprints::WATCHED_MODE;
use super::frame::{self, FrameError};
use super::lifecycle::{self, DaemonPaths, daemon_disabled};
use super::protocol::{Request, Response};
use crate::ui::Ui;

/// How long connecting may wait for room in the daemon's listen queue.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the daemon may leave a request's bytes untaken, or stay silent before its next
/// frame (it sends `Working` each second while it works on the answer).
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an exiting daemon to release its lock.
const DYING_WAIT: Duration = Duration::from_secs(5);

/// How long a daemon that stayed silent is not asked again, by any client (a build's
/// compiles would each wait [`SILENCE_TIMEOUT`] otherwise).
pub const SILENT_MEMORY: Duration = Duration::from_secs(10);

/// Set once a daemon stayed silent past [`SILENCE_TIMEOUT`]: this process works without it.
static SILENT: AtomicBool = AtomicBool::new(false);

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon could be reached or started: callers fall back to in-process work.
    #[error("daemon unavailable: {0}")]
    Unavailable(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
    /// The daemon is another version of zccache.
    #[error("daemon is version {0}")]
    VersionMismatch(String),
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        ClientError::Unavailable(err.to_string())
    }
}

/// How a round trip failed, before it is told to the caller.
#[derive(Debug)]
enum Failure {
    /// The connection was refused or closed: a fresh daemon may answer.
    Gone(String),
    /// The daemon stayed silent: it is stopped or hung; do not wait for it again.
    Silent(String),
    /// Anything else (an error answer, another version).
    Other(ClientError),
}

impl From<Failure> for ClientError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Gone(why) | Failure::Silent(why) => ClientError::Unavailable(why),
            Failure::Other(err) => err,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure::Other(err)
    }
}

/// Why a daemon is not asked again.
const SILENT_EARLIER: &str = "the daemon did not answer a moment ago: stopped or hung?";

/// Says in words what a failed read or write of a frame means.
fn failure(err: FrameError, sending: bool) -> Failure {
    let FrameError::Io(io) = err else {
        return Failure::Gone(format!("the daemon's answer is unreadable ({err})"));
    };
    let secs = SILENCE_TIMEOUT.as_secs();
    match io.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut if sending => Failure::Silent(format!(
            "the daemon took no request in {secs} s: stopped or hung?"
        )),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Silent(format!(
            "no answer from the daemon in {secs} s: stopped or hung?"
        )),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => Failure::Gone(
            "the daemon closed the connection without answering (it exited or was killed)"
                .to_string(),
        ),
        _ => Failure::Gone(format!("the connection to the daemon failed ({io})")),
    }
}

/// One connection to the daemon.
pub struct Client {
    stream: UnixStream,
    paths: DaemonPaths,
}

/// The file that tells other clients the daemon of `paths` stayed silent, and which one (its
/// pid): `daemon.silent`.
fn silent_marker(paths: &DaemonPaths) -> std::path::PathBuf {
    paths.dir.join("daemon.silent")
}

/// Whether the serving daemon stayed silent for a client of this process, or of another
/// one within [`SILENT_MEMORY`].
fn known_silent(paths: &DaemonPaths) -> bool {
    if SILENT.load(Ordering::Relaxed) {
        return true;
    }
    let marker = silent_marker(paths);
    let recent = std::fs::symlink_metadata(&marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < SILENT_MEMORY);
    let same = || {
        let named = std::fs::read_to_string(&marker).ok();
        named.and_then(|n| n.trim().parse().ok()) == paths.read_pid()
    };
    recent && same()
}

impl Client {
    /// Connects to a running daemon; fails when none listens (or one stayed silent earlier
    /// in this process).
    pub fn connect(paths: &DaemonPaths) -> io::Result<Client> {
        if known_silent(paths) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, SILENT_EARLIER));
        }
        let stream = crate::os::connect_unix(&paths.socket, CONNECT_TIMEOUT)?;
        stream.set_write_timeout(Some(SILENCE_TIMEOUT))?;
        stream.set_read_timeout(Some(SILENCE_TIMEOUT))?;
        crate::trace_times::mark("connect");
        Ok(Client {
            stream,
            paths: paths.clone(),
        })
    }

    /// Connects, starting a daemon first when none answers.
    pub fn connect_or_start(paths: &DaemonPaths) -> Result<Client, ClientError> {
        Client::connect_or(paths, lifecycle::start_lock)
    }

    /// [`Client::connect_or_start`] for a start in the background, for later runs: none
    /// when another client holds the start lock (it is starting one, or stopped half-way,
    /// Ctrl-Z): that is never waited for.
    pub fn start_unless_starting(paths: &DaemonPaths) -> Result<Client, ClientError> {
        Client::connect_or(paths, |paths| {
            lifecycle::try_start_lock(paths)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "another client is starting the daemon",
                )
            })
        })
    }

    /// Connects, or, with the start lock `locked` gives, starts a daemon first.
    fn connect_or(
        paths: &DaemonPaths,
        locked: impl FnOnce(&DaemonPaths) -> io::Result<std::fs::File>,
    ) -> Result<Client, ClientError> {
        if let Ok(client) = Client::connect(paths) {
            return Ok(client);
        }
        if known_silent(paths) {
            return Err(ClientError::Unavailable(SILENT_EARLIER.to_string()));
        }
        let _starting = locked(paths)?;
        Client::start_holding_the_lock(paths)
    }

    /// Connects, starting a daemon unless one answers now, holding the start lock.
    fn start_holding_the_lock(paths: &DaemonPaths) -> Result<Client, ClientError> {
        if let Ok(client) = Client::connect(paths) {
            return Ok(client);
        }
        if lifecycle::spawn_daemon(paths)? == lifecycle::Started::Busy {
            // A daemon holds the lock but does not answer: it is exiting, or its socket
            // was removed and it serves no one (then it is told to go).
            lifecycle::end_orphan(paths);
            lifecycle::wait_lock_free(paths, DYING_WAIT)?;
            lifecycle::spawn_daemon(paths)?;
        }
        // Said once per daemon: it runs without the remote tier until it restarts.
        if let Some(Err(why)) = crate::compile_cache::user_config::remote_settings() {
            eprintln!(
                "zccache: warning: the remote cache tier is off: {}",
                crate::quote::controls(&why)
            );
        }
        Ok(Client::connect(paths)?)
    }

    /// The connection, for a stream of frames after the first answer (a `Watch`): reads
    /// wait as long as it takes from now on.
    pub fn into_stream(self) -> io::Result<UnixStream> {
        self.stream.set_read_timeout(None)?;
        Ok(self.stream)
    }

    /// Sends one request and reads its response (skipping the daemon's `Working` frames).
    /// An `Error` response becomes [`ClientError::Daemon`].
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.round_trip(request).map_err(ClientError::from)
    }

    fn round_trip(&mut self, request: &Request) -> Result<Response, Failure> {
        let sent = frame::write_frame(&mut self.stream, request);
        let silence = |f: &Failure| note_silence(f, &self.paths);
        sent.map_err(|e| failure(e, true)).inspect_err(silence)?;
        crate::trace_times::mark("send");
        loop {
            let reply = frame::read_frame(&mut self.stream)
                .map_err(|e| failure(e, false))
                .inspect_err(silence)?;
            crate::trace_times::mark("wait");
            if !reply.is_same_version() {
                return Err(ClientError::VersionMismatch(reply.version).into());
            }
            let decoded = reply.decode::<Response>();
            crate::trace_times::mark("decode");
            match decoded.map_err(|e| failure(e, false))? {
                Response::Working => {}
                Response::Error { message } => return Err(ClientError::Daemon(message).into()),
                response => return Ok(response),
            }
        }
    }
}

/// Remembers a silent daemon, so this process stops asking it, and other clients for a
/// while (a daemon that answers again is asked again after [`SILENT_MEMORY`]).
fn note_silence(failure: &Failure, paths: &DaemonPaths) {
    if let Failure::Silent(_) = failure {
        SILENT.store(true, Ordering::Relaxed);
        if let Some(pid) = paths.read_pid() {
            let marker = silent_marker(paths);
            let _ = lifecycle::open_state_file(&marker, false)
                .and_then(|mut f| io::Write::write_all(&mut f, pid.to_string().as_bytes()));
        }
    }
}

/// Sends `request` to the daemon of `paths`, starting one if needed and replacing one of
/// another version.
pub fn call(paths: &DaemonPaths, request: &Request) -> Result<Response, ClientError> {
    call_keeping(paths, request).map(|(response, _)| response)
}

/// As [`call`], also returning the connection, for a request that continues on it (a
/// `CompileHere` answer is reported back on the same connection).
pub fn call_keeping(
    paths: &DaemonPaths,
    request: &Request,
) -> Result<(Response, Client), ClientError> {
    let mut client = Client::connect_or_start(paths)?;
    let first = match client.round_trip(request) {
        Err(Failure::Gone(_)) => {
            // The daemon went away mid-request (killed, or exiting while we connected):
            // once more with a fresh one.
            client = Client::connect_or_start(paths)?;
            client.request(request)
        }
        other => other.map_err(ClientError::from),
    };
    match first {
        Err(ClientError::VersionMismatch(_)) => replace(paths, request),
        other => other.map(|response| (response, client)),
    }
}

/// Replaces a daemon of another version and repeats the request.
fn replace(paths: &DaemonPaths, request: &Request) -> Result<(Response, Client), ClientError> {
    let _starting = lifecycle::start_lock(paths)?;
    lifecycle::stop_by_pid(paths)?;
    if lifecycle::spawn_daemon(paths)? == lifecycle::Started::Busy {
        return Err(ClientError::Unavailable(
            "the old daemon did not give way".to_string(),
        ));
    }
    let mut client = Client::connect(paths)?;
    client.request(request).map(|response| (response, client))
}

/// Sends `request` only if a daemon is already running (`Ok(None)` when none is).
pub fn call_running(
    paths: &DaemonPaths,
    request: &Request,
) -> Result<Option<Response>, ClientError> {
    match Client::connect(paths) {
        Ok(mut client) => client.request(request).map(Some),
        Err(_) => Ok(None),
    }
}

/// Sends `request` to the daemon (started on demand); `None` when it is disabled or
/// unreachable (one warning), for the caller to work in-process.
pub fn call_or_in_process(
    paths: &DaemonPaths,
    request: &Request,
) -> anyhow::Result<Option<Response>> {
    if daemon_disabled() {
        return Ok(None);
    }
    match call(paths, request) {
        Ok(response) => Ok(Some(response)),
        Err(ClientError::Unavailable(why)) => {
            Ui::default().warn(format_args!(
                "daemon unavailable ({why}); working in-process"
            ));
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Says so when the daemon had to walk the tree because it lost trust in its watcher.
pub fn note_full_pass(ui: &Ui, mode: Option<&str>) {
    if let Some(mode) = mode.filter(|m| *m != WATCHED_MODE && !m.ends_with("(first check)")) {
        ui.say(format_args!("note: {mode}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(kind: io::ErrorKind, sending: bool) -> Failure {
        failure(FrameError::Io(kind.into()), sending)
    }

    #[test]
    fn failures_are_told_in_words() {
        let gone = told(io::ErrorKind::UnexpectedEof, false);
        assert!(
            matches!(&gone, Failure::Gone(why) if why == "the daemon closed the connection without answering (it exited or was killed)"),
            "{gone:?}"
        );
        let silent = told(io::ErrorKind::WouldBlock, false);
        assert!(
            matches!(&silent, Failure::Silent(why) if why == "no answer from the daemon in 5 s: stopped or hung?"),
            "{silent:?}"
        );
        let stuck = told(io::ErrorKind::TimedOut, true);
        assert!(
            matches!(&stuck, Failure::Silent(why) if why.starts_with("the daemon took no request")),
            "{stuck:?}"
        );
        let unavailable = ClientError::from(gone).to_string();
        assert!(!unavailable.contains("fill whole buffer"), "{unavailable}");
    }
}
