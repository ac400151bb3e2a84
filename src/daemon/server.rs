//! The daemon process: take the lock, bind the socket, report ready, then serve connections
//! until `Shutdown`, SIGTERM/SIGINT, or the idle timeout. Each connection is its own task; a
//! bad frame gets an `Error` reply and closes that connection only.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use super::background::Background;
use super::fingerprints::Fingerprints;
use super::frame::{self, Frame, FrameError};
use super::handler;
use super::lifecycle::{self, BUSY, DaemonPaths, READY};
use super::protocol::{Request, Response};
use super::sessions::Sessions;
use super::shared::Shared;
use crate::compile_cache::compile::CompileCache;
use crate::compile_cache::invoke::ScratchDir;
use crate::compile_cache::limits;
use crate::compile_cache::request::Peer;
use crate::compile_cache::store::Store;

/// Default idle timeout, seconds.
const DEFAULT_IDLE_SECS: u64 = 3600;
/// How long a new connection may take to send its first request (clients send it at once).
const FIRST_REQUEST: Duration = Duration::from_secs(5);
/// How long a connected client may stay silent between requests, or take to read a reply.
const CLIENT_SILENCE: Duration = Duration::from_secs(30);
/// How long queued uploads to the remote tier may take at shutdown.
pub const UPLOAD_DRAIN: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once at most (and never more than half the fd limit, so the
/// daemon keeps descriptors for its own files and compilers); more wait to be accepted.
const MAX_CONNECTIONS: usize = 1024;
/// Pause after a failed accept (the fd limit reached): no busy loop.
const ACCEPT_BACK_OFF: Duration = Duration::from_millis(100);
/// How often the daemon checks that its socket is still there (removed, no client could
/// reach it: it exits rather than hold the lock for nobody).
const SOCKET_CHECK: Duration = Duration::from_secs(1);
/// How often a request still being worked on tells its client so (`Response::Working`).
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How long a wrapper compiling a Rust miss itself may take to report back on its
/// connection.
const DELEGATED_SILENCE: Duration = Duration::from_secs(3600);

/// Runs the daemon for `paths` until it stops. Exits quietly if another daemon serves it.
pub fn serve(paths: DaemonPaths) -> anyhow::Result<()> {
    paths.ensure_dir().context("create the state directory")?;
    let lock = lifecycle::open_lock_file(&paths.lock).context("open the daemon lock")?;
    if lock.try_lock().is_err() {
        lifecycle::report_ready(BUSY);
        return Ok(());
    }
    lifecycle::open_state_file(&paths.pid, false)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes())
        })
        .context("write the pid file")?;
    let _ = std::fs::remove_file(&paths.socket);
    let listener = std::os::unix::net::UnixListener::bind(&paths.socket)
        .with_context(|| format!("bind {}", paths.socket.display()))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let socket = Socket::bound(&paths.socket)?;
    lifecycle::report_ready(READY);
    init_logging();
    tracing::info!(
        version = frame::BINARY_VERSION,
        pid = std::process::id(),
        dir = %paths.dir.display(),
        "daemon serving"
    );
    let idle = idle_timeout();
    let (store, remote_off) = with_remote(Store::new(&paths.dir).with_memo());
    let scratch = ScratchDir::open(&paths.dir).context("prepare the scratch directory")?;
    // Tools the daemon starts without a directory of their own (a compiler's `--version`
    // probe) run here: whatever they write lands in the private scratch, swept at start.
    std::env::set_current_dir(paths.dir.join("scratch")).context("enter the scratch directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared {
        paths: paths.clone(),
        started: Instant::now(),
        requests: AtomicU64::new(0),
        shutdown: Notify::new(),
        fingerprints: Fingerprints::default(),
        store: store.clone(),
        max_size: limits::max_size(),
        remote_off,
        store_bytes: AtomicU64::new(u64::MAX),
        compiles: CompileCache::new(store, scratch),
        compile_counts: Default::default(),
        sessions: Sessions::new(&paths.dir),
        background: Background::default(),
        last_activity: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        drained: Notify::new(),
        watches: Default::default(),
    });
    let socket = Arc::new(socket);
    // A task on the runtime, not the future `block_on` polls on this thread: a connection it
    // spawns then starts on the worker that accepted it, without waking another thread.
    let serving = runtime.spawn(accept_loop(
        (listener, Arc::clone(&socket)),
        Arc::clone(&shared),
        idle,
    ));
    let result = runtime
        .block_on(serving)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the accept loop failed: {e}")));
    socket.remove();
    shared.compiles.settle();
    if paths.read_pid() == i32::try_from(std::process::id()).ok() {
        let _ = std::fs::remove_file(&paths.pid);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(remote) = shared.store.remote() {
        remote.drain(UPLOAD_DRAIN);
    }
    // Released last: a client waiting on the lock may start a successor right away.
    drop(lock);
    result
}

/// `store` with the remote tier the user configured, if any; a bad setting is logged and
/// returned (for `status`), and the store stays local.
fn with_remote(store: Store) -> (Store, Option<String>) {
    match crate::compile_cache::user_config::remote() {
        Some(Ok(remote)) => {
            tracing::info!(
                readonly = remote.readonly(),
                signed = remote.signs(),
                "remote cache tier on"
            );
            (store.with_remote(remote), None)
        }
        Some(Err(message)) => {
            tracing::warn!("{message}; the cache stays local");
            (store, Some(message))
        }
        None => (store, None),
    }
}

/// Logs to stderr (the daemon's log file), filtered by `ZCCACHE_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZCCACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn idle_timeout() -> Duration {
    let secs = std::env::var(lifecycle::IDLE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_IDLE_SECS);
    Duration::from_secs(secs.max(1))
}

async fn accept_loop(
    (listener, socket): (std::os::unix::net::UnixListener, Arc<Socket>),
    shared: Arc<Shared>,
    idle: Duration,
) -> anyhow::Result<()> {
    let listener = UnixListener::from_std(listener)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(connection_cap()));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut socket_check = tokio::time::interval(SOCKET_CHECK);
    loop {
        let last = Duration::from_millis(shared.last_activity.load(Ordering::SeqCst));
        let idle_deadline = shared.started + last + idle;
        tokio::select! {
            accepted = accept(&listener, &slots) => {
                if let Some((stream, slot)) = accepted {
                    shared.touch();
                    shared.in_flight.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(connection(stream, Arc::clone(&shared), slot));
                }
            }
            _ = socket_check.tick() => {
                if !socket.still_ours() {
                    tracing::warn!(
                        "{} was removed or replaced: no client can reach this daemon; exiting",
                        socket.path.display()
                    );
                    break;
                }
            }
            () = shared.shutdown.notified() => break,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            () = tokio::time::sleep_until(idle_deadline.into()) => {
                let quiet = shared.in_flight.load(Ordering::SeqCst) == 0;
                let last_now = Duration::from_millis(shared.last_activity.load(Ordering::SeqCst));
                if quiet && last_now == last {
                    tracing::info!("idle for {} s, exiting", idle.as_secs());
                    break;
                }
            }
        }
    }
    // No new client may queue up behind a daemon that is going: one finds no socket and
    // starts a successor as soon as the lock is free.
    drop(listener);
    socket.remove();
    shared.watches.stop_all();
    drain(&shared).await;
    tracing::info!(
        requests = shared.requests.load(Ordering::SeqCst),
        "daemon stopped"
    );
    Ok(())
}

/// The socket this daemon bound, known by its inode: a path removed or replaced by
/// another file no longer reaches this daemon.
struct Socket {
    path: std::path::PathBuf,
    id: (u64, u64),
}

impl Socket {
    fn bound(path: &std::path::Path) -> anyhow::Result<Socket> {
        let meta =
            std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
        Ok(Socket {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        })
    }

    fn still_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Removes the socket, unless the path names another file by now.
    fn remove(&self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Waits (bounded) for in-flight connections to finish.
async fn drain(shared: &Shared) {
    let wait = async {
        while shared.in_flight.load(Ordering::SeqCst) > 0 {
            shared.drained.notified().await;
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, wait).await;
}

/// The next connection, once a slot is free; `None` after a failed accept (logged, then a
/// pause: at the fd limit accept fails at once, and retrying at once would spin).
async fn accept(
    listener: &UnixListener,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Option<(UnixStream, tokio::sync::OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _)) => Some((stream, slot)),
        Err(err) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!("cannot accept a connection: {err}; backing off"));
            tokio::time::sleep(ACCEPT_BACK_OFF).await;
            None
        }
    }
}

/// `MAX_CONNECTIONS`, or half the soft fd limit when that is lower.
fn connection_cap() -> usize {
    match crate::os::fd_limit() {
        Some(limit) => MAX_CONNECTIONS
            .min(usize::try_from(limit / 2).unwrap_or(usize::MAX))
            .max(4),
        None => MAX_CONNECTIONS,
    }
}

async fn connection(
    mut stream: UnixStream,
    shared: Arc<Shared>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    serve_connection(&mut stream, &shared).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    shared.drained.notify_one();
}

async fn serve_connection(stream: &mut UnixStream, shared: &Arc<Shared>) {
    let peer = PeerGuard(Peer::new(stream.as_raw_fd()));
    let mut silence = FIRST_REQUEST;
    // A Rust miss handed to this connection's wrapper, until it reports back.
    let mut delegated = None;
    loop {
        let Some(request) = read_request(stream, silence).await else {
            break;
        };
        if peer.0.hung_up() {
            // Its client gave up waiting (this daemon was stopped?) and went on without us.
            tracing::info!("a client hung up before its request was read; dropped");
            break;
        }
        shared.touch();
        if let Request::Watch {
            client_pid,
            sets,
            settle_ms,
        } = request
        {
            shared.requests.fetch_add(1, Ordering::SeqCst);
            let settle = Duration::from_millis(u64::from(settle_ms));
            super::watch_stream::serve(stream, shared, (client_pid, settle), sets).await;
            break;
        }
        let stop = matches!(request, Request::Shutdown);
        if let Request::CompileDone { token, .. } = &request
            && delegated == Some(*token)
        {
            delegated = None;
        }
        let response = answer(stream, shared, request, &peer.0).await;
        shared.requests.fetch_add(1, Ordering::SeqCst);
        if let Response::CompileHere { token } = response {
            delegated = Some(token);
        }
        let failed = matches!(response, Response::Error { .. });
        let written = tokio::time::timeout(CLIENT_SILENCE, write_response(stream, &response)).await;
        if !matches!(written, Ok(Ok(()))) || failed {
            break;
        }
        if stop {
            shared.shutdown.notify_one();
            break;
        }
        silence = match delegated {
            Some(_) => DELEGATED_SILENCE,
            None => CLIENT_SILENCE,
        };
    }
    if let Some(token) = delegated {
        shared.compiles.abandon_rust(token);
    }
}

/// Marks the connection's [`Peer`] closed before the stream it watches is dropped.
struct PeerGuard(Peer);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The next request on the connection, within `silence`; `None` when the connection is
/// done (closed, silent, or sent something that is not a request: answered with `Error`).
async fn read_request(stream: &mut UnixStream, silence: Duration) -> Option<Request> {
    let frame = match tokio::time::timeout(silence, read_frame(stream)).await {
        Err(_) | Ok(Err(FrameError::Io(_))) => return None,
        Ok(Err(err)) => {
            tracing::warn!("bad frame from a client: {err}");
            reply_error(stream, err.to_string()).await;
            return None;
        }
        Ok(Ok(frame)) => frame,
    };
    if !frame.is_same_version() {
        let message = format!("version mismatch: daemon is {}", frame::BINARY_VERSION);
        reply_error(stream, message).await;
        return None;
    }
    match frame.decode() {
        Ok(request) => Some(request),
        Err(err) => {
            reply_error(stream, err.to_string()).await;
            None
        }
    }
}

/// Works on `request`, telling the client each second that it still does (`Working`), so
/// the client can tell a long compile from a hung daemon.
async fn answer(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    request: Request,
    peer: &Peer,
) -> Response {
    let work = handler::handle(Arc::clone(shared), request, peer.clone());
    tokio::pin!(work);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let mut listening = true;
    loop {
        tokio::select! {
            response = &mut work => return response,
            _ = beat.tick(), if listening => {
                let sent = tokio::time::timeout(KEEP_ALIVE, write_response(stream, &Response::Working)).await;
                // A client that cannot take a few bytes is gone or stuck: the work still
                // ends (it cannot be cancelled halfway), but no more beats.
                listening = matches!(sent, Ok(Ok(())));
            }
        }
    }
}

/// One frame; the body grows as its bytes arrive, so a header announcing the maximum
/// allocates nothing until the client really sends that much.
async fn read_frame(stream: &mut UnixStream) -> Result<Frame, FrameError> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = frame::body_len(prefix)?;
    let mut body = Vec::with_capacity(len.min(frame::INITIAL_BODY));
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Frame::from_body(body)
}

async fn write_response(stream: &mut UnixStream, response: &Response) -> Result<(), FrameError> {
    let bytes = frame::encode(response)?;
    stream.write_all(&bytes).await?;
    Ok(())
}

async fn reply_error(stream: &mut UnixStream, message: String) {
    let reply = Response::Error { message };
    let _ = tokio::time::timeout(CLIENT_SILENCE, write_response(stream, &reply)).await;
}
