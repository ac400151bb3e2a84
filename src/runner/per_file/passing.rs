//! Running a per-file task's unpassed files and recording the outcome: the batches, then
//! (for a first run, after reading its files, see `deferred`; in a process of its own, see
//! `settle`) each file of a batch that exited 0 passes if it still holds the content it was
//! judged by, a failing batch's files are noted as failed, and the record is saved (with the
//! whole set's pair when every file passed) along with the shared check's outcome.

use rayon::prelude::*;

use super::deferred::{self, Deferred, Vouch};
use super::run::{self, Batch, Status};
use super::select::{self, Unpassed};
use super::{Judged, batches, settle, share, staged, state, whole};
use crate::cli::RunArgs;
use crate::fingerprint::EntryKind;
use crate::runner::ERROR_EXIT;
use crate::runner::spec::{PerFile, RunSpec};
use crate::runner::task_lock::TaskLock;
use crate::ui::Ui;

/// From how many files their stats are read again in parallel.
const PARALLEL_FROM: usize = 64;

/// Runs the unpassed files in batches and records what passed; returns the task's status
/// (the first failing batch's, 0 when all passed, 128 + N once interrupted by signal N)
/// and each batch's.
pub(super) fn run_and_mark(
    ui: &Ui,
    spec: &RunSpec,
    (per_file, args, started): (&PerFile, &RunArgs, std::time::Instant),
    judged: &mut Judged,
    lock: &mut Option<TaskLock>,
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
    let naming = batches::Naming::new(&place.root, &place.cwd);
    let names: Vec<_> = paths.iter().map(|path| naming.argument(path)).collect();
    // `-j N` splits the files into N batches at least (pre-commit's default, over the CPUs:
    // a single-threaded tool runs twice as fast on 2 CPUs, a heavy-starting one slower, so
    // it is asked for); without it, batches the argument limit makes still run side by side.
    let at_least = args.jobs.map_or(1, usize::from);
    let mut planned = plan(spec, per_file, names, at_least);
    // (The CPU count reads cgroup files: not for a single batch.)
    let jobs = match (args.jobs, planned.len()) {
        (Some(jobs), _) => usize::from(jobs),
        (None, 0 | 1) => 1,
        (None, _) => std::thread::available_parallelism().map_or(1, usize::from),
    };
    // A first run's record writer starts while the command runs (see `settle`). One batch
    // (the usual first run) is started on this thread, before the writer; the thread that
    // would run it took a start of its own. Its command line is let go while it runs, not
    // at zccache's exit.
    let (statuses, early) = match (&judged.deferred, lock.as_ref()) {
        (Some(_), Some(held)) if planned.len() == 1 => {
            let started = run::start(&planned[0], &place.cwd, ui.console());
            let early = settle::start_early(spec, judged, held);
            drop(std::mem::take(&mut planned[0].argv));
            (vec![started.and_then(|s| run::end(ui, s))], early)
        }
        (Some(_), Some(held)) => std::thread::scope(|scope| {
            let running = scope.spawn(|| run::run_all(ui, &planned, &place.cwd, jobs));
            let early = settle::start_early(spec, judged, held);
            let statuses = running.join();
            (
                statuses.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                early,
            )
        }),
        _ => (run::run_all(ui, &planned, &place.cwd, jobs), None),
    };
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
    // The ledger line goes first: once the lock is passed on, the next run may write its own.
    let status = i32::from(super::exit_byte(code));
    super::report::ledger(ui, spec, judged, started, Some(status));
    if interrupted.is_some() {
        // Nothing is known of a first run's files (none was read): it leaves no record.
        if judged.deferred.is_none() {
            keep(ui, spec, judged, false);
        }
        return (code, statuses);
    }
    let ended = by_file(&planned, &statuses, judged.unpassed.len());
    if let Some(deferred) = judged.deferred.as_mut() {
        deferred.check_read_before(spec, &judged.current.entries, judged.scanned_at);
    }
    // A first run's record is written after zccache returns, by a process holding the lock.
    let lock = match (judged.deferred.is_some(), lock.take()) {
        (true, Some(held)) => {
            let outcome = (ended.as_slice(), code == 0);
            let handed = match early {
                Some(early) => settle::finish_early(early, judged, outcome, held),
                None => settle::hand_over(spec, judged, outcome, held),
            };
            match handed {
                Ok(()) => {
                    crate::trace_times::mark("hand over");
                    return (code, statuses);
                }
                Err((held, _)) => Some(held),
            }
        }
        (_, held) => held,
    };
    record_outcome(ui, spec, judged, &ended, code == 0);
    drop(lock);
    judged.daemon.after_record();
    (code, statuses)
}

/// How each unpassed file's batch ended (`n` files, in `batches`).
fn by_file(batches: &[Batch], statuses: &[Status], n: usize) -> Vec<Status> {
    let mut ended = vec![None; n];
    for (batch, status) in batches.iter().zip(statuses) {
        for &i in &batch.files {
            ended[i] = *status;
        }
    }
    ended
}

/// Reads the digests of the files a first run deferred, passes each file whose batch ended
/// as `ended` says (0) and that held, and saves the record and the task's outcome.
pub(super) fn record_outcome(
    ui: &Ui,
    spec: &RunSpec,
    judged: &mut Judged,
    ended: &[Status],
    succeeded: bool,
) {
    if let Some(mut deferred) = judged.deferred.take() {
        let (entries, unpassed) = (&mut judged.current.entries, &mut judged.unpassed);
        deferred::stamp_listed(spec, entries, unpassed, &mut deferred);
        let digests = deferred::read(spec, &judged.current.entries, &deferred);
        let (current, unpassed) = (&mut judged.current, &mut judged.unpassed);
        deferred::settle(current, unpassed, &mut deferred, &digests);
        judged.deferred = Some(deferred);
    }
    mark(ui, spec, judged, ended);
    crate::trace_times::mark("mark");
    keep(ui, spec, judged, succeeded);
    crate::trace_times::mark("save");
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
                argv: batches::command_for(&spec.argv, files),
            }
        })
        .collect()
}

/// Passes the files of each batch that exited 0 (those that still hold the content the
/// check read; with `--staged`, the index's content was judged), publishing them with
/// `--share`, and notes the failures.
fn mark(ui: &Ui, spec: &RunSpec, judged: &mut Judged, ended: &[Status]) {
    let key = judged.decision.key;
    // Each file's stat is read again, side by side when there are many (a thread pool
    // costs more than a few stats).
    let read = (judged.deferred.as_ref(), judged.scanned_at);
    let unpassed = &judged.unpassed;
    // A symlink never passes: the tool lints the file it points to, which its key (the
    // link's text) does not cover, and which may lie outside the set.
    let held_at = |i: usize| {
        ended[i] == Some(0)
            && unpassed[i].entry.kind == EntryKind::File
            && (spec.staged || vouched(spec, unpassed, read, i))
    };
    let held: Vec<bool> = match unpassed.len() {
        n if n < PARALLEL_FROM => (0..n).map(held_at).collect(),
        n => (0..n).into_par_iter().map(held_at).collect(),
    };
    judged.ran_all_passed = Some(held.iter().all(|h| *h));
    let mut passed = Vec::new();
    for (i, u) in judged.unpassed.iter().enumerate() {
        let entry = &u.entry;
        match ended[i] {
            Some(0) if held[i] => {
                judged
                    .record
                    .pass(&entry.path, u.key_under(key), entry.hash);
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
/// files whose digests were read after the run, and when the others' were verified).
fn vouched(
    spec: &RunSpec,
    unpassed: &[Unpassed],
    (deferred, scanned_at): (Option<&Deferred>, i64),
    i: usize,
) -> bool {
    let entry = &unpassed[i].entry;
    match deferred.map(|d| d.vouch(i)) {
        Some(Vouch::Stamp) => deferred::stamp_unchanged(spec, entry),
        Some(Vouch::Held) => true,
        Some(Vouch::Unread) => false,
        Some(Vouch::ReadBefore) | None => select::unchanged_since(spec, entry, scanned_at),
    }
}

/// Saves the per-file record (the stat table, deleted files forgotten; when every file
/// passed, the whole set's key) and records the shared check's outcome, so its stat table
/// is kept too.
pub(super) fn keep(ui: &Ui, spec: &RunSpec, judged: &mut Judged, succeeded: bool) {
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
    let all_passed = judged.ran_all_passed.unwrap_or_else(|| {
        judged.unpassed.iter().all(|u| {
            let key = u.key_under(task_key);
            let record = record.paths.get(&u.entry.path);
            record.is_some_and(|r| r.keys.contains(&key))
        })
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
