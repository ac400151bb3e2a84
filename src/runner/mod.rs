//! `zccache run`: check the task's key, then skip it or run it and record the result.
//!
//! The key is the input file set plus the command line, the tool it starts and the named env
//! vars. A skip also needs the declared outputs as recorded (and a replay, with `--replay`).
//! When fingerprinting fails the command runs anyway: never skip on doubt.

mod artifacts;
mod check;
pub mod graph;
mod judgement;
pub mod ledger;
pub mod outcome;
mod output_cache;
mod output_entry;
mod output_rules;
mod outputs;
mod per_file;
pub mod record;
mod report;
mod restore;
mod script;
mod shared;
mod skip;
pub mod spec;
mod task_lock;
pub mod tasks;
pub mod tool;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::child::{self, Group};
use crate::cli::RunArgs;
use crate::console::Console;
use crate::daemon::lifecycle::daemon_disabled;
use crate::fingerprint::{self, Digest, Verdict, now_ms};
use crate::ui::Ui;
use check::{Answer, Prechecked};
use judgement::Judgement;
use ledger::LedgerLine;
use outcome::{Ended, Outcome};
use outputs::{Listing, digest_outputs_known};
use record::{KeyRecord, RunFiles, RunRecord};
use skip::verify_skip;
use spec::RunSpec;
use task_lock::{Taken, TaskLock};
use tool::PlainTools;

pub(crate) use report::summary;
pub use report::when;

/// Most changed paths `--explain` lists (and the ledger keeps).
const EXPLAIN_LIMIT: usize = 20;
/// `--dry-run` exit status when the task would run.
const WOULD_RUN: u8 = 1;
/// Exit status when zccache itself cannot proceed.
const ERROR_EXIT: u8 = 2;

/// Runs `zccache run`: named tasks, or the command after `--`.
pub fn execute(args: &RunArgs) -> anyhow::Result<ExitCode> {
    crate::os::catch_signals();
    if !args.tasks.is_empty() || args.all {
        if !args.command.is_empty() {
            anyhow::bail!("give task names or a command after --, not both");
        }
        return tasks::run_tasks(args);
    }
    if args.command.is_empty() {
        anyhow::bail!("nothing to run: give a command after -- or a task name from zccache.toml");
    }
    let spec = RunSpec::of_command(args, std::env::current_dir()?, args.staged)?;
    crate::trace_times::mark("spec");
    let console = Arc::new(Console::Direct);
    per_file::exit_follows_the_run();
    let status = run_spec(&spec, args, &console, None).status;
    // A task that ended well while zccache was being interrupted still reports the signal.
    Ok(ExitCode::from(match crate::os::interrupted() {
        Some(signal) if status == 0 => u8::try_from(128 + signal).unwrap_or(1),
        _ => status,
    }))
}

/// Whether `spec` would skip now, deciding quietly and writing nothing (`None`: unknown).
pub fn would_skip(spec: &RunSpec, args: &RunArgs) -> Option<bool> {
    let mut quiet = args.clone();
    quiet.dry_run = true;
    quiet.force = false;
    quiet.quiet = true;
    quiet.json = false;
    if let Some(per_file) = &spec.per_file {
        return per_file::would_skip(spec, per_file, &quiet);
    }
    let files = RunFiles::new(&spec.cache_file);
    let judged = judge(
        &Ui::new(true),
        spec,
        &quiet,
        (&files, &mut files.load()),
        None,
    );
    let judgement = judged.ok()?;
    Some(judgement.verdict == Verdict::Skip)
}

/// `zccache settle-files`: writes a first per-file run's record, handed over by that run
/// (see `per_file::settle`).
pub fn settle_files(after: Option<u32>) -> anyhow::Result<ExitCode> {
    Ok(match per_file::settle_files(after) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(ERROR_EXIT),
    })
}

/// One task: check, then skip or run it and record; its lines and its command's output go
/// to `console`.
/// `prechecked`: the task as its graph's batch checked it, when that answer still holds.
pub fn run_spec(
    spec: &RunSpec,
    args: &RunArgs,
    console: &Arc<Console>,
    prechecked: Option<Prechecked>,
) -> Ended {
    let started = Instant::now();
    let ui = Ui::to_console(args.quiet || args.json, Arc::clone(console));
    // Held from the check to the recorded result: one run of a task at a time.
    let Some((lock, prechecked)) = lock_task(&ui, spec, args, prechecked) else {
        if args.json {
            report::not_run_json(spec.name.as_deref());
        }
        return interrupted_end(&ui, spec);
    };
    crate::trace_times::mark("lock");
    if let Some(per_file) = &spec.per_file {
        return per_file::run_task(&ui, spec, (per_file, args), started, lock);
    }
    let _lock = lock;
    let files = RunFiles::new(&spec.cache_file);
    // A task checked with its graph brings the record it was checked with.
    let (mut record, answered) = match prechecked {
        Some(p) => (p.record, Some((p.parts, p.answer))),
        None => (files.load(), None),
    };
    let judged = judge(&ui, spec, args, (&files, &mut record), answered);
    let judgement = judged.unwrap_or_else(|why| {
        ui.warn(format_args!("cannot fingerprint ({why}); running anyway"));
        Judgement::unknown()
    });
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    if judgement.decision.as_ref().is_some_and(|d| d.files == 0) {
        ui.warn(format_args!(
            "{}the input set is empty: no file under {} passes --ext/--include/--exclude, so \
             once it succeeds the task skips whatever changes",
            spec.name
                .as_ref()
                .map_or(String::new(), |n| format!("{n}: ")),
            spec.root.display()
        ));
    }
    report::decision(&ui, args, spec, &judgement, check_ms);
    let ended = if args.dry_run {
        dry_run_end(&judgement)
    } else {
        act(&ui, spec, (&files, &mut record), &judgement, started)
    };
    if args.json {
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        report::json(console, args, spec, &judgement, (check_ms, total_ms), ended);
    }
    ended
}

/// The task lock and the graph's early check, dropped when another run held the task in the
/// meantime. No lock for a dry run, nor without the root (the task cannot be checked or
/// recorded then, and nothing may be created there), nor when it cannot be had (said; the
/// task goes on without it). `None`: zccache was interrupted while waiting for the lock.
fn lock_task(
    ui: &Ui,
    spec: &RunSpec,
    args: &RunArgs,
    prechecked: Option<Prechecked>,
) -> Option<(Option<TaskLock>, Option<Prechecked>)> {
    if args.dry_run || !spec.root.is_dir() {
        return Some((None, prechecked));
    }
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| spec.argv_text().join(" "));
    match task_lock::take(&spec.cache_file, ui, &name) {
        Ok(Taken::Held { lock, waited }) => Some((Some(lock), prechecked.filter(|_| !waited))),
        Ok(Taken::Interrupted) => None,
        Err(why) => {
            ui.warn(format_args!("{why}; running without the task lock"));
            Some((None, prechecked))
        }
    }
}

/// Skips (replaying; recording a shared result) or runs the task and records how it ended,
/// then adds the decision to the ledger. A task whose command may not start any more
/// (zccache was interrupted) ends not run, with nothing recorded.
fn act(
    ui: &Ui,
    spec: &RunSpec,
    (files, record): (&RunFiles, &mut RunRecord),
    judgement: &Judgement,
    started: Instant,
) -> Ended {
    let exit_status = match judgement.verdict {
        Verdict::Skip => {
            report::replay(ui.console(), judgement.replay.as_ref());
            if judgement.shared_skip {
                record_shared_skip(ui, spec, files, record, judgement);
            }
            None
        }
        Verdict::Run => match run_and_record(ui, spec, files, record, judgement) {
            Some(code) => Some(code),
            None => return interrupted_end(ui, spec),
        },
    };
    // Without a fingerprint there may be no state directory to keep a ledger in.
    if judgement.decision.is_some() {
        let line = ledger_line(spec, judgement, started, exit_status);
        if let Err(e) = ledger::append(&files.ledger, &line) {
            ui.warn(format_args!("cannot write {}: {e}", files.ledger.display()));
        }
    }
    ended(judgement, exit_status)
}

/// The end of a task that did not start because zccache was interrupted: 128 + N.
fn interrupted_end(ui: &Ui, spec: &RunSpec) -> Ended {
    let name = spec.shown_name();
    ui.say(format_args!("not started{name} (interrupted)"));
    let signal = crate::os::interrupted().unwrap_or(libc::SIGINT);
    Ended {
        outcome: Outcome::NotRun,
        status: u8::try_from(128 + signal).unwrap_or(1),
    }
}

/// A dry run's end: exit 0 (would skip), 1 (would run) or 2 (cannot tell).
fn dry_run_end(judgement: &Judgement) -> Ended {
    let (outcome, status) = match (&judgement.decision, judgement.verdict) {
        (None, _) => (Outcome::Unknown, ERROR_EXIT),
        (_, Verdict::Skip) => (Outcome::WouldSkip, 0),
        (_, Verdict::Run) => (Outcome::WouldRun, WOULD_RUN),
    };
    Ended { outcome, status }
}

/// The end of a task that skipped (`None`) or ran with `exit_status`.
fn ended(judgement: &Judgement, exit_status: Option<i32>) -> Ended {
    let outcome = match exit_status {
        None if judgement.restored => Outcome::Restored,
        None => Outcome::Skipped,
        Some(0) => Outcome::Ran,
        Some(_) => Outcome::Failed,
    };
    let status = u8::try_from(exit_status.unwrap_or(0)).unwrap_or(1);
    Ended { outcome, status }
}

/// Checks the fingerprint and the outputs; an error means the decision cannot be trusted.
fn judge(
    ui: &Ui,
    spec: &RunSpec,
    args: &RunArgs,
    (files, record): (&RunFiles, &mut RunRecord),
    answered: Option<(BTreeMap<String, Digest>, Answer)>,
) -> Result<Judgement, String> {
    // A batched answer was asked with parts made moments ago, in this process.
    let (parts, answer) = match answered {
        Some((parts, answer)) => (parts, Some(answer)),
        None => (key_parts(spec, record, &mut PlainTools::default())?, None),
    };
    let use_daemon = !args.no_daemon && !daemon_disabled();
    let modes = (args.dry_run, use_daemon);
    let (decision, recorder) = check::check(ui, spec, parts, modes, answer)?;
    let mut judgement = Judgement::from_check(decision, recorder);
    if args.force {
        judgement.rerun("forced", "forced".to_string());
    } else if judgement.verdict == Verdict::Skip {
        verify_skip(&mut judgement, spec, args.dry_run, files, record)?;
    }
    // Results are shared among this machine's checkouts always, and beyond with --share:
    // a run may be another checkout's skip, and its success is published for the others.
    if spec.share || judgement.verdict == Verdict::Run {
        consult_shared(ui, &mut judgement, spec, record, args);
    }
    Ok(judgement)
}

/// Where this task's results are shared: this machine, or with `--share` the team.
fn reach(spec: &RunSpec, judgement: &Judgement) -> shared::Reach {
    match spec.share {
        true => shared::Reach::Team {
            use_daemon: judgement.through_daemon(),
        },
        false => shared::Reach::Here,
    }
}

/// Key parts besides the file set: the command, the tool it starts (the rustup toolchain
/// it resolves to is remembered in `record`), for a `sh -c` script each program it starts,
/// and the named env vars.
fn key_parts(
    spec: &RunSpec,
    record: &mut RunRecord,
    plain: &mut PlainTools,
) -> Result<BTreeMap<String, Digest>, String> {
    let (tool, memo) = tool::identity(&spec.argv, &spec.cwd, record.rustup.as_ref(), plain)?;
    if memo.is_some() && memo != record.rustup {
        record.rustup = memo;
    }
    let mut parts = spec.command_parts();
    parts.insert("tool".to_string(), tool);
    if let Some(script) = tool::shell_script(&spec.argv) {
        let memos = &mut record.script_rustup;
        parts.extend(tool::script_identities(script, &spec.cwd, memos, plain)?);
    }
    Ok(parts)
}

/// The daemon's decisions for a graph's tasks in one round trip (`None` where a task must
/// ask by itself: no daemon, `--staged`, `--force`, or a task whose parts cannot be made).
pub fn precheck(specs: &[RunSpec], args: &RunArgs) -> Vec<Option<Prechecked>> {
    let usable = !args.no_daemon && !daemon_disabled() && !args.staged && !args.force;
    if !usable || specs.len() < 2 {
        return vec![None; specs.len()];
    }
    let mut plain = PlainTools::default();
    let mut made = Vec::with_capacity(specs.len());
    // A per-file task checks by itself: its files are judged one by one.
    for (i, spec) in specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.per_file.is_none())
    {
        let mut record = RunFiles::new(&spec.cache_file).load();
        if let Ok(parts) = key_parts(spec, &mut record, &mut plain) {
            made.push((i, record, parts));
        }
    }
    let asked: Vec<(&RunSpec, &BTreeMap<String, Digest>)> = made
        .iter()
        .map(|(i, _, parts)| (&specs[*i], parts))
        .collect();
    let answers = check::batch(&asked, args.dry_run);
    let mut all = vec![None; specs.len()];
    for ((i, record, parts), answer) in made.into_iter().zip(answers) {
        all[i] = answer.map(|answer| Prechecked {
            parts,
            record,
            answer,
        });
    }
    all
}

/// With shared results: the portable key, and a run that another checkout's identical
/// inputs already passed turned into a skip.
fn consult_shared(
    ui: &Ui,
    judgement: &mut Judgement,
    spec: &RunSpec,
    record: &RunRecord,
    args: &RunArgs,
) {
    let Some(decision) = &judgement.decision else {
        return;
    };
    match shared::portable_key(spec, decision, record) {
        Ok(key) => {
            if judgement.verdict == Verdict::Run && !args.force {
                take_shared(judgement, spec, &key, args.dry_run);
            }
            judgement.shared_key = Some(key);
        }
        Err(why) if spec.share => ui.warn(format_args!("cannot share results ({why})")),
        Err(_) => {}
    }
}

/// Turns the run into a skip when another checkout published a success of `key` whose
/// outputs (restored here where needed; a dry run only asks whether they could be) and,
/// with `--replay`, streams can be used.
fn take_shared(judgement: &mut Judgement, spec: &RunSpec, key: &str, dry_run: bool) {
    let Some(result) = shared::fetch(key, spec, reach(spec, judgement)) else {
        return;
    };
    let replay = result.replay();
    if spec.replay && replay.is_none() {
        return;
    }
    let Ok(restored) = result.apply(spec, dry_run) else {
        return;
    };
    let passed = result.passed_where(spec);
    let verb = if dry_run { "would restore" } else { "restored" };
    judgement.verdict = Verdict::Skip;
    judgement.code = "shared";
    judgement.message = match restored {
        0 => passed,
        n => format!(
            "{passed}; {verb} {n} output{}",
            if n == 1 { "" } else { "s" }
        ),
    };
    judgement.shared_skip = true;
    judgement.restored = restored > 0;
    judgement.replay = replay.filter(|_| spec.replay);
}

/// A skip on a shared result becomes a local success, so the next check skips by itself
/// (not once zccache was interrupted: nothing is recorded as a success after that).
fn record_shared_skip(
    ui: &Ui,
    spec: &RunSpec,
    files: &RunFiles,
    record: &mut RunRecord,
    judgement: &Judgement,
) {
    if crate::os::interrupted().is_some() {
        return;
    }
    let replay = judgement.replay.as_ref();
    if let Err(why) = record_outcome(ui, spec, files, record, judgement, true, replay) {
        ui.warn(format_args!("cannot record the shared result: {why}"));
    }
}

/// Records success or failure against what the check saw, with the outputs' digests and
/// the replay of a success (nothing to record without a fingerprint).
fn record_outcome(
    ui: &Ui,
    spec: &RunSpec,
    files: &RunFiles,
    record: &mut RunRecord,
    judgement: &Judgement,
    succeeded: bool,
    captured: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<(), String> {
    let (Some(recorder), Some(decision)) = (judgement.recorder.clone(), &judgement.decision) else {
        return Ok(());
    };
    recorder.record(&spec.cache_file, succeeded)?;
    match succeeded {
        true => {
            let use_daemon = judgement.through_daemon();
            remember(ui, spec, files, record, decision.key, captured, use_daemon)
        }
        false => Ok(()),
    }
}

/// Runs the command and records success or failure; returns its exit status (`None`: it
/// did not start, zccache was interrupted). A run that ends after a signal is a failure.
fn run_and_record(
    ui: &Ui,
    spec: &RunSpec,
    files: &RunFiles,
    record: &mut RunRecord,
    judgement: &Judgement,
) -> Option<i32> {
    let group = Group::for_task(ui.console());
    let finished = child::run(&spec.argv, &spec.cwd, spec.replay, ui.console(), group)?;
    if let Some(why) = &finished.spawn_error {
        ui.error(why);
    }
    let interrupted = crate::os::interrupted();
    let succeeded = finished.code == 0 && interrupted.is_none();
    let code = match interrupted {
        Some(signal) if finished.code == 0 => 128 + signal,
        _ => finished.code,
    };
    let recorded = record_outcome(
        ui,
        spec,
        files,
        record,
        judgement,
        succeeded,
        finished.captured.as_ref(),
    );
    if let Err(why) = recorded {
        ui.warn(format_args!("cannot record the result: {why}"));
    }
    if let Some(key) = judgement.shared_key.as_ref().filter(|_| succeeded)
        && let Err(why) = shared::publish(
            spec,
            key,
            reach(spec, judgement),
            finished.captured.as_ref(),
        )
    {
        ui.warn(format_args!("cannot share the result: {why}"));
    }
    Some(code)
}

/// Stores the outputs' listing, their files (into the artifact store) and the replay of a
/// successful key.
fn remember(
    ui: &Ui,
    spec: &RunSpec,
    files: &RunFiles,
    record: &mut RunRecord,
    key: fingerprint::Digest,
    captured: Option<&(Vec<u8>, Vec<u8>)>,
    use_daemon: bool,
) -> Result<(), String> {
    let Listing {
        digests: outputs,
        stamps,
        strays,
        specials,
    } = digest_outputs_known(&spec.outputs, None)
        .map_err(|e| format!("cannot read outputs: {e}"))?;
    restore::sweep(&strays);
    restore::sweep_beside(&spec.outputs);
    if let Some(first) = specials.first() {
        let more = match specials.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        ui.say(format_args!(
            "note: not cached: {}{more} (a FIFO, socket or device is neither stored nor compared)",
            first.strip_prefix(&spec.cwd).unwrap_or(first).display()
        ));
    }
    let has_files = outputs.values().any(Option::is_some);
    let stored = has_files
        && output_cache::save(spec, key, &outputs, use_daemon)
            .inspect_err(|e| ui.warn(format_args!("cannot cache the outputs: {e}")))
            .is_ok();
    if let Some((out, err)) = captured {
        files
            .save_replay(key, out, err)
            .map_err(|e| format!("cannot store the replay: {e}"))?;
    }
    let dropped = record.insert(KeyRecord {
        key,
        outputs,
        replay: captured.is_some(),
        stored,
        stamps,
    });
    for old in dropped {
        files.remove_replay(old);
    }
    files.save(record).map_err(|e| e.to_string())
}

fn ledger_line(
    spec: &RunSpec,
    j: &Judgement,
    started: Instant,
    exit_status: Option<i32>,
) -> LedgerLine {
    let decision = j.decision.as_ref();
    LedgerLine {
        at_ms: now_ms(),
        decision: serde_json::to_value(j.verdict)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        reason: j.code.to_string(),
        message: j.message.clone(),
        changes: decision
            .map(|d| d.changes.iter().take(EXPLAIN_LIMIT).cloned().collect())
            .unwrap_or_default(),
        changed_parts: decision
            .map(|d| d.changed_parts.clone())
            .unwrap_or_default(),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        exit_status,
        command: spec.argv_text(),
    }
}
