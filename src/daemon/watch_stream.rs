//! The daemon's side of `zccache watch`: a `Watch` request turns its connection into a
//! stream. The daemon answers `Watching`, then pushes one `SetsChanged` frame whenever some
//! of the sets changed content, until the client hangs up (or sends anything more), the
//! client stops taking frames, or the daemon stops. Each client's backlog is bounded: a
//! few frames queue, after which the engine waits and the watcher's events coalesce.

use std::sync::Arc;
use std::time::Duration;

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

/// Serves a `Watch` request on `stream` until it ends.
pub async fn serve(
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    (client_pid, settle): (u32, Duration),
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
        Subscription::start(watcher, &sets, settle, move |changed| {
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
    let _listed = watches.add(WatchStatus {
        pid: client_pid,
        sets: labels,
        age_secs: 0,
    });
    let mut stop = watches.stopping();
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
