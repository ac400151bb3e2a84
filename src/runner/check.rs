//! Where `zccache run` gets its decision: the daemon (started on demand) or, with
//! `--no-daemon`, `ZCCACHE_NO_DAEMON=1` or no reachable daemon, the engine in-process.
//! Either way the outcome is recorded against exactly what that check saw.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::record::RunRecord;
use super::spec::RunSpec;
use crate::daemon::client::note_full_pass;
use crate::daemon::client::{self, ClientError};
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{NormalizedPath, Request, Response, RunCheckAnswer, RunCheckSpec};
use crate::fingerprint::{self, CheckRequest, CheckWrites, Decision, Digest, Pending, Progress};
use crate::ui::{ProgressLine, Shown, Ui};

/// How to record the outcome of a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Recorder {
    /// The pending record is here.
    InProcess(Pending),
    /// The daemon keeps it under this id, for this key.
    Daemon {
        /// From `RunChecked`.
        pending_id: String,
        /// The check's key.
        key: Digest,
    },
}

impl Recorder {
    /// Records success or failure of the run.
    pub fn record(self, cache_file: &std::path::Path, success: bool) -> Result<(), String> {
        match self {
            Recorder::InProcess(pending) if success => {
                fingerprint::record_success(cache_file, pending)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Recorder::InProcess(pending) => fingerprint::record_failure(cache_file, pending)
                .map(drop)
                .map_err(|e| e.to_string()),
            Recorder::Daemon { pending_id, key } => {
                let request = Request::RunRecord {
                    cache_file: NormalizedPath::new(std::path::Path::new("/"), cache_file),
                    pending_id,
                    key: key.to_hex(),
                    success,
                };
                let paths = DaemonPaths::from_env().map_err(|e| e.to_string())?;
                match client::call_running(&paths, &request) {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("the daemon went away before the run ended".to_string()),
                    Err(err) => Err(err.to_string()),
                }
            }
        }
    }
}

/// What the daemon answered to one check.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The decision.
    pub decision: Decision,
    /// How the input set was built.
    pub mode: String,
    /// For `RunRecord`.
    pub pending_id: String,
}

/// The decision and recorder of the daemon's `answer` (a note when it walked the tree).
pub fn from_answer(ui: &Ui, answer: Answer) -> (Decision, Recorder) {
    note_full_pass(ui, Some(&answer.mode));
    let key = answer.decision.key;
    let pending_id = answer.pending_id;
    (answer.decision, Recorder::Daemon { pending_id, key })
}

/// A task checked ahead of time with the others of its graph: the key parts and record it
/// was checked with, and the daemon's answer.
#[derive(Debug, Clone)]
pub struct Prechecked {
    /// The key parts it was asked with.
    pub parts: BTreeMap<String, Digest>,
    /// The task's record, as loaded (and updated by the tool lookup) to make them.
    pub record: RunRecord,
    /// The daemon's answer.
    pub answer: Answer,
}

/// Checks `spec` with `parts`, through the daemon when `use_daemon` (taking `answered`,
/// the daemon's answer to these parts from a batch, when there is one).
pub fn check(
    ui: &Ui,
    spec: &RunSpec,
    parts: BTreeMap<String, Digest>,
    (dry_run, use_daemon): (bool, bool),
    answered: Option<Answer>,
) -> Result<(Decision, Recorder), String> {
    // The index is read straight from git; the daemon watches working trees.
    if use_daemon && !spec.staged {
        let answer = match answered {
            Some(answer) => Ok(answer),
            None => via_daemon(spec, &parts, dry_run, !ui.shows_progress()),
        };
        match answer {
            Ok(answer) => return Ok(from_answer(ui, answer)),
            Err(ClientError::Unavailable(why)) => {
                ui.warn(format_args!(
                    "daemon unavailable ({why}); working in-process"
                ));
            }
            Err(err) => return Err(err.to_string()),
        }
    }
    let progress = Arc::new(Progress::default());
    let _line = ProgressLine::start(Shown::Hashing(Arc::clone(&progress)), !ui.shows_progress());
    let checked = fingerprint::check(&CheckRequest {
        cache_file: spec.cache_file.clone(),
        cache_type: spec.cache_type,
        root: spec.root.clone(),
        filter: spec.filter.clone(),
        extra_parts: parts,
        writes: if dry_run {
            CheckWrites::Nothing
        } else {
            CheckWrites::State
        },
        staged: spec.staged,
        progress: Some(progress),
    })
    .map_err(|e| e.to_string())?;
    Ok((checked.decision, Recorder::InProcess(checked.pending)))
}

/// The daemon's answers for several tasks in one round trip, in order (`None` for each
/// where the daemon could not answer: that task asks again by itself). Only a daemon that
/// already runs is asked: a new one knows no input set, and its first walks go faster
/// spread over the tasks as they start than all before the first one.
pub fn batch(
    tasks: &[(&RunSpec, &BTreeMap<String, Digest>)],
    dry_run: bool,
) -> Vec<Option<Answer>> {
    let specs = tasks
        .iter()
        .map(|(spec, parts)| daemon_spec(spec, parts, dry_run))
        .collect();
    ask_batch(specs)
}

/// The answers of a running daemon to `specs` in one round trip, in order (`None` for each
/// it could not answer, and for all without a running daemon).
pub fn ask_batch(specs: Vec<RunCheckSpec>) -> Vec<Option<Answer>> {
    let asked = specs.len();
    let answers = DaemonPaths::from_env()
        .map_err(ClientError::from)
        .and_then(|paths| client::call_running(&paths, &Request::RunCheckBatch(specs)));
    let Ok(Some(Response::RunCheckedBatch(answers))) = answers else {
        return vec![None; asked];
    };
    let mut answers = answers.into_iter();
    (0..asked)
        .map(|_| answers.next().and_then(answer_of))
        .collect()
}

/// The answer in one of a batch's answers (`None` when that check failed).
pub fn answer_of(answer: RunCheckAnswer) -> Option<Answer> {
    match answer {
        RunCheckAnswer::Checked {
            decision,
            mode,
            pending_id,
        } => Some(Answer {
            decision,
            mode,
            pending_id,
        }),
        RunCheckAnswer::Failed { .. } => None,
    }
}

/// What the daemon is asked to check `spec` with `parts`.
pub fn daemon_spec(
    spec: &RunSpec,
    parts: &BTreeMap<String, Digest>,
    dry_run: bool,
) -> RunCheckSpec {
    let abs = |p: &PathBuf| NormalizedPath::new(&spec.cwd, p);
    RunCheckSpec {
        cache_file: abs(&spec.cache_file),
        cache_type: spec.cache_type.name().to_string(),
        root: abs(&spec.root),
        extensions: spec.filter.extensions.clone(),
        include_globs: spec.filter.include.clone(),
        exclude: spec.filter.exclude.clone(),
        extra_parts: parts.iter().map(|(k, v)| (k.clone(), v.to_hex())).collect(),
        dry_run,
    }
}

fn via_daemon(
    spec: &RunSpec,
    parts: &BTreeMap<String, Digest>,
    dry_run: bool,
    quiet: bool,
) -> Result<Answer, ClientError> {
    let request = Request::RunCheck(daemon_spec(spec, parts, dry_run));
    let paths = DaemonPaths::from_env()?;
    let line = ProgressLine::start(Shown::Waiting("checking through the daemon"), quiet);
    let answer = client::call(&paths, &request);
    drop(line);
    match answer? {
        Response::RunChecked {
            decision,
            mode,
            pending_id,
        } => Ok(Answer {
            decision,
            mode,
            pending_id,
        }),
        other => Err(ClientError::Daemon(format!("unexpected reply: {other:?}"))),
    }
}
