//! The runner's way into the artifact store: through the daemon (whose store has the remote
//! tier) when the check went through it, else — or when the daemon cannot take the request
//! — the store of `ZCCACHE_DIR` in-process, with the remote tier the user configured.

use std::io;

use crate::compile_cache::artifact::Artifact;
use crate::compile_cache::remote::Remote;
use crate::compile_cache::store::Store;
use crate::daemon::client::call_or_in_process;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Request, Response};

/// How long an in-process store waits for its upload before the command exits.
const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The artifact stored under `key`, if any (verified by the store).
pub fn lookup(key: &str, use_daemon: bool) -> Option<Artifact> {
    let request = Request::Lookup {
        cache_key: key.to_string(),
    };
    match daemon(&request, use_daemon) {
        Some(Response::LookupResult { artifact }) => artifact,
        _ => in_process().ok()?.0.get(key).ok().flatten(),
    }
}

/// Stores `artifact` under `key`.
pub fn store(key: &str, artifact: &Artifact, use_daemon: bool) -> io::Result<()> {
    let request = Request::Store {
        cache_key: key.to_string(),
        artifact: artifact.clone(),
    };
    if let Some(Response::Stored { .. }) = daemon(&request, use_daemon) {
        return Ok(());
    }
    let (store, remote) = in_process()?;
    store.put(key, artifact)?;
    if let Some(remote) = remote {
        remote.drain(UPLOAD_WAIT);
    }
    Ok(())
}

/// The artifact under `key` in this machine's store only (in-process, never the remote).
pub fn lookup_here(key: &str) -> Option<Artifact> {
    in_process().ok()?.0.get_here(key).ok().flatten()
}

/// Stores `artifact` under `key` in this machine's store only (in-process, never uploaded).
pub fn store_here(key: &str, artifact: &Artifact) -> io::Result<()> {
    in_process()?.0.put_here(key, artifact).map(drop)
}

/// Which of `keys` have a verified entry: in `ZCCACHE_DIR`'s store, else on the remote
/// tier, asked for all of them in one batch. In-process: the daemon's protocol asks for one
/// key at a time, and one batch of thousands is what this is for.
pub fn held_many(keys: &[String]) -> io::Result<Vec<bool>> {
    let (store, remote) = in_process()?;
    let held = store.get_many(keys)?;
    if let Some(remote) = remote {
        remote.drain(UPLOAD_WAIT);
    }
    Ok(held
        .iter()
        .map(|a| a.as_ref().is_some_and(|a| a.exit_code == 0))
        .collect())
}

/// Stores an empty artifact (a marker: "this key passed") under each of `keys`, here and
/// on the remote tier, in one batch.
pub fn mark_many(keys: &[String]) -> io::Result<()> {
    let (store, remote) = in_process()?;
    let items: Vec<(String, Artifact)> = keys
        .iter()
        .map(|key| (key.clone(), Artifact::default()))
        .collect();
    let stored = store.put_many(&items);
    if let Some(remote) = remote {
        remote.drain(UPLOAD_WAIT);
    }
    stored
}

/// The daemon's answer; `None` (work in-process) without one.
fn daemon(request: &Request, use_daemon: bool) -> Option<Response> {
    if !use_daemon {
        return None;
    }
    let paths = DaemonPaths::from_env().ok()?;
    call_or_in_process(&paths, request).ok().flatten()
}

/// The store of `ZCCACHE_DIR` with the remote tier the user configured.
fn in_process() -> io::Result<(Store, Option<std::sync::Arc<Remote>>)> {
    let paths = DaemonPaths::from_env().map_err(io::Error::other)?;
    let store = Store::new(&paths.dir);
    match crate::compile_cache::user_config::remote() {
        Some(Ok(remote)) => Ok((store.with_remote(remote.clone()), Some(remote))),
        _ => Ok((store, None)),
    }
}
