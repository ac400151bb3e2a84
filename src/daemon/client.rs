//! The client side: plain blocking std I/O, no runtime, since it sits on every hot path.
//! Connects, starting the daemon when none answers, and replaces a daemon of another version.

use std::io;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::frame::{self, FrameError};
use super::lifecycle::{self, DaemonPaths};
use super::protocol::{Request, Response};

/// The longest a request may take (a first full walk of a huge tree included).
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to wait for an exiting daemon to release its lock.
const DYING_WAIT: Duration = Duration::from_secs(5);

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

impl From<FrameError> for ClientError {
    fn from(err: FrameError) -> Self {
        ClientError::Unavailable(err.to_string())
    }
}

/// One connection to the daemon.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to a running daemon; fails when none listens.
    pub fn connect(paths: &DaemonPaths) -> io::Result<Client> {
        let stream = UnixStream::connect(&paths.socket)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Client { stream })
    }

    /// Connects, starting a daemon first when none answers.
    pub fn connect_or_start(paths: &DaemonPaths) -> Result<Client, ClientError> {
        if let Ok(client) = Client::connect(paths) {
            return Ok(client);
        }
        let _starting = lifecycle::start_lock(paths)?;
        if let Ok(client) = Client::connect(paths) {
            return Ok(client);
        }
        if lifecycle::spawn_daemon(paths)? == lifecycle::Started::Busy {
            // A daemon still holds the lock but does not answer: it is exiting.
            lifecycle::wait_lock_free(paths, DYING_WAIT)?;
            lifecycle::spawn_daemon(paths)?;
        }
        Ok(Client::connect(paths)?)
    }

    /// Sends one request and reads its response. An `Error` response becomes
    /// [`ClientError::Daemon`].
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        frame::write_frame(&mut self.stream, request)?;
        let reply = frame::read_frame(&mut self.stream)?;
        if !reply.is_same_version() {
            return Err(ClientError::VersionMismatch(reply.version));
        }
        match reply.decode::<Response>()? {
            Response::Error { message } => Err(ClientError::Daemon(message)),

            response => Ok(response),
        }
    }
}

/// Sends `request` to the daemon of `paths`, starting one if needed and replacing one of
/// another version.
pub fn call(paths: &DaemonPaths, request: &Request) -> Result<Response, ClientError> {
    let mut client = Client::connect_or_start(paths)?;
    let first = client.request(request);
    if let Err(ClientError::Unavailable(_)) = first {
        // The daemon went away mid-request (killed, or exiting while we connected): once more
        // with a fresh one.
        return finish(
            paths,
            Client::connect_or_start(paths)?.request(request),
            request,
        );
    }
    finish(paths, first, request)
}

/// Replaces a daemon of another version and repeats the request.
fn finish(
    paths: &DaemonPaths,
    result: Result<Response, ClientError>,
    request: &Request,
) -> Result<Response, ClientError> {
    match result {
        Err(ClientError::VersionMismatch(_)) => {
            let _starting = lifecycle::start_lock(paths)?;
            lifecycle::stop_by_pid(paths)?;
            if lifecycle::spawn_daemon(paths)? == lifecycle::Started::Busy {
                return Err(ClientError::Unavailable(
                    "the old daemon did not give way".to_string(),
                ));
            }
            Client::connect(paths)?.request(request)
        }
        other => other,
    }
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
