//! What a per-file task prints and remembers: `skip (all 5,000 files passed, 4 ms)` or
//! `run (3 of 5,000 files: src/a.py, ...)`, each file and why with `--explain` or
//! `--dry-run`, one JSON object with `--json`, and a ledger line for `zccache why`.

use std::time::Instant;

use super::Judged;
use super::select::Why;
use crate::cli::RunArgs;
use crate::console::Stream;
use crate::fingerprint::{Change, ChangeKind, now_ms, plural_files, thousands};
use crate::quote;
use crate::runner::EXPLAIN_LIMIT;
use crate::runner::ledger::{self, LedgerLine};
use crate::runner::outcome::Ended;
use crate::runner::record::RunFiles;
use crate::runner::spec::RunSpec;
use crate::ui::Ui;

/// `skip` or `run`.
fn verdict(judged: &Judged) -> &'static str {
    match judged.unpassed.is_empty() {
        true => "skip",
        false => "run",
    }
}

/// The text after `skip` / `run`.
fn message(judged: &Judged) -> String {
    let total = judged.total;
    let elsewhere = match judged.elsewhere {
        0 => String::new(),
        n => format!("; {} passed elsewhere", thousands(n)),
    };
    match judged.unpassed.len() {
        0 if total == 0 => "no file matches --files".to_string(),
        0 => format!("all {} passed{elsewhere}", plural_files(total)),
        n => format!(
            "{} of {}: {}{elsewhere}",
            thousands(n),
            plural_files(total),
            super::first_names(&judged.unpassed)
        ),
    }
}

/// The decision line, and each file with why under `--explain` or `--dry-run`.
pub(super) fn decision(ui: &Ui, args: &RunArgs, spec: &RunSpec, judged: &Judged, ms: f64) {
    if args.json {
        return;
    }
    let name = spec.shown_name();
    let message = message(judged);
    match judged.unpassed.is_empty() {
        true => ui.say(format_args!("skip{name} ({message}, {ms:.0} ms)")),
        false => ui.say(format_args!("run{name} ({message})")),
    }
    if !(args.explain || args.dry_run) {
        return;
    }
    for unpassed in judged.unpassed.iter().take(EXPLAIN_LIMIT) {
        let path = quote::path(&unpassed.entry.path);
        ui.say(format_args!("  {:<21} {path}", unpassed.why.text()));
    }
    let more = judged.unpassed.len().saturating_sub(EXPLAIN_LIMIT);
    if more > 0 {
        ui.say(format_args!("  ... and {} more", thousands(more)));
    }
}

/// Appends the decision to the task's ledger: the files that ran (the first
/// [`EXPLAIN_LIMIT`]) and, in the message, why.
pub(super) fn ledger(
    ui: &Ui,
    spec: &RunSpec,
    judged: &Judged,
    started: Instant,
    exit_status: Option<i32>,
) {
    let changes = judged
        .unpassed
        .iter()
        .take(EXPLAIN_LIMIT)
        .map(|u| Change {
            path: u.entry.path.clone(),
            kind: match u.why {
                Why::New => ChangeKind::Added,
                _ => ChangeKind::Modified,
            },
        })
        .collect();
    let line = LedgerLine {
        at_ms: now_ms(),
        decision: verdict(judged).to_string(),
        reason: reason(judged).to_string(),
        message: format!("{}{}", message(judged), why_counts(judged)),
        changes,
        changed_parts: judged.decision.changed_parts.clone(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        exit_status,
        command: spec.argv_text(),
    };
    let path = RunFiles::new(&spec.cache_file).ledger;
    if let Err(e) = ledger::append(&path, &line) {
        ui.warn(format_args!("cannot write {}: {e}", path.display()));
    }
}

fn reason(judged: &Judged) -> &'static str {
    match judged.unpassed.is_empty() {
        true => "all_passed",
        false => "files_unpassed",
    }
}

/// ` (2 edited, 1 failed last time)`: how many files ran for each reason.
fn why_counts(judged: &Judged) -> String {
    let all = [
        Why::New,
        Why::Edited,
        Why::Failed,
        Why::SharedChanged,
        Why::Forced,
    ];
    let counts: Vec<String> = all
        .iter()
        .filter_map(|why| {
            let n = judged.unpassed.iter().filter(|u| u.why == *why).count();
            (n > 0).then(|| format!("{} {}", thousands(n), why.text()))
        })
        .collect();
    match counts.is_empty() {
        true => String::new(),
        false => format!(" ({})", counts.join(", ")),
    }
}

/// The task's one JSON object: the decision, every file that ran (or would) and why, and
/// how the task ended; `ms` is (time to decide, time to the end).
pub(super) fn json(
    ui: &Ui,
    args: &RunArgs,
    spec: &RunSpec,
    judged: &Judged,
    ms: (f64, f64),
    ended: Ended,
) {
    let files: Vec<serde_json::Value> = judged
        .unpassed
        .iter()
        .map(|u| serde_json::json!({"path": u.entry.path, "why": u.why}))
        .collect();
    let mut json = serde_json::json!({
        "decision": verdict(judged),
        "reason": reason(judged),
        "message": message(judged),
        "files": judged.total,
        "run_files": files,
        "hashed": judged.current.rehashed,
        "outcome": ended.outcome,
        "exit_status": ended.status,
        "duration_ms": ms.0,
        "total_ms": ms.1,
        "cache": spec.cache_file.to_string_lossy(),
        "dry_run": args.dry_run,
    });
    if let Some(name) = &spec.name {
        json["task"] = serde_json::json!(name);
    }
    ui.console()
        .write(Stream::Err, format!("{json}\n").as_bytes());
}
