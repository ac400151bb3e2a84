//! Shared task results: after a success a task publishes "these inputs passed" under a key
//! every checkout and machine computes alike — the input files' relative paths and content,
//! the command line, the named env vars and the tool's *content* (not its path or mtime) —
//! with the outputs it left (their files) and its captured streams. Always into this
//! machine's store, so another worktree or clone of the same repository skips; with
//! `--share` (`share = true`) through the daemon's store, whose remote tier carries it to
//! teammates and CI. A check that would run asks for it first: the outputs here are made the
//! published ones (restored where they are missing or differ) and the run becomes a skip,
//! recorded as a local success. A result this very checkout published is never taken (its
//! own record decides). Its replay is shown with control sequences other than colours made
//! visible (`quote::terminal_bytes`).

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

/// Where shared results go and come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// This machine's store only (worktrees and clones here).
    Here,
    /// The daemon's store (when `use_daemon`; else in-process) with its remote tier.
    Team {
        /// Through the daemon.
        use_daemon: bool,
    },
}

/// A result another checkout published: the outputs it left (their listing and bytes) and,
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
    /// Where it ran (absent in results published before this was kept).
    #[serde(default)]
    origin: Option<Origin>,
}

/// The machine, checkout and state directory a result ran with (all three the same: this
/// very checkout, whose own record decides).
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Origin {
    host: String,
    root: String,
    state: String,
}

impl Origin {
    fn of(spec: &RunSpec) -> Origin {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let state = crate::private_dir::state_dir().unwrap_or_default();
        Origin {
            host: host.trim().to_string(),
            root: spec.root.to_string_lossy().into_owned(),
            state: state.to_string_lossy().into_owned(),
        }
    }
}

/// The result published under `key`, if any, unless this checkout published it.
pub fn fetch(key: &str, spec: &RunSpec, reach: Reach) -> Option<SharedResult> {
    let artifact = match reach {
        Reach::Here => artifacts::lookup_here(key)?,
        Reach::Team { use_daemon } => artifacts::lookup(key, use_daemon)?,
    };
    let record: PublishedRecord = artifact
        .outputs
        .iter()
        .find(|(name, _)| name == RECORD)
        .and_then(|(_, bytes)| serde_json::from_slice(bytes).ok())?;
    if record.origin.as_ref() == Some(&Origin::of(spec)) {
        return None;
    }
    Some(SharedResult { record, artifact })
}

impl SharedResult {
    /// Where the result passed, for the decision line: another checkout by its root when it
    /// ran here with this state directory (it came from this machine's store), else another
    /// machine (it came through the remote tier).
    pub fn passed_where(&self, spec: &RunSpec) -> String {
        let here = Origin::of(spec);
        match &self.record.origin {
            Some(origin) if origin.host == here.host && origin.state == here.state => {
                format!("the same inputs passed in {}", quote::path(&origin.root))
            }
            _ => "the same inputs passed on another machine".to_string(),
        }
    }

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
    reach: Reach,
    captured: Option<&(Vec<u8>, Vec<u8>)>,
) -> io::Result<()> {
    let outputs = digest_outputs(&spec.outputs)?;
    let mut files = output_cache::blobs(spec, &outputs)?;
    let record = PublishedRecord {
        outputs,
        replay: captured.is_some(),
        origin: Some(Origin::of(spec)),
    };
    files.push((RECORD.to_string(), serde_json::to_vec(&record)?));
    let (stdout, stderr) = captured.cloned().unwrap_or_default();
    let artifact = Artifact {
        outputs: files,
        stdout,
        stderr,
        exit_code: 0,
    };
    match reach {
        Reach::Here => artifacts::store_here(key, &artifact),
        Reach::Team { use_daemon } => artifacts::store(key, &artifact, use_daemon),
    }
}
