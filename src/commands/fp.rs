//! `zccache fp`: the fingerprint primitives, drop-in compatible with zccache's.
//!
//! Served by the daemon (started on demand) unless `--no-daemon` or `ZCCACHE_NO_DAEMON=1`;
//! when no daemon can be reached the same engine runs in-process, after one warning line.
//! Exit codes: `check` 0 = run needed, 1 = skip, 2 = error; the other verbs 0 or 2.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{CheckArgs, FpArgs, FpVerb};
use crate::daemon::client::{self, ClientError, note_full_pass};
use crate::daemon::lifecycle::{DaemonPaths, daemon_disabled};
use crate::daemon::protocol::{NormalizedPath, Request, Response};
use crate::fingerprint::{self, CheckRequest, CheckWrites, Decision, FpError, Progress, Verdict};
use crate::ui::{ProgressLine, Shown, Ui};

/// Exit status of `fp check` when the task must run.
const RUN_NEEDED: u8 = 0;
/// Exit status of `fp check` when the task can be skipped.
const SKIP: u8 = 1;

/// Runs one `zccache fp` verb.
pub fn execute(args: &FpArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let use_daemon = !args.no_daemon && !daemon_disabled();
    match &args.verb {
        FpVerb::Check(check) => {
            let (decision, mode) = if use_daemon {
                check_via_daemon(args, check)?
            } else {
                (check_in_process(args, check)?, None)
            };
            Ok(report(check, &decision, mode.as_deref(), started))
        }
        verb => {
            mark(args, verb, use_daemon)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_in_process(args: &FpArgs, check: &CheckArgs) -> Result<Decision, FpError> {
    let progress = Arc::new(Progress::default());
    let _line = ProgressLine::start(Shown::Hashing(Arc::clone(&progress)), check.quiet);
    let checked = fingerprint::check(&CheckRequest {
        cache_file: args.cache_file.clone(),
        cache_type: args.cache_type,
        root: check.inputs.root_or_cwd(),
        filter: check.inputs.filter_spec(),
        extra_parts: BTreeMap::new(),
        writes: CheckWrites::StateAndPendingFile,
        staged: false,
        progress: Some(progress),
    })?;
    Ok(checked.decision)
}

fn check_via_daemon(
    args: &FpArgs,
    check: &CheckArgs,
) -> anyhow::Result<(Decision, Option<String>)> {
    let cwd = std::env::current_dir()?;
    let request = Request::FingerprintCheck {
        cache_file: NormalizedPath::new(&cwd, &args.cache_file),
        cache_type: args.cache_type.name().to_string(),
        root: NormalizedPath::new(&cwd, &check.inputs.root_or_cwd()),
        extensions: check.inputs.extensions.clone(),
        include_globs: check.inputs.include.clone(),
        exclude: check.inputs.exclude.clone(),
    };
    let line = ProgressLine::start(Shown::Waiting("checking through the daemon"), check.quiet);
    let answer = DaemonPaths::from_env()
        .map_err(ClientError::from)
        .and_then(|p| client::call(&p, &request));
    drop(line);
    match answer {
        Ok(Response::FingerprintChecked { decision, mode }) => Ok((decision, Some(mode))),
        Ok(other) => anyhow::bail!("unexpected daemon reply: {other:?}"),
        Err(ClientError::Unavailable(why)) => {
            Ui::default().warn(format_args!(
                "daemon unavailable ({why}); working in-process"
            ));
            Ok((check_in_process(args, check)?, None))
        }
        Err(err) => Err(err.into()),
    }
}

/// An fp verb run in-process.
type LocalVerb = fn(&Path) -> Result<(), FpError>;

/// `mark-success`, `mark-failure`, `invalidate`: through a running daemon (so it drops what
/// it cached), else in-process.
fn mark(args: &FpArgs, verb: &FpVerb, use_daemon: bool) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let cache_file = NormalizedPath::new(&cwd, &args.cache_file);
    let (request, local): (Request, LocalVerb) = match verb {
        FpVerb::MarkSuccess => (Request::FingerprintMarkSuccess { cache_file }, |file| {
            fingerprint::mark_success(file).map(drop)
        }),
        FpVerb::MarkFailure => (Request::FingerprintMarkFailure { cache_file }, |file| {
            fingerprint::mark_failure(file).map(drop)
        }),
        FpVerb::Invalidate => (
            Request::FingerprintInvalidate { cache_file },
            fingerprint::invalidate,
        ),
        FpVerb::Check(_) => unreachable!("check is handled by execute"),
    };
    if use_daemon {
        let paths = DaemonPaths::from_env()?;
        match client::call_running(&paths, &request) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) | Err(ClientError::Unavailable(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(local(&args.cache_file)?)
}

fn report(
    check: &CheckArgs,
    decision: &Decision,
    mode: Option<&str>,
    started: Instant,
) -> ExitCode {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if check.json {
        let mut json = decision.to_json();
        json["duration_ms"] = serde_json::json!(elapsed_ms);
        json["mode"] = serde_json::json!(mode.unwrap_or("in-process"));
        println!("{json}");
    }
    let ui = Ui::new(check.quiet || check.json);
    note_full_pass(&ui, mode);
    let verdict = match decision.verdict {
        Verdict::Skip => "skip",
        Verdict::Run => "run",
    };
    ui.say(format_args!("{verdict} ({})", decision.summary()));
    ExitCode::from(match decision.verdict {
        Verdict::Skip => SKIP,
        Verdict::Run => RUN_NEEDED,
    })
}
