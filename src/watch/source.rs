//! Where a watch's events come from: the daemon, which already watches every task's input
//! set, pushes "these sets changed" on a connection of the watch's own; without a daemon
//! (`--no-daemon`, or none can be reached or started) the same engine runs in this process
//! on an inotify watcher of its own (`local.rs`). Either way the loop reads [`Event`]s from
//! one channel.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use crate::daemon::client::Client;
use crate::daemon::frame;
use crate::daemon::lifecycle::{DaemonPaths, daemon_disabled};
use crate::daemon::protocol::{Request, Response, SetChange, WatchSet};
use crate::daemon::watch_sets::Subscription;
use crate::daemon::watcher::Watcher;

/// What the loop hears.
#[derive(Debug)]
pub enum Event {
    /// Some sets changed content: which, and their changed paths.
    Changed(Vec<SetChange>),
    /// The daemon went away (the stream ended): why.
    Lost(String),
}

/// An open stream of events; dropping it ends the subscription.
pub struct Source {
    /// The events.
    pub events: Receiver<Event>,
    /// How they are learnt, for the watch's first line.
    pub how: String,
    /// Whether they come from the daemon (which can go away).
    pub from_daemon: bool,
    _keep: Keep,
}

/// What keeps a source's subscription alive.
enum Keep {
    /// The daemon connection (shut down on drop, which ends its reader thread).
    Daemon(UnixStream),
    /// The in-process engine.
    Local { _subscription: Subscription },
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Keep::Daemon(stream) = &self._keep {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Opens sources, keeping one in-process watcher for every local one.
pub struct Sources {
    no_daemon: bool,
    local: Option<Arc<Watcher>>,
    /// How long the engine waits for a burst of events to go quiet before it reports.
    settle: Duration,
}

impl Sources {
    /// Sources that ask the daemon first unless `no_daemon` (or `ZCCACHE_NO_DAEMON`), whose
    /// engine reports a burst once it has been quiet for `settle`.
    pub fn new(no_daemon: bool, settle: Duration) -> Self {
        Sources {
            no_daemon: no_daemon || daemon_disabled(),
            local: None,
            settle,
        }
    }

    /// Follows `sets`: from the daemon when it can, else in this process.
    pub fn open(&mut self, sets: &[WatchSet]) -> Result<Source, String> {
        if self.no_daemon {
            return self.local(sets, "--no-daemon");
        }
        match from_daemon(sets, self.settle) {
            Ok(source) => Ok(source),
            Err(why) => self.local(sets, &format!("no daemon: {why}")),
        }
    }

    /// Follows `sets` in this process; `why` says why not through the daemon.
    pub fn local(&mut self, sets: &[WatchSet], why: &str) -> Result<Source, String> {
        let watcher = Arc::clone(self.local.get_or_insert_with(|| Arc::new(Watcher::new())));
        let (tx, events) = channel();
        let subscription = Subscription::start(watcher, sets, self.settle, move |changes| {
            tx.send(Event::Changed(changes)).is_ok()
        })?;
        Ok(Source {
            events,
            how: format!("inotify in this process ({why})"),
            from_daemon: false,
            _keep: Keep::Local {
                _subscription: subscription,
            },
        })
    }
}

/// Subscribes to the daemon (started on demand) and reads its pushes on a thread.
fn from_daemon(sets: &[WatchSet], settle: Duration) -> Result<Source, String> {
    let paths = DaemonPaths::from_env().map_err(|e| e.to_string())?;
    let mut client = Client::connect_or_start(&paths).map_err(|e| e.to_string())?;
    let request = Request::Watch {
        client_pid: std::process::id(),
        sets: sets.to_vec(),
        settle_ms: u32::try_from(settle.as_millis()).unwrap_or(u32::MAX),
    };
    match client.request(&request).map_err(|e| e.to_string())? {
        Response::Watching { .. } => {}
        other => return Err(format!("unexpected answer to Watch: {other:?}")),
    }
    let stream = client.into_stream().map_err(|e| e.to_string())?;
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    let (tx, events) = channel();
    std::thread::spawn(move || read_pushes(reader, &tx));
    Ok(Source {
        events,
        how: "events from the daemon".to_string(),
        from_daemon: true,
        _keep: Keep::Daemon(stream),
    })
}

/// Forwards the daemon's `SetsChanged` frames until the connection ends, then says so.
fn read_pushes(mut stream: UnixStream, tx: &Sender<Event>) {
    let why = loop {
        let frame = match frame::read_frame(&mut stream) {
            Ok(frame) => frame,
            Err(_) => break "the daemon closed the connection".to_string(),
        };
        match frame.decode::<Response>() {
            Ok(Response::SetsChanged(changes)) => {
                if tx.send(Event::Changed(changes)).is_err() {
                    return;
                }
            }
            Ok(Response::Error { message }) => break message,
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    let _ = tx.send(Event::Lost(why));
}
