//! The daemon's side of `zccache watch`: a `Watch` request turns its connection into a
//! stream. The daemon answers `Watching`, then pushes one `SetsChanged` frame whenever some
//! of the sets changed content, until the client hangs up (or sends anything more), the
//! client stops taking frames, or the daemon stops. Each client's backlog is bounded: a
//! few frames queue, after which the engine waits and the watcher's events coalesce.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::frame;
use super::protocol::{MAX_WATCH_SETS, Response, SetChange, WatchSet, WatchStatus};
use super::shared::Shared;
use super::watch_sets::Subscription;

/// Frames queued for one watching client before the engine waits for it.
const QUEUE: usize = 4;
/// How long a watching client may take to read one frame.
const CLIENT_SILENCE: Duration = Duration::from_secs(30);

/// The active watches, for `status`, and the switch that ends them when the daemon stops.
pub struct Watches {
    list: Mutex<BTreeMap<u64, (WatchStatus, Instant)>>,
    next: AtomicU64,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            list: Mutex::default(),
            next: AtomicU64::new(0),
            stop: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Watches {
    /// Ends every watch stream (the daemon is stopping; their clients see the connection
    /// close).
    pub fn stop_all(&self) {
        self.stop.send_replace(true);
    }

    /// The active watches, oldest first.
    pub fn status(&self) -> Vec<WatchStatus> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.values()
            .map(|(status, since)| WatchStatus {
                age_secs: since.elapsed().as_secs(),
                ..status.clone()
            })
            .collect()
    }
}

/// Removes its watch from the list when the stream ends.
struct Listed<'a>(&'a Watches, u64);

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let mut list = self.0.list.lock().unwrap_or_else(|p| p.into_inner());
        list.remove(&self.1);
    }
}

/// Serves a `Watch` request on `stream` until it ends.
pub async fn serve(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    client_pid: u32,
    sets: Vec<WatchSet>,
) {
    if sets.len() > MAX_WATCH_SETS {
        let message = format!("at most {MAX_WATCH_SETS} sets per watch");
        let _ = write(stream, &Response::Error { message }).await;
        return;
    }
    let labels: Vec<String> = sets.iter().map(|s| s.label.clone()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<SetChange>>(QUEUE);
    let watcher = shared.fingerprints.watcher();
    let started = tokio::task::spawn_blocking(move || {
        Subscription::start(watcher, &sets, move |changed| {
            tx.blocking_send(changed).is_ok()
        })
    })
    .await;
    let _subscription = match started {
        Ok(Ok(subscription)) => subscription,
        Ok(Err(message)) => return drop(write(stream, &Response::Error { message }).await),
        Err(e) => return drop(write(stream, &super::shared::handler_failed(&e)).await),
    };
    let mode = shared.fingerprints.watching();
    if write(stream, &Response::Watching { mode }).await.is_err() {
        return;
    }
    let watches = &shared.watches;
    let id = watches.next.fetch_add(1, Ordering::SeqCst);
    let status = WatchStatus {
        pid: client_pid,
        sets: labels,
        age_secs: 0,
    };
    let _listed = {
        let mut list = watches.list.lock().unwrap_or_else(|p| p.into_inner());
        list.insert(id, (status, Instant::now()));
        Listed(watches, id)
    };
    let mut stop = watches.stop.subscribe();
    let mut byte = [0u8; 1];
    while !*stop.borrow_and_update() {
        tokio::select! {
            changed = rx.recv() => {
                let Some(changed) = changed else { break };
                if write(stream, &Response::SetsChanged(changed)).await.is_err() {
                    break;
                }
            }
            // The client hung up (or broke the protocol by sending more).
            _ = stream.read(&mut byte) => break,
            _ = stop.changed() => break,
        }
    }
}

async fn write(stream: &mut UnixStream, response: &Response) -> Result<(), String> {
    let bytes = frame::encode(response).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CLIENT_SILENCE, stream.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the client stopped reading".to_string()),
    }
}
