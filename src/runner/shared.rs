//! Shared task results (`--share`, `share = true`): after a success a task publishes "these
//! inputs passed" under a key every machine computes alike — the input files' relative paths
//! and content, the command line, the named env vars and the tool's *content* (not its path
//! or mtime) — into the artifact store, whose remote tier carries it to teammates and CI,
//! with the outputs it left (their files) and its captured streams. A check that would run
//! asks for it first: the outputs here are made the published ones (restored where they are
//! missing or differ) and the run becomes a skip, recorded as a local success. Its replay is
//! shown with control sequences other than colours made visible (`quote::terminal_bytes`).

use std::io;

use serde::{Deserialize, Serialize};

use super::artifacts;
use super::output_cache::{self, Restore};
use super::output_entry::OutputDigests;
use super::outputs::{changed_outputs, digest_outputs};
use super::record::RunRecord;
use super::spec::RunSpec;
use super::tool;
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::{Decision, combined_key};
use crate::quote;

/// The artifact output holding a published record (JSON); the other outputs are the
/// outputs' file contents by hex digest.
const RECORD: &str = "record-v2";

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
    if let Some(script) = tool::shell_script(&spec.argv) {
        let memos = &record.script_rustup;
        parts.extend(tool::script_portable_identities(script, &spec.cwd, memos)?);
    }
    Ok(format!("shared-task/{}", combined_key(&parts).to_hex()))
}

/// A result another machine published: the outputs it left (their listing and bytes) and,
/// when it captured them, its stdout and stderr.
pub struct SharedResult {
    record: PublishedRecord,
    artifact: Artifact,
}

/// What a published result says of itself.
#[derive(Serialize, Deserialize)]
struct PublishedRecord {
    outputs: OutputDigests,
    replay: bool,
}

/// The result published under `key`, if any. Through the daemon's store when `use_daemon`,
/// else in-process.
pub fn fetch(key: &str, use_daemon: bool) -> Option<SharedResult> {
    let artifact = artifacts::lookup(key, use_daemon)?;
    let record = artifact
        .outputs
        .iter()
        .find(|(name, _)| name == RECORD)
        .and_then(|(_, bytes)| serde_json::from_slice(bytes).ok())?;
    Some(SharedResult { record, artifact })
}

impl SharedResult {
    /// Makes the outputs here the ones the shared run left, restoring what differs (with
    /// `dry_run`, only whether it could); returns how many outputs were (or would be)
    /// restored. Err: they cannot be made so (the task then runs).
    pub fn apply(&self, spec: &RunSpec, dry_run: bool) -> Result<usize, String> {
        let recorded = &self.record.outputs;
        let now = digest_outputs(&spec.outputs).map_err(|e| e.to_string())?;
        let changed = changed_outputs(recorded, &now);
        if changed.is_empty() {
            return Ok(0);
        }
        let restore = Restore {
            recorded,
            now: &now,
            changed: &changed,
        };
        output_cache::write_back(spec, &self.artifact, &restore, dry_run)?;
        Ok(changed.len())
    }

    /// The shared run's stdout and stderr, when it captured them, made harmless for a
    /// terminal: anyone who can write the remote wrote these bytes, so text and colours are
    /// kept and any other control sequence is shown (`^[`), never obeyed.
    pub fn replay(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let a = &self.artifact;
        self.record.replay.then(|| {
            (
                quote::terminal_bytes(&a.stdout),
                quote::terminal_bytes(&a.stderr),
            )
        })
    }
}

/// Publishes a success of `key` with the outputs it left (listing and bytes) and its
/// captured streams, if any.
pub fn publish(
    spec: &RunSpec,
    key: &str,
    use_daemon: bool,
    captured: Option<&(Vec<u8>, Vec<u8>)>,
) -> io::Result<()> {
    let outputs = digest_outputs(&spec.outputs)?;
    let mut files = output_cache::blobs(spec, &outputs)?;
    let record = PublishedRecord {
        outputs,
        replay: captured.is_some(),
    };
    files.push((RECORD.to_string(), serde_json::to_vec(&record)?));
    let (stdout, stderr) = captured.cloned().unwrap_or_default();
    let artifact = Artifact {
        outputs: files,
        stdout,
        stderr,
        exit_code: 0,
    };
    artifacts::store(key, &artifact, use_daemon)
}
