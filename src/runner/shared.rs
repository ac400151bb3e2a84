//! Shared task results (`--share`, `share = true`): after a success a task publishes "these
//! inputs passed" under a key every machine computes alike — the input files' relative paths
//! and content, the command line, the named env vars and the tool's *content* (not its path
//! or mtime) — into the artifact store, whose remote tier carries it to teammates and CI. A
//! check that would run asks for it first: a record whose outputs match the ones here turns
//! the run into a skip, recorded as a local success.

use std::io;

use super::artifacts;
use super::outputs::{OutputDigests, changed_outputs, digest_outputs};
use super::record::RunRecord;
use super::spec::RunSpec;
use super::tool;
use crate::daemon::protocol::Artifact;
use crate::fingerprint::{Decision, combined_key};

/// The artifact output holding a shared record (the outputs' digests, JSON).
const RECORD: &str = "record";

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
    let Some(artifact) = artifacts::lookup(key, use_daemon) else {
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
    artifacts::store(key, &artifact, use_daemon)
}
