//! `zccache fp`: the fingerprint primitives, drop-in compatible with zccache's.
//!
//! Exit codes: `check` 0 = run needed, 1 = skip, 2 = error; the other verbs 0 or 2.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{CheckArgs, FpArgs, FpVerb};
use crate::fingerprint::{self, CheckRequest, CheckWrites, Verdict};
use crate::ui::Ui;

/// Exit status of `fp check` when the task must run.
const RUN_NEEDED: u8 = 0;
/// Exit status of `fp check` when the task can be skipped.
const SKIP: u8 = 1;

/// Runs one `zccache fp` verb.
pub fn execute(args: &FpArgs) -> anyhow::Result<ExitCode> {
    match &args.verb {
        FpVerb::Check(check) => run_check(args, check),
        FpVerb::MarkSuccess => {
            fingerprint::mark_success(&args.cache_file).map(|()| ExitCode::SUCCESS)
        }
        FpVerb::MarkFailure => {
            fingerprint::mark_failure(&args.cache_file).map(|()| ExitCode::SUCCESS)
        }
        FpVerb::Invalidate => fingerprint::invalidate(&args.cache_file).map(|()| ExitCode::SUCCESS),
    }
    .map_err(Into::into)
}

fn run_check(args: &FpArgs, check: &CheckArgs) -> Result<ExitCode, fingerprint::FpError> {
    let started = Instant::now();
    let decision = fingerprint::check(&CheckRequest {
        cache_file: args.cache_file.clone(),
        cache_type: args.cache_type,
        root: check.inputs.root.clone(),
        filter: check.inputs.filter_spec(),
        extra_parts: BTreeMap::new(),
        writes: CheckWrites::StateAndPendingFile,
    })?
    .decision;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if check.json {
        let mut json = decision.to_json();
        json["duration_ms"] = serde_json::json!(elapsed_ms);
        println!("{json}");
    }
    let verdict = match decision.verdict {
        Verdict::Skip => "skip",
        Verdict::Run => "run",
    };
    Ui::new(check.quiet || check.json).say(format_args!("{verdict} ({})", decision.summary()));
    Ok(ExitCode::from(match decision.verdict {
        Verdict::Skip => SKIP,
        Verdict::Run => RUN_NEEDED,
    }))
}
