//! Per-file tasks (`--files GLOB`, `files = [...]`): lint only what has not passed.
//!
//! The task's key is made as any task's (command line, tool, `--env` values, and its shared
//! inputs: the input set less the per-file files), through the daemon when one runs. Each
//! per-file file then has a key of its own: the task's key, its path relative to the root
//! and its content. The files whose key has not passed are given to the command, in batches;
//! a batch that exits 0 passes its files (with the content read before it ran, if the file
//! still holds it), a failing batch passes none and the task fails with its status. So a
//! shared input's edit re-opens every file, a file's edit only that file, a failed file is
//! run again until it passes, and a deleted file is forgotten.
//!
//! Through a running daemon, one round trip answers the task's check and hands over the
//! per-file set as the daemon watches it (nothing is walked here); without one (a first
//! run), the task is judged in-process while a daemon starts in the background, and with no
//! record at all the command starts at once on every file (see `deferred`).

mod batches;
mod codec;
mod deferred;
mod report;
mod run;
mod select;
mod share;
mod staged;
mod state;
mod whole;

use std::time::Instant;

use rayon::prelude::*;

use super::check::{self, Recorder};
use super::outcome::{Ended, Outcome};
use super::record::RunFiles;
use super::spec::{PerFile, RunSpec};
use super::tool::PlainTools;
use super::{ERROR_EXIT, WOULD_RUN, key_parts};
use crate::cli::RunArgs;
use crate::daemon::lifecycle::daemon_disabled;
use crate::fingerprint::{Decision, Digest, now_ns};
use crate::ui::Ui;
use deferred::{Deferred, Vouch};
use run::{Batch, Status};
use select::{Current, Unpassed, Why};
use state::FilesRecord;
use whole::Asked;

/// From how many files their stats are read again in parallel.
const PARALLEL_FROM: usize = 64;

/// What the check of a per-file task found.
struct Judged {
    /// The shared check's decision (its key is the task's key).
    decision: Decision,
    /// How to record the shared check's outcome.
    recorder: Recorder,
    /// The per-file record as loaded.
    record: FilesRecord,
    /// The per-file set now.
    current: Current,
    /// Its files that have not passed.
    unpassed: Vec<Unpassed>,
    /// When the per-file set was read, ns since the epoch.
    scanned_at: i64,
    /// How many per-file files there are.
    total: usize,
    /// Skipped on the whole set's key (`whole`): nothing per file was read, nor is written.
    whole_skip: bool,
    /// With `--share`: the task's portable key, under which its files' passes are published.
    portable: Option<String>,
    /// How many files another machine or checkout passed (not run here).
    elsewhere: usize,
    /// The per-file set's key, when the daemon made it.
    set_key: Option<Digest>,
    /// With no record: the files whose digests are read while the command runs.
    deferred: Option<Deferred>,
    /// A daemon starting in the background, joined before zccache exits.
    starting: Option<std::thread::JoinHandle<()>>,
}

/// Checks and runs the per-file task `spec` (its task lock held by the caller).
pub(super) fn run_task(
    ui: &Ui,
    spec: &RunSpec,
    per_file: &PerFile,
    args: &RunArgs,
    started: Instant,
) -> Ended {
    crate::trace_times::start();
    let mut judged = match judge(ui, spec, per_file, args) {
        Ok(judged) => judged,
        Err(why) => {
            ui.error(format_args!("cannot fingerprint the per-file task ({why})"));
            return Ended {
                outcome: Outcome::Unknown,
                status: ERROR_EXIT,
            };
        }
    };
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    report::decision(ui, args, spec, &judged, check_ms);
    let (ended, statuses) = match (judged.unpassed.is_empty(), args.dry_run) {
        (true, true) => (ended(Outcome::WouldSkip, 0), None),
        (false, true) => (ended(Outcome::WouldRun, WOULD_RUN.into()), None),
        (true, false) => {
            keep(ui, spec, &mut judged, true);
            (ended(Outcome::Skipped, 0), None)
        }
        (false, false) => {
            let (code, statuses) = run_and_mark(ui, spec, per_file, args, &mut judged);
            let outcome = if code == 0 {
                Outcome::Ran
            } else {
                Outcome::Failed
            };
            (ended(outcome, code), Some(statuses))
        }
    };
    let exit_status = statuses.as_ref().map(|_| i32::from(ended.status));
    if !args.dry_run {
        report::ledger(ui, spec, &judged, started, exit_status);
    }
    if args.json {
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        report::json(ui, args, spec, &judged, (check_ms, total_ms), ended);
    }
    crate::trace_times::mark("report");
    if let Some(starting) = judged.starting.take() {
        // The daemon is up before zccache exits: none is left starting unseen.
        let _ = starting.join();
        crate::trace_times::mark("daemon start");
    }
    crate::trace_times::report();
    ended
}

/// Whether `spec` would skip now (every file passed), deciding quietly and writing
/// nothing (`None`: unknown).
pub(super) fn would_skip(spec: &RunSpec, per_file: &PerFile, args: &RunArgs) -> Option<bool> {
    let judged = judge(&Ui::new(true), spec, per_file, args).ok()?;
    Some(judged.unpassed.is_empty())
}

fn ended(outcome: Outcome, status: i32) -> Ended {
    Ended {
        outcome,
        status: u8::try_from(status).unwrap_or(1),
    }
}

/// The task's key (the shared check), the per-file set and its unpassed files. Through a
/// running daemon, the whole set is asked first: when every file passed as they are now,
/// nothing per file is read; otherwise the daemon's table of the set is judged. With no
/// daemon running, a run starts one in the background and judges in-process.
fn judge(ui: &Ui, spec: &RunSpec, per_file: &PerFile, args: &RunArgs) -> Result<Judged, String> {
    let mut run_record = RunFiles::new(&spec.cache_file).load();
    let parts = key_parts(spec, &mut run_record, &mut PlainTools::default())?;
    crate::trace_times::mark("key");
    let mut use_daemon = !args.no_daemon && !daemon_disabled();
    let mut asked = Asked::default();
    let mut starting = None;
    let mut loaded = None;
    if use_daemon && !spec.staged && !args.force {
        // The record is read while the daemon answers (unused when every file passed).
        (asked, loaded) = std::thread::scope(|scope| {
            let loading = scope.spawn(|| state::load(&spec.cache_file));
            let asked = whole::ask(spec, per_file, &parts, args.dry_run);
            (asked, loading.join().ok().flatten())
        });
        crate::trace_times::mark("ask");
        if asked.all_passed(&spec.cache_file)
            && let (Some(shared), Some(set)) = (asked.shared.take(), &asked.set)
        {
            let counts = (set.decision.files, set.decision.hashed);
            return Ok(whole_skip(ui, shared, counts));
        }
        if !asked.running && !args.dry_run {
            starting = whole::start_daemon();
            use_daemon = false;
        }
    }
    if loaded.is_none() {
        loaded = state::load(&spec.cache_file);
    }
    let defer = loaded.is_none() && asked.table.is_none();
    let defer = defer && !(spec.share || spec.staged || args.dry_run);
    let answered = asked.shared.take();
    // With no record, the per-file set is walked while the shared inputs are checked.
    let (checked, walked) = std::thread::scope(|scope| {
        let walk = || deferred::current(spec, per_file, why_all(args));
        let walking = defer.then(|| scope.spawn(walk));
        let checked = check::check(ui, spec, parts, (args.dry_run, use_daemon), answered);
        let walked = walking.map(|w| w.join().unwrap_or_else(|_| Err("walk panicked".into())));
        (checked, walked)
    });
    let (decision, recorder) = checked?;
    crate::trace_times::mark("check");
    let portable = match spec.share {
        true => shared_key(ui, spec, &decision, &run_record),
        false => None,
    };
    let record = loaded.unwrap_or_default();
    let set = match walked {
        Some(walked) => JudgedSet::deferred(walked?),
        None => judge_set(spec, per_file, args, (&record, decision.key), asked)?,
    };
    crate::trace_times::mark("set");
    let mut judged = Judged {
        decision,
        recorder,
        record,
        total: set.current.entries.len(),
        current: set.current,
        unpassed: set.unpassed,
        scanned_at: set.scanned_at,
        set_key: set.set_key,
        whole_skip: false,
        portable,
        elsewhere: 0,
        deferred: set.deferred,
        starting,
    };
    if !args.force {
        take_shared(ui, &mut judged);
    }
    Ok(judged)
}

/// Why every file runs when all do: `--force`, or nothing passed yet.
fn why_all(args: &RunArgs) -> Why {
    match args.force {
        true => Why::Forced,
        false => Why::New,
    }
}

/// The per-file set now and its unpassed files.
struct JudgedSet {
    current: Current,
    unpassed: Vec<Unpassed>,
    /// When its digests were last verified, ns since the epoch.
    scanned_at: i64,
    /// Its key, when the daemon made it.
    set_key: Option<Digest>,
    deferred: Option<Deferred>,
}

impl JudgedSet {
    /// A set walked with no record, its digests read during the run.
    fn deferred((current, unpassed, deferred): (Current, Vec<Unpassed>, Deferred)) -> Self {
        JudgedSet {
            current,
            unpassed,
            scanned_at: deferred.scanned_at,
            set_key: None,
            deferred: Some(deferred),
        }
    }
}

/// The per-file set from the daemon's table when it sent one, else walked here (its digests
/// read through the stat table of the last walk), and its files that did not pass.
fn judge_set(
    spec: &RunSpec,
    per_file: &PerFile,
    args: &RunArgs,
    (record, task_key): (&FilesRecord, Digest),
    asked: Asked,
) -> Result<JudgedSet, String> {
    let (current, scanned_at, set_key) = match (asked.table, asked.set) {
        (Some(table), set) => {
            let current = Current {
                entries: table.entries,
                // The daemon keeps it: `F.files.table` stays for checks made here.
                table: None,
                rehashed: set.as_ref().map_or(0, |set| set.decision.hashed),
            };
            let set_key = set.map(|set| set.decision.files_key);
            (current, table.scanned_at_ns, set_key)
        }
        (None, _) => {
            let scanned_at = now_ns();
            let previous = state::load_table(&spec.cache_file);
            let current = select::current(spec, per_file, previous.as_ref(), !args.dry_run)?;
            (current, scanned_at, None)
        }
    };
    let unpassed = match args.force {
        true => current
            .entries
            .iter()
            .map(|entry| Unpassed {
                entry: entry.clone(),
                why: Why::Forced,
            })
            .collect(),
        false => select::unpassed(record, task_key, &current.entries),
    };
    Ok(JudgedSet {
        current,
        unpassed,
        scanned_at,
        set_key,
        deferred: None,
    })
}

/// The task's portable key for `--share` (`None`, said, when it cannot be made).
fn shared_key(
    ui: &Ui,
    spec: &RunSpec,
    decision: &Decision,
    run_record: &crate::runner::record::RunRecord,
) -> Option<String> {
    super::shared::portable_key(spec, decision, run_record)
        .inspect_err(|why| ui.warn(format_args!("cannot share the results ({why})")))
        .ok()
}

/// Passes here the unpassed files another machine or checkout passed, and runs only the
/// others.
fn take_shared(ui: &Ui, judged: &mut Judged) {
    let Some(portable) = judged.portable.as_deref() else {
        return;
    };
    if judged.unpassed.is_empty() {
        return;
    }
    let files: Vec<(&str, Digest)> = judged
        .unpassed
        .iter()
        .map(|u| (u.entry.path.as_str(), u.entry.hash))
        .collect();
    let held = share::passed_elsewhere(ui, portable, &files);
    let before = judged.unpassed.len();
    let key = judged.decision.key;
    let mut held = held.into_iter();
    let record = &mut judged.record;
    judged.unpassed.retain(|u| {
        if !held.next().unwrap_or(false) {
            return true;
        }
        let entry = &u.entry;
        record.pass(
            &entry.path,
            state::file_key(key, &entry.path, entry.hash),
            entry.hash,
        );
        false
    });
    judged.elsewhere = before - judged.unpassed.len();
}

/// A skip on the whole set's key: the daemon's answer to the task's check, and how many
/// per-file files there are and how many of them it read.
fn whole_skip(ui: &Ui, shared: check::Answer, (total, hashed): (usize, usize)) -> Judged {
    let (decision, recorder) = check::from_answer(ui, shared);
    Judged {
        decision,
        recorder,
        record: FilesRecord::default(),
        current: Current {
            entries: Vec::new(),
            table: None,
            rehashed: hashed,
        },
        unpassed: Vec::new(),
        scanned_at: now_ns(),
        set_key: None,
        total,
        whole_skip: true,
        portable: None,
        elsewhere: 0,
        deferred: None,
        starting: None,
    }
}

/// Runs the unpassed files in batches and records what passed; returns the task's status
/// (the first failing batch's, 0 when all passed, 128 + N once interrupted by signal N)
/// and each batch's.
fn run_and_mark(
    ui: &Ui,
    spec: &RunSpec,
    per_file: &PerFile,
    args: &RunArgs,
    judged: &mut Judged,
) -> (i32, Vec<Status>) {
    let paths: Vec<&str> = judged
        .unpassed
        .iter()
        .map(|u| u.entry.path.as_str())
        .collect();
    let place = match staged::place(spec, &paths) {
        Ok(place) => place,
        Err(why) => {
            ui.error(format_args!("cannot run on the staged files ({why})"));
            return (ERROR_EXIT.into(), Vec::new());
        }
    };
    let names: Vec<_> = paths
        .iter()
        .map(|path| batches::argument(&place.root, &place.cwd, path))
        .collect();
    // `-j N` splits the files into N batches at least; without it, batches the argument
    // limit makes still run side by side.
    let at_least = args.jobs.map_or(1, usize::from);
    let planned = plan(spec, per_file, names, at_least);
    // (The CPU count reads cgroup files: not for a single batch.)
    let jobs = match (args.jobs, planned.len()) {
        (Some(jobs), _) => usize::from(jobs),
        (None, 0 | 1) => 1,
        (None, _) => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let statuses = run_reading(ui, spec, judged, (&planned, &place.cwd, jobs));
    drop(place);
    crate::trace_times::mark("run");
    let interrupted = crate::os::interrupted();
    let failed = statuses.iter().flatten().copied().find(|code| *code != 0);
    let code = match (failed, interrupted) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) if statuses.iter().any(Option::is_none) => 1,
        (None, None) => 0,
    };
    if interrupted.is_none() {
        mark(ui, spec, judged, &planned, &statuses);
    }
    crate::trace_times::mark("mark");
    keep(ui, spec, judged, code == 0);
    crate::trace_times::mark("save");
    (code, statuses)
}

/// Runs the batches; with deferred files, reads them meanwhile and settles their digests.
fn run_reading(
    ui: &Ui,
    spec: &RunSpec,
    judged: &mut Judged,
    (planned, cwd, jobs): (&[Batch], &std::path::Path, usize),
) -> Vec<Status> {
    let Some(mut deferred) = judged.deferred.take() else {
        return run::run_all(ui, planned, cwd, jobs);
    };
    let entries = &judged.current.entries;
    let (statuses, digests) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| deferred::read_during(spec, entries, &deferred));
        let statuses = run::run_all(ui, planned, cwd, jobs);
        (statuses, reading.join().unwrap_or_default())
    });
    let (current, unpassed) = (&mut judged.current, &mut judged.unpassed);
    deferred::settle(current, unpassed, &mut deferred, &digests);
    judged.deferred = Some(deferred);
    statuses
}

/// The batches for the unpassed files named `names` (in their order): within the argument
/// limit and the batch size, and with `-j N`, at least N of them.
fn plan(
    spec: &RunSpec,
    per_file: &PerFile,
    names: Vec<std::ffi::OsString>,
    at_least: usize,
) -> Vec<Batch> {
    let room = batches::room(&spec.argv);
    let split = batches::split(names, room, per_file.batch_size, at_least);
    let mut first = 0;
    split
        .into_iter()
        .map(|files| {
            let indices = (first..first + files.len()).collect();
            first += files.len();
            Batch {
                files: indices,
                argv: batches::command_for(&spec.argv, &files),
            }
        })
        .collect()
}

/// Passes the files of each batch that exited 0 (those that still hold the content the
/// check read; with `--staged`, the index's content was judged), publishing them with
/// `--share`, and notes the failures.
fn mark(ui: &Ui, spec: &RunSpec, judged: &mut Judged, batches: &[Batch], statuses: &[Status]) {
    let key = judged.decision.key;
    let mut ended = vec![None; judged.unpassed.len()];
    for (batch, status) in batches.iter().zip(statuses) {
        for &i in &batch.files {
            ended[i] = *status;
        }
    }
    // Each file's stat is read again, side by side when there are many (a thread pool
    // costs more than a few stats).
    let read = (judged.deferred.as_ref(), judged.scanned_at);
    let unpassed = &judged.unpassed;
    let held_at =
        |i: usize| ended[i] == Some(0) && (spec.staged || vouched(spec, unpassed, read, i));
    let held: Vec<bool> = match unpassed.len() {
        n if n < PARALLEL_FROM => (0..n).map(held_at).collect(),
        n => (0..n).into_par_iter().map(held_at).collect(),
    };
    let mut passed = Vec::new();
    for (i, u) in judged.unpassed.iter().enumerate() {
        let entry = &u.entry;
        match ended[i] {
            Some(0) if held[i] => {
                let file_key = state::file_key(key, &entry.path, entry.hash);
                judged.record.pass(&entry.path, file_key, entry.hash);
                passed.push((entry.path.as_str(), entry.hash));
            }
            Some(code) if code != 0 => judged.record.fail(&entry.path, entry.hash),
            _ => {}
        }
    }
    if let Some(portable) = &judged.portable {
        share::publish(ui, portable, &passed);
    }
}

/// True when the unpassed file at `i` still holds the content it is judged by (`read`: the
/// files whose digests were read during the run, and when the others' were verified).
fn vouched(
    spec: &RunSpec,
    unpassed: &[Unpassed],
    (deferred, scanned_at): (Option<&Deferred>, i64),
    i: usize,
) -> bool {
    let entry = &unpassed[i].entry;
    match deferred.map(|d| d.vouch(i)) {
        Some(Vouch::Stamp) => deferred::stamp_unchanged(spec, entry),
        Some(Vouch::Unread) => false,
        Some(Vouch::ReadBefore) | None => select::unchanged_since(spec, entry, scanned_at),
    }
}

/// Saves the per-file record (the stat table, deleted files forgotten; when every file
/// passed, the whole set's key) and records the shared check's outcome, so its stat table
/// is kept too.
fn keep(ui: &Ui, spec: &RunSpec, judged: &mut Judged, succeeded: bool) {
    if !judged.whole_skip {
        save_files(ui, spec, judged);
    }
    let recorder = judged.recorder.clone();
    let skipped = judged.decision.verdict == crate::fingerprint::Verdict::Skip;
    if !(skipped && succeeded)
        && crate::os::interrupted().is_none()
        && let Err(why) = recorder.record(&spec.cache_file, succeeded)
    {
        ui.warn(format_args!("cannot record the result: {why}"));
    }
}

fn save_files(ui: &Ui, spec: &RunSpec, judged: &mut Judged) {
    if let Some(table) = judged.current.table.take()
        && let Err(e) = state::save_table(&spec.cache_file, &table)
    {
        ui.warn(format_args!("cannot record the stat table: {e}"));
    }
    let record = &mut judged.record;
    let entries = &judged.current.entries;
    record.forget_absent(entries.iter().map(|e| e.path.as_str()));
    if let Err(e) = state::save(&spec.cache_file, record) {
        ui.warn(format_args!("cannot record the passed files: {e}"));
    }
    // The files that were not to run had passed: all passed once each of those that ran did.
    let task_key = judged.decision.key;
    let all_passed = judged.unpassed.iter().all(|u| {
        let key = state::file_key(task_key, &u.entry.path, u.entry.hash);
        record
            .paths
            .get(&u.entry.path)
            .is_some_and(|r| r.keys.contains(&key))
    });
    if all_passed {
        let set_key = judged.set_key.unwrap_or_else(|| {
            let leaves: Vec<_> = entries.iter().map(crate::fingerprint::leaf).collect();
            crate::fingerprint::key_of_leaves(&leaves)
        });
        if let Err(e) = whole::remember(&spec.cache_file, task_key, set_key) {
            ui.warn(format_args!("cannot record the passed files: {e}"));
        }
    }
}

/// The first few names of `unpassed`, for the decision line.
fn first_names(unpassed: &[Unpassed]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = unpassed
        .iter()
        .take(SHOWN)
        .map(|u| crate::quote::path(&u.entry.path).into_owned())
        .collect();
    if unpassed.len() > SHOWN {
        names.push("...".to_string());
    }
    names.join(", ")
}
