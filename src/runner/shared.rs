//! Shared task results (`--share`, `share = true`): after a success a task publishes "these
//! inputs passed" under a key every machine computes alike — the input files' relative paths
//! and content, the command line, the named env vars and the tool's *content* (not its path
//! or mtime) — into the artifact store, whose remote tier carries it to teammates and CI. A
//! check that would run asks for it first: a record whose outputs match the ones here turns
//! the run into a skip, recorded as a local success.

use std::io;

use super::outputs::{OutputDigests, changed_outputs, digest_outputs};
use super::record::RunRecord;
use super::spec::RunSpec;
use super::tool;
use crate::commands::call_or_in_process;
use crate::compile_cache::remote::Remote;
use crate::compile_cache::store::Store;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Artifact, Request, Response};
use crate::fingerprint::{Decision, combined_key};

/// The artifact output holding a shared record (the outputs' digests, JSON).
const RECORD: &str = "record";
/// How long an in-process run waits for its upload before exiting.
const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The store key of this check's inputs, the same on every machine.
pub fn portable_key(
    spec: &RunSpec,
    decision: &Decision,
    record: &RunRecord,
) -> Result<String, String> {
    let mut parts = spec.command_parts();
    parts.insert("files".to_string(), decision.files_key);
    let tool = tool::portable_identity(&spec.argv, &spec.cwd, record.rustup.as_ref())?;
    parts.insert("tool".to_string(), tool);
    Ok(format!("shared-task/{}", combined_key(&parts).to_hex()))
}

/// True when `key` passed elsewhere and the outputs here are the ones it produced. Through
/// the daemon's store when `use_daemon`, else in-process.
pub fn passed_elsewhere(spec: &RunSpec, key: &str, use_daemon: bool) -> bool {
    let Some(artifact) = lookup(key, use_daemon) else {
        return false;
    };
    let recorded: Option<OutputDigests> = artifact
        .outputs
        .iter()
        .find(|(name, _)| name == RECORD)
        .and_then(|(_, bytes)| serde_json::from_slice(bytes).ok());
    let (Some(recorded), Ok(now)) = (recorded, digest_outputs(&spec.outputs)) else {
        return false;
    };
    changed_outputs(&recorded, &now).is_empty()
}

/// Publishes a success of `key` with the outputs it left.
pub fn publish(spec: &RunSpec, key: &str, use_daemon: bool) -> io::Result<()> {
    let outputs = digest_outputs(&spec.outputs)?;
    let artifact = Artifact {
        outputs: vec![(RECORD.to_string(), serde_json::to_vec(&outputs)?)],
        ..Artifact::default()
    };
    let request = Request::Store {
        cache_key: key.to_string(),
        artifact: artifact.clone(),
    };
    match daemon(&request, use_daemon) {
        Some(Response::Stored { .. }) => Ok(()),
        _ => {
            let (store, remote) = in_process()?;
            store.put(key, &artifact)?;
            if let Some(remote) = remote {
                remote.drain(UPLOAD_WAIT);
            }
            Ok(())
        }
    }
}

fn lookup(key: &str, use_daemon: bool) -> Option<Artifact> {
    let request = Request::Lookup {
        cache_key: key.to_string(),
    };
    match daemon(&request, use_daemon) {
        Some(Response::LookupResult { artifact }) => artifact,
        _ => in_process().ok()?.0.get(key).ok().flatten(),
    }
}

/// The daemon's answer; `None` (work in-process) without one.
fn daemon(request: &Request, use_daemon: bool) -> Option<Response> {
    if !use_daemon {
        return None;
    }
    let paths = DaemonPaths::from_env().ok()?;
    call_or_in_process(&paths, request).ok().flatten()
}

/// The store of `ZCCACHE_DIR` with the remote tier the environment names.
fn in_process() -> io::Result<(Store, Option<std::sync::Arc<Remote>>)> {
    let paths = DaemonPaths::from_env().map_err(io::Error::other)?;
    let store = Store::new(&paths.dir);
    match crate::user_config::remote_settings().map(|s| s.and_then(|s| Remote::new(&s))) {
        Some(Ok(remote)) => Ok((store.with_remote(remote.clone()), Some(remote))),
        _ => Ok((store, None)),
    }
}
